//! Every activation of a graph at one input shape, on the GPU: one tensor per activation that owns its
//! storage, and channel slices of a concatenation's tensor for its parts.

use super::{Act, Graph};
use crate::error::{Error, Result};
use crate::ops::Slice;
use crate::runtime::{Context, Tensor};

/// The activations (or, laid out the same way, their gradients) of one graph at one input shape.
pub struct Activations {
    shapes: Vec<[usize; 4]>,
    /// For each activation: the activation owning its tensor, and its first channel there.
    storage: Vec<(Act, usize)>,
    /// The tensor of each activation that owns one.
    tensors: Vec<Option<Tensor>>,
}

impl Activations {
    /// Allocates (zero-filled) every tensor of `graph` for inputs of `inputs` shapes; `what` labels the
    /// buffers.
    pub fn new(ctx: &Context, graph: &Graph, inputs: &[[usize; 4]], what: &str) -> Result<Self> {
        let shapes = graph.shapes(inputs)?;
        let storage: Vec<(Act, usize)> = (0..shapes.len()).map(|i| graph.storage(Act(i))).collect();
        let mut tensors = Vec::with_capacity(shapes.len());
        for (i, shape) in shapes.iter().enumerate() {
            tensors.push(if storage[i].0 == Act(i) {
                Some(ctx.tensor(&format!("{what} {}", graph.label(Act(i))), *shape)?)
            } else {
                None
            });
        }
        Ok(Activations { shapes, storage, tensors })
    }

    fn missing(a: Act) -> Error {
        Error::InvalidParam { op: "activations", message: format!("activation {a:?} is not of this graph") }
    }

    /// Shapes of every activation (indexed by [`Act::index`]).
    pub fn shapes(&self) -> &[[usize; 4]] {
        &self.shapes
    }

    pub fn shape(&self, a: Act) -> Result<[usize; 4]> {
        self.shapes.get(a.0).copied().ok_or_else(|| Self::missing(a))
    }

    /// The tensor holding `a` (its own, or the concatenation's it is part of).
    pub fn holder(&self, a: Act) -> Result<&Tensor> {
        let (root, _) = self.storage.get(a.0).ok_or_else(|| Self::missing(a))?;
        self.tensors[root.0].as_ref().ok_or_else(|| Self::missing(a))
    }

    /// `a` as a channel slice of the tensor holding it.
    pub fn slice(&self, a: Act) -> Result<Slice<'_>> {
        let (_, offset) = *self.storage.get(a.0).ok_or_else(|| Self::missing(a))?;
        self.holder(a)?.slice(offset, self.shapes[a.0][1])
    }

    /// `a`'s own tensor (an error for a part of a concatenation: use [`Activations::slice`]).
    pub fn tensor(&self, a: Act) -> Result<&Tensor> {
        self.tensors.get(a.0).and_then(Option::as_ref).ok_or_else(|| Error::InvalidParam {
            op: "activations",
            message: format!("activation {a:?} has no tensor of its own (it is part of a concatenation)"),
        })
    }

    /// Every tensor allocated (each once).
    pub fn tensors(&self) -> impl Iterator<Item = &Tensor> {
        self.tensors.iter().flatten()
    }
}
