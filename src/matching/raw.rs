//! The raw-patch baseline descriptor (`--descriptor raw`), the non-learned reference a trained descriptor
//! must beat: at each point, a `P x P` patch of grey values (optionally from a Gaussian-blurred image),
//! mean-subtracted and L2-normalised, i.e. the normalised cross-correlation descriptor: for two such
//! descriptors `|a - b|^2 = 2 - 2 NCC`.
//!
//! Grid: with stride `s` the descriptors sit at `x = k s + (s - 1) / 2` for `k = 0 .. width / s - 1` (the
//! centres of the `s x s` cells a stride-`s` network output covers), likewise in y; an image narrower than
//! the stride gets one column at its centre.
//!
//! Patch: sample `(i, j)`, `0 <= i, j < P`, of the patch at `(x, y)` is the bilinear grey value at
//! `(x + (i - (P - 1) / 2) * spacing, y + (j - (P - 1) / 2) * spacing)`, the image extended by its border
//! pixels. Grey is Rec. 601 luma `0.299 R + 0.587 G + 0.114 B` in [0, 1].
//!
//! A patch whose standard deviation is below `min_std` (a flat region) has no usable normalisation: its
//! descriptor is all zeros, which [`super::match_descriptors`] never matches.

use image::RgbImage;

use super::{match_descriptors, Descriptors, Match, MatcherConfig};
use crate::data::filter::{bilinear, gaussian_blur};
use crate::data::homography::Homography;
use crate::{Error, Result};

const OP: &str = "raw patch descriptor";

/// Largest patch side accepted (a 64 x 64 patch is already a 4096-dimensional descriptor).
pub const MAX_PATCH: usize = 64;

/// Parameters of the raw-patch descriptor.
#[derive(Clone, Debug, PartialEq)]
pub struct RawPatchConfig {
    /// Grid stride, pixels, at least 1.
    pub stride: usize,
    /// Patch side `P` in samples, 2 to [`MAX_PATCH`]; the descriptor has `P * P` dimensions.
    pub patch: usize,
    /// Distance between patch samples, pixels (finite, > 0).
    pub spacing: f64,
    /// Gaussian blur applied to the grey image first, sigma in pixels (0 = none, at most 10).
    pub blur_sigma: f64,
    /// Patches with a standard deviation below this (grey levels in [0, 1]) get the zero descriptor.
    pub min_std: f64,
}

impl Default for RawPatchConfig {
    /// Stride 4 (the descriptor network's), 8 x 8 samples 1 px apart (64 dimensions), blur sigma 1 px
    /// (so that points between grid positions still correlate), flat below one grey level (1 / 255).
    fn default() -> Self {
        RawPatchConfig { stride: 4, patch: 8, spacing: 1.0, blur_sigma: 1.0, min_std: 1.0 / 255.0 }
    }
}

impl RawPatchConfig {
    /// Checks every field; the error names the offending one.
    pub fn validate(&self) -> Result<()> {
        let bad = |message: String| Err(Error::InvalidParam { op: OP, message });
        if self.stride == 0 {
            return bad("stride must be at least 1".into());
        }
        if !(2..=MAX_PATCH).contains(&self.patch) {
            return bad(format!("patch {} must be in 2..={MAX_PATCH}", self.patch));
        }
        if !(self.spacing.is_finite() && self.spacing > 0.0 && self.spacing <= 100.0) {
            return bad(format!("spacing {} must be in (0, 100]", self.spacing));
        }
        if !(self.blur_sigma.is_finite() && (0.0..=10.0).contains(&self.blur_sigma)) {
            return bad(format!("blur_sigma {} must be in [0, 10]", self.blur_sigma));
        }
        if !(self.min_std.is_finite() && self.min_std >= 0.0) {
            return bad(format!("min_std {} must be finite and >= 0", self.min_std));
        }
        Ok(())
    }
}

/// The grid points of a `width x height` image at `stride` (see the module documentation), row-major.
pub fn grid_points(width: u32, height: u32, stride: usize) -> Vec<(f64, f64)> {
    let axis = |n: u32| -> Vec<f64> {
        if n == 0 || stride == 0 {
            return Vec::new();
        }
        let count = n as usize / stride;
        if count == 0 {
            return vec![(n - 1) as f64 / 2.0];
        }
        (0..count).map(|k| (k * stride) as f64 + (stride - 1) as f64 / 2.0).collect()
    };
    let (xs, ys) = (axis(width), axis(height));
    ys.iter().flat_map(|&y| xs.iter().map(move |&x| (x, y))).collect()
}

