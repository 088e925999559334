//! FlowNet's data augmentation (Dosovitskiy et al., ICCV 2015, §5.2), applied on the CPU to a frame pair and
//! its ground truth together so the three stay consistent.
//!
//! Geometric: the pair is viewed through a random similarity (zoom, rotation, translation), and frame B
//! through that view composed with a small extra one (FlowNet's "relative" transformation). With `T_a`, `T_b`
//! the maps from output pixels to source pixels, output pixel `x` of frame A shows source point `s = T_a(x)`,
//! which moves to `s + f(s)` in source frame B, shown at output pixel `T_b^{-1}(s + f(s))`; so the new flow is
//! `T_b^{-1}(T_a(x) + f(T_a(x))) - x`, exact up to the bilinear interpolation of `f` between source pixels.
//! Views are drawn so the output's corners stay inside the source (no padding is invented).
//!
//! Photometric, on both frames with shared draws plus a small per-frame change of frame B: per-channel
//! multiplicative colour, contrast about mid-grey, gamma, additive brightness, Gaussian blur and additive
//! Gaussian noise. Flow is unchanged by these.
//!
//! Every draw comes from the seed, so an augmented sample is a pure function of (sample, config, seed).

use crate::data::filter::{bilinear, gaussian_blur};
use crate::data::synthetic::Sampler;
use crate::flow::{is_valid_flow, Flow};
use crate::{Error, Result};

/// A frame pair in planar RGB (`[3][H][W]`, values nominally in [0, 1]) with its forward flow in pixels.
#[derive(Clone, Debug, PartialEq)]
pub struct FramePair {
    pub width: usize,
    pub height: usize,
    pub frame_a: Vec<f32>,
    pub frame_b: Vec<f32>,
    pub flow: Flow,
}

impl FramePair {
    /// From 8-bit RGB frames (same size as the flow).
    pub fn from_rgb8(a: &image::RgbImage, b: &image::RgbImage, flow: Flow) -> Result<FramePair> {
        let (w, h) = (a.width() as usize, a.height() as usize);
        if (b.width() as usize, b.height() as usize) != (w, h) || (flow.width, flow.height) != (w, h) {
            return Err(Error::Mismatch {
                message: format!(
                    "frames {}x{} and {}x{} and flow {}x{} must have one size",
                    w,
                    h,
                    b.width(),
                    b.height(),
                    flow.width,
                    flow.height
                ),
            });
        }
        let planar = |img: &image::RgbImage| {
            let mut out = vec![0.0f32; 3 * w * h];
            for (i, p) in img.pixels().enumerate() {
                for c in 0..3 {
                    out[c * w * h + i] = p.0[c] as f32 / 255.0;
                }
            }
            out
        };
        Ok(FramePair { width: w, height: h, frame_a: planar(a), frame_b: planar(b), flow })
    }

    /// A frame as an 8-bit RGB image (values clamped to [0, 1], rounded).
    pub fn to_rgb8(&self, frame: &[f32]) -> image::RgbImage {
        let (w, h) = (self.width, self.height);
        image::RgbImage::from_fn(w as u32, h as u32, |x, y| {
            let i = y as usize * w + x as usize;
            image::Rgb([0, 1, 2].map(|c| (frame[c * w * h + i].clamp(0.0, 1.0) * 255.0).round() as u8))
        })
    }
}

