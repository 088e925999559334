//! Convolution parameters on the GPU: the weights packed once for the kernels ([`ConvWeights`]), their
//! gradients in the same layout ([`ConvGrads`]), and the scratch buffers a layer's backward pass reuses.

use std::sync::Mutex;

use super::algo::ConvAlgo;
use super::desc::{Geometry, TiledConv};
use super::select;
use crate::error::{Error, Result};
use crate::ops::Slice;
use crate::reference::conv::ConvSpec;
use crate::runtime::{Context, HostTensor, Tensor};

/// Convolution weights on the GPU, packed once for the kernels: `[(ci * kh + ky) * kw + kx][cout4]` vec4.
pub struct ConvWeights {
    pub cin: usize,
    pub cout: usize,
    pub kh: usize,
    pub kw: usize,
    pub transposed: bool,
    packed: Tensor,
    bias: Option<Tensor>,
    no_bias: Tensor,
    /// The kernel these weights ask for (`None`: the context policy's).
    algo: Option<ConvAlgo>,
    /// Buffers the backward passes reuse (swapped weights, partial weight gradients).
    pub(crate) scratch: ScratchCell,
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
    /// [cin, cout, kh, kw]) weights and an optional bias `[cout]`.
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
            algo: None,
            scratch: Default::default(),
        })
    }

    pub fn has_bias(&self) -> bool {
        self.bias.is_some()
    }

    /// The kernel [`conv_forward`](super::conv_forward) (and the backward passes) use for these weights;
    /// `None` (the default): whatever the context's [`Policy`](crate::runtime::Policy) says.
    pub fn algo(&self) -> Option<ConvAlgo> {
        self.algo
    }
    /// The kernel asked for on `ctx`: these weights' own choice, else the context's policy.
    pub fn chosen_algo(&self, ctx: &Context) -> ConvAlgo {
        self.algo.unwrap_or(ctx.policy().conv)
    }
    /// The kernel that actually runs on `ctx`: [`ConvAlgo::Tiled`] becomes [`ConvAlgo::Direct`] on
    /// adapters without subgroup operations (GL), where the tiled kernels cannot be built.
    pub fn effective_algo(&self, ctx: &Context) -> ConvAlgo {
        select::effective(ctx, self.chosen_algo(ctx))
    }
    /// Chooses the kernel of these weights (`None`: follow the context's policy).
    pub fn set_algo(&mut self, algo: impl Into<Option<ConvAlgo>>) {
        self.algo = algo.into();
    }
    pub fn with_algo(mut self, algo: impl Into<Option<ConvAlgo>>) -> Self {
        self.algo = algo.into();
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

    /// The geometry of the forward convolution of these weights.
    pub(crate) fn geometry(&self) -> Geometry {
        if self.transposed {
            Geometry::Transposed
        } else {
            Geometry::Conv
        }
    }

    /// The convolution of `x` into `out` with these (packed) weights and `spec`'s geometry, as
    /// [`TiledConv::new`] describes it (no bias, no activation: set them where the kernel applies them).
    pub(crate) fn tiled<'a>(
        &'a self,
        op: &'static str,
        geometry: Geometry,
        x: Slice<'a>,
        spec: ConvSpec,
        out: Slice<'a>,
    ) -> TiledConv<'a> {
        let (w, cout4) = (self.packed.buffer(), self.cout4());
        TiledConv::new(
            op,
            geometry,
            x,
            w,
            cout4,
            (self.kh, self.kw),
            (spec.stride, spec.pad),
            out,
            self.no_bias.buffer(),
        )
    }

    /// A small buffer bound where a kernel's optional operand is absent.
    pub(crate) fn dummy(&self) -> &Tensor {
        &self.no_bias
    }
}

/// Gradients of one conv layer's parameters: `weight` in the packed layout of [`ConvWeights::packed`],
/// `bias` `[cout]`. Kernels add into them (`+=`); zero them with [`ConvGrads::zero`] before a step.
pub struct ConvGrads {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl ConvGrads {
    /// Zeroes both gradients (queued on the device queue, ahead of the next submit).
    pub fn zero(&self, ctx: &Context) -> Result<()> {
        ctx.fill(&self.weight, 0.0)?;
        if let Some(b) = &self.bias {
            ctx.fill(b, 0.0)?;
        }
        Ok(())
    }

    /// Downloads the weight gradient in PyTorch's layout of `w` and the bias gradient.
    pub fn download(&self, ctx: &Context, w: &ConvWeights) -> Result<(HostTensor, Option<Vec<f32>>)> {
        let packed = ctx.download(&self.weight)?;
        let weight = w.unpack(&packed.data);
        let bias = match &self.bias {
            Some(b) => Some(ctx.download(b)?.data),
            None => None,
        };
        Ok((weight, bias))
    }
}

impl ConvWeights {
    /// Zero-filled gradients shaped like these parameters.
    pub fn new_grads(&self, ctx: &Context, name: &str) -> Result<ConvGrads> {
        let weight = ctx.tensor(&format!("{name}.grad"), self.packed().shape())?;
        let bias = match self.bias() {
            Some(_) => Some(ctx.tensor(&format!("{name}.bias.grad"), [1, 1, 1, self.cout])?),
            None => None,
        };
        Ok(ConvGrads { weight, bias })
    }
}

/// Scratch buffers a layer's backward pass reuses from call to call.
#[derive(Default)]
pub(crate) struct BackwardScratch {
    /// The packed weights with the channel roles swapped (rebuilt at every call: the optimizer moves them).
    pub(crate) swapped: Option<Tensor>,
    /// Per-split partial weight gradients.
    pub(crate) partial: Option<Tensor>,
}

pub(crate) type ScratchCell = Mutex<BackwardScratch>;
