//! The brute-force matcher on the CPU: the reference for the GPU matcher, and the matcher for small images.
//!
//! For every descriptor `a_i` of A, its nearest and second-nearest descriptors of B by Euclidean distance
//! (`d1 <= d2`; ties go to the lower index); for every `b_j` its nearest of A. `(a_i, b_j)` is a match when
//! - `b_j` is `a_i`'s nearest neighbour;
//! - with `mutual`, `a_i` is also `b_j`'s nearest neighbour (the mutual-nearest-neighbour / cross check);
//! - with `ratio = Some(r)`, Lowe's ratio test passes in the A-to-B direction: `d1 < r d2` (strict, on
//!   distances, not squared distances; `d2` is infinite when B has a single candidate), as OpenCV's
//!   `knnMatch(k = 2)` followed by the ratio test.
//!
//! The match score is the ratio-test margin `1 - d1 / d2` (0 for an ambiguous match, 1 for a unique one).
//! Descriptors whose squared norm is below 1/4 (the raw baseline's zero descriptor of a flat patch) take no
//! part: they are neither matched nor anyone's neighbour. Matches are returned in the order of A's
//! descriptors.
//!
//! Cost `O(|A| |B| dim)`, in tiles of A x B so that a tile of B stays in cache, on all available threads; the
//! result does not depend on the thread count.

use super::{Descriptors, Match};
use crate::{Error, Result};

/// Matcher options.
#[derive(Clone, Debug, PartialEq)]
pub struct MatcherConfig {
    /// Keep only mutual nearest neighbours.
    pub mutual: bool,
    /// Lowe's ratio threshold in (0, 1], or `None` for no ratio test.
    pub ratio: Option<f32>,
}

impl Default for MatcherConfig {
    /// Mutual nearest neighbours with ratio 0.8 (issue 12's setting for the SIFT/ORB reference figures).
    fn default() -> Self {
        MatcherConfig { mutual: true, ratio: Some(0.8) }
    }
}

/// Descriptors with a squared norm below this take no part in matching.
pub const MIN_NORM2: f32 = 0.25;

/// Rows of A per tile and columns of B per tile.
const TILE_A: usize = 32;
const TILE_B: usize = 512;

/// `a . b`, with 8 partial sums so the loop vectorises.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Per row of A: best and second-best squared distance and the best's index; per column of B: best squared
/// distance and index of A.
struct Partial {
    rows: Vec<(f32, f32, u32)>,
    cols: Vec<(f32, u32)>,
}

fn better(d: f32, i: u32, best: (f32, u32)) -> bool {
    d < best.0 || (d == best.0 && i < best.1)
}

/// Nearest neighbours of A's rows `range` among all of B.
fn scan(a: &Descriptors, b: &Descriptors, norms_a: &[f32], norms_b: &[f32], range: std::ops::Range<usize>) -> Partial {
    let mut rows = vec![(f32::INFINITY, f32::INFINITY, u32::MAX); range.len()];
    let mut cols = vec![(f32::INFINITY, u32::MAX); b.len()];
    let valid_b: Vec<usize> = (0..b.len()).filter(|&j| norms_b[j] >= MIN_NORM2).collect();
    for a0 in range.clone().step_by(TILE_A) {
        let a1 = (a0 + TILE_A).min(range.end);
        for tile in valid_b.chunks(TILE_B) {
            for i in a0..a1 {
                if norms_a[i] < MIN_NORM2 {
                    continue;
                }
                let ai = a.row(i);
                let row = &mut rows[i - range.start];
                for &j in tile {
                    // |a - b|^2 = |a|^2 + |b|^2 - 2 a.b, clamped at 0 against rounding.
                    let d = (norms_a[i] + norms_b[j] - 2.0 * dot(ai, b.row(j))).max(0.0);
                    if d < row.0 {
                        *row = (d, row.0, j as u32);
                    } else if d < row.1 {
                        row.1 = d;
                    }
                    if better(d, i as u32, cols[j]) {
                        cols[j] = (d, i as u32);
                    }
                }
            }
        }
    }
    Partial { rows, cols }
}

