//! FlyingChairs-style synthetic training pairs with exact ground truth (Dosovitskiy et al., "FlowNet",
//! ICCV 2015, §5): a textured background and several textured foreground objects, each under its own random
//! affine motion (translation, rotation, scaling), the background under another.
//!
//! Scene model. Frame A is the scene itself: object `i` (1-based; a larger index lies on top) covers the
//! plane region `S_i` and carries the procedural texture `T_i`; the background (id 0) covers everything with
//! `T_0`. Each layer `i` has a motion `M_i`, an affine map of the plane. As in FlyingChairs, an object's
//! motion is its own similarity transform followed by the background's, `M_i = M_0 ∘ R_i`, so objects move
//! with the background plus their own motion.
//!
//! Rendering by inverse mapping (pixel centres at integer coordinates, as in [`Flow`]):
//! - frame A at pixel `p`: the top-most `i` with `p ∈ S_i` (else 0), colour `T_i(p)`;
//! - frame B at pixel `q`: the top-most `i` with `M_i^{-1}(q) ∈ S_i` (else 0), colour `T_i(M_i^{-1}(q))`.
//!
//! Textures ([`super::texture`]) are functions defined on the whole plane: 1/f fractal noise, sharp
//! stripes, checkers and cells, colour gradients, waves and blobs, mixtures of two, and optionally crops of
//! the user's photos. Frame B samples them exactly at the transformed coordinates: there is no resampling
//! error (photo textures interpolate their own pixels), only 8-bit quantisation. Layer edges are not
//! anti-aliased, so every pixel belongs to exactly one layer and its flow is unambiguous.
//!
//! Motions are affine per layer: rotation, scaling, shear and anisotropy about the layer centre, then a
//! translation; every translation of a sample is multiplied by one per-sample factor, so one configuration
//! gives both sub-pixel and ~100 px scenes.
//!
//! Ground truth: `flow(p) = M_i(p) - p` for the layer `i` that frame A shows at `p` (u = x-motion,
//! v = y-motion, frame A -> frame B, in pixels). Pixels that leave the frame or become occluded in B keep
//! their true flow; [`SyntheticPair::ids_a`] / [`SyntheticPair::ids_b`] give the layer at every pixel of
//! each frame, so occlusion can be computed exactly.
//!
//! Optional photometric changes (contrast and brightness jitter, Gaussian noise) apply to frame B only and
//! are drawn from a random stream separate from the geometry's, so turning them on or off leaves frame A,
//! the flow and the layer ids of a seed unchanged.

use crate::data::Rng;
use crate::flow::Flow;
use crate::io::{write_atomic, write_flo};
use crate::{Error, Result};
use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder, RgbImage};
use std::f64::consts::{PI, TAU};
use std::path::Path;
use std::sync::Arc;

use super::texture::{PhotoSource, Texture};

/// The `op` named in this module's errors.
const OP: &str = "synthetic";

/// Largest `width * height` a sample may have (8192 x 8192): a frame pair, its flow and ids then take about
/// 1 GiB, and a larger request is far more likely a mistake than a dataset.
pub const MAX_PIXELS: usize = 1 << 26;

/// Most foreground objects per sample: ids are stored as `u8` with 0 for the background.
pub const MAX_OBJECTS: usize = u8::MAX as usize;

/// Largest translation limit accepted, in pixels (keeps every flow well inside `f32` and the Middlebury
/// known-flow range).
pub const MAX_TRANSLATION_PX: f64 = 1e6;

/// Scale factors are accepted in this range (a layer shrinks or grows at most 100-fold between the frames).
pub const SCALE_LIMITS: (f64, f64) = (0.01, 100.0);

/// The per-sample motion scale multiplies rotations, log-scales and shears by at most this (translations by
/// the whole factor), so a large-motion scene moves far without deforming absurdly.
const MAX_DEFORM_SCALE: f64 = 1.5;

/// Object outlines stretch one axis by up to this factor and shrink the other by the same factor.
const MAX_ASPECT: f64 = 1.5;
/// Smooth outlines have radius `1 + sum_k a_k cos(k phi + phase_k)` with `sum_k |a_k| <= MAX_RIPPLE`.
const MAX_RIPPLE: f64 = 0.3;