/// Augmentation ranges. Ranges are `(min, max)`; a probability of 0 or a degenerate range turns a step off.
#[derive(Clone, Debug, PartialEq)]
pub struct AugmentConfig {
    /// Probability of applying the geometric view at all.
    pub geometric_prob: f64,
    /// Zoom factor of the view (output pixels per source pixel), drawn log-uniformly; >= 1 zooms in.
    pub zoom: (f64, f64),
    /// Largest rotation of the view, degrees.
    pub rotate_deg: f64,
    /// Largest translation of the view as a fraction of each side (limited further to stay inside).
    pub translate: f64,
    /// Frame B's extra view: largest zoom change (relative, e.g. 0.03 = +-3 %), rotation (degrees) and
    /// translation (pixels).
    pub relative_zoom: f64,
    pub relative_rotate_deg: f64,
    pub relative_translate_px: f64,
    /// Per-channel multiplicative colour, drawn per channel (shared by both frames).
    pub colour: (f64, f64),
    /// Contrast factor about mid-grey.
    pub contrast: (f64, f64),
    /// Gamma exponent, drawn log-uniformly.
    pub gamma: (f64, f64),
    /// Standard deviation of the additive brightness change (intensity units).
    pub brightness_std: f64,
    /// Frame B's extra photometric change, relative (colour and contrast factors within +-this, brightness
    /// with this standard deviation).
    pub relative_photometric: f64,
    /// Probability of blurring both frames, and the Gaussian sigma range in pixels.
    pub blur_prob: f64,
    pub blur_sigma: (f64, f64),
    /// Range of the standard deviation of the additive Gaussian noise (per sample; intensity units).
    pub noise_std: (f64, f64),
}

impl Default for AugmentConfig {
    /// FlowNet §5.2's kinds of change with milder ranges than the paper's (which trained 1.2M steps on
    /// photographs): zoom 1-1.5, rotation +-10 degrees, translation +-10 %, colour 0.8-1.25, contrast
    /// 0.7-1.3, gamma 0.8-1.25, brightness sigma 0.05, blur in 20 % of pairs (sigma 0.3-1.2 px), noise sigma
    /// up to 0.02; frame B differs by up to 2 %, 0.5 degrees, 0.02 zoom and 2 px.
    fn default() -> Self {
        AugmentConfig {
            geometric_prob: 0.7,
            zoom: (1.0, 1.5),
            rotate_deg: 10.0,
            translate: 0.1,
            relative_zoom: 0.02,
            relative_rotate_deg: 0.5,
            relative_translate_px: 2.0,
            colour: (0.8, 1.25),
            contrast: (0.7, 1.3),
            gamma: (0.8, 1.25),
            brightness_std: 0.05,
            relative_photometric: 0.02,
            blur_prob: 0.2,
            blur_sigma: (0.3, 1.2),
            noise_std: (0.0, 0.02),
        }
    }
}

impl AugmentConfig {
    /// No augmentation at all (the sample passes through unchanged).
    pub fn none() -> Self {
        AugmentConfig {
            geometric_prob: 0.0,
            zoom: (1.0, 1.0),
            rotate_deg: 0.0,
            translate: 0.0,
            relative_zoom: 0.0,
            relative_rotate_deg: 0.0,
            relative_translate_px: 0.0,
            colour: (1.0, 1.0),
            contrast: (1.0, 1.0),
            gamma: (1.0, 1.0),
            brightness_std: 0.0,
            relative_photometric: 0.0,
            blur_prob: 0.0,
            blur_sigma: (0.0, 0.0),
            noise_std: (0.0, 0.0),
        }
    }

    /// The configuration as `field=value` / `field=lo:hi` pairs, every field, comma-separated: what
    /// [`AugmentConfig::from_spec`] reads back exactly (and what a checkpoint records).
    pub fn to_spec(&self) -> String {
        let mut parts = Vec::new();
        for (name, v) in self.values() {
            parts.push(match v {
                Field::Value(x) => format!("{name}={x}"),
                Field::Range(lo, hi) => format!("{name}={lo}:{hi}"),
            });
        }
        parts.join(",")
    }

