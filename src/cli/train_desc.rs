//! `corrflow train-desc`: trains the dense descriptor network with a metric loss (contrastive, triplet with
//! one of five samplers, ProxyNCA) on image pairs with exact correspondences made on the fly, with the same
//! experience as `corrflow train`: every argument checked before any work, a checkpoint never replaced
//! without `--resume` or `--overwrite`, an index-addressed data stream (a killed run resumes to the same
//! bits), a progress bar, a CSV log and PNG curves, and validation every N steps on held-out synthetic pairs
//! (Recall@1, Recall@4 of patch retrieval, MMA@3 of the matcher), which choose the best checkpoint.
//!
//! Files beside `--out run.safetensors`: `run.safetensors.adam`, `run.best.safetensors` (best MMA@3 on the
//! held-out pairs), `run.csv`, `run.png` (and `run.step-N.safetensors` snapshots with `--keep-every N`). With
//! `--ensemble N`: N members `run.m0.safetensors` ... (each with its own files, seeds `--seed`, `--seed + 1`, ...) and
//! `run.ensemble.safetensors`, the members' best weights in one file (their descriptors concatenated and
//! re-normalised).
//!
//! `--divide K` trains the divide-and-conquer descriptor (Sanakoyeu et al. 2019,
//! [`corrflow::models::descriptor::divide`]): K learners, slices of D / K channels of the one output, each
//! trained on the points of its k-means cluster (re-clustered every `--recluster` steps), then the whole
//! descriptor fine-tuned for the last `--conquer-share` of the steps (of the CPU budget when one is set and
//! runs out first). The checkpoint stays a plain descriptor; the clustering state is in its metadata, so
//! `--resume` continues exactly.

use std::path::{Path, PathBuf};

use clap::Args;
use corrflow::data::correspondence::SourceImages;
use corrflow::data::synthetic::{load_texture_folder, SyntheticConfig};
use corrflow::models::descriptor::data::{descriptor_batches, ClassPool, DescDataConfig};
use corrflow::models::descriptor::divide::{DivideConfig, Divider, Phase, CANDIDATE_FACTOR};
use corrflow::models::descriptor::validate::{log_schema, DescValidator};
use corrflow::models::descriptor::{
    DescriptorArch, DescriptorEnsemble, DescriptorModel, LossKind, SamplerKind, TrainLossConfig,
};
use corrflow::models::Weights;
use corrflow::training::log::{TrainLog, TrainRow};
use corrflow::training::{ModelTrainer, TrainConfig};
use corrflow::{Context, Error, Result};

use super::progress::{Progress, RowClock};
use super::{beside, check_int, check_range, parse_size};

