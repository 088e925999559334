//! CPU reference of L2 normalisation over the channel axis (`crate::ops::metric::l2_normalize`), in f64.
//!
//! At every pixel (n, y, x) of `[N, D, H, W]` (rows `[M, D]` are `[M, D, 1, 1]`):
//!   `r = sqrt(sum_d x_d^2 + eps)`, `y = x / r`;
//!   backward `dx = (dy - y (y . dy)) / r`, which is the exact gradient of this `y` (eps included), so
//!   finite differences agree with it everywhere, also at tiny norms.

use crate::host::Tensor64;

/// The per-pixel norms `r` (`[N, 1, H, W]`).
pub fn l2_norms_f64(x: &Tensor64, eps: f64) -> Tensor64 {
    let [n, d, h, w] = x.shape;
    let plane = h * w;
    let mut out = Tensor64::zeros([n, 1, h, w]);
    for b in 0..n {
        for p in 0..plane {
            let s: f64 = (0..d).map(|c| x.data[(b * d + c) * plane + p].powi(2)).sum();
            out.data[b * plane + p] = (s + eps).sqrt();
        }
    }
    out
}

/// `y = x / sqrt(|x|^2 + eps)` over channels.
pub fn l2_normalize_f64(x: &Tensor64, eps: f64) -> Tensor64 {
    let [n, d, h, w] = x.shape;
    let plane = h * w;
    let norms = l2_norms_f64(x, eps);
    let mut y = x.clone();
    for b in 0..n {
        for c in 0..d {
            for p in 0..plane {
                y.data[(b * d + c) * plane + p] /= norms.data[b * plane + p];
            }
        }
    }
    y
}

/// `dx = (dy - y (y . dy)) / r` with `y`, `r` recomputed from `x`.
pub fn l2_normalize_backward_f64(x: &Tensor64, dy: &Tensor64, eps: f64) -> Tensor64 {
    let [n, d, h, w] = x.shape;
    let plane = h * w;
    let norms = l2_norms_f64(x, eps);
    let y = l2_normalize_f64(x, eps);
    let mut dx = Tensor64::zeros(x.shape);
    for b in 0..n {
        for p in 0..plane {
            let at = |c: usize| (b * d + c) * plane + p;
            let dot: f64 = (0..d).map(|c| y.data[at(c)] * dy.data[at(c)]).sum();
            let r = norms.data[b * plane + p];
            for c in 0..d {
                dx.data[at(c)] = (dy.data[at(c)] - y.data[at(c)] * dot) / r;
            }
        }
    }
    dx
}
