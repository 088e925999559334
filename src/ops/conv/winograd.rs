//! Winograd convolution, F(4x4, 3x3) and F(4x4, 2x2): the 3x3 stride-1 layers, the stride-2 layers
//! rewritten as stride-1 convolutions over their four input phases (5x5 and 6x6 kernels: 3x3 virtual
//! kernels; 3x3 and 4x4: 2x2), and the output phases of transposed convolutions (FlowNet's 4x4 stride-2
//! deconvolutions: 2x2 taps per phase; the input gradients of the stride-2 layers), smaller kernels being
//! padded with zero taps. Multiplications per output and input channel: A^2 / 16 s^2 (A = 6 or 5
//! transform points per dimension) instead of the real taps: 4x fewer for 3x3, 2.8x for 5x5 stride 2,
//! 2.6x for a 2x2 phase, 1.44x for 3x3 stride 2; phases gaining less than [`MIN_GAIN`] keep the tiled
//! kernel.
//!
//! The direct tiled kernel (`conv2d_forward_tiled`) is held back on software rasterisers by what each
//! multiply-add costs around it (loads, spilled accumulators), not by the multiply-adds themselves; the
//! Winograd form removes three quarters of them and turns the rest into one batched GEMM that the same
//! kernel runs as a 1x1 convolution. Per layer, four dispatches:
//! 1. `winograd_weights`: U = G g G^T for every (virtual input channel, output channel): [A^2][K'][cout].
//!    Recomputed at every call (the optimizer moves the weights; it costs a small fraction of the GEMM).
//! 2. `winograd_input`: V = B^T d B for every A x A input patch of every 4x4 output tile: [A^2][K'][tiles].
//! 3. `conv2d_forward_tiled` as A^2 independent 1x1 convolutions (one per transform point): M = U V,
//!    [A^2][cout][tiles] (register blocks tuned per shape class like any convolution).
//! 4. `winograd_output`: Y = A^T M A per tile, with the layer's epilogue (bias, LeakyReLU, accumulation)
//!    written straight into the output slice.
//!
//! The weight gradient runs the adjoint steps ([`record_weight_grad`]): V^T by `winograd_input`,
//! dM = A dY A^T per output tile (`winograd_grad_output`), dU = dM^T V as a batched GEMM reducing over
//! the tiles (the same tiled kernel: tiles are its input channels, virtual input channels its pixels), and
//! dg = G^T dU G added into the packed gradient (`winograd_grad_weights`).
//!
//! The virtual convolution: a gather phase with input stride s (1 or 2) and taps_h x taps_w taps where
//! ceil(taps / s) <= 3 is, over the s^2 phases of its input, a stride-1 R x R convolution (R = 3, or 2 when
//! ceil(taps / s) <= 2 in both axes): virtual input
//! channel c' = (ci s + p) s + q holds S(Y, X) = x[ci, s Y + p - pad_y, s X + q - pad_x], and its tap (a, b)
//! is the original tap (s a + p, s b + q), zero past the kernel. Output (y, x) = sum over c', a, b of
//! g[c'](a, b) S[c'](y + a, x + b), written to the phase's output pixels (y out_step + phase_y, ...).
//!
//! The transforms are in f32; F(4x4, 3x3) loses about one decimal digit against the direct sum (the
//! tests bound it, and the FlowNet fixtures still pass at their tolerances).
//!
//! The matrices (Toom-Cook; F(4x4, 3x3) as in Lavin and Gray, points 0, 1, -1, 2, -2, infinity):
//! B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1],
//! G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1],
//! A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1].
//! F(4x4, 2x2), points 0, 1, -1, 2, infinity (derived the same way; the unit test checks both):
//! B^T = [2 -1 -2 1 0; 0 -2 -1 1 0; 0 2 -3 1 0; 0 -1 0 1 0; 0 2 -1 -2 1],
//! G = [1/2 0; -1/2 -1/2; -1/6 1/6; 1/6 1/3; 0 1], A^T = [1 1 1 1 0; 0 1 -1 2 0; 0 1 1 4 0; 0 1 -1 8 1].

