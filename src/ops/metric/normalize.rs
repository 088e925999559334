//! L2 normalisation over the channel axis (`shaders/l2_normalize.wgsl`, `shaders/l2_normalize_backward.wgsl`),
//! for dense maps `[N, D, H, W]` and rows `[M, D, 1, 1]` alike; CPU reference in
//! `crate::reference::metric::normalize`.

use super::super::{grid_1d, u32_of};
use crate::error::{Error, Result};
use crate::runtime::{gpu_params, Kernel, Recorder, Tensor};

gpu_params! {
    /// The WGSL `Params` twin of both kernels.
    pub struct L2NormalizeParams {
        pub batch: u32,
        pub dim: u32,
        pub plane: u32,
        /// Added to the squared norm ([`super::L2_NORM_EPS`] by default).
        pub eps: f32,
    }
}

fn params(op: &'static str, x: &Tensor, eps: f32) -> Result<L2NormalizeParams> {
    let [n, d, h, w] = x.shape();
    if d == 0 {
        return Err(Error::Shape { op, message: format!("input {:?} has no channels to normalise over", x.shape()) });
    }
    if !(eps.is_finite() && eps >= 0.0) {
        return Err(Error::InvalidParam { op, message: format!("eps = {eps}: need a finite value >= 0") });
    }
    u32_of(op, "elements", x.numel())?;
    Ok(L2NormalizeParams { batch: u32_of(op, "batch", n)?, dim: d as u32, plane: u32_of(op, "plane", h * w)?, eps })
}

/// `y = x / sqrt(|x|^2 + eps)` over channels at every pixel of `x` (`[N, D, H, W]`; rows are `[M, D, 1, 1]`).
/// `y` has `x`'s shape and is a different buffer.
pub fn l2_normalize(rec: &mut Recorder<'_>, x: &Tensor, y: &Tensor, eps: f32) -> Result<()> {
    let op = "l2_normalize";
    if y.shape() != x.shape() {
        return Err(Error::Shape { op, message: format!("input {:?} and output {:?} differ", x.shape(), y.shape()) });
    }
    let p = params(op, x, eps)?;
    let groups = grid_1d(rec, (p.batch * p.plane) as usize, 256);
    rec.dispatch(Kernel::L2Normalize, &[], &p, &[x.buffer(), y.buffer()], groups)
}

/// The gradient of [`l2_normalize`]: `dx = (dy - y (y . dy)) / r` from the forward input `x` and `dy`
/// (exact for the epsilon convention). `dx` is overwritten.
pub fn l2_normalize_backward(rec: &mut Recorder<'_>, x: &Tensor, dy: &Tensor, dx: &Tensor, eps: f32) -> Result<()> {
    let op = "l2_normalize_backward";
    if dy.shape() != x.shape() || dx.shape() != x.shape() {
        return Err(Error::Shape {
            op,
            message: format!("input {:?}, dy {:?} and dx {:?} must share a shape", x.shape(), dy.shape(), dx.shape()),
        });
    }
    let p = params(op, x, eps)?;
    let groups = grid_1d(rec, (p.batch * p.plane) as usize, 256);
    rec.dispatch(Kernel::L2NormalizeBackward, &[], &p, &[x.buffer(), dy.buffer(), dx.buffer()], groups)
}
