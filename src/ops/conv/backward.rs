//! Backward passes of conv2d and conv_transpose2d (f64 CPU references: `crate::reference::conv`).
//!
//! For y = conv(x, w) + b (either kind; PyTorch layouts and semantics, see [`super::conv_forward`]):
//! * input gradient dx: a conv2d's is a transposed conv of dy with the same weights, a transposed conv's is
//!   a conv2d of dy. Both run on the tiled kernel (`conv2d_forward_tiled`, stride phases for the
//!   transposed case, so no scatter and no atomics) with the packed weights' channel roles swapped by
//!   `conv_weights_swap`. Activation-gradient convention: `dx = ..`, or `dx += ..` with `accumulate`.
//! * weight gradient: an implicit GEMM over the batch and the pixels (`conv_backward_weight`, split over
//!   workgroups plus `conv_backward_weight_reduce` when a layer has few weights but many pixels), written
//!   straight into the packed layout of [`ConvWeights`] so an optimizer updates the packed weights
//!   element-wise. Parameter-gradient convention: `+=`.
//! * bias gradient: `db += sum over n, pixels of dy` (`conv_backward_bias`).
//!
//! `dy` is the gradient of the convolution's own output. When the forward pass fused a LeakyReLU
//! (`ConvSpec::leaky`), first turn the gradient of the activation into that of the pre-activation with
//! [`crate::ops::elementwise::leaky_relu_backward`] on the layer's forward output (for a slope > 0 the output is
//! positive exactly where the pre-activation is), or call [`conv_backward`], which does it.

use super::desc::{Geometry, TiledConv};
use super::tiled::tiled_supported;
use super::weights::{ConvGrads, ConvWeights};
use super::{select, winograd};
use crate::error::{Error, Result};
use crate::ops::{grid_1d, u32_of, Slice};
use crate::reference::conv::ConvSpec;
use crate::runtime::{gpu_params, Kernel, Recorder, Tensor};

gpu_params! {
    /// The WGSL `Params` twin of `conv_weights_swap`.
    pub struct WeightSwapParams {
        pub na: u32,
        pub nb: u32,
        pub taps: u32,
        pub a4: u32,
        pub b4: u32,
        pub _pad0: u32,
        pub _pad1: u32,
        pub _pad2: u32,
    }
}

gpu_params! {
    /// The WGSL `Params` twin of `conv_backward_bias`.
    pub struct BiasGradParams {
        pub batch: u32,
        pub channels: u32,
        pub c_offset: u32,
        pub c_total: u32,
        pub plane: u32,
        pub _pad0: u32,
        pub _pad1: u32,
        pub _pad2: u32,
    }
}

gpu_params! {
    /// The WGSL `Params` twin of `conv_backward_weight`.
    pub struct WeightGradParams {
        pub batch: u32,
        pub t_c: u32,
        pub t_h: u32,
        pub t_w: u32,
        pub t_c_offset: u32,
        pub t_c_total: u32,
        pub p_c: u32,
        pub p_h: u32,
        pub p_w: u32,
        pub p_c_offset: u32,
        pub p_c_total: u32,
        pub kh: u32,
        pub kw: u32,
        pub stride: u32,
        pub pad: u32,
        pub rows_per_split: u32,
        pub s_ct: u32,
        pub s_cp: u32,
        pub s_k: u32,
        pub partial: u32,
        pub len: u32,
        pub _pad0: u32,
        pub _pad1: u32,
        pub _pad2: u32,
    }
}

gpu_params! {
    /// The WGSL `Params` twin of `conv_backward_weight_reduce`.
    pub struct WeightReduceParams {
        pub len: u32,
        pub splits: u32,
        pub _pad0: u32,
        pub _pad1: u32,
    }
}

fn op_name(w: &ConvWeights) -> &'static str {
    if w.transposed {
        "conv_transpose2d_backward"
    } else {
        "conv2d_backward"
    }
}

fn require_tiled(rec: &Recorder<'_>, op: &'static str) -> Result<()> {
    if tiled_supported(rec.context()) {
        Ok(())
    } else {
        Err(Error::InvalidParam {
            op,
            message: format!(
                "the backward conv kernels need subgroup operations, which adapter `{}` lacks; train on a Vulkan, Metal or DX12 adapter",
                rec.context().adapter().name
            ),
        })
    }
}

