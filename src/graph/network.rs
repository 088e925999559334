//! A graph with its parameters on a device: the recorded GPU forward (one plan per input shape, kept in a
//! bounded LRU cache), and the reverse walk that records the backward pass.

use std::sync::{Mutex, MutexGuard};

use super::{Act, Activations, GpuBackward, GpuForward, Graph};
use crate::error::{Error, Result};
use crate::host::HostTensor;
use crate::models::Weights;
use crate::ops::conv::{ConvAlgo, ConvGrads, ConvWeights};
use crate::runtime::{Context, LruCache, Program, Recorder, Tensor};

/// How many input shapes a network keeps recorded forward passes for, by default.
pub const DEFAULT_PLAN_CAPACITY: usize = 4;

/// The gradients of every layer's parameters, in the packed layout of their weights (see
/// [`ConvWeights::new_grads`]). Kernels add into them; zero them before each pass.
pub struct ParamGrads {
    layers: Vec<ConvGrads>,
}

impl ParamGrads {
    /// Every gradient tensor.
    pub fn tensors(&self) -> impl Iterator<Item = &Tensor> {
        self.layers.iter().flat_map(|g| std::iter::once(&g.weight).chain(g.bias.as_ref()))
    }
}

/// One parameter tensor for an optimiser: its state-dict name, whether weight decay applies (weights, not
/// biases, as in FlowNetPytorch), the tensor (updated in place) and its gradient, in the same layout.
#[derive(Clone, Debug)]
pub struct ParamSlot {
    pub name: String,
    pub decay: bool,
    pub param: Tensor,
    pub grad: Tensor,
}

struct ForwardPlan {
    acts: Activations,
    program: Program,
}

/// A [`Graph`] with its layers' weights uploaded.
pub struct Network {
    graph: Graph,
    weights: Vec<ConvWeights>,
    /// The kernel choice of every layer (`None`: the context's policy).
    algo: Option<ConvAlgo>,
    plans: Mutex<LruCache<Vec<[usize; 4]>, ForwardPlan>>,
}

