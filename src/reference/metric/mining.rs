//! CPU references of the triplet samplers (`crate::ops::metric::mine_*`), and the counter-based hash that
//! both sides draw their random numbers from.
//!
//! Every sampler emits triplets of distance-matrix cells `(pos_row, pos_col, neg_row, neg_col)` (see
//! `ops::metric`), one per slot `t`: [`mine_positives_ref`] writes the anchor `t / per_anchor` and its
//! positive, then one negative sampler fills the negative cell. The references make the same choices as
//! the GPU bit for bit from the same f32 distance matrix: ties go to the lowest index, the comparisons that
//! the GPU makes in f32 (the semi-hard band `d_ap + m`) are made in f32 here too, and random draws are
//! integers from [`hash_u32`]. The one exception is distance-weighted sampling, whose weights involve
//! `exp`/`log` (not bit-identical across implementations): its reference also returns how far each draw
//! fell from a bucket boundary, and the GPU may differ only where that distance is at rounding level.

use super::NO_INDEX;
use crate::host::Tensor64;

/// PCG hash (Jarzynski & Olano, "Hash Functions for GPU Rendering", JCGT 2020): one round of the PCG
/// generator's LCG step and output permutation, a bijection of `u32`.
pub fn pcg_hash(v: u32) -> u32 {
    let state = v.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
    let word = ((state >> ((state >> 28) + 4)) ^ state).wrapping_mul(277_803_737);
    (word >> 22) ^ word
}

/// The random word of draw `stream` for slot `index` under `seed`:
/// `pcg(pcg(pcg(seed) + index) + stream)` (wrapping `u32` arithmetic), identical in WGSL.
pub fn hash_u32(seed: u32, index: u32, stream: u32) -> u32 {
    pcg_hash(pcg_hash(pcg_hash(seed).wrapping_add(index)).wrapping_add(stream))
}

/// A uniform float in `[0, 1)` from a hash word: its top 24 bits times `2^-24` (exact in f32).
pub fn uniform_from_hash(h: u32) -> f32 {
    (h >> 8) as f32 * (1.0 / 16_777_216.0)
}

/// The independent draws a slot may make (the `stream` argument of [`hash_u32`]). An integer in `0..n` is
/// `hash % n` (its bias, below `n / 2^32`, is far under anything a batch can show).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Stream {
    Positive = 0,
    Negative = 1,
    /// The uniform negative a sampler falls back on when its own rule finds no candidate.
    Fallback = 2,
}

/// How [`mine_positives_ref`] picks an anchor's positive among the B rows with its label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PositiveChoice {
    /// The farthest (batch-hard, Hermans et al. 2017); with one positive per anchor, that one.
    Hardest,
    /// Uniformly at random (hash stream [`Stream::Positive`]).
    Random,
}

fn at(dist: &Tensor64, i: usize, j: usize) -> f64 {
    dist.data[i * dist.shape[1] + j]
}

/// The `r`-th (0-based) index `j < n` satisfying `keep`, if any.
fn nth_where(n: usize, r: usize, keep: impl Fn(usize) -> bool) -> Option<usize> {
    (0..n).filter(|&j| keep(j)).nth(r)
}

/// A uniform random choice among `j < n` satisfying `keep`, drawn from `h`.
fn uniform_where(n: usize, h: u32, keep: impl Fn(usize) -> bool + Copy) -> u32 {
    let count = (0..n).filter(|&j| keep(j)).count();
    if count == 0 {
        return NO_INDEX;
    }
    nth_where(n, (h % count as u32) as usize, keep).map_or(NO_INDEX, |j| j as u32)
}

/// Anchors and positives: slot `t` gets anchor `i = t / per_anchor` and a B row with `lb[j] == la[i]`
/// (`j != i` when `exclude_diagonal`), or [`NO_INDEX`]; the negative cell is left as `(i, NO_INDEX)`.
pub fn mine_positives_ref(
    dist: &Tensor64,
    labels_a: &[u32],
    labels_b: &[u32],
    per_anchor: usize,
    choice: PositiveChoice,
    exclude_diagonal: bool,
    seed: u32,
) -> Vec<[u32; 4]> {
    let (m, k) = (dist.shape[0], dist.shape[1]);
    (0..m * per_anchor)
        .map(|t| {
            let i = t / per_anchor;
            let is_pos = |j: usize| labels_b[j] == labels_a[i] && !(exclude_diagonal && i == j);
            let p = match choice {
                PositiveChoice::Hardest => {
                    let mut best: Option<usize> = None;
                    for j in (0..k).filter(|&j| is_pos(j)) {
                        if best.is_none_or(|b| at(dist, i, j) > at(dist, i, b)) {
                            best = Some(j);
                        }
                    }
                    best.map_or(NO_INDEX, |j| j as u32)
                }
                PositiveChoice::Random => uniform_where(k, hash_u32(seed, t as u32, Stream::Positive as u32), is_pos),
            };
            [i as u32, p, i as u32, NO_INDEX]
        })
        .collect()
}

