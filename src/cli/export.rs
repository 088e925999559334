//! `corrflow export SRC... --out DST`: a trained checkpoint (or the average of several checkpoints of one run,
//! stochastic weight averaging) as a model file to ship, with f16 storage by default, checked, else nothing
//! is written:
//! - FlowNet: the f16 model's flow must stay within `--tolerance` px (mean) of the f32 weights' on the
//!   evaluation pairs;
//! - a descriptor (`corrflow train-desc`; the loss's tensors, ProxyNCA's proxies, are left out): no f16
//!   descriptor may move by more than `--tolerance` (Euclidean distance between unit descriptors) from the f32
//!   one on held-out synthetic pairs, and the matches are reported.
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
use corrflow::{Error, FlowNet, Result};

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
    /// Keep f32 values (default: f16, half the size).
    #[arg(long)]
    f32: bool,
    /// Folder of pairs to compare the f16 and f32 flow on (Middlebury and Sintel found in it); default
    /// ../shared/data when present, `none` to skip the check.
    #[arg(long)]
    check_data: Option<PathBuf>,
    /// FlowNet: largest mean |flow_f16 - flow_f32| allowed on any pair, in pixels. Descriptor: largest
    /// |d_f16 - d_f32| of any unit descriptor.
    #[arg(long, default_value_t = 0.01)]
    tolerance: f64,
}

pub fn run(args: ExportArgs) -> Result<()> {
    super::check_range("export", "--tolerance", args.tolerance, 0.0, 100.0, true)?;
    corrflow::io::check_distinct(&args.src, &[&args.out])?;
    let weights = load_sources(&args.src)?;
    if weights.contains("head.weight") || DescriptorEnsemble::is_ensemble(&weights) {
        return export_descriptor(&args, weights);
    }
    let arch = corrflow::models::Arch::infer(&weights)?;
    corrflow::io::check_output(&args.out)?;
    let store = if args.f32 { StoreAs::F32 } else { StoreAs::F16 };
    let mut bytes = weights.to_bytes_as(store)?;
    let stored = Weights::from_bytes(&bytes, &args.out.display().to_string())?;
    let check_root = match &args.check_data {
        Some(p) if p.as_os_str() == "none" => None,
        Some(p) => Some(p.clone()),
        None => Some(PathBuf::from("../shared/data")).filter(|p| p.is_dir()),
    };
    if let (Some(root), false) = (&check_root, args.f32) {
        let pairs: Vec<_> = find_pairs(root)?
            .into_iter()
            .filter(|p| matches!(p.dataset.as_str(), "middlebury" | "sintel_clean" | "sintel_final"))
            .collect();
        let (ctx, first_run) = super::open_context(false)?;
        let (full, half) = (FlowNet::new(&ctx, &weights)?, FlowNet::new(&ctx, &stored)?);
        let mut worst: (f64, String) = (0.0, String::new());
        for pair in &pairs {
            let (a, b, _, _) = load_pair(pair)?;
            let (f, h) = (full.estimate(&ctx, &a, &b)?, half.estimate(&ctx, &a, &b)?);
            let diff = f
                .data
                .chunks_exact(2)
                .zip(h.data.chunks_exact(2))
                .map(|(p, q)| ((p[0] - q[0]) as f64).hypot((p[1] - q[1]) as f64))
                .sum::<f64>()
                / f.pixel_count().max(1) as f64;
            say!("{:<14} {:<22} mean |f16 - f32| = {diff:.5} px", pair.dataset, pair.name);
            if diff > worst.0 {
                worst = (diff, format!("{} {}", pair.dataset, pair.name));
            }
        }
        if worst.0 > args.tolerance {
            return Err(Error::InvalidParam {
                op: "export",
                message: format!(
                    "f16 storage moves the flow by {:.4} px on {} (tolerance {} px): export with --f32",
                    worst.0, worst.1, args.tolerance
                ),
            });
        }
        first_run.done();
        say!(
            "f16 check: largest mean difference {:.5} px over {} pairs (tolerance {} px)",
            worst.0,
            pairs.len(),
            args.tolerance
        );
        // The measured figure travels with the model (a pass near the bound can flip between runs of the check).
        bytes = weights
            .with_metadata("f16_check_px", format!("{:.5}", worst.0))
            .with_metadata("f16_check_pairs", pairs.len())
            .with_metadata("f16_check_worst", worst.1)
            .to_bytes_as(store)?;
    }
    corrflow::io::write_atomic(&args.out, &bytes)?;
    say!(
        "wrote {} ({} width {}, {} parameters, {}, {:.1} MB)",
        args.out.display(),
        arch.variant,
        arch.width,
        arch.num_params(),
        if args.f32 { "f32" } else { "f16" },
        bytes.len() as f64 / 1e6
    );
    Ok(())
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
