//! `corrflow export SRC --out DST`: a trained checkpoint as a model file to ship, with f16 storage by default,
//! checked: the f16 model's flow must stay within `--tolerance` px (mean) of the f32 weights' on the evaluation
//! pairs, else nothing is written.

use std::path::PathBuf;

use clap::Args;
use corrflow::eval::{find_pairs, load_pair};
use corrflow::models::{StoreAs, Weights};
use corrflow::{Error, FlowNet, Result};

#[derive(Args)]
pub struct ExportArgs {
    /// The checkpoint to export (safetensors, f32).
    src: PathBuf,
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
    /// Largest mean |flow_f16 - flow_f32| allowed on any pair, in pixels.
    #[arg(long, default_value_t = 0.01)]
    tolerance: f64,
}

pub fn run(args: ExportArgs) -> Result<()> {
    super::check_range("export", "--tolerance", args.tolerance, 0.0, 100.0, true)?;
    let weights = Weights::load(&args.src)?;
    let arch = corrflow::models::Arch::infer(&weights)?;
    corrflow::io::check_distinct(&[&args.src], &[&args.out])?;
    corrflow::io::check_output(&args.out)?;
    let store = if args.f32 { StoreAs::F32 } else { StoreAs::F16 };
    let bytes = weights.to_bytes_as(store)?;
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
        let (ctx, first_run) = super::open_context()?;
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
