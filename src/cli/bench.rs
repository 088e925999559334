//! `corrflow bench`: the correlation layer and the whole networks, as fractions of the adapter's FMA peak.

use clap::{Args, Subcommand};
use corrflow::{Context, Result};

#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: BenchCommand,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// The correlation layer: tiled forward/backward vs the naive kernel, as a fraction of the FMA peak.
    Correlation {
        /// Print one JSON object instead of the table.
        #[arg(long)]
        json: bool,
        /// One timed repetition and a reduced naive baseline (a quick look).
        #[arg(long)]
        quick: bool,
        /// Only these configs (flownetc_b1, flownetc_b8, pwc, hd1080_quarter).
        #[arg(long)]
        only: Vec<String>,
    },
    /// FlowNetS/FlowNetC forward at 384x512 and a FlowNetC training step, with a per-layer breakdown.
    Flownet {
        /// Print one JSON object instead of the table.
        #[arg(long)]
        json: bool,
        /// Only these configs (flownets_fwd_b1, flownets_fwd_b8, flownetc_fwd_b1, flownetc_fwd_b8,
        /// flownetc_train_b8_w1, flownetc_train_b8_w0.25, flownets_train_b4_w0.25_256x192).
        #[arg(long)]
        only: Vec<String>,
        /// Timed repetitions after the warm-up.
        #[arg(long, default_value_t = 1)]
        runs: usize,
        /// Also time the first (direct) conv kernels on the forward configs, for the speed-up.
        #[arg(long)]
        baseline: bool,
        /// Tiny configs (64x128, width 0.125): checks the command in seconds.
        #[arg(long)]
        smoke: bool,
    },
}

pub fn run(args: BenchArgs) -> Result<()> {
    let ctx = Context::new_blocking()?.with_policy(corrflow::runtime::Policy::from_env());
    eprintln!("adapter: {}", ctx.adapter());
    match args.what {
        BenchCommand::Correlation { json, quick, only } => {
            let report = corrflow::bench::correlation::run(
                &ctx,
                &corrflow::bench::correlation::CorrelationBenchOptions { quick, only },
            )?;
            say!("{}", if json { report.to_json() } else { report.to_table() });
        }
        BenchCommand::Flownet { json, only, runs, baseline, smoke } => {
            let opts = corrflow::bench::flownet::FlowNetBenchOptions { only, runs, baseline, smoke, progress: true };
            let report = corrflow::bench::flownet::run(&ctx, &opts)?;
            say!("{}", if json { report.to_json() } else { report.to_table() });
        }
    }
    Ok(())
}
