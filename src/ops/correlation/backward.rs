//! Gradients of the correlation w.r.t. both inputs: the subgroup-tiled gathers
//! (`shaders/correlation_backward_a.wgsl`, `shaders/correlation_backward_b.wgsl`), the portable
//! one-invocation-per-element gathers (`*_naive.wgsl`); the f64 CPU references are in
//! `crate::reference::correlation`.
//!
//! Every entry point takes `grad_out`, the gradient w.r.t. the correlation output BEFORE any fused
//! LeakyReLU (apply the LeakyReLU backward first), and overwrites `grad_a` and `grad_b` (`=`, not `+=`).

use super::pack::{pack_features, pack_grad, scratch, GradBand, GradFrame, GradWindow, PackWindow};
use super::tiled::{byte_limit, subgroup_tiling_available, CorrelationBand, SG};
use super::{CorrelationOptions, CorrelationParams, CorrelationSpec};
use crate::error::{Error, Result};
use crate::ops::{grid_1d, u32_of};
use crate::runtime::{gpu_params, Context, Kernel, Recorder, Tensor};

const OP: &str = "correlation_backward";

gpu_params! {
    /// The WGSL `Params` twin of `correlation_backward_a` and `correlation_backward_b`.
    pub struct CorrelationBackwardParams {
        pub batch: u32,
        pub c4: u32,
        pub channels: u32,
        pub grad_h: u32,
        pub grad_w: u32,
        pub y_first: u32,
        pub rows: u32,
        pub x_blocks: u32,
        pub cb_blocks: u32,
        pub sweep4: u32,
        pub stride2: u32,
        pub f_hp: u32,
        pub f_wp: u32,
        pub g_wp: u32,
        pub kp4: u32,
        pub accumulate_below: u32,
        pub f_row0: u32,
        pub _pad0: u32,
        pub _pad1: u32,
        pub _pad2: u32,
    }
}

/// Tile geometry of the backward kernels (see the header of `correlation_backward_a.wgsl`).
#[derive(Clone, Copy, Debug)]
struct BackwardGeometry {
    gw: usize,
    ta: usize,
    /// Sweep quads per (column, displacement row) in the packed gradient, and in the kernel's loop.
    kp4: usize,
    sweep4: usize,
    x_blocks: usize,
    g_wp: usize,
    f_wp: usize,
    /// Channel quads per subgroup, and the packed (padded) channel quads.
    cb: usize,
    c4p: usize,
}

impl BackwardGeometry {
    fn new(spec: &CorrelationSpec, channels: usize, width: usize) -> Self {
        let s2 = spec.stride2;
        let gw = spec.grid_width();
        let ta = if width > SG * s2 { 2 } else { 1 };
        // A lane's G values cover sweep positions l .. l + GW <= SG - 1 + GW; block 1 is SG positions on.
        let kp4 = (SG - 1 + gw).div_ceil(4);
        let sweep4 = kp4 + (SG / 4) * (ta - 1);
        let x_blocks = width.div_ceil(s2).div_ceil(SG * ta);
        let x0_max = (s2 - 1) + (x_blocks - 1) * SG * ta * s2;
        let x_max = (s2 - 1) + (x_blocks * SG * ta - 1) * s2;
        let f_wp = x0_max + (4 * sweep4 - 1) * s2 + 1;
        let c4 = channels.div_ceil(4);
        // The kernels' CB: channel quads per subgroup (channels are zero-padded to a multiple of 4 CB).
        let cb = SG;
        BackwardGeometry { gw, ta, kp4, sweep4, x_blocks, g_wp: x_max + 1, f_wp, cb, c4p: c4.div_ceil(cb) * cb }
    }

    fn f_window(&self, spec: &CorrelationSpec, y0: usize, rows: usize) -> PackWindow {
        let reach = (spec.grid_radius() * spec.stride2) as i64;
        PackWindow {
            hp: rows + (self.gw - 1) * spec.stride2,
            wp: self.f_wp,
            c4: self.c4p,
            row0: y0 as i64 - reach,
            col0: -reach,
        }
    }

    fn g_window(&self, y0: usize, rows: usize) -> GradWindow {
        GradWindow { rows, y0, wp: self.g_wp, kp4: self.kp4 }
    }

    fn max_rows(&self, spec: &CorrelationSpec, batch: usize, limit: u64, max_groups: usize) -> usize {
        // Both packed operands fit the budget, and the packing grids (one workgroup row per packed row) the
        // device.
        let fits = |rows: usize| {
            let f = self.f_window(spec, 0, rows);
            f.bytes(batch) <= limit
                && self.g_window(0, rows).bytes(batch, self.gw) <= limit
                && batch * f.hp <= max_groups
        };
        super::pack::largest_fitting_rows(max_groups, fits)
    }
}

