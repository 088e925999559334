//! The trainer, for any model built as a [`Graph`](crate::graph::Graph): parameter slots with their
//! gradients and Adam moments, weight decay (weights, not biases), the learning-rate schedule, atomic
//! checkpoints and resuming with the optimiser state. It knows no network: a [`Model`] brings its graph
//! ([`Network`]), its batches and its loss. Per input shape it records two programs, replayed every step
//! (LRU-bounded): forward + loss + backward, then Adam once the loss is known to be finite.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::graph::{Activations, Network, ParamGrads, ParamSlot};
use crate::models::flownet::FlowNet;
use crate::models::Weights;
use crate::ops::loss::MULTISCALE_WEIGHTS;
use crate::ops::optim::{adam_step, AdamConfig, AdamStepBuffer};
use crate::runtime::{Context, HostTensor, LruCache, Program, Recorder, Tensor};

/// Optimiser and schedule. Defaults follow FLOWNET.md / FlowNetPytorch: Adam (0.9, 0.999), lr 1e-4,
/// multiscale weights 0.005 .. 0.32 (read by FlowNet's loss), no warm-up (FlowNetC's paper schedule warms up
/// from 1e-6 over 10k iterations: set `warmup_steps`), lr halved at each milestone.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    pub adam: AdamConfig,
    pub multiscale_weights: [f32; 5],
    pub warmup_steps: u64,
    pub warmup_start_lr: f32,
    pub milestones: Vec<u64>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            adam: AdamConfig::default(),
            multiscale_weights: MULTISCALE_WEIGHTS,
            warmup_steps: 0,
            warmup_start_lr: 1e-6,
            milestones: Vec::new(),
        }
    }
}

impl TrainConfig {
    /// Learning rate of step `step` (1-based): geometric warm-up from `warmup_start_lr`, then `adam.lr`
    /// halved at every milestone passed.
    pub fn lr_at(&self, step: u64) -> f32 {
        let base = self.adam.lr as f64;
        if step <= self.warmup_steps && self.warmup_steps > 0 {
            let t = step as f64 / self.warmup_steps as f64;
            return (self.warmup_start_lr as f64 * (base / self.warmup_start_lr as f64).powf(t)) as f32;
        }
        let halvings = self.milestones.iter().filter(|&&m| step > m).count() as i32;
        (base * 0.5f64.powi(halvings)) as f32
    }
}

/// One optical-flow training batch: frames normalised as the network expects (RGB in [0, 1] minus the
/// mean, [N, 3, H, W] each; H, W multiples of 64) and the ground-truth flow in pixels [N, 2, H, W].
#[derive(Clone, Debug)]
pub struct TrainBatch {
    pub frame_a: HostTensor,
    pub frame_b: HostTensor,
    pub flow: HostTensor,
}

/// What a step measured: the loss and its terms (`T`, the model's: FlowNet's five weighted scales,
/// flow2 .. flow6).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepReport<T = [f32; 5]> {
    pub step: u64,
    pub lr: f32,
    pub loss: f32,
    pub per_scale: T,
}

/// What the trainer needs from a model: its network, how a batch enters it and what the loss is.
pub trait Model: Sized {
    /// A training batch.
    type Batch;
    /// What one recorded step is for: the batch's shapes.
    type Key: Clone + PartialEq + std::fmt::Debug;
    /// The loss's terms, reported with every step.
    type Terms: Copy + std::fmt::Debug + PartialEq;
    /// The loss's buffers at one key (targets, sums), made by [`Model::record_loss`].
    type Loss;

    fn network(&self) -> &Network;
    /// Parameters outside the network's layers (e.g. ProxyNCA's proxies, which belong to the loss): plain
    /// tensors, each with a gradient tensor of its shape that [`Model::record_loss`] adds into (`+=`; the
    /// trainer zeroes it before every step). Adam updates them with the network's parameters (their
    /// `decay` flag says whether weight decay applies), and checkpoints store them under their names in
    /// the weights file (their GPU shape) and Adam's state, so [`Model::from_weights`] must read them back.
    fn extra_params(&self) -> Vec<ParamSlot> {
        Vec::new()
    }
    /// The model from a checkpoint's weights (for [`ModelTrainer::resume`]).
    fn from_weights(ctx: &Context, weights: &Weights) -> Result<Self>;
    /// What checkpoints record about the model (FlowNet: `variant`, `width`); the trainer adds `step`.
    fn metadata(&self) -> Vec<(String, String)>;
    /// Checks a batch; its key.
    fn batch_key(&self, batch: &Self::Batch) -> Result<Self::Key>;
    /// The graph inputs' shapes at `key`.
    fn input_shapes(&self, key: &Self::Key) -> Vec<[usize; 4]>;
    /// Records the loss of the graph's `outputs` into `rec` (after the forward): it must write every
    /// output's gradient d(loss)/d(output) into `output_grads` (overwriting), and keep whatever
    /// [`Model::upload`] and [`Model::read_loss`] need.
    fn record_loss(
        &self,
        ctx: &Context,
        rec: &mut Recorder<'_>,
        key: &Self::Key,
        outputs: &[&Tensor],
        output_grads: &[&Tensor],
        config: &TrainConfig,
    ) -> Result<Self::Loss>;
    /// Writes a batch into the graph's input tensors and the loss's targets.
    fn upload(&self, ctx: &Context, inputs: &[&Tensor], loss: &Self::Loss, batch: &Self::Batch) -> Result<()>;
    /// The loss and its terms after a step ran.
    fn read_loss(&self, ctx: &Context, loss: &Self::Loss) -> Result<(f32, Self::Terms)>;
}