/// Parameters of the generator; the seed is passed separately to [`generate`], so one configuration
/// describes a whole dataset. Ranges are `(min, max)`, inclusive, and must be ordered.
#[derive(Clone, Debug, PartialEq)]
pub struct SyntheticConfig {
    /// Frame width in pixels, at least 1.
    pub width: usize,
    /// Frame height in pixels, at least 1.
    pub height: usize,
    /// Number of foreground objects, drawn uniformly from `min..=max`; `max <= MAX_OBJECTS`.
    pub objects: (usize, usize),
    /// Mean radius of an object outline as a fraction of `min(width, height)`, drawn log-uniformly;
    /// both ends in `(0, 10]`.
    pub object_radius: (f64, f64),
    /// Largest length of an object's own translation, in pixels (the length is `max * r^1.5`, `r` uniform in
    /// [0, 1), so small motions are the most common, as in FlyingChairs' displacement histogram).
    pub max_translation_px: f64,
    /// Largest magnitude of an object's own rotation about its centre, in degrees (drawn as `max * r * |r|`,
    /// `r` uniform in [-1, 1)).
    pub max_rotation_deg: f64,
    /// Range of an object's own scale factor about its centre, drawn log-uniformly.
    pub scale_range: (f64, f64),
    /// Largest shear and anisotropy of an object's own motion: its linear part is `s R K` with
    /// `K = [[e^a, h], [0, e^-a]]`, `|a|, |h|` up to this (drawn like the rotation), in [0, 1].
    pub max_shear: f64,
    /// Largest length of the background translation, in pixels (drawn like `max_translation_px`).
    pub background_max_translation_px: f64,
    /// Largest magnitude of the background rotation about the image centre, in degrees.
    pub background_max_rotation_deg: f64,
    /// Range of the background scale factor about the image centre, drawn log-uniformly.
    pub background_scale_range: (f64, f64),
    /// Largest shear and anisotropy of the background motion (as `max_shear`).
    pub background_max_shear: f64,
    /// Range of a per-sample factor `f`, drawn log-uniformly, that multiplies every translation of the sample
    /// (background and objects), and by `min(f, 1.5)` every rotation angle, log-scale and shear: scenes of
    /// sub-pixel motion and scenes of ~100 px motion from one configuration. `(1, 1)` keeps the limits as they
    /// are. Both ends in [0.001, 1000].
    pub motion_scale: (f64, f64),
    /// Largest per-channel brightness offset added to frame B, in intensity units (1 = full scale), in [0, 1].
    pub brightness_jitter: f64,
    /// Largest relative contrast change of frame B about mid-grey: the factor is drawn from
    /// `[1 - jitter, 1 + jitter]`, jitter in [0, 1].
    pub contrast_jitter: f64,
    /// Standard deviation of Gaussian noise added to frame B, in intensity units (1 = full scale, so
    /// `2.0 / 255.0` is two 8-bit levels); at least 0.
    pub noise_std: f64,
    /// The user's photos to texture layers with (about half the textures when not empty; see
    /// [`load_texture_folder`]); empty = procedural textures only.
    pub photos: Vec<Arc<PhotoSource>>,
}

impl Default for SyntheticConfig {
    /// FlyingChairs-sized samples, 512 x 384, whose displacements cover both Middlebury's (sub-pixel to about
    /// 10 px) and Sintel's (tens of pixels, up to about 100): FlyingChairs-like object and background motions
    /// (translation, rotation, scaling, shear) with every translation multiplied by a per-sample factor drawn
    /// log-uniformly from [0.05, 4]. `corrflow gen --stats` prints the displacement histogram (README). No
    /// photometric changes (training applies its own augmentation, [`crate::data::augment`]).
    fn default() -> Self {
        SyntheticConfig {
            width: 512,
            height: 384,
            objects: (6, 14),
            object_radius: (0.05, 0.16),
            max_translation_px: 32.0,
            max_rotation_deg: 10.0,
            scale_range: (0.92, 1.08),
            background_max_translation_px: 16.0,
            background_max_rotation_deg: 2.0,
            background_scale_range: (0.97, 1.03),
            max_shear: 0.08,
            background_max_shear: 0.03,
            motion_scale: (0.05, 4.0),
            brightness_jitter: 0.0,
            contrast_jitter: 0.0,
            noise_std: 0.0,
            photos: Vec::new(),
        }
    }
}

impl SyntheticConfig {
    /// A small preset for tests and quick experiments: 96 x 64 frames, 2 to 5 objects, similarity motions
    /// scaled to the frame size (measured over 24 samples: median flow 1.6 px, 99th percentile 7.6, largest 10.6).
    pub fn small() -> Self {
        SyntheticConfig {
            width: 96,
            height: 64,
            objects: (2, 5),
            object_radius: (0.12, 0.28),
            max_translation_px: 8.0,
            max_rotation_deg: 8.0,
            scale_range: (0.94, 1.06),
            background_max_translation_px: 4.0,
            background_max_rotation_deg: 2.0,
            background_scale_range: (0.98, 1.02),
            max_shear: 0.0,
            background_max_shear: 0.0,
            motion_scale: (1.0, 1.0),
            ..SyntheticConfig::default()
        }
    }