#[derive(Args, Clone)]
#[command(allow_negative_numbers = true)]
pub struct TrainDescArgs {
    /// Loss: contrastive, triplet or proxy-nca.
    #[arg(long, default_value = "triplet")]
    loss: String,
    /// The triplet loss's negatives: random, hardest (HardNet), semihard (FaceNet), distance-weighted (Wu et
    /// al.) or hierarchical (Ge et al.). Default: distance-weighted for triplet (the best at equal cost,
    /// README); the contrastive loss takes random (every negative of the batch), ProxyNCA none.
    #[arg(long)]
    sampler: Option<String>,
    /// Margin of the contrastive and triplet losses, in (0, 4].
    #[arg(long, default_value_t = 1.0)]
    margin: f64,
    /// ProxyNCA's softmax temperature, in (0, 10].
    #[arg(long, default_value_t = 0.1)]
    temperature: f64,
    /// Hierarchical sampling: negatives come from the anchor class's this many nearest classes (1..=32).
    #[arg(long, default_value_t = 8)]
    neighbours: usize,
    /// ProxyNCA: fixed scenes in the class pool (1..=4096); each has --points classes.
    #[arg(long, default_value_t = 128)]
    proxy_scenes: usize,
    /// Descriptor dimension (1..=1024).
    #[arg(long, default_value_t = 128)]
    dim: usize,
    /// Width multiplier of the tower, in (0, 4].
    #[arg(long, default_value_t = 1.0)]
    width: f64,
    /// Start from these weights (a fresh optimiser, step 0) instead of a new initialisation.
    #[arg(long)]
    init: Option<PathBuf>,
    /// Continue the checkpoint at --out exactly where it stopped (weights, Adam state, step, data stream, loss).
    #[arg(long)]
    resume: bool,
    /// Replace an existing checkpoint at --out with a new run.
    #[arg(long)]
    overwrite: bool,
    /// Training steps to reach, counting those of a resumed checkpoint (1..=10^9).
    #[arg(long, default_value_t = 2000)]
    steps: u64,
    /// Stop once training has used this many CPU seconds (all threads of this process, validation not
    /// counted; 0: no limit): equal budgets for comparisons.
    #[arg(long, default_value_t = 0.0)]
    cpu_budget: f64,
    /// Image pairs per step (1..=64).
    #[arg(long, default_value_t = 4)]
    pairs: usize,
    /// Correspondences per pair (1..=1024).
    #[arg(long, default_value_t = 64)]
    points: usize,
    /// Image size WxH, multiples of 4, 16 to 1024.
    #[arg(long, default_value = "128x128")]
    size: String,
    /// Share of the pairs that are layered synthetic scenes (the rest: homography pairs), in [0, 1].
    #[arg(long, default_value_t = 0.25)]
    scene_share: f64,
    /// Source images of homography pairs: random crops of the photos in this folder (default: procedural).
    #[arg(long)]
    images: Option<PathBuf>,
    /// Adam learning rate, in (0, 1].
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Warm-up steps (geometric from 1e-6 to --lr).
    #[arg(long, default_value_t = 50)]
    warmup: u64,
    /// Steps after which the learning rate halves, e.g. 4000,6000.
    #[arg(long, value_delimiter = ',')]
    milestones: Vec<u64>,
    /// L2 weight decay of the weights (not biases or proxies), in [0, 1).
    #[arg(long, default_value_t = 1e-4)]
    weight_decay: f64,
    /// Checkpoint path (Adam's state, the best weights, the CSV log and the plot go beside it).
    #[arg(long, default_value = "descriptor.safetensors")]
    out: PathBuf,
    /// Steps between checkpoints.
    #[arg(long, default_value_t = 100)]
    checkpoint_every: u64,
    /// Keep the weights at every multiple of N steps as `run.step-N.safetensors` beside the checkpoint (0:
    /// none), e.g. to average the last few with `corrflow export`.
    #[arg(long, default_value_t = 0)]
    keep_every: u64,
    /// Steps between validations (0: only at the end).
    #[arg(long, default_value_t = 250)]
    validate_every: u64,
    /// Held-out synthetic validation pairs, 0..=200.
    #[arg(long, default_value_t = 8)]
    val_pairs: usize,
    /// Size of the validation pairs, WxH, multiples of 4, 32 to 1024.
    #[arg(long, default_value = "256x256")]
    val_size: String,
    /// Steps between log rows (and progress lines when not on a terminal).
    #[arg(long, default_value_t = 10)]
    log_every: u64,
    /// Seed of the data stream, the initialisation and the samplers (below 2^23).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Train N networks (seeds --seed .. --seed + N - 1, each with --steps and --cpu-budget) and join them
    /// into a naive ensemble (1..=8).
    #[arg(long, default_value_t = 1)]
    ensemble: usize,
    /// Divide and conquer: K learners (2..=16), slices of D / K channels trained on the points of their
    /// k-means cluster, then the whole descriptor fine-tuned (contrastive and triplet losses).
    #[arg(long)]
    divide: Option<usize>,
    /// With --divide: steps between re-clusterings (1..=1000000). Default 10.
    #[arg(long)]
    recluster: Option<u64>,
    /// With --divide: the share of the steps (or of --cpu-budget), at the end, that fine-tune the whole
    /// descriptor, in [0, 0.95]. Default 0.3.
    #[arg(long)]
    conquer_share: Option<f64>,
}

