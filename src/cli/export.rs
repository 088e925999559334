//! `corrflow export SRC... --out DST`: a trained checkpoint (or the average of several checkpoints of one run,
//! stochastic weight averaging) as a model file to ship, with f16 storage by default, checked:
//! - FlowNet: the stored model's flow must stay within `--tolerance` px (mean) of the f32 weights' on every
//!   Middlebury and Sintel pair of the check folder. When f16 everywhere does not, the tensors whose rounding
//!   moves the flow most per stored value are kept in f32 (a greedy search: each tensor's own effect on the
//!   worst pair, then the top ones until every pair passes), and the file lists them in `f32_tensors`;
//! - a descriptor (`corrflow train-desc`; the loss's tensors, ProxyNCA's proxies, are left out): no f16
//!   descriptor may move by more than `--tolerance` (Euclidean distance between unit descriptors) from the f32
//!   one on held-out synthetic pairs, and the matches are reported; else nothing is written.
//!
//! `--passes 0.5,1,1` stores the passes the model runs by default (see `FlowNet::with_passes`) in its metadata; the
//! f16 check measures the flow with them.
//!
//! The measured figure is printed and stored in the model's metadata (`f16_check_px` with the pair it was
//! measured on, or `f16_check_change`): a pass near the bound can flip between runs of the check.

use std::path::PathBuf;

use clap::Args;
use corrflow::data::correspondence::SourceImages;
use corrflow::data::synthetic::SyntheticConfig;
use corrflow::eval::{find_pairs, load_pair};
use corrflow::matching::dense::DenseDescriber;
use corrflow::models::descriptor::data::DescDataConfig;
use corrflow::models::descriptor::train::strip_loss;
use corrflow::models::descriptor::validate::DescValidator;
use corrflow::models::descriptor::{Descriptor, DescriptorEnsemble};
use corrflow::models::{StoreAs, Weights};
use corrflow::{Error, Flow, FlowNet, Result};

#[derive(Args)]
pub struct ExportArgs {
    /// The checkpoint to export (safetensors, f32); several checkpoints of one run are averaged tensor by
    /// tensor (stochastic weight averaging: often better than any one of them while the learning rate is
    /// high enough for the weights to wander).
    #[arg(required = true, num_args = 1..)]
    src: Vec<PathBuf>,
    /// Where to write the model.
    #[arg(long)]
    out: PathBuf,
    /// Keep f32 values (default: f16, half the size, with the few tensors the check needs kept in f32).
    #[arg(long)]
    f32: bool,
    /// Folder of pairs to compare the f16 and f32 flow on (Middlebury and Sintel found in it); default
    /// ../shared/data when present, `none` to skip the check.
    #[arg(long)]
    check_data: Option<PathBuf>,
    /// FlowNet: largest mean |flow_stored - flow_f32| allowed on any pair, in pixels. Descriptor: largest
    /// |d_f16 - d_f32| of any unit descriptor.
    #[arg(long, default_value_t = 0.01)]
    tolerance: f64,
    /// FlowNet: the passes the model is meant to run, as the input scale of each (`0.5,1,1`; stored as its
    /// `passes` metadata, which `corrflow flow` and `FlowNet::new` use): each pass after the first warps
    /// frame B by the flow so far and adds the flow found between A and the warped B. Choose them on
    /// held-out pairs (`corrflow eval DIR --passes ...`). The f16 check measures the flow with these passes.
    #[arg(long)]
    passes: Option<String>,
}

