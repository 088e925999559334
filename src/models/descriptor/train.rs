//! The descriptor network as a [`Model`] of the generic trainer: batches of image pairs with K exact
//! correspondences each ([`DescBatch`], made by `data`), and the metric-learning losses of
//! [`crate::ops::metric`], recorded into the training step so that a step never leaves the GPU:
//!
//! 1. the Siamese forward: the batch holds the N images A and then their N images B (`[2N, 1, H, W]`), one
//!    network applied to both;
//! 2. [`sample_descriptors_channels`] samples the dense maps at the points (bilinearly, sub-pixel; all
//!    channels, or a learner's slice in the divide phase of [`super::divide`]), and
//!    [`l2_normalize`] re-normalises the rows (interpolated unit vectors are shorter than 1), giving A's rows
//!    and B's rows, `M = N K` each; row `i` of A and row `i` of B are one scene point (one class);
//! 3. the loss on the `M x M` distance matrix between A's and B's rows ([`pairwise_distance`], Euclidean):
//!    - **contrastive** ([`contrastive_loss`], margin m): positives pulled together, every negative of the
//!      batch closer than m pushed out, averaged per anchor (the expectation of uniform random negatives,
//!      without its noise: the sampler `random`);
//!    - **triplet** `max(0, m + d(a, p) - d(a, n))` ([`triplet_loss`]) with anchors A's rows, positives their
//!      B rows ([`mine_positives`]) and one negative per anchor from the chosen sampler: `random`
//!      ([`mine_random_negatives`]), `hardest` in the batch, symmetric as HardNet
//!      ([`mine_hardest_negatives`]), `semihard` (FaceNet, [`mine_semihard_negatives`]),
//!      `distance-weighted` (Wu et al., [`mine_distance_weighted`]) or `hierarchical` (Ge et al.):
//!      the batch's class means ([`class_means`] of A's and B's rows), each class's nearest classes by
//!      them ([`nearest_classes`]), and negatives drawn from the anchor's nearest classes
//!      ([`mine_class_negatives`]). Ge et al. build their class tree once per epoch over a fixed set of
//!      classes and choose a batch's classes from it; here every batch brings new classes (scene points
//!      never recur), so the tree is rebuilt from each batch's own embedding, on the GPU, and every class is
//!      an anchor; the tree's cut for batch selection and the dynamic margin are not used;
//!    - **ProxyNCA** (Movshovitz-Attias et al. 2017, [`proxy_nca_loss`]): every row of A and B against a
//!      learned proxy per class (unit-normalised, squared distances, temperature T). Proxies need classes
//!      that recur, so ProxyNCA batches come from a fixed pool of scene points (`data`: a finite set of
//!      source scenes with fixed points in each, seen through ever new homographies); the proxies are a
//!      parameter of the loss ([`Model::extra_params`], `loss.proxies` in checkpoints), updated by Adam
//!      with the network;
//! 4. the backward of the same chain back to the maps' gradient, which the network's backward takes.
//!
//! Per-step randomness (random, distance-weighted and hierarchical negatives) comes from a [`SeedBuffer`]
//! written with each batch's seed, so the recorded step draws anew every step and a resumed run draws
//! exactly what an uninterrupted one would.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use super::data::DescBatch;
use super::{Descriptor, DescriptorArch, GRID, LOSS_PREFIX};
use crate::error::{Error, Result};
use crate::graph::{Network, ParamSlot};
use crate::models::Weights;
use crate::ops::loss::reduce_sum;
use crate::ops::metric::{
    class_means, contrastive_loss, l2_normalize, l2_normalize_backward, mine_class_negatives, mine_distance_weighted,
    mine_hardest_negatives, mine_positives, mine_random_negatives, mine_semihard_negatives, nearest_classes,
    pairwise_distance, pairwise_distance_backward, proxy_nca_loss, sample_descriptors_channels,
    sample_descriptors_channels_backward, triplet_loss, triplet_loss_backward, ContrastiveSpec, DistanceWeighted,
    GradWrite, Indices, LabelledDistances, PositiveChoice, ProxyNcaSpec, SeedBuffer, TripletSpec, DISTANCE_EPS,
    L2_NORM_EPS, MAX_NEIGHBOURS,
};
use crate::runtime::{Context, HostTensor, Recorder, Tensor};
use crate::training::{Model, TrainConfig};

