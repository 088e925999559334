//! The Adam optimiser step (`shaders/adam.wgsl`) with its CPU reference.

use super::{grid_1d, u32_of};
use crate::error::{Error, Result};
use crate::runtime::{Kernel, Recorder, Tensor};

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

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct AdamParams {
    pub len: u32,
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    pub bias_correction1: f32,
    pub bias_correction2_sqrt: f32,
}

impl AdamParams {
    /// Parameters of step `step` (1-based) for `len` values, with the bias corrections computed in f64.
    pub fn new(cfg: &AdamConfig, step: u64, len: usize, lr: f32) -> Result<Self> {
        if step == 0 {
            return Err(Error::InvalidParam { op: "adam", message: "steps count from 1".into() });
        }
        let t = step.min(i32::MAX as u64) as i32;
        Ok(AdamParams {
            len: u32_of("adam", "len", len)?,
            lr,
            beta1: cfg.beta1,
            beta2: cfg.beta2,
            eps: cfg.eps,
            weight_decay: cfg.weight_decay,
            bias_correction1: (1.0 - (cfg.beta1 as f64).powi(t)) as f32,
            bias_correction2_sqrt: (1.0 - (cfg.beta2 as f64).powi(t)).sqrt() as f32,
        })
    }
}

/// One Adam step on `param` in place, with moments `m`, `v` (same length, zero before step 1).
pub fn adam_step(rec: &mut Recorder<'_>, param: &Tensor, grad: &Tensor, m: &Tensor, v: &Tensor, params: &AdamParams) -> Result<()> {
    let n = param.numel();
    if grad.numel() != n || m.numel() != n || v.numel() != n || params.len as usize != n {
        return Err(Error::Shape { op: "adam", message: format!("param {n}, grad {}, m {}, v {} values must agree", grad.numel(), m.numel(), v.numel()) });
    }
    let groups = grid_1d(rec, n, 256);
    rec.dispatch(Kernel::Adam, &[], params, &[param.buffer(), grad.buffer(), m.buffer(), v.buffer()], groups)
}

/// CPU reference of one Adam step (f64 arithmetic), updating `param`, `m`, `v` in place.
pub fn adam_step_cpu(param: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32], cfg: &AdamConfig, step: u64, lr: f32) {
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