/// One parameter tensor with its gradient and Adam moments.
struct Slot {
    name: String,
    /// Weight decay applies (weights; biases are not decayed, as in FlowNetPytorch).
    decay: bool,
    param: Tensor,
    grad: Tensor,
    m: Tensor,
    v: Tensor,
}

struct TrainPlan<L> {
    acts: Activations,
    loss: L,
    /// Forward, loss and backward (gradients zeroed first).
    gradients: Program,
    /// The Adam update of every parameter.
    update: Program,
    // The activation gradients need no field: the programs' bind groups and clear steps hold their buffers.
}

/// How many batch shapes a trainer keeps recorded steps for.
pub const DEFAULT_TRAIN_PLANS: usize = 2;

/// Trains a [`Model`] in place on the GPU.
pub struct ModelTrainer<M: Model> {
    model: M,
    config: TrainConfig,
    grads: ParamGrads,
    /// Every parameter tensor, in layer order.
    slots: Vec<Slot>,
    step_values: AdamStepBuffer,
    step: u64,
    /// Adam updates applied to the current moments (drives the bias corrections): equal to `step` in a run
    /// that never lost its optimizer state, and counting again from 0 when the moments restart at zero (a
    /// checkpoint resumed without its `.adam` file), so the first updates are not blown up by a bias
    /// correction of ~1 on zero moments.
    adam_steps: u64,
    plans: LruCache<M::Key, TrainPlan<M::Loss>>,
    /// Extra entries written into every checkpoint's metadata (the run's settings, the data stream's
    /// seed), read back by [`ModelTrainer::resume`].
    metadata: BTreeMap<String, String>,
}

/// The FlowNet trainer (`Trainer::new(ctx, flownet, config)`).
pub type Trainer = ModelTrainer<FlowNet>;

impl<M: Model> ModelTrainer<M> {
    pub fn new(ctx: &Context, model: M, config: TrainConfig) -> Result<Self> {
        let net = model.network();
        let grads = net.new_grads(ctx)?;
        let mut slots = Vec::new();
        for s in net.slots(&grads).into_iter().chain(model.extra_params()) {
            let m = ctx.tensor(&format!("{} m", s.name), s.param.shape())?;
            let v = ctx.tensor(&format!("{} v", s.name), s.param.shape())?;
            slots.push(Slot { name: s.name, decay: s.decay, param: s.param, grad: s.grad, m, v });
        }
        Ok(ModelTrainer {
            model,
            config,
            grads,
            slots,
            step_values: AdamStepBuffer::new(ctx)?,
            step: 0,
            adam_steps: 0,
            plans: LruCache::new(DEFAULT_TRAIN_PLANS),
            metadata: BTreeMap::new(),
        })
    }

