//! The whole-network CPU reference, in f64: the forward and the reverse walk over the same [`Graph`] the
//! GPU runs, each node through its op's [`Op::forward_cpu`](super::Op::forward_cpu) /
//! [`Op::backward_cpu`](super::Op::backward_cpu) (the [`crate::reference`] twins of the kernels). Every
//! activation gets its own tensor here and concatenations are built by copying, so the GPU's in-place
//! layout is checked against a plain one. Slow: for tests and gradient checks on small shapes.

use super::{Act, CpuBackward, CpuForward, Graph, LayerId, Producer};
use crate::error::{Error, Result};
use crate::host::Tensor64;
use crate::models::Weights;

/// Every layer's weight (PyTorch layout) and bias, in f64, indexed like [`Graph::layers`].
#[derive(Clone, Debug)]
pub struct CpuParams {
    pub layers: Vec<(Tensor64, Option<Vec<f64>>)>,
}

impl CpuParams {
    /// The graph's layers' tensors from `weights`, by their state-dict names.
    pub fn new(graph: &Graph, weights: &Weights) -> Result<Self> {
        let mut layers = Vec::with_capacity(graph.layers().len());
        for l in graph.layers() {
            let w = Tensor64::from_f32(&weights.get4(&l.weight_name, l.weight_shape())?);
            let b = match &l.bias_name {
                Some(name) => Some(weights.get(name, &[l.cout])?.iter().map(|&v| v as f64).collect()),
                None => None,
            };
            layers.push((w, b));
        }
        Ok(CpuParams { layers })
    }

    fn layer(&self, id: Option<LayerId>) -> (Option<&Tensor64>, Option<&[f64]>) {
        match id.and_then(|l| self.layers.get(l.index())) {
            Some((w, b)) => (Some(w), b.as_deref()),
            None => (None, None),
        }
    }

    /// By state-dict name (`prefix` + name), in f32: to compare with what the GPU computes.
    pub fn to_weights(&self, graph: &Graph, prefix: &str) -> Weights {
        let mut out = Vec::new();
        for (l, (w, b)) in graph.layers().iter().zip(&self.layers) {
            out.push((format!("{prefix}{}", l.weight_name), w.shape.to_vec(), w.to_f32().data));
            if let (Some(name), Some(b)) = (&l.bias_name, b) {
                out.push((format!("{prefix}{name}"), vec![b.len()], b.iter().map(|&v| v as f32).collect()));
            }
        }
        Weights::from_tensors("cpu reference", out)
    }
}

/// Every activation of one forward pass, indexed by [`Act::index`].
#[derive(Clone, Debug)]
pub struct CpuActivations {
    pub values: Vec<Tensor64>,
}

impl CpuActivations {
    /// The activation `a` (`None` for a handle of a larger graph).
    pub fn get(&self, a: Act) -> Option<&Tensor64> {
        self.values.get(a.index())
    }
    /// The graph's outputs, in order.
    pub fn outputs(&self, graph: &Graph) -> Vec<Tensor64> {
        graph.outputs().iter().map(|&o| self.values[o.index()].clone()).collect()
    }
}

/// The channel concatenation of `parts` (same N, H, W).
fn concat(parts: &[&Tensor64], shape: [usize; 4]) -> Tensor64 {
    let [n, c, h, w] = shape;
    let plane = h * w;
    let mut out = Tensor64::zeros(shape);
    for b in 0..n {
        let mut off = 0;
        for p in parts {
            let pc = p.shape[1];
            out.data[(b * c + off) * plane..(b * c + off + pc) * plane]
                .copy_from_slice(&p.data[b * pc * plane..(b + 1) * pc * plane]);
            off += pc;
        }
    }
    out
}

