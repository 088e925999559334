//! Optical-flow error metrics over the valid pixels of a ground truth.
//!
//! A pixel counts when the caller's mask marks it (no mask: every pixel) and the ground truth there is
//! known per [`Flow::valid_mask`] (finite, `|value| <= 1e9`). Predictions are not filtered: a NaN in the
//! prediction makes the metric NaN, which is the honest answer. Sums run in f64. A ground truth with no
//! valid pixel is an error ([`Error::Mismatch`] saying how many pixels were masked out and how many were
//! unknown): an average over nothing is not a result.

use crate::{Error, Flow, Result};
use std::fmt;

/// KITTI outlier thresholds (devkit `flow_error.m`): an outlier has EPE above 3 px *and* above 5 % of the
/// ground-truth magnitude.
pub const FL_ABS_THRESHOLD_PX: f64 = 3.0;
/// See [`FL_ABS_THRESHOLD_PX`].
pub const FL_REL_THRESHOLD: f64 = 0.05;

/// Endpoint error `|pred - gt|` of one pixel, in pixels.
fn endpoint_error(p: &[f32], g: &[f32]) -> f64 {
    (p[0] as f64 - g[0] as f64).hypot(p[1] as f64 - g[1] as f64)
}

/// Angular error of one pixel in degrees (Barron et al., IJCV 1994; Baker et al., IJCV 2011): the angle
/// between the space-time vectors `a = (u, v, 1)` and `b = (ug, vg, 1)`.
///
/// Computed as `atan2(|a x b|, a . b)`, which equals the reference `acos(a . b / (|a| |b|))` but stays
/// accurate for small angles, where `acos` of a cosine rounded just below 1 turns identical vectors into
/// ~1e-6 degrees of error.
fn angular_error_deg(p: &[f32], g: &[f32]) -> f64 {
    let (u, v) = (p[0] as f64, p[1] as f64);
    let (ug, vg) = (g[0] as f64, g[1] as f64);
    let dot = u * ug + v * vg + 1.0;
    let cross = [v - vg, ug - u, u * vg - v * ug];
    let cross_norm = (cross[0] * cross[0] + cross[1] * cross[1] + cross[2] * cross[2]).sqrt();
    cross_norm.atan2(dot).to_degrees()
}

/// KITTI Fl outlier test for one pixel.
fn is_outlier(p: &[f32], g: &[f32]) -> bool {
    let epe = endpoint_error(p, g);
    let gt_magnitude = (g[0] as f64).hypot(g[1] as f64);
    epe > FL_ABS_THRESHOLD_PX && epe > FL_REL_THRESHOLD * gt_magnitude
}

/// Checks that the inputs agree, then returns the per-pixel `(pred, gt)` pairs of the pixels that count.
fn valid_pairs<'a>(
    pred: &'a Flow,
    gt: &'a Flow,
    valid: Option<&'a [bool]>,
) -> Result<impl Iterator<Item = (&'a [f32], &'a [f32])> + 'a> {
    pred.check_consistent()?;
    gt.check_consistent()?;
    if (pred.width, pred.height) != (gt.width, gt.height) {
        return Err(Error::Mismatch {
            message: format!(
                "prediction is {}x{} but ground truth is {}x{}: resize the prediction (scaling u by the width \
                 ratio and v by the height ratio) before evaluating",
                pred.width, pred.height, gt.width, gt.height
            ),
        });
    }
    if let Some(mask) = valid.filter(|m| m.len() != gt.pixel_count()) {
        return Err(Error::Mismatch {
            message: format!("validity mask has {} entries but the flow has {} pixels", mask.len(), gt.pixel_count()),
        });
    }
    let pairs = pred.data.chunks_exact(2).zip(gt.data.chunks_exact(2)).enumerate();
    Ok(pairs
        .filter(move |&(i, (_, g))| valid.is_none_or(|m| m[i]) && crate::flow::is_valid_flow(g[0], g[1]))
        .map(|(_, pair)| pair))
}