/// The name of ProxyNCA's proxies in checkpoints.
pub const PROXIES: &str = "loss.proxies";

/// Which loss trains the descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossKind {
    Contrastive,
    Triplet,
    ProxyNca,
}

/// Which negatives a triplet loss sees (and, for the contrastive loss, `Random`: every negative).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SamplerKind {
    Random,
    Hardest,
    Semihard,
    DistanceWeighted,
    Hierarchical,
}

impl LossKind {
    pub const ALL: [LossKind; 3] = [LossKind::Contrastive, LossKind::Triplet, LossKind::ProxyNca];
    pub fn name(self) -> &'static str {
        match self {
            LossKind::Contrastive => "contrastive",
            LossKind::Triplet => "triplet",
            LossKind::ProxyNca => "proxy-nca",
        }
    }
}

impl SamplerKind {
    pub const ALL: [SamplerKind; 5] = [
        SamplerKind::Random,
        SamplerKind::Hardest,
        SamplerKind::Semihard,
        SamplerKind::DistanceWeighted,
        SamplerKind::Hierarchical,
    ];
    pub fn name(self) -> &'static str {
        match self {
            SamplerKind::Random => "random",
            SamplerKind::Hardest => "hardest",
            SamplerKind::Semihard => "semihard",
            SamplerKind::DistanceWeighted => "distance-weighted",
            SamplerKind::Hierarchical => "hierarchical",
        }
    }
}

impl fmt::Display for LossKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
impl fmt::Display for SamplerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for LossKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let names: Vec<&str> = Self::ALL.iter().map(|l| l.name()).collect();
        Self::ALL.into_iter().find(|l| l.name() == s).ok_or_else(|| Error::InvalidParam {
            op: "descriptor loss",
            message: format!("loss {s:?}: use one of {}", names.join(", ")),
        })
    }
}
impl FromStr for SamplerKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let names: Vec<&str> = Self::ALL.iter().map(|l| l.name()).collect();
        Self::ALL.into_iter().find(|l| l.name() == s).ok_or_else(|| Error::InvalidParam {
            op: "descriptor loss",
            message: format!("sampler {s:?}: use one of {}", names.join(", ")),
        })
    }
}

/// The loss of a descriptor training run.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainLossConfig {
    pub loss: LossKind,
    /// The triplet loss's sampler (`None` for the contrastive loss, which uses every negative, and ProxyNCA,
    /// which compares with every proxy).
    pub sampler: Option<SamplerKind>,
    /// The contrastive and triplet margin (unit descriptors: distances in [0, 2]).
    pub margin: f32,
    /// ProxyNCA: the number of classes (proxies), which must match the data's class pool.
    pub proxy_classes: usize,
    /// ProxyNCA's softmax temperature on squared distances.
    pub temperature: f32,
    /// Hierarchical sampling: how many nearest classes of the anchor's class the negatives come from.
    pub neighbours: usize,
    /// Seed of the proxies' initialisation.
    pub proxy_seed: u64,
}

impl Default for TrainLossConfig {
    /// The triplet loss with distance-weighted negatives and margin 1: the best of every loss and sampler at
    /// equal training cost (the README's comparison).
    fn default() -> Self {
        TrainLossConfig {
            loss: LossKind::Triplet,
            sampler: Some(SamplerKind::DistanceWeighted),
            margin: 1.0,
            proxy_classes: 0,
            temperature: 0.1,
            neighbours: 8,
            proxy_seed: 1,
        }
    }
}

impl TrainLossConfig {
    /// The default sampler of a loss (triplet: distance-weighted; the others none).
    pub fn default_sampler(loss: LossKind) -> Option<SamplerKind> {
        (loss == LossKind::Triplet).then_some(SamplerKind::DistanceWeighted)
    }

