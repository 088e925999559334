//! Image pairs with exact point correspondences, for training and checking patch descriptors (issue 12,
//! item 3): positives are the same scene point in both images, negatives everything farther than a few pixels.
//!
//! Two kinds of pair share one type, [`CorrespondencePair`]:
//! - **homography pairs** ([`warp_pair`]): image A is a crop of a source image (a procedural scene of
//!   [`crate::data::synthetic`] or one of the user's photos) and image B the same source seen through a random
//!   homography `H` (rotation, scale, anisotropy and shear, perspective, translation; [`WarpConfig`]), rendered
//!   by bilinear sampling, each image then given its own photometric change ([`PhotometricConfig`]). Point `p`
//!   of A is point `H(p)` of B; B's pixels around A's crop show the rest of the source, so there are no black
//!   borders for a descriptor to latch onto, and [`CorrespondencePair::valid_b`] marks the pixels of B whose
//!   scene point lies inside A;
//! - **scene pairs** ([`scene_pair`], [`CorrespondencePair::from_scene`]): the synthetic generator's layered
//!   scenes, whose per-layer affine motions are exact: point `p` of A on layer `i` is point `M_i(p)` of B,
//!   visible when B shows layer `i` there (occlusion is decided by the layer ids of both frames).
//!
//! Coordinates are 0-based pixels with pixel centres at integers (as in [`crate::Flow`]); a point lies inside
//! a `w x h` image when it is within `[0, w - 1] x [0, h - 1]` (where bilinear sampling needs no padding).
//!
//! [`sample_correspondences`] draws `K` correspondences per pair, at least `min_distance_px` apart in both
//! images, so that any two distinct samples can serve as each other's negatives.
//!
//! Everything is a pure function of its configuration and seed.

use std::sync::Arc;

use image::RgbImage;

use super::filter::gaussian_blur;
use super::homography::Homography;
use super::synthetic::{generate, Affine, Sampler, SyntheticConfig, SyntheticPair};
use super::texture::PhotoSource;
use crate::{Error, Result};

/// The `op` named in this module's errors.
const OP: &str = "correspondence";

/// Largest source image of a homography pair, pixels (as [`crate::data::synthetic::MAX_PIXELS`]); the pair
/// itself is smaller by its margin ([`WarpConfig`]).
pub const MAX_PIXELS: usize = super::synthetic::MAX_PIXELS;

/// A point of image A and the same scene point in image B, 0-based pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PointPair {
    pub a: (f64, f64),
    pub b: (f64, f64),
}

/// How a point of A finds its point in B.
#[derive(Clone, Debug, PartialEq)]
pub enum GroundTruth {
    /// The whole of A maps by one homography (a planar scene or a warped image).
    Homography { a_to_b: Homography },
    /// A layered scene: `motions[i]` moves layer `i` from A to B; `ids_a` / `ids_b` give the layer each pixel
    /// shows (row-major, A's size and B's size).
    Layers { motions: Vec<Affine>, ids_a: Vec<u8>, ids_b: Vec<u8> },
}

/// Two images and the exact correspondence between them.
#[derive(Clone, Debug, PartialEq)]
pub struct CorrespondencePair {
    pub a: RgbImage,
    pub b: RgbImage,
    pub truth: GroundTruth,
    /// Row-major over B: `true` where B's pixel shows a scene point that A shows too (a homography pair:
    /// `H^-1(q)` inside A; a scene pair: the layer point behind `q` is visible in A).
    pub valid_b: Vec<bool>,
}

fn inside(p: (f64, f64), w: u32, h: u32) -> bool {
    w > 0 && h > 0 && p.0 >= 0.0 && p.1 >= 0.0 && p.0 <= (w - 1) as f64 && p.1 <= (h - 1) as f64
}

/// The pixels with a non-zero bilinear weight at `p` (1, 2 or 4 of them), which must be inside the image.
fn support(p: (f64, f64), w: u32, h: u32) -> impl Iterator<Item = usize> {
    let (x0, y0) = (p.0.floor() as usize, p.1.floor() as usize);
    let xs = if p.0 > x0 as f64 && x0 + 1 < w as usize { vec![x0, x0 + 1] } else { vec![x0] };
    let ys = if p.1 > y0 as f64 && y0 + 1 < h as usize { vec![y0, y0 + 1] } else { vec![y0] };
    ys.into_iter().flat_map(move |y| xs.clone().into_iter().map(move |x| y * w as usize + x))
}

