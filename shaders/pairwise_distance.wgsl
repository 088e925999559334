// pairwise_distance: the distance matrix between the rows of A [rows_a, dim] and B [rows_b, dim]:
//   Euclidean (squared == 0): dist[i, j] = sqrt(sum_c (a_ic - b_jc)^2 + eps)
//   squared   (squared == 1): dist[i, j] = sum_c (a_ic - b_jc)^2
// (differences, not |a|^2 + |b|^2 - 2 a.b: no cancellation for nearby rows). eps inside the root keeps the
// gradient (a - b) / dist bounded at coincident rows.
// Each invocation owns a 4 x 4 block of the output (rows 4 gy .. 4 gy + 3 of A, columns 4 gx .. of B), so
// each loaded value feeds 4 differences; workgroups of 8 x 8 invocations cover 32 x 32 blocks.
//   dist [rows_a, rows_b]. Dispatch: (ceil(rows_b / 32), ceil(rows_a / 32), 1).

struct Params {
    rows_a: u32, rows_b: u32, dim: u32, squared: u32,
    eps: f32, _pad0: u32, _pad1: u32, _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> dist: array<f32>;

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i0 = gid.y * 4u;
    let j0 = gid.x * 4u;
    if (i0 >= p.rows_a || j0 >= p.rows_b) {
        return;
    }
    // Rows past the end read the last row (valid memory) and are not written.
    var ra: vec4<u32>;
    var rb: vec4<u32>;
    for (var r = 0u; r < 4u; r++) {
        ra[r] = min(i0 + r, p.rows_a - 1u) * p.dim;
        rb[r] = min(j0 + r, p.rows_b - 1u) * p.dim;
    }
    var acc: array<vec4<f32>, 4>;
    for (var c = 0u; c < p.dim; c++) {
        let bv = vec4<f32>(b[rb.x + c], b[rb.y + c], b[rb.z + c], b[rb.w + c]);
        for (var r = 0u; r < 4u; r++) {
            let diff = vec4<f32>(a[ra[r] + c]) - bv;
            acc[r] = fma(diff, diff, acc[r]);
        }
    }
    for (var r = 0u; r < 4u; r++) {
        let i = i0 + r;
        if (i < p.rows_a) {
            let v = select(sqrt(acc[r] + vec4<f32>(p.eps)), acc[r], p.squared == 1u);
            for (var s = 0u; s < 4u; s++) {
                if (j0 + s < p.rows_b) {
                    dist[i * p.rows_b + j0 + s] = v[s];
                }
            }
        }
    }
}
