//! CPU reference of bilinear sampling of a descriptor map at sub-pixel points
//! (`crate::ops::metric::sample_descriptors`), forward and backward, in f64.
//!
//! Grid convention: the map `[N, D, Hf, Wf]` was computed at stride `s` from an image; its cell (i, j)
//! covers image pixels `s*j .. s*j + s - 1` horizontally, so its centre is at image coordinate
//! `x = s*j + (s - 1)/2` (and likewise for y), pixel centres at integer coordinates (x = 0 is the centre of
//! the first column). A point at image coordinate `x` therefore sits at grid coordinate
//! `g = (x - (s - 1)/2) / s`. `g` is clamped to `[0, Wf - 1]` (border padding: a point outside the grid
//! takes the nearest edge value), then interpolated bilinearly between columns `floor(g)` and
//! `floor(g) + 1` (the latter clamped to `Wf - 1`); the same along y.
//!
//! Points are `[N, K, 2, 1]`: image n's point k at `(x, y)` in image pixels; the output is the rows
//! `[N*K, D, 1, 1]`, row `n*K + k`. The `*_channels_f64` forms sample (and differentiate) a range of the
//! map's channels only: rows `[N*K, channels.len(), 1, 1]`, no gradient outside the range.

use std::ops::Range;

use crate::host::Tensor64;

/// The stride of the descriptor grid relative to the image (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GridSpec {
    pub stride: u32,
}

impl GridSpec {
    /// Grid coordinate of image coordinate `v`: `(v - (s - 1)/2) / s`.
    pub fn to_grid(&self, v: f64) -> f64 {
        let s = self.stride as f64;
        (v - (s - 1.0) / 2.0) / s
    }
    /// Image coordinate of grid coordinate `g` (the inverse of [`GridSpec::to_grid`]).
    pub fn to_image(&self, g: f64) -> f64 {
        let s = self.stride as f64;
        s * g + (s - 1.0) / 2.0
    }
}

/// Along one axis of `n` cells: (index0, index1, weight of index1, d(weight)/d(image coordinate)); the
/// derivative is 0 where the coordinate is clamped.
pub(crate) fn axis_f64(v: f64, n: usize, stride: u32) -> (usize, usize, f64, f64) {
    let g = GridSpec { stride }.to_grid(v);
    let hi = (n - 1) as f64;
    let inside = g > 0.0 && g < hi;
    let gc = g.clamp(0.0, hi);
    let i0 = (gc.floor() as usize).min(n - 1);
    let i1 = (i0 + 1).min(n - 1);
    (i0, i1, gc - i0 as f64, if inside { 1.0 / stride as f64 } else { 0.0 })
}

/// `out[n*K + k, d] = bilinear(map[n, d], points[n, k])`.
pub fn sample_descriptors_f64(map: &Tensor64, points: &Tensor64, grid: GridSpec) -> Tensor64 {
    sample_descriptors_channels_f64(map, points, grid, 0..map.shape[1])
}

/// `out[n*K + k, c] = bilinear(map[n, channels.start + c], points[n, k])`.
pub fn sample_descriptors_channels_f64(
    map: &Tensor64,
    points: &Tensor64,
    grid: GridSpec,
    channels: Range<usize>,
) -> Tensor64 {
    let [n, _, h, w] = map.shape;
    let (k, d, c0) = (points.shape[1], channels.len(), channels.start);
    let mut out = Tensor64::zeros([n * k, d, 1, 1]);
    for b in 0..n {
        for q in 0..k {
            let px = points.data[(b * k + q) * 2];
            let py = points.data[(b * k + q) * 2 + 1];
            let (x0, x1, fx, _) = axis_f64(px, w, grid.stride);
            let (y0, y1, fy, _) = axis_f64(py, h, grid.stride);
            for c in 0..d {
                let g = |yy: usize, xx: usize| map.data[map.idx(b, c0 + c, yy, xx)];
                let top = g(y0, x0) * (1.0 - fx) + g(y0, x1) * fx;
                let bot = g(y1, x0) * (1.0 - fx) + g(y1, x1) * fx;
                out.data[(b * k + q) * d + c] = top * (1.0 - fy) + bot * fy;
            }
        }
    }
    out
}

