//! CPU references of FlowNet's multiscale loss kernels (`crate::ops::loss`): area pooling and the
//! per-scale endpoint error with its gradient, in f64.

use crate::host::HostTensor;

/// CPU reference of [`adaptive_avg_pool`](crate::ops::loss::adaptive_avg_pool) (f64 sums).
pub fn adaptive_avg_pool_cpu(src: &HostTensor, out_h: usize, out_w: usize, value_scale: f32) -> HostTensor {
    let [n, c, ih, iw] = src.shape;
    let mut out = HostTensor::zeros([n, c, out_h, out_w]);
    for b in 0..n {
        for ch in 0..c {
            for yo in 0..out_h {
                let (y0, y1) = (yo * ih / out_h, ((yo + 1) * ih).div_ceil(out_h));
                for xo in 0..out_w {
                    let (x0, x1) = (xo * iw / out_w, ((xo + 1) * iw).div_ceil(out_w));
                    let mut s = 0.0f64;
                    for y in y0..y1 {
                        for x in x0..x1 {
                            s += src.at(b, ch, y, x) as f64;
                        }
                    }
                    let i = out.idx(b, ch, yo, xo);
                    out.data[i] = (value_scale as f64 * s / ((y1 - y0) * (x1 - x0)) as f64) as f32;
                }
            }
        }
    }
    out
}

/// CPU reference of [`epe_loss`](crate::ops::loss::epe_loss) in f64: (loss, gradient).
pub fn epe_loss_cpu(pred: &HostTensor, target: &HostTensor, scale: f64) -> (f64, HostTensor) {
    let [n, _, h, w] = pred.shape;
    let mut grad = HostTensor::zeros(pred.shape);
    let mut loss = 0.0;
    for b in 0..n {
        for y in 0..h {
            for x in 0..w {
                let du = pred.at(b, 0, y, x) as f64 - target.at(b, 0, y, x) as f64;
                let dv = pred.at(b, 1, y, x) as f64 - target.at(b, 1, y, x) as f64;
                let norm = (du * du + dv * dv).sqrt();
                loss += scale * norm;
                let inv = if norm > 0.0 { scale / norm } else { 0.0 };
                let (iu, iv) = (grad.idx(b, 0, y, x), grad.idx(b, 1, y, x));
                grad.data[iu] = (du * inv) as f32;
                grad.data[iv] = (dv * inv) as f32;
            }
        }
    }
    (loss, grad)
}
