//! CPU reference of the Adam step (`crate::ops::optim`), in f64.

/// Adam hyper-parameters (PyTorch defaults except the learning rate, which FlowNet sets to 1e-4).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig { lr: 1e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 }
    }
}

/// CPU reference of one Adam step (f64 arithmetic), updating `param`, `m`, `v` in place.
pub fn adam_step_cpu(
    param: &mut [f32],
    grad: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    cfg: &AdamConfig,
    step: u64,
    lr: f32,
) {
    let t = step as i32;
    let (b1, b2) = (cfg.beta1 as f64, cfg.beta2 as f64);
    let bc1 = 1.0 - b1.powi(t);
    let bc2 = 1.0 - b2.powi(t);
    for i in 0..param.len() {
        let g = grad[i] as f64 + cfg.weight_decay as f64 * param[i] as f64;
        let mi = b1 * m[i] as f64 + (1.0 - b1) * g;
        let vi = b2 * v[i] as f64 + (1.0 - b2) * g * g;
        m[i] = mi as f32;
        v[i] = vi as f32;
        param[i] = (param[i] as f64 - (lr as f64 / bc1) * mi / (vi.sqrt() / bc2.sqrt() + cfg.eps as f64)) as f32;
    }
}
