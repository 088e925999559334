//! CPU references of the metric losses on a distance matrix (`crate::ops::metric::{contrastive_loss,
//! triplet_loss, proxy_nca_loss}`), with their gradients w.r.t. the distances, in f64. Each returns
//! `(loss, terms, grad)`: the per-row (or per-triplet) terms whose sum is the loss, and `dL/ddist`.
//! `scale` multiplies everything (a loss weight); the normalisations below are part of each loss.
//!
//! - Contrastive (Hadsell et al. 2006), per anchor row i of A with `P_i` positives (`lb[j] == la[i]`, the
//!   diagonal `j == i` left out when `exclude_diagonal`) and `N_i` negatives:
//!   `L = scale / M * sum_i [ 1/P_i sum_pos d_ij^2 + 1/N_i sum_neg max(0, m - d_ij)^2 ]`
//!   (positives and negatives averaged separately per row, so the balance does not depend on how many of
//!   each a batch holds; an empty set contributes 0).
//! - Triplet (Weinberger & Saul; FaceNet), over T triplets of cells:
//!   `L = scale / T * sum_t max(0, m + D[pos_t] - D[neg_t])`; a triplet with a cell out of range (e.g.
//!   [`super::NO_INDEX`]) contributes 0 but still counts in T; at the hinge (`= 0`) the gradient is 0.
//! - ProxyNCA (Movshovitz-Attias et al. 2017) on `dist [M, C]` to the C proxies, labels in `0..C`:
//!   `L = scale / M * sum_i [ d_iy / T + log sum_{z != y} exp(-d_iz / T) ]`, i.e.
//!   `-log(exp(-d_iy/T) / sum_{z != y} exp(-d_iz/T))`; a row whose label is `>= C` contributes 0.

use super::NO_INDEX;
use crate::host::Tensor64;

/// The contrastive loss's parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ContrastiveSpec {
    /// Negatives closer than this are pushed apart.
    pub margin: f32,
    /// Leave the pairs (i, i) out (A and B the same rows).
    pub exclude_diagonal: bool,
    /// Multiplies the loss and its gradient.
    pub scale: f32,
}

/// The triplet loss's parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TripletSpec {
    pub margin: f32,
    pub scale: f32,
}

/// ProxyNCA's parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProxyNcaSpec {
    /// T in `exp(-d / T)`.
    pub temperature: f32,
    pub scale: f32,
}

/// Contrastive loss: `(loss, terms [M], dL/ddist [M, K])`.
pub fn contrastive_loss_f64(
    dist: &Tensor64,
    labels_a: &[u32],
    labels_b: &[u32],
    spec: ContrastiveSpec,
) -> (f64, Vec<f64>, Tensor64) {
    let (m, k) = (dist.shape[0], dist.shape[1]);
    let (margin, exclude_diagonal, scale) = (spec.margin as f64, spec.exclude_diagonal, spec.scale as f64);
    let mut terms = vec![0.0; m];
    let mut grad = Tensor64::zeros(dist.shape);
    let s = scale / m as f64;
    for i in 0..m {
        let is_pos = |j: usize| labels_b[j] == labels_a[i] && !(exclude_diagonal && i == j);
        let is_neg = |j: usize| labels_b[j] != labels_a[i];
        let np = (0..k).filter(|&j| is_pos(j)).count();
        let nn = (0..k).filter(|&j| is_neg(j)).count();
        for j in 0..k {
            let d = dist.data[i * k + j];
            if is_pos(j) {
                terms[i] += s * d * d / np as f64;
                grad.data[i * k + j] = s * 2.0 * d / np as f64;
            } else if is_neg(j) {
                let h = (margin - d).max(0.0);
                terms[i] += s * h * h / nn as f64;
                grad.data[i * k + j] = -s * 2.0 * h / nn as f64;
            }
        }
    }
    (terms.iter().sum(), terms, grad)
}

/// Whether a triplet's four cells lie inside an `m x k` matrix.
pub fn triplet_valid(t: &[u32; 4], m: usize, k: usize) -> bool {
    t.iter().all(|&v| v != NO_INDEX)
        && (t[0] as usize) < m
        && (t[1] as usize) < k
        && (t[2] as usize) < m
        && (t[3] as usize) < k
}

/// Triplet loss: `(loss, terms [T], dL/ddist [M, K])`.
pub fn triplet_loss_f64(dist: &Tensor64, triplets: &[[u32; 4]], spec: TripletSpec) -> (f64, Vec<f64>, Tensor64) {
    let (m, k) = (dist.shape[0], dist.shape[1]);
    let (margin, scale) = (spec.margin as f64, spec.scale as f64);
    let mut terms = vec![0.0; triplets.len()];
    let mut grad = Tensor64::zeros(dist.shape);
    let s = scale / triplets.len().max(1) as f64;
    for (t, tr) in triplets.iter().enumerate() {
        if !triplet_valid(tr, m, k) {
            continue;
        }
        let pos = tr[0] as usize * k + tr[1] as usize;
        let neg = tr[2] as usize * k + tr[3] as usize;
        let h = margin + dist.data[pos] - dist.data[neg];
        if h > 0.0 {
            terms[t] = s * h;
            grad.data[pos] += s;
            grad.data[neg] -= s;
        }
    }
    (terms.iter().sum(), terms, grad)
}

/// ProxyNCA: `(loss, terms [M], dL/ddist [M, C])`.
pub fn proxy_nca_loss_f64(dist: &Tensor64, labels: &[u32], spec: ProxyNcaSpec) -> (f64, Vec<f64>, Tensor64) {
    let (m, c) = (dist.shape[0], dist.shape[1]);
    let (temperature, scale) = (spec.temperature as f64, spec.scale as f64);
    let mut terms = vec![0.0; m];
    let mut grad = Tensor64::zeros(dist.shape);
    let s = scale / m as f64;
    for i in 0..m {
        let y = labels[i] as usize;
        if y >= c {
            continue;
        }
        let logit = |z: usize| -dist.data[i * c + z] / temperature;
        let mx = (0..c).filter(|&z| z != y).map(logit).fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = (0..c).filter(|&z| z != y).map(|z| (logit(z) - mx).exp()).sum();
        let lse = mx + sum.ln();
        terms[i] = s * (dist.data[i * c + y] / temperature + lse);
        for z in 0..c {
            grad.data[i * c + z] =
                if z == y { s / temperature } else { -s / temperature * (logit(z) - mx).exp() / sum };
        }
    }
    (terms.iter().sum(), terms, grad)
}
