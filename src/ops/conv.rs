//! conv2d and conv_transpose2d forward (CPU references: `crate::reference::conv`). PyTorch semantics throughout:
//! cross-correlation, zero padding, weights [cout, cin, kh, kw] for conv2d and [cin, cout, kh, kw] for
//! conv_transpose2d.
//!
//! Two implementations, chosen per layer by [`ConvAlgo`] (default: tiled): the baseline direct kernels
//! (`shaders/conv2d_forward.wgsl`, `shaders/conv_transpose2d_forward.wgsl`) and the tiled implicit GEMM
//! (`shaders/conv2d_forward_tiled.wgsl`, see [`super::conv_tiled`]), which also runs transposed convs as
//! stride phases without wasted taps. Both fuse bias and LeakyReLU and read/write channel slices. The
//! backward passes are in [`super::conv_backward`].

use super::conv_tiled::{tiled_conv, tiled_supported, ConvTile, Geometry, TiledConv};
use super::conv_winograd::WinogradUse;
use super::{u32_of, Slice};
use crate::error::{Error, Result};
pub use crate::reference::conv::ConvSpec;
use crate::runtime::{Context, HostTensor, Kernel, Recorder, Tensor};

/// Which kernel runs a convolution.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ConvAlgo {
    /// The first, correctness-first kernels (`conv2d_forward`, `conv_transpose2d_forward`): 4 channels x 4
    /// pixels per invocation, transposed convs as a gather that tests every tap. Kept as the baseline to
    /// measure against. Forward only: the backward passes always run the tiled kernels.
    Direct,
    /// The implicit-GEMM kernel (`conv2d_forward_tiled`) with the register block measured fastest for the
    /// layer's shape class on this adapter (measured at first use, cached in the [`Context`]).
    #[default]
    Tiled,
    /// The implicit-GEMM kernel with a fixed register block (tests, benches, reproducible runs). Never
    /// Winograd.
    TiledWith(ConvTile),
    /// The Winograd form (`ops::conv_winograd`) for every layer, stride phase and gradient that qualifies
    /// (3x3 stride 1; 3x3 to 6x6 stride 2 over their input phases; the 2x2 and larger phases of transposed
    /// convolutions), whatever its size; the tuned tiled kernel elsewhere. [`ConvAlgo::Tiled`] uses it only
    /// where it gains (large enough layers; weight gradients only at >= 2.5x fewer multiplications).
    Winograd,
}

impl ConvAlgo {
    /// The tile (None: tuned) and Winograd policy of the tiled kernels for this choice (not `Direct`).
    pub(crate) fn tiled_policy(self) -> (Option<ConvTile>, WinogradUse) {
        match self {
            ConvAlgo::TiledWith(t) => (Some(t), WinogradUse::Never),
            ConvAlgo::Winograd => (None, WinogradUse::Always),
            ConvAlgo::Tiled | ConvAlgo::Direct => (None, WinogradUse::Auto),
        }
    }
}

impl ConvAlgo {
    /// `CORRFLOW_CONV_ALGO=direct` selects [`ConvAlgo::Direct`] for every layer built afterwards (to measure
    /// the speed-up of a whole network); anything else, or unset, selects [`ConvAlgo::Tiled`].
    pub fn from_env() -> Self {
        match std::env::var("CORRFLOW_CONV_ALGO").map(|v| v.to_ascii_lowercase()).as_deref() {
            Ok("direct") => ConvAlgo::Direct,
            _ => ConvAlgo::Tiled,
        }
    }
}

/// The WGSL `Params` twin shared by both conv kernels.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
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

/// Convolution weights on the GPU, packed once for the kernels: [(ci * kh + ky) * kw + kx][cout4] vec4.
pub struct ConvWeights {
    pub cin: usize,
    pub cout: usize,
    pub kh: usize,
    pub kw: usize,
    pub transposed: bool,
    packed: Tensor,
    bias: Option<Tensor>,
    no_bias: Tensor,
    algo: ConvAlgo,
    /// Buffers the backward passes reuse (swapped weights, partial weight gradients).
    pub(crate) scratch: super::conv_backward::ScratchCell,
}

/// Packs PyTorch conv weights into the kernels' layout. `transposed` selects [cin, cout, kh, kw].
pub fn pack_weights(w: &HostTensor, transposed: bool) -> Vec<f32> {
    let [a, b, kh, kw] = w.shape;
    let (cout, cin) = if transposed { (b, a) } else { (a, b) };
    let cout4 = cout.div_ceil(4);
    let mut packed = vec![0.0f32; cin * kh * kw * cout4 * 4];
    for ci in 0..cin {
        for co in 0..cout {
            for ky in 0..kh {
                for kx in 0..kw {
                    let v = if transposed { w.at(ci, co, ky, kx) } else { w.at(co, ci, ky, kx) };
                    packed[((ci * kh + ky) * kw + kx) * cout4 * 4 + co] = v;
                }
            }
        }
    }
    packed
}

