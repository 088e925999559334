//! The tiled convolution kernel (`shaders/conv2d_forward_tiled.wgsl`, an implicit GEMM with register
//! blocking) and how every convolution maps onto it:
//!
//! * conv2d: one dispatch, stride-`s` gather over the input.
//! * conv_transpose2d (and the input gradient of conv2d, which is one): one stride-1 sub-convolution per
//!   output stride phase (py, px). Output row oy = qy s + py receives input rows iy = (oy + pad - ky) / s
//!   for the taps ky = r + s t (r = (py + pad) mod s); with d = (py + pad) div s that is iy = qy + d - t, a
//!   stride-1 convolution with ceil((k - r) / s) taps and the flipped sub-kernel. Every tap it computes is a
//!   real tap: no scatter, no multiplications by structural zeros, so it runs at the speed of a conv of the
//!   same FLOPs.
//!
//! The register block (output channels x output columns per invocation, and the workgroup size) is a set of
//! WGSL `override` constants. Which block is fastest depends on the adapter and the layer, so the first
//! convolution of each layer-shape class (kind, kernel, stride, and channel counts and width rounded up to
//! powers of two) times the 2-3 [`ConvTile::candidates`] on a reduced copy of the problem and caches the
//! winner in the [`Context`] ([`Context::tuned_all`] lists them). Tuning costs a few pipeline compilations
//! per class at first use; `CORRFLOW_CONV_TUNE=0` skips it and takes the first candidate. Convolutions of
//! under 1e8 FLOPs are not tuned (they take a 16 x 8 block, or the first candidate for fewer channels).
//!
//! The kernels share weight loads between lanes with subgroup shuffles, so they need
//! [`wgpu::Features::SUBGROUP`] (requested by [`Context`] where offered: Vulkan, Metal, DX12; not GL).

use std::time::{Duration, Instant};

use super::conv_winograd::WinogradUse;
use super::{split_groups, u32_of, Slice};
use crate::error::{Error, Result};
use crate::runtime::{Context, Kernel, Recorder};

/// Register block of the tiled kernel: `tm` output channels x `tn` output columns per invocation (both
/// multiples of 4; `tm` at most 32, `tn` at most 16), `wg` invocations per workgroup (all along the pixels;
/// the workgroup shares one block of channels).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvTile {
    pub tm: u32,
    pub tn: u32,
    pub wg: u32,
}

impl ConvTile {
    /// Every block the kernel supports that is worth measuring, largest first. [`ConvTile::candidates`]
    /// picks the few that fit a layer.
    pub const ALL: &'static [ConvTile] = &[
        ConvTile { tm: 32, tn: 8, wg: 64 },
        ConvTile { tm: 32, tn: 4, wg: 64 },
        ConvTile { tm: 16, tn: 8, wg: 64 },
        ConvTile { tm: 16, tn: 4, wg: 64 },
        ConvTile { tm: 8, tn: 8, wg: 64 },
        ConvTile { tm: 8, tn: 4, wg: 64 },
        ConvTile { tm: 4, tn: 16, wg: 64 },
        ConvTile { tm: 4, tn: 8, wg: 64 },
    ];

    /// The blocks measured for a layer with `cout` output channels on an adapter whose subgroups have at
    /// least `subgroup_min` lanes (each block is a pipeline to compile, so only 2-3 that do not waste most
    /// of a block on padding channels). The first is the default when tuning is off.
    ///
    /// 32-channel blocks need 8 lanes (lane l loads channel quad l % 8). On llvmpipe they were measured
    /// 0-27 % faster than 16 x 8 on FlowNet's layers with 128 or more output channels (conv3, conv4_1,
    /// deconv3 most), because one weight load per lane then feeds twice the multiply-adds.
    pub fn candidates(cout: usize, subgroup_min: u32) -> Vec<ConvTile> {
        let order: &[(u32, u32)] = if cout >= 32 && subgroup_min >= 8 {
            &[(32, 8), (16, 8), (32, 4)]
        } else if cout >= 16 {
            &[(16, 8), (16, 4), (8, 8)]
        } else if cout >= 8 {
            &[(8, 8), (8, 4), (4, 16)]
        } else {
            &[(4, 16), (4, 8)]
        };
        order.iter().map(|&(tm, tn)| ConvTile { tm, tn, wg: 64 }).collect()
    }

    /// Whether the kernel can run this block on an adapter allowing `max_invocations` per workgroup with
    /// subgroups of at least `subgroup_min` lanes. `wg` must be a multiple of 4 so that every subgroup has
    /// the lanes the weight shuffles read from, and `tm / 4` (the channel quads shared by shuffles) must
    /// not exceed the subgroup.
    pub fn supports(&self, max_invocations: u32, subgroup_min: u32) -> bool {
        let ok = |v: u32, max: u32| (4..=max).contains(&v) && v.is_multiple_of(4);
        ok(self.tm, Self::max_tm(subgroup_min))
            && ok(self.tn, 16)
            && self.wg >= 4
            && self.wg.is_multiple_of(4)
            && self.wg <= max_invocations
    }

    /// The most output channels a block may have with subgroups of at least `subgroup_min` lanes: 4 per
    /// lane the weight shuffles read from, at most 8 such lanes (wgpu guarantees 4).
    pub fn max_tm(subgroup_min: u32) -> u32 {
        4 * subgroup_min.clamp(4, 8)
    }

    fn encode(&self) -> Vec<u32> {
        vec![self.tm, self.tn, self.wg]
    }
    fn decode(v: &[u32]) -> Option<ConvTile> {
        match v {
            [tm, tn, wg] => Some(ConvTile { tm: *tm, tn: *tn, wg: *wg }),
            _ => None,
        }
    }
}

