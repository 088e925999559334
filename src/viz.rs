//! The Middlebury colour coding of optical flow (Baker et al., "A Database and Evaluation Methodology for
//! Optical Flow", IJCV 2011; `colorcode.cpp` `makecolorwheel` / `computeColor` / `flowToColor`, the same
//! scheme as Tom Runia's `flow_vis`).
//!
//! Hue encodes direction: the angle `atan2(-v, -u) / pi` in `[-1, 1]` picks a position on a 55-colour wheel
//! (red -> yellow -> green -> cyan -> blue -> magenta -> red). Saturation encodes speed: zero flow is white and
//! flow at the normalising magnitude is the fully saturated wheel colour; flow beyond it is the wheel colour
//! darkened to 75 %. Unknown flow is black.

use crate::io::write_atomic;
use crate::{Error, Flow, Result};
use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder, RgbImage};
use std::path::Path;

/// Segment lengths of the wheel, chosen by Baker et al. for perceptual uniformity:
/// red-yellow, yellow-green, green-cyan, cyan-blue, blue-magenta, magenta-red.
const RY: usize = 15;
const YG: usize = 6;
const GC: usize = 4;
const CB: usize = 11;
const BM: usize = 13;
const MR: usize = 6;
/// Number of wheel colours, 55.
pub const WHEEL_COLORS: usize = RY + YG + GC + CB + BM + MR;

/// `floor(255 * i / n)`, the ramp `makecolorwheel` uses inside each segment (integer division in the C code).
fn ramp(i: usize, n: usize) -> u8 {
    (255 * i / n) as u8
}

/// The 55 wheel colours as RGB, exactly as `makecolorwheel` builds them.
pub fn color_wheel() -> [[u8; 3]; WHEEL_COLORS] {
    let mut wheel = [[0u8; 3]; WHEEL_COLORS];
    let mut k = 0;
    let mut push = |n: usize, color: &dyn Fn(usize) -> [u8; 3]| {
        for i in 0..n {
            wheel[k] = color(i);
            k += 1;
        }
    };
    push(RY, &|i| [255, ramp(i, RY), 0]);
    push(YG, &|i| [255 - ramp(i, YG), 255, 0]);
    push(GC, &|i| [0, 255, ramp(i, GC)]);
    push(CB, &|i| [0, 255 - ramp(i, CB), 255]);
    push(BM, &|i| [ramp(i, BM), 0, 255]);
    push(MR, &|i| [255, 0, 255 - ramp(i, MR)]);
    wheel
}

/// Colour of one flow vector already divided by the normalising magnitude (`computeColor`).
///
/// The arithmetic stays in the 0..255 scale: `w + (1 - rad) * (255 - w)` equals the reference
/// `255 * (1 - rad * (1 - w / 255))` but has no 1/255 rounding, so wheel colours come out exactly.
/// Non-finite input is the caller's job (it is black in [`flow_to_rgb`]).
pub fn normalized_flow_color(wheel: &[[u8; 3]; WHEEL_COLORS], u: f64, v: f64) -> [u8; 3] {
    let rad = u.hypot(v);
    let angle = (-v).atan2(-u) / std::f64::consts::PI;
    let fk = (angle + 1.0) / 2.0 * (WHEEL_COLORS - 1) as f64;
    let k0 = (fk.floor() as usize).min(WHEEL_COLORS - 1);
    let k1 = (k0 + 1) % WHEEL_COLORS;
    let f = fk - k0 as f64;
    let mut rgb = [0u8; 3];
    for (c, out) in rgb.iter_mut().enumerate() {
        let w = (1.0 - f) * wheel[k0][c] as f64 + f * wheel[k1][c] as f64;
        let col = if rad <= 1.0 { w + (1.0 - rad) * (255.0 - w) } else { 0.75 * w };
        *out = col.floor().clamp(0.0, 255.0) as u8;
    }
    rgb
}

