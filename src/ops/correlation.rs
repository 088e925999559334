//! The correlation layer of FlowNetC (Caffe's CorrelationLayer semantics; see
//! `shaders/correlation_forward_naive.wgsl` for the exact definition; f64 CPU references in
//! `crate::reference::correlation`).
//!
//! - Forward: [`correlation_forward`] (subgroup-tiled where the device has subgroups, else
//!   [`correlation_forward_naive`]), and [`correlation_forward_chunked`] for cost volumes larger than one
//!   storage binding (row bands in separate tensors).
//! - Backward w.r.t. both inputs, as gathers: [`correlation_backward`], [`correlation_backward_chunked`],
//!   [`correlation_backward_naive`]; `grad_out` is the gradient before any fused LeakyReLU, and the input
//!   gradients are overwritten.
//!
//! Layout: `tiled` (forward), `backward`, `pack` (the channels-last copies the tiled kernels read).

mod backward;
mod pack;
mod tiled;

pub use crate::reference::correlation::CorrelationSpec;
pub use backward::{
    correlation_backward, correlation_backward_chunked, correlation_backward_naive, correlation_backward_with,
    CorrelationBackwardParams,
};
pub use pack::{CorrelationGradPackParams, CorrelationPackParams};
pub use tiled::{
    correlation_forward, correlation_forward_chunked, correlation_forward_with, subgroup_tiling_available,
    CorrelationBand, CorrelationTiledParams, SubgroupProbeParams,
};

use super::{grid_1d, u32_of, Slice};
use crate::error::{Error, Result};
use crate::runtime::{gpu_params, Kernel, Recorder, Tensor};

/// Choices for the correlation entry points that take them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CorrelationOptions {
    /// Use the subgroup-tiled kernels where the device supports them (default); `false` forces the
    /// portable one-invocation-per-element kernels.
    pub tiled: bool,
    /// Most bytes any one buffer the op allocates may hold (default and upper bound: the adapter's
    /// storage-binding limit). Smaller values split the work into more row bands; tests use it to exercise
    /// the splitting on small inputs.
    pub max_band_bytes: Option<u64>,
    /// Most output rows per band and per dispatch (default: as many as fit). Forces the row splitting of
    /// large inputs on small ones (tests).
    pub max_band_rows: Option<usize>,
}

impl Default for CorrelationOptions {
    fn default() -> Self {
        CorrelationOptions { tiled: true, max_band_bytes: None, max_band_rows: None }
    }
}

gpu_params! {
    /// The WGSL `Params` twin of the correlation kernels.
    pub struct CorrelationParams {
        pub batch: u32,
        pub channels: u32,
        pub in_h: u32,
        pub in_w: u32,
        pub out_h: u32,
        pub out_w: u32,
        pub pad: u32,
        pub kernel_size: u32,
        pub max_displacement: u32,
        pub stride1: u32,
        pub stride2: u32,
        pub grid_radius: u32,
        pub out_c_offset: u32,
        pub out_c_total: u32,
        pub leaky: u32,
        pub slope: f32,
    }
}

impl CorrelationParams {
    fn new(a: &Tensor, spec: &CorrelationSpec, out: &Slice<'_>, leaky: Option<f32>) -> Result<Self> {
        let op = "correlation";
        let [n, c, h, w] = a.shape();
        Ok(CorrelationParams {
            batch: u32_of(op, "batch", n)?,
            channels: u32_of(op, "channels", c)?,
            in_h: u32_of(op, "in_h", h)?,
            in_w: u32_of(op, "in_w", w)?,
            out_h: u32_of(op, "out_h", out.height())?,
            out_w: u32_of(op, "out_w", out.width())?,
            pad: u32_of(op, "pad", spec.pad)?,
            kernel_size: u32_of(op, "kernel_size", spec.kernel_size)?,
            max_displacement: u32_of(op, "max_displacement", spec.max_displacement)?,
            stride1: u32_of(op, "stride1", spec.stride1)?,
            stride2: u32_of(op, "stride2", spec.stride2)?,
            grid_radius: u32_of(op, "grid_radius", spec.grid_radius())?,
            out_c_offset: u32_of(op, "out_c_offset", out.c_offset)?,
            out_c_total: u32_of(op, "out_c_total", out.total_channels())?,
            leaky: leaky.is_some() as u32,
            slope: leaky.unwrap_or(0.0),
        })
    }
}

/// Checks shapes shared by every correlation entry point.
fn check(a: &Tensor, b: &Tensor, spec: &CorrelationSpec, out: &Slice<'_>) -> Result<()> {
    let op = "correlation";
    if a.shape() != b.shape() {
        return Err(Error::Shape { op, message: format!("inputs differ: {:?} vs {:?}", a.shape(), b.shape()) });
    }
    let [n, c, h, w] = a.shape();
    if c == 0 {
        return Err(Error::Shape { op, message: "inputs have no channels".into() });
    }
    let (oh, ow) = spec.output_size(h, w)?;
    if out.batch() != n || out.channels != spec.displacements() || out.height() != oh || out.width() != ow {
        return Err(Error::Shape {
            op,
            message: format!(
                "output slice is {} x {} x {}x{}, expected {n} x {} x {oh}x{ow}",
                out.batch(),
                out.channels,
                out.height(),
                out.width(),
                spec.displacements()
            ),
        });
    }
    Ok(())
}

/// Records the one-invocation-per-output correlation into the channel slice `out`, with an optional fused
/// LeakyReLU.
pub fn correlation_forward_naive(
    rec: &mut Recorder<'_>,
    a: &Tensor,
    b: &Tensor,
    spec: CorrelationSpec,
    out: Slice<'_>,
    leaky: Option<f32>,
) -> Result<()> {
    check(a, b, &spec, &out)?;
    let params = CorrelationParams::new(a, &spec, &out, leaky)?;
    let total = out.batch() * out.channels * out.height() * out.width();
    u32_of("correlation", "elements", total)?;
    let groups = grid_1d(rec, total, 64);
    rec.dispatch(Kernel::CorrelationForwardNaive, &[], &params, &[a.buffer(), b.buffer(), out.tensor.buffer()], groups)
}
