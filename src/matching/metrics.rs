//! Matching metrics against a ground-truth homography.
//!
//! **Mean matching accuracy** (Mikolajczyk & Schmid, PAMI 2005, as used by HPatches' image-matching task and
//! D2-Net's `hpatches_sequences` benchmark, Dusmanu et al., CVPR 2019): for one image pair, the fraction of
//! its matches `(p_a, p_b)` whose reprojection error `|H(p_a) - p_b|` is at most `t` pixels, with `H` the
//! ground truth from A to B. As in D2-Net's code (`np.mean(dist <= thr)`) the test is `<=`, and a pair with
//! no match scores 0 at every threshold (D2-Net replaces an empty distance list by `[inf]`). A match whose
//! `p_a` the homography sends to infinity has an infinite error. The errors are measured in image B's pixels.
//! MMA over several pairs is the mean of the per-pair values.
//!
//! **Recall@K of patch retrieval** (the lecture's metric): each query descriptor (a point of A) has as true
//! correspondent the gallery point (of B) nearest to `H(query point)`, if one lies within a radius (else the
//! query is dropped). Recall@K is the fraction of kept queries whose true correspondent is among the `K`
//! gallery descriptors nearest to the query (Euclidean distance). Ties count against the query: the rank of
//! the true correspondent is the number of *other* gallery descriptors at a distance less than **or equal
//! to** its own, so a constant descriptor retrieves nothing. As in the matcher ([`super::cpu`]), descriptors
//! with a squared norm below [`super::cpu::MIN_NORM2`] (the raw baseline's flat patches) are no descriptor:
//! they are never retrieved, and a query that is one, or whose true correspondent is one, is a miss.

use std::cmp::Ordering;

use super::cpu::MIN_NORM2;
use super::{Descriptors, Match};
use crate::data::homography::Homography;
use crate::{Error, Result};

/// The thresholds of issue 12, pixels.
pub const MMA_THRESHOLDS_PX: [f64; 5] = [1.0, 2.0, 3.0, 5.0, 10.0];

/// The `K`s of issue 12.
pub const RECALL_KS: [usize; 4] = [1, 2, 4, 8];

/// Reprojection error `|H(p_a) - p_b|` of each match, pixels of B (`inf` where `H(p_a)` is at infinity).
pub fn reprojection_errors(matches: &[Match], a_to_b: &Homography) -> Vec<f64> {
    matches
        .iter()
        .map(|m| a_to_b.apply(m.xa, m.ya).map_or(f64::INFINITY, |(x, y)| (x - m.xb).hypot(y - m.yb)))
        .collect()
}

/// Per-pair matching accuracy: how many matches, and how many within each threshold.
#[derive(Clone, Debug, PartialEq)]
pub struct MatchAccuracy {
    /// Thresholds, pixels, as given.
    pub thresholds: Vec<f64>,
    /// Number of matches.
    pub matches: usize,
    /// `correct[i]`: matches with reprojection error `<= thresholds[i]`.
    pub correct: Vec<usize>,
}

impl MatchAccuracy {
    /// MMA at `thresholds[i]`: `correct[i] / matches`, 0 for a pair without matches (D2-Net's convention).
    pub fn mma(&self, i: usize) -> f64 {
        match (self.matches, self.correct.get(i)) {
            (0, _) | (_, None) => 0.0,
            (n, Some(&c)) => c as f64 / n as f64,
        }
    }

    /// MMA at the threshold equal to `t`, if it was measured.
    pub fn mma_at(&self, t: f64) -> Option<f64> {
        self.thresholds.iter().position(|&x| x == t).map(|i| self.mma(i))
    }
}

/// Matching accuracy of `matches` under the ground truth `a_to_b` at each of `thresholds` (see the module
/// documentation). Fails on a non-finite match coordinate or a threshold that is not finite and >= 0.
pub fn match_accuracy(matches: &[Match], a_to_b: &Homography, thresholds: &[f64]) -> Result<MatchAccuracy> {
    if let Some(t) = thresholds.iter().find(|t| !(t.is_finite() && **t >= 0.0)) {
        return Err(Error::InvalidParam {
            op: "match_accuracy",
            message: format!("threshold {t} must be finite and >= 0"),
        });
    }
    if let Some((i, m)) =
        matches.iter().enumerate().find(|(_, m)| ![m.xa, m.ya, m.xb, m.yb].iter().all(|v| v.is_finite()))
    {
        return Err(Error::InvalidParam {
            op: "match_accuracy",
            message: format!("match {i} has a non-finite coordinate: {m:?}"),
        });
    }
    let errors = reprojection_errors(matches, a_to_b);
    let correct = thresholds.iter().map(|&t| errors.iter().filter(|&&e| e <= t).count()).collect();
    Ok(MatchAccuracy { thresholds: thresholds.to_vec(), matches: matches.len(), correct })
}

