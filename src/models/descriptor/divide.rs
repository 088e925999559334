//! The divide-and-conquer descriptor (Sanakoyeu et al., "Divide and Conquer the Embedding Space for Metric
//! Learning", CVPR 2019), adapted to dense descriptors.
//!
//! One shared tower; its D-dimensional output is split into `K` slices of `D / K` channels, the
//! *learners* (K heads on a shared tower). Training has two phases:
//!
//! 1. **Divide** (the first `1 - conquer_share` of the steps): every `R` steps the current full, normalised
//!    descriptors of the batch's candidate points are clustered into K clusters ([`kmeans`], f64, seeded,
//!    k-means++ initialisation). Classes are scene points here, so points are clustered, not classes. Step
//!    `s` trains learner `k = (s - 1) mod K` (round robin): of each pair's candidates (the data stream draws
//!    `CANDIDATE_FACTOR x --points` of them) it keeps `--points / K` whose anchor (image A) descriptor falls
//!    in cluster k ([`select_points`], [`DivideConfig::divide_points`]), and the loss sees only slice k of
//!    the descriptor, L2-normalised on its own (`DescBatch::channels`). Negatives within one cluster are close to each other in the embedding:
//!    harder than the batch's average, which is the point of the method.
//! 2. **Conquer** (the rest): the whole D-dimensional normalised descriptor is fine-tuned on all points, the
//!    plain training step (the first `--points` candidates of each pair).
//!
//! At test time the descriptor is the whole output, L2-normalised: the checkpoint is a plain descriptor.
//!
//! Where the paper clusters the whole training set's embeddings once per re-clustering, this clusters the
//! candidate points of the batch at the re-clustering step (a few hundred scene points on a few pairs;
//! scene points never recur, so a cluster is a region of the embedding space, not a set of classes), and
//! assigns later batches' points to the nearest centroid. When a pair has fewer than `--points / K`
//! candidates in cluster k, the rest are the pair's other candidates nearest to centroid k (so batch shapes stay
//! fixed and no point repeats more than the stream's own padding does).
//!
//! The conquer phase starts at `(1 - share)` of the steps of the current invocation (a resumed run with
//! other `--steps` moves it, unless it has started), or earlier when a CPU budget is set and runs out
//! first; once started it stays.
//!
//! Measured (2026-11-30, llvmpipe, triplet + hardest, defaults otherwise: 4 pairs of 128 x 128, 64 points,
//! D = 128, seed 1, 600 training CPU seconds each, best checkpoint by validation MMA@3):
//!
//! | run | steps | val R@1 (best / last) | val MMA@3 (best) | CMP mean MMA@3 (max side 640) |
//! |---|---|---|---|---|
//! | plain | 845 | 0.131 / 0.131 | 0.366 | 0.395 |
//! | `--divide 4 --recluster 100` | 804 | 0.103 / 0.107 | 0.331 | 0.385 |
//! | `--divide 4 --recluster 10` | 779 | 0.106 / 0.110 | 0.334 | 0.379 |
//!
//! At this budget divide and conquer is behind: a divide step costs an extra forward of the A images and
//! sees 16 points per pair instead of 64, each 32-channel learner trains on a quarter of the divide steps,
//! and the conquer phase (the last 30 %) does not catch up. Not tried: longer runs (the paper trains to
//! convergence), more pairs per divide step instead of fewer points.
//!
//! Exact resume: the centroids (as f64 text), the step they were computed at and the step the conquer
//! phase starts at are checkpoint metadata ([`Divider::metadata`], read back by
//! [`Divider::from_metadata`]); everything else is a function of the step, the batch and the weights.

use std::collections::BTreeMap;
use std::ops::Range;

use super::data::DescBatch;
use super::{Descriptor, GRID};
use crate::error::{Error, Result};
use crate::reference::metric::sample::axis_f64;
use crate::runtime::{Context, HostTensor};