impl Network {
    /// Uploads `weights` (by the state-dict names of the graph's layers; every tensor must be there with
    /// its shape, and nothing else).
    pub fn new(ctx: &Context, graph: Graph, weights: &Weights) -> Result<Self> {
        graph.check_weights(weights)?;
        let mut layers = Vec::with_capacity(graph.layers().len());
        for l in graph.layers() {
            let w = weights.get4(&l.weight_name, l.weight_shape())?;
            let b = match &l.bias_name {
                Some(name) => Some(weights.get(name, &[l.cout])?.to_vec()),
                None => None,
            };
            layers.push(ConvWeights::new(ctx, &l.name, &w, b.as_deref(), l.transposed)?);
        }
        Ok(Network { graph, weights: layers, algo: None, plans: Mutex::new(LruCache::new(DEFAULT_PLAN_CAPACITY)) })
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The GPU weights of every layer, indexed like [`Graph::layers`].
    pub fn layer_weights(&self) -> &[ConvWeights] {
        &self.weights
    }

    /// Chooses the kernels of every layer (`None`: follow the context's policy; [`ConvAlgo::Direct`] also
    /// runs the other ops' baseline kernels). Drops the recorded plans.
    pub fn set_conv_algo(&mut self, algo: impl Into<Option<ConvAlgo>>) {
        self.algo = algo.into();
        for w in &mut self.weights {
            w.set_algo(self.algo);
        }
        if let Ok(mut plans) = self.plans.lock() {
            plans.clear();
        }
    }

    /// The kernel choice in effect on `ctx`.
    pub fn conv_algo(&self, ctx: &Context) -> ConvAlgo {
        self.algo.unwrap_or(ctx.policy().conv)
    }

    /// Allocates every activation for inputs of these shapes (or, used for gradients, a second set laid
    /// out the same way).
    pub fn activations(&self, ctx: &Context, inputs: &[[usize; 4]]) -> Result<Activations> {
        Activations::new(ctx, &self.graph, inputs, "activation")
    }

    /// Zero-filled gradients of every layer's parameters.
    pub fn new_grads(&self, ctx: &Context) -> Result<ParamGrads> {
        let layers = self.weights.iter().zip(self.graph.layers()).map(|(w, l)| w.new_grads(ctx, &l.name));
        Ok(ParamGrads { layers: layers.collect::<Result<_>>()? })
    }

    /// Every parameter tensor with its gradient, layer by layer (weight, then bias).
    pub fn slots(&self, grads: &ParamGrads) -> Vec<ParamSlot> {
        let mut slots = Vec::new();
        for ((l, w), g) in self.graph.layers().iter().zip(&self.weights).zip(&grads.layers) {
            let weight = (l.weight_name.clone(), true, w.packed().clone(), g.weight.clone());
            let bias = match (&l.bias_name, w.bias(), &g.bias) {
                (Some(name), Some(b), Some(gb)) => Some((name.clone(), false, b.clone(), gb.clone())),
                _ => None,
            };
            for (name, decay, param, grad) in std::iter::once(weight).chain(bias) {
                slots.push(ParamSlot { name, decay, param, grad });
            }
        }
        slots
    }

    /// Records the forward pass over `acts` (inputs already in their tensors), with a mark before every
    /// node so [`Program::segments`] times it node by node.
    pub fn record_forward(&self, rec: &mut Recorder<'_>, acts: &Activations) -> Result<()> {
        let algo = self.conv_algo(rec.context());
        for node in self.graph.nodes() {
            let op = node.op();
            rec.mark(&op.label());
            let inputs = node.inputs().iter().map(|&a| acts.slice(a)).collect::<Result<Vec<_>>>()?;
            let weights = op.layer().map(|l| &self.weights[l.index()]);
            op.forward(rec, &GpuForward { inputs, output: acts.slice(node.output())?, weights, algo })?;
        }
        Ok(())
    }

    /// Records the backward pass: the graph walked in reverse, each node adding its inputs' and parameters'
    /// gradients. `grads` is laid out like `acts` and must hold zeros except for the outputs' gradients
    /// (d loss / d output, written before); `param_grads` are added to (zero them first for one pass).
    pub fn record_backward(
        &self,
        rec: &mut Recorder<'_>,
        acts: &Activations,
        grads: &Activations,
        param_grads: &ParamGrads,
    ) -> Result<()> {
        let g = &self.graph;
        let (needs, reach) = (g.needs_grad(), g.reaches_output());
        let algo = self.conv_algo(rec.context());
        // Which gradient tensors have been written (by the loss, then by each node's backward).
        let mut written = vec![false; g.num_values()];
        let root = |a: Act| g.storage(a).map_or(0, |(r, _)| r.index());
        for &o in g.outputs() {
            written[root(o)] = true;
        }
        for node in g.nodes().iter().rev() {
            let (op, out) = (node.op(), node.output());
            if !reach[out.index()] || !needs[out.index()] {
                continue;
            }
            rec.mark(&format!("{} backward", op.label()));
            let inputs = node.inputs().iter().map(|&a| acts.slice(a)).collect::<Result<Vec<_>>>()?;
            let mut d_inputs = Vec::with_capacity(inputs.len());
            let mut fresh = Vec::with_capacity(inputs.len());
            for (i, &a) in node.inputs().iter().enumerate() {
                d_inputs.push(if op.reads(i) && needs[a.index()] { Some(grads.slice(a)?) } else { None });
                fresh.push(!written[root(a)]);
            }
            let io = GpuBackward {
                inputs,
                output: acts.slice(out)?,
                output_tensor: acts.holder(out)?,
                d_output: grads.slice(out)?,
                d_inputs,
                fresh,
                weights: op.layer().map(|l| &self.weights[l.index()]),
                grads: op.layer().map(|l| &param_grads.layers[l.index()]),
                algo,
            };
            op.backward(rec, &io)?;
            for (i, &a) in node.inputs().iter().enumerate() {
                if io.d_inputs[i].is_some() {
                    written[root(a)] = true;
                }
            }
        }
        Ok(())
    }

    fn lock_plans(&self) -> Result<MutexGuard<'_, LruCache<Vec<[usize; 4]>, ForwardPlan>>> {
        self.plans
            .lock()
            .map_err(|_| Error::Gpu { op: "forward".into(), message: "plan cache poisoned by an earlier panic".into() })
    }

    fn record_plan(&self, ctx: &Context, inputs: &[[usize; 4]]) -> Result<ForwardPlan> {
        let acts = self.activations(ctx, inputs)?;
        let mut rec = ctx.recorder("forward (record)");
        self.record_forward(&mut rec, &acts)?;
        Ok(ForwardPlan { acts, program: rec.finish_program()? })
    }

    /// The recorded forward pass for inputs of these shapes (recording it if needed). Replaying it runs on
    /// whatever the plan's input tensors hold.
    pub fn recorded_forward(&self, ctx: &Context, inputs: &[[usize; 4]]) -> Result<Program> {
        let mut plans = self.lock_plans()?;
        Ok(plans.get_or_try_insert_with(inputs.to_vec(), || self.record_plan(ctx, inputs))?.program.clone())
    }

