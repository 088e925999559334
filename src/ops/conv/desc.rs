//! The description of one convolution as the tiled kernels see it ([`TiledConv`]: input and output slices,
//! packed weights, geometry, epilogue), built by one constructor, and its split into the stride phases that
//! are each one gather dispatch ([`TiledConv::phases`]):
//!
//! * conv2d: one phase, a stride-`s` gather over the input.
//! * conv_transpose2d (and the input gradient of conv2d, which is one): one stride-1 sub-convolution per
//!   output stride phase (py, px). Output row oy = qy s + py receives input rows iy = (oy + pad - ky) / s
//!   for the taps ky = r + s t (r = (py + pad) mod s); with d = (py + pad) div s that is iy = qy + d - t, a
//!   stride-1 convolution with ceil((k - r) / s) taps and the flipped sub-kernel. Every tap it computes is a
//!   real tap: no scatter, no multiplications by structural zeros.

use super::algo::WinogradUse;
use crate::ops::Slice;

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
/// slice (any size for `Transposed`: outputs no tap reaches get the bias). Built by [`TiledConv::new`] (or
/// [`TiledConv::gemm`]), with the fields that differ from its defaults set by struct update.
#[derive(Clone, Copy, Debug)]
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
    /// Whether a layer that qualifies runs as a Winograd convolution (`ops::conv`, `winograd.rs`).
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

impl<'a> TiledConv<'a> {
    /// The convolution of `x` into `out` with packed weights `w` (`w_cout4` output-channel quads per tap) of
    /// a `kernel` = (kh, kw) kernel: no bias (`dummy`, any small storage buffer, is bound in its place), no
    /// activation, `out` overwritten, the tiled kernel only (no Winograd form), one component.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        op: &'static str,
        geometry: Geometry,
        x: Slice<'a>,
        w: &'a wgpu::Buffer,
        w_cout4: usize,
        kernel: (usize, usize),
        (stride, pad): (usize, usize),
        out: Slice<'a>,
        dummy: &'a wgpu::Buffer,
    ) -> Self {
        TiledConv {
            op,
            geometry,
            x,
            w,
            w_cout4,
            kh: kernel.0,
            kw: kernel.1,
            stride,
            pad,
            out,
            bias: None,
            dummy,
            leaky: None,
            accumulate: false,
            winograd: WinogradUse::Never,
            batched: None,
        }
    }

    /// `batched.comps` independent 1x1 convolutions (GEMMs) in one dispatch: x [comps, C, 1, T] -> out
    /// [comps, cout, 1, T], component c with its own weights (the Winograd path's products).
    pub(crate) fn gemm(
        op: &'static str,
        x: Slice<'a>,
        w: &'a wgpu::Buffer,
        w_cout4: usize,
        out: Slice<'a>,
        dummy: &'a wgpu::Buffer,
        batched: Batched,
    ) -> Self {
        TiledConv { batched: Some(batched), ..Self::new(op, Geometry::Conv, x, w, w_cout4, (1, 1), (1, 0), out, dummy) }
    }

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
    pub(crate) fn class_key(&self) -> String {
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
}