/// Uniform random negatives: for anchor a, a B row with `lb[j] != la[a]` (stream [`Stream::Negative`]).
pub fn mine_random_negatives_ref(triplets: &mut [[u32; 4]], labels_a: &[u32], labels_b: &[u32], seed: u32) {
    let k = labels_b.len();
    for (t, tr) in triplets.iter_mut().enumerate() {
        let a = tr[0] as usize;
        tr[2] = tr[0];
        tr[3] = if a < labels_a.len() {
            uniform_where(k, hash_u32(seed, t as u32, Stream::Negative as u32), |j| labels_b[j] != labels_a[a])
        } else {
            NO_INDEX
        };
    }
}

/// The nearest B row of another class than anchor `a` (ties: lowest index).
fn hardest_in_row(dist: &Tensor64, labels_a: &[u32], labels_b: &[u32], a: usize) -> Option<usize> {
    let mut best: Option<usize> = None;
    for j in (0..dist.shape[1]).filter(|&j| labels_b[j] != labels_a[a]) {
        if best.is_none_or(|b| at(dist, a, j) < at(dist, a, b)) {
            best = Some(j);
        }
    }
    best
}

/// Hardest negative in the batch (HardNet, Mishchuk et al. 2017): the nearest B row of another class. With
/// `symmetric`, also the nearest A row of another class than the positive p (the column of p), and the
/// nearer of the two is taken (the row one on ties), as HardNet's `min(min over row, min over column)`.
pub fn mine_hardest_negatives_ref(
    triplets: &mut [[u32; 4]],
    dist: &Tensor64,
    labels_a: &[u32],
    labels_b: &[u32],
    symmetric: bool,
) {
    let (m, k) = (dist.shape[0], dist.shape[1]);
    for tr in triplets.iter_mut() {
        let (a, p) = (tr[0] as usize, tr[1] as usize);
        if a >= m {
            *tr = [tr[0], tr[1], tr[0], NO_INDEX];
            continue;
        }
        let row = hardest_in_row(dist, labels_a, labels_b, a);
        let mut cell = [a as u32, row.map_or(NO_INDEX, |j| j as u32)];
        if symmetric && p < k {
            let mut best: Option<usize> = None;
            for r in (0..m).filter(|&r| labels_a[r] != labels_b[p]) {
                if best.is_none_or(|b| at(dist, r, p) < at(dist, b, p)) {
                    best = Some(r);
                }
            }
            if let Some(r) = best {
                if row.is_none_or(|j| at(dist, r, p) < at(dist, a, j)) {
                    cell = [r as u32, p as u32];
                }
            }
        }
        tr[2] = cell[0];
        tr[3] = cell[1];
    }
}

/// Semi-hard negatives (FaceNet, Schroff et al. 2015): among B rows of another class with
/// `d(a,p) < d(a,n) < d(a,p) + margin` (the band's upper end computed in f32, as on the GPU), the nearest;
/// when there is none (or no positive), the hardest negative.
pub fn mine_semihard_negatives_ref(
    triplets: &mut [[u32; 4]],
    dist: &Tensor64,
    labels_a: &[u32],
    labels_b: &[u32],
    margin: f32,
) {
    let (m, k) = (dist.shape[0], dist.shape[1]);
    for tr in triplets.iter_mut() {
        let (a, p) = (tr[0] as usize, tr[1] as usize);
        tr[2] = tr[0];
        if a >= m {
            tr[3] = NO_INDEX;
            continue;
        }
        let mut semi: Option<usize> = None;
        if p < k {
            let dap = at(dist, a, p);
            let hi = (dap as f32 + margin) as f64;
            for j in (0..k).filter(|&j| labels_b[j] != labels_a[a]) {
                let d = at(dist, a, j);
                if d > dap && d < hi && semi.is_none_or(|b| d < at(dist, a, b)) {
                    semi = Some(j);
                }
            }
        }
        tr[3] = semi.or_else(|| hardest_in_row(dist, labels_a, labels_b, a)).map_or(NO_INDEX, |j| j as u32);
    }
}