/// `--recluster` when not given. The embedding drifts fast at lr 1e-3: 100 steps after a clustering, a
/// learner's cluster held 0-83 % of the 16 points per pair it was given (the rest the nearest others); 10
/// steps after, 84-100 %. A clustering (k-means of ~400 points in 128-D) costs milliseconds.
const DEFAULT_RECLUSTER: u64 = 10;
/// `--conquer-share` when not given.
const DEFAULT_CONQUER_SHARE: f64 = 0.3;

fn invalid(message: String) -> Error {
    Error::InvalidParam { op: "train-desc", message }
}

/// Every argument checked, before any work: the loss, the data and the training settings.
struct Plan {
    loss: TrainLossConfig,
    data: DescDataConfig,
    config: TrainConfig,
    arch: DescriptorArch,
    val: (usize, usize),
    divide: Option<DivideConfig>,
}

fn plan(args: &TrainDescArgs) -> Result<Plan> {
    let loss_kind: LossKind = args
        .loss
        .parse()
        .map_err(|_| invalid(format!("--loss {:?}: use contrastive, triplet or proxy-nca", args.loss)))?;
    let sampler = match &args.sampler {
        Some(s) => Some(s.parse::<SamplerKind>().map_err(|_| {
            invalid(format!("--sampler {s:?}: use random, hardest, semihard, distance-weighted or hierarchical"))
        })?),
        None => TrainLossConfig::default_sampler(loss_kind),
    };
    // The contrastive loss's only sampler is random (every negative): accept it spelled out or implied.
    let sampler =
        if loss_kind == LossKind::Contrastive && sampler == Some(SamplerKind::Random) { None } else { sampler };
    check_range("train-desc", "--margin", args.margin, 0.0, 4.0, true)?;
    check_range("train-desc", "--temperature", args.temperature, 0.0, 10.0, true)?;
    check_range("train-desc", "--width", args.width, 0.0, 4.0, true)?;
    check_range("train-desc", "--lr", args.lr, 0.0, 1.0, true)?;
    check_range("train-desc", "--weight-decay", args.weight_decay, 0.0, 0.999, false)?;
    check_range("train-desc", "--scene-share", args.scene_share, 0.0, 1.0, false)?;
    check_range("train-desc", "--cpu-budget", args.cpu_budget, 0.0, 1e9, false)?;
    let count = |flag: &str, v: u64, lo: u64, hi: u64| -> Result<()> {
        if (lo..=hi).contains(&v) {
            Ok(())
        } else {
            Err(invalid(format!("{flag} {v}: must be in {lo}..={hi}")))
        }
    };
    count("--steps", args.steps, 1, 1_000_000_000)?;
    count("--pairs", args.pairs as u64, 1, 64)?;
    count("--points", args.points as u64, 1, 1024)?;
    count("--dim", args.dim as u64, 1, 1024)?;
    count("--neighbours", args.neighbours as u64, 1, 32)?;
    count("--proxy-scenes", args.proxy_scenes as u64, 1, 4096)?;
    count("--val-pairs", args.val_pairs as u64, 0, 200)?;
    count("--ensemble", args.ensemble as u64, 1, 8)?;
    count("--seed", args.seed, 0, (1 << 23) - args.ensemble as u64)?;
    count("--checkpoint-every", args.checkpoint_every, 1, u64::MAX)?;
    count("--log-every", args.log_every, 1, u64::MAX)?;
    let (w, h) = parse_size("train-desc", "--size", &args.size, 4, 1024)?;
    if w < 16 || h < 16 {
        return Err(invalid(format!("--size {}: sides of at least 16", args.size)));
    }
    let val = parse_size("train-desc", "--val-size", &args.val_size, 4, 1024)?;
    if val.0 < 32 || val.1 < 32 {
        return Err(invalid(format!("--val-size {}: sides of at least 32", args.val_size)));
    }
    if args.resume && (args.init.is_some() || args.overwrite) {
        return Err(invalid(
            "--resume continues the checkpoint at --out; it cannot be combined with --init or --overwrite".into(),
        ));
    }
    let divide = divide_config(args, loss_kind)?;
    let mut data = DescDataConfig::new(args.seed);
    data.pairs = args.pairs;
    // A divide run draws candidates, of which each step keeps --points per pair.
    data.points = if divide.is_some() { CANDIDATE_FACTOR * args.points } else { args.points };
    data.width = w;
    data.height = h;
    data.scene_share = args.scene_share;
    if loss_kind == LossKind::ProxyNca {
        data.pool = Some(ClassPool { sources: args.proxy_scenes, points: args.points });
    }
    let loss = TrainLossConfig {
        loss: loss_kind,
        sampler,
        margin: args.margin as f32,
        proxy_classes: data.classes(),
        temperature: args.temperature as f32,
        neighbours: args.neighbours,
        proxy_seed: args.seed,
    };
    loss.validate().map_err(|e| invalid(e.to_string().trim_start_matches("descriptor loss: ").to_string()))?;
    data.validate()?;
    let config = TrainConfig {
        adam: corrflow::ops::optim::AdamConfig {
            lr: args.lr as f32,
            weight_decay: args.weight_decay as f32,
            ..Default::default()
        },
        warmup_steps: args.warmup,
        warmup_start_lr: 1e-6f32.min(args.lr as f32),
        milestones: args.milestones.clone(),
        ..Default::default()
    };
    Ok(Plan { loss, data, config, arch: DescriptorArch::new(args.width, args.dim), val, divide })
}

