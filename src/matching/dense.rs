//! Dense matching of two images on the GPU: descriptors on each image's grid (any [`DenseDescriber`]: the raw
//! patch baseline, or a descriptor network), mutual nearest neighbours with Lowe's ratio test computed in tiles
//! ([`crate::ops::metric::mutual_matches`]: no all-pairs matrix, so memory is bounded whatever the image size),
//! sub-pixel refinement on B's grid, and the matches mapped back to the original images' pixels.
//!
//! Memory on the GPU: the two descriptor sets (`4 D` bytes a point) and the matcher's state (`20 M + 12 K`
//! bytes), reported in [`DenseMatchReport::gpu_bytes`]; the images are scaled to `max_side` first when given.

use std::time::{Duration, Instant};

use image::RgbImage;

use super::raw::{grid_points, raw_patch_descriptors, working_copy, RawPatchConfig};
use super::{Descriptors, Match};
use crate::ops::metric::{mutual_matches, MatchOptions, Matches, TileOptions};
use crate::runtime::{Context, HostTensor};
use crate::{Error, Result};

/// Descriptors with a squared norm below this take no part (flat patches of the raw baseline are zero).
pub use super::cpu::MIN_NORM2;

/// Descriptors on the regular grid of an image: `grid_w x grid_h` points at `(k stride + (stride - 1) / 2)`
/// along each axis ([`grid_points`]), row-major, `dim` values each.
#[derive(Clone, Debug, PartialEq)]
pub struct DenseDescriptors {
    pub stride: usize,
    pub grid_w: usize,
    pub grid_h: usize,
    pub dim: usize,
    pub data: Vec<f32>,
}