use super::algo::WinogradUse;
use super::desc::{Batched, Phase, TiledConv};
use super::tiled;
use crate::error::Result;
use crate::ops::{i32_of, split_groups, u32_of};
use crate::runtime::{gpu_params, Context, Kernel, Recorder};

/// Output tile side and transform size of F(4x4, 3x3).
const TILE: usize = 4;

/// Kernel taps per dimension of the virtual convolution of phase `ph` (3: F(4x4, 3x3); 2: F(4x4, 2x2),
/// for 2x2 virtual kernels: 25 points instead of 36), and its number of transform points.
fn taps_and_points(ph: &Phase) -> (usize, usize) {
    let s = ph.in_stride.max(1);
    let r = if ph.taps_h.div_ceil(s) <= 2 && ph.taps_w.div_ceil(s) <= 2 { 2 } else { 3 };
    (r, (r + TILE - 1) * (r + TILE - 1))
}
/// Convolutions below this many (direct) FLOPs keep the direct kernel under [`WinogradUse::Auto`]: four
/// dispatches and their pipelines cost more than they can save.
pub const AUTO_MIN_FLOPS: f64 = 1e8;
/// ... and so do layers with fewer 4x4 output tiles than this (the GEMM's columns, all images).
pub const AUTO_MIN_TILES: usize = 16;
/// A phase runs in the Winograd form only if it does at least this many times fewer multiplications:
/// 1.4 takes 3x3 stride-2 layers (a 2x2 virtual kernel over four input phases, 1.44x), whose direct
/// form is the tiled kernel's worst case (5.7 loads per tap): FlowNet conv4 / conv5 at batch 8 ran 626 ->
/// 280 and 281 -> 124 ms.
pub const MIN_GAIN: f64 = 1.4;
/// ... and its weight gradient, under [`WinogradUse::Auto`], only at this gain: the weight gradient's GEMM
/// reduces over the tiles and writes A^2 / R^2 times the kernel's size, which did not pay at low gains
/// (3x3 stride 2, 1.44x: conv5 at batch 8 218 -> 260 ms; the deconvolutions' 2x2 phases padded to 3x3,
/// 1.8x: no faster), while 3x3 stride 1 (4x) ran 3x faster and 2x2 phases in F(4x4, 2x2) (2.56x) 1.5x.
pub const WEIGHT_GRAD_MIN_GAIN: f64 = 2.5;

gpu_params! {
    /// The WGSL `Params` twin of `winograd_weights`.
    pub struct WinogradWeightParams {
        pub kprime: u32,
        pub cout: u32,
        pub w_cout4: u32,
        pub s: u32,
        pub w_kh: u32,
        pub w_kw: u32,
        pub taps_h: u32,
        pub taps_w: u32,
        pub ky0: u32,
        pub kx0: u32,
        pub kstep: i32,
        pub total: u32,
        /// Row length of dU (`winograd_grad_weights` only).
        pub ld: u32,
        pub _pad0: u32,
        pub _pad1: u32,
        pub _pad2: u32,
    }
}

gpu_params! {
    /// The WGSL `Params` twin of `winograd_input`.
    pub struct WinogradInputParams {
        pub cin: u32,
        pub in_c_offset: u32,
        pub in_c_total: u32,
        pub in_h: u32,
        pub in_w: u32,
        pub s: u32,
        pub pad_y: i32,
        pub pad_x: i32,
        pub kprime: u32,
        pub tiles_h: u32,
        pub tiles_w: u32,
        pub nt: u32,
        pub n0: u32,
        pub transposed: u32,
        /// Row length of V: >= nt, or >= kprime when transposed.
        pub ld: u32,
        pub _pad2: u32,
    }
}

gpu_params! {
    /// The WGSL `Params` twin of `winograd_output` and `winograd_grad_output` (which reads the output tile
    /// geometry and cout4, not the epilogue).
    pub struct WinogradOutputParams {
        pub cout: u32,
        pub nt: u32,
        pub tiles_h: u32,
        pub tiles_w: u32,
        pub out_h: u32,
        pub out_w: u32,
        pub out_c_offset: u32,
        pub out_c_total: u32,
        pub n0: u32,
        pub has_bias: u32,
        pub leaky: u32,
        pub slope: f32,
        pub accumulate: u32,
        pub grid_h: u32,
        pub grid_w: u32,
        pub out_step: u32,
        pub phase_y: u32,
        pub phase_x: u32,
        /// Row length of M (>= nt).
        pub ld: u32,
        /// Output-channel quads of dM's rows (`winograd_grad_output` only).
        pub cout4: u32,
    }
}