/// How many candidate points the data stream draws per kept point in a divide run.
pub const CANDIDATE_FACTOR: usize = 4;
/// Lloyd iterations at most per clustering.
pub const KMEANS_MAX_ITERATIONS: usize = 100;

/// The settings of a divide-and-conquer run.
#[derive(Clone, Debug, PartialEq)]
pub struct DivideConfig {
    /// Learners K (slices of the descriptor, clusters).
    pub learners: usize,
    /// Steps between re-clusterings (R).
    pub recluster: u64,
    /// Share of the steps, at the end, that fine-tune the whole descriptor.
    pub conquer_share: f64,
}

impl DivideConfig {
    /// Checks the settings against a descriptor of dimension `dim`.
    pub fn validate(&self, dim: usize) -> Result<()> {
        let bad = |message: String| Err(Error::InvalidParam { op: "divide and conquer", message });
        if self.learners < 2 {
            return bad(format!("{} learners: need at least 2", self.learners));
        }
        if !dim.is_multiple_of(self.learners) {
            return bad(format!(
                "a descriptor of {dim} channels does not split into {} equal learners (D must be a multiple of K)",
                self.learners
            ));
        }
        if self.recluster == 0 {
            return bad("re-clustering every 0 steps".into());
        }
        if !(self.conquer_share.is_finite() && (0.0..1.0).contains(&self.conquer_share)) {
            return bad(format!("conquer share {}: must be in [0, 1)", self.conquer_share));
        }
        Ok(())
    }

    /// Points per pair of a divide step when a whole-descriptor step takes `points`: `points / K` (at least
    /// 1). A cluster holds about 1 / K of the candidates, and the stream fits only so many points at their
    /// minimum distance into a pair (about 96 in 128 x 128 at 8 px), so keeping `points` would fill most of
    /// a batch with other clusters' points (measured: 27 % in the learner's cluster at 64 points, K = 4),
    /// and the learner would no longer see its cluster's harder negatives.
    pub fn divide_points(&self, points: usize) -> usize {
        (points / self.learners).max(1)
    }

    /// The channels of learner `k` in a descriptor of dimension `dim`.
    pub fn slice(&self, k: usize, dim: usize) -> Range<usize> {
        let c = dim / self.learners;
        k * c..(k + 1) * c
    }

    /// The first step of the conquer phase in a run of `steps` steps: after `floor((1 - share) steps)`
    /// divide steps.
    pub fn conquer_from(&self, steps: u64) -> u64 {
        ((1.0 - self.conquer_share) * steps as f64).floor() as u64 + 1
    }
}

/// A k-means clustering of points in R^dim.
#[derive(Clone, Debug, PartialEq)]
pub struct KMeans {
    pub dim: usize,
    /// `k x dim`, row-major.
    pub centroids: Vec<f64>,
    /// Each point's cluster.
    pub assignment: Vec<usize>,
    /// Lloyd iterations run.
    pub iterations: usize,
}