impl DenseDescriptors {
    /// The descriptor of grid cell `(gx, gy)`.
    pub fn at(&self, gx: usize, gy: usize) -> &[f32] {
        let i = gy * self.grid_w + gx;
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
    /// The image point of grid cell `(gx, gy)`.
    pub fn point(&self, gx: usize, gy: usize) -> (f64, f64) {
        let c = (self.stride - 1) as f64 / 2.0;
        ((gx * self.stride) as f64 + c, (gy * self.stride) as f64 + c)
    }
    /// As a point list.
    pub fn to_descriptors(&self) -> Result<Descriptors> {
        let points = (0..self.grid_h)
            .flat_map(|gy| (0..self.grid_w).map(move |gx| (gx, gy)))
            .map(|(x, y)| self.point(x, y))
            .collect();
        Descriptors::new(self.dim, points, self.data.clone())
    }
}

/// Anything that describes an image densely.
pub trait DenseDescriber {
    /// Descriptors on the image's grid.
    fn describe(&self, ctx: &Context, image: &RgbImage) -> Result<DenseDescriptors>;
    /// Descriptors at arbitrary sub-pixel points of the image (for refinement); `dense` is what
    /// [`DenseDescriber::describe`] returned for the same image, which a network samples bilinearly.
    fn describe_at(&self, image: &RgbImage, dense: &DenseDescriptors, points: &[(f64, f64)]) -> Result<Vec<f32>>;
    /// A short name for reports (`raw`, `trained`, ...).
    fn name(&self) -> String;
    /// GPU memory describing a `width x height` image takes (a network's activations and weights), bytes;
    /// `None` for a describer that runs on the CPU.
    fn gpu_bytes(&self, _width: u32, _height: u32) -> Option<u64> {
        None
    }
}

impl DenseDescriber for RawPatchConfig {
    fn describe(&self, _ctx: &Context, image: &RgbImage) -> Result<DenseDescriptors> {
        let d = raw_patch_descriptors(image, self)?;
        let (w, h) = image.dimensions();
        let xs = grid_points(w, 1, self.stride).len();
        let ys = grid_points(1, h, self.stride).len();
        Ok(DenseDescriptors { stride: self.stride, grid_w: xs, grid_h: ys, dim: d.dim, data: d.data })
    }
    fn describe_at(&self, image: &RgbImage, _dense: &DenseDescriptors, points: &[(f64, f64)]) -> Result<Vec<f32>> {
        Ok(super::raw::raw_patch_descriptors_at(image, points, self)?.data)
    }
    fn name(&self) -> String {
        "raw".into()
    }
}

/// Refinement searches B within this many pixels of the matched grid point, in 1-pixel steps, then fits a
/// parabola through the best point's neighbours along each axis.
pub const REFINE_RADIUS_PX: i32 = 2;

/// Matching options.
#[derive(Clone, Debug, PartialEq)]
pub struct DenseMatchConfig {
    /// Scale each image so its longer side is at most this before describing it (None: full size).
    pub max_side: Option<u32>,
    /// Lowe's ratio threshold in (0, 1] (1: every mutual nearest neighbour).
    pub ratio: f32,
    /// Refine each match to sub-pixel precision: B is searched within [`REFINE_RADIUS_PX`] of the matched grid
    /// point in 1-pixel steps, and a parabola through the best point's neighbours along each axis gives the
    /// sub-pixel offset.
    pub refine: bool,
    /// Rows of B per matcher dispatch.
    pub tile_rows: usize,
}

impl Default for DenseMatchConfig {
    fn default() -> Self {
        DenseMatchConfig { max_side: Some(1024), ratio: 0.8, refine: true, tile_rows: 4096 }
    }
}

/// What [`match_dense`] found and what it cost.
#[derive(Clone, Debug, PartialEq)]
pub struct DenseMatchReport {
    /// Matches in the original images' pixels, score = 1 - d1 / d2 (the ratio-test margin).
    pub matches: Vec<Match>,
    /// (stage, wall time): describe A, describe B, match, refine.
    pub stages: Vec<(&'static str, Duration)>,
    /// Descriptors taking part (norm above the flat-patch threshold) in A and B.
    pub points: (usize, usize),
    /// Size the images were described at.
    pub sizes: ((u32, u32), (u32, u32)),
    /// GPU memory the matching used: both descriptor sets and the matcher's state, bytes.
    pub gpu_bytes: u64,
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
}

/// Offset in (-0.5, 0.5) of the maximum of the parabola through `(-1, l), (0, c), (1, r)`; 0 when `c` is not
/// a strict local maximum.
fn parabola_peak(l: f64, c: f64, r: f64) -> f64 {
    let curvature = l - 2.0 * c + r;
    if curvature >= 0.0 || c < l || c < r {
        return 0.0;
    }
    (0.5 * (l - r) / curvature).clamp(-0.5, 0.5)
}

/// Matches `a` to `b` (see the module documentation).
pub fn match_dense(
    ctx: &Context,
    a: &RgbImage,
    b: &RgbImage,
    describer: &dyn DenseDescriber,
    cfg: &DenseMatchConfig,
) -> Result<DenseMatchReport> {
    if !(cfg.ratio > 0.0 && cfg.ratio <= 1.0) {
        return Err(Error::InvalidParam { op: "match", message: format!("ratio {} must be in (0, 1]", cfg.ratio) });
    }
    let mut stages = Vec::new();
    let t = Instant::now();
    let (small_a, back_a) = working_copy(a, cfg.max_side)?;
    let da = describer.describe(ctx, &small_a)?;
    stages.push(("describe A", t.elapsed()));
    let t = Instant::now();
    let (small_b, back_b) = working_copy(b, cfg.max_side)?;
    let db = describer.describe(ctx, &small_b)?;
    stages.push(("describe B", t.elapsed()));
    if da.dim != db.dim {
        return Err(Error::Shape {
            op: "match",
            message: format!("descriptor sizes differ: {} and {}", da.dim, db.dim),
        });
    }
    // Rows that take part (padded to a multiple of 4 values for the matcher's vector loads).
    let dim = da.dim.div_ceil(4) * 4;
    let rows = |d: &DenseDescriptors| -> (Vec<usize>, Vec<f32>) {
        let mut idx = Vec::new();
        let mut data = Vec::new();
        for i in 0..d.grid_w * d.grid_h {
            let row = &d.data[i * d.dim..(i + 1) * d.dim];
            if dot(row, row) >= MIN_NORM2 as f64 {
                idx.push(i);
                data.extend_from_slice(row);
                data.extend(std::iter::repeat_n(0.0, dim - d.dim));
            }
        }
        (idx, data)
    };
    let t = Instant::now();
    let ((ia, ra), (ib, rb)) = (rows(&da), rows(&db));
    let (m, k) = (ia.len(), ib.len());
    let mut report = DenseMatchReport {
        matches: Vec::new(),
        stages,
        points: (m, k),
        sizes: (small_a.dimensions(), small_b.dimensions()),
        gpu_bytes: ((m + k) * dim * 4 + 20 * m + 12 * k) as u64,
    };
    if m == 0 || k == 0 {
        report.stages.push(("match", t.elapsed()));
        return Ok(report);
    }
    let ta = ctx.upload("descriptors A", &HostTensor::new([m, dim, 1, 1], ra)?)?;
    let tb = ctx.upload("descriptors B", &HostTensor::new([k, dim, 1, 1], rb)?)?;
    let out = Matches::new(ctx, m, k)?;
    let mut rec = ctx.recorder("match");
    let opts =
        MatchOptions { ratio: cfg.ratio, tiles: TileOptions { tile_rows: cfg.tile_rows, ..TileOptions::default() } };
    mutual_matches(&mut rec, &ta, &tb, opts, &out)?;
    rec.submit()?;
    let raw = out.download(ctx)?;
    report.stages.push(("match", t.elapsed()));

    let t = Instant::now();
    let r = REFINE_RADIUS_PX;
    let side = (2 * r + 1) as usize;
    for (i, j, _d1, ratio) in raw {
        let (ca, cb) = (ia[i as usize], ib[j as usize]);
        let (gxa, gya) = (ca % da.grid_w, ca / da.grid_w);
        let (gxb, gyb) = (cb % db.grid_w, cb / db.grid_w);
        let (xa, ya) = da.point(gxa, gya);
        let (mut xb, mut yb) = db.point(gxb, gyb);
        if cfg.refine {
            let q = da.at(gxa, gya);
            let (bw, bh) = (small_b.width() as f64, small_b.height() as f64);
            let candidates: Vec<(f64, f64)> = (-r..=r)
                .flat_map(|dy| (-r..=r).map(move |dx| (dx, dy)))
                .map(|(dx, dy)| ((xb + dx as f64).clamp(0.0, bw - 1.0), (yb + dy as f64).clamp(0.0, bh - 1.0)))
                .collect();
            let desc = describer.describe_at(&small_b, &db, &candidates)?;
            let score: Vec<f64> = desc.chunks_exact(db.dim).map(|d| dot(q, d)).collect();
            let best = (0..score.len()).max_by(|&u, &v| score[u].total_cmp(&score[v])).unwrap_or(side * side / 2);
            let (bx, by) = (best % side, best / side);
            let (mut ox, mut oy) = (0.0, 0.0);
            if bx > 0 && bx + 1 < side {
                ox = parabola_peak(score[best - 1], score[best], score[best + 1]);
            }
            if by > 0 && by + 1 < side {
                oy = parabola_peak(score[best - side], score[best], score[best + side]);
            }
            xb = candidates[best].0 + ox;
            yb = candidates[best].1 + oy;
        }
        let (Some((xa, ya)), Some((xb, yb))) = (back_a.apply(xa, ya), back_b.apply(xb, yb)) else { continue };
        report.matches.push(Match { xa, ya, xb, yb, score: 1.0 - ratio as f64 });
    }
    report.stages.push(("refine", t.elapsed()));
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parabola_peak_finds_the_vertex() {
        // y = -(x - 0.3)^2 sampled at -1, 0, 1.
        let f = |x: f64| -(x - 0.3) * (x - 0.3);
        assert!((parabola_peak(f(-1.0), f(0.0), f(1.0)) - 0.3).abs() < 1e-12);
        assert_eq!(parabola_peak(1.0, 0.0, 1.0), 0.0, "a minimum is not refined");
        assert_eq!(parabola_peak(0.0, 1.0, 2.0), 0.0, "not a local maximum");
    }
}
