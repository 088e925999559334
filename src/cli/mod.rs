//! Command-line face of the library (clap). Every failure is printed as `error: ...` with exit code 1;
//! nothing here panics on user input.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use corrflow::metrics::evaluate;
use corrflow::models::{load_frame, Weights};
use corrflow::{Context, Error, Flow, FlowNet, Result};

#[derive(Parser)]
#[command(name = "corrflow", version, about = "Optical flow (FlowNetS / FlowNetC) on any wgpu adapter")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Optical flow from frame A to frame B (the built-in demo pair when no frames are given).
    Flow {
        /// First frame (PNG, JPEG, PPM, BMP).
        a: Option<PathBuf>,
        /// Second frame, same size as the first.
        b: Option<PathBuf>,
        /// FlowNetS / FlowNetC weights (safetensors, FlowNetPytorch tensor names).
        #[arg(long)]
        weights: Option<PathBuf>,
        /// Where to write the flow (Middlebury .flo, or KITTI 16-bit .png).
        #[arg(long, default_value = "flow.flo")]
        out: PathBuf,
        /// Where to write the colour-wheel picture of the flow.
        #[arg(long, default_value = "flow.png")]
        png: PathBuf,
        /// Ground-truth flow (.flo, or KITTI .png) to report EPE, AE and Fl-all against.
        #[arg(long)]
        gt: Option<PathBuf>,
    },
    /// List the adapters wgpu sees, best first, with their compute limits.
    Info,
    /// Train FlowNetS / FlowNetC on synthetic pairs (default) or a folder of samples, with checkpoints.
    Train {
        /// Network variant: s or c.
        #[arg(long, default_value = "c")]
        variant: String,
        /// Width multiplier (1 = the paper's network).
        #[arg(long, default_value_t = 0.25)]
        width: f64,
        /// Start from these weights instead of a fresh initialisation.
        #[arg(long)]
        init: Option<PathBuf>,
        /// Continue from the checkpoint at --out (weights, step and Adam state).
        #[arg(long)]
        resume: bool,
        /// Training steps to reach (counting those of a resumed checkpoint).
        #[arg(long, default_value_t = 1000)]
        steps: u64,
        /// Pairs per step.
        #[arg(long, default_value_t = 4)]
        batch: usize,
        /// Crop size WxH, multiples of 64.
        #[arg(long, default_value = "256x192")]
        size: String,
        /// Adam learning rate.
        #[arg(long, default_value_t = 1e-4)]
        lr: f32,
        /// Warm-up steps (geometric from 1e-6 to --lr).
        #[arg(long, default_value_t = 0)]
        warmup: u64,
        /// A folder of samples (<prefix>img1/img2 + flow.flo, or FlyingChairs' names); synthetic if absent.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Checkpoint path (weights; Adam's state goes beside it with `.adam` appended).
        #[arg(long, default_value = "flownet.safetensors")]
        out: PathBuf,
        /// Steps between checkpoints.
        #[arg(long, default_value_t = 100)]
        checkpoint_every: u64,
        /// Seed of the data stream and the initialisation.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Measure kernel and network throughput on the chosen adapter.
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
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
        /// flownetc_train_b8_w1, flownetc_train_b8_w0.25).
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

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Flow { a, b, weights, out, png, gt } => flow(a, b, weights, &out, &png, gt),
        Command::Info => info(),
        Command::Bench { what } => bench(what),
        Command::Train {
            variant,
            width,
            init,
            resume,
            steps,
            batch,
            size,
            lr,
            warmup,
            data,
            out,
            checkpoint_every,
            seed,
        } => train(TrainArgs {
            variant,
            width,
            init,
            resume,
            steps,
            batch,
            size,
            lr,
            warmup,
            data,
            out,
            checkpoint_every,
            seed,
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn info() -> Result<()> {
    let adapters = pollster::block_on(corrflow::runtime::adapter_summaries());
    if adapters.is_empty() {
        return Err(Error::NoAdapter { detail: String::new() });
    }
    for (i, a) in adapters.iter().enumerate() {
        println!("{}{}", if i == 0 { "* " } else { "  " }, a);
        println!("    max buffer {} MiB, max storage binding {} MiB, workgroup storage {} KiB, {} invocations/workgroup, {} workgroups/dimension",
            a.max_buffer_size >> 20, a.max_storage_buffer_binding_size >> 20, a.max_compute_workgroup_storage_size >> 10,
            a.max_compute_invocations_per_workgroup, a.max_compute_workgroups_per_dimension);
    }
    println!("(* = the adapter corrflow picks; set WGPU_ADAPTER_NAME or WGPU_BACKEND to choose another)");
    Ok(())
}

struct TrainArgs {
    variant: String,
    width: f64,
    init: Option<PathBuf>,
    resume: bool,
    steps: u64,
    batch: usize,
    size: String,
    lr: f32,
    warmup: u64,
    data: Option<PathBuf>,
    out: PathBuf,
    checkpoint_every: u64,
    seed: u64,
}

fn parse_size(size: &str) -> Result<(usize, usize)> {
    let bad = || Error::InvalidParam {
        op: "train",
        message: format!("--size {size:?}: expected WxH with multiples of 64, e.g. 256x192"),
    };
    let (w, h) = size.split_once(['x', 'X']).ok_or_else(bad)?;
    let (w, h): (usize, usize) = (w.trim().parse().map_err(|_| bad())?, h.trim().parse().map_err(|_| bad())?);
    if w == 0 || h == 0 || w % 64 != 0 || h % 64 != 0 {
        return Err(bad());
    }
    Ok((w, h))
}

fn train(args: TrainArgs) -> Result<()> {
    use corrflow::models::flownet::{Arch, Variant};
    use corrflow::training::{DataSource, Loader, TrainConfig, Trainer};
    let variant = match args.variant.to_ascii_lowercase().as_str() {
        "s" | "flownets" => Variant::S,
        "c" | "flownetc" => Variant::C,
        other => return Err(Error::InvalidParam { op: "train", message: format!("--variant {other:?}: use s or c") }),
    };
    let (w, h) = parse_size(&args.size)?;
    let config = TrainConfig {
        adam: corrflow::ops::optim::AdamConfig { lr: args.lr, ..Default::default() },
        warmup_steps: args.warmup,
        ..Default::default()
    };
    let ctx = Context::new_blocking()?.with_policy(corrflow::runtime::Policy::from_env());
    println!("adapter: {}", ctx.adapter());
    let mut trainer = if args.resume {
        let (t, optimizer) = Trainer::resume(&ctx, &args.out, config)?;
        println!(
            "resumed {} at step {}{}",
            args.out.display(),
            t.steps(),
            if optimizer { "" } else { " (Adam state missing or stale: moments restart at zero)" }
        );
        t
    } else {
        let weights = match &args.init {
            Some(p) => Weights::load(p)?,
            None => Arch::new(variant, args.width).init_weights(args.seed),
        };
        Trainer::new(&ctx, FlowNet::new(&ctx, &weights)?, config)?
    };
    let arch = trainer.network().arch().clone();
    let source = match &args.data {
        Some(dir) => DataSource::Folder(corrflow::training::data::scan_folder(dir)?),
        None => DataSource::Synthetic(corrflow::data::synthetic::SyntheticConfig::default()),
    };
    let described = match &source {
        DataSource::Folder(s) => format!(
            "{} samples from {}",
            s.len(),
            args.data.as_deref().map(|p| p.display().to_string()).unwrap_or_default()
        ),
        DataSource::Synthetic(_) => "synthetic FlyingChairs-style pairs".to_string(),
    };
    println!(
        "training {} width {} ({} parameters) on {described}, batch {} at {w}x{h}, to step {}",
        arch.variant,
        arch.width,
        arch.num_params(),
        args.batch,
        args.steps
    );
    let mut loader = Loader::new(source, args.batch, h, w, args.seed.wrapping_add(trainer.steps()))?;
    let start = std::time::Instant::now();
    let first_step = trainer.steps();
    let mut recent = Vec::new();
    while trainer.steps() < args.steps {
        let batch = loader.next_batch()?;
        let report = trainer.step(&ctx, &batch)?;
        recent.push(report.loss);
        let done = report.step - first_step;
        let every = args.checkpoint_every.max(1);
        if report.step % 10 == 0 || report.step == args.steps {
            let rate = done as f64 / start.elapsed().as_secs_f64();
            let left = (args.steps - report.step) as f64 / rate.max(1e-9);
            let mean = recent.iter().sum::<f32>() / recent.len() as f32;
            recent.clear();
            println!(
                "step {:>7}  loss {mean:>9.4}  lr {:.2e}  {rate:.2} steps/s  ETA {:.0} s",
                report.step, report.lr, left
            );
        }
        if report.step % every == 0 || report.step == args.steps {
            trainer.save_checkpoint(&ctx, &args.out)?;
            println!("checkpoint: {} (step {})", args.out.display(), report.step);
        }
    }
    Ok(())
}

fn bench(what: BenchCommand) -> Result<()> {
    let ctx = Context::new_blocking()?.with_policy(corrflow::runtime::Policy::from_env());
    eprintln!("adapter: {}", ctx.adapter());
    match what {
        BenchCommand::Correlation { json, quick, only } => {
            let report = corrflow::bench::correlation::run(
                &ctx,
                &corrflow::bench::correlation::CorrelationBenchOptions { quick, only },
            )?;
            println!("{}", if json { report.to_json() } else { report.to_table() });
        }
        BenchCommand::Flownet { json, only, runs, baseline, smoke } => {
            let opts = corrflow::bench::flownet::FlowNetBenchOptions { only, runs, baseline, smoke, progress: true };
            let report = corrflow::bench::flownet::run(&ctx, &opts)?;
            println!("{}", if json { report.to_json() } else { report.to_table() });
        }
    }
    Ok(())
}

fn read_gt(path: &Path) -> Result<(Flow, Option<Vec<bool>>)> {
    let is_png = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if is_png {
        let (f, valid) = corrflow::io::read_kitti_flow(path)?;
        Ok((f, Some(valid)))
    } else {
        Ok((corrflow::io::read_flo(path)?, None))
    }
}

fn write_flow(path: &Path, flow: &Flow) -> Result<()> {
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")) {
        corrflow::io::write_kitti_flow(path, flow, None)
    } else {
        corrflow::io::write_flo(path, flow)
    }
}

fn flow(
    a: Option<PathBuf>,
    b: Option<PathBuf>,
    weights: Option<PathBuf>,
    out: &Path,
    png: &Path,
    gt: Option<PathBuf>,
) -> Result<()> {
    let t_load = Instant::now();
    let (frame_a, frame_b, demo_gt) = match (a, b) {
        (Some(a), Some(b)) => (load_frame(&a)?, load_frame(&b)?, None),
        (None, None) => {
            let (a, b, f) = corrflow::data::demo::demo_pair();
            println!(
                "frames: built-in demo pair {}x{} (known motion: rotation, zoom and shift)",
                a.width(),
                a.height()
            );
            (image::DynamicImage::ImageRgb8(a), image::DynamicImage::ImageRgb8(b), Some(f))
        }
        _ => {
            return Err(Error::Mismatch {
                message: "give two frames (A and B), or none for the built-in demo pair".into(),
            })
        }
    };
    let weights_path = weights.ok_or_else(|| Error::Weights {
        path: "(none given)".into(),
        message: "no trained weights are embedded in corrflow yet: pass --weights FILE.safetensors (a FlowNetS/FlowNetC checkpoint with FlowNetPytorch tensor names, e.g. ../shared/fixtures/flownetc_w0.25/weights.safetensors)".into(),
    })?;
    let weights = Weights::load(&weights_path)?;
    let ctx = Context::new_blocking()?.with_policy(corrflow::runtime::Policy::from_env());
    println!("adapter: {}", ctx.adapter());
    let net = FlowNet::new(&ctx, &weights)?;
    let arch = net.arch();
    println!(
        "network: {} width {} ({} parameters) from {}",
        arch.variant,
        arch.width,
        arch.num_params(),
        weights_path.display()
    );
    let load_time = t_load.elapsed();
    let report = net.estimate_report(&ctx, &frame_a, &frame_b)?;
    let flow = &report.flow;
    println!(
        "frames {}x{}, network input {}x{}",
        flow.width, flow.height, report.network_size.0, report.network_size.1
    );
    println!("time: load {:.1} ms", load_time.as_secs_f64() * 1e3);
    for (stage, d) in &report.stages {
        println!("time: {stage} {:.1} ms", d.as_secs_f64() * 1e3);
    }
    let t_write = Instant::now();
    write_flow(out, flow)?;
    corrflow::viz::write_flow_png(png, flow, None)?;
    println!("time: write {:.1} ms", t_write.elapsed().as_secs_f64() * 1e3);
    let mags: Vec<f32> = flow.data.chunks_exact(2).map(|p| p[0].hypot(p[1])).collect();
    let mean_mag = mags.iter().sum::<f32>() / mags.len().max(1) as f32;
    println!("flow: mean magnitude {mean_mag:.3} px, max {:.3} px", flow.max_magnitude(None));
    println!("wrote {} and {}", out.display(), png.display());
    let gt = match gt {
        Some(p) => Some(read_gt(&p)?),
        None => demo_gt.map(|f| (f, None)),
    };
    if let Some((gt, valid)) = gt {
        let m = evaluate(flow, &gt, valid.as_deref())?;
        println!("against ground truth: {m}");
    }
    Ok(())
}