/// The layer all of `ids`' pixels around `p` show, or `None` when they differ (`p` on a layer edge).
fn layer_at(ids: &[u8], p: (f64, f64), w: u32, h: u32) -> Option<u8> {
    let mut layers = support(p, w, h).map(|i| ids.get(i).copied());
    let first = layers.next()??;
    layers.all(|l| l == Some(first)).then_some(first)
}

impl CorrespondencePair {
    /// A pair related by the homography `a_to_b` (A's pixel coordinates to B's); computes [`Self::valid_b`].
    pub fn from_homography(a: RgbImage, b: RgbImage, a_to_b: Homography) -> CorrespondencePair {
        let inverse = a_to_b.inverse();
        let (wa, ha) = (a.width(), a.height());
        let valid_b = (0..b.height())
            .flat_map(|y| (0..b.width()).map(move |x| (x as f64, y as f64)))
            .map(|q| inverse.apply(q.0, q.1).is_some_and(|p| inside(p, wa, ha)))
            .collect();
        CorrespondencePair { a, b, truth: GroundTruth::Homography { a_to_b }, valid_b }
    }

    /// A synthetic layered scene as a correspondence pair. Fails when the ids do not cover the frames or
    /// name a layer without a motion (a hand-built `SyntheticPair`; [`generate`] never does this).
    pub fn from_scene(pair: SyntheticPair) -> Result<CorrespondencePair> {
        let SyntheticPair { frame_a, frame_b, ids_a, ids_b, motions, .. } = pair;
        let (w, h) = (frame_a.width(), frame_a.height());
        let n = w as usize * h as usize;
        if frame_b.dimensions() != (w, h) || ids_a.len() != n || ids_b.len() != n {
            return Err(Error::Mismatch {
                message: format!(
                    "scene pair: frames {}x{} and {}x{} with {} and {} layer ids: frames must have one size and \
                     one id per pixel",
                    w,
                    h,
                    frame_b.width(),
                    frame_b.height(),
                    ids_a.len(),
                    ids_b.len()
                ),
            });
        }
        if let Some(&id) = ids_a.iter().chain(&ids_b).find(|&&id| id as usize >= motions.len()) {
            return Err(Error::Mismatch {
                message: format!("scene pair: layer id {id} has no motion ({} motions)", motions.len()),
            });
        }
        let inverses: Vec<Affine> = motions.iter().map(Affine::inverse).collect();
        let valid_b = (0..n)
            .map(|i| {
                let q = ((i % w as usize) as f64, (i / w as usize) as f64);
                let layer = ids_b[i];
                let p = inverses[layer as usize].apply(q.0, q.1);
                inside(p, w, h) && layer_at(&ids_a, p, w, h) == Some(layer)
            })
            .collect();
        Ok(CorrespondencePair { a: frame_a, b: frame_b, truth: GroundTruth::Layers { motions, ids_a, ids_b }, valid_b })
    }

