// pairwise_distance_backward: the gradient of the distance matrix w.r.t. the rows of one side, as a
// gather. For the side X (A or B) against the other side Y, with G = dL/ddist and dist the forward output:
//   dX[r, c] = sum_o w(r, o) (x_rc - y_oc),   w = G / dist (Euclidean; 0 where dist == 0) or 2 G (squared).
// The matrix entry of (r, o) is at r * g_row_stride + o * g_other_stride: (K, 1) for A (r = i, o = j),
// (1, K) for B (r = j, o = i). Each invocation owns 4 consecutive channels of one row: per other row it
// reads one weight and 4 values of y, and sums w (x - y) directly (no x sum(w) - sum(w y) cancellation).
// Gradient convention: `=` (dX overwritten) when accumulate == 0, `+=` when accumulate == 1 (A and B the
// same tensor: the second side adds to the first).
//   x [rows, dim], y [others, dim], dist and grad [rows_a, rows_b], dx [rows, dim].

struct Params {
    rows: u32, others: u32, dim: u32, squared: u32,
    g_row_stride: u32, g_other_stride: u32, accumulate: u32, _pad0: u32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read> dist: array<f32>;
@group(0) @binding(4) var<storage, read> grad: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let quads = (p.dim + 3u) / 4u;
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.rows * quads) {
        return;
    }
    let r = i / quads;
    let c0 = (i % quads) * 4u;
    let n = min(4u, p.dim - c0);
    // Channels past the end read the last channel of the row (valid memory) and are not written.
    var cols: vec4<u32>;
    for (var s = 0u; s < 4u; s++) {
        cols[s] = min(c0 + s, p.dim - 1u);
    }
    let xb = r * p.dim;
    let xv = vec4<f32>(x[xb + cols.x], x[xb + cols.y], x[xb + cols.z], x[xb + cols.w]);
    var acc = vec4<f32>(0.0);
    for (var o = 0u; o < p.others; o++) {
        let e = r * p.g_row_stride + o * p.g_other_stride;
        let g = grad[e];
        let d = dist[e];
        let w = select(select(0.0, g / d, d > 0.0), 2.0 * g, p.squared == 1u);
        let yb = o * p.dim;
        let yv = vec4<f32>(y[yb + cols.x], y[yb + cols.y], y[yb + cols.z], y[yb + cols.w]);
        acc = fma(vec4<f32>(w), xv - yv, acc);
    }
    for (var s = 0u; s < n; s++) {
        let j = xb + c0 + s;
        dx[j] = select(acc[s], dx[j] + acc[s], p.accumulate == 1u);
    }
}