fn dist2(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// The nearest of the centroids (`k x dim`, row-major) to `x`, and its squared distance (ties: the lower
/// index).
pub fn nearest_centroid(centroids: &[f64], dim: usize, x: &[f64]) -> (usize, f64) {
    centroids.chunks(dim).enumerate().map(|(i, c)| (i, dist2(c, x))).fold((0, f64::INFINITY), |best, (i, d)| {
        if d < best.1 {
            (i, d)
        } else {
            best
        }
    })
}

/// A uniform draw in [0, 1) from the stream's 64-bit generator.
fn unit_draw(rng: &mut crate::data::Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// Lloyd's k-means of `points` (`n x dim`, row-major) into `k` clusters, in f64: k-means++ initialisation
/// (Arthur and Vassilvitskii 2007: the first centre uniform, each next one drawn with probability
/// proportional to the squared distance to the nearest centre chosen), then assignment and mean steps until
/// no assignment changes (at most [`KMEANS_MAX_ITERATIONS`]). A cluster left empty takes the point farthest
/// from its centroid. A pure function of its arguments.
pub fn kmeans(points: &[f64], dim: usize, k: usize, seed: u64) -> Result<KMeans> {
    let n = points.len().checked_div(dim).unwrap_or(0);
    if dim == 0 || k == 0 || n < k || points.len() != n * dim || points.iter().any(|v| !v.is_finite()) {
        return Err(Error::InvalidParam {
            op: "kmeans",
            message: format!(
                "{} values in {dim} dimensions into {k} clusters: need at least k finite points",
                points.len()
            ),
        });
    }
    let row = |i: usize| &points[i * dim..(i + 1) * dim];
    let mut rng = crate::data::Rng::new(seed ^ 0x4b4d_4541_4e53);
    let mut centroids = Vec::with_capacity(k * dim);
    centroids.extend_from_slice(row((rng.next_u64() % n as u64) as usize));
    let mut d2: Vec<f64> = (0..n).map(|i| dist2(row(i), &centroids[..dim])).collect();
    while centroids.len() < k * dim {
        let total: f64 = d2.iter().sum();
        let pick = if total > 0.0 {
            let target = unit_draw(&mut rng) * total;
            let mut acc = 0.0;
            let mut pick = n - 1;
            for (i, &d) in d2.iter().enumerate() {
                acc += d;
                if acc > target && d > 0.0 {
                    pick = i;
                    break;
                }
            }
            pick
        } else {
            (rng.next_u64() % n as u64) as usize // every point on a centre already: any point
        };
        let c = row(pick).to_vec();
        for (i, d) in d2.iter_mut().enumerate() {
            *d = d.min(dist2(row(i), &c));
        }
        centroids.extend(c);
    }
    let mut assignment = vec![usize::MAX; n];
    let mut iterations = 0;
    while iterations < KMEANS_MAX_ITERATIONS {
        iterations += 1;
        let mut changed = false;
        for (i, a) in assignment.iter_mut().enumerate() {
            let (c, _) = nearest_centroid(&centroids, dim, row(i));
            changed |= *a != c;
            *a = c;
        }
        if !changed {
            break;
        }
        let mut sums = vec![0.0; k * dim];
        let mut counts = vec![0usize; k];
        for (i, &a) in assignment.iter().enumerate() {
            counts[a] += 1;
            sums[a * dim..(a + 1) * dim].iter_mut().zip(row(i)).for_each(|(s, v)| *s += v);
        }
        for c in 0..k {
            if counts[c] > 0 {
                for (dst, s) in centroids[c * dim..(c + 1) * dim].iter_mut().zip(&sums[c * dim..(c + 1) * dim]) {
                    *dst = s / counts[c] as f64;
                }
            }
        }
        for c in 0..k {
            if counts[c] == 0 {
                // The point farthest from its own centroid starts the empty cluster.
                let far = (0..n)
                    .map(|i| (i, dist2(row(i), &centroids[assignment[i] * dim..(assignment[i] + 1) * dim])))
                    .fold((0, -1.0), |b, (i, d)| if d > b.1 { (i, d) } else { b })
                    .0;
                centroids[c * dim..(c + 1) * dim].copy_from_slice(row(far));
                assignment[far] = c;
            }
        }
    }
    Ok(KMeans { dim, centroids, assignment, iterations })
}

/// The candidates of pair `j` of a batch: the indices of its first occurrence of each label (the stream
/// pads a pair with fewer correspondences by repeating its points cyclically).
fn unique_candidates(batch: &DescBatch, j: usize) -> Vec<usize> {
    let kc = batch.points.shape[1];
    let mut seen = std::collections::HashSet::new();
    (0..kc).filter(|&q| seen.insert(batch.labels[j * kc + q])).collect()
}

/// A batch of `points` per pair from the candidates `chosen[j]` (indices into pair j's points; cycled when
/// fewer), labelled `j * points + i` by first occurrence, the loss seeing `channels`.
fn gather(batch: &DescBatch, chosen: &[Vec<usize>], points: usize, channels: Option<Range<usize>>) -> DescBatch {
    let [n2, _, _, _] = batch.images.shape;
    let (n, kc) = (n2 / 2, batch.points.shape[1]);
    let mut out = HostTensor::zeros([n2, points, 2, 1]);
    let mut labels = vec![0u32; n * points];
    for (j, pick) in chosen.iter().enumerate() {
        for i in 0..points {
            let (slot, q) = (i % pick.len(), pick[i % pick.len()]);
            for img in [j, n + j] {
                let (src, dst) = ((img * kc + q) * 2, (img * points + i) * 2);
                out.data[dst..dst + 2].copy_from_slice(&batch.points.data[src..src + 2]);
            }
            labels[j * points + i] = (j * points + slot) as u32;
        }
    }
    DescBatch { images: batch.images.clone(), points: out, labels, seed: batch.seed, channels }
}

/// The plain batch of a candidate batch: the first `points` distinct candidates of each pair.
pub fn first_points(candidates: &DescBatch, points: usize) -> Result<DescBatch> {
    candidates.check()?;
    let n = candidates.images.shape[0] / 2;
    let chosen: Vec<Vec<usize>> =
        (0..n).map(|j| unique_candidates(candidates, j).into_iter().take(points).collect()).collect();
    Ok(gather(candidates, &chosen, points, None))
}

/// The anchors' descriptors: for each pair, its distinct candidates (their indices) and their descriptors
/// in image A (`maps_a`: `[N, D, Hf, Wf]`, the network's unit map of the A images) sampled bilinearly and
/// re-normalised, in f64.
pub fn anchor_descriptors(candidates: &DescBatch, maps_a: &HostTensor) -> Vec<(Vec<usize>, Vec<f64>)> {
    let [n, d, h, w] = maps_a.shape;
    let kc = candidates.points.shape[1];
    (0..n)
        .map(|j| {
            let idx = unique_candidates(candidates, j);
            let mut rows = Vec::with_capacity(idx.len() * d);
            for &q in &idx {
                let p = &candidates.points.data[(j * kc + q) * 2..(j * kc + q) * 2 + 2];
                let (x0, x1, fx, _) = axis_f64(p[0] as f64, w, GRID.stride);
                let (y0, y1, fy, _) = axis_f64(p[1] as f64, h, GRID.stride);
                let start = rows.len();
                for c in 0..d {
                    let at = |y: usize, x: usize| maps_a.data[((j * d + c) * h + y) * w + x] as f64;
                    let top = at(y0, x0) * (1.0 - fx) + at(y0, x1) * fx;
                    let bottom = at(y1, x0) * (1.0 - fx) + at(y1, x1) * fx;
                    rows.push(top * (1.0 - fy) + bottom * fy);
                }
                let norm = rows[start..].iter().map(|v| v * v).sum::<f64>().sqrt();
                if norm > 0.0 {
                    rows[start..].iter_mut().for_each(|v| *v /= norm);
                }
            }
            (idx, rows)
        })
        .collect()
}

/// The divide-phase batch of learner `learner`: of each pair's distinct candidates (`anchors`, from
/// [`anchor_descriptors`], `dim` values each), the `points` in cluster `learner` of `centroids` (`K x dim`;
/// nearest-centroid assignment), then, when there are fewer, the others nearest to centroid `learner`;
/// kept in candidate order; the loss sees `channels`.
pub fn select_points(
    candidates: &DescBatch,
    anchors: &[(Vec<usize>, Vec<f64>)],
    centroids: &[f64],
    dim: usize,
    learner: usize,
    points: usize,
    channels: Range<usize>,
) -> DescBatch {
    let own = &centroids[learner * dim..(learner + 1) * dim];
    let chosen: Vec<Vec<usize>> = anchors
        .iter()
        .map(|(idx, rows)| {
            let mut ranked: Vec<(bool, f64, usize)> = idx
                .iter()
                .enumerate()
                .map(|(i, &q)| {
                    let x = &rows[i * dim..(i + 1) * dim];
                    (nearest_centroid(centroids, dim, x).0 != learner, dist2(own, x), q)
                })
                .collect();
            ranked.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2)));
            let mut keep: Vec<usize> = ranked.into_iter().take(points).map(|r| r.2).collect();
            keep.sort_unstable();
            keep
        })
        .collect();
    gather(candidates, &chosen, points, Some(channels))
}

