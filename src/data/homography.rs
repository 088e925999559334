//! Planar homographies: 3x3 projective maps of the image plane, in f64.
//!
//! Convention: a [`Homography`] maps a point `p = (x, y)` of one image to `H(p) = (X / W, Y / W)` with
//! `(X, Y, W) = M (x, y, 1)`, where `x` is the column and `y` the row, in **0-based pixel coordinates whose
//! integers are pixel centres** (the convention of [`crate::Flow`] and of OpenCV / the Oxford `H1toNp` files).
//! MATLAB-made data (the CMP `*_model.txt`) use 1-based coordinates; [`Homography::from_one_based`] converts.
//!
//! A homography is only defined up to scale, so the matrix is stored normalised (`m[2][2] = 1` when that entry
//! is not negligible, else unit Frobenius norm); two matrices that differ only by scale give equal
//! homographies up to rounding.

use crate::{Error, Result};

/// The `op` named in this module's errors.
const OP: &str = "homography";

/// A matrix is refused as singular when `|det M|` is below this fraction of the product of its column norms
/// (Hadamard's bound, which it reaches for orthogonal columns). Scaling the source pixel unit scales a column
/// and leaves the ratio unchanged; a homography between real images of up to 10^5 pixels a side sits above
/// 1e-9, while a rank-deficient matrix rounded to f64 sits near 1e-16.
pub const SINGULAR_RATIO: f64 = 1e-12;

/// A point maps to infinity (no image) when its homogeneous `|W|` is below this fraction of
/// `|m20 x| + |m21 y| + |m22|`.
const INFINITY_RATIO: f64 = 1e-12;

/// A non-singular 3x3 homography; see the module documentation for the coordinate convention.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Homography {
    m: [[f64; 3]; 3],
}

/// `a b` for 3x3 matrices.
fn mul(a: &[[f64; 3]; 3], b: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let mut out = [[0.0; 3]; 3];
    for (i, row) in out.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    out
}

fn det(m: &[[f64; 3]; 3]) -> f64 {
    m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
}

/// The adjugate (transposed cofactor matrix): `M^-1 = adj(M) / det(M)`, and as a homography `M^-1 ~ adj(M)`.
fn adjugate(m: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let c = |r0: usize, r1: usize, c0: usize, c1: usize| m[r0][c0] * m[r1][c1] - m[r0][c1] * m[r1][c0];
    [
        [c(1, 2, 1, 2), -c(0, 2, 1, 2), c(0, 1, 1, 2)],
        [-c(1, 2, 0, 2), c(0, 2, 0, 2), -c(0, 1, 0, 2)],
        [c(1, 2, 0, 1), -c(0, 2, 0, 1), c(0, 1, 0, 1)],
    ]
}

