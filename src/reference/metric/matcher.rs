//! CPU reference of the tiled nearest-neighbour matcher (`crate::ops::metric::{nearest_two,
//! mutual_matches}`), in f64.
//!
//! Rows are L2-normalised descriptors, so ranking by distance is ranking by dot product: the matcher
//! compares dot products and reports distances `d = sqrt(max(0, 2 - 2 a.b))` (exact for unit rows). Order:
//! a higher dot product first, ties to the lower index. A match (i, j) is mutual when j is i's nearest B
//! row and i is j's nearest A row, and passes Lowe's ratio test when `d1 < ratio * d2` (d2 the distance
//! to i's second-nearest B row; with a single B row, d2 = infinity).

use super::{dims, row, NO_DISTANCE, NO_INDEX};
use crate::host::Tensor64;

/// One query row's two nearest database rows.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NearestTwoRef {
    pub best: u32,
    pub best_dist: f64,
    pub second_dist: f64,
    /// Dot-product gap between the best and second-best rows (how safe the choice of `best` is).
    pub gap: f64,
}

/// Distance between unit rows from their dot product.
pub fn unit_distance(dot: f64) -> f64 {
    (2.0 - 2.0 * dot).max(0.0).sqrt()
}

/// For every row of `q [Nq, D]`, its two nearest rows of `x [Nx, D]`.
pub fn nearest_two_f64(q: &Tensor64, x: &Tensor64) -> Vec<NearestTwoRef> {
    let (nq, _) = dims(q);
    let (nx, _) = dims(x);
    (0..nq)
        .map(|i| {
            let (mut b1, mut s1, mut s2) = (NO_INDEX, f64::NEG_INFINITY, f64::NEG_INFINITY);
            for j in 0..nx {
                let s: f64 = row(q, i).iter().zip(row(x, j)).map(|(a, b)| a * b).sum();
                if s > s1 {
                    s2 = s1;
                    s1 = s;
                    b1 = j as u32;
                } else if s > s2 {
                    s2 = s;
                }
            }
            let dist = |s: f64| if s == f64::NEG_INFINITY { NO_DISTANCE as f64 } else { unit_distance(s) };
            NearestTwoRef { best: b1, best_dist: dist(s1), second_dist: dist(s2), gap: s1 - s2 }
        })
        .collect()
}

/// Mutual matches passing the ratio test: per row i of A, `Some((j, d1 / d2))` or `None`.
pub fn mutual_matches_f64(a_side: &[NearestTwoRef], b_side: &[NearestTwoRef], ratio: f64) -> Vec<Option<(u32, f64)>> {
    a_side
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let j = n.best as usize;
            let mutual = j < b_side.len() && b_side[j].best as usize == i;
            let score = if n.second_dist > 0.0 { n.best_dist / n.second_dist } else { 1.0 };
            (mutual && n.best_dist < ratio * n.second_dist).then_some((n.best, score))
        })
        .collect()
}