    /// Reads a specification: `default`, `none` (also `true` / `false`, as older checkpoints record it), or
    /// comma-separated overrides of the default such as `zoom=1:1.3,rotate_deg=5,noise_std=0:0.01` (fields as
    /// in this struct; ranges as `lo:hi`). The result is validated; errors name the field and list the names.
    pub fn from_spec(spec: &str) -> Result<AugmentConfig> {
        let spec = spec.trim();
        match spec {
            "default" | "true" | "" => return Ok(AugmentConfig::default()),
            "none" | "false" => return Ok(AugmentConfig::none()),
            _ => {}
        }
        let mut cfg = AugmentConfig::default();
        let names: Vec<&str> = cfg.values().iter().map(|(n, _)| *n).collect();
        let bad = |message: String| Error::InvalidParam { op: "augment", message };
        for item in spec.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (name, value) = item.split_once('=').ok_or_else(|| {
                bad(format!("{item:?}: expected field=value or field=lo:hi (fields: {})", names.join(", ")))
            })?;
            let num = |t: &str| t.trim().parse::<f64>().map_err(|_| bad(format!("{item:?}: {t:?} is not a number")));
            let field = match value.split_once(':') {
                Some((lo, hi)) => Field::Range(num(lo)?, num(hi)?),
                None => Field::Value(num(value)?),
            };
            cfg.set(name.trim(), field).map_err(|_| {
                bad(format!("{item:?}: unknown field or wrong form (fields: {}; ranges take lo:hi)", names.join(", ")))
            })?;
        }
        cfg.validate()?;
        Ok(cfg)
    }

    fn values(&self) -> Vec<(&'static str, Field)> {
        use Field::{Range, Value};
        vec![
            ("geometric_prob", Value(self.geometric_prob)),
            ("zoom", Range(self.zoom.0, self.zoom.1)),
            ("rotate_deg", Value(self.rotate_deg)),
            ("translate", Value(self.translate)),
            ("relative_zoom", Value(self.relative_zoom)),
            ("relative_rotate_deg", Value(self.relative_rotate_deg)),
            ("relative_translate_px", Value(self.relative_translate_px)),
            ("colour", Range(self.colour.0, self.colour.1)),
            ("contrast", Range(self.contrast.0, self.contrast.1)),
            ("gamma", Range(self.gamma.0, self.gamma.1)),
            ("brightness_std", Value(self.brightness_std)),
            ("relative_photometric", Value(self.relative_photometric)),
            ("blur_prob", Value(self.blur_prob)),
            ("blur_sigma", Range(self.blur_sigma.0, self.blur_sigma.1)),
            ("noise_std", Range(self.noise_std.0, self.noise_std.1)),
        ]
    }

    fn set(&mut self, name: &str, field: Field) -> std::result::Result<(), ()> {
        match (name, field) {
            ("geometric_prob", Field::Value(v)) => self.geometric_prob = v,
            ("zoom", Field::Range(a, b)) => self.zoom = (a, b),
            ("rotate_deg", Field::Value(v)) => self.rotate_deg = v,
            ("translate", Field::Value(v)) => self.translate = v,
            ("relative_zoom", Field::Value(v)) => self.relative_zoom = v,
            ("relative_rotate_deg", Field::Value(v)) => self.relative_rotate_deg = v,
            ("relative_translate_px", Field::Value(v)) => self.relative_translate_px = v,
            ("colour", Field::Range(a, b)) => self.colour = (a, b),
            ("contrast", Field::Range(a, b)) => self.contrast = (a, b),
            ("gamma", Field::Range(a, b)) => self.gamma = (a, b),
            ("brightness_std", Field::Value(v)) => self.brightness_std = v,
            ("relative_photometric", Field::Value(v)) => self.relative_photometric = v,
            ("blur_prob", Field::Value(v)) => self.blur_prob = v,
            ("blur_sigma", Field::Range(a, b)) => self.blur_sigma = (a, b),
            ("noise_std", Field::Range(a, b)) => self.noise_std = (a, b),
            _ => return Err(()),
        }
        Ok(())
    }

    /// Checks every field; the error names the offending one.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, message: String| {
            Err(Error::InvalidParam { op: "augment", message: format!("{field}: {message}") })
        };
        let range = |field: &str, r: (f64, f64), lo: f64, hi: f64| -> Result<()> {
            if !(r.0.is_finite() && r.1.is_finite() && lo <= r.0 && r.0 <= r.1 && r.1 <= hi) {
                return bad(field, format!("({}, {}) must be ordered and within [{lo}, {hi}]", r.0, r.1));
            }
            Ok(())
        };
        let value = |field: &str, v: f64, lo: f64, hi: f64| -> Result<()> {
            if !(v.is_finite() && lo <= v && v <= hi) {
                return bad(field, format!("{v} must be within [{lo}, {hi}]"));
            }
            Ok(())
        };
        value("geometric_prob", self.geometric_prob, 0.0, 1.0)?;
        range("zoom", self.zoom, 0.25, 4.0)?;
        value("rotate_deg", self.rotate_deg, 0.0, 180.0)?;
        value("translate", self.translate, 0.0, 1.0)?;
        value("relative_zoom", self.relative_zoom, 0.0, 0.5)?;
        value("relative_rotate_deg", self.relative_rotate_deg, 0.0, 45.0)?;
        value("relative_translate_px", self.relative_translate_px, 0.0, 1000.0)?;
        range("colour", self.colour, 0.0, 10.0)?;
        range("contrast", self.contrast, 0.0, 10.0)?;
        range("gamma", self.gamma, 0.05, 20.0)?;
        value("brightness_std", self.brightness_std, 0.0, 1.0)?;
        value("relative_photometric", self.relative_photometric, 0.0, 0.5)?;
        value("blur_prob", self.blur_prob, 0.0, 1.0)?;
        range("blur_sigma", self.blur_sigma, 0.0, 10.0)?;
        range("noise_std", self.noise_std, 0.0, 1.0)
    }
}