impl ConvWeights {
    /// Uploads conv2d (`transposed = false`, [cout, cin, kh, kw]) or conv_transpose2d (`true`,
    /// [cin, cout, kh, kw]) weights and an optional bias [cout].
    pub fn new(ctx: &Context, name: &str, weight: &HostTensor, bias: Option<&[f32]>, transposed: bool) -> Result<Self> {
        let [a, b, kh, kw] = weight.shape;
        let (cout, cin) = if transposed { (b, a) } else { (a, b) };
        if cout == 0 || cin == 0 || kh == 0 || kw == 0 {
            return Err(Error::Shape {
                op: "conv weights",
                message: format!("{name}: empty weight shape {:?}", weight.shape),
            });
        }
        if let Some(bias) = bias {
            if bias.len() != cout {
                return Err(Error::Shape {
                    op: "conv weights",
                    message: format!("{name}: bias has {} values, expected {cout}", bias.len()),
                });
            }
        }
        let packed_data = pack_weights(weight, transposed);
        let packed = ctx.upload(name, &HostTensor::new([1, 1, 1, packed_data.len()], packed_data)?)?;
        let bias = match bias {
            Some(b) => Some(ctx.upload(&format!("{name}.bias"), &HostTensor::new([1, 1, 1, cout], b.to_vec())?)?),
            None => None,
        };
        let no_bias = ctx.tensor("no_bias", [1, 1, 1, 1])?;
        Ok(ConvWeights {
            cin,
            cout,
            kh,
            kw,
            transposed,
            packed,
            bias,
            no_bias,
            algo: ConvAlgo::from_env(),
            scratch: Default::default(),
        })
    }

    pub fn has_bias(&self) -> bool {
        self.bias.is_some()
    }

    /// The kernel [`conv_forward`] (and the backward passes) use for these weights.
    pub fn algo(&self) -> ConvAlgo {
        self.algo
    }
    /// The kernel that actually runs on `ctx`: [`ConvAlgo::Tiled`] becomes [`ConvAlgo::Direct`] on
    /// adapters without subgroup operations (GL), where the tiled kernels cannot be built.
    pub fn effective_algo(&self, ctx: &Context) -> ConvAlgo {
        match self.algo {
            ConvAlgo::Tiled | ConvAlgo::Winograd if !tiled_supported(ctx) => ConvAlgo::Direct,
            a => a,
        }
    }
    pub fn set_algo(&mut self, algo: ConvAlgo) {
        self.algo = algo;
    }
    pub fn with_algo(mut self, algo: ConvAlgo) -> Self {
        self.algo = algo;
        self
    }

    /// Output channels rounded up to a multiple of 4: the row length, in vec4, of the packed layout.
    pub fn cout4(&self) -> usize {
        self.cout.div_ceil(4)
    }

    /// The packed weights `[(ci * kh + ky) * kw + kx][cout4]` of vec4 (see [`pack_weights`]). Training
    /// updates this buffer in place; its gradient has the same layout ([`ConvWeights::new_grads`]).
    pub fn packed(&self) -> &Tensor {
        &self.packed
    }

    /// The bias `[cout]`, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// Downloads the weights in PyTorch's layout (`[cout, cin, kh, kw]`, or `[cin, cout, kh, kw]` when
    /// transposed) and the bias.
    pub fn download(&self, ctx: &Context) -> Result<(HostTensor, Option<Vec<f32>>)> {
        let packed = ctx.download(&self.packed)?;
        let bias = match &self.bias {
            Some(b) => Some(ctx.download(b)?.data),
            None => None,
        };
        Ok((self.unpack(&packed.data), bias))
    }

    /// The inverse of [`pack_weights`] for these weights' shape: PyTorch's layout from the packed one
    /// (also the layout of the weight gradient).
    pub fn unpack(&self, packed: &[f32]) -> HostTensor {
        let shape = if self.transposed {
            [self.cin, self.cout, self.kh, self.kw]
        } else {
            [self.cout, self.cin, self.kh, self.kw]
        };
        let mut w = HostTensor::zeros(shape);
        let row = self.cout4() * 4;
        for ci in 0..self.cin {
            for co in 0..self.cout {
                for ky in 0..self.kh {
                    for kx in 0..self.kw {
                        let v =
                            packed.get(((ci * self.kh + ky) * self.kw + kx) * row + co).copied().unwrap_or(f32::NAN);
                        let i = if self.transposed { w.idx(ci, co, ky, kx) } else { w.idx(co, ci, ky, kx) };
                        w.data[i] = v;
                    }
                }
            }
        }
        w
    }

