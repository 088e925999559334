// triplet_loss: the terms of the triplet loss (Weinberger & Saul 2009; FaceNet) on a distance matrix:
//   terms[t] = scale / triplets * max(0, margin + dist[pos_t] - dist[neg_t])
// for triplets t = (pos_row, pos_col, neg_row, neg_col), cells of dist [rows, cols]. A triplet with a cell
// out of range (NO_INDEX = 0xffffffff included) gets 0 and still counts in `triplets`. The loss is
// sum_t terms[t] (reduce_sum); the gradient is triplet_loss_backward.wgsl. One invocation per triplet.

struct Params {
    rows: u32, cols: u32, triplets: u32, margin: f32,
    scale: f32, accumulate: u32, _pad0: u32, _pad1: u32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dist: array<f32>;
@group(0) @binding(2) var<storage, read> triplets: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read_write> terms: array<f32>;

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = gid.x + gid.y * nwg.x * WG;
    if (t >= p.triplets) {
        return;
    }
    let c = triplets[t];
    var h = 0.0;
    if (c.x < p.rows && c.y < p.cols && c.z < p.rows && c.w < p.cols) {
        h = max(p.margin + dist[c.x * p.cols + c.y] - dist[c.z * p.cols + c.w], 0.0);
    }
    terms[t] = p.scale / f32(p.triplets) * h;
}
