//! Dense optical flow on the CPU: the [`Flow`] field that file readers, metrics, visualisation and the
//! network outputs all exchange.
//!
//! Convention: flow is in pixels from frame A to frame B, `u` is the x (column) motion and `v` the y (row)
//! motion, so pixel `(x, y)` of A moves to `(x + u, y + v)` in B. Values are stored interleaved
//! `(u, v)` per pixel, row-major, as in the Middlebury `.flo` payload.

use crate::{Error, Result};

/// Middlebury marks unknown flow with components above this magnitude (`UNKNOWN_FLOW_THRESH` in the
/// Middlebury `flowIO.cpp` / `colorcode.cpp`).
pub const UNKNOWN_FLOW_THRESHOLD: f32 = 1e9;

/// The value Middlebury writes for unknown flow (`UNKNOWN_FLOW` in `flowIO.h`); readers of formats with an
/// explicit mask (KITTI) store it at invalid pixels so that [`Flow::valid_mask`] sees them.
pub const UNKNOWN_FLOW: f32 = 1e10;

/// A dense flow field: `data = [u(0,0), v(0,0), u(1,0), v(1,0), ...]`, `data.len() == 2 * width * height`.
#[derive(Clone, Debug, PartialEq)]
pub struct Flow {
    /// Columns.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// Interleaved `(u, v)` pairs, row-major.
    pub data: Vec<f32>,
}

/// `2 * width * height`, or a shape error naming `op` when that overflows or disagrees with `len`.
fn check_len(op: &'static str, width: usize, height: usize, len: usize) -> Result<usize> {
    let expected = width.checked_mul(height).and_then(|n| n.checked_mul(2));
    match expected {
        Some(n) if n == len => Ok(n),
        Some(n) => Err(Error::Shape {
            op,
            message: format!("a {width}x{height} flow needs {n} values (2 per pixel), got {len}"),
        }),
        None => Err(Error::Shape { op, message: format!("flow size {width}x{height} overflows usize") }),
    }
}

/// True when both components are finite and within the Middlebury known-flow range.
pub fn is_valid_flow(u: f32, v: f32) -> bool {
    u.is_finite() && v.is_finite() && u.abs() <= UNKNOWN_FLOW_THRESHOLD && v.abs() <= UNKNOWN_FLOW_THRESHOLD
}

impl Flow {
    /// A `width x height` field of zero flow.
    pub fn zeros(width: usize, height: usize) -> Flow {
        Flow { width, height, data: vec![0.0; 2 * width * height] }
    }

    /// Wraps interleaved `(u, v)` data; fails unless `data.len() == 2 * width * height`.
    pub fn from_interleaved(width: usize, height: usize, data: Vec<f32>) -> Result<Flow> {
        check_len("Flow::from_interleaved", width, height, data.len())?;
        Ok(Flow { width, height, data })
    }

    /// Builds a flow from a planar `[2, height, width]` slice (the `u` plane, then the `v` plane), the layout
    /// of an NCHW network output with N = 1.
    pub fn from_planes(width: usize, height: usize, planes: &[f32]) -> Result<Flow> {
        check_len("Flow::from_planes", width, height, planes.len())?;
        let (u_plane, v_plane) = planes.split_at(width * height);
        let data = u_plane.iter().zip(v_plane).flat_map(|(&u, &v)| [u, v]).collect();
        Ok(Flow { width, height, data })
    }

    /// The planar `[2, height, width]` layout (all `u`, then all `v`), the inverse of [`Flow::from_planes`].
    pub fn to_planes(&self) -> Vec<f32> {
        let us = self.data.iter().step_by(2);
        let vs = self.data.iter().skip(1).step_by(2);
        us.chain(vs).copied().collect()
    }

    /// Fails with [`Error::Mismatch`] when `data.len()` is not `2 * width * height` (the fields are public,
    /// so a caller can build an inconsistent value; readers and writers check before indexing).
    pub fn check_consistent(&self) -> Result<()> {
        let expected = self.width.checked_mul(self.height).and_then(|n| n.checked_mul(2));
        if expected == Some(self.data.len()) {
            return Ok(());
        }
        Err(Error::Mismatch {
            message: format!(
                "flow claims {}x{} pixels but holds {} values (2 per pixel expected)",
                self.width,
                self.height,
                self.data.len()
            ),
        })
    }

    /// Number of pixels, `width * height`.
    pub fn pixel_count(&self) -> usize {
        self.width * self.height
    }

    /// Index of pixel `(x, y)` in pixel units (multiply by 2 for `data`).
    fn pixel_index(&self, x: usize, y: usize) -> usize {
        assert!(x < self.width && y < self.height, "pixel ({x}, {y}) outside {}x{} flow", self.width, self.height);
        y * self.width + x
    }

    /// `(u, v)` at column `x`, row `y`. Panics when `(x, y)` is outside the field, like slice indexing.
    pub fn get(&self, x: usize, y: usize) -> (f32, f32) {
        let i = 2 * self.pixel_index(x, y);
        (self.data[i], self.data[i + 1])
    }

    /// Sets `(u, v)` at column `x`, row `y`. Panics when `(x, y)` is outside the field, like slice indexing.
    pub fn set(&mut self, x: usize, y: usize, u: f32, v: f32) {
        let i = 2 * self.pixel_index(x, y);
        self.data[i] = u;
        self.data[i + 1] = v;
    }

    /// Per-pixel validity, row-major: true where both components are finite and `|value| <= 1e9`
    /// (Middlebury stores unknown flow as values above 1e9).
    pub fn valid_mask(&self) -> Vec<bool> {
        self.data.chunks_exact(2).map(|uv| is_valid_flow(uv[0], uv[1])).collect()
    }

    /// Largest `sqrt(u^2 + v^2)` over pixels that are valid per [`Flow::valid_mask`] and, when `valid` is
    /// given, also marked true there (pixels past the end of a short mask count as invalid).
    /// Returns 0 when no pixel qualifies.
    pub fn max_magnitude(&self, valid: Option<&[bool]>) -> f32 {
        let selected = |i: usize| valid.is_none_or(|m| m.get(i).copied().unwrap_or(false));
        self.data
            .chunks_exact(2)
            .enumerate()
            .filter(|&(i, uv)| selected(i) && is_valid_flow(uv[0], uv[1]))
            .map(|(_, uv)| uv[0].hypot(uv[1]))
            .fold(0.0, f32::max)
    }
}
