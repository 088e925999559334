//! [`Trainer`]: owns a [`FlowNet`], its parameter gradients and Adam moments, and per input shape two
//! recorded programs (forward + multiscale loss + backward; Adam) replayed every step.

use std::collections::HashMap;

use super::backward::record_backward;
use crate::error::{Error, Result};
use crate::models::flownet::{Activations, FlowNet, Variant, DIV_FLOW};
use crate::models::Weights;
use crate::ops::conv::ConvGrads;
use crate::ops::loss::{adaptive_avg_pool, epe_loss, reduce_sum, MULTISCALE_WEIGHTS};
use crate::ops::optim::{adam_step, AdamConfig, AdamStepBuffer};
use crate::runtime::{Context, HostTensor, Program, Tensor};

/// Optimiser and schedule. Defaults follow FLOWNET.md / FlowNetPytorch: Adam (0.9, 0.999), lr 1e-4,
/// multiscale weights 0.005 .. 0.32, no warm-up (FlowNetC's paper schedule warms up from 1e-6 over 10k
/// iterations: set `warmup_steps`), lr halved at each milestone.
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

/// One training batch: frames normalised as the network expects (RGB in [0, 1] minus the mean,
/// [N, 3, H, W] each; H, W multiples of 64) and the ground-truth flow in pixels [N, 2, H, W].
#[derive(Clone, Debug)]
pub struct TrainBatch {
    pub frame_a: HostTensor,
    pub frame_b: HostTensor,
    pub flow: HostTensor,
}

/// What a step measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepReport {
    pub step: u64,
    pub lr: f32,
    /// The multiscale loss (FLOWNET.md), and its five weighted terms (flow2 .. flow6).
    pub loss: f32,
    pub per_scale: [f32; 5],
}

/// One parameter tensor (packed layout for conv weights) with its gradient and Adam moments.
struct Slot {
    name: String,
    /// Weight decay applies to this tensor (conv weights); biases are not decayed, as in FlowNetPytorch.
    decay: bool,
    param: Tensor,
    grad: Tensor,
    m: Tensor,
    v: Tensor,
}

struct TrainPlan {
    acts: Activations,
    gt: Tensor,
    losses: Tensor,
    /// Forward, loss and backward (gradients zeroed first).
    gradients: Program,
    /// The Adam update of every parameter.
    update: Program,
    // The activation gradients, loss targets and scratch need no field: the programs' bind groups and
    // clear steps hold their buffers.
}

/// Trains a FlowNet in place on the GPU.
pub struct Trainer {
    net: FlowNet,
    config: TrainConfig,
    grads: HashMap<String, ConvGrads>,
    /// Every parameter tensor, in layer order.
    slots: Vec<Slot>,
    step_values: AdamStepBuffer,
    step: u64,
    /// Adam updates applied to the current moments (drives the bias corrections): equal to `step` in a run
    /// that never lost its optimizer state, and counting again from 0 when the moments restart at zero (a
    /// checkpoint resumed without its `.adam` file), so the first updates are not blown up by a bias
    /// correction of ~1 on zero moments.
    adam_steps: u64,
    plans: HashMap<(usize, usize, usize), TrainPlan>,
    /// Extra entries written into every checkpoint's metadata (the run's settings, the data stream's
    /// seed), read back by [`Trainer::resume`].
    metadata: std::collections::BTreeMap<String, String>,
}