/// Checks that `x`, `dy` and the weights describe one layer: x [N, cin, H, W], dy [N, cout, OH, OW] with
/// OH x OW the conv's output (for a transposed conv: at most its full output, FlowNet's crop).
fn check_shapes(op: &'static str, x: Slice<'_>, dy: Slice<'_>, w: &ConvWeights, spec: ConvSpec) -> Result<()> {
    if spec.stride == 0 {
        return Err(Error::InvalidParam { op, message: "stride must be >= 1".into() });
    }
    if x.channels != w.cin || dy.channels != w.cout {
        return Err(Error::Shape {
            op,
            message: format!(
                "input has {} and gradient {} channels, weights expect {} -> {}",
                x.channels, dy.channels, w.cin, w.cout
            ),
        });
    }
    if x.batch() != dy.batch() {
        return Err(Error::Shape {
            op,
            message: format!("input batch {} but gradient batch {}", x.batch(), dy.batch()),
        });
    }
    let (oh, ow) = (dy.height(), dy.width());
    if w.transposed {
        let full = (spec.transposed_out(x.height(), w.kh), spec.transposed_out(x.width(), w.kw));
        match full {
            (Some(fh), Some(fw)) if oh <= fh && ow <= fw => Ok(()),
            _ => Err(Error::Shape {
                op,
                message: format!("gradient {oh}x{ow} larger than the transposed conv's {full:?}"),
            }),
        }
    } else {
        let want = (spec.conv_out(x.height(), w.kh), spec.conv_out(x.width(), w.kw));
        if want == (Some(oh), Some(ow)) {
            Ok(())
        } else {
            Err(Error::Shape {
                op,
                message: format!(
                    "gradient is {oh}x{ow}, but the conv of a {}x{} input gives {want:?}",
                    x.height(),
                    x.width()
                ),
            })
        }
    }
}

/// Records the input gradient: `dx = d(loss)/dx` (or `dx +=` with `accumulate`, for an activation read by
/// several layers). `dy` is the gradient of the conv's output (pre-activation, see the module docs); `dx`
/// has the input's shape and may be a channel slice.
pub fn conv_backward_data(
    rec: &mut Recorder<'_>,
    dy: Slice<'_>,
    w: &ConvWeights,
    spec: ConvSpec,
    dx: Slice<'_>,
    accumulate: bool,
) -> Result<()> {
    let op = op_name(w);
    require_tiled(rec, op)?;
    check_shapes(op, dx, dy, w, spec)?;
    let ctx = rec.context();
    let mut scratch = w
        .scratch
        .lock()
        .map_err(|_| Error::InvalidParam { op, message: "scratch poisoned by an earlier panic".into() })?;
    let taps = w.kh * w.kw;
    let cin4 = w.cin.div_ceil(4);
    let swapped_len = w.cout * taps * cin4 * 4;
    if scratch.swapped.as_ref().map(|t| t.numel()) != Some(swapped_len) {
        scratch.swapped = Some(ctx.tensor("conv weights swapped", [1, 1, 1, swapped_len])?);
    }
    let swapped = scratch.swapped.as_ref().ok_or(Error::InvalidParam { op, message: "scratch".into() })?;
    let params = WeightSwapParams {
        na: u32_of(op, "cin", w.cin)?,
        nb: u32_of(op, "cout", w.cout)?,
        taps: u32_of(op, "taps", taps)?,
        a4: u32_of(op, "cin4", cin4)?,
        b4: u32_of(op, "cout4", w.cout4())?,
        ..Default::default()
    };
    let groups = grid_1d(rec, swapped_len, 256);
    rec.dispatch(Kernel::ConvWeightsSwap, &[], &params, &[w.packed().buffer(), swapped.buffer()], groups)?;
    let (tile, winograd) = select::tiled_choice(rec.context(), w.chosen_algo(rec.context()));
    // The input gradient is the opposite kind of convolution of dy, with the channel roles swapped.
    let geometry = if w.transposed { Geometry::Conv } else { Geometry::Transposed };
    let conv = TiledConv {
        accumulate,
        winograd,
        ..TiledConv::new(
            op,
            geometry,
            dy,
            swapped.buffer(),
            cin4,
            (w.kh, w.kw),
            (spec.stride, spec.pad),
            dx,
            w.dummy().buffer(),
        )
    };
    select::record(rec, &conv, tile)
}

