// epe_loss: the endpoint-error loss of one scale and its gradient, for FlowNet's multiscale loss:
//   loss  = scale * sum_{n, y, x} || pred[n, :, y, x] - target[n, :, y, x] ||_2   (scale = weight / N)
//   grad_pred[n, :, y, x] = scale * (pred - target) / ||pred - target||   (0 where the error is exactly 0)
// Gradient convention: `=` (grad_pred is overwritten). The per-pixel terms go to `terms` ([N h w]) and are
// summed by reduce_sum; pred, target, grad_pred are [N, 2, h, w].

struct Params {
    batch: u32, h: u32, w: u32, scale: f32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> pred: array<f32>;
@group(0) @binding(2) var<storage, read> truth: array<f32>;
@group(0) @binding(3) var<storage, read_write> grad_pred: array<f32>;
@group(0) @binding(4) var<storage, read_write> terms: array<f32>;

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    let plane = p.h * p.w;
    if (i >= p.batch * plane) {
        return;
    }
    let n = i / plane;
    let pix = i % plane;
    let iu = (n * 2u) * plane + pix;
    let iv = iu + plane;
    let du = pred[iu] - truth[iu];
    let dv = pred[iv] - truth[iv];
    let norm = sqrt(du * du + dv * dv);
    terms[i] = p.scale * norm;
    let inv = select(0.0, p.scale / norm, norm > 0.0);
    grad_pred[iu] = du * inv;
    grad_pred[iv] = dv * inv;
}
