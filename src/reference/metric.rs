//! CPU references of the metric-learning and matching kernels (`crate::ops::metric`), in f64: one module
//! per op family, mirroring `ops::metric`. Matrices are [`Tensor64`]s of shape `[rows, cols, 1, 1]`
//! (row-major), labels and indices plain `u32` slices, triplets `[u32; 4]` cells
//! `(pos_row, pos_col, neg_row, neg_col)` of the distance matrix (see `ops::metric`).

pub mod distance;
pub mod hierarchy;
pub mod loss;
pub mod matcher;
pub mod mining;
pub mod normalize;
pub mod sample;

use crate::host::Tensor64;

/// "No index": an anchor without a positive or negative, a row without a mutual match.
pub const NO_INDEX: u32 = u32::MAX;

/// The distance reported where there is no row to measure to (a second-nearest row of a one-row set).
pub const NO_DISTANCE: f32 = f32::MAX;

/// Added to the squared norm in L2 normalisation: `y = x / sqrt(|x|^2 + eps)`.
pub const L2_NORM_EPS: f32 = 1e-10;

/// Added inside the square root of the Euclidean distance: `d = sqrt(|a - b|^2 + eps)` (HardNet's value).
pub const DISTANCE_EPS: f32 = 1e-6;

/// The `(rows, cols)` of a matrix `[rows, cols, 1, 1]`.
pub(crate) fn dims(t: &Tensor64) -> (usize, usize) {
    (t.shape[0], t.shape[1])
}

/// Row `r` of a matrix `[rows, cols, 1, 1]`.
pub(crate) fn row(t: &Tensor64, r: usize) -> &[f64] {
    let c = t.shape[1];
    &t.data[r * c..(r + 1) * c]
}
