//! Bilinear resampling: resize, align_corners = false (`shaders/resize_bilinear.wgsl`), and backward warping
//! of an image by a flow field (`shaders/warp_bilinear.wgsl`); CPU references in `crate::reference::resize`.

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
        pub value_scale_odd: f32,
        pub accumulate: u32,
        pub _pad0: u32,
        pub _pad1: u32,
        pub _pad2: u32,
    }
}

/// Resizes `src` to `dst`'s height and width and multiplies every value by `value_scale`.
pub fn resize_bilinear(rec: &mut Recorder<'_>, src: &Tensor, dst: &Tensor, value_scale: f32) -> Result<()> {
    resize_bilinear_into(rec, src, dst, (value_scale, value_scale), false)
}

/// [`resize_bilinear`] with `scale.0` on even channels and `scale.1` on odd ones (a flow field's u and v,
/// each converted to the new grid's pixels), adding to what `dst` holds when `accumulate`.
pub fn resize_bilinear_into(
    rec: &mut Recorder<'_>,
    src: &Tensor,
    dst: &Tensor,
    scale: (f32, f32),
    accumulate: bool,
) -> Result<()> {
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
        value_scale: scale.0,
        value_scale_odd: scale.1,
        accumulate: accumulate as u32,
        _pad0: 0,
        _pad1: 0,
        _pad2: 0,
    };
    u32_of(op, "elements", dst.numel())?;
    let groups = grid_1d(rec, dst.numel(), 256);
    rec.dispatch(Kernel::ResizeBilinear, &[], &params, &[src.buffer(), dst.buffer()], groups)
}

gpu_params! {
    pub struct WarpParams {
        pub batch: u32,
        pub channels: u32,
        pub height: u32,
        pub width: u32,
        pub scale_u: f32,
        pub scale_v: f32,
        pub _pad0: u32,
        pub _pad1: u32,
    }
}

/// Backward warp: `dst[n, c, y, x] = src[n, c]` sampled bilinearly at `(x + scale_u u, y + scale_v v)`, where
/// `(u, v) = flow[n, :, y, x]`; samples past the border take the nearest edge pixel (replicate padding).
/// `src` and `dst` are [N, C, H, W], `flow` [N, 2, H, W]. With the flow from A to B, the warped B lines up
/// with A wherever the flow is right (what a refinement pass estimates the remaining flow on). Inference
/// only: nothing trains through it, so it has no backward kernel.
pub fn warp_bilinear(
    rec: &mut Recorder<'_>,
    src: &Tensor,
    flow: &Tensor,
    dst: &Tensor,
    scale: (f32, f32),
) -> Result<()> {
    let op = "warp_bilinear";
    let [n, c, h, w] = src.shape();
    if dst.shape() != src.shape() || flow.shape() != [n, 2, h, w] {
        return Err(Error::Shape {
            op,
            message: format!(
                "image {:?}, flow {:?} and output {:?}: the flow must be [N, 2, H, W] and the output the image's shape",
                src.shape(),
                flow.shape(),
                dst.shape()
            ),
        });
    }
    if h == 0 || w == 0 {
        return Err(Error::Shape { op, message: format!("empty image {:?}", src.shape()) });
    }
    let params = WarpParams {
        batch: u32_of(op, "batch", n)?,
        channels: u32_of(op, "channels", c)?,
        height: u32_of(op, "height", h)?,
        width: u32_of(op, "width", w)?,
        scale_u: scale.0,
        scale_v: scale.1,
        _pad0: 0,
        _pad1: 0,
    };
    u32_of(op, "elements", src.numel())?;
    let groups = grid_1d(rec, n * h * w, 256);
    rec.dispatch(Kernel::WarpBilinear, &[], &params, &[src.buffer(), flow.buffer(), dst.buffer()], groups)
}