    /// Checks every field; the error names the offending field and the accepted range.
    pub fn validate(&self) -> Result<()> {
        let bad = |message: String| Err(Error::InvalidParam { op: OP, message });
        if self.width == 0 {
            return bad("width must be at least 1, got 0".into());
        }
        if self.height == 0 {
            return bad("height must be at least 1, got 0".into());
        }
        match self.width.checked_mul(self.height) {
            Some(n) if n <= MAX_PIXELS => {}
            _ => {
                return bad(format!(
                    "width x height = {} x {} exceeds the {MAX_PIXELS}-pixel limit of one sample",
                    self.width, self.height
                ))
            }
        }
        let (lo, hi) = self.objects;
        if lo > hi {
            return bad(format!("objects range ({lo}, {hi}) is not ordered (min > max)"));
        }
        if hi > MAX_OBJECTS {
            return bad(format!("objects max {hi} exceeds {MAX_OBJECTS} (ids are stored as u8, 0 = background)"));
        }
        check_range("object_radius", self.object_radius, (f64::MIN_POSITIVE, 10.0))?;
        check_value("max_translation_px", self.max_translation_px, 0.0, MAX_TRANSLATION_PX)?;
        check_value("max_rotation_deg", self.max_rotation_deg, 0.0, 180.0)?;
        check_range("scale_range", self.scale_range, SCALE_LIMITS)?;
        check_value("background_max_translation_px", self.background_max_translation_px, 0.0, MAX_TRANSLATION_PX)?;
        check_value("background_max_rotation_deg", self.background_max_rotation_deg, 0.0, 180.0)?;
        check_range("background_scale_range", self.background_scale_range, SCALE_LIMITS)?;
        check_value("max_shear", self.max_shear, 0.0, 1.0)?;
        check_value("background_max_shear", self.background_max_shear, 0.0, 1.0)?;
        check_range("motion_scale", self.motion_scale, (1e-3, 1e3))?;
        if let Some(p) = self.photos.iter().find(|p| p.width < 2 || p.height < 2) {
            return bad(format!("texture photos must be at least 2 x 2 pixels, got {} x {}", p.width, p.height));
        }
        check_value("brightness_jitter", self.brightness_jitter, 0.0, 1.0)?;
        check_value("contrast_jitter", self.contrast_jitter, 0.0, 1.0)?;
        check_value("noise_std", self.noise_std, 0.0, 1.0)
    }

    /// An upper bound on the flow magnitude any sample of this configuration can contain, in pixels.
    ///
    /// For a linear part `A = s R(theta) K` (see [`SyntheticConfig::max_shear`]), `|A - I| <= |s R - I| +
    /// s |K - I|` ([`linear_gain`]). The background moves `p` by at most `|A_0 - I| * d + |t_0|` with `d` the
    /// half-diagonal and `t_0` at most the translation limit times the largest motion scale; an object pixel moves by `R_i` (at most
    /// `|A_i - I| * r_max + |t_i|`, `r_max` the largest outline radius) and then by the background motion of
    /// the moved point, whose distance from the image centre is at most `d` plus that amount.
    pub fn flow_bound(&self) -> f64 {
        let half_diagonal = 0.5 * (self.width as f64).hypot(self.height as f64);
        // The deformation factor lies in [d_lo, d_hi]; s^d then lies between the extremes of lo^d and hi^d.
        let (d_lo, d_hi) = (self.motion_scale.0.min(MAX_DEFORM_SCALE), self.motion_scale.1.min(MAX_DEFORM_SCALE));
        let scales = |(lo, hi): (f64, f64)| (lo.powf(d_lo).min(lo.powf(d_hi)), hi.powf(d_lo).max(hi.powf(d_hi)));
        let background_gain = linear_gain(
            scales(self.background_scale_range),
            self.background_max_rotation_deg * d_hi,
            self.background_max_shear * d_hi,
        );
        let object_gain = linear_gain(scales(self.scale_range), self.max_rotation_deg * d_hi, self.max_shear * d_hi);
        let r_max = self.object_radius.1 * self.width.min(self.height) as f64 * MAX_ASPECT * (1.0 + MAX_RIPPLE);
        let own = object_gain * r_max + self.max_translation_px * self.motion_scale.1;
        let background = |d: f64| background_gain * d + self.background_max_translation_px * self.motion_scale.1;
        background(half_diagonal).max(own + background(half_diagonal + own))
    }
}

