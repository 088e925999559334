//! FlowNet's multiscale endpoint-error loss: area pooling of the target (`shaders/adaptive_avg_pool.wgsl`),
//! the per-scale EPE and its gradient (`shaders/epe_loss.wgsl`), and a sum reduction
//! (`shaders/reduce_sum.wgsl`); CPU references in `crate::reference::loss`.

use super::{grid_1d, u32_of};
use crate::error::{Error, Result};
use crate::runtime::{gpu_params, Kernel, Recorder, Tensor};

gpu_params! {
    pub struct PoolParams {
        pub batch: u32,
        pub channels: u32,
        pub in_h: u32,
        pub in_w: u32,
        pub out_h: u32,
        pub out_w: u32,
        pub value_scale: f32,
        pub _pad0: u32,
    }
}

/// `dst = value_scale * adaptive_avg_pool2d(src, dst's size)`.
pub fn adaptive_avg_pool(rec: &mut Recorder<'_>, src: &Tensor, dst: &Tensor, value_scale: f32) -> Result<()> {
    let op = "adaptive_avg_pool";
    let [n, c, ih, iw] = src.shape();
    let [dn, dc, oh, ow] = dst.shape();
    if (n, c) != (dn, dc) || oh == 0 || ow == 0 || oh > ih || ow > iw {
        return Err(Error::Shape { op, message: format!("cannot pool {:?} to {:?}", src.shape(), dst.shape()) });
    }
    let params = PoolParams {
        batch: u32_of(op, "batch", n)?,
        channels: u32_of(op, "channels", c)?,
        in_h: u32_of(op, "in_h", ih)?,
        in_w: u32_of(op, "in_w", iw)?,
        out_h: oh as u32,
        out_w: ow as u32,
        value_scale,
        _pad0: 0,
    };
    let groups = grid_1d(rec, dst.numel(), 256);
    rec.dispatch(Kernel::AdaptiveAvgPool, &[], &params, &[src.buffer(), dst.buffer()], groups)
}

gpu_params! {
    pub struct EpeParams {
        pub batch: u32,
        pub h: u32,
        pub w: u32,
        pub scale: f32,
    }
}

/// One scale of the EPE loss: `terms` gets `scale * ||pred - target||` per pixel ([N h w] values) and
/// `grad_pred` (overwritten) its gradient.
pub fn epe_loss(
    rec: &mut Recorder<'_>,
    pred: &Tensor,
    target: &Tensor,
    scale: f32,
    grad_pred: &Tensor,
    terms: &Tensor,
) -> Result<()> {
    let op = "epe_loss";
    let [n, c, h, w] = pred.shape();
    if c != 2 || target.shape() != pred.shape() || grad_pred.shape() != pred.shape() || terms.numel() != n * h * w {
        return Err(Error::Shape {
            op,
            message: format!(
                "pred {:?}, target {:?}, grad {:?}, terms {:?}: need [N, 2, h, w] x3 and N*h*w terms",
                pred.shape(),
                target.shape(),
                grad_pred.shape(),
                terms.shape()
            ),
        });
    }
    let params = EpeParams { batch: u32_of(op, "batch", n)?, h: h as u32, w: w as u32, scale };
    let groups = grid_1d(rec, n * h * w, 256);
    rec.dispatch(
        Kernel::EpeLoss,
        &[],
        &params,
        &[pred.buffer(), target.buffer(), grad_pred.buffer(), terms.buffer()],
        groups,
    )
}

gpu_params! {
    pub struct ReduceParams {
        pub len: u32,
        pub out_index: u32,
        pub _pad0: u32,
        pub _pad1: u32,
    }
}

/// `out[out_index] = sum(data)`.
pub fn reduce_sum(rec: &mut Recorder<'_>, data: &Tensor, out: &Tensor, out_index: usize) -> Result<()> {
    let op = "reduce_sum";
    if out_index >= out.numel() {
        return Err(Error::Shape {
            op,
            message: format!("index {out_index} outside an output of {} values", out.numel()),
        });
    }
    let params =
        ReduceParams { len: u32_of(op, "len", data.numel())?, out_index: out_index as u32, _pad0: 0, _pad1: 0 };
    rec.dispatch(Kernel::ReduceSum, &[], &params, &[data.buffer(), out.buffer()], [1, 1, 1])
}

/// FlowNet's multiscale weights for flow2 .. flow6 (Caffe original).
pub const MULTISCALE_WEIGHTS: [f32; 5] = [0.005, 0.01, 0.02, 0.08, 0.32];
