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
//! Textures are functions defined on the whole plane (sums of oriented, optionally warped or sharpened
//! sinusoids and Gaussian blobs, in colour), so frame B is sampled exactly at the transformed coordinates:
//! there is no resampling error, only 8-bit quantisation. Edges are not anti-aliased, so every pixel belongs
//! to exactly one layer and its flow is unambiguous.
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

/// Object outlines stretch one axis by up to this factor and shrink the other by the same factor.
const MAX_ASPECT: f64 = 1.5;
/// Smooth outlines have radius `1 + sum_k a_k cos(k phi + phase_k)` with `sum_k |a_k| <= MAX_RIPPLE`.
const MAX_RIPPLE: f64 = 0.3;
/// Shortest texture wavelength, in pixels: long enough that bilinear interpolation of frame B (the usual
/// warping loss) reproduces the texture to about one 8-bit level, short enough to give fine gradients.
const MIN_WAVELENGTH_PX: f64 = 8.0;

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
    /// Largest length of the background translation, in pixels (drawn like `max_translation_px`).
    pub background_max_translation_px: f64,
    /// Largest magnitude of the background rotation about the image centre, in degrees.
    pub background_max_rotation_deg: f64,
    /// Range of the background scale factor about the image centre, drawn log-uniformly.
    pub background_scale_range: (f64, f64),
    /// Largest per-channel brightness offset added to frame B, in intensity units (1 = full scale), in [0, 1].
    pub brightness_jitter: f64,
    /// Largest relative contrast change of frame B about mid-grey: the factor is drawn from
    /// `[1 - jitter, 1 + jitter]`, jitter in [0, 1].
    pub contrast_jitter: f64,
    /// Standard deviation of Gaussian noise added to frame B, in intensity units (1 = full scale, so
    /// `2.0 / 255.0` is two 8-bit levels); at least 0.
    pub noise_std: f64,
}

impl Default for SyntheticConfig {
    /// FlyingChairs-sized samples, 512 x 384, with a displacement distribution like FlyingChairs': most flow
    /// under about 20 px, a tail to about 40 px (measured over 24 samples: mean 9.2 px, median 7.6, 94 %
    /// under 20 px, 99th percentile 33, largest 50). No photometric changes (FlyingChairs' rendered pairs have
    /// none; training applies its own augmentation).
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
            brightness_jitter: 0.0,
            contrast_jitter: 0.0,
            noise_std: 0.0,
        }
    }
}

impl SyntheticConfig {
    /// A small preset for tests and quick experiments: 96 x 64 frames, 2 to 5 objects, motions scaled to the
    /// frame size (measured over 24 samples: median flow 1.6 px, 99th percentile 7.6, largest 10.6).
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
        check_value("brightness_jitter", self.brightness_jitter, 0.0, 1.0)?;
        check_value("contrast_jitter", self.contrast_jitter, 0.0, 1.0)?;
        check_value("noise_std", self.noise_std, 0.0, 1.0)
    }

    /// An upper bound on the flow magnitude any sample of this configuration can contain, in pixels.
    ///
    /// For a similarity `A = s R(theta)`, `|A - I| = sqrt(s^2 - 2 s cos(theta) + 1)` (the matrix is itself a
    /// scaled rotation), largest at the extreme scale and angle. The background moves `p` by at most
    /// `|A_0 - I| * d + |t_0|` with `d` the half-diagonal; an object pixel moves by `R_i` (at most
    /// `|A_i - I| * r_max + |t_i|`, `r_max` the largest outline radius) and then by the background motion of
    /// the moved point, whose distance from the image centre is at most `d` plus that amount.
    pub fn flow_bound(&self) -> f64 {
        let half_diagonal = 0.5 * (self.width as f64).hypot(self.height as f64);
        let background_gain = similarity_gain(self.background_scale_range, self.background_max_rotation_deg);
        let object_gain = similarity_gain(self.scale_range, self.max_rotation_deg);
        let r_max = self.object_radius.1 * self.width.min(self.height) as f64 * MAX_ASPECT * (1.0 + MAX_RIPPLE);
        let own = object_gain * r_max + self.max_translation_px;
        let background = |d: f64| background_gain * d + self.background_max_translation_px;
        background(half_diagonal).max(own + background(half_diagonal + own))
    }
}