/// One field of an [`AugmentConfig`] in its specification form.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Field {
    Value(f64),
    Range(f64, f64),
}

/// `x_src = c + (1 / zoom) R(angle) (x - c) + t`: output pixel -> source pixel, and back.
#[derive(Clone, Copy, Debug)]
struct View {
    centre: [f64; 2],
    zoom: f64,
    cos: f64,
    sin: f64,
    t: [f64; 2],
}

impl View {
    fn new(centre: [f64; 2], zoom: f64, angle: f64, t: [f64; 2]) -> View {
        View { centre, zoom, cos: angle.cos(), sin: angle.sin(), t }
    }
    fn identity(centre: [f64; 2]) -> View {
        View::new(centre, 1.0, 0.0, [0.0, 0.0])
    }
    fn to_source(self, x: f64, y: f64) -> (f64, f64) {
        let (dx, dy) = (x - self.centre[0], y - self.centre[1]);
        let k = 1.0 / self.zoom;
        (
            self.centre[0] + k * (self.cos * dx - self.sin * dy) + self.t[0],
            self.centre[1] + k * (self.sin * dx + self.cos * dy) + self.t[1],
        )
    }
    fn to_output(self, sx: f64, sy: f64) -> (f64, f64) {
        let (dx, dy) = (sx - self.centre[0] - self.t[0], sy - self.centre[1] - self.t[1]);
        (
            self.centre[0] + self.zoom * (self.cos * dx + self.sin * dy),
            self.centre[1] + self.zoom * (-self.sin * dx + self.cos * dy),
        )
    }
    /// All four output corners land inside the source's pixel grid.
    fn inside(&self, w: usize, h: usize) -> bool {
        let (mx, my) = ((w - 1) as f64, (h - 1) as f64);
        [(0.0, 0.0), (mx, 0.0), (0.0, my), (mx, my)].iter().all(|&(x, y)| {
            let (sx, sy) = self.to_source(x, y);
            (0.0..=mx).contains(&sx) && (0.0..=my).contains(&sy)
        })
    }
}

/// Bilinear sample of the flow at `(x, y)` over its known neighbours only (weights renormalised); `None`
/// where no neighbour is known.
fn flow_at(flow: &Flow, x: f64, y: f64) -> Option<(f64, f64)> {
    let (w, h) = (flow.width, flow.height);
    let x = x.clamp(0.0, (w - 1) as f64);
    let y = y.clamp(0.0, (h - 1) as f64);
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (fx, fy) = (x - x0 as f64, y - y0 as f64);
    let mut acc = (0.0, 0.0, 0.0);
    for (xx, yy, wt) in
        [(x0, y0, (1.0 - fx) * (1.0 - fy)), (x1, y0, fx * (1.0 - fy)), (x0, y1, (1.0 - fx) * fy), (x1, y1, fx * fy)]
    {
        let (u, v) = flow.get(xx, yy);
        if wt > 0.0 && is_valid_flow(u, v) {
            acc = (acc.0 + wt * u as f64, acc.1 + wt * v as f64, acc.2 + wt);
        }
    }
    (acc.2 > 0.0).then(|| (acc.0 / acc.2, acc.1 / acc.2))
}

