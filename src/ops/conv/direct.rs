//! The baseline convolution kernels (`shaders/conv2d_forward.wgsl`, `shaders/conv_transpose2d_forward.wgsl`):
//! 4 output channels x 4 pixels per invocation, transposed convolutions as a gather testing every tap.
//! [`super::ConvAlgo::Direct`] selects them, to measure the other kernels against.

use super::weights::ConvWeights;
use crate::error::Result;
use crate::ops::{u32_of, Slice};
use crate::reference::conv::ConvSpec;
use crate::runtime::{gpu_params, Kernel, Recorder};

gpu_params! {
    /// The WGSL `Params` twin shared by both conv kernels.
    pub struct ConvParams {
        pub batch: u32,
        pub cin: u32,
        pub in_h: u32,
        pub in_w: u32,
        pub in_c_offset: u32,
        pub in_c_total: u32,
        pub cout: u32,
        pub cout4: u32,
        pub out_h: u32,
        pub out_w: u32,
        pub out_c_offset: u32,
        pub out_c_total: u32,
        pub kh: u32,
        pub kw: u32,
        pub stride: u32,
        pub pad: u32,
        pub has_bias: u32,
        pub leaky: u32,
        pub slope: f32,
        pub _pad0: u32,
    }
}

/// The baseline kernels (shapes already checked by [`conv_forward`]).
pub(crate) fn record(
    rec: &mut Recorder<'_>,
    x: Slice<'_>,
    w: &ConvWeights,
    spec: ConvSpec,
    out: Slice<'_>,
) -> Result<()> {
    let op = if w.transposed { "conv_transpose2d" } else { "conv2d" };
    let (oh, ow) = (out.height(), out.width());
    let kernel = if w.transposed { Kernel::ConvTranspose2dForward } else { Kernel::Conv2dForward };
    let cout4 = w.cout.div_ceil(4);
    let params = ConvParams {
        batch: u32_of(op, "batch", x.batch())?,
        cin: u32_of(op, "cin", w.cin)?,
        in_h: u32_of(op, "in_h", x.height())?,
        in_w: u32_of(op, "in_w", x.width())?,
        in_c_offset: u32_of(op, "in_c_offset", x.c_offset)?,
        in_c_total: u32_of(op, "in_c_total", x.total_channels())?,
        cout: u32_of(op, "cout", w.cout)?,
        cout4: u32_of(op, "cout4", cout4)?,
        out_h: u32_of(op, "out_h", oh)?,
        out_w: u32_of(op, "out_w", ow)?,
        out_c_offset: u32_of(op, "out_c_offset", out.c_offset)?,
        out_c_total: u32_of(op, "out_c_total", out.total_channels())?,
        kh: w.kh as u32,
        kw: w.kw as u32,
        stride: u32_of(op, "stride", spec.stride)?,
        pad: u32_of(op, "pad", spec.pad)?,
        has_bias: w.has_bias() as u32,
        leaky: spec.leaky.is_some() as u32,
        slope: spec.leaky.unwrap_or(0.0),
        _pad0: 0,
    };
    const WG_X: usize = 16;
    const WG_Y: usize = 4;
    const PX: usize = 4;
    let groups = [
        u32_of(op, "workgroups", (ow.div_ceil(PX) * oh).div_ceil(WG_X))?,
        u32_of(op, "workgroups", cout4.div_ceil(WG_Y))?,
        u32_of(op, "workgroups", x.batch())?,
    ];
    let bias = w.bias().unwrap_or(w.dummy());
    rec.dispatch(
        kernel,
        &[],
        &params,
        &[x.tensor.buffer(), w.packed().buffer(), bias.buffer(), out.tensor.buffer()],
        groups,
    )
}
