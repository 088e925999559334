// adam: one Adam step (Kingma & Ba 2015), exactly PyTorch's torch.optim.Adam (amsgrad = False) with L2
// weight decay added to the gradient:
//   g = grad + weight_decay * param
//   m = beta1 m + (1 - beta1) g;   v = beta2 v + (1 - beta2) g^2
//   param -= (lr / bias_correction1) * m / (sqrt(v) / sqrt(bias_correction2) + eps)
// with bias_correction_k = 1 - beta_k^step. The values that change every step (lr and the two bias
// corrections) come from the small storage buffer `step_values` = [lr, bias_correction1,
// sqrt(bias_correction2), 0], written once per step, so a recorded training program can be replayed
// unchanged. Elementwise: any layout works as long as param, grad, m and v share it.

struct Params {
    len: u32, beta1: f32, beta2: f32, eps: f32,
    weight_decay: f32, _pad0: u32, _pad1: u32, _pad2: u32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;
@group(0) @binding(5) var<storage, read> step_values: array<f32, 4>;

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.len) {
        return;
    }
    let lr = step_values[0];
    let bias_correction1 = step_values[1];
    let bias_correction2_sqrt = step_values[2];
    let g = grad[i] + p.weight_decay * param[i];
    let mi = p.beta1 * m[i] + (1.0 - p.beta1) * g;
    let vi = p.beta2 * v[i] + (1.0 - p.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    let denom = sqrt(vi) / bias_correction2_sqrt + p.eps;
    param[i] = param[i] - (lr / bias_correction1) * mi / denom;
}
