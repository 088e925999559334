//! Procedural colour textures defined on the whole plane, for the synthetic scenes' layers, with natural-image
//! statistics in the spirit of AutoFlow (Sun et al., CVPR 2021): multi-octave gradient noise whose amplitude
//! falls as 1/f (so its power spectrum falls as 1/f^2, like natural images'), sharp-edged stripes, checkers and
//! cell patterns (anti-aliased over about one pixel), smooth colour gradients, oriented waves and Gaussian blobs,
//! mixtures of two of them through a sharp or soft mask, and crops of the user's own photos.
//!
//! Every texture is a function of the scene point, so frame B samples it exactly at the transformed
//! coordinates and the flow stays exact: only the photo textures interpolate (bilinearly) between their
//! pixels. Each pattern's finest detail is about [`MIN_DETAIL_PX`] pixels, coarse enough that a half-pixel
//! shift does not turn it into different content (no aliasing between the frames).

use std::f64::consts::{FRAC_1_SQRT_2, PI, TAU};
use std::sync::Arc;

use super::synthetic::Sampler;

/// Finest wavelength (or cell size) any procedural pattern puts into a texture, in pixels.
pub const MIN_DETAIL_PX: f64 = 4.0;

/// Width of the anti-aliased transition of a sharp edge, in pixels (a linear ramp over this width).
const EDGE_PX: f64 = 1.0;

/// An RGB image (values in [0, 1], row-major, interleaved) used as a texture source.
#[derive(Clone, PartialEq)]
pub struct PhotoSource {
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<f32>,
}

impl std::fmt::Debug for PhotoSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PhotoSource({}x{})", self.width, self.height)
    }
}

impl PhotoSource {
    /// From an 8-bit RGB image.
    pub fn from_rgb8(img: &image::RgbImage) -> PhotoSource {
        PhotoSource {
            width: img.width() as usize,
            height: img.height() as usize,
            rgb: img.as_raw().iter().map(|&v| v as f32 / 255.0).collect(),
        }
    }

    /// Bilinear sample at `(x, y)` in pixel coordinates, mirrored at the borders (so any point has a value).
    fn sample(&self, x: f64, y: f64) -> [f64; 3] {
        let mirror = |v: f64, n: usize| -> f64 {
            let n = n as f64;
            if n <= 1.0 {
                return 0.0;
            }
            let period = 2.0 * (n - 1.0);
            let m = v.rem_euclid(period);
            if m > n - 1.0 {
                period - m
            } else {
                m
            }
        };
        let (x, y) = (mirror(x, self.width), mirror(y, self.height));
        let (x0, y0) = (x.floor() as usize, y.floor() as usize);
        let (x1, y1) = ((x0 + 1).min(self.width - 1), (y0 + 1).min(self.height - 1));
        let (fx, fy) = (x - x0 as f64, y - y0 as f64);
        let at = |xx: usize, yy: usize, c: usize| self.rgb[3 * (yy * self.width + xx) + c] as f64;
        [0, 1, 2].map(|c| {
            let top = at(x0, y0, c) * (1.0 - fx) + at(x1, y0, c) * fx;
            let bottom = at(x0, y1, c) * (1.0 - fx) + at(x1, y1, c) * fx;
            top * (1.0 - fy) + bottom * fy
        })
    }
}

/// The 16 directions `(cos(k pi / 8), sin(k pi / 8))`.
const GRADIENTS: [(f64, f64); 16] = [
    (1.0, 0.0),
    (0.923_879_532_511_286_7, 0.382_683_432_365_089_8),
    (FRAC_1_SQRT_2, FRAC_1_SQRT_2),
    (0.382_683_432_365_089_8, 0.923_879_532_511_286_7),
    (0.0, 1.0),
    (-0.382_683_432_365_089_8, 0.923_879_532_511_286_7),
    (-FRAC_1_SQRT_2, FRAC_1_SQRT_2),
    (-0.923_879_532_511_286_7, 0.382_683_432_365_089_8),
    (-1.0, 0.0),
    (-0.923_879_532_511_286_7, -0.382_683_432_365_089_8),
    (-FRAC_1_SQRT_2, -FRAC_1_SQRT_2),
    (-0.382_683_432_365_089_8, -0.923_879_532_511_286_7),
    (0.0, -1.0),
    (0.382_683_432_365_089_8, -0.923_879_532_511_286_7),
    (FRAC_1_SQRT_2, -FRAC_1_SQRT_2),
    (0.923_879_532_511_286_7, -0.382_683_432_365_089_8),
];

