//! Bilinear resize, align_corners = false (`shaders/resize_bilinear.wgsl`); CPU reference in
//! `crate::reference::resize`.

use super::{grid_1d, u32_of};
use crate::error::{Error, Result};
use crate::runtime::{gpu_params, Kernel, Recorder, Tensor};

gpu_params! {
    pub struct ResizeParams {
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

/// Resizes `src` to `dst`'s height and width and multiplies every value by `value_scale`.
pub fn resize_bilinear(rec: &mut Recorder<'_>, src: &Tensor, dst: &Tensor, value_scale: f32) -> Result<()> {
    let op = "resize_bilinear";
    let [n, c, ih, iw] = src.shape();
    let [dn, dc, oh, ow] = dst.shape();
    if (n, c) != (dn, dc) {
        return Err(Error::Shape {
            op,
            message: format!("source {:?} and destination {:?} differ in batch or channels", src.shape(), dst.shape()),
        });
    }
    if ih == 0 || iw == 0 {
        return Err(Error::Shape { op, message: format!("empty source {:?}", src.shape()) });
    }
    let params = ResizeParams {
        batch: u32_of(op, "batch", n)?,
        channels: u32_of(op, "channels", c)?,
        in_h: u32_of(op, "in_h", ih)?,
        in_w: u32_of(op, "in_w", iw)?,
        out_h: u32_of(op, "out_h", oh)?,
        out_w: u32_of(op, "out_w", ow)?,
        value_scale,
        _pad0: 0,
    };
    u32_of(op, "elements", dst.numel())?;
    let groups = grid_1d(rec, dst.numel(), 256);
    rec.dispatch(Kernel::ResizeBilinear, &[], &params, &[src.buffer(), dst.buffer()], groups)
}
