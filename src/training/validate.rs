//! Validation during training: full-resolution EPE (the network's flow2, upsampled as `estimate` does) on a
//! fixed set of held-out synthetic pairs, which chooses the best checkpoint, and on the real sequences of an
//! evaluation folder (Middlebury, Sintel clean and final), which are reported as the run goes but never used
//! to choose anything.

use std::path::Path;
use std::time::{Duration, Instant};

use super::data::VALIDATION_SEED_BASE;
use crate::data::synthetic::{generate, SyntheticConfig};
use crate::eval::{find_pairs, load_pair, score, EvalPair};
use crate::flow::Flow;
use crate::models::FlowNet;
use crate::{Context, Result};

/// One loaded pair: frames, ground truth and validity mask.
struct Loaded {
    pair: EvalPair,
    a: image::DynamicImage,
    b: image::DynamicImage,
    gt: Flow,
    valid: Option<Vec<bool>>,
}

/// The validation sets, loaded once.
pub struct Validator {
    synthetic: Vec<Loaded>,
    real: Vec<Loaded>,
}

/// What one validation pass measured.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidationReport {
    /// Mean EPE over the held-out synthetic pairs.
    pub synthetic_epe: f64,
    /// Per real dataset: (name, mean EPE of the model, mean EPE of zero flow, pairs).
    pub real: Vec<(String, f64, f64, usize)>,
    pub time: Duration,
}

impl Validator {
    /// `synthetic_pairs` held-out pairs of `cfg` at `width x height` (seeds from [`VALIDATION_SEED_BASE`], no
    /// augmentation), and the pairs of `datasets` (e.g. `middlebury`, `sintel_clean`) found under `real_root`.
    /// Real pairs that cannot be read are left out (the returned strings say which and why).
    pub fn new(
        cfg: &SyntheticConfig,
        synthetic_pairs: usize,
        width: usize,
        height: usize,
        real_root: Option<&Path>,
        datasets: &[&str],
    ) -> Result<(Validator, Vec<String>)> {
        let cfg = SyntheticConfig { width, height, ..cfg.clone() };
        let mut synthetic = Vec::new();
        for k in 0..synthetic_pairs {
            let p = generate(&cfg, VALIDATION_SEED_BASE + k as u64)?;
            synthetic.push(Loaded {
                pair: EvalPair {
                    dataset: "synthetic".into(),
                    name: format!("val{k:03}"),
                    frame_a: Default::default(),
                    frame_b: Default::default(),
                    gt: crate::eval::GroundTruth::Flo(Default::default()),
                },
                a: image::DynamicImage::ImageRgb8(p.frame_a),
                b: image::DynamicImage::ImageRgb8(p.frame_b),
                gt: p.flow,
                valid: None,
            });
        }
        let mut real = Vec::new();
        let mut problems = Vec::new();
        if let Some(root) = real_root {
            for pair in find_pairs(root)?.into_iter().filter(|p| datasets.contains(&p.dataset.as_str())) {
                match load_pair(&pair) {
                    Ok((a, b, gt, valid)) => real.push(Loaded { pair, a, b, gt, valid }),
                    Err(e) => problems.push(format!("{} {}: {e}", pair.dataset, pair.name)),
                }
            }
        }
        Ok((Validator { synthetic, real }, problems))
    }

    /// Number of (synthetic, real) pairs.
    pub fn counts(&self) -> (usize, usize) {
        (self.synthetic.len(), self.real.len())
    }

    /// Runs the network on every pair.
    pub fn run(&self, ctx: &Context, net: &FlowNet) -> Result<ValidationReport> {
        let t = Instant::now();
        let mut synthetic = Vec::new();
        for l in &self.synthetic {
            let flow = net.estimate(ctx, &l.a, &l.b)?;
            synthetic.push(score(&l.pair, &flow, &l.gt, None, Duration::ZERO)?.epe);
        }
        let mut real: Vec<(String, f64, f64, usize)> = Vec::new();
        for l in &self.real {
            let flow = net.estimate(ctx, &l.a, &l.b)?;
            let r = score(&l.pair, &flow, &l.gt, l.valid.as_deref(), Duration::ZERO)?;
            match real.iter_mut().find(|(d, ..)| *d == l.pair.dataset) {
                Some(e) => {
                    e.1 += r.epe;
                    e.2 += r.zero_epe;
                    e.3 += 1;
                }
                None => real.push((l.pair.dataset.clone(), r.epe, r.zero_epe, 1)),
            }
        }
        for e in &mut real {
            e.1 /= e.3 as f64;
            e.2 /= e.3 as f64;
        }
        let synthetic_epe =
            if synthetic.is_empty() { f64::NAN } else { synthetic.iter().sum::<f64>() / synthetic.len() as f64 };
        Ok(ValidationReport { synthetic_epe, real, time: t.elapsed() })
    }
}
