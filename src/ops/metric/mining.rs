//! Triplet samplers on the GPU: [`mine_positives`] (`shaders/mine_positives.wgsl`) writes every slot's
//! anchor and positive, then one negative sampler fills the negative cell: uniformly random
//! (`shaders/mine_random_negatives.wgsl`), hardest in the batch, optionally symmetric
//! (`shaders/mine_hardest_negatives.wgsl`), semi-hard (`shaders/mine_semihard_negatives.wgsl`),
//! distance-weighted (`shaders/mine_distance_weighted.wgsl`), or from the anchor's nearest classes
//! (`super::mine_class_negatives`). Definitions, tie rules and the random-number convention:
//! `crate::reference::metric::mining` (whose references make the same choices).

use super::super::{grid_1d, u32_of};
use super::{expect_finite, Indices, LabelledDistances, SeedBuffer};
use crate::error::{Error, Result};
pub use crate::reference::metric::mining::{DistanceWeighted, PositiveChoice};
use crate::runtime::{gpu_params, Kernel, Recorder};

gpu_params! {
    /// The WGSL `Params` twin of `mine_positives`.
    pub struct PositivesParams {
        pub rows: u32,
        pub cols: u32,
        pub per_anchor: u32,
        /// 0: hardest (farthest); 1: uniformly random.
        pub choice: u32,
        pub exclude_diagonal: u32,
        pub _pad0: u32,
        pub _pad1: u32,
        pub _pad2: u32,
    }
}

gpu_params! {
    /// The WGSL `Params` twin of `mine_random_negatives`.
    pub struct RandomNegativesParams {
        pub rows: u32,
        pub cols: u32,
        pub triplets: u32,
        pub _pad0: u32,
    }
}

gpu_params! {
    /// The WGSL `Params` twin of `mine_hardest_negatives`.
    pub struct HardestNegativesParams {
        pub rows: u32,
        pub cols: u32,
        pub triplets: u32,
        pub symmetric: u32,
    }
}

gpu_params! {
    /// The WGSL `Params` twin of `mine_semihard_negatives`.
    pub struct SemihardNegativesParams {
        pub rows: u32,
        pub cols: u32,
        pub triplets: u32,
        pub margin: f32,
    }
}

gpu_params! {
    /// The WGSL `Params` twin of `mine_distance_weighted`.
    pub struct DistanceWeightedParams {
        pub rows: u32,
        pub cols: u32,
        pub triplets: u32,
        pub dim: u32,
        pub cutoff: f32,
        pub nonzero_loss_cutoff: f32,
        pub _pad0: u32,
        pub _pad1: u32,
    }
}

/// Checks the triplet buffer `[T, 4]` and returns T.
pub(crate) fn triplet_count(op: &'static str, triplets: &Indices) -> Result<usize> {
    if triplets.cols() != 4 || triplets.rows() == 0 {
        return Err(Error::Shape {
            op,
            message: format!(
                "triplets hold {} x {} indices, expected T x 4 with T > 0",
                triplets.rows(),
                triplets.cols()
            ),
        });
    }
    u32_of(op, "triplets", triplets.rows()).map(|t| t as usize)
}

/// Anchors and positives for `triplets [M * per_anchor, 4]`: slot t gets anchor `t / per_anchor` and a B row
/// of its class (`choice`; not the anchor's own index when `exclude_diagonal`, for A = B), or
/// [`super::NO_INDEX`]. `seed` feeds [`PositiveChoice::Random`].
pub fn mine_positives(
    rec: &mut Recorder<'_>,
    batch: &LabelledDistances<'_>,
    choice: PositiveChoice,
    per_anchor: usize,
    exclude_diagonal: bool,
    seed: &SeedBuffer,
    triplets: &Indices,
) -> Result<()> {
    let op = "mine_positives";
    let (m, k) = batch.check(op)?;
    if per_anchor == 0 || triplets.rows() != m * per_anchor || triplets.cols() != 4 {
        return Err(Error::Shape {
            op,
            message: format!(
                "triplets hold {} x {} indices, expected [M * per_anchor, 4] = [{m} * {per_anchor}, 4] (per_anchor >= 1)",
                triplets.rows(),
                triplets.cols()
            ),
        });
    }
    let p = PositivesParams {
        rows: m as u32,
        cols: k as u32,
        per_anchor: u32_of(op, "per_anchor", per_anchor)?,
        choice: match choice {
            PositiveChoice::Hardest => 0,
            PositiveChoice::Random => 1,
        },
        exclude_diagonal: exclude_diagonal as u32,
        ..Default::default()
    };
    u32_of(op, "triplets", m * per_anchor)?;
    let groups = grid_1d(rec, m * per_anchor, 256);
    rec.dispatch(
        Kernel::MinePositives,
        &[],
        &p,
        &[batch.dist.buffer(), batch.labels_a.buffer(), batch.labels_b.buffer(), triplets.buffer(), seed.buffer()],
        groups,
    )
}