/// An upper bound of `|s R(theta) K - I|` (operator norm) over `s` in `scales`, `|theta| <= max_deg` and
/// `K = [[e^a, h], [0, e^-a]]` with `|a|, |h| <= shear`: by the triangle inequality it is at most
/// `|s R - I| + s |K - I|`. For the scaled rotation `|s R - I| = sqrt(s^2 - 2 s cos(theta) + 1)`, convex in `s`
/// and growing with `|theta|`, so largest at an extreme scale and the largest angle; `|K - I|` is bounded by
/// its Frobenius norm at the largest `|a|` (both signs) and `|h|`.
fn linear_gain(scales: (f64, f64), max_deg: f64, shear: f64) -> f64 {
    let c = max_deg.to_radians().cos();
    let rotation = |s: f64| (s * s - 2.0 * s * c + 1.0).max(0.0).sqrt();
    let k = ((shear.exp() - 1.0).powi(2) + shear * shear + ((-shear).exp() - 1.0).powi(2)).sqrt();
    rotation(scales.0).max(rotation(scales.1)) + scales.1 * k
}

/// `value` must be finite and in `[lo, hi]`.
fn check_value(field: &str, value: f64, lo: f64, hi: f64) -> Result<()> {
    if value.is_finite() && (lo..=hi).contains(&value) {
        return Ok(());
    }
    Err(Error::InvalidParam { op: OP, message: format!("{field} must be a finite value in [{lo}, {hi}], got {value}") })
}

/// `range` must be ordered with both ends finite and in `[limits.0, limits.1]`.
fn check_range(field: &str, range: (f64, f64), limits: (f64, f64)) -> Result<()> {
    let (lo, hi) = range;
    let in_limits = |v: f64| v.is_finite() && (limits.0..=limits.1).contains(&v);
    if !in_limits(lo) || !in_limits(hi) {
        return Err(Error::InvalidParam {
            op: OP,
            message: format!("{field} ({lo}, {hi}) must have both ends finite and in [{}, {}]", limits.0, limits.1),
        });
    }
    if lo > hi {
        return Err(Error::InvalidParam {
            op: OP,
            message: format!("{field} ({lo}, {hi}) is not ordered (min > max)"),
        });
    }
    Ok(())
}

/// An affine map of the plane, `p -> a p + b`, in pixel coordinates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Affine {
    /// Row-major 2 x 2 linear part.
    pub a: [[f64; 2]; 2],
    /// Translation part.
    pub b: [f64; 2],
}

impl Affine {
    /// Rotation by `angle` (radians; positive turns +x towards +y, i.e. clockwise on screen) and scaling by
    /// `scale`, both about `centre`, then translation by `translation`:
    /// `p -> scale R(angle) (p - centre) + centre + translation`.
    pub fn similarity(centre: [f64; 2], angle: f64, scale: f64, translation: [f64; 2]) -> Affine {
        Affine::about(centre, angle, scale, 0.0, 0.0, translation)
    }

    /// The general layer motion: `p -> scale R(angle) K (p - centre) + centre + translation` with the
    /// anisotropy-and-shear matrix `K = [[e^aniso, shear], [0, e^-aniso]]` (area-preserving; `K = I` for 0, 0).
    pub fn about(centre: [f64; 2], angle: f64, scale: f64, aniso: f64, shear: f64, translation: [f64; 2]) -> Affine {
        let (s, c) = angle.sin_cos();
        let (ka, kd) = (aniso.exp(), (-aniso).exp());
        // (s R) K with R = [[c, -s], [s, c]], K = [[ka, shear], [0, kd]].
        let a = [[scale * c * ka, scale * (c * shear - s * kd)], [scale * s * ka, scale * (s * shear + c * kd)]];
        let b = [
            centre[0] + translation[0] - (a[0][0] * centre[0] + a[0][1] * centre[1]),
            centre[1] + translation[1] - (a[1][0] * centre[0] + a[1][1] * centre[1]),
        ];
        Affine { a, b }
    }

    /// The image of point `(x, y)`.
    pub fn apply(&self, x: f64, y: f64) -> (f64, f64) {
        (self.a[0][0] * x + self.a[0][1] * y + self.b[0], self.a[1][0] * x + self.a[1][1] * y + self.b[1])
    }

    /// The inverse map. The generator only builds similarities with scale > 0, which are invertible.
    pub fn inverse(&self) -> Affine {
        let [[a, b], [c, d]] = self.a;
        let det = a * d - b * c;
        let inv = [[d / det, -b / det], [-c / det, a / det]];
        let t = [-(inv[0][0] * self.b[0] + inv[0][1] * self.b[1]), -(inv[1][0] * self.b[0] + inv[1][1] * self.b[1])];
        Affine { a: inv, b: t }
    }