/// `--divide`, `--recluster`, `--conquer-share`: ranges and the combinations divide and conquer refuses.
fn divide_config(args: &TrainDescArgs, loss: LossKind) -> Result<Option<DivideConfig>> {
    let Some(k) = args.divide else {
        if args.recluster.is_some() || args.conquer_share.is_some() {
            return Err(invalid(
                "--recluster and --conquer-share set up divide and conquer: they need --divide K".into(),
            ));
        }
        return Ok(None);
    };
    check_int("train-desc", "--divide", k as u64, 2, 16)?;
    let recluster = args.recluster.unwrap_or(DEFAULT_RECLUSTER);
    check_int("train-desc", "--recluster", recluster, 1, 1_000_000)?;
    let conquer_share = args.conquer_share.unwrap_or(DEFAULT_CONQUER_SHARE);
    check_range("train-desc", "--conquer-share", conquer_share, 0.0, 0.95, false)?;
    if loss == LossKind::ProxyNca {
        return Err(invalid(
            "--divide with proxy-nca: its proxies span the whole descriptor and its classes are a fixed pool, so \
             learners on slices and clusters of points do not apply; use the contrastive or triplet loss"
                .into(),
        ));
    }
    if args.ensemble > 1 {
        return Err(invalid(format!(
            "--divide with --ensemble {}: divide and conquer is the ensemble of K learners inside one network; \
             train either, not both",
            args.ensemble
        )));
    }
    if !args.dim.is_multiple_of(k) {
        return Err(invalid(format!(
            "--divide {k} with --dim {}: the descriptor must split into {k} equal learners (D a multiple of K)",
            args.dim
        )));
    }
    Ok(Some(DivideConfig { learners: k, recluster, conquer_share }))
}

/// The files of one run at `out`: (checkpoint, best, csv, png).
fn files(out: &Path) -> [PathBuf; 4] {
    [out.to_path_buf(), beside(out, ".best.safetensors"), beside(out, ".csv"), beside(out, ".png")]
}

