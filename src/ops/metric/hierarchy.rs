//! Hierarchical class-aware sampling (Ge et al., "Deep Metric Learning with Hierarchical Triplet Loss",
//! ECCV 2018), split between the GPU and the host:
//! - GPU: the mean embedding of every class ([`class_means`], `shaders/class_means.wgsl`, a gather over the
//!   rows of each class), each class's nearest classes by their means ([`nearest_classes`], the neighbour
//!   table, for a training step that rebuilds it from every batch without leaving the GPU), and the negatives of a batch drawn from each anchor's nearest classes
//!   ([`mine_class_negatives`], `shaders/mine_class_negatives.wgsl`).
//! - Host: the class tree ([`ClassTree::build`], average-linkage agglomerative clustering of the downloaded
//!   class means: a few hundred classes take milliseconds), the choice of a batch's classes
//!   ([`ClassTree::sample_batch_classes`]: anchor classes spread over the tree's top-level clusters, each
//!   with its nearest classes, Ge et al.'s "anchor-neighbour sampling"), and the neighbour table that
//!   [`mine_class_negatives`] reads ([`ClassTree::neighbour_table`]).
//!
//! Loading the chosen classes' samples is the data pipeline's part. What is not here: the paper's dynamic
//! violate margin (a per-pair margin from the tree level), and the tree's per-epoch rebuild schedule
//! (the caller's: build a new tree from [`class_means`] whenever it wants).

use super::super::{grid_1d, u32_of};
use super::mining::triplet_count;
use super::{expect_indices, matrix_dims, Indices, LabelledDistances, SeedBuffer, NO_INDEX};
use crate::error::{Error, Result};
use crate::host::HostTensor;
use crate::reference::metric::mining::hash_u32;
use crate::runtime::{gpu_params, Kernel, Recorder, Tensor};

gpu_params! {
    /// The WGSL `Params` twin of `class_means`.
    pub struct ClassMeansParams {
        pub rows: u32,
        pub dim: u32,
        pub classes: u32,
        pub _pad0: u32,
    }
}

gpu_params! {
    /// The WGSL `Params` twin of `nearest_classes`.
    pub struct NearestClassesParams {
        pub classes: u32,
        pub per_class: u32,
        pub _pad0: u32,
        pub _pad1: u32,
    }
}

/// Largest number of neighbours per class [`nearest_classes`] keeps (its kernel's register arrays).
pub const MAX_NEIGHBOURS: usize = 32;

gpu_params! {
    /// The WGSL `Params` twin of `mine_class_negatives`.
    pub struct ClassNegativesParams {
        pub rows: u32,
        pub cols: u32,
        pub triplets: u32,
        pub classes: u32,
        pub per_class: u32,
        pub _pad0: u32,
        pub _pad1: u32,
        pub _pad2: u32,
    }
}

/// `means [C, D, 1, 1]` (the mean of the rows of `x [M, D, 1, 1]` labelled c; 0 for an empty class) and
/// `counts [C, 1]`; labels `>= C` are ignored.
pub fn class_means(
    rec: &mut Recorder<'_>,
    x: &Tensor,
    labels: &Indices,
    means: &Tensor,
    counts: &Indices,
) -> Result<()> {
    let op = "class_means";
    let (m, d) = matrix_dims(op, "x", x)?;
    let (c, dm) = matrix_dims(op, "means", means)?;
    if dm != d || d == 0 || c == 0 {
        return Err(Error::Shape {
            op,
            message: format!("x {:?} and means {:?} need the same D > 0 and C > 0", x.shape(), means.shape()),
        });
    }
    expect_indices(op, "labels", labels, m, 1)?;
    expect_indices(op, "counts", counts, c, 1)?;
    u32_of(op, "x elements", m * d)?;
    u32_of(op, "mean elements", c * d)?;
    let p = ClassMeansParams { rows: m as u32, dim: d as u32, classes: c as u32, _pad0: 0 };
    let groups = grid_1d(rec, c * d, 256);
    rec.dispatch(Kernel::ClassMeans, &[], &p, &[x.buffer(), labels.buffer(), means.buffer(), counts.buffer()], groups)
}

