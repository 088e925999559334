// l2_normalize: y = x / r with r = sqrt(sum_c x_c^2 + eps), over the channel axis at every pixel.
//   x, y [batch, dim, plane] (a map [N, D, H, W] has plane = H W; rows [M, D] are [M, D, 1, 1], plane = 1).
// One invocation per (n, pixel): two passes over the channels (adjacent invocations read adjacent pixels).
// eps is added to the squared norm (see `reference::metric::normalize`): the backward formula
// dx = (dy - y (y . dy)) / r is then the exact gradient, also at tiny norms.

struct Params {
    batch: u32, dim: u32, plane: u32, eps: f32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.batch * p.plane) {
        return;
    }
    let base = (i / p.plane) * p.dim * p.plane + i % p.plane;
    var s = 0.0;
    for (var c = 0u; c < p.dim; c++) {
        let v = x[base + c * p.plane];
        s = fma(v, v, s);
    }
    let r = sqrt(s + p.eps);
    for (var c = 0u; c < p.dim; c++) {
        y[base + c * p.plane] = x[base + c * p.plane] / r;
    }
}