/// Refuses to replace a checkpoint without --resume / --overwrite, or to resume one that is not there.
fn check_checkpoint(args: &TrainDescArgs, out: &Path) -> Result<()> {
    let existing = out.exists();
    if existing && !args.resume && !args.overwrite {
        let step = Weights::load(out).ok().and_then(|w| w.metadata().get("step").cloned());
        return Err(invalid(format!(
            "{} already exists{}: pass --resume to continue it, or --overwrite to replace it with a new run",
            out.display(),
            step.map(|s| format!(" (a checkpoint at step {s})")).unwrap_or_default()
        )));
    }
    if args.resume && !existing && args.ensemble == 1 {
        return Err(invalid(format!(
            "--resume: there is no checkpoint at {} to continue (leave out --resume to start one)",
            out.display()
        )));
    }
    Ok(())
}

pub fn run(args: TrainDescArgs) -> Result<()> {
    let plan = plan(&args)?;
    let members: Vec<(u64, PathBuf)> = if args.ensemble > 1 {
        (0..args.ensemble).map(|i| (args.seed + i as u64, beside(&args.out, &format!(".m{i}.safetensors")))).collect()
    } else {
        vec![(args.seed, args.out.clone())]
    };
    let ensemble_path = beside(&args.out, ".ensemble.safetensors");
    let mut outputs: Vec<PathBuf> = members.iter().flat_map(|(_, o)| files(o)).collect();
    if args.ensemble > 1 {
        outputs.push(ensemble_path.clone());
    }
    for (_, out) in &members {
        check_checkpoint(&args, out)?;
    }
    corrflow::io::check_distinct(&args.init.iter().chain(&args.images).collect::<Vec<_>>(), &outputs)?;
    for p in &outputs {
        corrflow::io::check_output(p)?;
    }
    let init = args.init.as_ref().map(Weights::load).transpose()?;
    let photos = match &args.images {
        Some(dir) => {
            let photos = load_texture_folder(dir)?;
            if photos.is_empty() {
                return Err(invalid(format!("--images {}: no readable image in the folder", dir.display())));
            }
            Some(photos)
        }
        None => None,
    };
    let (ctx, first_run) = super::open_context(false)?;
    let source = SourceImages::Procedural(SyntheticConfig::default());
    let validator =
        DescValidator::new(args.val_pairs, plan.val.0, plan.val.1, &source, &DescDataConfig::training_warp())?;
    say!(
        "validation: {} held-out synthetic homography pairs at {}x{} (choose the best checkpoint by MMA@3)",
        validator.len(),
        plan.val.0,
        plan.val.1
    );
    for (i, (seed, out)) in members.iter().enumerate() {
        if members.len() > 1 {
            say!("ensemble member {} of {} (seed {seed}): {}", i + 1, members.len(), out.display());
        }
        let mut data = plan.data.clone();
        data.seed = *seed;
        if let Some(p) = &photos {
            data.source = SourceImages::Photos(p.clone());
        }
        let mut loss = plan.loss.clone();
        loss.proxy_seed = *seed;
        train_one(&ctx, &args, &plan, loss, data, init.as_ref(), *seed, out, &validator)?;
    }
    if members.len() > 1 {
        let best: Vec<Weights> = members
            .iter()
            .map(|(_, out)| {
                let best = beside(out, ".best.safetensors");
                Weights::load(if best.exists() { best } else { out.clone() })
                    .map(|w| corrflow::models::descriptor::train::strip_loss(&w))
            })
            .collect::<Result<_>>()?;
        let ensemble = DescriptorEnsemble::to_weights(&best).with_metadata("seed", args.seed);
        ensemble.save(&ensemble_path)?;
        let joined = DescriptorEnsemble::from_weights(&ctx, &ensemble)?;
        let v = validator.run(&ctx, &joined)?;
        say!(
            "ensemble of {}: {}  validation R@1 {:.3}  R@4 {:.3}  MMA@3 {:.3}",
            members.len(),
            ensemble_path.display(),
            v.recall1,
            v.recall4,
            v.mma3
        );
    }
    first_run.done();
    Ok(())
}