/// What a step trains.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Learner `learner` on its slice; `reclustered` when this step re-clustered.
    Divide { learner: usize, reclustered: bool },
    /// The whole descriptor.
    Conquer,
}

/// The state of a divide-and-conquer run (see the module documentation).
#[derive(Clone, Debug, PartialEq)]
pub struct Divider {
    pub config: DivideConfig,
    dim: usize,
    /// The stream's seed (k-means is seeded with it and the step).
    seed: u64,
    /// The current centroids (`K x D`) and the step they were computed at.
    centroids: Option<(Vec<f64>, u64)>,
    /// The first step of the conquer phase.
    conquer_from: u64,
    /// Points per cluster of the last clustering (not part of the state: for reports).
    sizes: Vec<usize>,
    /// The share of the last divide batch's points that lie in their learner's cluster (for reports).
    in_cluster: f64,
}

impl Divider {
    /// A run of `steps` steps of a descriptor of dimension `dim`.
    pub fn new(config: DivideConfig, dim: usize, seed: u64, steps: u64) -> Result<Self> {
        config.validate(dim)?;
        let conquer_from = config.conquer_from(steps);
        Ok(Divider { config, dim, seed, centroids: None, conquer_from, sizes: Vec::new(), in_cluster: 0.0 })
    }

    /// The phase of step `step` (1-based).
    pub fn phase(&self, step: u64) -> Phase {
        if step >= self.conquer_from {
            return Phase::Conquer;
        }
        let learner = ((step - 1) % self.config.learners as u64) as usize;
        let reclustered =
            self.centroids.as_ref().is_none_or(|(_, at)| step.saturating_sub(*at) >= self.config.recluster);
        Phase::Divide { learner, reclustered }
    }