/// Matches descriptors of A against those of B (see the module documentation). Fails when the dimensions
/// differ, the descriptors are inconsistent, or the ratio is outside (0, 1]. Empty inputs give no matches.
pub fn match_descriptors(a: &Descriptors, b: &Descriptors, cfg: &MatcherConfig) -> Result<Vec<Match>> {
    a.check("match_descriptors (image A)")?;
    b.check("match_descriptors (image B)")?;
    if a.dim != b.dim {
        return Err(Error::Shape {
            op: "match_descriptors",
            message: format!("descriptors of A have {} dimensions, of B {}", a.dim, b.dim),
        });
    }
    if let Some(r) = cfg.ratio {
        if !(r > 0.0 && r <= 1.0) {
            return Err(Error::InvalidParam {
                op: "match_descriptors",
                message: format!("ratio {r} must be in (0, 1] (Lowe's test keeps d1 < ratio * d2)"),
            });
        }
    }
    if a.len() > u32::MAX as usize || b.len() > u32::MAX as usize {
        return Err(Error::InvalidParam {
            op: "match_descriptors",
            message: format!("{} x {} descriptors: at most 2^32 - 1 per image", a.len(), b.len()),
        });
    }
    if a.is_empty() || b.is_empty() {
        return Ok(Vec::new());
    }
    let norm2 = |d: &Descriptors| -> Vec<f32> {
        (0..d.len())
            .map(|i| d.row(i).iter().map(|v| v * v).sum::<f32>())
            .map(|n| if n.is_finite() { n } else { 0.0 })
            .collect()
    };
    let (norms_a, norms_b) = (norm2(a), norm2(b));

    let threads =
        std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 64).min(a.len().div_ceil(TILE_A));
    let chunk = a.len().div_ceil(threads).div_ceil(TILE_A) * TILE_A;
    let ranges: Vec<std::ops::Range<usize>> =
        (0..a.len()).step_by(chunk.max(1)).map(|s| s..(s + chunk).min(a.len())).collect();
    let partials: Vec<Partial> = if ranges.len() <= 1 {
        vec![scan(a, b, &norms_a, &norms_b, 0..a.len())]
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = ranges
                .iter()
                .map(|r| {
                    let r = r.clone();
                    let (na, nb) = (&norms_a, &norms_b);
                    (r.clone(), std::thread::Builder::new().spawn_scoped(scope, move || scan(a, b, na, nb, r)))
                })
                .collect();
            // A worker that could not be spawned (or panicked) is redone on this thread.
            handles
                .into_iter()
                .map(|(r, h)| h.ok().and_then(|h| h.join().ok()).unwrap_or_else(|| scan(a, b, &norms_a, &norms_b, r)))
                .collect()
        })
    };

    let mut rows = Vec::with_capacity(a.len());
    let mut cols = vec![(f32::INFINITY, u32::MAX); b.len()];
    for p in partials {
        rows.extend(p.rows);
        for (c, pc) in cols.iter_mut().zip(p.cols) {
            if better(pc.0, pc.1, *c) {
                *c = pc;
            }
        }
    }
    let mut out = Vec::new();
    for (i, &(d1, d2, j)) in rows.iter().enumerate() {
        if j == u32::MAX {
            continue;
        }
        if cfg.mutual && cols[j as usize].1 != i as u32 {
            continue;
        }
        let (d1, d2) = (d1.sqrt(), d2.sqrt());
        if let Some(r) = cfg.ratio {
            if d1 >= r * d2 {
                continue;
            }
        }
        let score = if d2.is_infinite() {
            1.0
        } else if d2 > 0.0 {
            1.0 - (d1 / d2) as f64
        } else {
            0.0
        };
        let (pa, pb) = (a.points[i], b.points[j as usize]);
        out.push(Match { xa: pa.0, ya: pa.1, xb: pb.0, yb: pb.1, score });
    }
    Ok(out)
}
