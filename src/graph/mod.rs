//! A network as a typed graph, described once and walked by everything that needs its wiring.
//!
//! A [`GraphBuilder`] is ordinary code that returns typed activation handles ([`Act`]):
//!
//! ```
//! use corrflow::graph::{ConvLayer, GraphBuilder};
//! let mut g = GraphBuilder::new();
//! let x = g.input("image", 3);
//! let stem = g.layer(ConvLayer::new("stem", 3, 8, 3).leaky(0.1));
//! let down = g.layer(ConvLayer::new("down", 8, 16, 3).stride(2).leaky(0.1));
//! let up = g.layer(ConvLayer::new("up", 16, 8, 4).transposed().stride(2).pad(1).no_bias());
//! let s = g.conv(x, stem);
//! let d = g.conv(s, down);
//! let u = g.conv_like(d, up, s); // cropped to s's height and width
//! let cat = g.concat(&[s, u]); // s and u are written straight into channels 0..8 and 8..16 of `cat`
//! let head = g.layer(ConvLayer::new("head", 16, 2, 3).no_bias());
//! let out = g.conv(cat, head);
//! g.output(out);
//! let graph = g.finish().unwrap();
//! assert_eq!(graph.shapes(&[[1, 3, 32, 32]]).unwrap()[out.index()], [1, 2, 32, 32]);
//! ```
//!
//! From that one description: activation allocation at any input shape ([`Activations`]), the recorded
//! GPU forward and the reverse walk that records the backward pass ([`Network`]), the f64 CPU reference
//! forward and backward ([`cpu`]), the parameter list with its state-dict names ([`Graph::layers`]) and the
//! FLOP counts ([`Graph::layer_flops`]). Each op kind (conv, correlation, L2 normalisation: a module of
//! [`ops`], implementing [`Op`]) carries its shape rule, cost, GPU forward and backward (recorded with the
//! host functions of [`crate::ops`]) and f64 CPU forward and backward in one place; a new kind of layer is
//! a new module there.
//!
//! Concatenations are free: a [`GraphBuilder::concat`] allocates one tensor and every member is written
//! straight into its channel slice by the node that produces it (and read back from it by its consumers);
//! the gradients mirror the same layout. A crop to a reference's size ([`GraphBuilder::conv_like`]) writes
//! only the region kept.

mod activations;
mod builder;
pub mod cpu;
mod layer;
mod network;
mod op;
pub mod ops;

pub use activations::Activations;
pub use builder::GraphBuilder;
pub use layer::ConvLayer;
pub use network::{Network, ParamGrads, ParamSlot};
pub use op::{CpuBackward, CpuForward, CpuGrads, GpuBackward, GpuForward, Op};

use crate::error::{Error, Result};
use crate::models::Weights;

/// An activation of a graph: a graph input, a node's output or a concatenation. A handle belongs to the
/// graph (builder) that made it; the others refuse it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Act(usize, u32);

impl Act {
    /// Index into per-activation tables such as [`Graph::shapes`].
    pub fn index(self) -> usize {
        self.0
    }
}

/// A layer's parameters ([`ConvLayer`]), shared by every node that uses it (a Siamese tower applies one
/// layer to both frames; its gradients collect both contributions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LayerId(usize, u32);

impl LayerId {
    pub fn index(self) -> usize {
        self.0
    }
}

/// Where an activation comes from.
#[derive(Clone, Debug)]
enum Producer {
    Input(usize),
    Node(usize),
    Concat(Vec<Act>),
}

#[derive(Clone, Debug)]
struct Value {
    channels: usize,
    producer: Producer,
    /// A label for GPU buffers and errors.
    label: String,
    /// The concatenation this activation is a member of, and its first channel there.
    member_of: Option<(Act, usize)>,
}

/// One op applied to activations.
#[derive(Debug)]
pub struct Node {
    op: Box<dyn Op>,
    inputs: Vec<Act>,
    output: Act,
}

impl Node {
    pub fn op(&self) -> &dyn Op {
        self.op.as_ref()
    }
    pub fn inputs(&self) -> &[Act] {
        &self.inputs
    }
    pub fn output(&self) -> Act {
        self.output
    }
}

/// A finished network description (see the module docs). Cheap to build; independent of any device.
#[derive(Debug, Default)]
pub struct Graph {
    /// Tells this graph's handles from others'.
    id: u32,
    values: Vec<Value>,
    nodes: Vec<Node>,
    layers: Vec<ConvLayer>,
    inputs: Vec<Act>,
    outputs: Vec<Act>,
}

impl Graph {
    pub fn inputs(&self) -> &[Act] {
        &self.inputs
    }
    pub fn outputs(&self) -> &[Act] {
        &self.outputs
    }
    /// The nodes in forward (construction) order.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }
    /// Every layer's parameters, in registration order.
    pub fn layers(&self) -> &[ConvLayer] {
        &self.layers
    }
    pub fn layer(&self, id: LayerId) -> Option<&ConvLayer> {
        if id.1 != self.id {
            return None;
        }
        self.layers.get(id.0)
    }

    /// The handle of activation number `index` (see [`Act::index`]).
    pub fn act(&self, index: usize) -> Option<Act> {
        (index < self.values.len()).then_some(Act(index, self.id))
    }

    fn value(&self, a: Act) -> Option<&Value> {
        if a.1 != self.id {
            return None;
        }
        self.values.get(a.0)
    }
    pub fn num_params(&self) -> usize {
        self.layers.iter().map(ConvLayer::num_params).sum()
    }
    /// Number of activations (the length of [`Graph::shapes`]).
    pub fn num_values(&self) -> usize {
        self.values.len()
    }
    pub fn channels(&self, a: Act) -> usize {
        self.value(a).map_or(0, |v| v.channels)
    }
    /// A label of the activation (its input name, its producer's label, or the parts of a concatenation).
    pub fn label(&self, a: Act) -> &str {
        self.value(a).map_or("?", |v| v.label.as_str())
    }

