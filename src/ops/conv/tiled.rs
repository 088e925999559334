//! The tiled convolution kernel (`shaders/conv2d_forward_tiled.wgsl`, an implicit GEMM with register
//! blocking): records the stride phases of a [`TiledConv`] (see [`super::desc`]), each a gather dispatch, so
//! a transposed conv runs at the speed of a conv of the same FLOPs.
//!
//! The register block (output channels x output columns per invocation, and the workgroup size) is a set of
//! WGSL `override` constants. Which block is fastest depends on the adapter and the layer, so the first
//! convolution of each layer-shape class (kind, kernel, stride, and channel counts and width rounded up to
//! powers of two) times the 2-3 [`ConvTile::candidates`] on a reduced copy of the problem and caches the
//! winner in the [`Context`] ([`Context::tuned_all`] lists them). Tuning costs a few pipeline compilations
//! per class at first use; a [`Policy`](crate::runtime::Policy) with `tune: false` skips it and takes the
//! first candidate. Convolutions of
//! under 1e8 FLOPs are not tuned (they take a 16 x 8 block, or the first candidate for fewer channels).
//!
//! The kernels share weight loads between lanes with subgroup shuffles, so they need
//! [`wgpu::Features::SUBGROUP`] (requested by [`Context`] where offered: Vulkan, Metal, DX12; not GL).

use std::time::{Duration, Instant};

use super::algo::{ConvTile, WinogradUse};
use super::desc::{Batched, Geometry, Phase, TiledConv};
use crate::error::{Error, Result};
use crate::ops::{i32_of, split_groups, u32_of};
use crate::runtime::{gpu_params, Context, Kernel, Recorder};

/// Whether the tiled kernels can run on this device: they share weight loads across lanes with subgroup
/// shuffles (Vulkan, Metal and DX12 adapters; not GL). Without them [`ConvAlgo::Tiled`] runs the direct
/// kernels.
///
/// [`ConvAlgo::Tiled`]: super::ConvAlgo::Tiled
pub fn tiled_supported(ctx: &Context) -> bool {
    ctx.device().features().contains(wgpu::Features::SUBGROUP)
}

gpu_params! {
    /// The WGSL `Params` twin of `conv2d_forward_tiled`.
    pub struct ConvTiledParams {
        pub batch: u32,
        pub cin: u32,
        pub in_h: u32,
        pub in_w: u32,
        pub in_c_offset: u32,
        pub in_c_total: u32,
        pub cout: u32,
        pub w_cout4: u32,
        pub grid_h: u32,
        pub grid_w: u32,
        pub out_h: u32,
        pub out_w: u32,
        pub out_c_offset: u32,
        pub out_c_total: u32,
        pub out_step: u32,
        pub out_phase_y: u32,
        pub out_phase_x: u32,
        pub pad_y: i32,
        pub pad_x: i32,
        pub w_kh: u32,
        pub w_kw: u32,
        pub w_ky0: u32,
        pub w_kx0: u32,
        pub w_kstep: i32,
        pub has_bias: u32,
        pub leaky: u32,
        pub slope: f32,
        pub accumulate: u32,
        pub comps: u32,
        pub x_comp_stride: u32,
        pub out_comp_stride: u32,
        pub w_comp_stride: u32,
    }
}

