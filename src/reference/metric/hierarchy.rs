//! CPU references of the GPU half of hierarchical class-aware sampling (Ge et al., "Deep Metric Learning
//! with Hierarchical Triplet Loss", ECCV 2018; `crate::ops::metric::{class_means, mine_class_negatives}`):
//! the per-class mean embeddings, and negatives drawn from an anchor's nearest classes. The class tree and
//! the choice of a batch's classes run on the host (`crate::ops::metric::ClassTree`), on these means.

use super::mining::{hash_u32, Stream};
use super::NO_INDEX;
use crate::host::Tensor64;

/// `(means [C, D], counts [C])`: the mean of the rows of `x [M, D]` with label c (0 for a class without
/// rows); labels `>= C` are ignored.
pub fn class_means_f64(x: &Tensor64, labels: &[u32], classes: usize) -> (Tensor64, Vec<u32>) {
    let (m, d) = (x.shape[0], x.shape[1]);
    let mut means = Tensor64::zeros([classes, d, 1, 1]);
    let mut counts = vec![0u32; classes];
    for (i, &label) in labels.iter().enumerate().take(m) {
        let c = label as usize;
        if c < classes {
            counts[c] += 1;
            for e in 0..d {
                means.data[c * d + e] += x.data[i * d + e];
            }
        }
    }
    for (c, &n) in counts.iter().enumerate() {
        if n > 0 {
            means.data[c * d..(c + 1) * d].iter_mut().for_each(|v| *v /= n as f64);
        }
    }
    (means, counts)
}

/// The neighbour table `[C, k]` (`crate::ops::metric::nearest_classes`): row c lists the `k` classes nearest
/// to c by `dist [C, C]`, nearest first, ties to the lower id, leaving out c and classes with `counts` 0,
/// [`NO_INDEX`]-padded (a class without rows gets an all-[`NO_INDEX`] row).
pub fn nearest_classes_ref(dist: &Tensor64, counts: &[u32], k: usize) -> Vec<u32> {
    let c = dist.shape[0];
    let mut table = vec![NO_INDEX; c * k];
    for row in (0..c).filter(|&r| counts[r] > 0) {
        let mut others: Vec<usize> = (0..c).filter(|&o| o != row && counts[o] > 0).collect();
        others.sort_by(|&x, &y| dist.data[row * c + x].total_cmp(&dist.data[row * c + y]).then(x.cmp(&y)));
        for (q, o) in others.into_iter().take(k).enumerate() {
            table[row * k + q] = o as u32;
        }
    }
    table
}

/// Negatives from the anchor's nearest classes: for anchor a of class `ca = la[a]`, a uniform choice (stream
/// [`Stream::Negative`]) among the B rows whose class is one of `neighbours[ca]` (row `ca` of the
/// `[C, k]` table, [`NO_INDEX`]-padded) and not `ca`; when no such row is in the batch (or `ca >= C`), a
/// uniform negative of any other class (stream [`Stream::Fallback`]).
pub fn mine_class_negatives_ref(
    triplets: &mut [[u32; 4]],
    labels_a: &[u32],
    labels_b: &[u32],
    neighbours: &[u32],
    neighbours_per_class: usize,
    seed: u32,
) {
    let classes = neighbours.len() / neighbours_per_class.max(1);
    let k = labels_b.len();
    for (t, tr) in triplets.iter_mut().enumerate() {
        let a = tr[0] as usize;
        tr[2] = tr[0];
        if a >= labels_a.len() {
            tr[3] = NO_INDEX;
            continue;
        }
        let ca = labels_a[a];
        let near = |j: usize| {
            let cb = labels_b[j];
            (ca as usize) < classes
                && cb != ca
                && neighbours[ca as usize * neighbours_per_class..(ca as usize + 1) * neighbours_per_class]
                    .contains(&cb)
        };
        let count = (0..k).filter(|&j| near(j)).count();
        tr[3] = if count > 0 {
            let r = hash_u32(seed, t as u32, Stream::Negative as u32) % count as u32;
            (0..k).filter(|&j| near(j)).nth(r as usize).map_or(NO_INDEX, |j| j as u32)
        } else {
            let negs: Vec<usize> = (0..k).filter(|&j| labels_b[j] != ca).collect();
            if negs.is_empty() {
                NO_INDEX
            } else {
                negs[(hash_u32(seed, t as u32, Stream::Fallback as u32) % negs.len() as u32) as usize] as u32
            }
        };
    }
}