/// Records the parameter gradients: `grads.weight += d(loss)/dw` (packed layout) and, when the layer has
/// a bias, `grads.bias += d(loss)/db`. `x` is the layer's input, `dy` the gradient of its output
/// (pre-activation).
pub fn conv_backward_weight(
    rec: &mut Recorder<'_>,
    x: Slice<'_>,
    dy: Slice<'_>,
    w: &ConvWeights,
    spec: ConvSpec,
    grads: &ConvGrads,
) -> Result<()> {
    let op = op_name(w);
    require_tiled(rec, op)?;
    check_shapes(op, x, dy, w, spec)?;
    let len = w.packed().numel();
    if grads.weight.numel() != len || grads.bias.is_some() != w.has_bias() {
        return Err(Error::Shape {
            op,
            message: "gradients do not match the weights; create them with ConvWeights::new_grads".into(),
        });
    }
    if let Some(db) = &grads.bias {
        conv_backward_bias(rec, dy, db)?;
    }
    // The forward convolution, described for the Winograd weight gradient (which reads x and dy by it;
    // `w` is not read).
    let winograd = select::tiled_choice(rec.context(), w.chosen_algo(rec.context())).1;
    let forward = TiledConv { winograd, ..w.tiled(op, w.geometry(), x, spec, dy) };
    if winograd::record_weight_grad(rec, &forward, grads.weight.buffer())? {
        return Ok(());
    }
    // conv2d: the tapped tensor is x, the plain one dy (its pixels are the reduction); transposed: the reverse.
    let (t, pl) = if w.transposed { (dy, x) } else { (x, dy) };
    let row = w.cout4() * 4;
    let taps = w.kh * w.kw;
    let (s_ct, s_cp) = if w.transposed { (1, taps * row) } else { (taps * row, 1) };
    const WG: usize = 64;
    // 8 plain-channel quads per workgroup where subgroups have 8 lanes (twice the multiply-adds per load;
    // conv_backward_weight.wgsl) and the layer has that many channels, else 4.
    let pq: usize = if rec.context().adapter().subgroup_min_size >= 8 && pl.channels > 16 { 8 } else { 4 };
    let groups_x = (t.channels.div_ceil(8) * taps).div_ceil(WG);
    let groups_y = pl.channels.div_ceil(4 * pq);
    let rows = pl.batch() * pl.height();
    // Enough workgroups to keep the adapter busy, no more: every split writes a copy of the gradient that
    // the reduction reads back. Partial sums capped at 32 Mi floats.
    let base = (groups_x * groups_y).max(1);
    let max_splits = ((32usize << 20) / len.max(1)).clamp(1, 64);
    let splits_wanted =
        rec.context().adapter().workgroups_to_fill().div_ceil(base).clamp(1, max_splits).min(rows.max(1));
    let rows_per_split = rows.div_ceil(splits_wanted).max(1);
    let splits = rows.div_ceil(rows_per_split).max(1);
    let mut params = WeightGradParams {
        batch: u32_of(op, "batch", x.batch())?,
        t_c: u32_of(op, "channels", t.channels)?,
        t_h: u32_of(op, "height", t.height())?,
        t_w: u32_of(op, "width", t.width())?,
        t_c_offset: u32_of(op, "c_offset", t.c_offset)?,
        t_c_total: u32_of(op, "c_total", t.total_channels())?,
        p_c: u32_of(op, "channels", pl.channels)?,
        p_h: u32_of(op, "height", pl.height())?,
        p_w: u32_of(op, "width", pl.width())?,
        p_c_offset: u32_of(op, "c_offset", pl.c_offset)?,
        p_c_total: u32_of(op, "c_total", pl.total_channels())?,
        kh: u32_of(op, "kh", w.kh)?,
        kw: u32_of(op, "kw", w.kw)?,
        stride: u32_of(op, "stride", spec.stride)?,
        pad: u32_of(op, "pad", spec.pad)?,
        rows_per_split: u32_of(op, "rows", rows_per_split)?,
        s_ct: u32_of(op, "stride", s_ct)?,
        s_cp: u32_of(op, "stride", s_cp)?,
        s_k: u32_of(op, "stride", row)?,
        partial: (splits > 1) as u32,
        len: u32_of(op, "weights", len)?,
        ..Default::default()
    };
    let groups =
        [u32_of(op, "workgroups", groups_x)?, u32_of(op, "workgroups", groups_y)?, u32_of(op, "workgroups", splits)?];
    let constants = [("WG", WG as f64), ("PQ", pq as f64)];
    if splits == 1 {
        return rec.dispatch(
            Kernel::ConvBackwardWeight,
            &constants,
            &params,
            &[t.tensor.buffer(), pl.tensor.buffer(), grads.weight.buffer()],
            groups,
        );
    }
    let ctx = rec.context();
    let mut scratch = w
        .scratch
        .lock()
        .map_err(|_| Error::InvalidParam { op, message: "scratch poisoned by an earlier panic".into() })?;
    if scratch.partial.as_ref().is_none_or(|p| p.numel() < splits * len) {
        scratch.partial = Some(ctx.tensor("conv weight-gradient partial sums", [1, 1, splits, len])?);
    }
    let partial = scratch.partial.as_ref().ok_or(Error::InvalidParam { op, message: "scratch".into() })?;
    params.partial = 1;
    rec.dispatch(
        Kernel::ConvBackwardWeight,
        &constants,
        &params,
        &[t.tensor.buffer(), pl.tensor.buffer(), partial.buffer()],
        groups,
    )?;
    let reduce = WeightReduceParams { len: params.len, splits: u32_of(op, "splits", splits)?, ..Default::default() };
    let groups = grid_1d(rec, len, 256);
    rec.dispatch(Kernel::ConvBackwardWeightReduce, &[], &reduce, &[partial.buffer(), grads.weight.buffer()], groups)
}