impl TiledConv<'_> {
    fn record(&self, rec: &mut Recorder<'_>, tile: ConvTile) -> Result<()> {
        self.record_phases(rec, tile, &self.phases())
    }

    /// Records the dispatches of `phases` (some or all of [`TiledConv::phases`]) with `tile`.
    pub(crate) fn record_phases(&self, rec: &mut Recorder<'_>, tile: ConvTile, phases: &[Phase]) -> Result<()> {
        let op = self.op;
        let ctx = rec.context();
        let subgroup_min = ctx.adapter().subgroup_min_size;
        if !tile.supports(ctx.limits().max_compute_invocations_per_workgroup, subgroup_min) {
            return Err(Error::InvalidParam {
                op,
                message: format!(
                    "conv tile {tile:?} is not supported: tm must be a multiple of 4 up to {} (4 per lane of the smallest subgroup, {subgroup_min} lanes here, at most 8 lanes), tn a multiple of 4 up to 16, wg a multiple of 4 up to {}",
                    ConvTile::max_tm(subgroup_min),
                    ctx.limits().max_compute_invocations_per_workgroup
                ),
            });
        }
        if !tiled_supported(ctx) {
            return Err(Error::InvalidParam {
                op,
                message: format!(
                    "the tiled conv kernels need subgroup operations, which adapter `{}` lacks; use ConvAlgo::Direct",
                    ctx.adapter().name
                ),
            });
        }
        for &ph in phases {
            if ph.grid_h == 0 || ph.grid_w == 0 {
                continue;
            }
            // A batched GEMM's tensors are [comps, C, 1, T]: one image per component.
            let (batch, comps) = match self.batched {
                Some(bt) => (1, bt.comps),
                None => (self.x.batch(), 1),
            };
            let bt = self.batched.unwrap_or(Batched { comps: 1, x_stride: 0, out_stride: 0, w_stride: 0 });
            let params = ConvTiledParams {
                batch: u32_of(op, "batch", batch)?,
                cin: u32_of(op, "cin", self.x.channels)?,
                in_h: u32_of(op, "in_h", self.x.height())?,
                in_w: u32_of(op, "in_w", self.x.width())?,
                in_c_offset: u32_of(op, "in_c_offset", self.x.c_offset)?,
                in_c_total: u32_of(op, "in_c_total", self.x.total_channels())?,
                cout: u32_of(op, "cout", self.out.channels)?,
                w_cout4: u32_of(op, "w_cout4", self.w_cout4)?,
                grid_h: u32_of(op, "grid_h", ph.grid_h)?,
                grid_w: u32_of(op, "grid_w", ph.grid_w)?,
                out_h: u32_of(op, "out_h", self.out.height())?,
                out_w: u32_of(op, "out_w", self.out.width())?,
                out_c_offset: u32_of(op, "out_c_offset", self.out.c_offset)?,
                out_c_total: u32_of(op, "out_c_total", self.out.total_channels())?,
                out_step: u32_of(op, "stride", ph.out_step)?,
                out_phase_y: ph.phase_y as u32,
                out_phase_x: ph.phase_x as u32,
                pad_y: i32_of(op, "pad", ph.pad_y)?,
                pad_x: i32_of(op, "pad", ph.pad_x)?,
                w_kh: u32_of(op, "kh", self.kh)?,
                w_kw: u32_of(op, "kw", self.kw)?,
                w_ky0: ph.ky0 as u32,
                w_kx0: ph.kx0 as u32,
                w_kstep: i32_of(op, "stride", ph.kstep)?,
                has_bias: self.bias.is_some() as u32,
                leaky: self.leaky.is_some() as u32,
                slope: self.leaky.unwrap_or(0.0),
                accumulate: self.accumulate as u32,
                comps: u32_of(op, "components", comps)?,
                x_comp_stride: u32_of(op, "component stride", bt.x_stride)?,
                out_comp_stride: u32_of(op, "component stride", bt.out_stride)?,
                w_comp_stride: u32_of(op, "component stride", bt.w_stride)?,
            };
            let blocks = ph.grid_w.div_ceil(tile.tn as usize) * ph.grid_h * batch;
            let wg = workgroup_for(tile.wg, blocks);
            let (gx, gz) =
                split_groups(blocks.div_ceil(wg as usize), ctx.limits().max_compute_workgroups_per_dimension as usize);
            let groups = [
                u32_of(op, "workgroups", gx)?,
                u32_of(op, "workgroups", comps * self.out.channels.div_ceil(tile.tm as usize))?,
                u32_of(op, "workgroups", gz)?,
            ];
            // Vector input loads where every lane's columns are 4 consecutive, 4-aligned floats of one row.
            let vx = ph.taps_h == 1
                && ph.taps_w == 1
                && ph.in_stride == 1
                && ph.pad_y == 0
                && ph.pad_x == 0
                && ph.out_step == 1
                && ph.grid_w == self.x.width()
                && self.x.width().is_multiple_of(4)
                && bt.x_stride.is_multiple_of(4);
            let constants = [
                ("TM4", (tile.tm / 4) as f64),
                ("NQ", (tile.tn / 4) as f64),
                ("WG", wg as f64),
                ("KH", ph.taps_h as f64),
                ("KW", ph.taps_w as f64),
                ("S", ph.in_stride as f64),
                ("VX", vx as u32 as f64),
            ];
            let bias = self.bias.unwrap_or(self.dummy);
            let x = self.x.tensor.buffer();
            // The vec4 view needs at least one vec4: without VX bind the (vec4) weights there instead.
            let x4 = if vx { x } else { self.w };
            rec.dispatch(
                Kernel::Conv2dForwardTiled,
                &constants,
                &params,
                &[x, self.w, bias, self.out.tensor.buffer(), x4],
                groups,
            )?;
        }
        Ok(())
    }
}