/// Whether gather phase `ph` of `conv` is a virtual 3x3 or 2x2 convolution (see the module docs) with at least
/// [`MIN_GAIN`] times fewer multiplications in the Winograd form.
pub(crate) fn qualifies(conv: &TiledConv<'_>, ph: &Phase) -> bool {
    let s = ph.in_stride;
    let fits = (s == 1 || s == 2) && ph.taps_h.div_ceil(s) <= 3 && ph.taps_w.div_ceil(s) <= 3;
    conv.batched.is_none() && fits && gain(ph) >= MIN_GAIN && ph.grid_h > 0 && ph.grid_w > 0
}

/// How many times fewer multiplications phase `ph` does in the Winograd form: its real taps against
/// A^2 / 16 per output and virtual input channel (s^2 of them per input channel).
fn gain(ph: &Phase) -> f64 {
    let s = ph.in_stride;
    let points = taps_and_points(ph).1;
    (ph.taps_h * ph.taps_w) as f64 / (points as f64 / (TILE * TILE) as f64 * (s * s) as f64)
}

/// Whether [`record_phase`] runs phase `ph` of `conv` in the Winograd form (where every buffer fits).
pub(crate) fn applies(conv: &TiledConv<'_>, ph: &Phase) -> bool {
    if !qualifies(conv, ph) {
        return false;
    }
    match conv.winograd {
        WinogradUse::Never => false,
        WinogradUse::Always => true,
        WinogradUse::Auto => {
            let tiles = ph.grid_h.div_ceil(TILE) * ph.grid_w.div_ceil(TILE) * conv.x.batch();
            conv.flops() >= AUTO_MIN_FLOPS && tiles >= AUTO_MIN_TILES
        }
    }
}