    /// Checks the combination and the numbers; errors name the flag a user would change.
    pub fn validate(&self) -> Result<()> {
        let bad = |message: String| Err(Error::InvalidParam { op: "descriptor loss", message });
        match (self.loss, self.sampler) {
            (LossKind::Triplet, None) => return bad("the triplet loss needs a --sampler".into()),
            (LossKind::Contrastive, Some(s)) if s != SamplerKind::Random => {
                return bad(format!(
                    "--sampler {s} with the contrastive loss: it takes every negative of the batch (--sampler random); \
                     use the triplet loss for mined negatives"
                ))
            }
            (LossKind::ProxyNca, Some(s)) => {
                return bad(format!(
                "--sampler {s} with proxy-nca: ProxyNCA compares each descriptor with every proxy and samples nothing"
            ))
            }
            _ => {}
        }
        if !(self.margin.is_finite() && self.margin > 0.0 && self.margin <= 4.0) {
            return bad(format!("--margin {}: must be in (0, 4] (unit descriptors are at most 2 apart)", self.margin));
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0 && self.temperature <= 10.0) {
            return bad(format!("temperature {}: must be in (0, 10]", self.temperature));
        }
        if !(1..=MAX_NEIGHBOURS).contains(&self.neighbours) {
            return bad(format!("neighbours {}: must be in 1..={MAX_NEIGHBOURS}", self.neighbours));
        }
        if self.loss == LossKind::ProxyNca && self.proxy_classes < 2 {
            return bad(format!("{} proxy classes: ProxyNCA needs at least 2", self.proxy_classes));
        }
        Ok(())
    }

    /// `loss` or `loss+sampler`, as runs are named.
    pub fn label(&self) -> String {
        match self.sampler {
            Some(s) => format!("{}+{s}", self.loss),
            None => self.loss.to_string(),
        }
    }

    /// What checkpoints record (read back by [`TrainLossConfig::from_metadata`]).
    pub fn metadata(&self) -> Vec<(String, String)> {
        vec![
            ("loss".into(), self.loss.to_string()),
            ("sampler".into(), self.sampler.map_or("none".into(), |s| s.to_string())),
            ("margin".into(), self.margin.to_string()),
            ("temperature".into(), self.temperature.to_string()),
            ("neighbours".into(), self.neighbours.to_string()),
            ("proxy_classes".into(), self.proxy_classes.to_string()),
        ]
    }

    /// The configuration a checkpoint was trained with (defaults for what it does not say).
    pub fn from_metadata(weights: &Weights) -> Result<Self> {
        let m = weights.metadata();
        let mut cfg = TrainLossConfig::default();
        let bad = |key: &str, v: &str| Error::Weights {
            path: weights.source.clone(),
            message: format!("metadata `{key}` = {v:?} is not a valid value"),
        };
        if let Some(v) = m.get("loss") {
            cfg.loss = v.parse()?;
            cfg.sampler = TrainLossConfig::default_sampler(cfg.loss);
        }
        if let Some(v) = m.get("sampler") {
            cfg.sampler = if v == "none" { None } else { Some(v.parse()?) };
        }
        let num = |key: &str| m.get(key).map(|v| v.parse::<f64>().map_err(|_| bad(key, v))).transpose();
        if let Some(v) = num("margin")? {
            cfg.margin = v as f32;
        }
        if let Some(v) = num("temperature")? {
            cfg.temperature = v as f32;
        }
        if let Some(v) = num("neighbours")? {
            cfg.neighbours = v as usize;
        }
        if let Some(v) = num("proxy_classes")? {
            cfg.proxy_classes = v as usize;
        }
        Ok(cfg)
    }
}

/// A descriptor network being trained with a loss.
pub struct DescriptorModel {
    desc: Descriptor,
    loss: TrainLossConfig,
    /// ProxyNCA's proxies `[C, D, 1, 1]` and their gradient.
    proxies: Option<(Tensor, Tensor)>,
}