/// 2-D gradient noise (Perlin 2002, quintic fade) with a per-texture seed, about in [-0.7, 0.7].
#[derive(Clone, Copy, Debug)]
struct GradientNoise {
    seed: u64,
}

impl GradientNoise {
    /// One of 16 unit gradients, chosen by a hash of the lattice point (a table instead of `sin`/`cos` of a
    /// hashed angle: texture evaluation dominates generation time).
    fn gradient(&self, ix: i64, iy: i64) -> (f64, f64) {
        let mut h = self.seed
            ^ (ix as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ (iy as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        h = (h ^ (h >> 31)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        GRADIENTS[(h >> 60) as usize]
    }

    fn eval(&self, x: f64, y: f64) -> f64 {
        let (fx, fy) = (x.floor(), y.floor());
        let (ix, iy) = (fx as i64, fy as i64);
        let (dx, dy) = (x - fx, y - fy);
        let fade = |t: f64| t * t * t * (t * (t * 6.0 - 15.0) + 10.0);
        let dot = |cx: i64, cy: i64| {
            let (gx, gy) = self.gradient(ix + cx, iy + cy);
            gx * (dx - cx as f64) + gy * (dy - cy as f64)
        };
        let (u, v) = (fade(dx), fade(dy));
        let top = dot(0, 0) + u * (dot(1, 0) - dot(0, 0));
        let bottom = dot(0, 1) + u * (dot(1, 1) - dot(0, 1));
        top + v * (bottom - top)
    }
}

/// Sum of octaves of gradient noise: octave `k` has frequency `base * 2^k` and amplitude `gain^k`; `gain =
/// 0.5` gives the 1/f amplitude spectrum of natural images. Each octave is rotated and offset differently so
/// the lattice does not show. Normalised to about unit standard deviation.
#[derive(Clone, Debug)]
struct Fractal {
    noise: GradientNoise,
    /// Per octave: (frequency in cycles per pixel, amplitude, rotation cos, sin, offset).
    octaves: Vec<(f64, f64, f64, f64, [f64; 2])>,
    norm: f64,
    /// Multiplier turning a difference of values into about pixels (the value changes by about one unit per
    /// a third of the coarsest wavelength), for one-pixel-wide thresholded edges.
    per_px: f64,
}

impl Fractal {
    /// Octaves from a coarsest wavelength drawn log-uniformly from `coarse_px` down to about
    /// [`MIN_DETAIL_PX`], with the amplitude ratio between octaves drawn uniformly from `gain`.
    fn sample(s: &mut Sampler, coarse_px: (f64, f64), gain: (f64, f64)) -> Fractal {
        let coarse_px = s.log_range(coarse_px.0, coarse_px.1.max(coarse_px.0));
        let gain = s.range(gain.0, gain.1);
        let noise = GradientNoise { seed: s.next_u64() };
        let mut octaves = Vec::new();
        let coarse_px = coarse_px.max(MIN_DETAIL_PX);
        let (mut wavelength, mut amplitude, mut power) = (coarse_px, 1.0, 0.0);
        while wavelength >= MIN_DETAIL_PX && octaves.len() < 10 {
            let angle = s.range(0.0, TAU);
            octaves.push((
                1.0 / wavelength,
                amplitude,
                angle.cos(),
                angle.sin(),
                [s.range(0.0, 256.0), s.range(0.0, 256.0)],
            ));
            power += amplitude * amplitude;
            wavelength *= 0.5;
            amplitude *= gain;
        }
        // Gradient noise has a standard deviation of about 0.22 per octave.
        Fractal { noise, octaves, norm: 1.0 / (0.22 * power.sqrt()), per_px: coarse_px / 3.0 }
    }

    fn eval(&self, x: f64, y: f64) -> f64 {
        let mut v = 0.0;
        for &(f, a, c, s, o) in &self.octaves {
            let (u, w) = (f * (c * x - s * y) + o[0], f * (s * x + c * y) + o[1]);
            v += a * self.noise.eval(u, w);
        }
        v * self.norm
    }
}

/// A piecewise-linear colour ramp over [-1, 1] through 2 to 4 colours.
#[derive(Clone, Debug)]
struct Ramp(Vec<[f64; 3]>);

impl Ramp {
    fn sample(s: &mut Sampler) -> Ramp {
        let n = s.count(2, 4);
        let mut colours = Vec::with_capacity(n);
        // A random hue family with varied brightness, sometimes fully random colours.
        let base = random_colour(s);
        for _ in 0..n {
            if s.unit() < 0.35 {
                colours.push(random_colour(s));
            } else {
                let k = s.range(0.3, 1.5);
                colours.push(base.map(|c| (c * k + s.range(-0.08, 0.08)).clamp(0.0, 1.0)));
            }
        }
        Ramp(colours)
    }

    fn eval(&self, t: f64) -> [f64; 3] {
        let n = self.0.len() - 1;
        let pos = ((t.clamp(-1.0, 1.0) + 1.0) * 0.5) * n as f64;
        let i = (pos.floor() as usize).min(n - 1);
        let f = pos - i as f64;
        let (a, b) = (self.0[i], self.0[i + 1]);
        [0, 1, 2].map(|c| a[c] + (b[c] - a[c]) * f)
    }
}

fn random_colour(s: &mut Sampler) -> [f64; 3] {
    [0; 3].map(|_| s.range(0.05, 0.95))
}

/// Linear ramp from 0 to 1 across an edge at signed distance `d` (pixels), [`EDGE_PX`] wide.
fn edge(d: f64) -> f64 {
    (d / EDGE_PX + 0.5).clamp(0.0, 1.0)
}

/// A periodic square wave with anti-aliased edges: 1 on a `duty` fraction of each period, else 0.
fn square(t_px: f64, period: f64, duty: f64) -> f64 {
    let m = t_px.rem_euclid(period);
    let on = duty * period;
    // Signed distance to the nearest edge, positive inside the "on" part.
    let d = if m < on { (m).min(on - m) } else { -(m - on).min(period - m) };
    edge(d)
}

/// An oriented sinusoid `sin(k . p + phase + warp_amp sin(warp_k . p))`, optionally sharpened to
/// `soft_sign(gain s) / soft_sign(gain)` (smooth stripes with steeper edges), weighted per colour channel.
#[derive(Clone, Debug)]
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
#[derive(Clone, Debug)]
struct Blob {
    centre: [f64; 2],
    inv_two_r2: f64,
    cutoff2: f64,
    colour: [f64; 3],
}

/// One pattern, a colour in [0, 1] at every scene point.
#[derive(Clone, Debug)]
enum Pattern {
    /// Base colour plus oriented waves and blobs of many sizes, squashed smoothly into (0, 1).
    Waves { base: [f64; 3], waves: Vec<Wave>, blobs: Vec<Blob> },
    /// 1/f fractal noise through a colour ramp, with a second, coarser noise shifting the brightness.
    Fractal { value: Fractal, ramp: Ramp, shade: Fractal, shade_amp: f64 },
    /// Sharp stripes of two colours (period, duty), optionally bent by a coarse noise field.
    Stripes { dir: [f64; 2], period: f64, duty: f64, colours: [[f64; 3]; 2], bend: Option<(Fractal, f64)> },
    /// A checkerboard (two sharp square waves along rotated axes).
    Checkers { axes: [[f64; 2]; 2], period: [f64; 2], colours: [[f64; 3]; 2] },
    /// A smooth linear gradient between two colours across `span` pixels, with fine fractal grain.
    Gradient { dir: [f64; 2], origin: f64, span: f64, colours: [[f64; 3]; 2], grain: Fractal, grain_amp: f64 },
    /// Sharp-edged cells: a fractal field thresholded into regions, each side with its own colour ramp.
    Cells { field: Fractal, level: f64, inside: Ramp, outside: Ramp, detail: Fractal },
    /// A crop of a user photo under a random similarity (scene point -> photo pixel).
    Photo { photo: Arc<PhotoSource>, a: [[f64; 2]; 2], b: [f64; 2] },
}

impl Pattern {
    fn eval(&self, x: f64, y: f64) -> [f64; 3] {
        match self {
            Pattern::Waves { base, waves, blobs } => {
                let mut c = *base;
                for w in waves {
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
                for b in blobs {
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
            Pattern::Fractal { value, ramp, shade, shade_amp } => {
                let c = ramp.eval(0.5 * value.eval(x, y));
                let k = 1.0 + shade_amp * shade.eval(x, y);
                c.map(|v| v * k)
            }
            Pattern::Stripes { dir, period, duty, colours, bend } => {
                let mut t = dir[0] * x + dir[1] * y;
                if let Some((field, amp)) = bend {
                    t += amp * field.eval(x, y);
                }
                mix(colours[0], colours[1], square(t, *period, *duty))
            }
            Pattern::Checkers { axes, period, colours } => {
                let a = square(axes[0][0] * x + axes[0][1] * y, period[0], 0.5);
                let b = square(axes[1][0] * x + axes[1][1] * y, period[1], 0.5);
                // XOR of the two square waves, kept anti-aliased: a + b - 2ab.
                mix(colours[0], colours[1], a + b - 2.0 * a * b)
            }
            Pattern::Gradient { dir, origin, span, colours, grain, grain_amp } => {
                let t = ((dir[0] * x + dir[1] * y - origin) / span).clamp(0.0, 1.0);
                let g = grain_amp * grain.eval(x, y);
                mix(colours[0], colours[1], t).map(|v| v + g)
            }
            Pattern::Cells { field, level, inside, outside, detail } => {
                let w = edge((field.eval(x, y) - level) * field.per_px);
                let d = 0.6 * detail.eval(x, y);
                mix(outside.eval(d), inside.eval(d), w)
            }
            Pattern::Photo { photo, a, b } => {
                photo.sample(a[0][0] * x + a[0][1] * y + b[0], a[1][0] * x + a[1][1] * y + b[1])
            }
        }
    }
}

fn mix(a: [f64; 3], b: [f64; 3], t: f64) -> [f64; 3] {
    [0, 1, 2].map(|c| a[c] + (b[c] - a[c]) * t)
}

/// `x / sqrt(1 + x^2)`: a smooth, odd squashing into (-1, 1) with slope 1 at 0, like `tanh` but a third of
/// the cost.
fn soft_sign(x: f64) -> f64 {
    x / (1.0 + x * x).sqrt()
}

/// The procedural texture kinds, for configuration and statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextureKind {
    Waves,
    Fractal,
    Stripes,
    Checkers,
    Gradient,
    Cells,
    Photo,
}

/// A layer's texture: one pattern, or two mixed through a mask (a sharp-edged fractal region or a constant
/// blend), always clamped to [0, 1].
#[derive(Clone, Debug)]
pub(crate) struct Texture {
    first: Pattern,
    second: Option<(Pattern, Mask)>,
    /// Fine multiplicative grain `1 + amplitude * noise` (wavelengths 4-32 px), so that few regions are
    /// perfectly flat, as in photographs.
    grain: Option<(Fractal, f64)>,
}

#[derive(Clone, Debug)]
enum Mask {
    /// `edge((field - level) * field.per_px)`: regions with sharp, anti-aliased borders.
    Regions { field: Fractal, level: f64 },
    /// A constant blend weight.
    Constant(f64),
}

impl Texture {
    /// A random texture for a layer centred at `centre` whose visible part lies within `half_extent` pixels of
    /// it; `frame` is the larger frame side. `photos` (possibly empty) are the user's texture images, used for
    /// about half of the layers when given.
    pub(crate) fn sample(
        s: &mut Sampler,
        centre: [f64; 2],
        half_extent: f64,
        frame: f64,
        photos: &[Arc<PhotoSource>],
    ) -> Texture {
        let kind = Self::kind(s, photos);
        let first = Pattern::sample(s, kind, centre, half_extent, frame, photos);
        let second = if s.unit() < 0.3 {
            let kind = Self::kind(s, photos);
            let pattern = Pattern::sample(s, kind, centre, half_extent, frame, photos);
            let mask = if s.unit() < 0.7 {
                Mask::Regions {
                    field: Fractal::sample(s, (16.0, frame.max(32.0)), (0.5, 0.5)),
                    level: s.range(-0.6, 0.6),
                }
            } else {
                Mask::Constant(s.range(0.25, 0.75))
            };
            Some((pattern, mask))
        } else {
            None
        };
        let grain = (s.unit() < 0.75).then(|| (Fractal::sample(s, (12.0, 32.0), (0.5, 0.7)), s.range(0.03, 0.15)));
        Texture { first, second, grain }
    }

    /// The kind of a new pattern: photos for half the draws when there are any, else the procedural kinds
    /// weighted towards the natural-image-like fractal ones.
    fn kind(s: &mut Sampler, photos: &[Arc<PhotoSource>]) -> TextureKind {
        if !photos.is_empty() && s.unit() < 0.5 {
            return TextureKind::Photo;
        }
        let r = s.unit();
        match r {
            _ if r < 0.32 => TextureKind::Fractal,
            _ if r < 0.50 => TextureKind::Cells,
            _ if r < 0.68 => TextureKind::Waves,
            _ if r < 0.80 => TextureKind::Stripes,
            _ if r < 0.90 => TextureKind::Checkers,
            _ => TextureKind::Gradient,
        }
    }

    /// Colour at scene point `(x, y)`, each channel in [0, 1].
    pub(crate) fn eval(&self, x: f64, y: f64) -> [f64; 3] {
        let a = self.first.eval(x, y);
        let c = match &self.second {
            None => a,
            Some((pattern, mask)) => {
                let t = match mask {
                    Mask::Regions { field, level } => edge((field.eval(x, y) - level) * field.per_px),
                    Mask::Constant(t) => *t,
                };
                if t <= 0.0 {
                    a
                } else {
                    mix(a, pattern.eval(x, y), t)
                }
            }
        };
        let k = self.grain.as_ref().map_or(1.0, |(f, amp)| 1.0 + amp * f.eval(x, y));
        c.map(|v| (v * k).clamp(0.0, 1.0))
    }
}

impl Pattern {
    fn sample(
        s: &mut Sampler,
        kind: TextureKind,
        centre: [f64; 2],
        half_extent: f64,
        frame: f64,
        photos: &[Arc<PhotoSource>],
    ) -> Pattern {
        let direction = |s: &mut Sampler| {
            let a = s.range(0.0, PI);
            [a.cos(), a.sin()]
        };
        let two_colours = |s: &mut Sampler| {
            let a = random_colour(s);
            let mut b = random_colour(s);
            // Keep some contrast between the two colours.
            if (0..3).map(|c| (a[c] - b[c]).abs()).sum::<f64>() < 0.3 {
                b = a.map(|v| 1.0 - v);
            }
            [a, b]
        };
        match kind {
            TextureKind::Waves => Self::waves(s, centre, half_extent, frame),
            TextureKind::Fractal => Pattern::Fractal {
                value: Fractal::sample(s, (24.0, frame.max(48.0)), (0.45, 0.65)),
                ramp: Ramp::sample(s),
                shade: Fractal::sample(s, (frame.max(32.0), frame.max(32.0)), (0.5, 0.5)),
                shade_amp: s.range(0.0, 0.25),
            },
            TextureKind::Stripes => {
                let period = s.log_range(2.0 * MIN_DETAIL_PX, 0.25 * frame.max(32.0));
                let bend = if s.unit() < 0.5 {
                    Some((
                        Fractal::sample(s, (4.0 * period, frame.max(8.0 * period)), (0.5, 0.5)),
                        s.range(0.1, 0.8) * period,
                    ))
                } else {
                    None
                };
                Pattern::Stripes { dir: direction(s), period, duty: s.range(0.25, 0.75), colours: two_colours(s), bend }
            }
            TextureKind::Checkers => {
                let d = direction(s);
                let period = s.log_range(2.0 * MIN_DETAIL_PX, 0.2 * frame.max(40.0));
                let aspect = s.log_range(1.0, 2.0);
                Pattern::Checkers {
                    axes: [d, [-d[1], d[0]]],
                    period: [period, period * aspect],
                    colours: two_colours(s),
                }
            }
            TextureKind::Gradient => {
                let dir = direction(s);
                let span = s.log_range(0.3, 2.0) * frame;
                let origin = dir[0] * centre[0] + dir[1] * centre[1] - 0.5 * span;
                Pattern::Gradient {
                    dir,
                    origin,
                    span,
                    colours: two_colours(s),
                    grain: Fractal::sample(s, (8.0, 64.0), (0.5, 0.5)),
                    grain_amp: s.range(0.03, 0.12),
                }
            }
            TextureKind::Cells => Pattern::Cells {
                field: Fractal::sample(s, (12.0, 0.5 * frame.max(24.0)), (0.3, 0.6)),
                level: s.range(-0.5, 0.5),
                inside: Ramp::sample(s),
                outside: Ramp::sample(s),
                detail: Fractal::sample(s, (16.0, frame.max(32.0)), (0.55, 0.55)),
            },
            TextureKind::Photo => match photos {
                [] => Self::waves(s, centre, half_extent, frame),
                _ => {
                    let photo = photos[(s.next_u64() % photos.len() as u64) as usize].clone();
                    // Scene pixels per photo pixel: down to a quarter-size crop, up to 2x magnified.
                    let zoom = s.log_range(0.5, 2.0);
                    let angle = s.range(-0.3, 0.3);
                    let (sin, cos) = angle.sin_cos();
                    let a = [[cos / zoom, -sin / zoom], [sin / zoom, cos / zoom]];
                    // Map the layer centre to a random point of the photo.
                    let target = [s.range(0.0, photo.width as f64), s.range(0.0, photo.height as f64)];
                    let b = [
                        target[0] - (a[0][0] * centre[0] + a[0][1] * centre[1]),
                        target[1] - (a[1][0] * centre[0] + a[1][1] * centre[1]),
                    ];
                    Pattern::Photo { photo, a, b }
                }
            },
        }
    }

    /// The original generator's texture: waves at wavelengths from 2 x [`MIN_DETAIL_PX`] to the frame size and
    /// blobs of many sizes.
    fn waves(s: &mut Sampler, centre: [f64; 2], half_extent: f64, frame: f64) -> Pattern {
        let min_wavelength = 2.0 * MIN_DETAIL_PX;
        let base = [0; 3].map(|_| s.range(0.2, 0.8));
        let max_wavelength = (0.75 * frame).max(2.0 * min_wavelength);
        let wave_count = s.count(7, 12);
        let waves = (0..wave_count)
            .map(|_| {
                let wavelength = s.log_range(min_wavelength, max_wavelength);
                let direction = s.range(0.0, PI);
                let k = TAU / wavelength;
                // Warping and sharpening raise the local frequency, so they are kept to longer waves.
                let coarse = wavelength >= 2.0 * min_wavelength;
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
        Pattern::Waves { base, waves, blobs }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The normalisation gives about unit deviation, and the noise is continuous (a tiny step changes it by
    /// a tiny amount), so frame B's samples at sub-pixel offsets see the same texture.
    #[test]
    fn fractal_has_unit_scale_and_is_continuous() {
        let mut s = Sampler::new(3);
        let f = Fractal::sample(&mut s, (128.0, 128.0), (0.5, 0.5));
        let mut sum2 = 0.0;
        let mut step2 = 0.0;
        let n = 4000;
        for i in 0..n {
            let (x, y) = ((i % 80) as f64 * 3.1, (i / 80) as f64 * 2.7);
            let v = f.eval(x, y);
            sum2 += v * v;
            let d = f.eval(x + 0.01, y) - v;
            step2 += d * d;
        }
        let std = (sum2 / n as f64).sqrt();
        assert!(std > 0.5 && std < 2.0, "fractal standard deviation {std}, expected about 1");
        // A 0.01 px step changes the value by far less than its spread: the texture is continuous.
        assert!((step2 / n as f64).sqrt() < 0.05 * std);
    }

    #[test]
    fn square_wave_duty_and_anti_aliasing() {
        let period = 10.0;
        let samples: Vec<f64> = (0..1000).map(|i| square(i as f64 * 0.01, period, 0.3)).collect();
        let mean = samples.iter().sum::<f64>() / samples.len() as f64;
        assert!((mean - 0.3).abs() < 0.01, "duty 0.3 gave mean {mean}");
        assert!(samples.iter().all(|v| (0.0..=1.0).contains(v)));
        // Anti-aliased: the edge at 0 ramps over EDGE_PX.
        assert!((square(0.0, period, 0.3) - 0.5).abs() < 1e-9);
    }
}