    /// `outer ∘ self`: first this map, then `outer`.
    pub fn then(&self, outer: &Affine) -> Affine {
        let m = |i: usize, j: usize| outer.a[i][0] * self.a[0][j] + outer.a[i][1] * self.a[1][j];
        let (bx, by) = outer.apply(self.b[0], self.b[1]);
        Affine { a: [[m(0, 0), m(0, 1)], [m(1, 0), m(1, 1)]], b: [bx, by] }
    }
}

/// One generated training sample.
#[derive(Clone, Debug, PartialEq)]
pub struct SyntheticPair {
    /// The first frame (the scene at rest), 8-bit RGB.
    pub frame_a: RgbImage,
    /// The second frame (every layer moved by its motion, then the optional photometric changes).
    pub frame_b: RgbImage,
    /// Exact forward flow of every pixel of frame A, in pixels: `flow(p) = motions[ids_a[p]](p) - p`.
    pub flow: Flow,
    /// Layer shown at each pixel of frame A, row-major: 0 = background, `i` = object `i` (larger on top).
    pub ids_a: Vec<u8>,
    /// Layer shown at each pixel of frame B, row-major, same numbering. A pixel `p` of A is visible in B at
    /// `q = p + flow(p)` when the B pixels around `q` show layer `ids_a[p]` (and `q` is inside the frame).
    pub ids_b: Vec<u8>,
    /// Motion of each layer from frame A to frame B: `motions[0]` the background, `motions[i]` object `i`.
    pub motions: Vec<Affine>,
}

impl SyntheticPair {
    /// Number of foreground objects in the scene (some may be hidden or outside the frame).
    pub fn object_count(&self) -> usize {
        self.motions.len().saturating_sub(1)
    }
}

/// Generates the sample for `seed`: the same configuration and seed always give the same bytes.
/// Fails only when `cfg` is invalid (see [`SyntheticConfig::validate`]).
pub fn generate(cfg: &SyntheticConfig, seed: u64) -> Result<SyntheticPair> {
    cfg.validate()?;
    let scene = Scene::sample(cfg, &mut Sampler::new(seed));
    let (width, height) = (cfg.width, cfg.height);
    let inverses: Vec<Affine> = scene.motions.iter().map(Affine::inverse).collect();

    // Frame A, its ids and the flow: identity motion, so layer and texture are evaluated at p itself.
    let mut frame_a = Vec::with_capacity(3 * width * height);
    let mut ids_a = Vec::with_capacity(width * height);
    let mut flow = Flow::zeros(width, height);
    for y in 0..height {
        for x in 0..width {
            let (px, py) = (x as f64, y as f64);
            let id = scene.top_layer(|_| (px, py));
            let (mx, my) = scene.motions[id].apply(px, py);
            flow.set(x, y, (mx - px) as f32, (my - py) as f32);
            ids_a.push(id as u8);
            frame_a.extend(quantize(scene.textures[id].eval(px, py)));
        }
    }

    // Frame B: pixel q shows layer i's scene point M_i^{-1}(q), for the top-most layer containing it.
    let photometric = Photometric::sample(cfg, seed);
    let mut noise = Sampler::new(seed ^ NOISE_STREAM);
    let mut frame_b = Vec::with_capacity(3 * width * height);
    let mut ids_b = Vec::with_capacity(width * height);
    for y in 0..height {
        for x in 0..width {
            let (qx, qy) = (x as f64, y as f64);
            let id = scene.top_layer(|i| inverses[i].apply(qx, qy));
            let (sx, sy) = inverses[id].apply(qx, qy);
            ids_b.push(id as u8);
            let colour = photometric.apply(scene.textures[id].eval(sx, sy), cfg.noise_std, &mut noise);
            frame_b.extend(quantize(colour));
        }
    }

    Ok(SyntheticPair {
        frame_a: rgb_image(width, height, frame_a)?,
        frame_b: rgb_image(width, height, frame_b)?,
        flow,
        ids_a,
        ids_b,
        motions: scene.motions,
    })
}

/// `n` samples: sample `k` is `generate(cfg, seed.wrapping_add(k))`, so a dataset can also be produced one
/// index at a time. Samples are independent, so they are generated on up to
/// `std::thread::available_parallelism()` threads; the result does not depend on the thread count.
pub fn batch(cfg: &SyntheticConfig, seed: u64, n: usize) -> Result<Vec<SyntheticPair>> {
    cfg.validate()?;
    let sample = |k: usize| generate(cfg, seed.wrapping_add(k as u64));
    let workers = std::thread::available_parallelism().map_or(1, |w| w.get()).min(n);
    if workers <= 1 {
        return (0..n).map(sample).collect();
    }
    let mut slots: Vec<Option<Result<SyntheticPair>>> = (0..n).map(|_| None).collect();
    let chunk_len = n.div_ceil(workers);
    std::thread::scope(|scope| {
        for (c, chunk) in slots.chunks_mut(chunk_len).enumerate() {
            let work = move || {
                for (j, slot) in chunk.iter_mut().enumerate() {
                    *slot = Some(sample(c * chunk_len + j));
                }
            };
            // A thread that cannot be spawned leaves its slots empty; they are filled below, on this thread.
            let _ = std::thread::Builder::new().name(format!("synthetic-{c}")).spawn_scoped(scope, work);
        }
    });
    slots.into_iter().enumerate().map(|(k, slot)| slot.unwrap_or_else(|| sample(k))).collect()
}