/// Gradient w.r.t. the map: every point scatters `w * dout` onto its four neighbours (here in plain
/// loops; the GPU kernel gathers the same sums per map pixel).
pub fn sample_descriptors_backward_f64(
    map_shape: [usize; 4],
    points: &Tensor64,
    dout: &Tensor64,
    grid: GridSpec,
) -> Tensor64 {
    sample_descriptors_channels_backward_f64(map_shape, points, dout, grid, 0..map_shape[1])
}

/// The map gradient of [`sample_descriptors_channels_f64`]: zero outside `channels`.
pub fn sample_descriptors_channels_backward_f64(
    map_shape: [usize; 4],
    points: &Tensor64,
    dout: &Tensor64,
    grid: GridSpec,
    channels: Range<usize>,
) -> Tensor64 {
    let [n, _, h, w] = map_shape;
    let (k, d, c0) = (points.shape[1], channels.len(), channels.start);
    let mut dmap = Tensor64::zeros(map_shape);
    for b in 0..n {
        for q in 0..k {
            let px = points.data[(b * k + q) * 2];
            let py = points.data[(b * k + q) * 2 + 1];
            let (x0, x1, fx, _) = axis_f64(px, w, grid.stride);
            let (y0, y1, fy, _) = axis_f64(py, h, grid.stride);
            for c in 0..d {
                let g = dout.data[(b * k + q) * d + c];
                for (yy, xx, wt) in [
                    (y0, x0, (1.0 - fy) * (1.0 - fx)),
                    (y0, x1, (1.0 - fy) * fx),
                    (y1, x0, fy * (1.0 - fx)),
                    (y1, x1, fy * fx),
                ] {
                    let i = dmap.idx(b, c0 + c, yy, xx);
                    dmap.data[i] += wt * g;
                }
            }
        }
    }
    dmap
}

/// Gradient w.r.t. the point coordinates `[N, K, 2, 1]` (0 along an axis where the point is clamped to the
/// border; at an exact grid line the derivative of the cell to its right/below is taken).
pub fn sample_descriptors_backward_points_f64(
    map: &Tensor64,
    points: &Tensor64,
    dout: &Tensor64,
    grid: GridSpec,
) -> Tensor64 {
    sample_descriptors_channels_backward_points_f64(map, points, dout, grid, 0..map.shape[1])
}

/// The point gradient of [`sample_descriptors_channels_f64`].
pub fn sample_descriptors_channels_backward_points_f64(
    map: &Tensor64,
    points: &Tensor64,
    dout: &Tensor64,
    grid: GridSpec,
    channels: Range<usize>,
) -> Tensor64 {
    let [n, _, h, w] = map.shape;
    let (k, d, c0) = (points.shape[1], channels.len(), channels.start);
    let mut dp = Tensor64::zeros(points.shape);
    for b in 0..n {
        for q in 0..k {
            let px = points.data[(b * k + q) * 2];
            let py = points.data[(b * k + q) * 2 + 1];
            let (x0, x1, fx, dfx) = axis_f64(px, w, grid.stride);
            let (y0, y1, fy, dfy) = axis_f64(py, h, grid.stride);
            let (mut gx, mut gy) = (0.0, 0.0);
            for c in 0..d {
                let g = |yy: usize, xx: usize| map.data[map.idx(b, c0 + c, yy, xx)];
                let go = dout.data[(b * k + q) * d + c];
                let top = g(y0, x0) * (1.0 - fx) + g(y0, x1) * fx;
                let bot = g(y1, x0) * (1.0 - fx) + g(y1, x1) * fx;
                let dx = (g(y0, x1) - g(y0, x0)) * (1.0 - fy) + (g(y1, x1) - g(y1, x0)) * fy;
                gx += go * dx * dfx;
                gy += go * (bot - top) * dfy;
            }
            dp.data[(b * k + q) * 2] = gx;
            dp.data[(b * k + q) * 2 + 1] = gy;
        }
    }
    dp
}
