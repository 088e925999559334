// triplet_loss_backward: dL/ddist of the triplet loss (triplet_loss.wgsl), as a gather: each invocation
// owns one row i of the gradient and walks all triplets, adding +scale/T at (i, pos_col) for every active
// triplet (margin + d_pos - d_neg > 0) whose positive cell is in row i, and -scale/T at (i, neg_col) for
// every active triplet whose negative cell is in row i. Work: rows * triplets tests, no atomics.
// Gradient convention: `=` (the row is zeroed first) when accumulate == 0, `+=` when accumulate == 1.
//   dist, grad [rows, cols]; triplets [triplets] of (pos_row, pos_col, neg_row, neg_col).

struct Params {
    rows: u32, cols: u32, triplets: u32, margin: f32,
    scale: f32, accumulate: u32, _pad0: u32, _pad1: u32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dist: array<f32>;
@group(0) @binding(2) var<storage, read> triplets: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read_write> grad: array<f32>;

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.rows) {
        return;
    }
    if (p.accumulate == 0u) {
        for (var j = 0u; j < p.cols; j++) {
            grad[i * p.cols + j] = 0.0;
        }
    }
    let s = p.scale / f32(p.triplets);
    for (var t = 0u; t < p.triplets; t++) {
        let c = triplets[t];
        if ((c.x != i && c.z != i) || c.x >= p.rows || c.y >= p.cols || c.z >= p.rows || c.w >= p.cols) {
            continue;
        }
        if (p.margin + dist[c.x * p.cols + c.y] - dist[c.z * p.cols + c.w] > 0.0) {
            if (c.x == i) {
                grad[i * p.cols + c.y] += s;
            }
            if (c.z == i) {
                grad[i * p.cols + c.w] -= s;
            }
        }
    }
}
