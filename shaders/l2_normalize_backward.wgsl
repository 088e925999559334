// l2_normalize_backward: the gradient of y = x / r, r = sqrt(sum_c x_c^2 + eps) (see l2_normalize.wgsl):
//   dx = (dy - y (y . dy)) / r,   y = x / r,
// exact for this y (eps included). Computed from the forward input x (r is recomputed) and dy.
// Gradient convention: `=` (dx is overwritten).
//   x, dy, dx [batch, dim, plane]; one invocation per (n, pixel).

struct Params {
    batch: u32, dim: u32, plane: u32, eps: f32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.batch * p.plane) {
        return;
    }
    let base = (i / p.plane) * p.dim * p.plane + i % p.plane;
    var s = 0.0;
    var x_dot_dy = 0.0;
    for (var c = 0u; c < p.dim; c++) {
        let v = x[base + c * p.plane];
        s = fma(v, v, s);
        x_dot_dy = fma(v, dy[base + c * p.plane], x_dot_dy);
    }
    let r = sqrt(s + p.eps);
    let y_dot_dy = x_dot_dy / r;
    for (var c = 0u; c < p.dim; c++) {
        let j = base + c * p.plane;
        dx[j] = (dy[j] - (x[j] / r) * y_dot_dy) / r;
    }
}
