//! Every activation of a graph at one input shape, on the GPU: one tensor per activation that owns its
//! storage, and channel slices of a concatenation's tensor for its parts.

use super::{Act, Graph};
use crate::error::{Error, Result};
use crate::ops::Slice;
use crate::runtime::{Context, Tensor};

/// The activations (or, laid out the same way, their gradients) of one graph at one input shape.
pub struct Activations {
    /// The graph's id (its handles'), to refuse others'.
    graph: u32,
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
        let acts: Vec<Act> = (0..shapes.len()).filter_map(|i| graph.act(i)).collect();
        let storage: Vec<(Act, usize)> = acts.iter().filter_map(|&a| graph.storage(a)).collect();
        let mut tensors = Vec::with_capacity(shapes.len());
        for (i, shape) in shapes.iter().enumerate() {
            tensors.push(if storage[i].0 == acts[i] {
                Some(ctx.tensor(&format!("{what} {}", graph.label(acts[i])), *shape)?)
            } else {
                None
            });
        }
        Ok(Activations { graph: acts.first().map_or(0, |a| a.1), shapes, storage, tensors })
    }

    fn missing(a: Act) -> Error {
        Error::InvalidParam { op: "activations", message: format!("activation {a:?} is not of this graph") }
    }

    fn index(&self, a: Act) -> Result<usize> {
        if a.1 == self.graph && a.0 < self.shapes.len() {
            Ok(a.0)
        } else {
            Err(Self::missing(a))
        }
    }

    /// Shapes of every activation (indexed by [`Act::index`]).
    pub fn shapes(&self) -> &[[usize; 4]] {
        &self.shapes
    }

    pub fn shape(&self, a: Act) -> Result<[usize; 4]> {
        Ok(self.shapes[self.index(a)?])
    }

    /// The tensor holding `a` (its own, or the concatenation's it is part of).
    pub fn holder(&self, a: Act) -> Result<&Tensor> {
        let (root, _) = self.storage[self.index(a)?];
        self.tensors[root.0].as_ref().ok_or_else(|| Self::missing(a))
    }

    /// `a` as a channel slice of the tensor holding it.
    pub fn slice(&self, a: Act) -> Result<Slice<'_>> {
        let i = self.index(a)?;
        self.holder(a)?.slice(self.storage[i].1, self.shapes[i][1])
    }

    /// `a`'s own tensor (an error for a part of a concatenation: use [`Activations::slice`]).
    pub fn tensor(&self, a: Act) -> Result<&Tensor> {
        self.tensors[self.index(a)?].as_ref().ok_or_else(|| Error::InvalidParam {
            op: "activations",
            message: format!("activation {a:?} has no tensor of its own (it is part of a concatenation)"),
        })
    }

    /// Every tensor allocated (each once).
    pub fn tensors(&self) -> impl Iterator<Item = &Tensor> {
        self.tensors.iter().flatten()
    }
}