/// The normalising magnitude: `max_magnitude` when it is given, finite and positive (Middlebury's
/// `maxmotion`), else the largest valid magnitude in `flow`, else 1 for an all-zero or all-unknown field.
fn normalising_magnitude(flow: &Flow, max_magnitude: Option<f32>) -> f64 {
    let given = max_magnitude.filter(|m| m.is_finite() && *m > 0.0);
    let max = given.unwrap_or_else(|| flow.max_magnitude(None));
    if max > 0.0 {
        max as f64
    } else {
        1.0
    }
}

/// Colours `flow` with the Middlebury wheel, normalising speed by `max_magnitude` (or, when `None`, by the
/// largest valid magnitude in the field). Pixels whose flow is unknown per [`Flow::valid_mask`] are black,
/// as are pixels missing from an inconsistent `data` vector.
pub fn flow_to_rgb(flow: &Flow, max_magnitude: Option<f32>) -> RgbImage {
    let wheel = color_wheel();
    let max = normalising_magnitude(flow, max_magnitude);
    RgbImage::from_fn(flow.width as u32, flow.height as u32, |x, y| {
        let i = 2 * (y as usize * flow.width + x as usize);
        let color = match (flow.data.get(i), flow.data.get(i + 1)) {
            (Some(&u), Some(&v)) if crate::flow::is_valid_flow(u, v) => {
                normalized_flow_color(&wheel, u as f64 / max, v as f64 / max)
            }
            _ => [0, 0, 0],
        };
        image::Rgb(color)
    })
}

/// Encodes an RGB image as PNG bytes; `path` only names the destination in errors.
fn encode_png(image: &RgbImage, path: &Path) -> Result<Vec<u8>> {
    let mut png = Vec::new();
    PngEncoder::new(&mut png)
        .write_image(image.as_raw(), image.width(), image.height(), ExtendedColorType::Rgb8)
        .map_err(|e| Error::Image { path: path.into(), message: format!("cannot encode PNG: {e}") })?;
    Ok(png)
}

/// The colour coding of `flow` (see [`flow_to_rgb`]) as 8-bit RGB PNG bytes, for writing later (e.g. with
/// [`crate::io::OutputSet::write`]); `path` only names the destination in errors.
pub fn encode_flow_png(flow: &Flow, max_magnitude: Option<f32>, path: &Path) -> Result<Vec<u8>> {
    flow.check_consistent()?;
    if flow.width == 0 || flow.height == 0 || u32::try_from(flow.width.max(flow.height)).is_err() {
        return Err(Error::Shape {
            op: "write_flow_png",
            message: format!("a {}x{} flow cannot be stored as a PNG", flow.width, flow.height),
        });
    }
    encode_png(&flow_to_rgb(flow, max_magnitude), path)
}

/// Writes the colour coding of `flow` (see [`flow_to_rgb`]) as an 8-bit RGB PNG, atomically.
pub fn write_flow_png(path: impl AsRef<Path>, flow: &Flow, max_magnitude: Option<f32>) -> Result<()> {
    let path = path.as_ref();
    write_atomic(path, &encode_flow_png(flow, max_magnitude, path)?)
}

/// A `size x size` key of the colour coding: the pixel at offset `(dx, dy)` from the centre shows the colour
/// of flow `(dx, dy) / (size / 2)`, so the inscribed circle is flow at the normalising magnitude (full
/// saturation) and the corners outside it show the darkened out-of-range colours, as in Middlebury's
/// `colortest`. Image y grows downwards, like `v`, so the key reads in image directions.
pub fn color_wheel_legend(size: u32) -> RgbImage {
    let wheel = color_wheel();
    let centre = (size as f64 - 1.0) / 2.0;
    let radius = (size as f64 / 2.0).max(f64::MIN_POSITIVE);
    RgbImage::from_fn(size, size, |x, y| {
        let u = (x as f64 - centre) / radius;
        let v = (y as f64 - centre) / radius;
        image::Rgb(normalized_flow_color(&wheel, u, v))
    })
}