/// The workgroup size for `blocks` pixel blocks (one per invocation): the tile's size, halved (down to 8, one
/// llvmpipe subgroup and two of the smallest wgpu allows) while more than 1/8 of the invocations of the last
/// workgroup would idle. Idle invocations still run the whole reduction, so on FlowNet's 6x8 level (6 blocks
/// per image) a 64-wide workgroup wasted 90 % of the work at batch 1.
pub(crate) fn workgroup_for(tile_wg: u32, blocks: usize) -> u32 {
    let mut wg = tile_wg;
    while wg > 8 {
        let idle = blocks.div_ceil(wg as usize) * wg as usize - blocks;
        if idle * 8 <= blocks {
            break;
        }
        wg /= 2;
    }
    wg
}

/// Records `phases` of `conv` (some or all of [`TiledConv::phases`]) with `tile`, or with the block measured
/// fastest for this layer class on this adapter when `tile` is `None` (measuring it now if this is the first
/// layer of its class).
pub(crate) fn record(
    rec: &mut Recorder<'_>,
    conv: &TiledConv<'_>,
    tile: Option<ConvTile>,
    phases: &[Phase],
) -> Result<()> {
    let tile = match tile {
        Some(t) => t,
        None => choose_tile(rec.context(), conv)?,
    };
    conv.record_phases(rec, tile, phases)
}

/// The tuned tile of this layer's class, measuring the candidates if no choice is cached yet.
fn choose_tile(ctx: &Context, conv: &TiledConv<'_>) -> Result<ConvTile> {
    let candidates = ConvTile::candidates(conv.out.channels, ctx.adapter().subgroup_min_size);
    if !ctx.policy().tune || candidates.len() < 2 {
        return Ok(candidates[0]);
    }
    if conv.flops() < UNTUNED_FLOPS {
        // Compiling the candidates would cost more than any of them could save: take the block that
        // compiles fastest among the usual winners, and leave the class untuned for larger problems.
        let cheap = ConvTile { tm: 16, tn: 8, wg: 64 };
        return Ok(if conv.out.channels >= 16 { cheap } else { candidates[0] });
    }
    let key = conv.class_key();
    if let Some(t) = ctx.tuned(&key).as_deref().and_then(ConvTile::decode) {
        return Ok(t);
    }
    let best = measure(ctx, conv, &candidates)?;
    ctx.set_tuned(&key, best.encode());
    Ok(best)
}

/// Work of one tuning run, in FLOPs, and the fewest output rows it covers: enough workgroups to keep every
/// core of a software rasteriser busy (fewer rows mis-rank the blocks), small enough that tuning a class
/// costs well under a second there. Runs are repeated to at least `MIN_TIME` to rise above the submit
/// overhead on fast GPUs, and each candidate keeps the best of `TIMED_RUNS` (CPU adapters share the machine).
const TUNE_FLOPS: f64 = 4e8;
/// Convolutions below this many FLOPs are not tuned (a few ms on a software rasteriser, microseconds on a
/// GPU, while measuring 3 blocks compiles 3 pipelines: about a second each on llvmpipe for the largest).
/// Tests and small images thus compile one pipeline per layer shape instead of three.
const UNTUNED_FLOPS: f64 = 1e8;
const TUNE_MIN_ROWS: usize = 8;
const MIN_TIME: Duration = Duration::from_millis(4);
const TIMED_RUNS: usize = 3;