/// The neighbour table `[C, k]` on the GPU (`shaders/nearest_classes.wgsl`): row c lists the `k` classes
/// nearest to class c by `dist [C, C]` (the distances between class means, e.g. [`super::pairwise_distance`]
/// of [`class_means`]' output with itself), nearest first, ties to the lower id, leaving out c and classes
/// whose `counts` are 0, [`NO_INDEX`]-padded: what [`ClassTree::neighbour_table`] computes on the host, so that
/// a recorded training step can rebuild it from each batch's embeddings for [`mine_class_negatives`].
/// `k` is 1 to [`MAX_NEIGHBOURS`].
pub fn nearest_classes(rec: &mut Recorder<'_>, dist: &Tensor, counts: &Indices, neighbours: &Indices) -> Result<()> {
    let op = "nearest_classes";
    let (c, c2) = matrix_dims(op, "dist", dist)?;
    if c != c2 || c == 0 {
        return Err(Error::Shape {
            op,
            message: format!("dist {:?} must be a square matrix [C, C, 1, 1]", dist.shape()),
        });
    }
    expect_indices(op, "counts", counts, c, 1)?;
    let k = neighbours.cols();
    if neighbours.rows() != c || !(1..=MAX_NEIGHBOURS).contains(&k) {
        return Err(Error::Shape {
            op,
            message: format!(
                "the neighbour table holds {} x {k} indices, expected [{c}, k] with k in 1..={MAX_NEIGHBOURS}",
                neighbours.rows()
            ),
        });
    }
    u32_of(op, "matrix elements", c * c)?;
    let p = NearestClassesParams { classes: c as u32, per_class: k as u32, ..Default::default() };
    let groups = grid_1d(rec, c, 64);
    rec.dispatch(Kernel::NearestClasses, &[], &p, &[dist.buffer(), counts.buffer(), neighbours.buffer()], groups)
}

/// Negatives from the anchor's nearest classes: per slot, a uniform choice among the B rows whose class is
/// listed in the anchor class's row of `neighbours [C, k]` (from [`ClassTree::neighbour_table`]), else a
/// uniform negative of any other class.
pub fn mine_class_negatives(
    rec: &mut Recorder<'_>,
    batch: &LabelledDistances<'_>,
    neighbours: &Indices,
    seed: &SeedBuffer,
    triplets: &Indices,
) -> Result<()> {
    let op = "mine_class_negatives";
    let (m, k) = batch.check(op)?;
    let t = triplet_count(op, triplets)?;
    if neighbours.is_empty() {
        return Err(Error::Shape { op, message: "the neighbour table is empty".into() });
    }
    let p = ClassNegativesParams {
        rows: m as u32,
        cols: k as u32,
        triplets: t as u32,
        classes: u32_of(op, "classes", neighbours.rows())?,
        per_class: u32_of(op, "neighbours per class", neighbours.cols())?,
        ..Default::default()
    };
    let groups = grid_1d(rec, t, 256);
    rec.dispatch(
        Kernel::MineClassNegatives,
        &[],
        &p,
        &[batch.labels_a.buffer(), batch.labels_b.buffer(), neighbours.buffer(), triplets.buffer(), seed.buffer()],
        groups,
    )
}

/// One merge of the agglomerative clustering: clusters `a` and `b` (ids below C are classes, `C + s` the
/// cluster made by merge `s`, scipy's `linkage` convention) joined at average-linkage `distance`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Merge {
    pub a: usize,
    pub b: usize,
    pub distance: f64,
    /// Number of classes in the merged cluster.
    pub size: usize,
}

/// The class tree of hierarchical sampling: average-linkage (UPGMA) agglomerative clustering of the class
/// means under the Euclidean distance; classes without samples (count 0) stay out of the tree.
#[derive(Clone, Debug)]
pub struct ClassTree {
    classes: usize,
    present: Vec<bool>,
    /// Distances between class means, `classes x classes`.
    dist: Vec<f64>,
    merges: Vec<Merge>,
}

impl ClassTree {
    /// Builds the tree from `means [C, D, 1, 1]` and `counts [C]` (the downloaded [`class_means`]).
    /// O(C^3) time, O(C^2) memory: meant for up to a few thousand classes.
    pub fn build(means: &HostTensor, counts: &[u32]) -> Result<ClassTree> {
        let op = "ClassTree::build";
        let [c, d, h, w] = means.shape;
        if h != 1 || w != 1 || counts.len() != c {
            return Err(Error::Shape {
                op,
                message: format!("means {:?} must be [C, D, 1, 1] with C = {} counts", means.shape, counts.len()),
            });
        }
        let present: Vec<bool> = counts.iter().map(|&n| n > 0).collect();
        let mut dist = vec![0.0; c * c];
        for i in 0..c {
            for j in 0..i {
                let s: f64 =
                    (0..d).map(|e| (means.data[i * d + e] as f64 - means.data[j * d + e] as f64).powi(2)).sum();
                dist[i * c + j] = s.sqrt();
                dist[j * c + i] = s.sqrt();
            }
        }
        // Active clusters: (cluster id, size), with the linkage distances between them kept in `link`
        // indexed by slot (each class's slot is reused by the cluster that absorbs it).
        let mut slot_id: Vec<Option<usize>> = (0..c).map(|i| present[i].then_some(i)).collect();
        let mut size = vec![1usize; c];
        let mut link = dist.clone();
        let mut merges = Vec::new();
        loop {
            let active: Vec<usize> = (0..c).filter(|&s| slot_id[s].is_some()).collect();
            if active.len() < 2 {
                break;
            }
            let mut best = (f64::INFINITY, 0, 0);
            for (x, &i) in active.iter().enumerate() {
                for &j in &active[x + 1..] {
                    if link[i * c + j] < best.0 {
                        best = (link[i * c + j], i, j);
                    }
                }
            }
            let (dd, i, j) = best;
            let (ida, idb) = (slot_id[i].unwrap_or(i), slot_id[j].unwrap_or(j));
            let merged = size[i] + size[j];
            for &k in &active {
                if k != i && k != j {
                    let v = (size[i] as f64 * link[i * c + k] + size[j] as f64 * link[j * c + k]) / merged as f64;
                    link[i * c + k] = v;
                    link[k * c + i] = v;
                }
            }
            size[i] = merged;
            slot_id[i] = Some(c + merges.len());
            slot_id[j] = None;
            merges.push(Merge { a: ida.min(idb), b: ida.max(idb), distance: dd, size: merged });
        }
        Ok(ClassTree { classes: c, present, dist, merges })
    }