impl Trainer {
    pub fn new(ctx: &Context, net: FlowNet, config: TrainConfig) -> Result<Self> {
        let mut grads = HashMap::new();
        let mut slots = Vec::new();
        for l in net.arch().layers() {
            let (_, w) = net.layer(&l.name)?;
            let g = w.new_grads(ctx, &l.name)?;
            let moments = |t: &Tensor, what: &str| -> Result<(Tensor, Tensor)> {
                Ok((
                    ctx.tensor(&format!("{} {what} m", l.name), t.shape())?,
                    ctx.tensor(&format!("{} {what} v", l.name), t.shape())?,
                ))
            };
            let (m, v) = moments(w.packed(), "weight")?;
            slots.push(Slot {
                name: l.weight_name(),
                decay: true,
                param: w.packed().clone(),
                grad: g.weight.clone(),
                m,
                v,
            });
            if let (Some(b), Some(gb)) = (w.bias(), g.bias.as_ref()) {
                let (m, v) = moments(b, "bias")?;
                slots.push(Slot { name: l.bias_name(), decay: false, param: b.clone(), grad: gb.clone(), m, v });
            }
            grads.insert(l.name.clone(), g);
        }
        let step_values = AdamStepBuffer::new(ctx)?;
        Ok(Trainer {
            net,
            config,
            grads,
            slots,
            step_values,
            step: 0,
            adam_steps: 0,
            plans: HashMap::new(),
            metadata: Default::default(),
        })
    }