pub fn run(args: ExportArgs) -> Result<()> {
    super::check_range("export", "--tolerance", args.tolerance, 0.0, 100.0, true)?;
    corrflow::io::check_distinct(&args.src, &[&args.out])?;
    let weights = load_sources(&args.src)?;
    if weights.contains("head.weight") || DescriptorEnsemble::is_ensemble(&weights) {
        if args.passes.is_some() {
            return Err(Error::InvalidParam {
                op: "export",
                message: "--passes is for FlowNet models; this is a descriptor: leave it out".into(),
            });
        }
        return export_descriptor(&args, weights);
    }
    let arch = corrflow::models::Arch::infer(&weights)?;
    let weights = match &args.passes {
        Some(p) => {
            let passes = super::flow::choose_passes("export", &weights, Some(p))?;
            weights.with_metadata("passes", passes)
        }
        None => weights,
    };
    let passes = corrflow::models::flownet::passes_in(&weights)?;
    corrflow::io::check_output(&args.out)?;
    let check_root = match &args.check_data {
        Some(p) if p.as_os_str() == "none" => None,
        Some(p) => Some(p.clone()),
        None => Some(PathBuf::from("../shared/data")).filter(|p| p.is_dir()),
    };
    let mut keep_f32: Vec<String> = Vec::new();
    // A re-exported model's check figures and list of f32 tensors would be stale: written anew below.
    let mut weights = ["f32_tensors", "f16_check_px", "f16_check_pairs", "f16_check_worst"]
        .into_iter()
        .fold(weights, |w, key| w.without_metadata(key));
    if let (Some(root), false) = (&check_root, args.f32) {
        let (ctx, first_run) = super::open_context(false)?;
        let check = FlowCheck::new(&ctx, root, &weights)?;
        let all_half = check.measure(&weights.rounded(|_| StoreAs::F16)?, None)?;
        if all_half.worst > args.tolerance {
            say!(
                "f16 storage moves the flow by {:.4} px on {} (tolerance {} px): choosing tensors to keep in f32",
                all_half.worst,
                check.name(all_half.worst_pair),
                args.tolerance
            );
            keep_f32 = check.tensors_to_keep(&weights, all_half.worst_pair, args.tolerance)?;
        }
        // The figure recorded is measured on the weights as the file holds them, on every pair.
        let stored =
            Weights::from_bytes(&weights.to_bytes_per_tensor(f16_except(&keep_f32))?, &args.out.display().to_string())?;
        let figure = check.measure(&stored, None)?;
        for (k, diff) in figure.per_pair.iter().enumerate() {
            say!("{:<37} mean |stored - f32| = {diff:.5} px", check.name(k));
        }
        if figure.worst > args.tolerance {
            // Only reachable if the rounding of one tensor interacts with another's beyond what the search saw.
            return Err(Error::InvalidParam {
                op: "export",
                message: format!(
                    "the stored weights move the flow by {:.4} px on {} (tolerance {} px): export with --f32",
                    figure.worst,
                    check.name(figure.worst_pair),
                    args.tolerance
                ),
            });
        }
        first_run.done();
        say!(
            "f16 check: largest mean difference {:.5} px over {} pairs (tolerance {} px)",
            figure.worst,
            figure.per_pair.len(),
            args.tolerance
        );
        // The measured figure travels with the model (a pass near the bound can flip between runs of the check).
        weights = weights
            .with_metadata("f16_check_px", format!("{:.5}", figure.worst))
            .with_metadata("f16_check_pairs", figure.per_pair.len())
            .with_metadata("f16_check_worst", check.name(figure.worst_pair));
        if !keep_f32.is_empty() {
            weights = weights.with_metadata("f32_tensors", keep_f32.join(","));
        }
    }
    let bytes = if args.f32 {
        weights.to_bytes_as(StoreAs::F32)?
    } else {
        weights.to_bytes_per_tensor(f16_except(&keep_f32))?
    };
    corrflow::io::write_atomic(&args.out, &bytes)?;
    let kept: usize = keep_f32.iter().map(|n| weights.numel(n)).sum();
    say!(
        "wrote {} ({} width {}, {} parameters, {}, {}, {:.1} MB)",
        args.out.display(),
        arch.variant,
        arch.width,
        arch.num_params(),
        passes.describe(),
        match (args.f32, kept) {
            (true, _) => "f32".to_string(),
            (false, 0) => "f16".to_string(),
            (false, k) => format!("f16, {} of its tensors ({k} values) in f32", keep_f32.len()),
        },
        bytes.len() as f64 / 1e6
    );
    Ok(())
}

