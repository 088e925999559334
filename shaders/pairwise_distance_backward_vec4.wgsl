// pairwise_distance_backward_vec4: pairwise_distance_backward.wgsl (same definition, parameters, gradient
// convention and invocation layout) for dim a multiple of 4: an invocation's channel quad is one vec4, so
// per other row it makes 4 weight loads and 1 vector load of y for its 16 products (instead of 8 loads).
// The host picks it when dim % 4 == 0.
// Gradient convention: `=` (dX overwritten) when accumulate == 0, `+=` when accumulate == 1.
//   x [rows, dim], y [others, dim] as vec4s; w [rows_a, rows_b]; dx [rows, dim] as vec4s.

struct Params {
    rows: u32, others: u32, dim: u32, w_row_stride: u32,
    w_other_stride: u32, accumulate: u32, _pad0: u32, _pad1: u32,
}

override WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> y: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> w: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<vec4<f32>>;

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let quads = p.dim / 4u;
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= ((p.rows + 3u) / 4u) * quads) {
        return;
    }
    let r0 = (i / quads) * 4u;
    let q = i % quads;
    // Rows past the end read the last one (valid memory) and are not written.
    var rows: vec4<u32>;
    for (var s = 0u; s < 4u; s++) {
        rows[s] = min(r0 + s, p.rows - 1u);
    }
    var xv: array<vec4<f32>, 4>;
    var acc: array<vec4<f32>, 4>;
    for (var r = 0u; r < 4u; r++) {
        xv[r] = x[rows[r] * quads + q];
        acc[r] = vec4<f32>(0.0);
    }
    let e_rows = rows * p.w_row_stride;
    for (var o = 0u; o < p.others; o++) {
        let yv = y[o * quads + q];
        let eo = o * p.w_other_stride;
        for (var r = 0u; r < 4u; r++) {
            acc[r] = fma(vec4<f32>(w[e_rows[r] + eo]), xv[r] - yv, acc[r]);
        }
    }
    for (var r = 0u; r < 4u; r++) {
        if (r0 + r >= p.rows) {
            break;
        }
        let j = (r0 + r) * quads + q;
        dx[j] = select(acc[r], dx[j] + acc[r], p.accumulate == 1u);
    }
}