/// Records phase `ph` of `conv` in the Winograd form when it applies ([`applies`]) and its transformed
/// weights fit one storage binding; returns whether it did (else the caller runs the tiled kernel).
pub(crate) fn record_phase(rec: &mut Recorder<'_>, conv: &TiledConv<'_>, ph: &Phase) -> Result<bool> {
    if !applies(conv, ph) {
        return Ok(false);
    }
    let op = conv.op;
    let ctx = rec.context();
    let limit = ctx.max_binding_bytes();
    let max_groups = ctx.limits().max_compute_workgroups_per_dimension as usize;
    let geo = PhaseGeometry::new(conv, ph);
    let (kprime, cout) = (geo.kprime, conv.out.channels);
    let points = geo.points;
    let u_floats = points * kprime * conv.w_cout4 * 4;
    // Images per pass: the transformed inputs and the products of a pass each fit one binding.
    // V and M have rows of up to 3 padding floats.
    let rows_fit = limit / (points * kprime.max(cout) * 4) as u64;
    let images = rows_fit.saturating_sub(3) as usize / geo.per_image;
    if u_floats as u64 * 4 > limit || images == 0 || kprime > max_groups || cout > max_groups {
        return Ok(false);
    }
    let batch = conv.x.batch();
    let chunk = images.min(batch);
    // Rows of V and M padded to whole vec4 (the GEMM then loads its inputs as vec4).
    let ld_max = (chunk * geo.per_image).next_multiple_of(4);
    let u = ctx.scratch("winograd weights", [1, 1, 1, u_floats])?;
    let v = ctx.scratch("winograd inputs", [points, kprime, 1, ld_max])?;
    let m = ctx.scratch("winograd products", [points, cout, 1, ld_max])?;

    let wparams = geo.weight_params(conv, ph)?;
    let constants = [("R", geo.r as f64)];
    let (gx, gy) = split_groups((kprime * cout).div_ceil(64), max_groups);
    rec.dispatch(
        Kernel::WinogradWeights,
        &constants,
        &wparams,
        &[conv.w, u.buffer()],
        [u32_of(op, "workgroups", gx)?, u32_of(op, "workgroups", gy)?, 1],
    )?;

    let mut n0 = 0;
    while n0 < batch {
        let nb = chunk.min(batch - n0);
        let nt = nb * geo.per_image;
        let ld = nt.next_multiple_of(4);
        let (tx, tz) = split_groups(nt.div_ceil(64), max_groups);
        let iparams = geo.input_params(conv, ph, n0, nb, false, ld)?;
        let groups = [u32_of(op, "workgroups", tx)?, wparams.kprime, u32_of(op, "workgroups", tz)?];
        rec.dispatch(Kernel::WinogradInput, &constants, &iparams, &[conv.x.tensor.buffer(), v.buffer()], groups)?;

        // The A^2 products as one batched 1x1 convolution over the tiles.
        let vx = v.view([points, kprime, 1, ld]);
        let mo = m.view([points, cout, 1, ld]);
        let batched =
            Batched { comps: points, x_stride: kprime * ld, out_stride: cout * ld, w_stride: kprime * conv.w_cout4 };
        let gemm = TiledConv::gemm(op, vx.slice_all(), u.buffer(), conv.w_cout4, mo.slice_all(), conv.dummy, batched);
        tiled::record(rec, &gemm, None, &gemm.phases())?;

        let oparams = WinogradOutputParams {
            has_bias: conv.bias.is_some() as u32,
            leaky: conv.leaky.is_some() as u32,
            slope: conv.leaky.unwrap_or(0.0),
            accumulate: conv.accumulate as u32,
            ld: u32_of(op, "row length", ld)?,
            ..geo.output_params(conv, ph, &iparams)?
        };
        let bias = conv.bias.unwrap_or(conv.dummy);
        let groups = [u32_of(op, "workgroups", tx)?, wparams.cout, u32_of(op, "workgroups", tz)?];
        rec.dispatch(
            Kernel::WinogradOutput,
            &constants,
            &oparams,
            &[m.buffer(), bias, conv.out.tensor.buffer()],
            groups,
        )?;
        n0 += nb;
    }
    Ok(true)
}

/// The shapes of one Winograd phase (shared by the forward and the weight gradient).
struct PhaseGeometry {
    s: usize,
    /// The virtual kernel's taps per dimension (override `R` of the shaders) and the transform points.
    r: usize,
    points: usize,
    kprime: usize,
    tiles_h: usize,
    tiles_w: usize,
    per_image: usize,
}

impl PhaseGeometry {
    fn new(conv: &TiledConv<'_>, ph: &Phase) -> Self {
        let s = ph.in_stride;
        let (tiles_h, tiles_w) = (ph.grid_h.div_ceil(TILE), ph.grid_w.div_ceil(TILE));
        let (r, points) = taps_and_points(ph);
        PhaseGeometry { s, r, points, kprime: conv.x.channels * s * s, tiles_h, tiles_w, per_image: tiles_h * tiles_w }
    }

    /// The `winograd_weights` / `winograd_grad_weights` parameters.
    fn weight_params(&self, conv: &TiledConv<'_>, ph: &Phase) -> Result<WinogradWeightParams> {
        let op = conv.op;
        let cout = conv.out.channels;
        Ok(WinogradWeightParams {
            kprime: u32_of(op, "channels", self.kprime)?,
            cout: u32_of(op, "cout", cout)?,
            w_cout4: u32_of(op, "cout4", conv.w_cout4)?,
            s: self.s as u32,
            w_kh: u32_of(op, "kh", conv.kh)?,
            w_kw: u32_of(op, "kw", conv.kw)?,
            taps_h: u32_of(op, "taps", ph.taps_h)?,
            taps_w: u32_of(op, "taps", ph.taps_w)?,
            ky0: u32_of(op, "ky0", ph.ky0)?,
            kx0: u32_of(op, "kx0", ph.kx0)?,
            kstep: ph.kstep as i32,
            total: u32_of(op, "weights", self.kprime * cout)?,
            ..Default::default()
        })
    }

