//! LeakyReLU (`shaders/leaky_relu.wgsl`) and crop / channel-slice copy (`shaders/crop.wgsl`); CPU references
//! in `crate::reference::elementwise`.

use super::{grid_1d, u32_of, Slice};
use crate::error::{Error, Result};
use crate::runtime::{gpu_params, Kernel, Recorder, Tensor};

gpu_params! {
    pub struct LeakyReluParams {
        pub len: u32,
        pub slope: f32,
        pub _pad0: u32,
        pub _pad1: u32,
    }
}

/// In-place LeakyReLU over a whole tensor.
pub fn leaky_relu(rec: &mut Recorder<'_>, t: &Tensor, slope: f32) -> Result<()> {
    let params = LeakyReluParams { len: u32_of("leaky_relu", "len", t.numel())?, slope, _pad0: 0, _pad1: 0 };
    let groups = grid_1d(rec, t.numel(), 256);
    rec.dispatch(Kernel::LeakyRelu, &[], &params, &[t.buffer()], groups)
}

gpu_params! {
    pub struct LeakyReluBackwardParams {
        pub batch: u32,
        pub channels: u32,
        pub c_offset: u32,
        pub c_total: u32,
        pub plane: u32,
        pub slope: f32,
        pub _pad0: u32,
        pub _pad1: u32,
    }
}

/// In place on the channel slice `grad`: multiplies by the LeakyReLU derivative read off the forward
/// output `out` (the same channels of a tensor shaped like `grad`'s).
pub fn leaky_relu_backward(rec: &mut Recorder<'_>, out: &Tensor, grad: Slice<'_>, slope: f32) -> Result<()> {
    let op = "leaky_relu_backward";
    if out.shape() != grad.tensor.shape() {
        return Err(Error::Shape {
            op,
            message: format!("output {:?} and gradient {:?} differ", out.shape(), grad.tensor.shape()),
        });
    }
    let plane = grad.height() * grad.width();
    let params = LeakyReluBackwardParams {
        batch: u32_of(op, "batch", grad.batch())?,
        channels: u32_of(op, "channels", grad.channels)?,
        c_offset: u32_of(op, "c_offset", grad.c_offset)?,
        c_total: u32_of(op, "c_total", grad.total_channels())?,
        plane: u32_of(op, "plane", plane)?,
        slope,
        _pad0: 0,
        _pad1: 0,
    };
    let total = grad.batch() * grad.channels * plane;
    u32_of(op, "elements", total)?;
    let groups = grid_1d(rec, total, 256);
    rec.dispatch(Kernel::LeakyReluBackward, &[], &params, &[out.buffer(), grad.tensor.buffer()], groups)
}

gpu_params! {
    pub struct CropParams {
        pub batch: u32,
        pub channels: u32,
        pub src_c_offset: u32,
        pub src_c_total: u32,
        pub src_h: u32,
        pub src_w: u32,
        pub y0: u32,
        pub x0: u32,
        pub out_h: u32,
        pub out_w: u32,
        pub dst_c_offset: u32,
        pub dst_c_total: u32,
    }
}

/// Copies the window of `src` starting at (y0, x0) with `dst`'s height and width into the channel slice
/// `dst`. FlowNet's `crop_like(x, ref)` is `y0 = x0 = 0`; with the whole window it is a concatenation step.
pub fn crop(rec: &mut Recorder<'_>, src: Slice<'_>, y0: usize, x0: usize, dst: Slice<'_>) -> Result<()> {
    let op = "crop";
    if src.channels != dst.channels || src.batch() != dst.batch() {
        return Err(Error::Shape {
            op,
            message: format!(
                "source has batch {} x {} channels, destination {} x {}",
                src.batch(),
                src.channels,
                dst.batch(),
                dst.channels
            ),
        });
    }
    if y0 + dst.height() > src.height() || x0 + dst.width() > src.width() {
        return Err(Error::Shape {
            op,
            message: format!(
                "window {}x{} at ({y0}, {x0}) does not fit a {}x{} source",
                dst.height(),
                dst.width(),
                src.height(),
                src.width()
            ),
        });
    }
    let params = CropParams {
        batch: u32_of(op, "batch", src.batch())?,
        channels: u32_of(op, "channels", src.channels)?,
        src_c_offset: u32_of(op, "src_c_offset", src.c_offset)?,
        src_c_total: u32_of(op, "src_c_total", src.total_channels())?,
        src_h: u32_of(op, "src_h", src.height())?,
        src_w: u32_of(op, "src_w", src.width())?,
        y0: u32_of(op, "y0", y0)?,
        x0: u32_of(op, "x0", x0)?,
        out_h: u32_of(op, "out_h", dst.height())?,
        out_w: u32_of(op, "out_w", dst.width())?,
        dst_c_offset: u32_of(op, "dst_c_offset", dst.c_offset)?,
        dst_c_total: u32_of(op, "dst_c_total", dst.total_channels())?,
    };
    let total = dst.batch() * dst.channels * dst.height() * dst.width();
    u32_of(op, "elements", total)?;
    let groups = grid_1d(rec, total, 256);
    rec.dispatch(Kernel::Crop, &[], &params, &[src.tensor.buffer(), dst.tensor.buffer()], groups)
}