/// Draws the views of both frames; identity when the draw is off or no view inside the source was found.
fn draw_views(cfg: &AugmentConfig, s: &mut Sampler, w: usize, h: usize) -> (View, View) {
    let centre = [(w - 1) as f64 / 2.0, (h - 1) as f64 / 2.0];
    let identity = (View::identity(centre), View::identity(centre));
    if cfg.geometric_prob <= 0.0 || s.unit() >= cfg.geometric_prob {
        return identity;
    }
    let mut zoom = s.log_range(cfg.zoom.0, cfg.zoom.1);
    let angle = s.range(-cfg.rotate_deg, cfg.rotate_deg).to_radians();
    let mut t = [s.range(-cfg.translate, cfg.translate) * w as f64, s.range(-cfg.translate, cfg.translate) * h as f64];
    let rz = 1.0 + s.range(-cfg.relative_zoom, cfg.relative_zoom);
    let ra = s.range(-cfg.relative_rotate_deg, cfg.relative_rotate_deg).to_radians();
    let rt = [
        s.range(-cfg.relative_translate_px, cfg.relative_translate_px),
        s.range(-cfg.relative_translate_px, cfg.relative_translate_px),
    ];
    // Shrink the translation and zoom in a little until both views fit (a rotated view needs some zoom to
    // stay inside); a view that never fits is dropped.
    for _ in 0..12 {
        let a = View::new(centre, zoom, angle, t);
        let b = View::new(centre, zoom * rz, angle + ra, [t[0] + rt[0], t[1] + rt[1]]);
        if a.inside(w, h) && b.inside(w, h) {
            return (a, b);
        }
        t = [t[0] * 0.5, t[1] * 0.5];
        zoom *= 1.05;
    }
    identity
}

/// Per-frame photometric parameters.
struct Photometric {
    colour: [f64; 3],
    contrast: f64,
    gamma: f64,
    brightness: f64,
}

impl Photometric {
    fn apply(&self, frame: &mut [f32], plane: usize) {
        for (c, values) in frame.chunks_exact_mut(plane).enumerate() {
            let k = self.colour[c];
            for v in values.iter_mut() {
                let x = ((*v as f64 * k - 0.5) * self.contrast + 0.5).clamp(0.0, 1.0);
                *v = (x.powf(self.gamma) + self.brightness).clamp(0.0, 1.0) as f32;
            }
        }
    }
}