    /// The `winograd_input` parameters for images n0 .. n0 + nb.
    fn input_params(
        &self,
        conv: &TiledConv<'_>,
        ph: &Phase,
        n0: usize,
        nb: usize,
        transposed: bool,
        ld: usize,
    ) -> Result<WinogradInputParams> {
        let op = conv.op;
        Ok(WinogradInputParams {
            cin: u32_of(op, "cin", conv.x.channels)?,
            in_c_offset: u32_of(op, "in_c_offset", conv.x.c_offset)?,
            in_c_total: u32_of(op, "in_c_total", conv.x.total_channels())?,
            in_h: u32_of(op, "in_h", conv.x.height())?,
            in_w: u32_of(op, "in_w", conv.x.width())?,
            s: self.s as u32,
            pad_y: i32_of(op, "pad", ph.pad_y)?,
            pad_x: i32_of(op, "pad", ph.pad_x)?,
            kprime: u32_of(op, "channels", self.kprime)?,
            tiles_h: u32_of(op, "tiles", self.tiles_h)?,
            tiles_w: u32_of(op, "tiles", self.tiles_w)?,
            nt: u32_of(op, "tiles", nb * self.per_image)?,
            n0: u32_of(op, "image", n0)?,
            transposed: transposed as u32,
            ld: u32_of(op, "row length", ld)?,
            ..Default::default()
        })
    }

    /// The output tile geometry of `winograd_output` / `winograd_grad_output` for the pass of `iparams`
    /// (epilogue off, ld = nt, cout4 = the weights'): the callers set what else they use.
    fn output_params(
        &self,
        conv: &TiledConv<'_>,
        ph: &Phase,
        iparams: &WinogradInputParams,
    ) -> Result<WinogradOutputParams> {
        let op = conv.op;
        Ok(WinogradOutputParams {
            cout: u32_of(op, "cout", conv.out.channels)?,
            nt: iparams.nt,
            tiles_h: iparams.tiles_h,
            tiles_w: iparams.tiles_w,
            out_h: u32_of(op, "out_h", conv.out.height())?,
            out_w: u32_of(op, "out_w", conv.out.width())?,
            out_c_offset: u32_of(op, "out_c_offset", conv.out.c_offset)?,
            out_c_total: u32_of(op, "out_c_total", conv.out.total_channels())?,
            n0: iparams.n0,
            grid_h: u32_of(op, "grid_h", ph.grid_h)?,
            grid_w: u32_of(op, "grid_w", ph.grid_w)?,
            out_step: u32_of(op, "stride", ph.out_step)?,
            phase_y: ph.phase_y as u32,
            phase_x: ph.phase_x as u32,
            ld: iparams.nt,
            cout4: u32_of(op, "cout4", conv.w_cout4)?,
            ..Default::default()
        })
    }
}

/// Images per pass of the weight gradient of phase `ph` (its transformed inputs and output gradients each
/// fit one binding), or None when the phase does not run in the Winograd form.
fn weight_grad_chunk(ctx: &Context, conv: &TiledConv<'_>, ph: &Phase) -> Option<usize> {
    if !applies(conv, ph) || (conv.winograd == WinogradUse::Auto && gain(ph) < WEIGHT_GRAD_MIN_GAIN) {
        return None;
    }
    let limit = ctx.max_binding_bytes();
    let max_groups = ctx.limits().max_compute_workgroups_per_dimension as usize;
    let geo = PhaseGeometry::new(conv, ph);
    let (kprime, cout, cout4) = (geo.kprime, conv.out.channels, conv.w_cout4);
    let (ld, points) = (kprime.next_multiple_of(4), geo.points);
    let image_bytes = (points * geo.per_image * ld.max(cout4 * 4) * 4) as u64;
    let images = (limit / image_bytes.max(1)) as usize;
    let fits = (points * cout * ld) as u64 * 4 <= limit && images > 0 && kprime <= max_groups && cout <= max_groups;
    fits.then_some(images.min(conv.x.batch()))
}

