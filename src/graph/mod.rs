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
//! FLOP counts ([`Graph::layer_flops`]). Each op kind (a module of [`ops`], implementing [`Op`]) carries its
//! shape rule, cost, GPU forward and backward (recorded with the host functions of [`crate::ops`]) and f64
//! CPU forward and backward in one place; a new kind of layer is a new module there.
//!
//! Concatenations are free: a [`GraphBuilder::concat`] allocates one tensor and every member is written
//! straight into its channel slice by the node that produces it (and read back from it by its consumers);
//! the gradients mirror the same layout. A crop to a reference's size ([`GraphBuilder::conv_like`]) writes
//! only the region kept.

mod activations;
pub mod cpu;
mod network;
mod op;
pub mod ops;

pub use activations::Activations;
pub use network::{Network, ParamGrads, ParamSlot};
pub use op::{CpuBackward, CpuForward, CpuGrads, GpuBackward, GpuForward, Op};

use crate::error::{Error, Result};
use crate::models::Weights;
use crate::reference::conv::ConvSpec;

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

/// A convolution layer's parameters and fixed settings: conv2d (weights [cout, cin, k, k]) or
/// conv_transpose2d (weights [cin, cout, k, k], PyTorch layouts), an optional bias [cout], and a fused
/// LeakyReLU. The tensor names are the state-dict keys under which checkpoints store it.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvLayer {
    /// The layer's name: marks for per-layer timing, FLOP tables, errors.
    pub name: String,
    pub weight_name: String,
    /// `Some` when the layer has a bias.
    pub bias_name: Option<String>,
    pub cin: usize,
    pub cout: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
    pub transposed: bool,
    /// Fused LeakyReLU slope (`None`: no activation).
    pub leaky: Option<f32>,
}

