//! `corrflow eval-match`: matching quality of a dense descriptor on image pairs with a known homography (mean
//! matching accuracy at 1, 2, 3, 5 and 10 px of the mutual-nearest-neighbour matches, and Recall@K of patch
//! retrieval), per pair, as a table or JSON.
//!
//! Recall@K protocol (the lecture's): queries are every `QUERY_STEP`-th grid point of image A along each axis,
//! the gallery is every grid descriptor of image B, and the answer is the gallery point nearest to the query's
//! true position in B (within `RECALL_RADIUS_CELLS` grid cells; queries whose true position has no gallery point
//! that close, e.g. outside B, are dropped).

use std::time::{Duration, Instant};

use image::RgbImage;

use super::dense::{match_dense, DenseDescriber, DenseMatchConfig};
use super::metrics::{match_accuracy, recall_at_k, true_correspondents, MMA_THRESHOLDS_PX, RECALL_KS};
use super::raw::working_copy;
use super::Descriptors;
use crate::data::homography::Homography;
use crate::eval::json_string;
use crate::{Context, Result};

/// Queries every this many grid points of A along each axis.
pub const QUERY_STEP: usize = 4;
/// A query's answer must lie within this many grid cells of its true position.
pub const RECALL_RADIUS_CELLS: f64 = 0.75;

/// One (pair, descriptor) result.
#[derive(Clone, Debug, PartialEq)]
pub struct MatchEvalRow {
    pub dataset: String,
    pub pair: String,
    pub descriptor: String,
    pub matches: usize,
    /// Correct matches at each of [`MMA_THRESHOLDS_PX`].
    pub correct: Vec<usize>,
    /// Recall at each of [`RECALL_KS`] (None when no query had an answer).
    pub recall: Option<Vec<f64>>,
    pub time: Duration,
}

impl MatchEvalRow {
    /// MMA at threshold index `i` (0 with no matches).
    pub fn mma(&self, i: usize) -> f64 {
        if self.matches == 0 {
            0.0
        } else {
            self.correct[i] as f64 / self.matches as f64
        }
    }
}

/// Evaluates one descriptor on one pair whose homography `a_to_b` maps A's pixels to B's (0-based).
#[allow(clippy::too_many_arguments)]
pub fn evaluate_pair(
    ctx: &Context,
    dataset: &str,
    pair: &str,
    a: &RgbImage,
    b: &RgbImage,
    a_to_b: &Homography,
    describer: &dyn DenseDescriber,
    cfg: &DenseMatchConfig,
) -> Result<MatchEvalRow> {
    let t = Instant::now();
    let report = match_dense(ctx, a, b, describer, cfg)?;
    let acc = match_accuracy(&report.matches, a_to_b, &MMA_THRESHOLDS_PX)?;
    // Recall@K in the scaled images' pixels: H_small = S_b H S_a^-1.
    let (sa, back_a) = working_copy(a, cfg.max_side)?;
    let (sb, back_b) = working_copy(b, cfg.max_side)?;
    let h_small = back_a.then(a_to_b).then(&back_b.inverse());
    let (da, db) = (describer.describe(ctx, &sa)?, describer.describe(ctx, &sb)?);
    let mut q_points = Vec::new();
    let mut q_data = Vec::new();
    for gy in (0..da.grid_h).step_by(QUERY_STEP) {
        for gx in (0..da.grid_w).step_by(QUERY_STEP) {
            q_points.push(da.point(gx, gy));
            q_data.extend_from_slice(da.at(gx, gy));
        }
    }
    let queries = Descriptors::new(da.dim, q_points, q_data)?;
    let gallery = db.to_descriptors()?;
    let truth =
        true_correspondents(&queries.points, &gallery.points, &h_small, RECALL_RADIUS_CELLS * db.stride as f64)?;
    let recall = recall_at_k(&queries, &gallery, &truth, &RECALL_KS)
        .ok()
        .map(|r| (0..RECALL_KS.len()).map(|i| r.recall(i)).collect());
    Ok(MatchEvalRow {
        dataset: dataset.to_string(),
        pair: pair.to_string(),
        descriptor: describer.name(),
        matches: acc.matches,
        correct: acc.correct.clone(),
        recall,
        time: t.elapsed(),
    })
}