/// `max |s R(theta) - I|` over `s` in `scales` and `|theta| <= max_deg` (the expression is convex in `s`
/// and grows with `|theta|`, so the maximum is at an extreme scale and the largest angle).
fn similarity_gain(scales: (f64, f64), max_deg: f64) -> f64 {
    let c = max_deg.to_radians().cos();
    let gain = |s: f64| (s * s - 2.0 * s * c + 1.0).max(0.0).sqrt();
    gain(scales.0).max(gain(scales.1))
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
        let (s, c) = angle.sin_cos();
        let a = [[scale * c, -scale * s], [scale * s, scale * c]];
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
struct Sampler(Rng);

impl Sampler {
    fn new(seed: u64) -> Self {
        Sampler(Rng::new(mix_seed(seed)))
    }
    /// Uniform in [0, 1), 53 random bits.
    fn unit(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
    /// Uniform in [lo, hi).
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
    /// Log-uniform in [lo, hi] (both > 0).
    fn log_range(&mut self, lo: f64, hi: f64) -> f64 {
        self.range(lo.ln(), hi.ln()).exp()
    }
    /// `max * r * |r|`, r uniform in [-1, 1): signed, concentrated near 0.
    fn signed_skewed(&mut self, max: f64) -> f64 {
        let r = self.range(-1.0, 1.0);
        max * r * r.abs()
    }
    /// Uniform integer in `lo..=hi` (`hi - lo` is at most [`MAX_OBJECTS`] here).
    fn count(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.0.next_u64() % (hi - lo + 1) as u64) as usize
    }
    /// Standard normal (Box-Muller; `1 - unit()` is in (0, 1], so the logarithm is finite).
    fn gaussian(&mut self) -> f64 {
        let r = (-2.0 * (1.0 - self.unit()).ln()).sqrt();
        r * (TAU * self.unit()).cos()
    }
    /// A translation of random direction and length `max * r^1.5`, r uniform in [0, 1).
    fn translation(&mut self, max: f64) -> [f64; 2] {
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
        let background_motion = Affine::similarity(
            centre,
            s.signed_skewed(cfg.background_max_rotation_deg).to_radians(),
            s.log_range(cfg.background_scale_range.0, cfg.background_scale_range.1),
            s.translation(cfg.background_max_translation_px),
        );
        // The background texture must cover everything frame B can show: the frame pulled back by M_0^{-1},
        // which stays within the frame grown by the flow bound.
        let margin = cfg.flow_bound().min(w.max(h));
        let half_extent = 0.5 * w.max(h) + margin;
        let mut textures = vec![Texture::sample(s, centre, half_extent, w.max(h))];
        let mut shapes = Vec::new();
        let mut motions = vec![background_motion];
        let count = s.count(cfg.objects.0, cfg.objects.1);
        let side = w.min(h);
        for _ in 0..count {
            let shape = Shape::sample(s, cfg, side);
            let own = Affine::similarity(
                shape.centre,
                s.signed_skewed(cfg.max_rotation_deg).to_radians(),
                s.log_range(cfg.scale_range.0, cfg.scale_range.1),
                s.translation(cfg.max_translation_px),
            );
            textures.push(Texture::sample(s, shape.centre, shape.bound, w.max(h)));
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
// textures

/// An oriented sinusoid `sin(k . p + phase + warp_amp sin(warp_k . p))`, optionally sharpened to
/// `soft_sign(gain s) / soft_sign(gain)` (smooth stripes with steeper edges), weighted per colour channel.
struct Wave {
    k: [f64; 2],
    phase: f64,
    warp_k: [f64; 2],
    warp_amp: f64,
    gain: f64,
    colour: [f64; 3],
}

/// A Gaussian blob `exp(-|p - c|^2 / (2 r^2))`, ignored beyond `3 sqrt(2) r` (where it is `exp(-9)`, about
/// 1e-4, under a tenth of an 8-bit level at the largest blob weight).
struct Blob {
    centre: [f64; 2],
    inv_two_r2: f64,
    cutoff2: f64,
    colour: [f64; 3],
}

/// A procedural colour texture defined on the whole plane: a base colour plus waves at wavelengths from
/// [`MIN_WAVELENGTH_PX`] to the frame size and blobs of many sizes, so it has gradients at every scale;
/// the sum is squashed smoothly into (0, 1) so nothing clips.
struct Texture {
    base: [f64; 3],
    waves: Vec<Wave>,
    blobs: Vec<Blob>,
}

impl Texture {
    /// A texture whose blobs lie within `half_extent` of `centre`; `frame` is the larger frame side.
    fn sample(s: &mut Sampler, centre: [f64; 2], half_extent: f64, frame: f64) -> Texture {
        let base = [0; 3].map(|_| s.range(0.2, 0.8));
        let max_wavelength = (0.75 * frame).max(2.0 * MIN_WAVELENGTH_PX);
        let wave_count = s.count(7, 12);
        let waves = (0..wave_count)
            .map(|_| {
                let wavelength = s.log_range(MIN_WAVELENGTH_PX, max_wavelength);
                let direction = s.range(0.0, PI);
                let k = TAU / wavelength;
                // Warping and sharpening raise the local frequency, so they are kept to longer waves.
                let coarse = wavelength >= 2.0 * MIN_WAVELENGTH_PX;
                let (warp_k, warp_amp) = if coarse && s.unit() < 0.5 {
                    let warp_direction = s.range(0.0, PI);
                    let warp = k * s.range(0.1, 0.35);
                    ([warp * warp_direction.cos(), warp * warp_direction.sin()], s.range(0.3, 1.5))
                } else {
                    ([0.0; 2], 0.0)
                };
                let gain = if coarse && s.unit() < 0.3 { s.range(1.0, 3.0) } else { 0.0 };
                let amplitude = s.range(0.04, 0.12);
                let luminance = if s.unit() < 0.5 { -1.0 } else { 1.0 };
                let colour = [0; 3].map(|_| amplitude * (0.7 * luminance + 0.5 * s.range(-1.0, 1.0)));
                Wave {
                    k: [k * direction.cos(), k * direction.sin()],
                    phase: s.range(0.0, TAU),
                    warp_k,
                    warp_amp,
                    gain,
                    colour,
                }
            })
            .collect();
        let blob_count = s.count(4, 10);
        let blobs = (0..blob_count)
            .map(|_| {
                let r = s.log_range(3.0, (0.3 * half_extent).max(4.0));
                let angle = s.range(0.0, TAU);
                let distance = half_extent * s.unit().sqrt();
                let colour = [0; 3].map(|_| s.range(-0.3, 0.3));
                Blob {
                    centre: [centre[0] + distance * angle.cos(), centre[1] + distance * angle.sin()],
                    inv_two_r2: 1.0 / (2.0 * r * r),
                    cutoff2: 18.0 * r * r,
                    colour,
                }
            })
            .collect();
        Texture { base, waves, blobs }
    }

    /// Colour at scene point `(x, y)`, each channel in (0.02, 0.98).
    fn eval(&self, x: f64, y: f64) -> [f64; 3] {
        let mut c = self.base;
        for w in &self.waves {
            let mut t = w.k[0] * x + w.k[1] * y + w.phase;
            if w.warp_amp != 0.0 {
                t += w.warp_amp * (w.warp_k[0] * x + w.warp_k[1] * y).sin();
            }
            let mut v = t.sin();
            if w.gain != 0.0 {
                v = soft_sign(w.gain * v) / soft_sign(w.gain);
            }
            for (ch, wc) in c.iter_mut().zip(w.colour) {
                *ch += wc * v;
            }
        }
        for b in &self.blobs {
            let (dx, dy) = (x - b.centre[0], y - b.centre[1]);
            let d2 = dx * dx + dy * dy;
            if d2 < b.cutoff2 {
                let g = (-d2 * b.inv_two_r2).exp();
                for (ch, bc) in c.iter_mut().zip(b.colour) {
                    *ch += bc * g;
                }
            }
        }
        // Smooth squashing with slope 1 at mid-grey: keeps gradients everywhere instead of clipping.
        c.map(|v| 0.5 + 0.48 * soft_sign((v - 0.5) / 0.48))
    }
}

/// `x / sqrt(1 + x^2)`: a smooth, odd squashing into (-1, 1) with slope 1 at 0, like `tanh` but a third of
/// the cost (texture evaluation dominates generation time).
fn soft_sign(x: f64) -> f64 {
    x / (1.0 + x * x).sqrt()
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
