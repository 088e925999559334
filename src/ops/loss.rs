//! FlowNet's multiscale endpoint-error loss: area pooling of the target (`shaders/adaptive_avg_pool.wgsl`),
//! the per-scale EPE and its gradient (`shaders/epe_loss.wgsl`), and a sum reduction
//! (`shaders/reduce_sum.wgsl`); CPU references beside them.

use super::{grid_1d, u32_of};
use crate::error::{Error, Result};
use crate::runtime::{HostTensor, Kernel, Recorder, Tensor};

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
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

/// CPU reference of [`adaptive_avg_pool`] (f64 sums).
pub fn adaptive_avg_pool_cpu(src: &HostTensor, out_h: usize, out_w: usize, value_scale: f32) -> HostTensor {
    let [n, c, ih, iw] = src.shape;
    let mut out = HostTensor::zeros([n, c, out_h, out_w]);
    for b in 0..n {
        for ch in 0..c {
            for yo in 0..out_h {
                let (y0, y1) = (yo * ih / out_h, ((yo + 1) * ih).div_ceil(out_h));
                for xo in 0..out_w {
                    let (x0, x1) = (xo * iw / out_w, ((xo + 1) * iw).div_ceil(out_w));
                    let mut s = 0.0f64;
                    for y in y0..y1 {
                        for x in x0..x1 {
                            s += src.at(b, ch, y, x) as f64;
                        }
                    }
                    let i = out.idx(b, ch, yo, xo);
                    out.data[i] = (value_scale as f64 * s / ((y1 - y0) * (x1 - x0)) as f64) as f32;
                }
            }
        }
    }
    out
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct EpeParams {
    pub batch: u32,
    pub h: u32,
    pub w: u32,
    pub scale: f32,
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

/// CPU reference of [`epe_loss`] in f64: (loss, gradient).
pub fn epe_loss_cpu(pred: &HostTensor, target: &HostTensor, scale: f64) -> (f64, HostTensor) {
    let [n, _, h, w] = pred.shape;
    let mut grad = HostTensor::zeros(pred.shape);
    let mut loss = 0.0;
    for b in 0..n {
        for y in 0..h {
            for x in 0..w {
                let du = pred.at(b, 0, y, x) as f64 - target.at(b, 0, y, x) as f64;
                let dv = pred.at(b, 1, y, x) as f64 - target.at(b, 1, y, x) as f64;
                let norm = (du * du + dv * dv).sqrt();
                loss += scale * norm;
                let inv = if norm > 0.0 { scale / norm } else { 0.0 };
                let (iu, iv) = (grad.idx(b, 0, y, x), grad.idx(b, 1, y, x));
                grad.data[iu] = (du * inv) as f32;
                grad.data[iv] = (dv * inv) as f32;
            }
        }
    }
    (loss, grad)
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ReduceParams {
    pub len: u32,
    pub out_index: u32,
    pub _pad0: u32,
    pub _pad1: u32,
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