/// Shapes shared by every backward entry point.
fn check(a: &Tensor, b: &Tensor, spec: &CorrelationSpec, grad_a: &Tensor, grad_b: &Tensor) -> Result<(usize, usize)> {
    if a.shape() != b.shape() || grad_a.shape() != a.shape() || grad_b.shape() != a.shape() {
        return Err(Error::Shape {
            op: OP,
            message: format!(
                "a {:?}, b {:?}, grad_a {:?} and grad_b {:?} must all have one shape",
                a.shape(),
                b.shape(),
                grad_a.shape(),
                grad_b.shape()
            ),
        });
    }
    let [_, c, h, w] = a.shape();
    if c == 0 {
        return Err(Error::Shape { op: OP, message: "inputs have no channels".into() });
    }
    spec.output_size(h, w)
}

fn check_grad(a: &Tensor, spec: &CorrelationSpec, grad_out: &Tensor, (oh, ow): (usize, usize)) -> Result<()> {
    let n = a.shape()[0];
    let want = [n, spec.displacements(), oh, ow];
    if grad_out.shape() != want {
        return Err(Error::Shape { op: OP, message: format!("grad_out is {:?}, expected {want:?}", grad_out.shape()) });
    }
    Ok(())
}

/// Records the gradients of the correlation w.r.t. `a` and `b` into `grad_a` and `grad_b` (overwritten).
/// `grad_out` [N, D, out_h, out_w] is the gradient w.r.t. the correlation output before any LeakyReLU.
/// Uses the subgroup-tiled kernels where the device has subgroups, else the portable ones.
pub fn correlation_backward(
    rec: &mut Recorder<'_>,
    a: &Tensor,
    b: &Tensor,
    grad_out: &Tensor,
    spec: CorrelationSpec,
    grad_a: &Tensor,
    grad_b: &Tensor,
) -> Result<()> {
    correlation_backward_with(rec, a, b, grad_out, spec, grad_a, grad_b, &CorrelationOptions::default())
}

/// [`correlation_backward`] with explicit [`CorrelationOptions`].
#[allow(clippy::too_many_arguments)]
pub fn correlation_backward_with(
    rec: &mut Recorder<'_>,
    a: &Tensor,
    b: &Tensor,
    grad_out: &Tensor,
    spec: CorrelationSpec,
    grad_a: &Tensor,
    grad_b: &Tensor,
    opts: &CorrelationOptions,
) -> Result<()> {
    let out_size = check(a, b, &spec, grad_a, grad_b)?;
    check_grad(a, &spec, grad_out, out_size)?;
    if opts.tiled && subgroup_tiling_available(rec.context())? {
        let band = GradBand { tensor: grad_out, row0: 0, o0: 0, o1: out_size.0 };
        backward_tiled(rec, a, b, &[band], &spec, grad_a, grad_b, opts)
    } else {
        correlation_backward_naive(rec, a, b, grad_out, spec, grad_a, grad_b)
    }
}

/// The backward of [`super::correlation_forward_chunked`]: `grad_bands` are the gradients of its bands (same
/// rows, in order, covering every output row), each before any LeakyReLU. Overwrites `grad_a`, `grad_b`.
#[allow(clippy::too_many_arguments)]
pub fn correlation_backward_chunked(
    rec: &mut Recorder<'_>,
    a: &Tensor,
    b: &Tensor,
    grad_bands: &[CorrelationBand],
    spec: CorrelationSpec,
    grad_a: &Tensor,
    grad_b: &Tensor,
    opts: &CorrelationOptions,
) -> Result<()> {
    let (oh, ow) = check(a, b, &spec, grad_a, grad_b)?;
    let ctx = rec.context();
    if !opts.tiled || !subgroup_tiling_available(ctx)? {
        return Err(Error::InvalidParam {
            op: OP,
            message: format!(
                "the banded correlation backward needs subgroup operations, which adapter `{}` does not offer; use correlation_backward with one grad_out tensor",
                ctx.adapter().name
            ),
        });
    }
    let n = a.shape()[0];
    let mut next = 0;
    let mut bands = Vec::with_capacity(grad_bands.len());
    for band in grad_bands {
        let [bn, bd, rows, bw] = band.tensor.shape();
        if band.row0 != next || bn != n || bd != spec.displacements() || bw != ow || rows == 0 {
            return Err(Error::Shape {
                op: OP,
                message: format!(
                    "gradient band at row {} with shape {:?} does not continue the bands at row {next} of a [{n}, {}, {oh}, {ow}] output",
                    band.row0,
                    band.tensor.shape(),
                    spec.displacements()
                ),
            });
        }
        bands.push(GradBand { tensor: &band.tensor, row0: 0, o0: band.row0, o1: band.row0 + rows });
        next += rows;
    }
    if next != oh {
        return Err(Error::Shape { op: OP, message: format!("gradient bands cover rows 0..{next} of {oh}") });
    }
    backward_tiled(rec, a, b, &bands, &spec, grad_a, grad_b, opts)
}