    /// The first step of the conquer phase.
    pub fn conquer_from(&self) -> u64 {
        self.conquer_from
    }

    /// A run continued to `steps` steps after `done` of them: the conquer phase starts at `(1 - share)` of
    /// the new total unless it has already started (it never goes back to dividing).
    pub fn set_steps(&mut self, steps: u64, done: u64) {
        if done + 1 < self.conquer_from {
            self.conquer_from = self.config.conquer_from(steps);
        }
    }

    /// Starts the conquer phase at `step` (when a CPU budget runs out sooner than the steps), if later
    /// than that.
    pub fn conquer_at(&mut self, step: u64) {
        self.conquer_from = self.conquer_from.min(step);
    }

    /// Points per cluster of the last clustering this process ran (empty before one).
    pub fn cluster_sizes(&self) -> &[usize] {
        &self.sizes
    }

    /// The share of the last divide batch's points that lie in their learner's cluster (the rest are the
    /// nearest others, when a pair has too few).
    pub fn in_cluster_share(&self) -> f64 {
        self.in_cluster
    }

    /// The current centroids, `K x D` (none before the first divide step).
    pub fn centroids(&self) -> Option<&[f64]> {
        self.centroids.as_ref().map(|(c, _)| c.as_slice())
    }

    /// The batch step `step` trains on, from a candidate batch (`CANDIDATE_FACTOR x points` per pair) and
    /// the current network `desc`: in the conquer phase `points` per pair; in the divide phase
    /// [`DivideConfig::divide_points`] of the learner's cluster per pair (re-clustering first when due).
    pub fn batch(
        &mut self,
        ctx: &Context,
        desc: &Descriptor,
        candidates: &DescBatch,
        step: u64,
        points: usize,
    ) -> Result<(DescBatch, Phase)> {
        let phase = self.phase(step);
        let Phase::Divide { learner, reclustered } = phase else {
            return Ok((first_points(candidates, points)?, phase));
        };
        candidates.check()?;
        let [n2, _, h, w] = candidates.images.shape;
        let n = n2 / 2;
        let images_a = HostTensor::new([n, 1, h, w], candidates.images.data[..n * h * w].to_vec())?;
        let maps_a = desc.describe_batch(ctx, &images_a)?;
        let anchors = anchor_descriptors(candidates, &maps_a);
        if reclustered {
            let all: Vec<f64> = anchors.iter().flat_map(|(_, rows)| rows.iter().copied()).collect();
            let seed = self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ step;
            let km = kmeans(&all, self.dim, self.config.learners, seed)?;
            self.sizes = (0..self.config.learners).map(|c| km.assignment.iter().filter(|&&a| a == c).count()).collect();
            self.centroids = Some((km.centroids, step));
        }
        let points = self.config.divide_points(points);
        let centroids = self.centroids.as_ref().map(|(c, _)| c.as_slice()).unwrap_or_default();
        let members: usize = anchors
            .iter()
            .map(|(_, rows)| {
                let own = rows.chunks(self.dim).filter(|x| nearest_centroid(centroids, self.dim, x).0 == learner);
                own.count().min(points)
            })
            .sum();
        let channels = self.config.slice(learner, self.dim);
        let batch = select_points(candidates, &anchors, centroids, self.dim, learner, points, channels);
        self.in_cluster = members as f64 / (anchors.len() * points).max(1) as f64;
        Ok((batch, phase))
    }