/// Trains one network to `out` (see the module documentation).
#[allow(clippy::too_many_arguments)]
fn train_one(
    ctx: &Context,
    args: &TrainDescArgs,
    plan: &Plan,
    loss: TrainLossConfig,
    mut data: DescDataConfig,
    init: Option<&Weights>,
    seed: u64,
    out: &Path,
    validator: &DescValidator,
) -> Result<()> {
    let [_, best_path, csv_path, plot_path] = files(out);
    let resume = args.resume && out.exists();
    let mut trainer = if resume {
        let (t, optimizer) = ModelTrainer::<DescriptorModel>::resume(ctx, out, plan.config.clone())?;
        if !optimizer {
            say!("note: Adam state missing or from another step: its moments restart at zero (not an exact resume)");
        }
        say!("resumed {} at step {}", out.display(), t.steps());
        t
    } else {
        let weights = match init {
            Some(w) => w.clone(),
            None => plan.arch.init_weights(seed),
        };
        ModelTrainer::new(ctx, DescriptorModel::new(ctx, &weights, loss)?, plan.config.clone())?
    };
    // The data stream's settings: the checkpoint's on --resume (so the stream continues), else the arguments.
    let saved = trainer.metadata().clone();
    let get = |k: &str| saved.get(k).cloned();
    // Points per pair a step trains on (a divide run's stream draws more: its candidates).
    let mut points = args.points;
    if resume {
        let num = |k: &str| get(k).and_then(|v| v.parse::<f64>().ok());
        if let Some(v) = num("seed") {
            data.seed = v as u64;
        }
        if let Some(v) = num("pairs") {
            data.pairs = v as usize;
        }
        if let Some(v) = num("points") {
            points = v as usize;
        }
        data.points = num("candidates").map_or(points, |c| c as usize);
        if let Some(v) = get("size") {
            (data.width, data.height) = parse_size("train-desc", "the checkpoint's size", &v, 4, 1024)?;
        }
        if let Some(v) = num("scene_share") {
            data.scene_share = v;
        }
        data.pool = match (num("pool_scenes"), num("pool_points")) {
            (Some(s), Some(p)) => Some(ClassPool { sources: s as usize, points: p as usize }),
            _ => None,
        };
        match get("images").as_deref() {
            Some("procedural") | None => data.source = SourceImages::Procedural(SyntheticConfig::default()),
            Some(dir) => data.source = SourceImages::Photos(load_texture_folder(Path::new(dir))?),
        }
        data.validate()?;
    }
    let images = match (&args.images, get("images")) {
        (_, Some(saved)) if resume => saved,
        (Some(dir), _) => dir.display().to_string(),
        _ => "procedural".into(),
    };
    let dim = trainer.network().arch().dim;
    let mut divider = if resume {
        let d = Divider::from_metadata(&saved, dim, data.seed)?;
        let trained = d.as_ref().map(|d| d.config.learners);
        if args.divide.is_some() && args.divide != trained {
            return Err(invalid(format!(
                "--divide {}: the checkpoint at {} was trained {}; leave --divide out to continue it as it was",
                args.divide.unwrap_or(0),
                out.display(),
                trained.map_or("without divide and conquer".into(), |k| format!("with --divide {k}"))
            )));
        }
        d.map(|mut d| {
            d.set_steps(args.steps, trainer.steps());
            d
        })
    } else {
        plan.divide.clone().map(|c| Divider::new(c, dim, data.seed, args.steps)).transpose()?
    };
    if let Some(d) = &divider {
        // One recorded step per learner's slice and one for the whole descriptor.
        trainer.set_plan_capacity(d.config.learners + 1);
    }
    let stream: Vec<(&str, String)> = vec![
        ("seed", data.seed.to_string()),
        ("pairs", data.pairs.to_string()),
        ("points", points.to_string()),
        ("candidates", if divider.is_some() { data.points.to_string() } else { "none".into() }),
        ("size", format!("{}x{}", data.width, data.height)),
        ("scene_share", data.scene_share.to_string()),
        ("images", images),
        ("pool_scenes", data.pool.map_or("none".into(), |p| p.sources.to_string())),
        ("pool_points", data.pool.map_or("none".into(), |p| p.points.to_string())),
    ];
    for (k, v) in &stream {
        trainer.set_metadata(k, v);
    }
    let budget_used = get("train_cpu_s").and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    if trainer.steps() >= args.steps || (args.cpu_budget > 0.0 && budget_used >= args.cpu_budget) {
        say!(
            "{} is already at step {} ({:.0} training CPU seconds; --steps {}, --cpu-budget {}): nothing to do",
            out.display(),
            trainer.steps(),
            budget_used,
            args.steps,
            args.cpu_budget
        );
        return Ok(());
    }
    let model = trainer.network();
    say!(
        "training the descriptor ({} parameters, D = {}) with {} on {} pairs of {}x{} x {} points per step{}, seed {}, to step {}{}",
        model.arch().num_params(),
        model.arch().dim,
        model.loss_config().label(),
        data.pairs,
        data.width,
        data.height,
        points,
        data.pool.map(|p| format!(" (class pool: {} scenes x {} points)", p.sources, p.points)).unwrap_or_default(),
        data.seed,
        args.steps,
        if args.cpu_budget > 0.0 { format!(" or {:.0} CPU seconds", args.cpu_budget) } else { String::new() }
    );
    if let Some(d) = &divider {
        let c = &d.config;
        say!(
            "divide and conquer: {} learners of {} channels, each on {} points per pair of its k-means cluster (of {} \
             candidates), re-clustered every {} steps; the whole descriptor from step {}{}",
            c.learners,
            dim / c.learners,
            c.divide_points(points),
            data.points,
            c.recluster,
            d.conquer_from(),
            if args.cpu_budget > 0.0 {
                format!(" or {:.0} training CPU seconds", (1.0 - c.conquer_share) * args.cpu_budget)
            } else {
                String::new()
            }
        );
    }
    let pairs = data.pairs;
    let mut batches = descriptor_batches(data, trainer.steps(), 2)?;

    let mut log = TrainLog::open_with(&csv_path, if resume { Some(trainer.steps()) } else { None }, log_schema())?;
    let mut best = log.best();
    let mut clock = RowClock::new(trainer.steps(), log.totals());
    let mut val_cpu = 0.0;
    let train_cpu = |clock: &RowClock, val_cpu: f64| budget_used + clock.cpu() - val_cpu;
    let first_step = trainer.steps();
    let progress = Progress::new(args.steps, first_step);
    let mut last_val = String::new();
    let mut phase_text = String::new();
    loop {
        let mut batch = batches.next_batch()?;
        if let Some(d) = divider.as_mut() {
            let step = trainer.steps() + 1;
            let dividing = matches!(d.phase(step), Phase::Divide { .. });
            if dividing
                && args.cpu_budget > 0.0
                && train_cpu(&clock, val_cpu) >= (1.0 - d.config.conquer_share) * args.cpu_budget
            {
                d.conquer_at(step);
            }
            let phase;
            (batch, phase) = d.batch(ctx, trainer.network().descriptor(), &batch, step, points)?;
            phase_text = match phase {
                Phase::Divide { learner, reclustered } => {
                    if reclustered {
                        progress.note(format!("step {step}: re-clustered, points per cluster {:?}", d.cluster_sizes()));
                    }
                    format!(
                        "  divide (learner {} of {}, {:.0} % of its points in its cluster)",
                        learner + 1,
                        d.config.learners,
                        100.0 * d.in_cluster_share()
                    )
                }
                Phase::Conquer => {
                    if step == d.conquer_from() || step == first_step + 1 {
                        progress.note(format!("step {step}: conquer phase, fine-tuning the whole descriptor"));
                    }
                    "  conquer".into()
                }
            };
        }
        let report = trainer.step(ctx, &batch)?;
        clock.push(report.loss);
        let step = report.step;
        let out_of_budget = args.cpu_budget > 0.0 && train_cpu(&clock, val_cpu) >= args.cpu_budget;
        let last = step >= args.steps || out_of_budget;
        let validate = last || (args.validate_every > 0 && step % args.validate_every == 0);
        if step % args.log_every == 0 || validate {
            let (mean_loss, rate) = clock.row(step, pairs);
            let val = if validate && !validator.is_empty() {
                let c = clock.cpu();
                let v = validator.run(ctx, trainer.network().descriptor())?;
                val_cpu += clock.cpu() - c;
                Some(v)
            } else {
                None
            };
            // The next row's rate counts training only, not this validation.
            clock.restart();
            let (wall_s, cpu_s) = clock.totals();
            let row = TrainRow {
                step,
                wall_s,
                cpu_s,
                lr: report.lr as f64,
                loss: mean_loss as f64,
                samples_per_s: rate,
                gen_samples_per_s: batches.generator_samples_per_s(),
                data_wait_s: batches.waited().as_secs_f64(),
                validation: val.as_ref().map(|v| v.columns()).unwrap_or_default(),
            };
            log.append(&row)?;
            progress.update(step, format!("loss {mean_loss:.4}{last_val}  {rate:.1} pairs/s{phase_text}"));
            if step % (10 * args.log_every) == 0 || validate {
                progress.log(format_args!(
                    "step {step:>7}  loss {mean_loss:>8.4}  lr {:.2e}  {rate:.2} pairs/s (generator {:.1}/s)  training CPU {:.0} s{phase_text}",
                    report.lr,
                    batches.generator_samples_per_s(),
                    train_cpu(&clock, val_cpu)
                ));
            }
            if let Some(v) = val {
                progress.note(format!(
                    "validation at step {step}: R@1 {:.3}  R@4 {:.3}  MMA@3 {:.3} ({:.0} matches per pair)  [{:.1} s]",
                    v.recall1,
                    v.recall4,
                    v.mma3,
                    v.matches,
                    v.time.as_secs_f64()
                ));
                last_val = format!("  val MMA@3 {:.3}", v.mma3);
                if v.mma3.is_finite() && best.is_none_or(|b| v.mma3 > b) {
                    best = Some(v.mma3);
                    trainer.set_metadata("train_cpu_s", format!("{:.1}", train_cpu(&clock, val_cpu)));
                    record_divider(&mut trainer, divider.as_ref());
                    let figures = [
                        ("val_recall1", format!("{:.4}", v.recall1)),
                        ("val_recall4", format!("{:.4}", v.recall4)),
                        ("val_mma3", format!("{:.4}", v.mma3)),
                    ];
                    trainer.save_weights_with(ctx, &best_path, &figures)?;
                    progress.note(format!("best so far: {} (step {step})", best_path.display()));
                }
                log.plot(&plot_path)?;
            }
        }
        if args.keep_every > 0 && step % args.keep_every == 0 {
            let snapshot = beside(out, &format!(".step-{step}.safetensors"));
            record_divider(&mut trainer, divider.as_ref());
            trainer.save_weights(ctx, &snapshot)?;
            progress.log(format_args!("snapshot: {}", snapshot.display()));
        }
        if step % args.checkpoint_every == 0 || last {
            trainer.set_metadata("train_cpu_s", format!("{:.1}", train_cpu(&clock, val_cpu)));
            record_divider(&mut trainer, divider.as_ref());
            trainer.save_checkpoint(ctx, out)?;
            progress.log(format_args!("checkpoint: {} (step {step})", out.display()));
        }
        if last {
            break;
        }
    }
    progress.finish();
    say!(
        "done: step {} in {:.0} s ({:.0} training CPU seconds); checkpoint {}, best {}, log {}, plot {}",
        trainer.steps(),
        clock.elapsed(),
        train_cpu(&clock, val_cpu),
        out.display(),
        best_path.display(),
        csv_path.display(),
        plot_path.display()
    );
    Ok(())
}

/// Writes the divide-and-conquer state into the checkpoint metadata (for an exact `--resume`).
fn record_divider(trainer: &mut ModelTrainer<DescriptorModel>, divider: Option<&Divider>) {
    for (k, v) in divider.map(Divider::metadata).unwrap_or_default() {
        trainer.set_metadata(&k, v);
    }
}
