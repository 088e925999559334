//! CPU references of bilinear resize, align_corners = false, and of backward warping (`crate::ops::resize`),
//! in f64.

use crate::host::HostTensor;

/// Source index pair and weight along one axis (PyTorch's `area_pixel_compute_source_index`).
fn axis(o: usize, n_in: usize, n_out: usize) -> (usize, usize, f64) {
    let scale = n_in as f64 / n_out as f64;
    let s = ((o as f64 + 0.5) * scale - 0.5).max(0.0);
    let i0 = (s.floor() as usize).min(n_in - 1);
    let i1 = (i0 + 1).min(n_in - 1);
    (i0, i1, s - i0 as f64)
}

/// CPU reference bilinear resize (align_corners = false), computed in f64.
pub fn resize_bilinear_cpu(src: &HostTensor, out_h: usize, out_w: usize, value_scale: f32) -> HostTensor {
    let [n, c, ih, iw] = src.shape;
    let mut out = HostTensor::zeros([n, c, out_h, out_w]);
    for b in 0..n {
        for ch in 0..c {
            for y in 0..out_h {
                let (y0, y1, ly) = axis(y, ih, out_h);
                for x in 0..out_w {
                    let (x0, x1, lx) = axis(x, iw, out_w);
                    let g = |yy, xx| src.at(b, ch, yy, xx) as f64;
                    let top = g(y0, x0) * (1.0 - lx) + g(y0, x1) * lx;
                    let bot = g(y1, x0) * (1.0 - lx) + g(y1, x1) * lx;
                    let i = out.idx(b, ch, y, x);
                    out.data[i] = (value_scale as f64 * (top * (1.0 - ly) + bot * ly)) as f32;
                }
            }
        }
    }
    out
}

/// CPU reference backward warp (replicate padding), in f64: `src` [N, C, H, W] sampled at `(x + scale_u u,
/// y + scale_v v)` with `(u, v)` from `flow` [N, 2, H, W].
pub fn warp_bilinear_cpu(src: &HostTensor, flow: &HostTensor, scale: (f32, f32)) -> HostTensor {
    let [n, c, h, w] = src.shape;
    let mut out = HostTensor::zeros(src.shape);
    let tap = |v: f64, size: usize| -> usize { (v.max(0.0) as usize).min(size - 1) };
    for b in 0..n {
        for y in 0..h {
            for x in 0..w {
                let sx = x as f64 + scale.0 as f64 * flow.at(b, 0, y, x) as f64;
                let sy = y as f64 + scale.1 as f64 * flow.at(b, 1, y, x) as f64;
                let (fx, fy) = (sx.floor(), sy.floor());
                let (ax, ay) = (sx - fx, sy - fy);
                let (x0, x1, y0, y1) = (tap(fx, w), tap(fx + 1.0, w), tap(fy, h), tap(fy + 1.0, h));
                for ch in 0..c {
                    let g = |yy, xx| src.at(b, ch, yy, xx) as f64;
                    let top = g(y0, x0) * (1.0 - ax) + g(y0, x1) * ax;
                    let bot = g(y1, x0) * (1.0 - ax) + g(y1, x1) * ax;
                    let i = out.idx(b, ch, y, x);
                    out.data[i] = (top * (1.0 - ay) + bot * ay) as f32;
                }
            }
        }
    }
    out
}
