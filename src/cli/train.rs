//! `corrflow train`: trains FlowNetS / FlowNetC with a progress bar, validation every N steps (held-out
//! synthetic pairs choose the best checkpoint; the real sequences are reported), a CSV log, a PNG plot,
//! weight decay, warm-up and step decay, atomic checkpoints, and an exact `--resume`.
//!
//! Files beside `--out run.safetensors`: `run.safetensors.adam` (Adam's state), `run.best.safetensors` (the
//! best weights by synthetic validation EPE), `run.csv` (the log), `run.png` (the curves) and, with
//! `--keep-every N`, `run.step-N.safetensors` snapshots.

use std::path::{Path, PathBuf};

use clap::Args;
use corrflow::data::augment::AugmentConfig;
use corrflow::data::synthetic::{load_texture_folder, SyntheticConfig};
use corrflow::models::flownet::{Arch, Variant};
use corrflow::models::Weights;
use corrflow::training::data::{scan_folder, LoaderOptions};
use corrflow::training::log::{TrainLog, TrainRow};
use corrflow::training::validate::Validator;
use corrflow::training::{DataSource, Loader, TrainConfig, Trainer};
use corrflow::{Error, FlowNet, Result};

use super::progress::{Progress, RowClock};
use super::{beside, check_int, check_range, parse_size};

