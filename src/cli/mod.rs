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
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Flow { a, b, weights, out, png, gt } => flow(a, b, weights, &out, &png, gt),
        Command::Info => info(),
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

fn flow(a: Option<PathBuf>, b: Option<PathBuf>, weights: Option<PathBuf>, out: &Path, png: &Path, gt: Option<PathBuf>) -> Result<()> {
    let t_load = Instant::now();
    let (frame_a, frame_b, demo_gt) = match (a, b) {
        (Some(a), Some(b)) => (load_frame(&a)?, load_frame(&b)?, None),
        (None, None) => {
            let (a, b, f) = corrflow::data::demo::demo_pair();
            println!("frames: built-in demo pair {}x{} (known motion: rotation, zoom and shift)", a.width(), a.height());
            (image::DynamicImage::ImageRgb8(a), image::DynamicImage::ImageRgb8(b), Some(f))
        }
        _ => return Err(Error::Mismatch { message: "give two frames (A and B), or none for the built-in demo pair".into() }),
    };
    let weights_path = weights.ok_or_else(|| Error::Weights {
        path: "(none given)".into(),
        message: "no trained weights are embedded in corrflow yet: pass --weights FILE.safetensors (a FlowNetS/FlowNetC checkpoint with FlowNetPytorch tensor names, e.g. ../shared/fixtures/flownetc_w0.25/weights.safetensors)".into(),
    })?;
    let weights = Weights::load(&weights_path)?;
    let ctx = Context::new_blocking()?;
    println!("adapter: {}", ctx.adapter());
    let net = FlowNet::new(&ctx, &weights)?;
    let arch = net.arch();
    println!("network: {} width {} ({} parameters) from {}", arch.variant, arch.width, arch.num_params(), weights_path.display());
    let load_time = t_load.elapsed();
    let report = net.estimate_report(&ctx, &frame_a, &frame_b)?;
    let flow = &report.flow;
    println!("frames {}x{}, network input {}x{}", flow.width, flow.height, report.network_size.0, report.network_size.1);
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