/// Largest side a texture photo is kept at: larger photos are downscaled on load (crops of a 1024-pixel
/// photo already cover any layer at the zooms used, and a folder of photos stays a few MB each).
pub const MAX_PHOTO_SIDE: u32 = 1024;

/// Loads every decodable image directly in `dir` (PNG, JPEG, PPM, BMP) as a texture source for
/// [`SyntheticConfig::photos`], downscaled to at most [`MAX_PHOTO_SIDE`] pixels per side. Files that are not
/// images are skipped; a folder with no image at all is an error naming it.
pub fn load_texture_folder(dir: &Path) -> Result<Vec<Arc<PhotoSource>>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect();
    paths.sort();
    let mut photos = Vec::new();
    for path in paths {
        let known = path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase());
        if !matches!(known.as_deref(), Some("png" | "jpg" | "jpeg" | "ppm" | "bmp")) {
            continue;
        }
        let img = crate::models::load_frame(&path)?;
        let img = if img.width().max(img.height()) > MAX_PHOTO_SIDE {
            img.resize(MAX_PHOTO_SIDE, MAX_PHOTO_SIDE, image::imageops::FilterType::Triangle)
        } else {
            img
        };
        if img.width() >= 2 && img.height() >= 2 {
            photos.push(Arc::new(PhotoSource::from_rgb8(&img.to_rgb8())));
        }
    }
    if photos.is_empty() {
        return Err(Error::format(
            dir,
            "no texture images found (expected PNG, JPEG, PPM or BMP files of at least 2 x 2 pixels)",
        ));
    }
    Ok(photos)
}

/// Writes `pair` into `dir` (created if missing) in the FlyingChairs layout: `NNNNN_img1.png`,
/// `NNNNN_img2.png` and `NNNNN_flow.flo`, `NNNNN` the zero-padded `index`. Each file is written atomically.
pub fn write_sample(dir: impl AsRef<Path>, index: usize, pair: &SyntheticPair) -> Result<()> {
    let dir = dir.as_ref();
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    for (suffix, frame) in [("img1", &pair.frame_a), ("img2", &pair.frame_b)] {
        let path = dir.join(format!("{index:05}_{suffix}.png"));
        let mut png = Vec::new();
        PngEncoder::new(&mut png)
            .write_image(frame.as_raw(), frame.width(), frame.height(), ExtendedColorType::Rgb8)
            .map_err(|e| Error::Image { path: path.clone(), message: format!("cannot encode PNG: {e}") })?;
        write_atomic(&path, &png)?;
    }
    write_flo(dir.join(format!("{index:05}_flow.flo")), &pair.flow)
}

/// Wraps an interleaved RGB buffer (the sizes were validated, so this cannot fail in practice).
fn rgb_image(width: usize, height: usize, data: Vec<u8>) -> Result<RgbImage> {
    let too_large = || Error::InvalidParam { op: OP, message: format!("{width} x {height} does not fit an image") };
    let w = u32::try_from(width).map_err(|_| too_large())?;
    let h = u32::try_from(height).map_err(|_| too_large())?;
    RgbImage::from_raw(w, h, data).ok_or_else(too_large)
}

/// Intensity in [0, 1] to an 8-bit level, rounding to nearest.
fn quantize(colour: [f64; 3]) -> [u8; 3] {
    colour.map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
}

// ---------------------------------------------------------------------------------------------------------
// random numbers

/// Decorrelates the photometric stream from the geometry stream of the same seed.
const PHOTOMETRIC_STREAM: u64 = 0x5048_4f54_4f4d_4554;
/// Decorrelates the noise stream.
const NOISE_STREAM: u64 = 0x4e4f_4953_4520_4232;

