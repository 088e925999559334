//! Dense patch matching on the CPU: descriptors on a grid, the brute-force reference matcher, the evaluation
//! metrics of issue 12 (mean matching accuracy against a ground-truth homography, Recall@K of patch retrieval)
//! and a side-by-side picture of the matches.
//!
//! Conventions shared by every part: points are `(x, y)` in 0-based pixels of the original images with pixel
//! centres at integers (as [`crate::Flow`] and [`crate::data::homography::Homography`]); descriptors are rows
//! of `f32` compared by Euclidean distance.

pub mod cpu;
pub mod dense;
pub mod draw;
pub mod evaluate;
pub mod metrics;
pub mod raw;

pub use cpu::{match_descriptors, MatcherConfig};
pub use draw::{draw_matches, write_matches_png};
pub use metrics::{
    match_accuracy, recall_at_k, reprojection_errors, true_correspondents, MatchAccuracy, RecallAtK, MMA_THRESHOLDS_PX,
    RECALL_KS,
};
pub use raw::{grid_points, raw_matches, raw_patch_descriptors, raw_patch_descriptors_at, RawPatchConfig};

use crate::{Error, Result};

/// One match: point `(xa, ya)` of image A with point `(xb, yb)` of image B, and a score (higher = more
/// confident; for [`match_descriptors`] the ratio-test margin `1 - d1 / d2`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Match {
    pub xa: f64,
    pub ya: f64,
    pub xb: f64,
    pub yb: f64,
    pub score: f64,
}

/// Descriptors at points of one image: row `i` of `data` (`dim` values) describes `points[i]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Descriptors {
    pub dim: usize,
    pub points: Vec<(f64, f64)>,
    /// `points.len() * dim` values, row-major.
    pub data: Vec<f32>,
}

impl Descriptors {
    /// Wraps descriptors; fails unless `data.len() == points.len() * dim` with `dim >= 1`.
    pub fn new(dim: usize, points: Vec<(f64, f64)>, data: Vec<f32>) -> Result<Descriptors> {
        if dim == 0 || points.len().checked_mul(dim) != Some(data.len()) {
            return Err(Error::Shape {
                op: "descriptors",
                message: format!(
                    "{} points of dimension {dim} need {} values, got {}; dim must be at least 1",
                    points.len(),
                    points.len().saturating_mul(dim),
                    data.len()
                ),
            });
        }
        Ok(Descriptors { dim, points, data })
    }

    /// Number of descriptors.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Descriptor `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// Fails unless the fields agree (they are public, so a caller can break them).
    pub fn check(&self, what: &'static str) -> Result<()> {
        if self.dim == 0 || self.points.len().checked_mul(self.dim) != Some(self.data.len()) {
            return Err(Error::Shape {
                op: what,
                message: format!(
                    "descriptors of dimension {} at {} points hold {} values",
                    self.dim,
                    self.points.len(),
                    self.data.len()
                ),
            });
        }
        Ok(())
    }
}