impl DescriptorModel {
    /// The network with `weights` trained with `loss`; ProxyNCA's proxies come from `weights`
    /// ([`PROXIES`]) when present, else are drawn (unit-normalised Gaussian-like rows, `loss.proxy_seed`).
    pub fn new(ctx: &Context, weights: &Weights, loss: TrainLossConfig) -> Result<Self> {
        loss.validate()?;
        let desc = Descriptor::new(ctx, weights)?.named("training");
        let dim = desc.arch().dim;
        let proxies = if loss.loss == LossKind::ProxyNca {
            let c = loss.proxy_classes;
            let values = match weights.shape(PROXIES) {
                Some(_) => weights.get(PROXIES, &[c, dim, 1, 1])?.to_vec(),
                None => {
                    let mut rng = crate::data::Rng::new(loss.proxy_seed ^ 0x5052_4f58_5921);
                    let mut v: Vec<f32> = (0..c * dim).map(|_| rng.uniform()).collect();
                    v.chunks_mut(dim).for_each(super::unit);
                    v
                }
            };
            let p = ctx.upload("proxies", &HostTensor::new([c, dim, 1, 1], values)?)?;
            Some((p, ctx.tensor("proxies gradient", [c, dim, 1, 1])?))
        } else {
            None
        };
        Ok(DescriptorModel { desc, loss, proxies })
    }

    pub fn descriptor(&self) -> &Descriptor {
        &self.desc
    }
    pub fn arch(&self) -> &DescriptorArch {
        self.desc.arch()
    }
    pub fn loss_config(&self) -> &TrainLossConfig {
        &self.loss
    }
    /// ProxyNCA's proxies' gradient as the last step left it (`None` for the other losses).
    pub fn proxy_gradient(&self, ctx: &Context) -> Result<Option<HostTensor>> {
        self.proxies.as_ref().map(|(_, g)| ctx.download(g)).transpose()
    }
}

/// The loss's buffers at one batch shape.
pub struct DescLoss {
    /// `[2N, K, 2, 1]`: the points of images A then B.
    points: Tensor,
    /// `[M, 1]` classes of A's (= B's) rows, and `[2M, 1]`: A's then B's.
    labels: Indices,
    labels2: Indices,
    seed: SeedBuffer,
    /// The loss, `[1, 1, 1, 1]`.
    value: Tensor,
}

/// The batch shape a step is recorded for: (pairs N, height, width, points per pair K, the descriptor
/// channels the loss sees).
pub type DescKey = (usize, usize, usize, usize, Range<usize>);

impl Model for DescriptorModel {
    type Batch = DescBatch;
    type Key = DescKey;
    type Terms = ();
    type Loss = DescLoss;

    fn network(&self) -> &Network {
        self.desc.network()
    }

    fn extra_params(&self) -> Vec<ParamSlot> {
        match &self.proxies {
            Some((p, g)) => {
                vec![ParamSlot { name: PROXIES.into(), decay: false, param: p.clone(), grad: g.clone() }]
            }
            None => Vec::new(),
        }
    }

    fn from_weights(ctx: &Context, weights: &Weights) -> Result<Self> {
        DescriptorModel::new(ctx, weights, TrainLossConfig::from_metadata(weights)?)
    }

    fn metadata(&self) -> Vec<(String, String)> {
        let mut m = vec![("model".to_string(), "descriptor".to_string())];
        m.extend(self.loss.metadata());
        m
    }

    fn batch_key(&self, batch: &DescBatch) -> Result<DescKey> {
        batch.check()?;
        let [n2, _, h, w] = batch.images.shape;
        let k = batch.points.shape[1];
        let dim = self.arch().dim;
        let channels = batch.channels.clone().unwrap_or(0..dim);
        if channels.is_empty() || channels.end > dim {
            return Err(Error::InvalidParam {
                op: "train descriptor",
                message: format!("descriptor channels {channels:?} of a batch: need a non-empty range inside 0..{dim}"),
            });
        }
        if self.loss.loss == LossKind::ProxyNca && channels != (0..dim) {
            return Err(Error::InvalidParam {
                op: "train descriptor",
                message: format!(
                    "descriptor channels {channels:?}: ProxyNCA's proxies have all {dim} channels, so it trains the whole \
                     descriptor only"
                ),
            });
        }
        if self.loss.loss == LossKind::ProxyNca {
            if let Some(&l) = batch.labels.iter().find(|&&l| l as usize >= self.loss.proxy_classes) {
                return Err(Error::InvalidParam {
                    op: "train descriptor",
                    message: format!("class {l} of a batch has no proxy ({} proxies)", self.loss.proxy_classes),
                });
            }
        } else if let Some(&l) = batch.labels.iter().find(|&&l| l as usize >= n2 / 2 * k) {
            return Err(Error::InvalidParam {
                op: "train descriptor",
                message: format!("class {l} outside the batch's {} points", n2 / 2 * k),
            });
        }
        Ok((n2 / 2, h, w, k, channels))
    }

