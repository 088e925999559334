//! The Adam optimiser step (`shaders/adam.wgsl`); CPU reference in `crate::reference::optim`.

use super::{grid_1d, u32_of};
use crate::error::{Error, Result};
pub use crate::reference::optim::AdamConfig;
use crate::runtime::{gpu_params, Context, Kernel, Recorder, Tensor};

gpu_params! {
    /// The WGSL `Params` twin: the per-tensor constants of a step.
    pub struct AdamParams {
        pub len: u32,
        pub beta1: f32,
        pub beta2: f32,
        pub eps: f32,
        pub weight_decay: f32,
        pub _pad0: u32,
        pub _pad1: u32,
        pub _pad2: u32,
    }
}

/// The values that change from step to step, in the 4-float GPU buffer every Adam dispatch reads:
/// [lr, 1 - beta1^step, sqrt(1 - beta2^step), 0], computed in f64.
pub fn step_values(cfg: &AdamConfig, step: u64, lr: f32) -> Result<[f32; 4]> {
    if step == 0 {
        return Err(Error::InvalidParam { op: "adam", message: "steps count from 1".into() });
    }
    let t = step.min(i32::MAX as u64) as i32;
    Ok([lr, (1.0 - (cfg.beta1 as f64).powi(t)) as f32, (1.0 - (cfg.beta2 as f64).powi(t)).sqrt() as f32, 0.0])
}

/// Adam's shared per-step buffer.
pub struct AdamStepBuffer(Tensor);

impl AdamStepBuffer {
    pub fn new(ctx: &Context) -> Result<Self> {
        Ok(AdamStepBuffer(ctx.tensor("adam step values", [1, 1, 1, 4])?))
    }
    /// Sets the values for step `step` (1-based) at learning rate `lr`; takes effect at the next submit.
    pub fn set(&self, ctx: &Context, cfg: &AdamConfig, step: u64, lr: f32) -> Result<()> {
        ctx.write(&self.0, &step_values(cfg, step, lr)?)
    }
}

/// Records one Adam step on `param` in place, with moments `m`, `v` (same length, zero before step 1);
/// the step's lr and bias corrections are read from `step` when the work runs.
pub fn adam_step(
    rec: &mut Recorder<'_>,
    param: &Tensor,
    grad: &Tensor,
    m: &Tensor,
    v: &Tensor,
    cfg: &AdamConfig,
    step: &AdamStepBuffer,
) -> Result<()> {
    let n = param.numel();
    if grad.numel() != n || m.numel() != n || v.numel() != n {
        return Err(Error::Shape {
            op: "adam",
            message: format!("param {n}, grad {}, m {}, v {} values must agree", grad.numel(), m.numel(), v.numel()),
        });
    }
    let params = AdamParams {
        len: u32_of("adam", "len", n)?,
        beta1: cfg.beta1,
        beta2: cfg.beta2,
        eps: cfg.eps,
        weight_decay: cfg.weight_decay,
        ..Default::default()
    };
    let groups = grid_1d(rec, n, 256);
    rec.dispatch(
        Kernel::Adam,
        &[],
        &params,
        &[param.buffer(), grad.buffer(), m.buffer(), v.buffer(), step.0.buffer()],
        groups,
    )
}