/// Whether the tiled kernels can run on this device: they share weight loads across lanes with subgroup
/// shuffles (Vulkan, Metal and DX12 adapters; not GL). Without them [`ConvAlgo::Tiled`] runs the direct
/// kernels.
///
/// [`ConvAlgo::Tiled`]: super::conv::ConvAlgo::Tiled
pub fn tiled_supported(ctx: &Context) -> bool {
    ctx.device().features().contains(wgpu::Features::SUBGROUP)
}

/// The WGSL `Params` twin of `conv2d_forward_tiled`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
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

/// Which convolution a [`TiledConv`] computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Geometry {
    /// out[oy] gathers in[oy * stride - pad + ky].
    Conv,
    /// out[iy * stride - pad + ky] receives in[iy] (conv_transpose2d), run as stride phases.
    Transposed,
}

/// A full convolution for the tiled kernel: input slice, weights in the packed layout
/// `[(ci * kh + ky) * kw + kx][w_cout4]` of vec4 (`ci` = the input channel of *this* convolution), output
/// slice (any size for `Transposed`: outputs no tap reaches get the bias).
pub(crate) struct TiledConv<'a> {
    pub op: &'static str,
    pub geometry: Geometry,
    pub x: Slice<'a>,
    pub w: &'a wgpu::Buffer,
    pub w_cout4: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub pad: usize,
    pub out: Slice<'a>,
    pub bias: Option<&'a wgpu::Buffer>,
    /// Bound in place of a missing bias (any small storage buffer).
    pub dummy: &'a wgpu::Buffer,
    pub leaky: Option<f32>,
    pub accumulate: bool,
    /// Whether a layer that qualifies runs as a Winograd convolution (`ops::conv_winograd`).
    pub winograd: WinogradUse,
    /// `Some` for the Winograd path's batched GEMM: `x` and `out` are then [comps, C, 1, T] and every
    /// component has its own weights.
    pub batched: Option<Batched>,
}

/// Independent convolutions of one shape in one dispatch (see `conv2d_forward_tiled.wgsl`): component c
/// reads x, w and out at c * x_stride floats, c * w_stride vec4 and c * out_stride floats.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Batched {
    pub comps: usize,
    pub x_stride: usize,
    pub out_stride: usize,
    pub w_stride: usize,
}

/// One dispatch: a gather convolution writing one output stride phase.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Phase {
    pub taps_h: usize,
    pub taps_w: usize,
    pub in_stride: usize,
    pub pad_y: i64,
    pub pad_x: i64,
    pub ky0: usize,
    pub kx0: usize,
    pub kstep: i64,
    pub out_step: usize,
    pub phase_y: usize,
    pub phase_x: usize,
    pub grid_h: usize,
    pub grid_w: usize,
}

/// Taps of one stride phase of a transposed conv along one axis: (taps, first kernel index, pad) for
/// output index o = q s + phase (see the module docs).
fn transposed_axis(phase: usize, k: usize, s: usize, pad: usize) -> (usize, usize, i64) {
    let r = (phase + pad) % s;
    let d = (phase + pad) / s;
    if r >= k {
        return (0, 0, 0);
    }
    let taps = (k - r).div_ceil(s);
    (taps, r + s * (taps - 1), taps as i64 - 1 - d as i64)
}