/// Records `grad += d(loss)/dw` for the convolution `conv` (its forward description, with `conv.out` the
/// output gradient dY before any activation; `grad` the packed weight gradient) in the Winograd form when
/// every phase of it runs in that form ([`applies`], and the buffers fit); returns whether it did (else
/// nothing is recorded).
pub(crate) fn record_weight_grad(rec: &mut Recorder<'_>, conv: &TiledConv<'_>, grad: &wgpu::Buffer) -> Result<bool> {
    let phases: Vec<Phase> = conv.phases().into_iter().filter(|p| p.grid_h > 0 && p.grid_w > 0).collect();
    let chunks: Vec<Option<usize>> = phases.iter().map(|ph| weight_grad_chunk(rec.context(), conv, ph)).collect();
    if phases.is_empty() || chunks.iter().any(|c| c.is_none()) {
        return Ok(false);
    }
    for (ph, chunk) in phases.iter().zip(chunks) {
        record_weight_grad_phase(rec, conv, ph, grad, chunk.unwrap_or(1))?;
    }
    Ok(true)
}

fn record_weight_grad_phase(
    rec: &mut Recorder<'_>,
    conv: &TiledConv<'_>,
    ph: &Phase,
    grad: &wgpu::Buffer,
    chunk: usize,
) -> Result<()> {
    let op = conv.op;
    let ctx = rec.context();
    let max_groups = ctx.limits().max_compute_workgroups_per_dimension as usize;
    let geo = PhaseGeometry::new(conv, ph);
    let (kprime, cout, cout4, points) = (geo.kprime, conv.out.channels, conv.w_cout4, geo.points);
    let batch = conv.x.batch();
    let nt_max = chunk * geo.per_image;
    // Rows of V^T and dU padded to whole vec4 (the GEMM then loads its inputs as vec4).
    let ld = kprime.next_multiple_of(4);
    let v = ctx.scratch("winograd inputs", [points, nt_max, 1, ld])?;
    let dm = ctx.scratch("winograd products", [1, 1, 1, points * nt_max * cout4 * 4])?;
    let du = ctx.scratch("winograd weights", [points, cout, 1, ld])?;
    let wparams = WinogradWeightParams { ld: u32_of(op, "row length", ld)?, ..geo.weight_params(conv, ph)? };
    let constants = [("R", geo.r as f64)];
    let mut n0 = 0;
    while n0 < batch {
        let nb = chunk.min(batch - n0);
        let nt = nb * geo.per_image;
        let (tx, tz) = split_groups(nt.div_ceil(64), max_groups);
        let iparams = geo.input_params(conv, ph, n0, nb, true, ld)?;
        let groups = [u32_of(op, "workgroups", tx)?, wparams.kprime, u32_of(op, "workgroups", tz)?];
        rec.dispatch(Kernel::WinogradInput, &constants, &iparams, &[conv.x.tensor.buffer(), v.buffer()], groups)?;
        let gparams = geo.output_params(conv, ph, &iparams)?;
        let groups = [u32_of(op, "workgroups", tx)?, wparams.cout, u32_of(op, "workgroups", tz)?];
        rec.dispatch(
            Kernel::WinogradGradOutput,
            &constants,
            &gparams,
            &[conv.out.tensor.buffer(), dm.buffer()],
            groups,
        )?;

        // dU[comp] = dM[comp]^T V[comp]: tiles are the reduction ("input channels"), c' the "pixels".
        let vx = v.view([points, nt, 1, ld]);
        let duo = du.view([points, cout, 1, ld]);
        let batched = Batched { comps: points, x_stride: nt * ld, out_stride: cout * ld, w_stride: nt * cout4 };
        let gemm = TiledConv::gemm(op, vx.slice_all(), dm.buffer(), cout4, duo.slice_all(), conv.dummy, batched);
        tiled::record(rec, &gemm, None, &gemm.phases())?;
        let (gx, gy) = split_groups((kprime * cout).div_ceil(64), max_groups);
        rec.dispatch(
            Kernel::WinogradGradWeights,
            &constants,
            &wparams,
            &[du.buffer(), grad],
            [u32_of(op, "workgroups", gx)?, u32_of(op, "workgroups", gy)?, 1],
        )?;
        n0 += nb;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// A^T [(G g G^T) . (B^T d B)] A, in f64, against the direct 4x4 cross-correlation of an A x A patch
    /// with an R x R kernel (matrices as rows).
    fn check(bt: &[Vec<f64>], g: &[Vec<f64>], at: &[Vec<f64>]) {
        let (a, r) = (bt.len(), g[0].len());
        let mut seed = 12345u64;
        let mut rnd = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((seed >> 33) as f64 / (1u64 << 31) as f64) - 0.5
        };
        let d: Vec<Vec<f64>> = (0..a).map(|_| (0..a).map(|_| rnd()).collect()).collect();
        let k: Vec<Vec<f64>> = (0..r).map(|_| (0..r).map(|_| rnd()).collect()).collect();
        let u: Vec<Vec<f64>> = (0..a)
            .map(|i| {
                (0..a).map(|j| (0..r).map(|p| (0..r).map(|q| g[i][p] * k[p][q] * g[j][q]).sum::<f64>()).sum()).collect()
            })
            .collect();
        let v: Vec<Vec<f64>> = (0..a)
            .map(|i| {
                (0..a)
                    .map(|j| (0..a).map(|p| (0..a).map(|q| bt[i][p] * d[p][q] * bt[j][q]).sum::<f64>()).sum())
                    .collect()
            })
            .collect();
        for y in 0..4 {
            for x in 0..4 {
                let wino: f64 =
                    (0..a).map(|i| (0..a).map(|j| at[y][i] * u[i][j] * v[i][j] * at[x][j]).sum::<f64>()).sum();
                let direct: f64 = (0..r).map(|p| (0..r).map(|q| k[p][q] * d[y + p][x + q]).sum::<f64>()).sum();
                assert!(
                    (wino - direct).abs() < 1e-12,
                    "F(4x4, {r}x{r}) ({y}, {x}): winograd {wino} vs direct {direct}"
                );
            }
        }
    }

    fn rows<const N: usize>(m: &[[f64; N]]) -> Vec<Vec<f64>> {
        m.iter().map(|r| r.to_vec()).collect()
    }

    /// The matrices written out in the shaders and the module docs.
    #[test]
    fn transform_matrices_compute_the_correlation() {
        let (s6, s12, s24) = (1.0 / 6.0, 1.0 / 12.0, 1.0 / 24.0);
        check(
            &rows(&[
                [4.0, 0.0, -5.0, 0.0, 1.0, 0.0],
                [0.0, -4.0, -4.0, 1.0, 1.0, 0.0],
                [0.0, 4.0, -4.0, -1.0, 1.0, 0.0],
                [0.0, -2.0, -1.0, 2.0, 1.0, 0.0],
                [0.0, 2.0, -1.0, -2.0, 1.0, 0.0],
                [0.0, 4.0, 0.0, -5.0, 0.0, 1.0],
            ]),
            &rows(&[
                [0.25, 0.0, 0.0],
                [-s6, -s6, -s6],
                [-s6, s6, -s6],
                [s24, s12, s6],
                [s24, -s12, s6],
                [0.0, 0.0, 1.0],
            ]),
            &rows(&[
                [1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
                [0.0, 1.0, -1.0, 2.0, -2.0, 0.0],
                [0.0, 1.0, 1.0, 4.0, 4.0, 0.0],
                [0.0, 1.0, -1.0, 8.0, -8.0, 1.0],
            ]),
        );
        check(
            &rows(&[
                [2.0, -1.0, -2.0, 1.0, 0.0],
                [0.0, -2.0, -1.0, 1.0, 0.0],
                [0.0, 2.0, -3.0, 1.0, 0.0],
                [0.0, -1.0, 0.0, 1.0, 0.0],
                [0.0, 2.0, -1.0, -2.0, 1.0],
            ]),
            &rows(&[[0.5, 0.0], [-0.5, -0.5], [-s6, s6], [s6, 2.0 * s6], [0.0, 1.0]]),
            &rows(&[
                [1.0, 1.0, 1.0, 1.0, 0.0],
                [0.0, 1.0, -1.0, 2.0, 0.0],
                [0.0, 1.0, 1.0, 4.0, 0.0],
                [0.0, 1.0, -1.0, 8.0, 1.0],
            ]),
        );
    }
}
