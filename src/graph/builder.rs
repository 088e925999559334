//! [`GraphBuilder`]: a network written as ordinary code returning typed handles.

use super::{Act, ConvLayer, Graph, LayerId, Node, Op, Producer, Value};
use crate::error::{Error, Result};

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