/// splitmix64's finaliser: neighbouring seeds (a dataset's indices) become unrelated generator states.
fn mix_seed(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Real-valued draws on top of [`Rng`].
pub(crate) struct Sampler(Rng);

impl Sampler {
    pub(crate) fn new(seed: u64) -> Self {
        Sampler(Rng::new(mix_seed(seed)))
    }
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    /// Uniform in [0, 1), 53 random bits.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
    /// Uniform in [lo, hi).
    pub(crate) fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
    /// Log-uniform in [lo, hi] (both > 0).
    pub(crate) fn log_range(&mut self, lo: f64, hi: f64) -> f64 {
        self.range(lo.ln(), hi.ln()).exp()
    }
    /// `max * r * |r|`, r uniform in [-1, 1): signed, concentrated near 0.
    pub(crate) fn signed_skewed(&mut self, max: f64) -> f64 {
        let r = self.range(-1.0, 1.0);
        max * r * r.abs()
    }
    /// Uniform integer in `lo..=hi` (`hi - lo` is at most [`MAX_OBJECTS`] here).
    pub(crate) fn count(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.0.next_u64() % (hi - lo + 1) as u64) as usize
    }
    /// Standard normal (Box-Muller; `1 - unit()` is in (0, 1], so the logarithm is finite).
    pub(crate) fn gaussian(&mut self) -> f64 {
        let r = (-2.0 * (1.0 - self.unit()).ln()).sqrt();
        r * (TAU * self.unit()).cos()
    }
    /// A translation of random direction and length `max * r^1.5`, r uniform in [0, 1).
    pub(crate) fn translation(&mut self, max: f64) -> [f64; 2] {
        let angle = self.range(0.0, TAU);
        let length = max * self.unit().powf(1.5);
        [length * angle.cos(), length * angle.sin()]
    }
}

// ---------------------------------------------------------------------------------------------------------
// scene

/// Layers (textures, outlines) and their motions; index 0 is the background.
struct Scene {
    textures: Vec<Texture>,
    /// `shapes[i - 1]` is the outline of object `i`.
    shapes: Vec<Shape>,
    motions: Vec<Affine>,
}

impl Scene {
    fn sample(cfg: &SyntheticConfig, s: &mut Sampler) -> Scene {
        let (w, h) = (cfg.width as f64, cfg.height as f64);
        let centre = [(w - 1.0) / 2.0, (h - 1.0) / 2.0];
        let motion_scale = s.log_range(cfg.motion_scale.0, cfg.motion_scale.1);
        let d = motion_scale.min(MAX_DEFORM_SCALE);
        let background_motion = Affine::about(
            centre,
            d * s.signed_skewed(cfg.background_max_rotation_deg).to_radians(),
            s.log_range(cfg.background_scale_range.0, cfg.background_scale_range.1).powf(d),
            d * s.signed_skewed(cfg.background_max_shear),
            d * s.signed_skewed(cfg.background_max_shear),
            s.translation(cfg.background_max_translation_px * motion_scale),
        );
        // The background texture must cover everything frame B can show: the frame pulled back by M_0^{-1},
        // which stays within the frame grown by the flow bound.
        let margin = cfg.flow_bound().min(w.max(h));
        let half_extent = 0.5 * w.max(h) + margin;
        let mut textures = vec![Texture::sample(s, centre, half_extent, w.max(h), &cfg.photos)];
        let mut shapes = Vec::new();
        let mut motions = vec![background_motion];
        let count = s.count(cfg.objects.0, cfg.objects.1);
        let side = w.min(h);
        for _ in 0..count {
            let shape = Shape::sample(s, cfg, side);
            let own = Affine::about(
                shape.centre,
                d * s.signed_skewed(cfg.max_rotation_deg).to_radians(),
                s.log_range(cfg.scale_range.0, cfg.scale_range.1).powf(d),
                d * s.signed_skewed(cfg.max_shear),
                d * s.signed_skewed(cfg.max_shear),
                s.translation(cfg.max_translation_px * motion_scale),
            );
            textures.push(Texture::sample(s, shape.centre, shape.bound, w.max(h), &cfg.photos));
            motions.push(own.then(&background_motion));
            shapes.push(shape);
        }
        Scene { textures, shapes, motions }
    }

    /// The top-most layer whose outline contains `point(i)`, the layer-`i` scene point under test; 0 when
    /// no object does.
    fn top_layer(&self, point: impl Fn(usize) -> (f64, f64)) -> usize {
        for (k, shape) in self.shapes.iter().enumerate().rev() {
            let (x, y) = point(k + 1);
            if shape.contains(x, y) {
                return k + 1;
            }
        }
        0
    }
}

/// A star-shaped object outline about `centre`: in a frame rotated by `angle` and stretched by
/// (`aspect`, `1 / aspect`), the boundary is at radius `radius * profile(phi)`.
struct Shape {
    centre: [f64; 2],
    cos: f64,
    sin: f64,
    /// Semi-axis scales (pixels per unit of the profile) along the rotated x and y axes.
    axes: [f64; 2],
    /// No point of the outline is farther than this from `centre` (pixels).
    bound: f64,
    outline: Outline,
}