impl TiledConv<'_> {
    pub(crate) fn phases(&self) -> Vec<Phase> {
        let (oh, ow) = (self.out.height(), self.out.width());
        match self.geometry {
            Geometry::Conv => vec![Phase {
                taps_h: self.kh,
                taps_w: self.kw,
                in_stride: self.stride,
                pad_y: self.pad as i64,
                pad_x: self.pad as i64,
                ky0: 0,
                kx0: 0,
                kstep: 1,
                out_step: 1,
                phase_y: 0,
                phase_x: 0,
                grid_h: oh,
                grid_w: ow,
            }],
            Geometry::Transposed => {
                let s = self.stride;
                let mut phases = Vec::with_capacity(s * s);
                for py in 0..s.min(oh) {
                    for px in 0..s.min(ow) {
                        let (taps_h, ky0, pad_y) = transposed_axis(py, self.kh, s, self.pad);
                        let (taps_w, kx0, pad_x) = transposed_axis(px, self.kw, s, self.pad);
                        phases.push(Phase {
                            taps_h,
                            taps_w,
                            in_stride: 1,
                            pad_y,
                            pad_x,
                            ky0,
                            kx0,
                            kstep: -(s as i64),
                            out_step: s,
                            phase_y: py,
                            phase_x: px,
                            grid_h: (oh - py).div_ceil(s),
                            grid_w: (ow - px).div_ceil(s),
                        });
                    }
                }
                phases
            }
        }
    }

    /// Multiply-adds of the whole convolution (real taps only) x 2.
    pub fn flops(&self) -> f64 {
        let per_pixel: f64 = self.phases().iter().map(|p| (p.taps_h * p.taps_w * p.grid_h * p.grid_w) as f64).sum();
        2.0 * per_pixel * (self.x.channels * self.out.channels * self.x.batch()) as f64
    }

    /// The layer-shape class whose tile choice this convolution shares.
    fn class_key(&self) -> String {
        let pow2 = |v: usize| v.next_power_of_two();
        format!(
            "conv_tiled/{:?}/k{}x{}/s{}/cin{}/cout{}/w{}",
            self.geometry,
            self.kh,
            self.kw,
            self.stride,
            pow2(self.x.channels),
            pow2(self.out.channels),
            pow2(self.out.width())
        )
    }

    fn record(&self, rec: &mut Recorder<'_>, tile: ConvTile) -> Result<()> {
        self.record_phases(rec, tile, &self.phases())
    }

    /// Records the dispatches of `phases` (some or all of [`TiledConv::phases`]) with `tile`.
    fn record_phases(&self, rec: &mut Recorder<'_>, tile: ConvTile, phases: &[Phase]) -> Result<()> {
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
            let i32_of = |what: &str, v: i64| {
                i32::try_from(v)
                    .map_err(|_| Error::InvalidParam { op, message: format!("{what} = {v} exceeds the i32 range") })
            };
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
                pad_y: i32_of("pad", ph.pad_y)?,
                pad_x: i32_of("pad", ph.pad_x)?,
                w_kh: u32_of(op, "kh", self.kh)?,
                w_kw: u32_of(op, "kw", self.kw)?,
                w_ky0: ph.ky0 as u32,
                w_kx0: ph.kx0 as u32,
                w_kstep: i32_of("stride", ph.kstep)?,
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

/// Records the convolution with `tile`, or with the block measured fastest for this layer class on this
/// adapter when `tile` is `None` (measuring it now if this is the first layer of its class).
/// Phases that qualify ([`super::conv_winograd::applies`]) run in the Winograd form, the others with the
/// tiled kernel.
pub(crate) fn tiled_conv(rec: &mut Recorder<'_>, conv: &TiledConv<'_>, tile: Option<ConvTile>) -> Result<()> {
    let mut direct = Vec::new();
    for ph in conv.phases() {
        if !super::conv_winograd::record_phase(rec, conv, &ph)? {
            direct.push(ph);
        }
    }
    if direct.is_empty() {
        return Ok(());
    }
    let tile = match tile {
        Some(t) => t,
        None => choose_tile(rec.context(), conv)?,
    };
    conv.record_phases(rec, tile, &direct)
}

/// Whether first-use tuning is on (`CORRFLOW_CONV_TUNE=0` switches it off: the first candidate is used).
fn tuning_enabled() -> bool {
    !matches!(std::env::var("CORRFLOW_CONV_TUNE").as_deref(), Ok("0") | Ok("off") | Ok("false"))
}

/// The tuned tile of this layer's class, measuring the candidates if no choice is cached yet.
fn choose_tile(ctx: &Context, conv: &TiledConv<'_>) -> Result<ConvTile> {
    let candidates = ConvTile::candidates(conv.out.channels, ctx.adapter().subgroup_min_size);
    if !tuning_enabled() || candidates.len() < 2 {
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
        op: conv.op,
        geometry: conv.geometry,
        x: xs.slice_all(),
        w: conv.w,
        w_cout4: conv.w_cout4,
        kh: conv.kh,
        kw: conv.kw,
        stride: conv.stride,
        pad: conv.pad,
        out: outs.slice_all(),
        bias: conv.bias,
        dummy: conv.dummy,
        leaky: conv.leaky,
        accumulate: false,
        winograd: WinogradUse::Never,
        batched: None,
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