/// A table of rows: one line per (pair, descriptor), then the means per (dataset, descriptor).
pub fn to_table(rows: &[MatchEvalRow]) -> String {
    let mut s = format!(
        "{:<10} {:<14} {:<10} {:>7} {:>7} {:>6} {:>6} {:>6} {:>6} {:>6}   {:>5} {:>5} {:>5} {:>5} {:>7}\n",
        "dataset",
        "pair",
        "desc",
        "matches",
        "ok@3",
        "MMA@1",
        "@2",
        "@3",
        "@5",
        "@10",
        "R@1",
        "R@2",
        "R@4",
        "R@8",
        "time"
    );
    let recall_cols = |r: &Option<Vec<f64>>| match r {
        Some(v) => v.iter().map(|x| format!("{x:>5.3}")).collect::<Vec<_>>().join(" "),
        None => format!("{:>5} {:>5} {:>5} {:>5}", "-", "-", "-", "-"),
    };
    for r in rows {
        s.push_str(&format!(
            "{:<10} {:<14} {:<10} {:>7} {:>7} {:>6.3} {:>6.3} {:>6.3} {:>6.3} {:>6.3}   {} {:>6.1}s\n",
            r.dataset,
            r.pair,
            r.descriptor,
            r.matches,
            r.correct[2],
            r.mma(0),
            r.mma(1),
            r.mma(2),
            r.mma(3),
            r.mma(4),
            recall_cols(&r.recall),
            r.time.as_secs_f64()
        ));
    }
    s.push_str("\nmeans per dataset and descriptor (over pairs):\n");
    let mut keys: Vec<(String, String)> = rows.iter().map(|r| (r.dataset.clone(), r.descriptor.clone())).collect();
    keys.dedup();
    keys.sort();
    keys.dedup();
    for (d, desc) in keys {
        let sel: Vec<&MatchEvalRow> = rows.iter().filter(|r| r.dataset == d && r.descriptor == desc).collect();
        let n = sel.len() as f64;
        let mma: Vec<f64> = (0..5).map(|i| sel.iter().map(|r| r.mma(i)).sum::<f64>() / n).collect();
        let with_recall: Vec<&Vec<f64>> = sel.iter().filter_map(|r| r.recall.as_ref()).collect();
        let recall = (!with_recall.is_empty()).then(|| {
            (0..4).map(|i| with_recall.iter().map(|v| v[i]).sum::<f64>() / with_recall.len() as f64).collect()
        });
        s.push_str(&format!(
            "{:<10} {:<14} {:<10} {:>7} {:>7} {:>6.3} {:>6.3} {:>6.3} {:>6.3} {:>6.3}   {}\n",
            d,
            format!("({} pairs)", sel.len()),
            desc,
            "",
            "",
            mma[0],
            mma[1],
            mma[2],
            mma[3],
            mma[4],
            recall_cols(&recall)
        ));
    }
    s
}

/// The rows as one JSON object.
pub fn to_json(rows: &[MatchEvalRow]) -> String {
    let items: Vec<String> = rows
        .iter()
        .map(|r| {
            let mma: Vec<String> = (0..MMA_THRESHOLDS_PX.len()).map(|i| format!("{:.6}", r.mma(i))).collect();
            let recall = r.recall.as_ref().map_or("null".to_string(), |v| {
                format!("[{}]", v.iter().map(|x| format!("{x:.6}")).collect::<Vec<_>>().join(","))
            });
            format!(
                "{{\"dataset\":{},\"pair\":{},\"descriptor\":{},\"matches\":{},\"correct\":[{}],\"mma\":[{}],\"mma_thresholds_px\":[1,2,3,5,10],\"recall\":{},\"recall_k\":[1,2,4,8],\"seconds\":{:.3}}}",
                json_string(&r.dataset),
                json_string(&r.pair),
                json_string(&r.descriptor),
                r.matches,
                r.correct.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(","),
                mma.join(","),
                recall,
                r.time.as_secs_f64()
            )
        })
        .collect();
    format!("{{\"rows\":[{}]}}", items.join(","))
}