    /// The merges, in order (the dendrogram).
    pub fn merges(&self) -> &[Merge] {
        &self.merges
    }

    /// Distance between the means of classes `a` and `b`.
    pub fn class_distance(&self, a: usize, b: usize) -> f64 {
        self.dist[a * self.classes + b]
    }

    /// The `n` classes (with samples) nearest to class `c` by mean distance, nearest first (ties: lower id).
    pub fn nearest_classes(&self, c: usize, n: usize) -> Vec<u32> {
        let mut others: Vec<usize> = (0..self.classes).filter(|&o| o != c && self.present[o]).collect();
        others.sort_by(|&x, &y| self.class_distance(c, x).total_cmp(&self.class_distance(c, y)).then(x.cmp(&y)));
        others.into_iter().take(n).map(|o| o as u32).collect()
    }

    /// The table `[C, k]` of every class's `k` nearest classes, [`NO_INDEX`]-padded (what
    /// [`mine_class_negatives`] reads; upload it with [`Indices::upload`]).
    pub fn neighbour_table(&self, k: usize) -> Vec<u32> {
        let mut table = vec![NO_INDEX; self.classes * k];
        for c in 0..self.classes {
            for (q, o) in self.nearest_classes(c, k).into_iter().enumerate() {
                table[c * k + q] = o;
            }
        }
        table
    }

    /// The tree cut into (at most) `n` clusters, by undoing its last `n - 1` merges; each cluster's classes
    /// sorted, clusters ordered by their smallest class.
    pub fn clusters(&self, n: usize) -> Vec<Vec<u32>> {
        let c = self.classes;
        let keep = self.merges.len().saturating_sub(n.saturating_sub(1));
        // Union the first `keep` merges.
        let mut parent: Vec<usize> = (0..c + self.merges.len()).collect();
        fn root(parent: &mut [usize], mut x: usize) -> usize {
            while parent[x] != x {
                parent[x] = parent[parent[x]];
                x = parent[x];
            }
            x
        }
        for (s, m) in self.merges.iter().take(keep).enumerate() {
            let (ra, rb) = (root(&mut parent, m.a), root(&mut parent, m.b));
            parent[ra] = c + s;
            parent[rb] = c + s;
        }
        let mut groups: std::collections::BTreeMap<usize, Vec<u32>> = Default::default();
        for class in (0..c).filter(|&i| self.present[i]) {
            groups.entry(root(&mut parent, class)).or_default().push(class as u32);
        }
        let mut out: Vec<Vec<u32>> = groups.into_values().collect();
        out.sort_by_key(|g| g[0]);
        out
    }

    /// A batch's classes by anchor-neighbour sampling: `anchors` anchor classes from different top-level
    /// clusters (one uniformly from each of the `anchors` clusters of [`ClassTree::clusters`], drawn with
    /// [`hash_u32`]`(seed, cluster, 0)`), each followed by its `neighbours` nearest classes not already
    /// chosen. Returns the distinct classes, anchors first.
    pub fn sample_batch_classes(&self, anchors: usize, neighbours: usize, seed: u32) -> Vec<u32> {
        let clusters = self.clusters(anchors);
        let mut chosen: Vec<u32> = Vec::new();
        let picks: Vec<u32> = clusters
            .iter()
            .enumerate()
            .map(|(q, g)| g[(hash_u32(seed, q as u32, 0) % g.len() as u32) as usize])
            .collect();
        chosen.extend(&picks);
        for &a in &picks {
            let near: Vec<u32> = self
                .nearest_classes(a as usize, self.classes)
                .into_iter()
                .filter(|o| !chosen.contains(o))
                .take(neighbours)
                .collect();
            chosen.extend(near);
        }
        chosen
    }
}