    /// The members of `a` if it is a concatenation.
    pub fn concat_parts(&self, a: Act) -> Option<&[Act]> {
        match &self.value(a)?.producer {
            Producer::Concat(parts) => Some(parts),
            _ => None,
        }
    }

    /// Where `a` is stored: the activation owning the tensor (itself, or the outermost concatenation it is
    /// part of) and its first channel there; `None` for a handle of another graph.
    pub fn storage(&self, a: Act) -> Option<(Act, usize)> {
        let mut at = (a, 0);
        while let Some((cat, offset)) = self.value(at.0)?.member_of {
            at = (cat, at.1 + offset);
        }
        Some(at)
    }

    /// The shape of every activation for inputs of `inputs` shapes (one per graph input, in order).
    pub fn shapes(&self, inputs: &[[usize; 4]]) -> Result<Vec<[usize; 4]>> {
        if inputs.len() != self.inputs.len() {
            return Err(Error::Shape {
                op: "graph",
                message: format!("the graph takes {} inputs, got {}", self.inputs.len(), inputs.len()),
            });
        }
        let mut shapes: Vec<[usize; 4]> = Vec::with_capacity(self.values.len());
        // Activations are numbered in construction order: whatever one depends on has a smaller index.
        for v in &self.values {
            let shape = match &v.producer {
                Producer::Input(i) => {
                    let s = inputs[*i];
                    if s[1] != v.channels {
                        return Err(Error::Shape {
                            op: "graph",
                            message: format!("input `{}` has {} channels, expected {}", v.label, s[1], v.channels),
                        });
                    }
                    s
                }
                Producer::Node(i) => {
                    let node = &self.nodes[*i];
                    let ins: Vec<[usize; 4]> = node.inputs.iter().map(|a| shapes[a.0]).collect();
                    node.op.shape(&ins)?
                }
                Producer::Concat(parts) => {
                    let [n, _, h, w] = shapes[parts[0].0];
                    for p in parts {
                        let [pn, _, ph, pw] = shapes[p.0];
                        if (pn, ph, pw) != (n, h, w) {
                            return Err(Error::Shape {
                                op: "graph",
                                message: format!(
                                    "{}: part `{}` is {pn} x {pw}x{ph}, the first part {n} x {w}x{h}",
                                    v.label, self.values[p.0].label
                                ),
                            });
                        }
                    }
                    [n, v.channels, h, w]
                }
            };
            shapes.push(shape);
        }
        Ok(shapes)
    }

    /// Forward FLOP (multiply-adds x 2) per node label, in forward order of first appearance (a layer run
    /// several times, as FlowNetC's tower on both frames, counts every run).
    pub fn layer_flops(&self, inputs: &[[usize; 4]]) -> Result<Vec<(String, f64)>> {
        let shapes = self.shapes(inputs)?;
        let mut out: Vec<(String, f64)> = Vec::new();
        for node in &self.nodes {
            let ins: Vec<[usize; 4]> = node.inputs.iter().map(|a| shapes[a.0]).collect();
            let flops = node.op.flops(&ins, shapes[node.output.0]);
            let label = node.op.label();
            match out.iter_mut().find(|(l, _)| *l == label) {
                Some(entry) => entry.1 += flops,
                None => out.push((label, flops)),
            }
        }
        Ok(out)
    }

    /// Whether each activation's gradient is needed: it depends on some parameter.
    pub(crate) fn needs_grad(&self) -> Vec<bool> {
        let mut needs = vec![false; self.values.len()];
        for (i, v) in self.values.iter().enumerate() {
            needs[i] = match &v.producer {
                Producer::Input(_) => false,
                Producer::Node(n) => {
                    let node = &self.nodes[*n];
                    node.op.layer().is_some()
                        || node.inputs.iter().enumerate().any(|(j, a)| node.op.reads(j) && needs[a.0])
                }
                Producer::Concat(parts) => parts.iter().any(|p| needs[p.0]),
            };
        }
        needs
    }

    /// Whether each activation reaches an output (its gradient can be non-zero).
    pub(crate) fn reaches_output(&self) -> Vec<bool> {
        let mut reach = vec![false; self.values.len()];
        for o in &self.outputs {
            reach[o.0] = true;
        }
        for i in (0..self.values.len()).rev() {
            if !reach[i] {
                continue;
            }
            match &self.values[i].producer {
                Producer::Input(_) => {}
                Producer::Node(n) => {
                    let node = &self.nodes[*n];
                    for (j, a) in node.inputs.iter().enumerate() {
                        if node.op.reads(j) {
                            reach[a.0] = true;
                        }
                    }
                }
                Producer::Concat(parts) => parts.iter().for_each(|p| reach[p.0] = true),
            }
        }
        reach
    }

    /// Checks that `weights` holds every tensor of every layer with its shape, and nothing else.
    pub fn check_weights(&self, weights: &Weights) -> Result<()> {
        let mut expected = std::collections::BTreeSet::new();
        for l in &self.layers {
            for (name, shape) in l.tensors() {
                weights.get(&name, &shape)?;
                expected.insert(name);
            }
        }
        if let Some(extra) = weights.names().find(|n| !expected.contains(*n)) {
            return Err(Error::Weights {
                path: weights.source.clone(),
                message: format!("unexpected tensor `{extra}` for this network"),
            });
        }
        Ok(())
    }
}