impl ConvLayer {
    /// A `k` x `k` conv2d `cin` -> `cout`, stride 1, padding (k - 1) / 2, with a bias, no activation, tensors
    /// named `{name}.weight` and `{name}.bias`; the builder methods change the rest.
    pub fn new(name: &str, cin: usize, cout: usize, k: usize) -> Self {
        ConvLayer {
            name: name.to_string(),
            weight_name: format!("{name}.weight"),
            bias_name: Some(format!("{name}.bias")),
            cin,
            cout,
            k,
            stride: 1,
            pad: k.saturating_sub(1) / 2,
            transposed: false,
            leaky: None,
        }
    }
    pub fn stride(mut self, stride: usize) -> Self {
        self.stride = stride;
        self
    }
    pub fn pad(mut self, pad: usize) -> Self {
        self.pad = pad;
        self
    }
    /// A conv_transpose2d.
    pub fn transposed(mut self) -> Self {
        self.transposed = true;
        self
    }
    pub fn no_bias(mut self) -> Self {
        self.bias_name = None;
        self
    }
    pub fn leaky(mut self, slope: f32) -> Self {
        self.leaky = Some(slope);
        self
    }
    /// Other state-dict names for the weight and bias (the bias name only matters if it has one).
    pub fn named(mut self, weight: impl Into<String>, bias: impl Into<String>) -> Self {
        self.weight_name = weight.into();
        if self.bias_name.is_some() {
            self.bias_name = Some(bias.into());
        }
        self
    }
    pub fn has_bias(&self) -> bool {
        self.bias_name.is_some()
    }
    /// The weight's shape in PyTorch's layout.
    pub fn weight_shape(&self) -> [usize; 4] {
        if self.transposed {
            [self.cin, self.cout, self.k, self.k]
        } else {
            [self.cout, self.cin, self.k, self.k]
        }
    }
    pub fn spec(&self) -> ConvSpec {
        ConvSpec { stride: self.stride, pad: self.pad, leaky: self.leaky }
    }
    pub fn num_params(&self) -> usize {
        self.weight_shape().iter().product::<usize>() + if self.has_bias() { self.cout } else { 0 }
    }
    /// The state-dict names of its tensors with their shapes.
    pub fn tensors(&self) -> Vec<(String, Vec<usize>)> {
        let mut t = vec![(self.weight_name.clone(), self.weight_shape().to_vec())];
        if let Some(b) = &self.bias_name {
            t.push((b.clone(), vec![self.cout]));
        }
        t
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

/// Builds a [`Graph`]. Methods return handles at once; the first wiring error (channel counts that do not
/// fit, a handle of another graph, ...) is kept and returned by [`GraphBuilder::finish`].
#[derive(Debug)]
pub struct GraphBuilder {
    graph: Graph,
    error: Option<Error>,
}

impl Default for GraphBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl GraphBuilder {
    pub fn new() -> Self {
        static NEXT_ID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
        let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        GraphBuilder { graph: Graph { id, ..Default::default() }, error: None }
    }

    fn fail(&mut self, message: String) {
        if self.error.is_none() {
            self.error = Some(Error::Shape { op: "graph", message });
        }
    }

    fn push_value(&mut self, channels: usize, producer: Producer, label: String) -> Act {
        self.graph.values.push(Value { channels, producer, label, member_of: None });
        Act(self.graph.values.len() - 1, self.graph.id)
    }

    fn valid(&mut self, a: Act) -> bool {
        let ok = a.1 == self.graph.id && a.0 < self.graph.values.len();
        if !ok {
            self.fail(format!("activation {a:?} does not belong to this graph"));
        }
        ok
    }

    /// A graph input of `channels` channels (its batch, height and width are given when the graph runs).
    pub fn input(&mut self, name: &str, channels: usize) -> Act {
        let a = self.push_value(channels, Producer::Input(self.graph.inputs.len()), name.to_string());
        self.graph.inputs.push(a);
        a
    }

    /// Channels of an activation (0 for a handle of another graph).
    pub fn channels(&self, a: Act) -> usize {
        if a.1 != self.graph.id {
            return 0;
        }
        self.graph.values.get(a.0).map_or(0, |v| v.channels)
    }

    /// Registers a layer's parameters (names must be unique).
    pub fn layer(&mut self, layer: ConvLayer) -> LayerId {
        let names: Vec<String> = layer.tensors().into_iter().map(|(n, _)| n).collect();
        if let Some(dup) = self
            .graph
            .layers
            .iter()
            .find(|l| l.name == layer.name || l.tensors().iter().any(|(n, _)| names.contains(n)))
        {
            let message = format!("layer `{}` reuses a name of layer `{}`", layer.name, dup.name);
            self.fail(message);
        }
        if layer.cin == 0 || layer.cout == 0 || layer.k == 0 || layer.stride == 0 {
            self.fail(format!("layer `{}`: channels, kernel and stride must be positive", layer.name));
        }
        self.graph.layers.push(layer);
        LayerId(self.graph.layers.len() - 1, self.graph.id)
    }

    /// The layer registered as `id`.
    pub fn layer_def(&self, id: LayerId) -> Option<&ConvLayer> {
        self.graph.layer(id)
    }

    /// Applies `op` to `inputs`: the general form every op kind's builder method ([`GraphBuilder::conv`],
    /// [`GraphBuilder::correlation`], ...) goes through.
    pub fn add(&mut self, op: impl Op + 'static, inputs: &[Act]) -> Act {
        let mut channels = Vec::with_capacity(inputs.len());
        for &a in inputs {
            if !self.valid(a) {
                return self.push_value(0, Producer::Concat(Vec::new()), "invalid".into());
            }
            channels.push(self.graph.values[a.0].channels);
        }
        if let Some(id) = op.layer() {
            if self.graph.layer(id).is_none() {
                self.fail(format!("{}: layer {id:?} does not belong to this graph", op.label()));
            }
        }
        let out_channels = match op.channels(&channels) {
            Ok(c) => c,
            Err(e) => {
                if self.error.is_none() {
                    self.error = Some(e);
                }
                0
            }
        };
        let label = op.label();
        let output = self.push_value(out_channels, Producer::Node(self.graph.nodes.len()), label);
        self.graph.nodes.push(Node { op: Box::new(op), inputs: inputs.to_vec(), output });
        output
    }

    /// The channel concatenation of `parts` (same batch, height and width). No copy is made: each part is
    /// written in place into its channel slice of the result, so a part may belong to one concatenation
    /// only, and graph inputs cannot be parts.
    pub fn concat(&mut self, parts: &[Act]) -> Act {
        if parts.is_empty() {
            self.fail("concat of nothing".into());
        }
        let mut total = 0;
        let mut labels = Vec::new();
        for &p in parts {
            if !self.valid(p) {
                return self.push_value(0, Producer::Concat(Vec::new()), "invalid".into());
            }
            let v = &self.graph.values[p.0];
            labels.push(v.label.clone());
            total += v.channels;
            let problem = if matches!(v.producer, Producer::Input(_)) {
                Some(format!("graph input `{}` cannot be part of a concatenation (it is uploaded whole)", v.label))
            } else if v.member_of.is_some() {
                Some(format!("`{}` is already part of a concatenation (one place per activation)", v.label))
            } else {
                None
            };
            if let Some(message) = problem {
                self.fail(message);
            }
        }
        if parts.iter().enumerate().any(|(i, p)| parts[..i].contains(p)) {
            self.fail(format!("concat of [{}] names an activation twice", labels.join(", ")));
        }
        let cat = self.push_value(total, Producer::Concat(parts.to_vec()), format!("cat[{}]", labels.join(", ")));
        let mut offset = 0;
        for &p in parts {
            let v = &mut self.graph.values[p.0];
            if v.member_of.is_none() {
                v.member_of = Some((cat, offset));
            }
            offset += v.channels;
        }
        cat
    }

    /// Marks `a` as an output (in call order): what the network returns and where a loss's gradients
    /// enter. Outputs must have their own tensor (not be part of a concatenation).
    pub fn output(&mut self, a: Act) {
        if self.valid(a) {
            self.graph.outputs.push(a);
        }
    }

    /// The finished graph, or the first wiring error.
    pub fn finish(mut self) -> Result<Graph> {
        for &o in &self.graph.outputs.clone() {
            if self.graph.values[o.0].member_of.is_some() {
                let message = format!("output `{}` is part of a concatenation", self.graph.values[o.0].label);
                self.fail(message);
            }
        }
        if self.graph.outputs.is_empty() {
            self.fail("the graph has no outputs".into());
        }
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.graph),
        }
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