/// Records both tiled gathers for the gradient bands `bands` (in order, covering every output row).
#[allow(clippy::too_many_arguments)]
fn backward_tiled(
    rec: &mut Recorder<'_>,
    a: &Tensor,
    b: &Tensor,
    bands: &[GradBand<'_>],
    spec: &CorrelationSpec,
    grad_a: &Tensor,
    grad_b: &Tensor,
    opts: &CorrelationOptions,
) -> Result<()> {
    let ctx = rec.context();
    let limit = byte_limit(ctx, opts);
    let [n, c, h, w] = a.shape();
    let geo = BackwardGeometry::new(spec, c, w);
    let max_groups = ctx.limits().max_compute_workgroups_per_dimension as usize;
    let cb_blocks = geo.c4p / geo.cb;
    if n > max_groups || geo.x_blocks * spec.stride2 * cb_blocks > max_groups {
        return Err(Error::InvalidParam {
            op: OP,
            message: format!(
                "batch {n} x {c} channels x width {w} needs more workgroups than adapter `{}` allows; split the batch",
                ctx.adapter().name
            ),
        });
    }
    let band_rows =
        geo.max_rows(spec, n, limit, max_groups).min(h).min(opts.max_band_rows.map_or(usize::MAX, |r| r.max(1)));
    if band_rows == 0 {
        let win = geo.g_window(0, 1);
        return Err(too_large(ctx, &[n, 1, win.wp, geo.gw * win.kp4 * 4], win.bytes(n, geo.gw), limit));
    }
    let origin = spec.max_displacement as i64 - spec.pad as i64;
    let reach = (spec.grid_radius() * spec.stride2) as i64;
    let (s1, ks) = (spec.stride1 as i64, spec.kernel_size as i64);
    // grad_a gathers b around a-pixels; grad_b gathers a around b-pixels, whose rows reach R stride2 further.
    let jobs = [
        (GradFrame::A, b, grad_a, Kernel::CorrelationBackwardA, 0),
        (GradFrame::B, a, grad_b, Kernel::CorrelationBackwardB, reach),
    ];
    // The gradient rows each band writes: the input rows its outputs touch; the first band starts at row 0
    // and the last ends at H so rows no output touches are written (with zeros) too. Rows below `done`
    // were written by an earlier band and are accumulated into.
    let ranges = |halo: i64| -> Vec<(usize, usize, usize)> {
        let mut done = 0usize;
        let mut out = Vec::with_capacity(bands.len());
        for (k, band) in bands.iter().enumerate() {
            let first = band.o0 as i64 * s1 + origin - halo;
            let last = (band.o1 as i64 - 1) * s1 + origin + ks + halo;
            let w0 = if k == 0 { 0 } else { first.clamp(0, h as i64).min(done as i64) as usize };
            let w1 = if k + 1 == bands.len() { h } else { (last.clamp(0, h as i64) as usize).max(done).max(w0) };
            out.push((w0, w1, done));
            done = done.max(w1);
        }
        out
    };
    // One packed feature copy per band when it fits (the halo rows are then packed once, not per
    // sub-band), else one per sub-band.
    let whole_band_fits = |rows: usize| {
        let f = geo.f_window(spec, 0, rows);
        f.bytes(n) <= limit && n * f.hp <= max_groups
    };
    let mut f_bytes = geo.f_window(spec, 0, band_rows).bytes(n);
    for (_, _, _, _, halo) in jobs {
        for (w0, w1, _) in ranges(halo) {
            if w1 > w0 && whole_band_fits(w1 - w0) {
                f_bytes = f_bytes.max(geo.f_window(spec, w0, w1 - w0).bytes(n));
            }
        }
    }
    let g_packed = scratch(rec, "correlation grad packed", geo.g_window(0, band_rows).bytes(n, geo.gw))?;
    let f_packed = scratch(rec, "correlation feature packed", f_bytes)?;
    let constants = [("GW", geo.gw as f64), ("TA", geo.ta as f64)];

    for (frame, feature, grad, kernel, halo) in jobs {
        for (band, (w0, w1, done)) in bands.iter().zip(ranges(halo)) {
            if w1 <= w0 {
                continue;
            }
            let per_band = whole_band_fits(w1 - w0);
            let band_f = geo.f_window(spec, w0, w1 - w0);
            if per_band {
                pack_features(rec, feature, &band_f, &f_packed)?;
            }
            let mut y = w0;
            while y < w1 {
                let rows = band_rows.min(w1 - y);
                let gwin = geo.g_window(y, rows);
                let (fwin, f_row0) = if per_band { (band_f, y - w0) } else { (geo.f_window(spec, y, rows), 0) };
                if !per_band {
                    pack_features(rec, feature, &fwin, &f_packed)?;
                }
                pack_grad(rec, spec, c, band, &gwin, frame, &g_packed)?;
                let params = CorrelationBackwardParams {
                    batch: u32_of(OP, "batch", n)?,
                    c4: u32_of(OP, "c4", geo.c4p)?,
                    channels: u32_of(OP, "channels", c)?,
                    grad_h: u32_of(OP, "grad_h", h)?,
                    grad_w: u32_of(OP, "grad_w", w)?,
                    y_first: u32_of(OP, "y_first", y)?,
                    rows: u32_of(OP, "rows", rows)?,
                    x_blocks: u32_of(OP, "x_blocks", geo.x_blocks)?,
                    cb_blocks: u32_of(OP, "cb_blocks", cb_blocks)?,
                    sweep4: u32_of(OP, "sweep4", geo.sweep4)?,
                    stride2: u32_of(OP, "stride2", spec.stride2)?,
                    f_hp: u32_of(OP, "f_hp", fwin.hp)?,
                    f_wp: u32_of(OP, "f_wp", fwin.wp)?,
                    g_wp: u32_of(OP, "g_wp", gwin.wp)?,
                    kp4: u32_of(OP, "kp4", gwin.kp4)?,
                    accumulate_below: u32_of(OP, "accumulate_below", done)?,
                    f_row0: u32_of(OP, "f_row0", f_row0)?,
                    _pad0: 0,
                    _pad1: 0,
                    _pad2: 0,
                };
                let groups = [
                    u32_of(OP, "x groups", geo.x_blocks * spec.stride2 * cb_blocks)?,
                    u32_of(OP, "rows", rows)?,
                    u32_of(OP, "batch", n)?,
                ];
                rec.dispatch(
                    kernel,
                    &constants,
                    &params,
                    &[g_packed.buffer(), f_packed.buffer(), grad.buffer()],
                    groups,
                )?;
                y += rows;
            }
        }
    }
    Ok(())
}

fn too_large(ctx: &Context, shape: &[usize], bytes: u64, limit: u64) -> Error {
    Error::TooLarge {
        name: "correlation packed gradient row".into(),
        shape: shape.to_vec(),
        bytes,
        limit,
        adapter: ctx.adapter().name.clone(),
        hint: ": one row of the packed gradient needs more than one storage binding; use a smaller batch or narrower inputs".into(),
    }
}

/// The portable backward: one invocation per gradient element (`correlation_backward_{a,b}_naive.wgsl`),
/// for adapters without subgroups and as the baseline of the tiled kernels. Overwrites `grad_a` and
/// `grad_b`; `grad_out` is the gradient before any LeakyReLU.
pub fn correlation_backward_naive(
    rec: &mut Recorder<'_>,
    a: &Tensor,
    b: &Tensor,
    grad_out: &Tensor,
    spec: CorrelationSpec,
    grad_a: &Tensor,
    grad_b: &Tensor,
) -> Result<()> {
    let (oh, ow) = check(a, b, &spec, grad_a, grad_b)?;
    check_grad(a, &spec, grad_out, (oh, ow))?;
    let [n, c, h, w] = a.shape();
    let params = CorrelationParams {
        batch: u32_of(OP, "batch", n)?,
        channels: u32_of(OP, "channels", c)?,
        in_h: u32_of(OP, "in_h", h)?,
        in_w: u32_of(OP, "in_w", w)?,
        out_h: u32_of(OP, "out_h", oh)?,
        out_w: u32_of(OP, "out_w", ow)?,
        pad: u32_of(OP, "pad", spec.pad)?,
        kernel_size: u32_of(OP, "kernel_size", spec.kernel_size)?,
        max_displacement: u32_of(OP, "max_displacement", spec.max_displacement)?,
        stride1: u32_of(OP, "stride1", spec.stride1)?,
        stride2: u32_of(OP, "stride2", spec.stride2)?,
        grid_radius: u32_of(OP, "grid_radius", spec.grid_radius())?,
        out_c_offset: 0,
        out_c_total: u32_of(OP, "displacements", spec.displacements())?,
        leaky: 0,
        slope: 0.0,
    };
    let total = a.numel();
    u32_of(OP, "elements", total)?;
    let groups = grid_1d(rec, total, 64);
    rec.dispatch(
        Kernel::CorrelationBackwardANaive,
        &[],
        &params,
        &[grad_out.buffer(), b.buffer(), grad_a.buffer()],
        groups,
    )?;
    rec.dispatch(
        Kernel::CorrelationBackwardBNaive,
        &[],
        &params,
        &[grad_out.buffer(), a.buffer(), grad_b.buffer()],
        groups,
    )
}
