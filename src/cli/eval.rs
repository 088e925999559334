//! `corrflow eval [DIR]`: endpoint error of a model on every pair with ground truth found under DIR, beside
//! zero flow, as a table or JSON.

use std::path::PathBuf;

use clap::Args;
use corrflow::eval::{evaluate_pairs, find_pairs};
use corrflow::{Error, FlowNet, Result};

#[derive(Args)]
pub struct EvalArgs {
    /// Folder laid out like ../shared/data (Middlebury frame10/frame11/flow10.flo, Sintel clean|final + flow,
    /// KITTI flow_gt.png or image_2 + flow_occ, FlyingChairs -img0/-img1/-gt.flo). Default: ../shared/data.
    dir: Option<PathBuf>,
    /// Model weights (safetensors); default: the embedded model.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Only these datasets (middlebury, sintel_clean, sintel_final, kitti2015, flyingchairs, generated).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// The network's passes, as the input scale of each (`1`, `0.5,1,1`; see `corrflow flow --help`).
    /// Default: what the model file says.
    #[arg(long)]
    passes: Option<String>,
}

pub fn run(args: EvalArgs) -> Result<()> {
    let dir = match args.dir {
        Some(d) => d,
        None => {
            let d = PathBuf::from("../shared/data");
            if !d.is_dir() {
                return Err(Error::InvalidParam {
                    op: "eval",
                    message: "no folder given and ../shared/data does not exist: pass the folder to evaluate on".into(),
                });
            }
            d
        }
    };
    let mut pairs = find_pairs(&dir)?;
    if !args.only.is_empty() {
        pairs.retain(|p| args.only.contains(&p.dataset));
    }
    if pairs.is_empty() {
        return Err(Error::Format {
            path: dir,
            message: "no frame pairs with ground truth found (see `corrflow eval --help` for the layouts)".into(),
        });
    }
    let (weights, source) = super::flow::choose_weights(args.weights.as_deref())?;
    let passes = super::flow::choose_passes("eval", &weights, args.passes.as_deref())?;
    let (ctx, first_run) = super::open_context(args.json)?;
    let net = FlowNet::new(&ctx, &weights)?.with_passes(passes);
    let arch = net.arch();
    eprintln!(
        "network: {} width {} ({} parameters) from {source}, {}",
        arch.variant,
        arch.width,
        arch.num_params(),
        net.passes().describe()
    );
    let report = evaluate_pairs(&ctx, &net, &pairs, |i, n, p| eprintln!("[{}/{n}] {} {}", i + 1, p.dataset, p.name))?;
    say!("{}", if args.json { report.to_json() } else { report.to_table() });
    first_run.done();
    Ok(())
}
