// pairwise_distance_backward: the gradient of the distance matrix w.r.t. the rows of one side, as a
// gather. For the side X (A or B) against the other side Y, with the pair weights w of
// pairwise_distance_weights.wgsl (G / dist, or 2 G for squared distances):
//   dX[r, c] = sum_o w(r, o) (x_rc - y_oc).
// The matrix entry of (r, o) is at r * w_row_stride + o * w_other_stride: (K, 1) for A (r = i, o = j),
// (1, K) for B (r = j, o = i).
// Each invocation owns a block of 4 rows x 4 channels: per other row it reads 4 weights and the 4 channels
// of y once, for 16 products; it sums w (x - y) directly (no x sum(w) - sum(w y) cancellation).
// Gradient convention: `=` (dX overwritten) when accumulate == 0, `+=` when accumulate == 1 (A and B the
// same tensor: the second side adds to the first).
//   x [rows, dim], y [others, dim], w [rows_a, rows_b], dx [rows, dim].
// Invocation i: channel quad i % ceil(dim / 4), row block i / ceil(dim / 4).

struct Params {
    rows: u32, others: u32, dim: u32, w_row_stride: u32,
    w_other_stride: u32, accumulate: u32, _pad0: u32, _pad1: u32,
}

override WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read> w: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let quads = (p.dim + 3u) / 4u;
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= ((p.rows + 3u) / 4u) * quads) {
        return;
    }
    let r0 = (i / quads) * 4u;
    let c0 = (i % quads) * 4u;
    // Rows and channels past the end read the last one (valid memory) and are not written.
    var cols: vec4<u32>;
    var rows: vec4<u32>;
    for (var s = 0u; s < 4u; s++) {
        cols[s] = min(c0 + s, p.dim - 1u);
        rows[s] = min(r0 + s, p.rows - 1u);
    }
    var xv: array<vec4<f32>, 4>;
    var acc: array<vec4<f32>, 4>;
    for (var r = 0u; r < 4u; r++) {
        let b = rows[r] * p.dim;
        xv[r] = vec4<f32>(x[b + cols.x], x[b + cols.y], x[b + cols.z], x[b + cols.w]);
        acc[r] = vec4<f32>(0.0);
    }
    let e_rows = rows * p.w_row_stride;
    for (var o = 0u; o < p.others; o++) {
        let yb = o * p.dim;
        let yv = vec4<f32>(y[yb + cols.x], y[yb + cols.y], y[yb + cols.z], y[yb + cols.w]);
        let eo = o * p.w_other_stride;
        for (var r = 0u; r < 4u; r++) {
            acc[r] = fma(vec4<f32>(w[e_rows[r] + eo]), xv[r] - yv, acc[r]);
        }
    }
    for (var r = 0u; r < 4u; r++) {
        if (r0 + r >= p.rows) {
            break;
        }
        for (var s = 0u; s < 4u; s++) {
            if (c0 + s >= p.dim) {
                break;
            }
            let j = (r0 + r) * p.dim + c0 + s;
            dx[j] = select(acc[r][s], dx[j] + acc[r][s], p.accumulate == 1u);
        }
    }
}