    /// The point of B showing the scene point at `(x, y)` of A, or `None` when `(x, y)` is outside A, its
    /// image is outside B, or (scene pairs) it is hidden in B or lies on a layer edge in either image.
    pub fn correspond(&self, x: f64, y: f64) -> Option<(f64, f64)> {
        let (wa, ha) = self.a.dimensions();
        let (wb, hb) = self.b.dimensions();
        if !inside((x, y), wa, ha) {
            return None;
        }
        match &self.truth {
            GroundTruth::Homography { a_to_b } => a_to_b.apply(x, y).filter(|&q| inside(q, wb, hb)),
            GroundTruth::Layers { motions, ids_a, ids_b } => {
                let layer = layer_at(ids_a, (x, y), wa, ha)?;
                let q = motions.get(layer as usize)?.apply(x, y);
                (inside(q, wb, hb) && layer_at(ids_b, q, wb, hb) == Some(layer)).then_some(q)
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// homography pairs

/// Photometric change applied to each image of a homography pair independently (so A and B differ by two
/// such changes): `v -> clamp(((gain_c v - 0.5) contrast + 0.5)^gamma + brightness)`, then an optional
/// Gaussian blur and additive Gaussian noise. Ranges are `(min, max)`; gains, contrast and gamma are drawn
/// log-uniformly, the brightness uniformly in `[-brightness, brightness]`.
#[derive(Clone, Debug, PartialEq)]
pub struct PhotometricConfig {
    /// Per-channel multiplicative gain (white balance), in (0, 10].
    pub gain: (f64, f64),
    /// Contrast factor about mid-grey, in (0, 10].
    pub contrast: (f64, f64),
    /// Gamma exponent, in [0.05, 20].
    pub gamma: (f64, f64),
    /// Largest additive brightness change, intensity units (1 = full scale), in [0, 1].
    pub brightness: f64,
    /// Probability of a Gaussian blur, in [0, 1], and its sigma range in pixels, within [0, 10].
    pub blur_prob: f64,
    pub blur_sigma: (f64, f64),
    /// Range of the standard deviation of the additive noise, intensity units, within [0, 1].
    pub noise_std: (f64, f64),
}

impl Default for PhotometricConfig {
    /// Day-to-day illumination and camera differences: gains 0.85-1.18, contrast 0.7-1.4, gamma 0.75-1.33,
    /// brightness +-0.1, blur in 20 % of images (sigma 0.3-1.2 px), noise sigma up to 0.02.
    fn default() -> Self {
        PhotometricConfig {
            gain: (0.85, 1.18),
            contrast: (0.7, 1.4),
            gamma: (0.75, 1.33),
            brightness: 0.1,
            blur_prob: 0.2,
            blur_sigma: (0.3, 1.2),
            noise_std: (0.0, 0.02),
        }
    }
}

impl PhotometricConfig {
    /// No change at all.
    pub fn none() -> Self {
        PhotometricConfig {
            gain: (1.0, 1.0),
            contrast: (1.0, 1.0),
            gamma: (1.0, 1.0),
            brightness: 0.0,
            blur_prob: 0.0,
            blur_sigma: (0.0, 0.0),
            noise_std: (0.0, 0.0),
        }
    }

    /// Checks every field; the error names the offending one.
    pub fn validate(&self) -> Result<()> {
        check_range("photometric.gain", self.gain, (1e-6, 10.0))?;
        check_range("photometric.contrast", self.contrast, (1e-6, 10.0))?;
        check_range("photometric.gamma", self.gamma, (0.05, 20.0))?;
        check_value("photometric.brightness", self.brightness, 0.0, 1.0)?;
        check_value("photometric.blur_prob", self.blur_prob, 0.0, 1.0)?;
        check_range("photometric.blur_sigma", self.blur_sigma, (0.0, 10.0))?;
        check_range("photometric.noise_std", self.noise_std, (0.0, 1.0))
    }

    /// Applies a change drawn from `s` to an interleaved RGB image in [0, 1].
    fn apply(&self, rgb: &mut [f32], w: usize, h: usize, s: &mut Sampler) {
        let gain = [0; 3].map(|_| s.log_range(self.gain.0, self.gain.1));
        let contrast = s.log_range(self.contrast.0, self.contrast.1);
        let gamma = s.log_range(self.gamma.0, self.gamma.1);
        let brightness = s.range(-self.brightness, self.brightness);
        for px in rgb.chunks_exact_mut(3) {
            for (v, g) in px.iter_mut().zip(gain) {
                let x = ((*v as f64 * g - 0.5) * contrast + 0.5).clamp(0.0, 1.0);
                *v = (x.powf(gamma) + brightness).clamp(0.0, 1.0) as f32;
            }
        }
        if self.blur_prob > 0.0 && s.unit() < self.blur_prob {
            let sigma = s.range(self.blur_sigma.0, self.blur_sigma.1);
            for c in 0..3 {
                gaussian_blur(&mut rgb[c..], w, h, 3, sigma);
            }
        }
        let noise = s.range(self.noise_std.0, self.noise_std.1);
        if noise > 0.0 {
            for v in rgb.iter_mut() {
                *v = (*v as f64 + noise * s.gaussian()).clamp(0.0, 1.0) as f32;
            }
        }
    }
}

/// The random homography and rendering of a homography pair. The homography maps A to B as
/// `H = T(c + t) [s R(theta) K(a, h)] P(v) T(-c)`, about the image centre `c`:
/// - `P(v)`: perspective `(x, y) -> (x, y) / (1 + v . (x, y) / d)`, `d` the half-diagonal, `|v| <=
///   max_perspective`, so the homogeneous scale stays within `1 +- max_perspective` over the image;
/// - `K(a, h) = [[e^a, h], [0, e^-a]]`: anisotropy and shear, `|a|, |h| <= max_shear`;
/// - `R(theta)`: rotation, `|theta| <= max_rotation_deg`; `s`: scale (> 1 magnifies in B), log-uniform in
///   `scale_range`;
/// - `t`: translation, each component up to `max_translation` of that side.
///
/// A draw is kept when at least `min_inside` of B's pixels show points of A; otherwise the translation is
/// halved and the scale raised by 10 % (B zooms in, showing less of the plane) up to 30 times, then the
/// identity is used. A crop of `width x height` at the centre of a source `2 * margin` larger each way is A;
/// B is drawn from the whole source, so its pixels outside A show real texture (not marked valid).
#[derive(Clone, Debug, PartialEq)]
pub struct WarpConfig {
    /// Size of both images, at least 1 x 1 (up to about 5400 x 5400: see [`MAX_PIXELS`]).
    pub width: usize,
    pub height: usize,
    /// Largest rotation magnitude, degrees, in [0, 180].
    pub max_rotation_deg: f64,
    /// Scale range, within [0.1, 10].
    pub scale_range: (f64, f64),
    /// Largest anisotropy and shear, in [0, 1].
    pub max_shear: f64,
    /// Largest perspective distortion, in [0, 0.9].
    pub max_perspective: f64,
    /// Largest translation as a fraction of each side, in [0, 1].
    pub max_translation: f64,
    /// Smallest fraction of B's pixels that must show A, in [0, 1].
    pub min_inside: f64,
    /// Photometric change of each image.
    pub photometric: PhotometricConfig,
}

impl Default for WarpConfig {
    /// 256 x 256 pairs with viewpoint changes like the evaluation pairs' milder ones: rotation +-30 degrees,
    /// scale 0.67-1.5, shear 0.15, perspective 0.3, translation 10 %, at least 60 % of B inside A, and the
    /// default photometric change.
    fn default() -> Self {
        WarpConfig {
            width: 256,
            height: 256,
            max_rotation_deg: 30.0,
            scale_range: (0.67, 1.5),
            max_shear: 0.15,
            max_perspective: 0.3,
            max_translation: 0.1,
            min_inside: 0.6,
            photometric: PhotometricConfig::default(),
        }
    }
}

impl WarpConfig {
    /// Size of the source image [`warp_pair`] renders: the pair's size plus [`margin`] on every side.
    pub fn source_size(&self) -> (usize, usize) {
        let m = 2 * margin(self.width, self.height);
        (self.width.saturating_add(m), self.height.saturating_add(m))
    }

    /// Checks every field; the error names the offending one and the accepted range.
    pub fn validate(&self) -> Result<()> {
        if self.width == 0 || self.height == 0 {
            return Err(Error::InvalidParam {
                op: OP,
                message: format!("warp size {}x{}: width and height must be at least 1", self.width, self.height),
            });
        }
        // The source image (A plus its margin on every side) must fit one synthetic sample.
        let m = 2 * margin(self.width, self.height);
        let source = self.width.checked_add(m).zip(self.height.checked_add(m));
        if source.and_then(|(w, h)| w.checked_mul(h)).is_none_or(|n| n > MAX_PIXELS) {
            return Err(Error::InvalidParam {
                op: OP,
                message: format!(
                    "warp size {}x{} needs a source of {m} more pixels each way, more than the {MAX_PIXELS}-pixel \
                     limit: use a smaller size",
                    self.width, self.height
                ),
            });
        }
        check_value("max_rotation_deg", self.max_rotation_deg, 0.0, 180.0)?;
        check_range("scale_range", self.scale_range, (0.1, 10.0))?;
        check_value("max_shear", self.max_shear, 0.0, 1.0)?;
        check_value("max_perspective", self.max_perspective, 0.0, 0.9)?;
        check_value("max_translation", self.max_translation, 0.0, 1.0)?;
        check_value("min_inside", self.min_inside, 0.0, 1.0)?;
        self.photometric.validate()
    }
}

/// Margin of the source around A, pixels: a quarter of the larger side (capped so huge sizes stay bounded).
pub fn margin(width: usize, height: usize) -> usize {
    (width.max(height) / 4).min(4096)
}

/// Where the source images of homography pairs come from.
#[derive(Clone, Debug)]
pub enum SourceImages {
    /// Frame A of a synthetic layered scene of this configuration (its size is replaced by the source size).
    Procedural(SyntheticConfig),
    /// Random crops (random zoom, position) of the user's photos, e.g. from
    /// [`crate::data::synthetic::load_texture_folder`].
    Photos(Vec<Arc<PhotoSource>>),
}

/// An interleaved RGB image in [0, 1].
struct RgbF {
    w: usize,
    h: usize,
    rgb: Vec<f32>,
}

impl RgbF {
    /// Bilinear sample at `p`, which must be inside the image (clamped for rounding).
    fn sample(&self, x: f64, y: f64) -> [f32; 3] {
        let x = x.clamp(0.0, (self.w - 1) as f64);
        let y = y.clamp(0.0, (self.h - 1) as f64);
        let (x0, y0) = (x.floor() as usize, y.floor() as usize);
        let (x1, y1) = ((x0 + 1).min(self.w - 1), (y0 + 1).min(self.h - 1));
        let (fx, fy) = ((x - x0 as f64) as f32, (y - y0 as f64) as f32);
        let at = |xx: usize, yy: usize, c: usize| self.rgb[3 * (yy * self.w + xx) + c];
        [0, 1, 2].map(|c| {
            let top = at(x0, y0, c) * (1.0 - fx) + at(x1, y0, c) * fx;
            let bottom = at(x0, y1, c) * (1.0 - fx) + at(x1, y1, c) * fx;
            top * (1.0 - fy) + bottom * fy
        })
    }

    fn to_rgb8(&self) -> RgbImage {
        let data = self.rgb.iter().map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8).collect();
        // The buffer has exactly 3 * w * h values and the sizes were validated to fit u32.
        RgbImage::from_raw(self.w as u32, self.h as u32, data).unwrap_or_default()
    }
}

impl SourceImages {
    /// A `w x h` source image for `seed` (e.g. of [`WarpConfig::source_size`], for [`warp_source`]). Fails
    /// on a zero or oversized size, an invalid procedural configuration, or no usable photo.
    pub fn render(&self, w: usize, h: usize, seed: u64) -> Result<RgbImage> {
        if w == 0 || h == 0 || w.checked_mul(h).is_none_or(|n| n > MAX_PIXELS) {
            return Err(Error::InvalidParam {
                op: OP,
                message: format!("a {w}x{h} source image: sizes from 1x1 to {MAX_PIXELS} pixels are accepted"),
            });
        }
        Ok(self.image(w, h, seed)?.to_rgb8())
    }

    fn image(&self, w: usize, h: usize, seed: u64) -> Result<RgbF> {
        match self {
            SourceImages::Procedural(cfg) => {
                let cfg = SyntheticConfig { width: w, height: h, ..cfg.clone() };
                let frame = generate(&cfg, seed)?.frame_a;
                Ok(RgbF { w, h, rgb: frame.as_raw().iter().map(|&v| v as f32 / 255.0).collect() })
            }
            SourceImages::Photos(photos) => {
                if photos.is_empty() {
                    return Err(Error::InvalidParam { op: OP, message: "no source photos given".into() });
                }
                let mut s = Sampler::new(seed ^ 0x5048_4f54_4f53_2121);
                let photo = &photos[(s.next_u64() % photos.len() as u64) as usize];
                if photo.width < 2 || photo.height < 2 || photo.rgb.len() != 3 * photo.width * photo.height {
                    return Err(Error::InvalidParam {
                        op: OP,
                        message: format!(
                            "a source photo of {}x{} pixels with {} values: photos need at least 2x2 pixels and 3 \
                             values per pixel",
                            photo.width,
                            photo.height,
                            photo.rgb.len()
                        ),
                    });
                }
                let p = RgbF { w: photo.width, h: photo.height, rgb: photo.rgb.clone() };
                // Photo pixels per output pixel: at most what fits the whole crop in the photo, at least half
                // of that (a random zoom of up to 2x into the photo).
                let fit = ((p.w - 1) as f64 / w.max(2).saturating_sub(1) as f64)
                    .min((p.h - 1) as f64 / h.max(2).saturating_sub(1) as f64);
                let k = s.range(0.5 * fit, fit);
                let ox = s.range(0.0, ((p.w - 1) as f64 - k * (w.max(1) - 1) as f64).max(0.0));
                let oy = s.range(0.0, ((p.h - 1) as f64 - k * (h.max(1) - 1) as f64).max(0.0));
                let mut rgb = Vec::with_capacity(3 * w * h);
                for y in 0..h {
                    for x in 0..w {
                        rgb.extend(p.sample(ox + k * x as f64, oy + k * y as f64));
                    }
                }
                Ok(RgbF { w, h, rgb })
            }
        }
    }
}

/// Draws the homography of a pair (see [`WarpConfig`]); `cfg` is valid.
fn draw_homography(cfg: &WarpConfig, s: &mut Sampler) -> Homography {
    let (w, h) = (cfg.width as f64, cfg.height as f64);
    let c = ((w - 1.0) / 2.0, (h - 1.0) / 2.0);
    let d = 0.5 * (w - 1.0).hypot(h - 1.0);
    let angle = s.range(-cfg.max_rotation_deg, cfg.max_rotation_deg).to_radians();
    let mut scale = s.log_range(cfg.scale_range.0, cfg.scale_range.1);
    let aniso = s.range(-cfg.max_shear, cfg.max_shear);
    let shear = s.range(-cfg.max_shear, cfg.max_shear);
    let (pdir, plen) = (s.range(0.0, std::f64::consts::TAU), cfg.max_perspective * s.unit().sqrt());
    let v = if d > 0.0 { (plen * pdir.cos() / d, plen * pdir.sin() / d) } else { (0.0, 0.0) };
    let mut t = (s.range(-1.0, 1.0) * cfg.max_translation * w, s.range(-1.0, 1.0) * cfg.max_translation * h);
    let build = |scale: f64, t: (f64, f64)| -> Option<Homography> {
        let lin = Affine::about([0.0, 0.0], angle, scale, aniso, shear, [0.0, 0.0]).a;
        // T(c + t) [lin 0; 0 1] P T(-c), with P = [[1, 0, 0], [0, 1, 0], [vx, vy, 1]].
        let centred = [[1.0, 0.0, -c.0], [0.0, 1.0, -c.1], [0.0, 0.0, 1.0]];
        let p = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [v.0, v.1, 1.0]];
        let l = [[lin[0][0], lin[0][1], 0.0], [lin[1][0], lin[1][1], 0.0], [0.0, 0.0, 1.0]];
        let back = [[1.0, 0.0, c.0 + t.0], [0.0, 1.0, c.1 + t.1], [0.0, 0.0, 1.0]];
        let h = [centred, p, l, back]
            .iter()
            .try_fold(Homography::identity(), |acc, m| Homography::new(*m).ok().map(|m| acc.then(&m)))?;
        Some(h)
    };
    // Fraction of B (on a grid of at most 32 x 32 pixel centres) whose point of A lies inside A.
    let inside_fraction = |hom: &Homography| -> f64 {
        let inv = hom.inverse();
        let (nx, ny) = (cfg.width.min(32), cfg.height.min(32));
        let mut hits = 0;
        for j in 0..ny {
            for i in 0..nx {
                let qx = if nx > 1 { i as f64 * (w - 1.0) / (nx - 1) as f64 } else { 0.0 };
                let qy = if ny > 1 { j as f64 * (h - 1.0) / (ny - 1) as f64 } else { 0.0 };
                if inv.apply(qx, qy).is_some_and(|p| inside(p, cfg.width as u32, cfg.height as u32)) {
                    hits += 1;
                }
            }
        }
        hits as f64 / (nx * ny) as f64
    };
    for _ in 0..30 {
        if let Some(hom) = build(scale, t) {
            if inside_fraction(&hom) >= cfg.min_inside {
                return hom;
            }
        }
        t = (t.0 * 0.5, t.1 * 0.5);
        scale *= 1.1;
    }
    Homography::identity()
}

/// A homography pair for `seed` (see the module documentation and [`WarpConfig`]): A is a crop of a source
/// image, B the source seen through a random homography; [`CorrespondencePair::valid_b`] marks B's pixels
/// that show A. Rendering the source dominates the cost (a procedural source of a 256 x 256 pair is a
/// 384 x 384 scene): to draw several homographies per source, render it once with [`SourceImages::render`]
/// and call [`warp_source`]. Fails only on an invalid configuration or an unusable source.
pub fn warp_pair(source: &SourceImages, cfg: &WarpConfig, seed: u64) -> Result<CorrespondencePair> {
    cfg.validate()?;
    let (sw, sh) = cfg.source_size();
    warp_source(&source.render(sw, sh, seed)?, cfg, seed)
}

/// A homography pair from a given source image (of at least `cfg.width x cfg.height` pixels, ideally
/// [`WarpConfig::source_size`]): A is its centred `cfg.width x cfg.height` crop, B the source seen through the
/// homography drawn from `seed` (black, and not valid, where B looks past the source), then each image's
/// photometric change. [`warp_pair`] is `warp_source(render(source_size), cfg, seed)`.
pub fn warp_source(source: &RgbImage, cfg: &WarpConfig, seed: u64) -> Result<CorrespondencePair> {
    cfg.validate()?;
    let (w, h) = (cfg.width, cfg.height);
    let (sw, sh) = (source.width() as usize, source.height() as usize);
    if sw < w || sh < h {
        return Err(Error::Mismatch {
            message: format!("a {sw}x{sh} source image cannot hold the {w}x{h} image A of a warp pair"),
        });
    }
    let src = RgbF { w: sw, h: sh, rgb: source.as_raw().iter().map(|&v| v as f32 / 255.0).collect() };
    let (ox, oy) = ((sw - w) / 2, (sh - h) / 2);
    let mut s = Sampler::new(seed ^ 0x5741_5250_2048_2121);
    let a_to_b = draw_homography(cfg, &mut s);
    let b_to_a = a_to_b.inverse();

    let mut a = RgbF { w, h, rgb: Vec::with_capacity(3 * w * h) };
    for y in 0..h {
        let row = 3 * ((y + oy) * sw + ox);
        a.rgb.extend_from_slice(&src.rgb[row..row + 3 * w]);
    }
    let mut b = RgbF { w, h, rgb: Vec::with_capacity(3 * w * h) };
    for y in 0..h {
        for x in 0..w {
            // B's pixel q shows A's point H^-1(q), i.e. the source point H^-1(q) + (ox, oy).
            let colour = b_to_a
                .apply(x as f64, y as f64)
                .map(|p| (p.0 + ox as f64, p.1 + oy as f64))
                .filter(|&p| inside(p, sw as u32, sh as u32))
                .map_or([0.0; 3], |p| src.sample(p.0, p.1));
            b.rgb.extend(colour);
        }
    }
    let mut photometric = Sampler::new(seed ^ 0x5048_4f54_4f20_4142);
    cfg.photometric.apply(&mut a.rgb, w, h, &mut photometric);
    cfg.photometric.apply(&mut b.rgb, w, h, &mut photometric);
    Ok(CorrespondencePair::from_homography(a.to_rgb8(), b.to_rgb8(), a_to_b))
}

/// A pair from the synthetic layered scene of `cfg` and `seed` ([`generate`]); its photometric changes are
/// `cfg`'s own (`brightness_jitter`, `contrast_jitter`, `noise_std`, applied to frame B).
pub fn scene_pair(cfg: &SyntheticConfig, seed: u64) -> Result<CorrespondencePair> {
    CorrespondencePair::from_scene(generate(cfg, seed)?)
}

// ---------------------------------------------------------------------------------------------------------
// sampling correspondences

/// How [`sample_correspondences`] draws points.
#[derive(Clone, Debug, PartialEq)]
pub struct PointSampling {
    /// Correspondences wanted per pair (fewer are returned when the pair has no room for more).
    pub count: usize,
    /// Two sampled points are at least this far apart in A and in B, pixels (finite, >= 0): any sample is a
    /// valid negative for any other. Hard-negative mining within a pair relies on it.
    pub min_distance_px: f64,
    /// Sampled points stay at least this far inside both images, pixels (finite, >= 0), e.g. half a patch.
    pub margin_px: f64,
}

impl Default for PointSampling {
    /// 128 correspondences at least 8 px apart (twice the descriptor grid's stride of 4), no margin.
    fn default() -> Self {
        PointSampling { count: 128, min_distance_px: 8.0, margin_px: 0.0 }
    }
}

/// Occupancy grid for minimum-distance tests: cells of `min_distance` pixels, each holding point indices.
struct Grid {
    cell: f64,
    cols: usize,
    cells: Vec<Vec<(f64, f64)>>,
}

impl Grid {
    fn new(w: u32, h: u32, min_distance: f64) -> Grid {
        let cell = min_distance.max(1.0);
        let cols = ((w as f64 / cell).ceil() as usize).clamp(1, 4096);
        let rows = ((h as f64 / cell).ceil() as usize).clamp(1, 4096);
        Grid { cell, cols, cells: vec![Vec::new(); cols * rows] }
    }
    fn index(&self, p: (f64, f64)) -> (usize, usize) {
        let rows = self.cells.len() / self.cols;
        (((p.0 / self.cell).max(0.0) as usize).min(self.cols - 1), ((p.1 / self.cell).max(0.0) as usize).min(rows - 1))
    }
    /// No stored point is closer than `d` to `p`.
    fn clear(&self, p: (f64, f64), d: f64) -> bool {
        let (cx, cy) = self.index(p);
        let rows = self.cells.len() / self.cols;
        // With cells of at least `d` (or 1 px when d < 1, then d < cell) the neighbours are within one cell.
        let reach = (d / self.cell).ceil().max(1.0) as usize;
        for y in cy.saturating_sub(reach)..=(cy + reach).min(rows - 1) {
            for x in cx.saturating_sub(reach)..=(cx + reach).min(self.cols - 1) {
                if self.cells[y * self.cols + x].iter().any(|q| (q.0 - p.0).hypot(q.1 - p.1) < d) {
                    return false;
                }
            }
        }
        true
    }
    fn insert(&mut self, p: (f64, f64)) {
        let (x, y) = self.index(p);
        self.cells[y * self.cols + x].push(p);
    }
}

/// Draws up to `cfg.count` correspondences of `pair` by dart throwing: uniform random points of A (inside its
/// margin) whose point of B exists ([`CorrespondencePair::correspond`]) and lies inside B's margin, each at
/// least `min_distance_px` from every earlier sample in A and in B. Stops after `20 * count + 100` darts, so
/// a pair with little overlap yields fewer. Fails only on an invalid `cfg`.
pub fn sample_correspondences(pair: &CorrespondencePair, cfg: &PointSampling, seed: u64) -> Result<Vec<PointPair>> {
    check_value("min_distance_px", cfg.min_distance_px, 0.0, 1e6)?;
    check_value("margin_px", cfg.margin_px, 0.0, 1e6)?;
    let (wa, ha) = pair.a.dimensions();
    let (wb, hb) = pair.b.dimensions();
    let mut out = Vec::new();
    let (lo_x, hi_x) = (cfg.margin_px, wa as f64 - 1.0 - cfg.margin_px);
    let (lo_y, hi_y) = (cfg.margin_px, ha as f64 - 1.0 - cfg.margin_px);
    if cfg.count == 0 || wa == 0 || ha == 0 || wb == 0 || hb == 0 || hi_x < lo_x || hi_y < lo_y {
        return Ok(out);
    }
    let in_margin_b = |q: (f64, f64)| {
        q.0 >= cfg.margin_px
            && q.1 >= cfg.margin_px
            && q.0 <= wb as f64 - 1.0 - cfg.margin_px
            && q.1 <= hb as f64 - 1.0 - cfg.margin_px
    };
    let (mut grid_a, mut grid_b) = (Grid::new(wa, ha, cfg.min_distance_px), Grid::new(wb, hb, cfg.min_distance_px));
    let mut s = Sampler::new(seed ^ 0x5341_4d50_4c45_2121);
    let darts = cfg.count.saturating_mul(20).saturating_add(100);
    for _ in 0..darts {
        if out.len() == cfg.count {
            break;
        }
        let p = (s.range(lo_x, hi_x), s.range(lo_y, hi_y));
        let Some(q) = pair.correspond(p.0, p.1) else { continue };
        if !in_margin_b(q) || !grid_a.clear(p, cfg.min_distance_px) || !grid_b.clear(q, cfg.min_distance_px) {
            continue;
        }
        grid_a.insert(p);
        grid_b.insert(q);
        out.push(PointPair { a: p, b: q });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------------------
// helpers

/// `value` must be finite and in `[lo, hi]`.
fn check_value(field: &str, value: f64, lo: f64, hi: f64) -> Result<()> {
    if value.is_finite() && (lo..=hi).contains(&value) {
        return Ok(());
    }
    Err(Error::InvalidParam { op: OP, message: format!("{field} must be a finite value in [{lo}, {hi}], got {value}") })
}

/// `range` must be ordered with both ends finite and in `[limits.0, limits.1]`.
fn check_range(field: &str, range: (f64, f64), limits: (f64, f64)) -> Result<()> {
    let ok = |v: f64| v.is_finite() && (limits.0..=limits.1).contains(&v);
    if ok(range.0) && ok(range.1) && range.0 <= range.1 {
        return Ok(());
    }
    Err(Error::InvalidParam {
        op: OP,
        message: format!(
            "{field} ({}, {}) must be ordered with both ends finite and in [{}, {}]",
            range.0, range.1, limits.0, limits.1
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_stay_mostly_inside() {
        let cfg = WarpConfig { width: 64, height: 48, ..WarpConfig::default() };
        let mut non_identity = 0;
        for seed in 0..40 {
            let mut s = Sampler::new(seed);
            let h = draw_homography(&cfg, &mut s);
            if h != Homography::identity() {
                non_identity += 1;
            }
            let inv = h.inverse();
            let mut hits = 0;
            for y in 0..48 {
                for x in 0..64 {
                    hits += inv.apply(x as f64, y as f64).is_some_and(|p| inside(p, 64, 48)) as usize;
                }
            }
            // The draw is accepted on a 32 x 32 grid; the full pixel count can differ by a grid cell's share.
            assert!(hits as f64 / (64.0 * 48.0) >= cfg.min_inside - 0.05, "seed {seed}: {hits}");
        }
        assert!(non_identity >= 38, "{non_identity} of 40 draws were not the identity");
    }

    #[test]
    fn support_and_layers() {
        let ids = vec![0u8, 0, 1, 0, 0, 1];
        assert_eq!(layer_at(&ids, (0.5, 0.5), 3, 2), Some(0));
        assert_eq!(layer_at(&ids, (1.5, 0.0), 3, 2), None);
        assert_eq!(layer_at(&ids, (2.0, 1.0), 3, 2), Some(1));
    }
}