/// The error for a ground truth (and mask) that leaves no pixel to evaluate, with the reasons counted.
fn no_valid_pixel(gt: &Flow, valid: Option<&[bool]>) -> Error {
    let pixels = gt.pixel_count();
    let masked = valid.map_or(0, |m| m.iter().filter(|&&v| !v).count());
    let unknown = pixels - masked;
    Error::Mismatch {
        message: format!(
            "the ground truth has no valid pixel to evaluate against: of its {pixels} pixels ({}x{}), {masked} are \
             marked invalid by the validity mask and {unknown} hold unknown flow (NaN, infinite or |value| > 1e9); \
             check that the right ground-truth file was given",
            gt.width, gt.height
        ),
    }
}

/// Mean of `f` over the valid pixels; an error when there are none.
fn mean_over_valid(pred: &Flow, gt: &Flow, valid: Option<&[bool]>, f: impl Fn(&[f32], &[f32]) -> f64) -> Result<f64> {
    let (sum, count) = valid_pairs(pred, gt, valid)?.fold((0.0, 0usize), |(s, n), (p, g)| (s + f(p, g), n + 1));
    if count == 0 {
        return Err(no_valid_pixel(gt, valid));
    }
    Ok(sum / count as f64)
}

/// Average endpoint error in pixels over the valid pixels.
pub fn epe(pred: &Flow, gt: &Flow, valid: Option<&[bool]>) -> Result<f64> {
    mean_over_valid(pred, gt, valid, endpoint_error)
}

/// Average angular error in degrees over the valid pixels (Barron / Middlebury definition).
pub fn angular_error(pred: &Flow, gt: &Flow, valid: Option<&[bool]>) -> Result<f64> {
    mean_over_valid(pred, gt, valid, angular_error_deg)
}

/// KITTI Fl-all: the fraction (0..=1, not percent) of valid pixels whose EPE exceeds both 3 px and 5 % of
/// the ground-truth magnitude.
pub fn fl_all(pred: &Flow, gt: &Flow, valid: Option<&[bool]>) -> Result<f64> {
    mean_over_valid(pred, gt, valid, |p, g| if is_outlier(p, g) { 1.0 } else { 0.0 })
}

/// All metrics of one prediction against one ground truth.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FlowMetrics {
    /// Average endpoint error, pixels.
    pub epe: f64,
    /// Average angular error, degrees.
    pub ae_deg: f64,
    /// KITTI outlier fraction, 0..=1.
    pub fl_all: f64,
    /// Pixels the averages ran over.
    pub valid_pixels: usize,
}

/// Computes [`FlowMetrics`] in one pass. Fails with [`Error::Mismatch`] when the prediction, ground truth
/// and mask sizes disagree, and when no pixel is valid (all masked out or unknown in the ground truth).
pub fn evaluate(pred: &Flow, gt: &Flow, valid: Option<&[bool]>) -> Result<FlowMetrics> {
    let (mut epe_sum, mut ae_sum, mut outliers, mut count) = (0.0, 0.0, 0usize, 0usize);
    for (p, g) in valid_pairs(pred, gt, valid)? {
        epe_sum += endpoint_error(p, g);
        ae_sum += angular_error_deg(p, g);
        outliers += is_outlier(p, g) as usize;
        count += 1;
    }
    if count == 0 {
        return Err(no_valid_pixel(gt, valid));
    }
    let mean = |sum: f64| sum / count as f64;
    Ok(FlowMetrics { epe: mean(epe_sum), ae_deg: mean(ae_sum), fl_all: mean(outliers as f64), valid_pixels: count })
}

impl fmt::Display for FlowMetrics {
    /// `EPE 1.234 px  AE 5.67 deg  Fl-all 12.34 %  (n = 12345 valid px)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "EPE {:.3} px  AE {:.2} deg  Fl-all {:.2} %  (n = {} valid px)",
            self.epe,
            self.ae_deg,
            100.0 * self.fl_all,
            self.valid_pixels
        )
    }
}