/// For each query point of A, the index of the gallery point of B nearest to `H(query)` if it lies within
/// `radius_px` (ties: the lower index), else `None` (also when `H(query)` is at infinity or the query is not
/// finite). Gallery points are bucketed in cells of `radius_px`, so the cost is about linear.
pub fn true_correspondents(
    queries: &[(f64, f64)],
    gallery: &[(f64, f64)],
    a_to_b: &Homography,
    radius_px: f64,
) -> Result<Vec<Option<usize>>> {
    if !(radius_px.is_finite() && radius_px > 0.0) {
        return Err(Error::InvalidParam {
            op: "true_correspondents",
            message: format!("radius {radius_px} must be finite and > 0"),
        });
    }
    let finite: Vec<(usize, (f64, f64))> =
        gallery.iter().copied().enumerate().filter(|(_, p)| p.0.is_finite() && p.1.is_finite()).collect();
    let key = |p: (f64, f64)| ((p.0 / radius_px).floor() as i64, (p.1 / radius_px).floor() as i64);
    let mut buckets: std::collections::HashMap<(i64, i64), Vec<usize>> = std::collections::HashMap::new();
    for &(i, p) in &finite {
        buckets.entry(key(p)).or_default().push(i);
    }
    Ok(queries
        .iter()
        .map(|q| {
            let t = a_to_b.apply(q.0, q.1)?;
            let (cx, cy) = key(t);
            let mut best: Option<(f64, usize)> = None;
            for dy in -1..=1 {
                for dx in -1..=1 {
                    for &i in buckets.get(&(cx.saturating_add(dx), cy.saturating_add(dy))).into_iter().flatten() {
                        let d = (gallery[i].0 - t.0).hypot(gallery[i].1 - t.1);
                        if d <= radius_px && best.is_none_or(|(bd, bi)| d < bd || (d == bd && i < bi)) {
                            best = Some((d, i));
                        }
                    }
                }
            }
            best.map(|(_, i)| i)
        })
        .collect())
}

/// Recall@K of patch retrieval.
#[derive(Clone, Debug, PartialEq)]
pub struct RecallAtK {
    pub ks: Vec<usize>,
    /// Queries with a true correspondent (the ones scored).
    pub queries: usize,
    /// Queries without one (dropped).
    pub dropped: usize,
    /// `hits[i]`: scored queries whose true correspondent is among the `ks[i]` nearest gallery descriptors.
    pub hits: Vec<usize>,
}

impl RecallAtK {
    /// Recall at `ks[i]`: `hits[i] / queries` (`queries` is at least 1 by construction).
    pub fn recall(&self, i: usize) -> f64 {
        self.hits.get(i).map_or(0.0, |&h| h as f64 / self.queries.max(1) as f64)
    }

    /// Recall at `K = k`, if it was measured.
    pub fn recall_at(&self, k: usize) -> Option<f64> {
        self.ks.iter().position(|&x| x == k).map(|i| self.recall(i))
    }
}

/// Squared norm in f64.
fn norm2(a: &[f32]) -> f64 {
    a.iter().map(|&x| (x as f64).powi(2)).sum()
}

/// Squared Euclidean distance in f64.
fn distance2(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| (x as f64 - y as f64).powi(2)).sum()
}

/// Recall@K of `queries` against `gallery` (see the module documentation), `truth[i]` the index in `gallery`
/// of query `i`'s true correspondent ([`true_correspondents`]). Brute force, `O(queries * gallery * dim)`:
/// subsample the queries of large images. Fails when the shapes disagree, a `K` is 0, or no query has a
/// true correspondent (a recall over no query is not a result).
pub fn recall_at_k(
    queries: &Descriptors,
    gallery: &Descriptors,
    truth: &[Option<usize>],
    ks: &[usize],
) -> Result<RecallAtK> {
    queries.check("recall_at_k queries")?;
    gallery.check("recall_at_k gallery")?;
    let shape = |message: String| Err(Error::Shape { op: "recall_at_k", message });
    if queries.dim != gallery.dim {
        return shape(format!("queries have dimension {}, the gallery {}", queries.dim, gallery.dim));
    }
    if truth.len() != queries.len() {
        return shape(format!("{} queries but {} ground-truth entries", queries.len(), truth.len()));
    }
    if let Some(&t) = truth.iter().flatten().find(|&&t| t >= gallery.len()) {
        return shape(format!("true correspondent {t} is outside the gallery of {}", gallery.len()));
    }
    if ks.contains(&0) {
        return Err(Error::InvalidParam { op: "recall_at_k", message: "K must be at least 1".into() });
    }
    let retrievable: Vec<bool> = (0..gallery.len()).map(|j| norm2(gallery.row(j)) >= MIN_NORM2 as f64).collect();
    let mut hits = vec![0; ks.len()];
    let mut scored = 0;
    for (qi, t) in truth.iter().enumerate() {
        let Some(t) = *t else { continue };
        scored += 1;
        let q = queries.row(qi);
        if norm2(q) < MIN_NORM2 as f64 || norm2(gallery.row(t)) < MIN_NORM2 as f64 {
            continue; // a miss at every K
        }
        let own = distance2(q, gallery.row(t));
        // Every distance not greater than the truth's counts, so a NaN (on either side) counts against the query.
        let not_farther = |j: usize| distance2(q, gallery.row(j)).partial_cmp(&own) != Some(Ordering::Greater);
        let rank = (0..gallery.len()).filter(|&j| j != t && retrievable[j] && not_farther(j)).count();
        for (h, &k) in hits.iter_mut().zip(ks) {
            *h += (rank < k) as usize;
        }
    }
    if scored == 0 {
        return Err(Error::Mismatch {
            message: format!(
                "recall_at_k: none of the {} queries has a true correspondent in the gallery (the images do not \
                 overlap, or the radius is smaller than the gallery's spacing)",
                truth.len()
            ),
        });
    }
    Ok(RecallAtK { ks: ks.to_vec(), queries: scored, dropped: truth.len() - scored, hits })
}