    pub fn network(&self) -> &FlowNet {
        &self.net
    }
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }
    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }
    /// Records `key = value` in every checkpoint this trainer saves (the keys `variant`, `width` and `step`
    /// are the trainer's own and cannot be set).
    pub fn set_metadata(&mut self, key: &str, value: impl ToString) {
        if !matches!(key, "variant" | "width" | "step") {
            self.metadata.insert(key.to_string(), value.to_string());
        }
    }
    /// The extra checkpoint metadata (after [`Trainer::resume`]: what the checkpoint held besides
    /// `variant`, `width` and `step`).
    pub fn metadata(&self) -> &std::collections::BTreeMap<String, String> {
        &self.metadata
    }
    /// Continues counting from `step` (after loading a checkpoint).
    pub fn set_steps(&mut self, step: u64) {
        self.step = step;
    }

    fn check_batch(&self, batch: &TrainBatch) -> Result<(usize, usize, usize)> {
        let [n, c, h, w] = batch.frame_a.shape;
        if c != 3 || batch.frame_b.shape != batch.frame_a.shape || batch.flow.shape != [n, 2, h, w] {
            return Err(Error::Shape {
                op: "train",
                message: format!(
                    "frames {:?} and {:?} must be [N, 3, H, W] and flow {:?} [N, 2, H, W]",
                    batch.frame_a.shape, batch.frame_b.shape, batch.flow.shape
                ),
            });
        }
        if n == 0 || h == 0 || w == 0 || h % 64 != 0 || w % 64 != 0 {
            return Err(Error::Shape {
                op: "train",
                message: format!("batch of {n} at {w}x{h}: need N >= 1 and sides that are multiples of 64"),
            });
        }
        Ok((n, h, w))
    }

    fn plan(&mut self, ctx: &Context, key: (usize, usize, usize)) -> Result<()> {
        if self.plans.contains_key(&key) {
            return Ok(());
        }
        let (n, h, w) = key;
        let net = &self.net;
        let acts = net.activations(ctx, n, h, w)?;
        let g = net.activations(ctx, n, h, w)?;
        let gt = ctx.tensor("ground truth", [n, 2, h, w])?;
        let losses = ctx.tensor("losses", [1, 1, 1, 5])?;
        let mut rec = ctx.recorder("train step (record)");
        for (_, t) in g.iter() {
            rec.clear(t.buffer());
        }
        for grads in self.grads.values() {
            rec.clear(grads.weight.buffer());
            if let Some(b) = &grads.bias {
                rec.clear(b.buffer());
            }
        }
        net.record_forward(&mut rec, &acts)?;
        // Multiscale loss: weight_k / N * sum of EPE against the ground truth / 20 area-pooled to scale k.
        for k in 0..5 {
            let name = ["flow2", "flow3", "flow4", "flow5", "flow6"][k];
            let pred = acts.get(name)?;
            let [_, _, hk, wk] = pred.shape();
            let target = ctx.tensor("target", [n, 2, hk, wk])?;
            let terms = ctx.tensor("loss terms", [1, 1, 1, n * hk * wk])?;
            adaptive_avg_pool(&mut rec, &gt, &target, 1.0 / DIV_FLOW)?;
            epe_loss(&mut rec, pred, &target, self.config.multiscale_weights[k] / n as f32, g.get(name)?, &terms)?;
            reduce_sum(&mut rec, &terms, &losses, k)?;
        }
        let corr_grad = match net.arch().variant {
            Variant::C => {
                let a3 = acts.get("conv3")?.shape();
                let corr = net.arch().correlation();
                let (oh, ow) = corr.output_size(a3[2], a3[3])?;
                Some(ctx.tensor("correlation gradient", [n, corr.displacements(), oh, ow])?)
            }
            Variant::S => None,
        };
        record_backward(net, &mut rec, &acts, &g, &self.grads, corr_grad.as_ref())?;
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
        self.plans.insert(key, TrainPlan { acts, gt, losses, gradients, update });
        Ok(())
    }

    /// Uploads a batch into the plan's input buffers.
    fn upload(&self, ctx: &Context, plan: &TrainPlan, batch: &TrainBatch) -> Result<()> {
        let input = plan.acts.get("input")?;
        match self.net.arch().variant {
            Variant::C => {
                ctx.write(input, &batch.frame_a.data)?;
                ctx.write(plan.acts.get("input_b")?, &batch.frame_b.data)?;
            }
            Variant::S => {
                // FlowNetS: [a, b] stacked along channels for every sample.
                let per = batch.frame_a.numel() / batch.frame_a.shape[0];
                let mut stacked = Vec::with_capacity(2 * batch.frame_a.numel());
                for i in 0..batch.frame_a.shape[0] {
                    stacked.extend_from_slice(&batch.frame_a.data[i * per..(i + 1) * per]);
                    stacked.extend_from_slice(&batch.frame_b.data[i * per..(i + 1) * per]);
                }
                ctx.write(input, &stacked)?;
            }
        }
        ctx.write(&plan.gt, &batch.flow.data)
    }

    fn run(&mut self, ctx: &Context, batch: &TrainBatch, update: bool) -> Result<StepReport> {
        let key = self.check_batch(batch)?;
        self.plan(ctx, key)?;
        let step = self.step + 1;
        let lr = self.config.lr_at(step);
        let plan = self.plans.get(&key).ok_or(Error::InvalidParam { op: "train", message: "plan missing".into() })?;
        self.upload(ctx, plan, batch)?;
        let mut rec = ctx.recorder("train step");
        rec.replay(&plan.gradients);
        rec.submit()?;
        let terms = ctx.download(&plan.losses)?.data;
        let per_scale = [terms[0], terms[1], terms[2], terms[3], terms[4]];
        let loss = per_scale.iter().sum::<f32>();
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

    /// The recorded step (forward, loss, backward, Adam) for a batch of `n` pairs at `h` x `w`, recording
    /// it if needed; its marks split it into layers ([`Program::segments`]). For benchmarks: replaying it
    /// trains on whatever the plan's input buffers hold.
    pub fn recorded_step(&mut self, ctx: &Context, n: usize, h: usize, w: usize) -> Result<Program> {
        self.plan(ctx, (n, h, w))?;
        let plan =
            self.plans.get(&(n, h, w)).ok_or(Error::InvalidParam { op: "train", message: "plan missing".into() })?;
        self.step_values.set(ctx, &self.config.adam, self.adam_steps + 1, self.config.lr_at(self.step + 1))?;
        let mut all = plan.gradients.clone();
        all.extend(&plan.update);
        Ok(all)
    }

    /// One training step: forward, multiscale loss and backward as one submission, then (when the loss
    /// is finite) Adam as a second.
    pub fn step(&mut self, ctx: &Context, batch: &TrainBatch) -> Result<StepReport> {
        self.run(ctx, batch, true)
    }

    /// Forward, loss and backward only: the gradients are left in place for [`Trainer::gradients`] and
    /// the weights are not changed.
    pub fn compute_gradients(&mut self, ctx: &Context, batch: &TrainBatch) -> Result<StepReport> {
        self.run(ctx, batch, false)
    }

    /// The current parameter gradients in PyTorch layout, named `grad.<tensor name>`.
    pub fn gradients(&self, ctx: &Context) -> Result<Weights> {
        let mut out = Vec::new();
        for l in self.net.arch().layers() {
            let (_, w) = self.net.layer(&l.name)?;
            let g = self
                .grads
                .get(&l.name)
                .ok_or(Error::InvalidParam { op: "train", message: format!("no gradients for `{}`", l.name) })?;
            let (gw, gb) = g.download(ctx, w)?;
            out.push((format!("grad.{}", l.weight_name()), gw.shape.to_vec(), gw.data));
            if let Some(gb) = gb {
                out.push((format!("grad.{}", l.bias_name()), vec![gb.len()], gb));
            }
        }
        Ok(Weights::from_tensors("gradients", out))
    }

    /// Saves a checkpoint: the weights at `path` (a plain FlowNet safetensors file, loadable by
    /// [`FlowNet::load`] and `corrflow flow`, with `variant`, `width` and `step` in its metadata) and Adam's
    /// state beside it at [`Trainer::optimizer_path`]. Each file is written atomically (temporary name,
    /// then rename), so a crash mid-save leaves the previous checkpoint readable.
    pub fn save_checkpoint(&self, ctx: &Context, path: &std::path::Path) -> Result<()> {
        let arch = self.net.arch();
        let tag = |w: Weights| {
            let w = self.metadata.iter().fold(w, |w, (k, v)| w.with_metadata(k, v));
            w.with_metadata("variant", arch.variant).with_metadata("width", arch.width).with_metadata("step", self.step)
        };
        let mut moments = Vec::new();
        for s in &self.slots {
            moments.push((format!("m.{}", s.name), vec![s.m.numel()], ctx.download(&s.m)?.data));
            moments.push((format!("v.{}", s.name), vec![s.v.numel()], ctx.download(&s.v)?.data));
        }
        // Optimizer state first: a weights file never claims a step whose moments were not saved.
        tag(Weights::from_tensors("optimizer", moments).with_metadata("adam_steps", self.adam_steps))
            .save(Self::optimizer_path(path))?;
        tag(self.weights(ctx)?).save(path)
    }

    /// Saves the current weights alone (with the checkpoint metadata), atomically: a model file for
    /// [`FlowNet::load`] and `corrflow flow`, without the optimiser state.
    pub fn save_weights(&self, ctx: &Context, path: &std::path::Path) -> Result<()> {
        let arch = self.net.arch();
        let w = self.metadata.iter().fold(self.weights(ctx)?, |w, (k, v)| w.with_metadata(k, v));
        w.with_metadata("variant", arch.variant)
            .with_metadata("width", arch.width)
            .with_metadata("step", self.step)
            .save(path)
    }

    /// Where [`Trainer::save_checkpoint`] keeps Adam's state for the weights at `path`.
    pub fn optimizer_path(path: &std::path::Path) -> std::path::PathBuf {
        let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        name.push(".adam");
        path.with_file_name(name)
    }

    /// Resumes from a checkpoint written by [`Trainer::save_checkpoint`]: weights, step count and, when its
    /// optimizer file is present and at the same step, Adam's moments (else they start from zero, and the
    /// returned flag is false).
    pub fn resume(ctx: &Context, path: &std::path::Path, config: TrainConfig) -> Result<(Self, bool)> {
        let weights = Weights::load(path)?;
        let step: u64 = weights.metadata().get("step").and_then(|s| s.parse().ok()).unwrap_or(0);
        let mut trainer = Trainer::new(ctx, FlowNet::new(ctx, &weights)?, config)?;
        trainer.step = step;
        for (k, v) in weights.metadata() {
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

    /// The current weights, by FlowNetPytorch names (ready to save as a safetensors checkpoint).
    pub fn weights(&self, ctx: &Context) -> Result<Weights> {
        let mut out = Vec::new();
        for l in self.net.arch().layers() {
            let (_, w) = self.net.layer(&l.name)?;
            let (wt, b) = w.download(ctx)?;
            out.push((l.weight_name(), wt.shape.to_vec(), wt.data));
            if let Some(b) = b {
                out.push((l.bias_name(), vec![b.len()], b));
            }
        }
        Ok(Weights::from_tensors("trained", out))
    }
}