#[derive(Args)]
#[command(allow_negative_numbers = true)]
pub struct TrainArgs {
    /// Network variant: s (FlowNetS) or c (FlowNetC).
    #[arg(long, default_value = "s")]
    variant: String,
    /// Width multiplier in (0, 4] (1 = the paper's network).
    #[arg(long, default_value_t = 0.25)]
    width: f64,
    /// Start from these weights (a fresh optimiser, step 0) instead of a new initialisation.
    #[arg(long)]
    init: Option<PathBuf>,
    /// Continue the checkpoint at --out exactly where it stopped (weights, Adam state, step, data stream).
    #[arg(long)]
    resume: bool,
    /// Replace an existing checkpoint at --out with a new run.
    #[arg(long)]
    overwrite: bool,
    /// Training steps to reach, counting those of a resumed checkpoint (1..=10^9).
    #[arg(long, default_value_t = 1000)]
    steps: u64,
    /// Pairs per step (1..=256).
    #[arg(long, default_value_t = 4)]
    batch: usize,
    /// Crop size WxH, multiples of 64, at most 4096.
    #[arg(long, default_value = "256x192")]
    size: String,
    /// Adam learning rate, in (0, 1].
    #[arg(long, default_value_t = 4e-4)]
    lr: f64,
    /// Warm-up steps (geometric from 1e-6 to --lr).
    #[arg(long, default_value_t = 100)]
    warmup: u64,
    /// Steps after which the learning rate halves, e.g. 20000,30000.
    #[arg(long, value_delimiter = ',')]
    milestones: Vec<u64>,
    /// L2 weight decay of the weights (not biases), in [0, 1); FlowNet used 4e-4.
    #[arg(long, default_value_t = 4e-4)]
    weight_decay: f64,
    /// A folder of samples (<prefix>img1/img2 + flow.flo, or FlyingChairs' names); synthetic if absent.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Texture synthetic layers with crops of the images in this folder (your own photos).
    #[arg(long)]
    textures: Option<PathBuf>,
    /// Train on the samples as generated, without FlowNet's augmentation (same as `--augment none`).
    #[arg(long, conflicts_with = "augment")]
    no_augment: bool,
    /// FlowNet's augmentation: `default`, `none`, or overrides such as
    /// `zoom=1:1.3,rotate_deg=5,noise_std=0:0.01,blur_prob=0` (fields: geometric_prob, zoom, rotate_deg,
    /// translate, relative_zoom, relative_rotate_deg, relative_translate_px, colour, contrast, gamma,
    /// brightness_std, relative_photometric, blur_prob, blur_sigma, noise_std; ranges as lo:hi).
    #[arg(long, default_value = "default")]
    augment: String,
    /// Checkpoint path (Adam's state, the best weights, the CSV log and the plot go beside it).
    #[arg(long, default_value = "flownet.safetensors")]
    out: PathBuf,
    /// Steps between checkpoints.
    #[arg(long, default_value_t = 200)]
    checkpoint_every: u64,
    /// Keep the weights at every multiple of N steps as `run.step-N.safetensors` beside the checkpoint (0:
    /// none), e.g. to average the last few with `corrflow export`.
    #[arg(long, default_value_t = 0)]
    keep_every: u64,
    /// Steps between validations (0: only at the end).
    #[arg(long, default_value_t = 500)]
    validate_every: u64,
    /// Held-out synthetic validation pairs (512x384), 0..=1000.
    #[arg(long, default_value_t = 16)]
    val_pairs: usize,
    /// Folder of real pairs reported at each validation (Middlebury and Sintel found in it), or `none`.
    /// Default: ../shared/data when present.
    #[arg(long)]
    eval_data: Option<PathBuf>,
    /// Steps between log rows (and progress lines when not on a terminal).
    #[arg(long, default_value_t = 10)]
    log_every: u64,
    /// Seed of the data stream and the initialisation (below 2^23).
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Largest host batch `train` allocates, bytes.
const MAX_BATCH_BYTES: u64 = 2 << 30;

pub fn run(args: TrainArgs) -> Result<()> {
    // Every argument is checked before any work.
    let variant = match args.variant.to_ascii_lowercase().as_str() {
        "s" | "flownets" => Variant::S,
        "c" | "flownetc" => Variant::C,
        other => return Err(Error::InvalidParam { op: "train", message: format!("--variant {other:?}: use s or c") }),
    };
    check_range("train", "--width", args.width, 0.0, 4.0, true)?;
    check_range("train", "--lr", args.lr, 0.0, 1.0, true)?;
    check_range("train", "--weight-decay", args.weight_decay, 0.0, 0.999, false)?;
    check_int("train", "--steps", args.steps, 1, 1_000_000_000)?;
    check_int("train", "--batch", args.batch as u64, 1, 256)?;
    check_int("train", "--seed", args.seed, 0, (1 << 23) - 1)?;
    check_int("train", "--val-pairs", args.val_pairs as u64, 0, 1000)?;
    check_int("train", "--checkpoint-every", args.checkpoint_every, 1, u64::MAX)?;
    check_int("train", "--log-every", args.log_every, 1, u64::MAX)?;
    let (w, h) = parse_size("train", "--size", &args.size, 64, 4096)?;
    // The host batch (frames A and B, flow: 8 floats a pixel) is allocated every step: bound it before any work.
    let batch_bytes = args.batch as u64 * 8 * 4 * w as u64 * h as u64;
    if batch_bytes > MAX_BATCH_BYTES {
        return Err(Error::InvalidParam {
            op: "train",
            message: format!(
                "--batch {} at {w}x{h} needs {:.1} GiB per batch on the host (limit {} GiB): use a smaller --batch or --size",
                args.batch,
                batch_bytes as f64 / (1u64 << 30) as f64,
                MAX_BATCH_BYTES >> 30
            ),
        });
    }
    if args.resume && (args.init.is_some() || args.overwrite) {
        return Err(Error::InvalidParam {
            op: "train",
            message: "--resume continues the checkpoint at --out; it cannot be combined with --init or --overwrite"
                .into(),
        });
    }
    let out = args.out.clone();
    let (best_path, csv_path, plot_path) =
        (beside(&out, ".best.safetensors"), beside(&out, ".csv"), beside(&out, ".png"));
    let existing = out.exists();
    if existing && !args.resume && !args.overwrite {
        let step = Weights::load(&out).ok().and_then(|w| w.metadata().get("step").cloned());
        return Err(Error::InvalidParam {
            op: "train",
            message: format!(
                "{} already exists{}: pass --resume to continue it, or --overwrite to replace it with a new run",
                out.display(),
                step.map(|s| format!(" (a checkpoint at step {s})")).unwrap_or_default()
            ),
        });
    }
    if args.resume && !existing {
        return Err(Error::InvalidParam {
            op: "train",
            message: format!(
                "--resume: there is no checkpoint at {} to continue (leave out --resume to start one)",
                out.display()
            ),
        });
    }
    corrflow::io::check_distinct(
        &args.init.iter().chain(&args.data).collect::<Vec<_>>(),
        &[&out, &best_path, &csv_path, &plot_path],
    )?;
    for p in [&out, &best_path, &csv_path, &plot_path] {
        corrflow::io::check_output(p)?;
    }
    let init = args.init.as_ref().map(Weights::load).transpose()?;
    let warmup_start = 1e-6f32.min(args.lr as f32);

    // The settings that fix the data stream: from the arguments, or on --resume from the checkpoint (so the
    // resumed run continues the same stream).
    let mut stream: Vec<(&str, String)> = vec![
        ("seed", args.seed.to_string()),
        ("batch", args.batch.to_string()),
        ("size", format!("{w}x{h}")),
        ("data", args.data.as_ref().map_or("synthetic".into(), |d| d.display().to_string())),
        ("textures", args.textures.as_ref().map_or("none".into(), |d| d.display().to_string())),
        (
            "augment",
            if args.no_augment { "none".to_string() } else { AugmentConfig::from_spec(&args.augment)?.to_spec() },
        ),
    ];
    let config = TrainConfig {
        adam: corrflow::ops::optim::AdamConfig {
            lr: args.lr as f32,
            weight_decay: args.weight_decay as f32,
            ..Default::default()
        },
        warmup_steps: args.warmup,
        warmup_start_lr: warmup_start,
        milestones: args.milestones.clone(),
        ..Default::default()
    };

    let (ctx, first_run) = super::open_context(false)?;
    let mut trainer = if args.resume {
        let (t, optimizer) = Trainer::resume(&ctx, &out, config)?;
        if !optimizer {
            say!("note: Adam state missing or from another step: its moments restart at zero (not an exact resume)");
        }
        for (key, value) in stream.iter_mut() {
            if let Some(saved) = t.metadata().get(*key) {
                *value = saved.clone();
            }
        }
        say!("resumed {} at step {}", out.display(), t.steps());
        t
    } else {
        let weights = match &init {
            Some(w) => w.clone(),
            None => Arch::new(variant, args.width).init_weights(args.seed),
        };
        Trainer::new(&ctx, FlowNet::new(&ctx, &weights)?, config)?
    };
    for (key, value) in &stream {
        trainer.set_metadata(key, value);
    }
    if trainer.steps() >= args.steps {
        say!(
            "{} is already at step {} (--steps {}): nothing to do; raise --steps to train further",
            out.display(),
            trainer.steps(),
            args.steps
        );
        return Ok(());
    }
    let get = |k: &str| stream.iter().find(|(key, _)| *key == k).map(|(_, v)| v.clone()).unwrap_or_default();
    let seed: u64 = get("seed")
        .parse()
        .map_err(|_| Error::InvalidParam { op: "train", message: "checkpoint has a bad seed".into() })?;
    let batch: usize = get("batch")
        .parse()
        .map_err(|_| Error::InvalidParam { op: "train", message: "checkpoint has a bad batch".into() })?;
    let (w, h) = parse_size("train", "the checkpoint's size", &get("size"), 64, 4096)?;
    let augment = AugmentConfig::from_spec(&get("augment"))?;
    let source = match get("data").as_str() {
        "synthetic" | "" => {
            let mut cfg = SyntheticConfig::default();
            let textures = get("textures");
            if !textures.is_empty() && textures != "none" {
                cfg.photos = load_texture_folder(Path::new(&textures))?;
            }
            DataSource::Synthetic(cfg)
        }
        dir => DataSource::Folder(scan_folder(Path::new(dir))?),
    };
    let described = match &source {
        DataSource::Folder(s) => format!("{} samples from {}", s.len(), get("data")),
        DataSource::Synthetic(c) => format!(
            "synthetic pairs{}",
            if c.photos.is_empty() { String::new() } else { format!(" ({} texture photos)", c.photos.len()) }
        ),
    };
    let arch = trainer.network().arch().clone();
    say!(
        "training {} width {} ({} parameters) on {described}{}, batch {batch} at {w}x{h}, seed {seed}, to step {}",
        arch.variant,
        arch.width,
        arch.num_params(),
        if augment == AugmentConfig::none() { "" } else { " with augmentation" },
        args.steps
    );
    let mut loader = Loader::with_options(
        source,
        LoaderOptions { batch, height: h, width: w, seed, augment, start_batch: trainer.steps(), prefetch: 2 },
    )?;

    // Validation sets.
    let eval_root = match &args.eval_data {
        Some(p) if p.as_os_str() == "none" => None,
        Some(p) => Some(p.clone()),
        None => Some(PathBuf::from("../shared/data")).filter(|p| p.is_dir()),
    };
    let (validator, problems) = Validator::new(
        &SyntheticConfig::default(),
        args.val_pairs,
        512,
        384,
        eval_root.as_deref(),
        &["middlebury", "sintel_clean", "sintel_final"],
    )?;
    for p in problems {
        say!("validation: skipping {p}");
    }
    let (ns, nr) = validator.counts();
    say!(
        "validation: {ns} held-out synthetic pairs (chooses the best checkpoint), {nr} real pairs{} (reported only)",
        eval_root.as_ref().map(|r| format!(" from {}", r.display())).unwrap_or_default()
    );

    // The log continues a resumed run's rows (rows past the checkpoint's step are dropped).
    let mut log = TrainLog::open(&csv_path, if args.resume { Some(trainer.steps()) } else { None })?;
    let mut best = log.best();
    let mut clock = RowClock::new(trainer.steps(), log.totals());
    let progress = Progress::new(args.steps, trainer.steps());
    let mut last_val: Option<f64> = None;
    while trainer.steps() < args.steps {
        let batch_data = loader.next_batch()?;
        let report = trainer.step(&ctx, &batch_data)?;
        clock.push(report.loss);
        let step = report.step;
        let last = step == args.steps;
        let validate = last || (args.validate_every > 0 && step % args.validate_every == 0);
        if step % args.log_every == 0 || validate {
            let (loss, rate) = clock.row(step, batch);
            let val = if validate { Some(validator.run(&ctx, trainer.network())?) } else { None };
            // The next row's rate counts training only, not this validation.
            clock.restart();
            let (wall_s, cpu_s) = clock.totals();
            let row = TrainRow {
                step,
                wall_s,
                cpu_s,
                lr: report.lr as f64,
                loss: loss as f64,
                samples_per_s: rate,
                gen_samples_per_s: loader.generator_samples_per_s(),
                data_wait_s: loader.waited().as_secs_f64(),
                validation: val.as_ref().map(|v| v.columns()).unwrap_or_default(),
            };
            log.append(&row)?;
            let vtext = last_val.map(|v| format!("  val EPE {v:.3}")).unwrap_or_default();
            progress.update(step, format!("loss {loss:.3}{vtext}  {rate:.1} samples/s"));
            if step % (10 * args.log_every) == 0 || validate {
                progress.log(format_args!(
                    "step {step:>7}  loss {loss:>8.4}  lr {:.2e}  {rate:.2} samples/s (generator {:.1}/s)",
                    report.lr,
                    loader.generator_samples_per_s()
                ));
            }
            if let Some(v) = val {
                let real: Vec<String> = v.real.iter().map(|(d, e, z, _)| format!("{d} {e:.3} (zero {z:.3})")).collect();
                progress.note(format!(
                    "validation at step {step}: synthetic EPE {:.3}{}{}  [{:.1} s]",
                    v.synthetic_epe,
                    if real.is_empty() { "" } else { ", " },
                    real.join(", "),
                    v.time.as_secs_f64()
                ));
                last_val = Some(v.synthetic_epe);
                if v.synthetic_epe.is_finite() && best.is_none_or(|b| v.synthetic_epe < b) {
                    best = Some(v.synthetic_epe);
                    let figure = [("val_synthetic_epe", format!("{:.4}", v.synthetic_epe))];
                    trainer.save_weights_with(&ctx, &best_path, &figure)?;
                    progress.note(format!("best so far: {} (step {step})", best_path.display()));
                }
                log.plot(&plot_path)?;
            }
        }
        if args.keep_every > 0 && step % args.keep_every == 0 {
            let snapshot = beside(&out, &format!(".step-{step}.safetensors"));
            trainer.save_weights(&ctx, &snapshot)?;
            progress.log(format_args!("snapshot: {}", snapshot.display()));
        }
        if step % args.checkpoint_every == 0 || last {
            trainer.save_checkpoint(&ctx, &out)?;
            progress.log(format_args!("checkpoint: {} (step {step})", out.display()));
        }
    }
    progress.finish();
    say!(
        "done: step {} in {:.0} s; checkpoint {}, best {}, log {}, plot {}",
        trainer.steps(),
        clock.elapsed(),
        out.display(),
        best_path.display(),
        csv_path.display(),
        plot_path.display()
    );
    first_run.done();
    Ok(())
}