/// Scales `m` so that `m[2][2] = 1` when `|m[2][2]|` is at least 1e-12 of the largest entry (one division,
/// so a matrix already in that form is unchanged bit for bit), else to unit Frobenius norm. `m` must be
/// finite and not all zero.
fn normalised(m: [[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let largest = m.iter().flatten().fold(0.0f64, |a, &v| a.max(v.abs()));
    if m[2][2].abs() >= 1e-12 * largest {
        let k = m[2][2];
        return m.map(|r| r.map(|v| v / k));
    }
    // Divide by the largest entry first so the squares cannot overflow.
    let scaled = m.map(|r| r.map(|v| v / largest));
    let norm = scaled.iter().flatten().map(|v| v * v).sum::<f64>().sqrt();
    scaled.map(|r| r.map(|v| v / norm))
}

impl Homography {
    /// Wraps a row-major matrix. Fails ([`Error::InvalidParam`]) when an entry is not finite, or the matrix is
    /// zero or singular ([`SINGULAR_RATIO`]): such a matrix maps the plane onto a line or a point and has no
    /// inverse.
    pub fn new(m: [[f64; 3]; 3]) -> Result<Homography> {
        if let Some(v) = m.iter().flatten().find(|v| !v.is_finite()) {
            return Err(Error::InvalidParam { op: OP, message: format!("the matrix has a non-finite entry ({v})") });
        }
        if m.iter().flatten().all(|&v| v == 0.0) {
            return Err(Error::InvalidParam { op: OP, message: "the matrix is all zeros".into() });
        }
        let n = normalised(m);
        let columns: f64 = (0..3).map(|j| (0..3).map(|i| n[i][j] * n[i][j]).sum::<f64>().sqrt()).product();
        let d = det(&n);
        if d.is_nan() || d.abs() < SINGULAR_RATIO * columns {
            return Err(Error::InvalidParam {
                op: OP,
                message: format!(
                    "the matrix {m:?} is singular (|det| = {:.3e} of the product of its column norms, below \
                     {SINGULAR_RATIO:e}): it maps the plane onto a line or a point and cannot be inverted",
                    d.abs() / columns
                ),
            });
        }
        Ok(Homography { m: n })
    }

    /// The identity map.
    pub fn identity() -> Homography {
        Homography { m: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]] }
    }

    /// `(x, y) -> (x + tx, y + ty)`; fails on non-finite input.
    pub fn translation(tx: f64, ty: f64) -> Result<Homography> {
        Homography::new([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]])
    }

    /// The map between the pixel grids of an image of `from = (width, height)` pixels and the same image
    /// resized to `to`: pixel centres `x -> (x + 0.5) * to_w / from_w - 0.5` (so the image borders, at
    /// `-0.5` and `width - 0.5`, map onto each other). Converts a homography computed at the size a network
    /// ran at back to the original images: `H_orig = S_b^-1 ∘ H_net ∘ S_a`. Fails on a zero size.
    pub fn pixel_resize(from: (u32, u32), to: (u32, u32)) -> Result<Homography> {
        if from.0 == 0 || from.1 == 0 || to.0 == 0 || to.1 == 0 {
            return Err(Error::InvalidParam {
                op: OP,
                message: format!(
                    "cannot resize between {}x{} and {}x{} pixels: sizes must be at least 1",
                    from.0, from.1, to.0, to.1
                ),
            });
        }
        let (sx, sy) = (to.0 as f64 / from.0 as f64, to.1 as f64 / from.1 as f64);
        Homography::new([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
    }

    /// The normalised matrix, row-major (see the module documentation).
    pub fn matrix(&self) -> [[f64; 3]; 3] {
        self.m
    }

    /// The image of `(x, y)`, or `None` when the point maps to infinity (it lies on the line the homography
    /// sends to the horizon) or the result is not finite.
    pub fn apply(&self, x: f64, y: f64) -> Option<(f64, f64)> {
        let m = &self.m;
        let w = m[2][0] * x + m[2][1] * y + m[2][2];
        let scale = (m[2][0] * x).abs() + (m[2][1] * y).abs() + m[2][2].abs();
        if w.is_nan() || w.abs() <= INFINITY_RATIO * scale {
            return None;
        }
        let px = (m[0][0] * x + m[0][1] * y + m[0][2]) / w;
        let py = (m[1][0] * x + m[1][1] * y + m[1][2]) / w;
        (px.is_finite() && py.is_finite()).then_some((px, py))
    }

    /// The inverse map (the matrix is non-singular by construction).
    pub fn inverse(&self) -> Homography {
        Homography { m: normalised(adjugate(&self.m)) }
    }

    /// `outer ∘ self`: first this map, then `outer` (matrix product `outer * self`).
    pub fn then(&self, outer: &Homography) -> Homography {
        let p = mul(&outer.m, &self.m);
        // A product of non-singular matrices is non-singular, and normalised entries (at most 1e12) cannot
        // overflow: this branch is unreachable for homographies of this module, and kept instead of a panic.
        if p.iter().flatten().all(|&v| v == 0.0) || p.iter().flatten().any(|v| !v.is_finite()) {
            return Homography::identity();
        }
        Homography { m: normalised(p) }
    }

    /// The same map in 0-based pixel coordinates, for a homography `h1` written in 1-based ones (MATLAB's:
    /// the first pixel's centre is `(1, 1)`): `H0 = T(-1) H1 T(+1)` with `T(t)` the translation by `(t, t)`.
    pub fn from_one_based(h1: &Homography) -> Homography {
        let to_one = [[1.0, 0.0, 1.0], [0.0, 1.0, 1.0], [0.0, 0.0, 1.0]];
        let to_zero = [[1.0, 0.0, -1.0], [0.0, 1.0, -1.0], [0.0, 0.0, 1.0]];
        Homography { m: normalised(mul(&to_zero, &mul(&h1.m, &to_one))) }
    }

    /// The same map in 1-based pixel coordinates (inverse of [`Homography::from_one_based`]).
    pub fn to_one_based(&self) -> Homography {
        let to_one = [[1.0, 0.0, 1.0], [0.0, 1.0, 1.0], [0.0, 0.0, 1.0]];
        let to_zero = [[1.0, 0.0, -1.0], [0.0, 1.0, -1.0], [0.0, 0.0, 1.0]];
        Homography { m: normalised(mul(&to_one, &mul(&self.m, &to_zero))) }
    }

    /// The homography mapping the four points `src[i]` to `dst[i]` (the direct linear transform with
    /// `m[2][2] = 1`, on Hartley-normalised coordinates). Fails when a point is not finite, three of either
    /// set are collinear (no unique homography), or the solution is singular.
    pub fn from_4_points(src: [(f64, f64); 4], dst: [(f64, f64); 4]) -> Result<Homography> {
        if src.iter().chain(&dst).any(|p| !(p.0.is_finite() && p.1.is_finite())) {
            return Err(Error::InvalidParam { op: OP, message: "from_4_points: a point is not finite".into() });
        }
        // Hartley normalisation: centroid at 0, mean distance sqrt(2); conditions the 8x8 system.
        let normaliser = |pts: &[(f64, f64); 4]| -> [[f64; 3]; 3] {
            let (cx, cy) = (pts.iter().map(|p| p.0).sum::<f64>() / 4.0, pts.iter().map(|p| p.1).sum::<f64>() / 4.0);
            let mean = pts.iter().map(|p| (p.0 - cx).hypot(p.1 - cy)).sum::<f64>() / 4.0;
            let s = if mean > 0.0 { std::f64::consts::SQRT_2 / mean } else { 1.0 };
            [[s, 0.0, -s * cx], [0.0, s, -s * cy], [0.0, 0.0, 1.0]]
        };
        let (ts, td) = (normaliser(&src), normaliser(&dst));
        let apply = |t: &[[f64; 3]; 3], p: (f64, f64)| (t[0][0] * p.0 + t[0][2], t[1][1] * p.1 + t[1][2]);
        // Rows: [x y 1 0 0 0 -u x -u y | u] and [0 0 0 x y 1 -v x -v y | v].
        let mut a = [[0.0f64; 9]; 8];
        for i in 0..4 {
            let (x, y) = apply(&ts, src[i]);
            let (u, v) = apply(&td, dst[i]);
            a[2 * i] = [x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y, u];
            a[2 * i + 1] = [0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y, v];
        }
        let degenerate = || Error::InvalidParam {
            op: OP,
            message: format!(
                "from_4_points: no unique homography maps {src:?} to {dst:?} (three points collinear, or repeated)"
            ),
        };
        // Gaussian elimination with partial pivoting; the normalised entries are O(1), so an absolute pivot
        // threshold is meaningful.
        for col in 0..8 {
            let pivot = (col..8).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs())).unwrap_or(col);
            if a[pivot][col].abs() < 1e-10 {
                return Err(degenerate());
            }
            a.swap(col, pivot);
            let pivot_row = a[col];
            for (r, row) in a.iter_mut().enumerate() {
                if r != col {
                    let f = row[col] / pivot_row[col];
                    for (v, p) in row.iter_mut().zip(&pivot_row).skip(col) {
                        *v -= f * p;
                    }
                }
            }
        }
        let h: Vec<f64> = (0..8).map(|i| a[i][8] / a[i][i]).collect();
        let hn = [[h[0], h[1], h[2]], [h[3], h[4], h[5]], [h[6], h[7], 1.0]];
        // H = Td^-1 Hn Ts.
        let td_inv = adjugate(&td);
        Homography::new(mul(&td_inv, &mul(&hn, &ts))).map_err(|_| degenerate())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: (f64, f64), b: (f64, f64), tol: f64) -> bool {
        (a.0 - b.0).abs() <= tol && (a.1 - b.1).abs() <= tol
    }

    #[test]
    fn apply_inverse_compose() {
        // x' = (2x + 1) / (0.001x + 1), y' = (3y - 2) / (0.001x + 1): at (10, 20) W = 1.01, so
        // x' = 21 / 1.01, y' = 58 / 1.01.
        let h = Homography::new([[2.0, 0.0, 1.0], [0.0, 3.0, -2.0], [0.001, 0.0, 1.0]]).unwrap();
        let p = h.apply(10.0, 20.0).unwrap();
        assert!(close(p, (21.0 / 1.01, 58.0 / 1.01), 1e-12), "{p:?}");
        let back = h.inverse().apply(p.0, p.1).unwrap();
        assert!(close(back, (10.0, 20.0), 1e-9), "{back:?}");
        let id = h.then(&h.inverse());
        assert!(close(id.apply(-7.0, 3.5).unwrap(), (-7.0, 3.5), 1e-9));
        // The line 0.001 x + 1 = 0 goes to infinity.
        assert_eq!(h.apply(-1000.0, 5.0), None);
    }

    #[test]
    fn one_based_round_trip() {
        // A translation by (5, 7) is the same in both conventions; a scaling by 2 about the origin is not:
        // in 1-based coordinates x1 -> 2 x1, i.e. x0 + 1 -> 2 x0 + 2, so x0 -> 2 x0 + 1.
        let s1 = Homography::new([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0]]).unwrap();
        let s0 = Homography::from_one_based(&s1);
        assert!(close(s0.apply(3.0, 4.0).unwrap(), (7.0, 9.0), 1e-12));
        assert!(close(s0.to_one_based().apply(3.0, 4.0).unwrap(), (6.0, 8.0), 1e-12));
    }

    #[test]
    fn singular_and_non_finite_are_refused() {
        assert!(Homography::new([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [0.0, 0.0, 1.0]]).is_err());
        assert!(Homography::new([[0.0; 3]; 3]).is_err());
        assert!(Homography::new([[f64::NAN, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]).is_err());
    }

    #[test]
    fn four_points() {
        let h = Homography::new([[0.9, 0.1, 5.0], [-0.2, 1.1, -3.0], [1e-4, -2e-4, 1.0]]).unwrap();
        let src = [(0.0, 0.0), (100.0, 0.0), (100.0, 80.0), (0.0, 80.0)];
        let dst = src.map(|p| h.apply(p.0, p.1).unwrap());
        let fit = Homography::from_4_points(src, dst).unwrap();
        for &(x, y) in &[(50.0, 40.0), (-20.0, 130.0)] {
            assert!(close(fit.apply(x, y).unwrap(), h.apply(x, y).unwrap(), 1e-8));
        }
        let collinear = [(0.0, 0.0), (1.0, 1.0), (2.0, 2.0), (0.0, 5.0)];
        assert!(Homography::from_4_points(collinear, dst).is_err());
    }
}