enum Outline {
    /// Smooth boundary `1 + sum a_k cos(k phi + phase_k)`, `sum |a_k| <= MAX_RIPPLE` (an ellipse when all
    /// `a_k` are 0).
    Smooth { harmonics: Vec<(f64, f64, f64)> },
    /// A star-shaped polygon: vertices at increasing angles in (0, 2 pi) with unit-scale radii in [0.55, 1],
    /// consecutive angles less than pi apart so the centre is inside every edge's half-plane.
    Polygon { vertices: Vec<(f64, [f64; 2])> },
}

impl Shape {
    fn sample(s: &mut Sampler, cfg: &SyntheticConfig, side: f64) -> Shape {
        let centre = [s.range(0.0, cfg.width as f64), s.range(0.0, cfg.height as f64)];
        let radius = s.log_range(cfg.object_radius.0, cfg.object_radius.1) * side;
        let aspect = s.log_range(1.0, MAX_ASPECT);
        let angle = s.range(0.0, PI);
        let (outline, reach) = if s.unit() < 0.65 {
            let n = s.count(0, 5);
            let mut budget = s.range(0.0, MAX_RIPPLE);
            let mut harmonics = Vec::new();
            for _ in 0..n {
                let amplitude = budget * s.range(0.2, 0.8);
                budget -= amplitude;
                harmonics.push((s.count(2, 6) as f64, amplitude, s.range(0.0, TAU)));
            }
            let reach = 1.0 + harmonics.iter().map(|h| h.1).sum::<f64>();
            (Outline::Smooth { harmonics }, reach)
        } else {
            let n = s.count(4, 10);
            let vertices = (0..n)
                .map(|j| {
                    let phi = (j as f64 + 0.5 + 0.4 * s.range(-1.0, 1.0)) * TAU / n as f64;
                    let r = s.range(0.55, 1.0);
                    (phi, [r * phi.cos(), r * phi.sin()])
                })
                .collect();
            (Outline::Polygon { vertices }, 1.0)
        };
        let axes = [radius * aspect, radius / aspect];
        let (sin, cos) = angle.sin_cos();
        Shape { centre, cos, sin, axes, bound: reach * axes[0].max(axes[1]), outline }
    }

    fn contains(&self, x: f64, y: f64) -> bool {
        let (dx, dy) = (x - self.centre[0], y - self.centre[1]);
        if dx * dx + dy * dy > self.bound * self.bound {
            return false;
        }
        let lx = (self.cos * dx + self.sin * dy) / self.axes[0];
        let ly = (-self.sin * dx + self.cos * dy) / self.axes[1];
        match &self.outline {
            Outline::Smooth { harmonics } => {
                let phi = ly.atan2(lx);
                let r = 1.0 + harmonics.iter().map(|&(k, a, phase)| a * (k * phi + phase).cos()).sum::<f64>();
                lx * lx + ly * ly <= r * r
            }
            Outline::Polygon { vertices } => {
                let phi = ly.atan2(lx).rem_euclid(TAU);
                // The edge whose angular sector holds phi: from the last vertex at or below phi (wrapping).
                let j = vertices.iter().rposition(|v| v.0 <= phi).unwrap_or(vertices.len() - 1);
                let (a, b) = (vertices[j].1, vertices[(j + 1) % vertices.len()].1);
                (b[0] - a[0]) * (ly - a[1]) - (b[1] - a[1]) * (lx - a[0]) >= 0.0
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// photometric changes of frame B

/// `v -> (v - 0.5) * contrast + 0.5 + brightness[c]`, then Gaussian noise.
struct Photometric {
    contrast: f64,
    brightness: [f64; 3],
}

impl Photometric {
    fn sample(cfg: &SyntheticConfig, seed: u64) -> Photometric {
        let mut s = Sampler::new(seed ^ PHOTOMETRIC_STREAM);
        let contrast = 1.0 + cfg.contrast_jitter * s.range(-1.0, 1.0);
        let brightness = [0; 3].map(|_| cfg.brightness_jitter * s.range(-1.0, 1.0));
        Photometric { contrast, brightness }
    }

    fn apply(&self, colour: [f64; 3], noise_std: f64, noise: &mut Sampler) -> [f64; 3] {
        let mut out = [0.0; 3];
        for ((o, v), b) in out.iter_mut().zip(colour).zip(self.brightness) {
            *o = (v - 0.5) * self.contrast + 0.5 + b;
            if noise_std > 0.0 {
                *o += noise_std * noise.gaussian();
            }
        }
        out
    }
}