/// The forward pass on the CPU: every activation.
pub fn forward(graph: &Graph, params: &CpuParams, inputs: &[Tensor64]) -> Result<CpuActivations> {
    let shapes = graph.shapes(&inputs.iter().map(|t| t.shape).collect::<Vec<_>>())?;
    let mut values: Vec<Tensor64> = Vec::with_capacity(shapes.len());
    for (i, v) in graph.values.iter().enumerate() {
        let t = match &v.producer {
            Producer::Input(k) => inputs[*k].clone(),
            Producer::Node(k) => {
                let node = &graph.nodes[*k];
                let (weight, bias) = params.layer(node.op.layer());
                let io = CpuForward {
                    inputs: node.inputs.iter().map(|a| &values[a.index()]).collect(),
                    output_shape: shapes[i],
                    weight,
                    bias,
                };
                let t = node.op.forward_cpu(&io)?;
                if t.shape != shapes[i] {
                    return Err(Error::Shape {
                        op: "graph cpu",
                        message: format!("{} gave {:?}, the graph expects {:?}", node.op.label(), t.shape, shapes[i]),
                    });
                }
                t
            }
            Producer::Concat(parts) => concat(&parts.iter().map(|p| &values[p.index()]).collect::<Vec<_>>(), shapes[i]),
        };
        values.push(t);
    }
    Ok(CpuActivations { values })
}

fn accumulate(slot: &mut Option<Tensor64>, t: Tensor64) -> Result<()> {
    match slot {
        Some(s) => s.add_assign(&t),
        None => {
            *slot = Some(t);
            Ok(())
        }
    }
}

/// The backward pass on the CPU for `output_grads` = d(loss)/d(output) (one per output): every layer's
/// parameter gradients (shaped like [`CpuParams`]).
pub fn backward(
    graph: &Graph,
    params: &CpuParams,
    acts: &CpuActivations,
    output_grads: &[Tensor64],
) -> Result<CpuParams> {
    if output_grads.len() != graph.outputs().len() {
        return Err(Error::Shape {
            op: "graph cpu",
            message: format!("{} output gradients for {} outputs", output_grads.len(), graph.outputs().len()),
        });
    }
    let mut grads: Vec<Option<Tensor64>> = vec![None; graph.values.len()];
    for (&o, g) in graph.outputs().iter().zip(output_grads) {
        accumulate(&mut grads[o.index()], g.clone())?;
    }
    let mut out = CpuParams {
        layers: params
            .layers
            .iter()
            .map(|(w, b)| (Tensor64::zeros(w.shape), b.as_ref().map(|b| vec![0.0; b.len()])))
            .collect(),
    };
    for i in (0..graph.values.len()).rev() {
        let Some(g) = grads[i].take() else { continue };
        match &graph.values[i].producer {
            Producer::Input(_) => {}
            Producer::Node(k) => {
                let node = &graph.nodes[*k];
                let (weight, bias) = params.layer(node.op.layer());
                let io = CpuBackward {
                    inputs: node.inputs.iter().map(|a| &acts.values[a.index()]).collect(),
                    output: &acts.values[i],
                    d_output: &g,
                    weight,
                    bias,
                };
                let r = node.op.backward_cpu(&io)?;
                for (a, d) in node.inputs.iter().zip(r.d_inputs) {
                    if let Some(d) = d {
                        accumulate(&mut grads[a.index()], d)?;
                    }
                }
                if let Some(l) = node.op.layer() {
                    let (dw, db) = &mut out.layers[l.index()];
                    if let Some(w) = r.d_weight {
                        dw.add_assign(&w)?;
                    }
                    if let (Some(db), Some(b)) = (db.as_mut(), r.d_bias) {
                        db.iter_mut().zip(b).for_each(|(s, v)| *s += v);
                    }
                }
            }
            Producer::Concat(parts) => {
                let mut c0 = 0;
                for p in parts {
                    let c = graph.values[p.index()].channels;
                    accumulate(&mut grads[p.index()], g.channels(c0, c))?;
                    c0 += c;
                }
            }
        }
    }
    Ok(out)
}