    /// Runs the network: copies `inputs` (one per graph input) into the plan of their shapes (recording it
    /// at the first call) and replays it in one submission, allocating nothing after the first call. The
    /// outputs are handles to the plan's tensors: the next forward at the same shapes overwrites them.
    pub fn forward(&self, ctx: &Context, inputs: &[&Tensor]) -> Result<Vec<Tensor>> {
        let shapes: Vec<[usize; 4]> = inputs.iter().map(|t| t.shape()).collect();
        let mut plans = self.lock_plans()?;
        let plan = plans.get_or_try_insert_with(shapes.clone(), || self.record_plan(ctx, &shapes))?;
        let mut rec = ctx.recorder("forward");
        for (t, &a) in inputs.iter().zip(self.graph.inputs()) {
            rec.copy(t.buffer(), 0, plan.acts.tensor(a)?.buffer(), 0, t.bytes());
        }
        rec.replay(&plan.program);
        rec.submit()?;
        self.graph.outputs().iter().map(|&o| plan.acts.tensor(o).cloned()).collect()
    }

    /// How many input shapes keep a recorded forward pass (least recently used dropped first).
    pub fn set_plan_capacity(&self, capacity: usize) {
        if let Ok(mut plans) = self.plans.lock() {
            plans.set_capacity(capacity);
        }
    }

    /// The number of recorded forward passes held.
    pub fn cached_plans(&self) -> usize {
        self.plans.lock().map_or(0, |p| p.len())
    }

    /// Runs the network once on host tensors: the outputs.
    pub fn run(&self, ctx: &Context, inputs: &[HostTensor]) -> Result<Vec<HostTensor>> {
        let uploaded = inputs.iter().map(|t| ctx.upload("input", t)).collect::<Result<Vec<_>>>()?;
        let outputs = self.forward(ctx, &uploaded.iter().collect::<Vec<_>>())?;
        outputs.iter().map(|t| ctx.download(t)).collect()
    }

    /// One forward and backward pass with `output_grads` as d(loss)/d(output) (one per output): every
    /// parameter's gradient, by `grad.` + its state-dict name, in PyTorch's layout.
    pub fn gradients(&self, ctx: &Context, inputs: &[HostTensor], output_grads: &[HostTensor]) -> Result<Weights> {
        let shapes: Vec<[usize; 4]> = inputs.iter().map(|t| t.shape).collect();
        let acts = self.activations(ctx, &shapes)?;
        let grads = Activations::new(ctx, &self.graph, &shapes, "gradient")?;
        let param_grads = self.new_grads(ctx)?;
        let outputs = self.graph.outputs();
        if output_grads.len() != outputs.len() {
            return Err(Error::Shape {
                op: "gradients",
                message: format!("{} output gradients for {} outputs", output_grads.len(), outputs.len()),
            });
        }
        for (t, &a) in inputs.iter().zip(self.graph.inputs()) {
            ctx.write(acts.tensor(a)?, &t.data)?;
        }
        let seeds = output_grads.iter().map(|t| ctx.upload("output gradient", t)).collect::<Result<Vec<_>>>()?;
        let mut rec = ctx.recorder("gradients");
        self.record_forward(&mut rec, &acts)?;
        for (seed, &o) in seeds.iter().zip(outputs) {
            let target = grads.tensor(o)?;
            if seed.shape() != target.shape() {
                return Err(Error::Shape {
                    op: "gradients",
                    message: format!("output gradient {:?} for an output of {:?}", seed.shape(), target.shape()),
                });
            }
            rec.copy(seed.buffer(), 0, target.buffer(), 0, seed.bytes());
        }
        self.record_backward(&mut rec, &acts, &grads, &param_grads)?;
        rec.submit()?;
        self.download_grads(ctx, &param_grads)
    }

    /// The current weights by state-dict name, PyTorch layouts (`source` names the set).
    pub fn weights(&self, ctx: &Context, source: &str) -> Result<Weights> {
        let mut out = Vec::new();
        for (l, w) in self.graph.layers().iter().zip(&self.weights) {
            let (wt, b) = w.download(ctx)?;
            out.push((l.weight_name.clone(), wt.shape.to_vec(), wt.data));
            if let (Some(name), Some(b)) = (&l.bias_name, b) {
                out.push((name.clone(), vec![b.len()], b));
            }
        }
        Ok(Weights::from_tensors(source, out))
    }

    /// Parameter gradients by `grad.` + state-dict name, PyTorch layouts.
    pub fn download_grads(&self, ctx: &Context, grads: &ParamGrads) -> Result<Weights> {
        let mut out = Vec::new();
        for ((l, w), g) in self.graph.layers().iter().zip(&self.weights).zip(&grads.layers) {
            let (gw, gb) = g.download(ctx, w)?;
            out.push((format!("grad.{}", l.weight_name), gw.shape.to_vec(), gw.data));
            if let (Some(name), Some(gb)) = (&l.bias_name, gb) {
                out.push((format!("grad.{name}"), vec![gb.len()], gb));
            }
        }
        Ok(Weights::from_tensors("gradients", out))
    }

    /// The activation `a`'s label in the graph.
    pub fn label(&self, a: Act) -> &str {
        self.graph.label(a)
    }
}