/// Times each candidate on a copy of the problem with batch 1 and as many output rows as fit in
/// [`TUNE_FLOPS`] (same channels, kernel, width), in scratch buffers so the caller's tensors, whose
/// producers may still be unsubmitted in the caller's recorder, are neither read nor written.
fn measure(ctx: &Context, conv: &TiledConv<'_>, candidates: &[ConvTile]) -> Result<ConvTile> {
    let (oh, ow) = (conv.out.height(), conv.out.width());
    let flops_per_row = conv.flops() / (conv.x.batch() * oh).max(1) as f64;
    let rows = ((TUNE_FLOPS / flops_per_row.max(1.0)) as usize).max(TUNE_MIN_ROWS).clamp(1, oh.max(1));
    // Input rows the reduced output needs (a transposed conv reads about rows / stride of them).
    let in_rows = match conv.geometry {
        Geometry::Conv => ((rows - 1) * conv.stride + conv.kh).saturating_sub(conv.pad).min(conv.x.height()),
        Geometry::Transposed => (rows.div_ceil(conv.stride) + conv.kh).min(conv.x.height()),
    }
    .max(1);
    let xs = ctx.tensor("conv tuning input", [1, conv.x.channels, in_rows, conv.x.width()])?;
    let outs = ctx.tensor("conv tuning output", [1, conv.out.channels, rows, ow])?;
    let small = TiledConv {
        x: xs.slice_all(),
        out: outs.slice_all(),
        accumulate: false,
        winograd: WinogradUse::Never,
        batched: None,
        ..*conv
    };
    let mut best = (f64::INFINITY, candidates[0]);
    for &tile in candidates {
        // First run compiles (the JIT runs at the first dispatch on some drivers); then time enough
        // repetitions to be above the submit overhead.
        let run = |reps: usize| -> Result<Duration> {
            let mut rec = ctx.recorder("conv tuning");
            for _ in 0..reps {
                small.record(&mut rec, tile)?;
            }
            let t0 = Instant::now();
            rec.submit()?;
            Ok(t0.elapsed())
        };
        run(1)?;
        let once = run(1)?;
        let reps = (MIN_TIME.as_secs_f64() / once.as_secs_f64().max(1e-6)).ceil().clamp(1.0, 64.0) as usize;
        let mut t = f64::INFINITY;
        for _ in 0..TIMED_RUNS {
            t = t.min(run(reps)?.as_secs_f64() / reps as f64);
        }
        if t < best.0 {
            best = (t, tile);
        }
    }
    Ok(best.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workgroup_shrinks_until_little_idles() {
        assert_eq!(workgroup_for(64, 4096), 64);
        assert_eq!(workgroup_for(64, 48), 16); // 64: 16 idle of 48; 32: 16 idle; 16: none
        assert_eq!(workgroup_for(64, 6), 8); // never below 8
        assert_eq!(workgroup_for(64, 60), 64); // 4 idle <= 60 / 8
        assert_eq!(workgroup_for(4, 3), 4);
        for blocks in 1..300 {
            let wg = workgroup_for(64, blocks) as usize;
            let idle = blocks.div_ceil(wg) * wg - blocks;
            assert!(wg == 8 || idle * 8 <= blocks, "{blocks} blocks: wg {wg} idles {idle}");
        }
    }

    #[test]
    fn groups_split_past_the_dimension_limit() {
        assert_eq!(split_groups(0, 65535), (0, 1));
        assert_eq!(split_groups(1, 65535), (1, 1));
        assert_eq!(split_groups(65535, 65535), (65535, 1));
        for groups in [65536, 200_000, 1 << 24] {
            let (x, z) = split_groups(groups, 65535);
            assert!(x <= 65535 && x * z >= groups && x * (z - 1) < groups, "{groups}: {x} x {z}");
        }
    }
}