/// Uniformly random negatives: per slot, a B row of another class than the anchor (hash stream
/// [`super::Stream::Negative`] under `seed`). Reads the labels only.
pub fn mine_random_negatives(
    rec: &mut Recorder<'_>,
    batch: &LabelledDistances<'_>,
    seed: &SeedBuffer,
    triplets: &Indices,
) -> Result<()> {
    let op = "mine_random_negatives";
    let (m, k) = batch.check(op)?;
    let t = triplet_count(op, triplets)?;
    let p = RandomNegativesParams { rows: m as u32, cols: k as u32, triplets: t as u32, _pad0: 0 };
    let groups = grid_1d(rec, t, 256);
    rec.dispatch(
        Kernel::MineRandomNegatives,
        &[],
        &p,
        &[batch.labels_a.buffer(), batch.labels_b.buffer(), triplets.buffer(), seed.buffer()],
        groups,
    )
}

/// Hardest negatives in the batch (HardNet): the nearest B row of another class than the anchor; with
/// `symmetric`, the nearest of that and the nearest A row of another class than the positive.
pub fn mine_hardest_negatives(
    rec: &mut Recorder<'_>,
    batch: &LabelledDistances<'_>,
    symmetric: bool,
    triplets: &Indices,
) -> Result<()> {
    let op = "mine_hardest_negatives";
    let (m, k) = batch.check(op)?;
    let t = triplet_count(op, triplets)?;
    let p = HardestNegativesParams { rows: m as u32, cols: k as u32, triplets: t as u32, symmetric: symmetric as u32 };
    let groups = grid_1d(rec, t, 256);
    rec.dispatch(
        Kernel::MineHardestNegatives,
        &[],
        &p,
        &[batch.dist.buffer(), batch.labels_a.buffer(), batch.labels_b.buffer(), triplets.buffer()],
        groups,
    )
}

/// Semi-hard negatives (FaceNet): the nearest negative with `d(a,p) < d(a,n) < d(a,p) + margin`, else the
/// hardest negative.
pub fn mine_semihard_negatives(
    rec: &mut Recorder<'_>,
    batch: &LabelledDistances<'_>,
    margin: f32,
    triplets: &Indices,
) -> Result<()> {
    let op = "mine_semihard_negatives";
    let (m, k) = batch.check(op)?;
    let t = triplet_count(op, triplets)?;
    expect_finite(op, "margin", margin, true)?;
    let p = SemihardNegativesParams { rows: m as u32, cols: k as u32, triplets: t as u32, margin };
    let groups = grid_1d(rec, t, 256);
    rec.dispatch(
        Kernel::MineSemihardNegatives,
        &[],
        &p,
        &[batch.dist.buffer(), batch.labels_a.buffer(), batch.labels_b.buffer(), triplets.buffer()],
        groups,
    )
}

/// Distance-weighted negatives (Wu et al. 2017): drawn with weight `1/q(d)` (log space), falling back to a
/// uniform negative when none is below `cfg.nonzero_loss_cutoff`. The distances are Euclidean between
/// unit-norm rows (so in [0, 2]).
pub fn mine_distance_weighted(
    rec: &mut Recorder<'_>,
    batch: &LabelledDistances<'_>,
    cfg: DistanceWeighted,
    seed: &SeedBuffer,
    triplets: &Indices,
) -> Result<()> {
    let op = "mine_distance_weighted";
    let (m, k) = batch.check(op)?;
    let t = triplet_count(op, triplets)?;
    if cfg.dim < 2 {
        return Err(Error::InvalidParam { op, message: format!("dim = {}: the weights need D >= 2", cfg.dim) });
    }
    expect_finite(op, "cutoff", cfg.cutoff, true)?;
    expect_finite(op, "nonzero_loss_cutoff", cfg.nonzero_loss_cutoff, true)?;
    let p = DistanceWeightedParams {
        rows: m as u32,
        cols: k as u32,
        triplets: t as u32,
        dim: cfg.dim,
        cutoff: cfg.cutoff,
        nonzero_loss_cutoff: cfg.nonzero_loss_cutoff,
        ..Default::default()
    };
    let groups = grid_1d(rec, t, 256);
    rec.dispatch(
        Kernel::MineDistanceWeighted,
        &[],
        &p,
        &[batch.dist.buffer(), batch.labels_a.buffer(), batch.labels_b.buffer(), triplets.buffer(), seed.buffer()],
        groups,
    )
}
