//! CPU reference of the pairwise distance matrix (`crate::ops::metric::pairwise_distance`), forward and
//! backward, in f64.
//!
//! `A [M, D]`, `B [K, D]` -> `dist [M, K]`:
//! - Euclidean: `dist[i, j] = sqrt(sum_c (a_ic - b_jc)^2 + eps)` (`eps` inside the root keeps the gradient
//!   `(a - b) / dist` bounded by 1 at coincident rows; HardNet's `eps = 1e-6`);
//! - squared (`squared = true`): `dist[i, j] = sum_c (a_ic - b_jc)^2` (no epsilon), as ProxyNCA uses.
//!
//! Backward from `G = dL/ddist`: `dA_i = sum_j w_ij (a_i - b_j)`, `dB_j = sum_i w_ij (b_j - a_i)` with
//! `w = G / dist` (Euclidean) or `w = 2 G` (squared).

use super::{dims, row};
use crate::host::Tensor64;

/// `dist [M, K]` between the rows of `a [M, D]` and `b [K, D]`.
pub fn pairwise_distance_f64(a: &Tensor64, b: &Tensor64, squared: bool, eps: f64) -> Tensor64 {
    let (m, _) = dims(a);
    let (k, _) = dims(b);
    let mut out = Tensor64::zeros([m, k, 1, 1]);
    for i in 0..m {
        for j in 0..k {
            let s: f64 = row(a, i).iter().zip(row(b, j)).map(|(x, y)| (x - y).powi(2)).sum();
            out.data[i * k + j] = if squared { s } else { (s + eps).sqrt() };
        }
    }
    out
}

/// `(dA, dB)` from `grad [M, K]` (the distances are recomputed from `a` and `b`).
pub fn pairwise_distance_backward_f64(
    a: &Tensor64,
    b: &Tensor64,
    grad: &Tensor64,
    squared: bool,
    eps: f64,
) -> (Tensor64, Tensor64) {
    let (m, d) = dims(a);
    let (k, _) = dims(b);
    let dist = pairwise_distance_f64(a, b, squared, eps);
    let mut da = Tensor64::zeros(a.shape);
    let mut db = Tensor64::zeros(b.shape);
    for i in 0..m {
        for j in 0..k {
            let g = grad.data[i * k + j];
            let w = if squared { 2.0 * g } else { g / dist.data[i * k + j] };
            for c in 0..d {
                let diff = a.data[i * d + c] - b.data[j * d + c];
                da.data[i * d + c] += w * diff;
                db.data[j * d + c] -= w * diff;
            }
        }
    }
    (da, db)
}