/// Rec. 601 luma of `image`, row-major, in [0, 1].
fn grey(image: &RgbImage) -> Vec<f32> {
    image.pixels().map(|p| (0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32) / 255.0).collect()
}

/// Raw-patch descriptors of `image` at arbitrary `points` (e.g. the query points of Recall@K). Fails on an
/// empty image, an invalid `cfg` or a non-finite point.
pub fn raw_patch_descriptors_at(image: &RgbImage, points: &[(f64, f64)], cfg: &RawPatchConfig) -> Result<Descriptors> {
    cfg.validate()?;
    let (w, h) = (image.width() as usize, image.height() as usize);
    if w == 0 || h == 0 {
        return Err(Error::InvalidParam { op: OP, message: format!("the image is {w}x{h}: it has no pixels") });
    }
    if let Some(p) = points.iter().find(|p| !(p.0.is_finite() && p.1.is_finite())) {
        return Err(Error::InvalidParam { op: OP, message: format!("point {p:?} is not finite") });
    }
    let mut plane = grey(image);
    gaussian_blur(&mut plane, w, h, 1, cfg.blur_sigma);
    let p = cfg.patch;
    let dim = p * p;
    let half = (p - 1) as f64 / 2.0;
    let offsets: Vec<f64> = (0..p).map(|i| (i as f64 - half) * cfg.spacing).collect();
    let mut data = Vec::with_capacity(points.len() * dim);
    let mut patch = vec![0.0f64; dim];
    for &(x, y) in points {
        for (j, dy) in offsets.iter().enumerate() {
            for (i, dx) in offsets.iter().enumerate() {
                patch[j * p + i] = bilinear(&plane, w, h, x + dx, y + dy) as f64;
            }
        }
        let mean = patch.iter().sum::<f64>() / dim as f64;
        patch.iter_mut().for_each(|v| *v -= mean);
        let norm = patch.iter().map(|v| v * v).sum::<f64>().sqrt();
        // std = norm / sqrt(dim).
        if norm / (dim as f64).sqrt() < cfg.min_std || norm == 0.0 {
            data.extend(std::iter::repeat_n(0.0f32, dim));
        } else {
            data.extend(patch.iter().map(|v| (v / norm) as f32));
        }
    }
    Descriptors::new(dim, points.to_vec(), data)
}

/// Raw-patch descriptors of `image` on its stride grid ([`grid_points`]).
pub fn raw_patch_descriptors(image: &RgbImage, cfg: &RawPatchConfig) -> Result<Descriptors> {
    cfg.validate()?;
    raw_patch_descriptors_at(image, &grid_points(image.width(), image.height(), cfg.stride), cfg)
}

/// `image` scaled so that its longer side is at most `max_side` (unchanged when it already is), with the
/// map from the scaled image's pixels back to the original's.
pub fn working_copy(image: &RgbImage, max_side: Option<u32>) -> Result<(RgbImage, Homography)> {
    let (w, h) = image.dimensions();
    match max_side {
        Some(m) if w.max(h) > m && m > 0 => {
            let s = m as f64 / w.max(h) as f64;
            let (nw, nh) = (((w as f64 * s).round() as u32).max(1), ((h as f64 * s).round() as u32).max(1));
            let small = image::imageops::resize(image, nw, nh, image::imageops::FilterType::Triangle);
            Ok((small, Homography::pixel_resize((nw, nh), (w, h))?))
        }
        _ => Ok((image.clone(), Homography::identity())),
    }
}

/// The whole raw baseline: raw-patch descriptors of both images on their grids (after scaling each so its
/// longer side is at most `max_side` pixels, when given), matched by [`match_descriptors`]; the matches are in
/// the original images' pixels.
pub fn raw_matches(
    a: &RgbImage,
    b: &RgbImage,
    raw: &RawPatchConfig,
    matcher: &MatcherConfig,
    max_side: Option<u32>,
) -> Result<Vec<Match>> {
    let (small_a, back_a) = working_copy(a, max_side)?;
    let (small_b, back_b) = working_copy(b, max_side)?;
    let da = raw_patch_descriptors(&small_a, raw)?;
    let db = raw_patch_descriptors(&small_b, raw)?;
    let matches = match_descriptors(&da, &db, matcher)?;
    Ok(matches
        .into_iter()
        .filter_map(|m| {
            // pixel_resize maps are affine: apply never fails on them.
            let (xa, ya) = back_a.apply(m.xa, m.ya)?;
            let (xb, yb) = back_b.apply(m.xb, m.yb)?;
            Some(Match { xa, ya, xb, yb, score: m.score })
        })
        .collect())
}