/// The f16 check of a FlowNet export: the f32 weights' flow on the Middlebury and Sintel pairs of a folder,
/// against which candidate storages are measured.
struct FlowCheck<'a> {
    ctx: &'a corrflow::Context,
    pairs: Vec<(String, image::DynamicImage, image::DynamicImage)>,
    reference: Vec<Flow>,
}

/// Mean |flow - reference| per pair (px), and the worst pair.
struct Measured {
    per_pair: Vec<f64>,
    worst: f64,
    worst_pair: usize,
}

impl<'a> FlowCheck<'a> {
    fn new(ctx: &'a corrflow::Context, root: &std::path::Path, weights: &Weights) -> Result<FlowCheck<'a>> {
        let net = FlowNet::new(ctx, weights)?;
        let (mut pairs, mut reference) = (Vec::new(), Vec::new());
        for pair in find_pairs(root)? {
            if !matches!(pair.dataset.as_str(), "middlebury" | "sintel_clean" | "sintel_final") {
                continue;
            }
            let (a, b, _, _) = load_pair(&pair)?;
            reference.push(net.estimate(ctx, &a, &b)?);
            pairs.push((format!("{} {}", pair.dataset, pair.name), a, b));
        }
        Ok(FlowCheck { ctx, pairs, reference })
    }

    fn name(&self, k: usize) -> &str {
        self.pairs.get(k).map_or("", |p| p.0.as_str())
    }

    /// The flow of `weights` against the reference on the pairs `only` names (all when None).
    fn measure(&self, weights: &Weights, only: Option<&[usize]>) -> Result<Measured> {
        let net = FlowNet::new(self.ctx, weights)?;
        let all: Vec<usize> = (0..self.pairs.len()).collect();
        let mut m = Measured { per_pair: Vec::new(), worst: 0.0, worst_pair: 0 };
        for &k in only.unwrap_or(&all) {
            let (_, a, b) = &self.pairs[k];
            let f = net.estimate(self.ctx, a, b)?;
            let diff = corrflow::metrics::epe(&f, &self.reference[k], None)?;
            if diff > m.worst || m.per_pair.is_empty() {
                (m.worst, m.worst_pair) = (diff, k);
            }
            m.per_pair.push(diff);
        }
        Ok(m)
    }

    /// The fewest values to keep in f32 for the f16 rest to pass `tolerance`, by a greedy search: each
    /// tensor's own effect is measured on the worst pair (that tensor alone rounded to f16), tensors are
    /// ranked by effect per stored value, and the top ones are kept until the worst pair and then every pair
    /// pass.
    fn tensors_to_keep(&self, weights: &Weights, worst_pair: usize, tolerance: f64) -> Result<Vec<String>> {
        let mut ranked = Vec::new();
        for name in weights.names() {
            let alone = weights.rounded(|n| if n == name { StoreAs::F16 } else { StoreAs::F32 })?;
            let effect = self.measure(&alone, Some(&[worst_pair]))?.worst;
            ranked.push((effect / weights.numel(name).max(1) as f64, effect, name.to_string()));
        }
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut order: Vec<usize> = vec![worst_pair];
        order.extend((0..self.pairs.len()).filter(|&k| k != worst_pair));
        for count in 1..=ranked.len() {
            let keep: Vec<String> = ranked[..count].iter().map(|r| r.2.clone()).collect();
            let trial = weights.rounded(f16_except(&keep))?;
            // Pair by pair, the worst first, stopping at the first over the tolerance.
            let mut passes = true;
            for &k in &order {
                if self.measure(&trial, Some(&[k]))?.worst > tolerance {
                    passes = false;
                    break;
                }
            }
            if passes {
                let values: usize = keep.iter().map(|n| weights.numel(n)).sum();
                say!(
                    "keeping {count} of {} tensors in f32 ({values} values): {}",
                    ranked.len(),
                    ranked[..count]
                        .iter()
                        .map(|r| format!("{} ({:.4} px alone)", r.2, r.1))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                return Ok(keep);
            }
        }
        Ok(ranked.into_iter().map(|r| r.2).collect())
    }
}

/// The storage of a mixed export: f32 for the tensors in `keep`, f16 for the rest.
fn f16_except(keep: &[String]) -> impl Fn(&str) -> StoreAs + '_ {
    move |name| if keep.iter().any(|k| k == name) { StoreAs::F32 } else { StoreAs::F16 }
}

/// The one checkpoint, or the average of several (each read and checked against the first).
fn load_sources(paths: &[PathBuf]) -> Result<Weights> {
    let sets = paths.iter().map(Weights::load).collect::<Result<Vec<_>>>()?;
    if sets.len() == 1 {
        return Ok(sets.into_iter().next().unwrap_or_default());
    }
    let mean = Weights::average(&sets)?;
    say!(
        "averaging {} checkpoints (steps {})",
        sets.len(),
        mean.metadata().get("averaged_steps").map_or("?", |s| s.as_str())
    );
    Ok(mean)
}

/// The descriptor's export (see the module documentation).
fn export_descriptor(args: &ExportArgs, weights: Weights) -> Result<()> {
    let ensemble = DescriptorEnsemble::is_ensemble(&weights);
    let weights = if ensemble { weights } else { strip_loss(&weights) };
    corrflow::io::check_output(&args.out)?;
    let store = if args.f32 { StoreAs::F32 } else { StoreAs::F16 };
    let mut bytes = weights.to_bytes_as(store)?;
    let stored = Weights::from_bytes(&bytes, &args.out.display().to_string())?;
    if !args.f32 && args.check_data.as_ref().is_none_or(|p| p.as_os_str() != "none") {
        let (ctx, first_run) = super::open_context(false)?;
        let load = |w: &Weights| -> Result<Box<dyn DenseDescriber>> {
            Ok(if ensemble {
                Box::new(DescriptorEnsemble::from_weights(&ctx, w)?)
            } else {
                Box::new(Descriptor::new(&ctx, w)?)
            })
        };
        let (full, half) = (load(&weights)?, load(&stored)?);
        let source = SourceImages::Procedural(SyntheticConfig::default());
        let pairs = DescValidator::new(4, 256, 256, &source, &DescDataConfig::training_warp())?;
        let mut worst = 0.0f64;
        for (i, img) in pairs.images().enumerate() {
            let (f, h) = (full.describe(&ctx, img)?, half.describe(&ctx, img)?);
            let change = f
                .data
                .chunks(f.dim)
                .zip(h.data.chunks(h.dim))
                .map(|(p, q)| p.iter().zip(q).map(|(x, y)| ((x - y) as f64).powi(2)).sum::<f64>().sqrt())
                .fold(0.0, f64::max);
            say!("held-out image {i}: largest |d_f16 - d_f32| = {change:.5}");
            worst = worst.max(change);
        }
        let (vf, vh) = (pairs.run(&ctx, full.as_ref())?, pairs.run(&ctx, half.as_ref())?);
        say!(
            "held-out pairs: MMA@3 {:.4} (f32) vs {:.4} (f16), R@1 {:.4} vs {:.4}",
            vf.mma3,
            vh.mma3,
            vf.recall1,
            vh.recall1
        );
        if worst > args.tolerance {
            return Err(Error::InvalidParam {
                op: "export",
                message: format!(
                    "f16 storage moves a descriptor by {worst:.4} (tolerance {}): export with --f32",
                    args.tolerance
                ),
            });
        }
        first_run.done();
        say!("f16 check: largest descriptor change {worst:.5} (tolerance {})", args.tolerance);
        bytes = weights.with_metadata("f16_check_change", format!("{worst:.5}")).to_bytes_as(store)?;
    }
    corrflow::io::write_atomic(&args.out, &bytes)?;
    say!(
        "wrote {} (descriptor{}, {}, {:.2} MB)",
        args.out.display(),
        if ensemble { " ensemble" } else { "" },
        if args.f32 { "f32" } else { "f16" },
        bytes.len() as f64 / 1e6
    );
    Ok(())
}