    /// A small buffer bound where a kernel's optional operand is absent.
    pub(crate) fn dummy(&self) -> &Tensor {
        &self.no_bias
    }
}

/// Records a conv2d (or conv_transpose2d when the weights are transposed) from the channel slice `x` into
/// the channel slice `out`. `out`'s height/width must equal the conv output size; for a transposed conv
/// they may be smaller (top-left crop, FlowNet's `crop_like`).
pub fn conv_forward(
    rec: &mut Recorder<'_>,
    x: Slice<'_>,
    w: &ConvWeights,
    spec: ConvSpec,
    out: Slice<'_>,
) -> Result<()> {
    let op = if w.transposed { "conv_transpose2d" } else { "conv2d" };
    if spec.stride == 0 {
        return Err(Error::InvalidParam { op, message: "stride must be >= 1".into() });
    }
    if x.channels != w.cin {
        return Err(Error::Shape {
            op,
            message: format!("input has {} channels, weights expect {}", x.channels, w.cin),
        });
    }
    if out.channels != w.cout {
        return Err(Error::Shape {
            op,
            message: format!("output slice has {} channels, weights give {}", out.channels, w.cout),
        });
    }
    if x.batch() != out.batch() {
        return Err(Error::Shape {
            op,
            message: format!("input batch {} but output batch {}", x.batch(), out.batch()),
        });
    }
    let (oh, ow) = (out.height(), out.width());
    if w.transposed {
        let full = (spec.transposed_out(x.height(), w.kh), spec.transposed_out(x.width(), w.kw));
        match full {
            (Some(fh), Some(fw)) if oh <= fh && ow <= fw => {}
            _ => {
                return Err(Error::Shape {
                    op,
                    message: format!(
                        "output {oh}x{ow} larger than the transposed conv's {full:?} for input {}x{}",
                        x.height(),
                        x.width()
                    ),
                })
            }
        }
    } else {
        let want = (spec.conv_out(x.height(), w.kh), spec.conv_out(x.width(), w.kw));
        if want != (Some(oh), Some(ow)) {
            return Err(Error::Shape {
                op,
                message: format!(
                    "output is {oh}x{ow}, but a {}x{} kernel (stride {}, pad {}) on {}x{} gives {want:?}",
                    w.kh,
                    w.kw,
                    spec.stride,
                    spec.pad,
                    x.height(),
                    x.width()
                ),
            });
        }
    }
    let algo = w.effective_algo(rec.context());
    if algo == ConvAlgo::Direct {
        return conv_forward_direct(rec, x, w, spec, out);
    }
    let (tile, winograd) = algo.tiled_policy();
    let conv = TiledConv {
        op,
        geometry: if w.transposed { Geometry::Transposed } else { Geometry::Conv },
        x,
        w: w.packed.buffer(),
        w_cout4: w.cout4(),
        kh: w.kh,
        kw: w.kw,
        stride: spec.stride,
        pad: spec.pad,
        out,
        bias: w.bias.as_ref().map(|b| b.buffer()),
        dummy: w.no_bias.buffer(),
        leaky: spec.leaky,
        accumulate: false,
        winograd,
        batched: None,
    };
    tiled_conv(rec, &conv, tile)
}

/// Multiply-adds x 2 that [`conv_forward`] performs for these shapes, counting only real taps (for a
/// transposed conv, the products with input values; both algorithms are credited with the same FLOPs).
pub fn conv_flops(x: Slice<'_>, w: &ConvWeights, spec: ConvSpec, out: Slice<'_>) -> f64 {
    TiledConv {
        op: "conv_flops",
        geometry: if w.transposed { Geometry::Transposed } else { Geometry::Conv },
        x,
        w: w.packed.buffer(),
        w_cout4: w.cout4(),
        kh: w.kh,
        kw: w.kw,
        stride: spec.stride.max(1),
        pad: spec.pad,
        out,
        bias: None,
        dummy: w.no_bias.buffer(),
        leaky: None,
        accumulate: false,
        winograd: WinogradUse::Never,
        batched: None,
    }
    .flops()
}

/// The baseline kernels (shapes already checked by [`conv_forward`]).
fn conv_forward_direct(
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
    let bias = w.bias.as_ref().unwrap_or(&w.no_bias);
    rec.dispatch(
        kernel,
        &[],
        &params,
        &[x.tensor.buffer(), w.packed.buffer(), bias.buffer(), out.tensor.buffer()],
        groups,
    )
}
