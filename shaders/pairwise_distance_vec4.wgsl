// pairwise_distance_vec4: pairwise_distance.wgsl (same definition, parameters and layout) for dim a
// multiple of 4: rows are read as vec4, so per 4 channels an invocation makes 8 loads for its 4 x 4 block
// instead of 32 (storage loads are the expensive part on llvmpipe). The host picks it when dim % 4 == 0.
//   a [rows_a, dim], b [rows_b, dim] as vec4s; dist [rows_a, rows_b].
//   Dispatch: (ceil(rows_b / 32), ceil(rows_a / 32), 1).

struct Params {
    rows_a: u32, rows_b: u32, dim: u32, squared: u32,
    eps: f32, _pad0: u32, _pad1: u32, _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> dist: array<f32>;

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i0 = gid.y * 4u;
    let j0 = gid.x * 4u;
    if (i0 >= p.rows_a || j0 >= p.rows_b) {
        return;
    }
    let dim4 = p.dim / 4u;
    // Rows past the end read the last row (valid memory) and are not written.
    var ra: vec4<u32>;
    var rb: vec4<u32>;
    for (var r = 0u; r < 4u; r++) {
        ra[r] = min(i0 + r, p.rows_a - 1u) * dim4;
        rb[r] = min(j0 + r, p.rows_b - 1u) * dim4;
    }
    var acc: array<vec4<f32>, 4>;
    for (var k = 0u; k < dim4; k++) {
        let b0 = b[rb.x + k];
        let b1 = b[rb.y + k];
        let b2 = b[rb.z + k];
        let b3 = b[rb.w + k];
        for (var r = 0u; r < 4u; r++) {
            let av = a[ra[r] + k];
            let d0 = av - b0;
            let d1 = av - b1;
            let d2 = av - b2;
            let d3 = av - b3;
            acc[r] += vec4<f32>(dot(d0, d0), dot(d1, d1), dot(d2, d2), dot(d3, d3));
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
