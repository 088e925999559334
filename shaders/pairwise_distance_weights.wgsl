// pairwise_distance_weights: the per-pair weights of the distance-matrix gradient, once for both sides:
//   w[e] = grad[e] / dist[e]  (Euclidean; 0 where dist == 0),   w[e] = 2 grad[e]  (squared),
// so that dA_i = sum_j w_ij (a_i - b_j) and dB_j = sum_i w_ij (b_j - a_i) (pairwise_distance_backward.wgsl
// reads w instead of recomputing the division for every channel quad). Elementwise over [rows_a, rows_b].

struct Params {
    len: u32, squared: u32, _pad0: u32, _pad1: u32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dist: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> w: array<f32>;

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = gid.x + gid.y * nwg.x * WG;
    if (e >= p.len) {
        return;
    }
    let g = grad[e];
    let d = dist[e];
    w[e] = select(select(0.0, g / d, d > 0.0), 2.0 * g, p.squared == 1u);
}