    pub fn network(&self) -> &M {
        &self.model
    }
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }
    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }
    /// Continues counting from `step` (after loading a checkpoint).
    pub fn set_steps(&mut self, step: u64) {
        self.step = step;
    }
    /// How many batch shapes keep their recorded steps (least recently used dropped first).
    pub fn set_plan_capacity(&mut self, capacity: usize) {
        self.plans.set_capacity(capacity);
    }
    /// The number of recorded steps held.
    pub fn cached_plans(&self) -> usize {
        self.plans.len()
    }

    fn reserved(&self, key: &str) -> bool {
        key == "step" || self.model.metadata().iter().any(|(k, _)| k == key)
    }
    /// Records `key = value` in every checkpoint this trainer saves (`step` and the model's own keys,
    /// FlowNet's `variant` and `width`, cannot be set).
    pub fn set_metadata(&mut self, key: &str, value: impl ToString) {
        if !self.reserved(key) {
            self.metadata.insert(key.to_string(), value.to_string());
        }
    }
    /// The extra checkpoint metadata (after [`ModelTrainer::resume`]: what the checkpoint held besides the
    /// model's keys and `step`).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    fn plan(&mut self, ctx: &Context, key: &M::Key) -> Result<()> {
        if self.plans.contains(key) {
            return Ok(());
        }
        let net = self.model.network();
        let graph = net.graph();
        let shapes = self.model.input_shapes(key);
        let acts = net.activations(ctx, &shapes)?;
        let g = Activations::new(ctx, graph, &shapes, "gradient")?;
        let mut rec = ctx.recorder("train step (record)");
        for t in g.tensors().chain(self.slots.iter().map(|s| &s.grad)) {
            rec.clear(t.buffer());
        }
        net.record_forward(&mut rec, &acts)?;
        rec.mark("loss");
        let outputs = graph.outputs().iter().map(|&o| acts.tensor(o)).collect::<Result<Vec<_>>>()?;
        let output_grads = graph.outputs().iter().map(|&o| g.tensor(o)).collect::<Result<Vec<_>>>()?;
        let loss = self.model.record_loss(ctx, &mut rec, key, &outputs, &output_grads, &self.config)?;
        net.record_backward(&mut rec, &acts, &g, &self.grads)?;
        let gradients = rec.finish_program()?;
        let mut rec = ctx.recorder("adam (record)");
        rec.mark("adam");
        for s in &self.slots {
            let adam = AdamConfig {
                weight_decay: if s.decay { self.config.adam.weight_decay } else { 0.0 },
                ..self.config.adam
            };
            adam_step(&mut rec, &s.param, &s.grad, &s.m, &s.v, &adam, &self.step_values)?;
        }
        let update = rec.finish_program()?;
        self.plans.insert(key.clone(), TrainPlan { acts, loss, gradients, update });
        Ok(())
    }

    fn run(&mut self, ctx: &Context, batch: &M::Batch, update: bool) -> Result<StepReport<M::Terms>> {
        let key = self.model.batch_key(batch)?;
        self.plan(ctx, &key)?;
        let step = self.step + 1;
        let lr = self.config.lr_at(step);
        let plan = self.plans.get(&key).ok_or(Error::InvalidParam { op: "train", message: "plan missing".into() })?;
        let graph = self.model.network().graph();
        let inputs = graph.inputs().iter().map(|&a| plan.acts.tensor(a)).collect::<Result<Vec<_>>>()?;
        self.model.upload(ctx, &inputs, &plan.loss, batch)?;
        let mut rec = ctx.recorder("train step");
        rec.replay(&plan.gradients);
        rec.submit()?;
        let (loss, per_scale) = self.model.read_loss(ctx, &plan.loss)?;
        // Checked before the update, so a diverged step never reaches the weights.
        if !loss.is_finite() {
            return Err(Error::Gpu {
                op: "train".into(),
                message: format!("loss became {loss} at step {step} (weights left as they were): check the data for NaN, or lower the learning rate"),
            });
        }
        if update {
            self.step_values.set(ctx, &self.config.adam, self.adam_steps + 1, lr)?;
            let mut rec = ctx.recorder("adam");
            rec.replay(&plan.update);
            rec.submit()?;
            self.step = step;
            self.adam_steps += 1;
        }
        Ok(StepReport { step, lr, loss, per_scale })
    }

    /// The recorded step (forward, loss, backward, Adam) for batches of `key`, recording it if needed; its
    /// marks split it into layers ([`Program::segments`]). For benchmarks: replaying it trains on whatever
    /// the plan's input buffers hold.
    pub fn recorded_step_for(&mut self, ctx: &Context, key: &M::Key) -> Result<Program> {
        self.plan(ctx, key)?;
        let plan = self.plans.get(key).ok_or(Error::InvalidParam { op: "train", message: "plan missing".into() })?;
        self.step_values.set(ctx, &self.config.adam, self.adam_steps + 1, self.config.lr_at(self.step + 1))?;
        let mut all = plan.gradients.clone();
        all.extend(&plan.update);
        Ok(all)
    }

    /// One training step: forward, loss and backward as one submission, then (when the loss is finite)
    /// Adam as a second.
    pub fn step(&mut self, ctx: &Context, batch: &M::Batch) -> Result<StepReport<M::Terms>> {
        self.run(ctx, batch, true)
    }

    /// Forward, loss and backward only: the gradients are left in place for [`ModelTrainer::gradients`]
    /// and the weights are not changed.
    pub fn compute_gradients(&mut self, ctx: &Context, batch: &M::Batch) -> Result<StepReport<M::Terms>> {
        self.run(ctx, batch, false)
    }

    /// The current parameter gradients in PyTorch layout, named `grad.<tensor name>`.
    pub fn gradients(&self, ctx: &Context) -> Result<Weights> {
        self.model.network().download_grads(ctx, &self.grads)
    }

    /// The current weights, by state-dict name (ready to save as a safetensors checkpoint), with the
    /// model's extra parameters ([`Model::extra_params`]).
    pub fn weights(&self, ctx: &Context) -> Result<Weights> {
        let w = self.model.network().weights(ctx, "trained")?;
        let extra = self.model.extra_params();
        if extra.is_empty() {
            return Ok(w);
        }
        let mut tensors = Vec::new();
        for n in w.names() {
            let shape = w.shape(n).unwrap_or_default().to_vec();
            tensors.push((n.to_string(), shape.clone(), w.get(n, &shape)?.to_vec()));
        }
        for s in extra {
            tensors.push((s.name, s.param.shape().to_vec(), ctx.download(&s.param)?.data));
        }
        Ok(Weights::from_tensors("trained", tensors))
    }

    /// Saves a checkpoint: the weights at `path` (a plain weights file, loadable by the model's loader,
    /// e.g. [`FlowNet::load`] and `corrflow flow`, with the model's metadata and `step`) and Adam's state
    /// beside it at [`ModelTrainer::optimizer_path`]. Each file is written atomically (temporary name, then
    /// rename), so a crash mid-save leaves the previous checkpoint readable.
    pub fn save_checkpoint(&self, ctx: &Context, path: &std::path::Path) -> Result<()> {
        let mut moments = Vec::new();
        for s in &self.slots {
            moments.push((format!("m.{}", s.name), vec![s.m.numel()], ctx.download(&s.m)?.data));
            moments.push((format!("v.{}", s.name), vec![s.v.numel()], ctx.download(&s.v)?.data));
        }
        // Optimizer state first: a weights file never claims a step whose moments were not saved.
        self.tag(Weights::from_tensors("optimizer", moments).with_metadata("adam_steps", self.adam_steps))
            .save(Self::optimizer_path(path))?;
        self.tag(self.weights(ctx)?).save(path)
    }

    /// Saves the current weights alone (with the checkpoint metadata), atomically: a model file for the
    /// model's loader (e.g. [`FlowNet::load`] and `corrflow flow`), without the optimiser state.
    pub fn save_weights(&self, ctx: &Context, path: &std::path::Path) -> Result<()> {
        self.save_weights_with(ctx, path, &[])
    }

    /// [`ModelTrainer::save_weights`] with `extra` metadata in this file only (e.g. the validation figures of
    /// a best checkpoint, which later checkpoints must not repeat).
    pub fn save_weights_with(&self, ctx: &Context, path: &std::path::Path, extra: &[(&str, String)]) -> Result<()> {
        extra.iter().fold(self.tag(self.weights(ctx)?), |w, (k, v)| w.with_metadata(k, v)).save(path)
    }

    /// `w` with the checkpoint metadata: the run's entries, the model's and `step`.
    fn tag(&self, w: Weights) -> Weights {
        let w = self.metadata.iter().fold(w, |w, (k, v)| w.with_metadata(k, v));
        let w = self.model.metadata().into_iter().fold(w, |w, (k, v)| w.with_metadata(&k, v));
        w.with_metadata("step", self.step)
    }

    /// Where [`ModelTrainer::save_checkpoint`] keeps Adam's state for the weights at `path`.
    pub fn optimizer_path(path: &std::path::Path) -> std::path::PathBuf {
        let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        name.push(".adam");
        path.with_file_name(name)
    }

    /// Resumes from a checkpoint written by [`ModelTrainer::save_checkpoint`]: weights, step count, extra
    /// metadata and, when its optimizer file is present and at the same step, Adam's moments (else they
    /// start from zero, and the returned flag is false).
    pub fn resume(ctx: &Context, path: &std::path::Path, config: TrainConfig) -> Result<(Self, bool)> {
        let weights = Weights::load(path)?;
        let step: u64 = weights.metadata().get("step").and_then(|s| s.parse().ok()).unwrap_or(0);
        let mut trainer = Self::new(ctx, M::from_weights(ctx, &weights)?, config)?;
        trainer.step = step;
        // Validation figures (`val_*`) describe the file they were written with, not the run going on.
        for (k, v) in weights.metadata().iter().filter(|(k, _)| !k.starts_with("val_")) {
            trainer.set_metadata(k, v);
        }
        let Ok(optim) = Weights::load(Self::optimizer_path(path)) else { return Ok((trainer, false)) };
        if optim.metadata().get("step").and_then(|s| s.parse::<u64>().ok()) != Some(step) {
            return Ok((trainer, false));
        }
        for s in &trainer.slots {
            let m = optim.get(&format!("m.{}", s.name), &[s.m.numel()])?;
            let v = optim.get(&format!("v.{}", s.name), &[s.v.numel()])?;
            ctx.write(&s.m, m)?;
            ctx.write(&s.v, v)?;
        }
        trainer.adam_steps = optim.metadata().get("adam_steps").and_then(|s| s.parse().ok()).unwrap_or(step);
        Ok((trainer, true))
    }
}
