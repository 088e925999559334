//! A picture of matches a person can check: image A on the left, image B on the right (top-aligned, black
//! where the shorter one ends), every match's two points marked, and a straight line from its point in A to
//! its point in B for at most [`MAX_LINES`] of them, evenly spread over the list (a dense matcher's thousands
//! of lines would cover the images; the CSV has them all). With a
//! ground truth, correct matches (reprojection error within the threshold) are green, drawn over the red
//! incorrect ones; without, lines cycle through a few distinct colours so neighbouring matches can be told
//! apart.

use std::path::Path;

use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder, RgbImage};

use super::metrics::reprojection_errors;
use super::Match;
use crate::data::homography::Homography;
use crate::io::write_atomic;
use crate::plot::line;
use crate::{Error, Result};

/// Largest picture drawn, pixels (as [`crate::data::synthetic::MAX_PIXELS`]): downscale larger inputs.
pub const MAX_PICTURE_PIXELS: u64 = 1 << 26;

/// Most lines drawn; beyond, every `ceil(n / MAX_LINES)`-th match gets one (all get their points marked).
pub const MAX_LINES: usize = 150;

/// Colour of a match within the ground-truth threshold.
pub const CORRECT: [u8; 3] = [40, 220, 40];
/// Colour of a match outside it.
pub const INCORRECT: [u8; 3] = [235, 40, 40];
/// Colours cycled through without a ground truth.
const PALETTE: [[u8; 3]; 6] =
    [[255, 200, 0], [0, 200, 255], [255, 80, 200], [120, 255, 80], [255, 130, 40], [170, 120, 255]];

/// A side-by-side picture of `a` and `b` with a line per match; `truth = Some((a_to_b, threshold_px))`
/// colours each line by correctness. Matches with a non-finite coordinate, or more than the picture's size
/// away from it, are not drawn. Fails when the picture would exceed [`MAX_PICTURE_PIXELS`].
pub fn draw_matches(
    a: &RgbImage,
    b: &RgbImage,
    matches: &[Match],
    truth: Option<(&Homography, f64)>,
) -> Result<RgbImage> {
    let width = a.width() as u64 + b.width() as u64;
    let height = a.height().max(b.height()) as u64;
    if width * height > MAX_PICTURE_PIXELS || width > u32::MAX as u64 {
        return Err(Error::InvalidParam {
            op: "draw_matches",
            message: format!(
                "a {width}x{height} picture exceeds the {MAX_PICTURE_PIXELS}-pixel limit: downscale the images \
                 (and the matches with them)"
            ),
        });
    }
    let mut canvas = RgbImage::new(width as u32, height as u32);
    image::imageops::replace(&mut canvas, a, 0, 0);
    image::imageops::replace(&mut canvas, b, a.width() as i64, 0);
    let errors = truth.map(|(h, _)| reprojection_errors(matches, h));
    let limit = (width + height) as f64;
    let offset = a.width() as f64;
    let correct = |i: usize| matches!((&errors, truth), (Some(e), Some((_, t))) if e[i] <= t);
    // With a ground truth the incorrect lines go first, so the correct ones stay visible on top.
    let mut order: Vec<usize> = (0..matches.len()).collect();
    if truth.is_some() {
        order.sort_by_key(|&i| correct(i));
    }
    let stride = matches.len().div_ceil(MAX_LINES).max(1);
    for i in order {
        let m = &matches[i];
        let coords = [m.xa, m.ya, m.xb + offset, m.yb];
        if coords.iter().any(|v| !(v.is_finite() && v.abs() <= limit)) {
            continue;
        }
        let colour = match truth {
            Some(_) if correct(i) => CORRECT,
            Some(_) => INCORRECT,
            None => PALETTE[i % PALETTE.len()],
        };
        let round = |v: f64| v.round() as i64;
        let (pa, pb) = ((round(coords[0]), round(coords[1])), (round(coords[2]), round(coords[3])));
        if i % stride == 0 {
            line(&mut canvas, pa, pb, colour, 1);
        }
        for (x, y) in [pa, pb] {
            // A plus sign of radius 1 at each end (clipped like the lines).
            line(&mut canvas, (x - 1, y), (x + 1, y), colour, 1);
            line(&mut canvas, (x, y - 1), (x, y + 1), colour, 1);
        }
    }
    Ok(canvas)
}

/// Writes a picture as PNG, atomically ([`write_atomic`]).
pub fn write_matches_png(path: impl AsRef<Path>, picture: &RgbImage) -> Result<()> {
    let path = path.as_ref();
    let mut png = Vec::new();
    PngEncoder::new(&mut png)
        .write_image(picture.as_raw(), picture.width(), picture.height(), ExtendedColorType::Rgb8)
        .map_err(|e| Error::Image { path: path.to_path_buf(), message: format!("cannot encode PNG: {e}") })?;
    write_atomic(path, &png)
}
