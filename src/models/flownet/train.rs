//! FlowNet as a [`Model`] of the trainer: its batches (frame pairs and ground-truth flow) and its loss, the
//! multiscale endpoint error of FLOWNET.md: the sum over flow2 .. flow6 of weight_k / N times the summed
//! EPE against the ground truth / 20, area-pooled to that scale.

use super::{FlowNet, Variant, DIV_FLOW, SIZE_MULTIPLE};
use crate::error::{Error, Result};
use crate::graph::Network;
use crate::models::Weights;
use crate::ops::loss::{adaptive_avg_pool, epe_loss, reduce_sum};
use crate::runtime::{Context, Program, Recorder, Tensor};
use crate::training::{Model, ModelTrainer, TrainBatch, TrainConfig};

/// The multiscale loss's buffers at one batch shape.
pub struct FlowLoss {
    /// The ground truth [N, 2, H, W], in pixels.
    gt: Tensor,
    /// The five weighted terms (flow2 .. flow6).
    terms: Tensor,
}

impl Model for FlowNet {
    type Batch = TrainBatch;
    /// (batch, height, width).
    type Key = (usize, usize, usize);
    /// The weighted loss terms of flow2 .. flow6.
    type Terms = [f32; 5];
    type Loss = FlowLoss;

    fn network(&self) -> &Network {
        &self.net
    }

    fn from_weights(ctx: &Context, weights: &Weights) -> Result<Self> {
        FlowNet::new(ctx, weights)
    }

    fn metadata(&self) -> Vec<(String, String)> {
        vec![("variant".into(), self.arch.variant.to_string()), ("width".into(), self.arch.width.to_string())]
    }

    fn batch_key(&self, batch: &TrainBatch) -> Result<(usize, usize, usize)> {
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
        if n == 0 || h == 0 || w == 0 || h % SIZE_MULTIPLE != 0 || w % SIZE_MULTIPLE != 0 {
            return Err(Error::Shape {
                op: "train",
                message: format!("batch of {n} at {w}x{h}: need N >= 1 and sides that are multiples of 64"),
            });
        }
        Ok((n, h, w))
    }

    fn input_shapes(&self, &(n, h, w): &(usize, usize, usize)) -> Vec<[usize; 4]> {
        self.arch.input_shapes(n, h, w)
    }

    fn record_loss(
        &self,
        ctx: &Context,
        rec: &mut Recorder<'_>,
        &(n, h, w): &(usize, usize, usize),
        outputs: &[&Tensor],
        output_grads: &[&Tensor],
        config: &TrainConfig,
    ) -> Result<FlowLoss> {
        let gt = ctx.tensor("ground truth", [n, 2, h, w])?;
        let terms = ctx.tensor("loss terms", [1, 1, 1, 5])?;
        // weight_k / N * sum of EPE against the ground truth / 20 area-pooled to scale k; the EPE kernel
        // writes d(loss)/d(flow_k).
        for (k, (pred, grad)) in outputs.iter().zip(output_grads).enumerate() {
            let [_, _, hk, wk] = pred.shape();
            let target = ctx.tensor("target", [n, 2, hk, wk])?;
            let per_pixel = ctx.tensor("loss per pixel", [1, 1, 1, n * hk * wk])?;
            adaptive_avg_pool(rec, &gt, &target, 1.0 / DIV_FLOW)?;
            epe_loss(rec, pred, &target, config.multiscale_weights[k] / n as f32, grad, &per_pixel)?;
            reduce_sum(rec, &per_pixel, &terms, k)?;
        }
        Ok(FlowLoss { gt, terms })
    }

    fn upload(&self, ctx: &Context, inputs: &[&Tensor], loss: &FlowLoss, batch: &TrainBatch) -> Result<()> {
        match self.arch.variant {
            Variant::C => {
                ctx.write(inputs[0], &batch.frame_a.data)?;
                ctx.write(inputs[1], &batch.frame_b.data)?;
            }
            Variant::S => {
                // FlowNetS: [a, b] stacked along channels for every sample.
                let per = batch.frame_a.numel() / batch.frame_a.shape[0];
                let mut stacked = Vec::with_capacity(2 * batch.frame_a.numel());
                for i in 0..batch.frame_a.shape[0] {
                    stacked.extend_from_slice(&batch.frame_a.data[i * per..(i + 1) * per]);
                    stacked.extend_from_slice(&batch.frame_b.data[i * per..(i + 1) * per]);
                }
                ctx.write(inputs[0], &stacked)?;
            }
        }
        ctx.write(&loss.gt, &batch.flow.data)
    }

    fn read_loss(&self, ctx: &Context, loss: &FlowLoss) -> Result<(f32, [f32; 5])> {
        let t = ctx.download(&loss.terms)?.data;
        let per_scale = [t[0], t[1], t[2], t[3], t[4]];
        Ok((per_scale.iter().sum(), per_scale))
    }
}

impl ModelTrainer<FlowNet> {
    /// The recorded step (forward, multiscale loss, backward, Adam) for a batch of `n` pairs at `h` x `w`
    /// (see [`ModelTrainer::recorded_step_for`]).
    pub fn recorded_step(&mut self, ctx: &Context, n: usize, h: usize, w: usize) -> Result<Program> {
        self.recorded_step_for(ctx, &(n, h, w))
    }
}