/// Parameters of distance-weighted sampling (Wu et al., "Sampling Matters in Deep Embedding Learning",
/// ICCV 2017): weights `q(d)^-1` with `log q(d) = (D - 2) log d + (D - 3)/2 log(1 - d^2/4)`, `d` clipped
/// below at `cutoff`, `1 - d^2/4` clipped below at `1e-8`, negatives at `d >= nonzero_loss_cutoff` excluded.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DistanceWeighted {
    /// The embedding dimension D of the unit sphere the distances live on.
    pub dim: u32,
    /// Lower clip of d (0.5 in the paper's code).
    pub cutoff: f32,
    /// Negatives at or beyond this distance get weight 0 (1.4 in the paper's code).
    pub nonzero_loss_cutoff: f32,
}

impl Default for DistanceWeighted {
    fn default() -> Self {
        DistanceWeighted { dim: 128, cutoff: 0.5, nonzero_loss_cutoff: 1.4 }
    }
}

impl DistanceWeighted {
    /// `-log q(d)`, the log of the (unnormalised) weight.
    pub fn log_weight(&self, d: f64) -> f64 {
        let dim = self.dim as f64;
        let dc = d.max(self.cutoff as f64);
        -(dim - 2.0) * dc.ln() - (dim - 3.0) / 2.0 * (1.0 - 0.25 * dc * dc).max(1e-8).ln()
    }
}

/// Distance-weighted negatives: for anchor a, a B row of another class at `d < nonzero_loss_cutoff`, drawn
/// with probability proportional to `exp(log_weight(d))` (computed as `exp(lw - max lw)`): with
/// `u = uniform_from_hash(hash(seed, t, Negative))`, the first j whose running weight sum exceeds
/// `u * total`. When no negative is eligible, a uniform negative (stream [`Stream::Fallback`]). Returns,
/// per slot, the distance of `u` from the nearest bucket boundary as a fraction of the total weight (1
/// where the choice did not depend on weights).
pub fn mine_distance_weighted_ref(
    triplets: &mut [[u32; 4]],
    dist: &Tensor64,
    labels_a: &[u32],
    labels_b: &[u32],
    cfg: DistanceWeighted,
    seed: u32,
) -> Vec<f64> {
    let (m, k) = (dist.shape[0], dist.shape[1]);
    let mut margins = vec![1.0; triplets.len()];
    for (t, tr) in triplets.iter_mut().enumerate() {
        let a = tr[0] as usize;
        tr[2] = tr[0];
        if a >= m {
            tr[3] = NO_INDEX;
            continue;
        }
        let eligible = |j: usize| labels_b[j] != labels_a[a] && at(dist, a, j) < cfg.nonzero_loss_cutoff as f64;
        let lws: Vec<(usize, f64)> =
            (0..k).filter(|&j| eligible(j)).map(|j| (j, cfg.log_weight(at(dist, a, j)))).collect();
        if lws.is_empty() {
            tr[3] = uniform_where(k, hash_u32(seed, t as u32, Stream::Fallback as u32), |j| labels_b[j] != labels_a[a]);
            continue;
        }
        let mx = lws.iter().map(|&(_, lw)| lw).fold(f64::NEG_INFINITY, f64::max);
        let total: f64 = lws.iter().map(|&(_, lw)| (lw - mx).exp()).sum();
        let target = uniform_from_hash(hash_u32(seed, t as u32, Stream::Negative as u32)) as f64 * total;
        let mut cum = 0.0;
        let mut chosen = None;
        let mut margin = f64::INFINITY;
        for &(j, lw) in &lws {
            cum += (lw - mx).exp();
            margin = margin.min((target - cum).abs());
            if chosen.is_none() && cum > target {
                chosen = Some(j);
            }
        }
        // Rounding can leave the last running sum at or below the target: the last eligible row then.
        tr[3] = chosen.unwrap_or(lws[lws.len() - 1].0) as u32;
        margins[t] = margin / total;
    }
    margins
}