    /// Checkpoint metadata: the settings, the conquer step, and the centroids with their step.
    pub fn metadata(&self) -> Vec<(String, String)> {
        let (centroids, at) = match &self.centroids {
            Some((c, at)) => (c.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(" "), at.to_string()),
            None => ("none".into(), "none".into()),
        };
        vec![
            ("divide".into(), self.config.learners.to_string()),
            ("divide_recluster".into(), self.config.recluster.to_string()),
            ("divide_conquer_share".into(), self.config.conquer_share.to_string()),
            ("divide_conquer_from".into(), self.conquer_from.to_string()),
            ("divide_clustered_at".into(), at),
            ("divide_centroids".into(), centroids),
        ]
    }

    /// The state a checkpoint recorded (`None` when it was not a divide run); `seed` is the stream's.
    pub fn from_metadata(meta: &BTreeMap<String, String>, dim: usize, seed: u64) -> Result<Option<Self>> {
        let Some(k) = meta.get("divide") else { return Ok(None) };
        let bad = |key: &str| Error::InvalidParam {
            op: "divide and conquer",
            message: format!("the checkpoint's metadata `{key}` is missing or not valid"),
        };
        let num = |key: &str| meta.get(key).and_then(|v| v.parse::<f64>().ok()).ok_or_else(|| bad(key));
        let learners = k.parse::<usize>().map_err(|_| bad("divide"))?;
        let config = DivideConfig {
            learners,
            recluster: num("divide_recluster")? as u64,
            conquer_share: num("divide_conquer_share")?,
        };
        config.validate(dim)?;
        let conquer_from = num("divide_conquer_from")? as u64;
        let centroids = match (meta.get("divide_centroids").map(String::as_str), meta.get("divide_clustered_at")) {
            (Some("none") | None, _) => None,
            (Some(text), Some(at)) => {
                let c = text.split(' ').map(|v| v.parse::<f64>()).collect::<std::result::Result<Vec<_>, _>>();
                let c = c.ok().filter(|c| c.len() == learners * dim).ok_or_else(|| bad("divide_centroids"))?;
                Some((c, at.parse::<u64>().map_err(|_| bad("divide_clustered_at"))?))
            }
            (Some(_), None) => return Err(bad("divide_clustered_at")),
        };
        Ok(Some(Divider { config, dim, seed, centroids, conquer_from, sizes: Vec::new(), in_cluster: 0.0 }))
    }
}