    fn input_shapes(&self, &(n, h, w, _, _): &DescKey) -> Vec<[usize; 4]> {
        vec![[2 * n, 1, h, w]]
    }

    fn record_loss(
        &self,
        ctx: &Context,
        rec: &mut Recorder<'_>,
        (n, _, _, k, channels): &DescKey,
        outputs: &[&Tensor],
        output_grads: &[&Tensor],
        _config: &TrainConfig,
    ) -> Result<DescLoss> {
        let (n, k) = (*n, *k);
        let (map, dmap) = (outputs[0], output_grads[0]);
        // The loss sees `channels` of the descriptor (all of them but in a divide phase), as unit rows of
        // their own; the map's other channels get no gradient.
        let d = channels.len();
        let m = n * k;
        let t = |name: &str, shape: [usize; 4]| ctx.tensor(name, shape);
        let points = t("points", [2 * n, k, 2, 1])?;
        let labels = Indices::zeros(ctx, "labels", m, 1)?;
        let labels2 = Indices::zeros(ctx, "labels of A and B", 2 * m, 1)?;
        let seed = SeedBuffer::new(ctx, 0)?;
        let value = t("descriptor loss", [1, 1, 1, 1])?;

        // Rows: sampled, re-normalised.
        let rows = t("sampled rows", [2 * m, d, 1, 1])?;
        let unit_rows = t("rows", [2 * m, d, 1, 1])?;
        sample_descriptors_channels(rec, map, &points, GRID, channels.clone(), &rows)?;
        l2_normalize(rec, &rows, &unit_rows, L2_NORM_EPS)?;
        let d_unit = t("rows gradient", [2 * m, d, 1, 1])?;
        let bytes = (m * d * 4) as u64;

        if let Some((proxies, d_proxies)) = &self.proxies {
            let c = proxies.shape()[0];
            let unit_proxies = t("unit proxies", [c, d, 1, 1])?;
            let dist = t("proxy distances", [2 * m, c, 1, 1])?;
            let g = t("proxy distances gradient", [2 * m, c, 1, 1])?;
            let terms = t("loss terms", [2 * m, 1, 1, 1])?;
            let d_unit_proxies = t("unit proxies gradient", [c, d, 1, 1])?;
            l2_normalize(rec, proxies, &unit_proxies, L2_NORM_EPS)?;
            pairwise_distance(rec, &unit_rows, &unit_proxies, true, 0.0, &dist)?;
            let spec = ProxyNcaSpec { temperature: self.loss.temperature, scale: 1.0 };
            proxy_nca_loss(rec, &dist, &labels2, spec, &terms, &g, GradWrite::Overwrite)?;
            reduce_sum(rec, &terms, &value, 0)?;
            pairwise_distance_backward(
                rec,
                &unit_rows,
                &unit_proxies,
                &dist,
                &g,
                true,
                Some((&d_unit, GradWrite::Overwrite)),
                Some((&d_unit_proxies, GradWrite::Overwrite)),
            )?;
            // The trainer zeroed the proxies' gradient and nothing else writes it: `=` is its `+=`.
            l2_normalize_backward(rec, proxies, &d_unit_proxies, d_proxies, L2_NORM_EPS)?;
        } else {
            let (ra, rb) = (t("rows A", [m, d, 1, 1])?, t("rows B", [m, d, 1, 1])?);
            rec.copy(unit_rows.buffer(), 0, ra.buffer(), 0, bytes);
            rec.copy(unit_rows.buffer(), bytes, rb.buffer(), 0, bytes);
            let dist = t("distances", [m, m, 1, 1])?;
            let g = t("distances gradient", [m, m, 1, 1])?;
            let terms = t("loss terms", [m, 1, 1, 1])?;
            pairwise_distance(rec, &ra, &rb, false, DISTANCE_EPS, &dist)?;
            let batch = LabelledDistances { dist: &dist, labels_a: &labels, labels_b: &labels };
            let margin = self.loss.margin;
            match (self.loss.loss, self.loss.sampler) {
                (LossKind::Contrastive, _) => {
                    let spec = ContrastiveSpec { margin, exclude_diagonal: false, scale: 1.0 };
                    contrastive_loss(rec, &batch, spec, &terms, &g, GradWrite::Overwrite)?;
                }
                (_, sampler) => {
                    let triplets = Indices::zeros(ctx, "triplets", m, 4)?;
                    mine_positives(rec, &batch, PositiveChoice::Hardest, 1, false, &seed, &triplets)?;
                    match sampler.unwrap_or(SamplerKind::Hardest) {
                        SamplerKind::Random => mine_random_negatives(rec, &batch, &seed, &triplets)?,
                        SamplerKind::Hardest => mine_hardest_negatives(rec, &batch, true, &triplets)?,
                        SamplerKind::Semihard => mine_semihard_negatives(rec, &batch, margin, &triplets)?,
                        SamplerKind::DistanceWeighted => {
                            let cfg = DistanceWeighted { dim: d as u32, ..DistanceWeighted::default() };
                            mine_distance_weighted(rec, &batch, cfg, &seed, &triplets)?
                        }
                        SamplerKind::Hierarchical => {
                            let means = t("class means", [m, d, 1, 1])?;
                            let counts = Indices::zeros(ctx, "class counts", m, 1)?;
                            let class_dist = t("class distances", [m, m, 1, 1])?;
                            let table = Indices::zeros(ctx, "neighbour classes", m, self.loss.neighbours.min(m))?;
                            class_means(rec, &unit_rows, &labels2, &means, &counts)?;
                            pairwise_distance(rec, &means, &means, false, DISTANCE_EPS, &class_dist)?;
                            nearest_classes(rec, &class_dist, &counts, &table)?;
                            mine_class_negatives(rec, &batch, &table, &seed, &triplets)?
                        }
                    }
                    let spec = TripletSpec { margin, scale: 1.0 };
                    triplet_loss(rec, &dist, &triplets, spec, &terms)?;
                    triplet_loss_backward(rec, &dist, &triplets, spec, &g, GradWrite::Overwrite)?;
                }
            }
            reduce_sum(rec, &terms, &value, 0)?;
            let (ga, gb) = (t("rows A gradient", [m, d, 1, 1])?, t("rows B gradient", [m, d, 1, 1])?);
            pairwise_distance_backward(
                rec,
                &ra,
                &rb,
                &dist,
                &g,
                false,
                Some((&ga, GradWrite::Overwrite)),
                Some((&gb, GradWrite::Overwrite)),
            )?;
            rec.copy(ga.buffer(), 0, d_unit.buffer(), 0, bytes);
            rec.copy(gb.buffer(), 0, d_unit.buffer(), bytes, bytes);
        }
        let d_rows = t("sampled rows gradient", [2 * m, d, 1, 1])?;
        l2_normalize_backward(rec, &rows, &d_unit, &d_rows, L2_NORM_EPS)?;
        sample_descriptors_channels_backward(
            rec,
            &points,
            &d_rows,
            GRID,
            channels.clone(),
            dmap,
            GradWrite::Overwrite,
        )?;
        Ok(DescLoss { points, labels, labels2, seed, value })
    }

    fn upload(&self, ctx: &Context, inputs: &[&Tensor], loss: &DescLoss, batch: &DescBatch) -> Result<()> {
        ctx.write(inputs[0], &batch.images.data)?;
        ctx.write(&loss.points, &batch.points.data)?;
        loss.labels.write(ctx, &batch.labels)?;
        let both: Vec<u32> = batch.labels.iter().chain(&batch.labels).copied().collect();
        loss.labels2.write(ctx, &both)?;
        loss.seed.set(ctx, batch.seed)
    }

    fn read_loss(&self, ctx: &Context, loss: &DescLoss) -> Result<(f32, ())> {
        Ok((ctx.download(&loss.value)?.data[0], ()))
    }
}

/// `weights` without the loss's tensors (for a model file that only describes).
pub fn strip_loss(weights: &Weights) -> Weights {
    let mut w = super::network_weights(weights);
    w.source = weights.source.clone();
    w
}

/// Whether a tensor name belongs to the loss.
pub fn is_loss_tensor(name: &str) -> bool {
    name.starts_with(LOSS_PREFIX)
}
