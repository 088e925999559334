//! `corrflow flow A B`: optical flow between two frames (or the built-in demo pair), written as `.flo` (or
//! KITTI PNG) and as a colour picture, with per-stage times and, given ground truth, EPE / AE / Fl-all.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use corrflow::io::OutputSet;
use corrflow::metrics::evaluate;
use corrflow::models::flownet::Passes;
use corrflow::models::{load_frame, Weights};
use corrflow::{Error, Flow, FlowNet, Result};

#[derive(Args)]
pub struct FlowArgs {
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
    /// The network's passes, as the input scale of each (`1`: once at the frames' size; `0.5,1,1`: at half
    /// size, then twice at full size): each pass after the first warps frame B by the flow so far and adds
    /// the flow found between A and the warped B. Default: what the model file says (the embedded model:
    /// `0.5,1,1`).
    #[arg(long)]
    passes: Option<String>,
}

fn read_gt(path: &Path) -> Result<(Flow, Option<Vec<bool>>)> {
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")) {
        let (f, valid) = corrflow::io::read_kitti_flow(path)?;
        Ok((f, Some(valid)))
    } else {
        Ok((corrflow::io::read_flo(path)?, None))
    }
}

/// The flow file's bytes: KITTI 16-bit PNG for a `.png` path, Middlebury `.flo` otherwise.
fn encode_flow(path: &Path, flow: &Flow) -> Result<Vec<u8>> {
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")) {
        corrflow::io::encode_kitti_flow(flow, None)
    } else {
        Ok(corrflow::io::encode_flo(flow))
    }
}

/// The weights at `path`, or the embedded model; with a description of where they came from.
pub(crate) fn choose_weights(path: Option<&Path>) -> Result<(Weights, String)> {
    match path {
        Some(p) => Ok((Weights::load(p)?, p.display().to_string())),
        None => {
            let w = corrflow::models::pretrained::flownet_weights()?;
            let step = w.metadata().get("step").map(|s| format!(", trained {s} steps")).unwrap_or_default();
            Ok((w, format!("{}{step}", corrflow::models::pretrained::SOURCE)))
        }
    }
}

/// `--passes` if given (checked), else the model's own (its metadata; one pass when it says nothing).
pub(crate) fn choose_passes(op: &'static str, weights: &Weights, given: Option<&str>) -> Result<Passes> {
    match given {
        Some(text) => Passes::parse(text).map_err(|e| {
            let why = match e {
                Error::InvalidParam { message, .. } => message,
                e => e.to_string(),
            };
            Error::InvalidParam { op, message: format!("--passes {why}") }
        }),
        None => corrflow::models::flownet::passes_in(weights),
    }
}

pub fn run(args: FlowArgs) -> Result<()> {
    let FlowArgs { a, b, weights: weights_path, out, png, gt: gt_path, passes } = args;
    // Everything is read and checked before the GPU work: frames decoded, weights parsed and matched to a
    // network, ground truth read and its size compared with the frames', outputs writable.
    let t_load = Instant::now();
    let (frame_a, frame_b, demo_gt) = match (&a, &b) {
        (Some(a), Some(b)) => (load_frame(a)?, load_frame(b)?, None),
        (None, None) => {
            let (a, b, f) = corrflow::data::demo::demo_pair();
            say!("frames: built-in demo pair {}x{} (known motion: rotation, zoom and shift)", a.width(), a.height());
            (image::DynamicImage::ImageRgb8(a), image::DynamicImage::ImageRgb8(b), Some(f))
        }
        _ => {
            return Err(Error::Mismatch {
                message: "give two frames (A and B), or none for the built-in demo pair".into(),
            })
        }
    };
    if (frame_a.width(), frame_a.height()) != (frame_b.width(), frame_b.height()) {
        return Err(Error::Mismatch {
            message: format!(
                "frames differ in size: {}x{} and {}x{}; pass two frames of the same video",
                frame_a.width(),
                frame_a.height(),
                frame_b.width(),
                frame_b.height()
            ),
        });
    }
    let (weights, source) = choose_weights(weights_path.as_deref())?;
    let arch = corrflow::models::flownet::Arch::infer(&weights)?;
    let passes = choose_passes("flow", &weights, passes.as_deref())?;
    let gt = match &gt_path {
        Some(p) => Some(read_gt(p)?),
        None => demo_gt.map(|f| (f, None)),
    };
    if let Some((g, valid)) = &gt {
        // A ground truth with no known pixel is refused now, not after the run as "EPE NaN".
        evaluate(g, g, valid.as_deref())?;
        if (g.width, g.height) != (frame_a.width() as usize, frame_a.height() as usize) {
            return Err(Error::Mismatch {
                message: format!(
                    "ground truth is {}x{} but the frames are {}x{}",
                    g.width,
                    g.height,
                    frame_a.width(),
                    frame_a.height()
                ),
            });
        }
    }
    let inputs: Vec<&Path> =
        [a.as_deref(), b.as_deref(), weights_path.as_deref(), gt_path.as_deref()].into_iter().flatten().collect();
    let outputs = OutputSet::check(&inputs, &[&out, &png])?;

    let (ctx, first_run) = super::open_context(false)?;
    let net = FlowNet::new(&ctx, &weights)?.with_passes(passes);
    say!(
        "network: {} width {} ({} parameters) from {source}, {}",
        arch.variant,
        arch.width,
        arch.num_params(),
        net.passes().describe()
    );
    let load_time = t_load.elapsed();
    let report = net.estimate_report(&ctx, &frame_a, &frame_b)?;
    let flow = &report.flow;
    say!("frames {}x{}, network input {}x{}", flow.width, flow.height, report.network_size.0, report.network_size.1);
    say!("time: load {:.1} ms", load_time.as_secs_f64() * 1e3);
    for (stage, d) in &report.stages {
        say!("time: {stage} {:.1} ms", d.as_secs_f64() * 1e3);
    }
    let t_write = Instant::now();
    // Both files are encoded first, then written together: on any failure neither replaces anything.
    let flow_bytes = encode_flow(&out, flow)?;
    let png_bytes = corrflow::viz::encode_flow_png(flow, None, &png)?;
    outputs.write(&[(&out, &flow_bytes), (&png, &png_bytes)])?;
    say!("time: write {:.1} ms", t_write.elapsed().as_secs_f64() * 1e3);
    let mags: Vec<f32> = flow.data.chunks_exact(2).map(|p| p[0].hypot(p[1])).collect();
    let mean_mag = mags.iter().sum::<f32>() / mags.len().max(1) as f32;
    say!("flow: mean magnitude {mean_mag:.3} px, max {:.3} px", flow.max_magnitude(None));
    say!("wrote {} and {}", out.display(), png.display());
    if let Some((gt, valid)) = gt {
        let m = evaluate(flow, &gt, valid.as_deref())?;
        say!("against ground truth: {m}");
    }
    first_run.done();
    Ok(())
}