/// Applies the augmentation drawn from `seed` to `pair` (returns a new pair of the same size).
pub fn augment(pair: &FramePair, cfg: &AugmentConfig, seed: u64) -> Result<FramePair> {
    cfg.validate()?;
    let (w, h) = (pair.width, pair.height);
    if w < 2 || h < 2 {
        return Err(Error::InvalidParam { op: "augment", message: format!("a {w}x{h} pair is too small to augment") });
    }
    let mut s = Sampler::new(seed ^ 0x4155_474d_454e_5421);
    let plane = w * h;
    let (va, vb) = draw_views(cfg, &mut s, w, h);

    // Geometric view: resample both frames and transform the flow.
    let resample = |frame: &[f32], view: &View| -> Vec<f32> {
        let mut out = vec![0.0f32; 3 * plane];
        for y in 0..h {
            for x in 0..w {
                let (sx, sy) = view.to_source(x as f64, y as f64);
                for c in 0..3 {
                    out[c * plane + y * w + x] = bilinear(&frame[c * plane..(c + 1) * plane], w, h, sx, sy);
                }
            }
        }
        out
    };
    let mut out = FramePair {
        width: w,
        height: h,
        frame_a: resample(&pair.frame_a, &va),
        frame_b: resample(&pair.frame_b, &vb),
        flow: Flow::zeros(w, h),
    };
    for y in 0..h {
        for x in 0..w {
            let (sx, sy) = va.to_source(x as f64, y as f64);
            let (u, v) = match flow_at(&pair.flow, sx, sy) {
                Some((fu, fv)) => {
                    let (bx, by) = vb.to_output(sx + fu, sy + fv);
                    ((bx - x as f64) as f32, (by - y as f64) as f32)
                }
                None => (f32::NAN, f32::NAN),
            };
            out.flow.set(x, y, u, v);
        }
    }

    // Photometric: shared draws, then frame B's small extra change.
    let shared = Photometric {
        colour: [0; 3].map(|_| s.log_range(cfg.colour.0.max(1e-6), cfg.colour.1.max(1e-6))),
        contrast: s.range(cfg.contrast.0, cfg.contrast.1),
        gamma: s.log_range(cfg.gamma.0, cfg.gamma.1),
        brightness: cfg.brightness_std * s.gaussian(),
    };
    let r = cfg.relative_photometric;
    let relative = Photometric {
        colour: shared.colour.map(|c| c * (1.0 + s.range(-r, r))),
        contrast: shared.contrast * (1.0 + s.range(-r, r)),
        gamma: shared.gamma,
        brightness: shared.brightness + r * s.gaussian(),
    };
    shared.apply(&mut out.frame_a, plane);
    relative.apply(&mut out.frame_b, plane);
    if cfg.blur_prob > 0.0 && s.unit() < cfg.blur_prob {
        let sigma = s.range(cfg.blur_sigma.0, cfg.blur_sigma.1);
        for channel in out.frame_a.chunks_exact_mut(plane).chain(out.frame_b.chunks_exact_mut(plane)) {
            gaussian_blur(channel, w, h, 1, sigma);
        }
    }
    let noise = s.range(cfg.noise_std.0, cfg.noise_std.1);
    if noise > 0.0 {
        for v in out.frame_a.iter_mut().chain(out.frame_b.iter_mut()) {
            *v = (*v as f64 + noise * s.gaussian()).clamp(0.0, 1.0) as f32;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_invert_and_stay_inside() {
        let mut s = Sampler::new(5);
        let cfg = AugmentConfig { geometric_prob: 1.0, ..AugmentConfig::default() };
        let mut non_identity = 0;
        for _ in 0..50 {
            let (a, b) = draw_views(&cfg, &mut s, 96, 64);
            assert!(a.inside(96, 64) && b.inside(96, 64));
            if a.zoom != 1.0 {
                non_identity += 1;
            }
            for &(x, y) in &[(0.0, 0.0), (17.5, 40.25), (95.0, 63.0)] {
                let (sx, sy) = a.to_source(x, y);
                let (bx, by) = a.to_output(sx, sy);
                assert!((bx - x).abs() < 1e-9 && (by - y).abs() < 1e-9);
            }
        }
        assert!(non_identity >= 48, "only {non_identity} of 50 views were drawn");
    }

    #[test]
    fn specifications_round_trip_and_name_bad_fields() {
        for cfg in [AugmentConfig::default(), AugmentConfig::none()] {
            assert_eq!(AugmentConfig::from_spec(&cfg.to_spec()).unwrap(), cfg);
        }
        assert_eq!(AugmentConfig::from_spec("false").unwrap(), AugmentConfig::none());
        let c = AugmentConfig::from_spec("zoom=1:1.2, rotate_deg=3,noise_std=0:0.01").unwrap();
        assert_eq!((c.zoom, c.rotate_deg, c.noise_std), ((1.0, 1.2), 3.0, (0.0, 0.01)));
        assert_eq!(c.gamma, AugmentConfig::default().gamma, "other fields keep their defaults");
        for bad in ["zoom=2", "rotate=3", "gamma=2:1", "blur_prob=x", "noise_std"] {
            let e = AugmentConfig::from_spec(bad).unwrap_err().to_string();
            assert!(e.contains(bad.split('=').next().unwrap()), "{bad}: {e}");
        }
    }

    #[test]
    fn none_is_the_identity() {
        let w = 8;
        let h = 5;
        let frame: Vec<f32> = (0..3 * w * h).map(|i| (i % 7) as f32 / 7.0).collect();
        let mut flow = Flow::zeros(w, h);
        flow.set(3, 2, 1.5, -0.5);
        let pair = FramePair { width: w, height: h, frame_a: frame.clone(), frame_b: frame.clone(), flow };
        let out = augment(&pair, &AugmentConfig::none(), 9).unwrap();
        assert_eq!(out, pair);
    }
}