/// Records `db[c] += sum over n, pixels of dy[n, c]` for the channel slice `dy`.
pub fn conv_backward_bias(rec: &mut Recorder<'_>, dy: Slice<'_>, db: &Tensor) -> Result<()> {
    let op = "conv_backward_bias";
    if db.numel() != dy.channels {
        return Err(Error::Shape {
            op,
            message: format!("bias gradient holds {} values for {} channels", db.numel(), dy.channels),
        });
    }
    let params = BiasGradParams {
        batch: u32_of(op, "batch", dy.batch())?,
        channels: u32_of(op, "channels", dy.channels)?,
        c_offset: u32_of(op, "c_offset", dy.c_offset)?,
        c_total: u32_of(op, "c_total", dy.total_channels())?,
        plane: u32_of(op, "plane", dy.height() * dy.width())?,
        ..Default::default()
    };
    let groups = [u32_of(op, "workgroups", dy.channels)?, 1, 1];
    rec.dispatch(Kernel::ConvBackwardBias, &[], &params, &[dy.tensor.buffer(), db.buffer()], groups)
}

/// The whole backward pass of one layer: with a fused LeakyReLU (`spec.leaky`), first turns `dy` (the
/// gradient of the activation, modified in place) into that of the pre-activation using the forward
/// output `y`; then the parameter gradients (`+=`) and, when `dx` is given, the input gradient (`=`, or
/// `+=` with `accumulate_dx`).
#[allow(clippy::too_many_arguments)]
pub fn conv_backward(
    rec: &mut Recorder<'_>,
    x: Slice<'_>,
    y: Option<&Tensor>,
    dy: Slice<'_>,
    w: &ConvWeights,
    spec: ConvSpec,
    grads: &ConvGrads,
    dx: Option<Slice<'_>>,
    accumulate_dx: bool,
) -> Result<()> {
    let op = op_name(w);
    if let Some(slope) = spec.leaky {
        let y = y.ok_or(Error::InvalidParam {
            op,
            message: "the layer fuses a LeakyReLU: pass its forward output y".into(),
        })?;
        if slope < 0.0 {
            return Err(Error::InvalidParam {
                op,
                message: format!(
                    "LeakyReLU slope {slope} < 0: the output sign no longer tells the pre-activation sign"
                ),
            });
        }
        crate::ops::elementwise::leaky_relu_backward(rec, y, dy, slope)?;
    }
    conv_backward_weight(rec, x, dy, w, spec, grads)?;
    if let Some(dx) = dx {
        conv_backward_data(rec, dy, w, spec, dx, accumulate_dx)?;
    }
    Ok(())
}
