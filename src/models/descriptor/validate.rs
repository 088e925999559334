//! Validation of a descriptor during training: held-out synthetic homography pairs (seeds from
//! [`VALIDATION_SEED_BASE`], never in a training stream), each scored exactly as `corrflow eval-match` scores
//! a real pair ([`evaluate_pair`]): Recall@1 and Recall@4 of patch retrieval (queries on a grid of A, the
//! whole of B's grid as the gallery) and the mean matching accuracy at 3 px of the dense matcher (mutual
//! nearest neighbours, ratio 0.8, sub-pixel refinement). The real evaluation pairs are never used here.

use std::time::{Duration, Instant};

use image::RgbImage;

use crate::data::correspondence::{warp_pair, GroundTruth, SourceImages, WarpConfig};
use crate::data::homography::Homography;
use crate::error::Result;
use crate::matching::dense::{DenseDescriber, DenseMatchConfig};
use crate::matching::evaluate::evaluate_pair;
use crate::runtime::Context;
use crate::training::data::VALIDATION_SEED_BASE;

/// Index of MMA@3 px in [`crate::matching::MMA_THRESHOLDS_PX`].
const MMA3: usize = 2;

/// The held-out pairs, made once.
pub struct DescValidator {
    pairs: Vec<(RgbImage, RgbImage, Homography)>,
}

/// What one validation measured (means over the pairs).
#[derive(Clone, Debug, PartialEq)]
pub struct DescValidation {
    pub recall1: f64,
    pub recall4: f64,
    pub mma3: f64,
    /// Mean matches per pair.
    pub matches: f64,
    pub time: Duration,
}

impl DescValidation {
    /// The values of the descriptor log's columns ([`log_schema`]).
    pub fn columns(&self) -> Vec<f64> {
        vec![self.recall1, self.recall4, self.mma3]
    }
}

/// The descriptor's training log: Recall@1, Recall@4 and MMA@3 on the held-out synthetic pairs; the best
/// checkpoint is the one with the highest MMA@3 (the figure the shipped descriptor is judged by).
pub fn log_schema() -> crate::training::log::LogSchema {
    crate::training::log::LogSchema {
        columns: vec!["val_recall1".into(), "val_recall4".into(), "val_mma3".into()],
        best: 2,
        higher_is_better: true,
        loss_label: "METRIC LOSS".into(),
        val_title: "HELD-OUT SYNTHETIC PAIRS".into(),
        val_label: "RECALL, MMA".into(),
        plotted: vec![
            (0, "recall@1".into(), [30, 90, 220]),
            (1, "recall@4".into(), [20, 160, 60]),
            (2, "MMA@3".into(), [0, 0, 0]),
        ],
    }
}

impl DescValidator {
    /// `count` homography pairs of `warp` at `width x height` from `source`, seeds `VALIDATION_SEED_BASE + i`.
    pub fn new(count: usize, width: usize, height: usize, source: &SourceImages, warp: &WarpConfig) -> Result<Self> {
        let cfg = WarpConfig { width, height, ..warp.clone() };
        let mut pairs = Vec::with_capacity(count);
        for i in 0..count {
            let p = warp_pair(source, &cfg, VALIDATION_SEED_BASE + 0x4445_5343 + i as u64)?;
            if let GroundTruth::Homography { a_to_b } = p.truth {
                pairs.push((p.a, p.b, a_to_b));
            }
        }
        Ok(DescValidator { pairs })
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
    /// Every image of the pairs (A, B, A, B, ...).
    pub fn images(&self) -> impl Iterator<Item = &RgbImage> {
        self.pairs.iter().flat_map(|(a, b, _)| [a, b])
    }

    /// Scores `describer` on every pair (NaN means when there are no pairs).
    pub fn run(&self, ctx: &Context, describer: &dyn DenseDescriber) -> Result<DescValidation> {
        let t = Instant::now();
        let cfg = DenseMatchConfig { max_side: None, ..DenseMatchConfig::default() };
        let (mut r1, mut r4, mut mma, mut matches, mut with_recall) = (0.0, 0.0, 0.0, 0.0, 0usize);
        for (i, (a, b, h)) in self.pairs.iter().enumerate() {
            let row = evaluate_pair(ctx, "synthetic", &format!("val{i}"), a, b, h, describer, &cfg)?;
            mma += row.mma(MMA3);
            matches += row.matches as f64;
            if let Some(r) = &row.recall {
                r1 += r[0];
                r4 += r[2];
                with_recall += 1;
            }
        }
        let n = self.pairs.len() as f64;
        let nr = with_recall as f64;
        Ok(DescValidation {
            recall1: if with_recall > 0 { r1 / nr } else { f64::NAN },
            recall4: if with_recall > 0 { r4 / nr } else { f64::NAN },
            mma3: if n > 0.0 { mma / n } else { f64::NAN },
            matches: if n > 0.0 { matches / n } else { f64::NAN },
            time: t.elapsed(),
        })
    }
}
