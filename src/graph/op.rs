//! The [`Op`] trait: everything the graph's passes need to know about one kind of node, in one place.

use crate::error::Result;
use crate::host::Tensor64;
use crate::ops::conv::{ConvAlgo, ConvGrads, ConvWeights};
use crate::ops::Slice;
use crate::runtime::{Recorder, Tensor};

use super::LayerId;

/// One kind of node (conv, correlation, ...): its shape rule and cost, its GPU forward and backward
/// (recorded with the host functions of [`crate::ops`]) and its f64 CPU forward and backward (with
/// [`crate::reference`]). The graph's passes only ever talk to nodes through this trait.
///
/// Gradient conventions, as in the kernels: an op's backward receives the gradient of its output (which it
/// may modify in place: it is the last to read it) and adds (`+=`) into its inputs' gradients, which start at
/// zero, and into its layer's parameter gradients.
pub trait Op: std::fmt::Debug + Send + Sync {
    /// What the node's work is called in per-layer timings, FLOP tables and errors: its layer's name, or the
    /// op kind.
    fn label(&self) -> String;

    /// The layer whose parameters the op uses, if any.
    fn layer(&self) -> Option<LayerId> {
        None
    }

    /// Whether the op reads input `i`'s values (false for an input that only lends its shape, such as a crop
    /// reference: no gradient flows to it).
    fn reads(&self, _input: usize) -> bool {
        true
    }

    /// Output channels for inputs with these channel counts (checked when the node is added).
    fn channels(&self, inputs: &[usize]) -> Result<usize>;

    /// Output shape ([N, C, H, W]) for inputs of these shapes.
    fn shape(&self, inputs: &[[usize; 4]]) -> Result<[usize; 4]>;

    /// Forward FLOP (multiply-adds x 2) at these shapes.
    fn flops(&self, inputs: &[[usize; 4]], output: [usize; 4]) -> f64;

    /// Records the forward pass on the GPU.
    fn forward(&self, rec: &mut Recorder<'_>, io: &GpuForward<'_>) -> Result<()>;

    /// Records the backward pass on the GPU.
    fn backward(&self, rec: &mut Recorder<'_>, io: &GpuBackward<'_>) -> Result<()>;

    /// The forward pass on the CPU, in f64.
    fn forward_cpu(&self, io: &CpuForward<'_>) -> Result<Tensor64>;

    /// The backward pass on the CPU, in f64.
    fn backward_cpu(&self, io: &CpuBackward<'_>) -> Result<CpuGrads>;
}

/// A node's tensors for its GPU forward.
pub struct GpuForward<'a> {
    /// Every input (channel slices of the tensors holding them).
    pub inputs: Vec<Slice<'a>>,
    /// Where the output goes (a channel slice when it is part of a concatenation).
    pub output: Slice<'a>,
    /// The layer's weights, for ops with a layer.
    pub weights: Option<&'a ConvWeights>,
    /// The network's kernel choice ([`ConvAlgo::Direct`] also selects the other ops' baseline kernels).
    pub algo: ConvAlgo,
}

/// A node's tensors for its GPU backward.
pub struct GpuBackward<'a> {
    pub inputs: Vec<Slice<'a>>,
    pub output: Slice<'a>,
    /// The whole tensor holding the output (a fused activation's derivative is read from it).
    pub output_tensor: &'a Tensor,
    /// The gradient of the output, laid out like the output; complete, and modifiable in place.
    pub d_output: Slice<'a>,
    /// Where each input's gradient is added; `None` when it is not needed (inputs of the graph, inputs that
    /// lend only their shape).
    pub d_inputs: Vec<Option<Slice<'a>>>,
    /// For each input, whether nothing has been written yet into the tensor holding its gradient (still
    /// zero): an op whose kernel can only overwrite its input gradients needs it.
    pub fresh: Vec<bool>,
    pub weights: Option<&'a ConvWeights>,
    /// The layer's parameter gradients (`+=`).
    pub grads: Option<&'a ConvGrads>,
    pub algo: ConvAlgo,
}

/// A node's tensors for its CPU forward.
pub struct CpuForward<'a> {
    pub inputs: Vec<&'a Tensor64>,
    /// The output shape the graph expects.
    pub output_shape: [usize; 4],
    /// The layer's weight (PyTorch layout) and bias.
    pub weight: Option<&'a Tensor64>,
    pub bias: Option<&'a [f64]>,
}

/// A node's tensors for its CPU backward.
pub struct CpuBackward<'a> {
    pub inputs: Vec<&'a Tensor64>,
    pub output: &'a Tensor64,
    pub d_output: &'a Tensor64,
    pub weight: Option<&'a Tensor64>,
    pub bias: Option<&'a [f64]>,
}

/// What a CPU backward returns: each input's gradient (`None`: none flows there) and the layer's parameter
/// gradients.
#[derive(Debug, Default)]
pub struct CpuGrads {
    pub d_inputs: Vec<Option<Tensor64>>,
    pub d_weight: Option<Tensor64>,
    pub d_bias: Option<Vec<f64>>,
}
