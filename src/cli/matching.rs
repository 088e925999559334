//! `corrflow match A B` (dense matches between two images, as CSV and a picture) and `corrflow eval-match DIR`
//! (matching accuracy and Recall@K on image pairs with known homographies).

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use corrflow::data::homography::Homography;
use corrflow::io::homography::{find_homography_pairs, read_cmp_model, read_oxford_homography};
use corrflow::io::OutputSet;
use corrflow::matching::dense::{match_dense, DenseDescriber, DenseMatchConfig};
use corrflow::matching::evaluate::{evaluate_pair, to_json, to_table};
use corrflow::matching::{match_accuracy, RawPatchConfig, MMA_THRESHOLDS_PX};
use corrflow::models::descriptor::load_describer;
use corrflow::models::{load_frame, Descriptor};
use corrflow::{Context, Error, Result};

/// Which descriptor describes the images.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DescriptorKind {
    /// The shipped, trained descriptor network.
    Trained,
    /// The same network with its seeded initial weights.
    Untrained,
    /// Mean/variance-normalised raw 8x8 patches on the same grid (a non-learned baseline).
    Raw,
}

/// The seed of the `untrained` descriptor's initial weights.
pub const UNTRAINED_SEED: u64 = 1;

impl DescriptorKind {
    /// The describer: `trained` is `weights` when given (a `train-desc` checkpoint, best file, export or
    /// ensemble), else the embedded model.
    fn describer(self, ctx: &Context, weights: Option<&Path>) -> Result<Box<dyn DenseDescriber>> {
        match self {
            DescriptorKind::Raw => Ok(Box::new(RawPatchConfig::default())),
            DescriptorKind::Untrained => Ok(Box::new(Descriptor::untrained(ctx, UNTRAINED_SEED)?)),
            DescriptorKind::Trained => match weights {
                Some(path) => load_describer(ctx, path, "trained"),
                None => Ok(Box::new(Descriptor::pretrained(ctx)?)),
            },
        }
    }
}

/// Options shared by both commands.
#[derive(Args, Clone)]
pub struct MatchOptions {
    /// Scale each image so its longer side is at most this many pixels first (0: full size).
    #[arg(long, default_value_t = 1024)]
    max_side: u32,
    /// Lowe's ratio threshold in (0, 1] (1 keeps every mutual nearest neighbour).
    #[arg(long, default_value_t = 0.8)]
    ratio: f32,
    /// Skip the sub-pixel refinement.
    #[arg(long)]
    no_refine: bool,
    /// Weights of the `trained` descriptor (a `corrflow train-desc` checkpoint, its best file, an export or
    /// an ensemble file); default: the embedded model.
    #[arg(long)]
    weights: Option<PathBuf>,
}

impl MatchOptions {
    fn config(&self) -> Result<DenseMatchConfig> {
        super::check_range("match", "--ratio", self.ratio as f64, 0.0, 1.0, true)?;
        Ok(DenseMatchConfig {
            max_side: (self.max_side > 0).then_some(self.max_side),
            ratio: self.ratio,
            refine: !self.no_refine,
            ..DenseMatchConfig::default()
        })
    }
}

#[derive(Args)]
pub struct MatchArgs {
    /// First image.
    a: PathBuf,
    /// Second image.
    b: PathBuf,
    /// Descriptor: trained (default), untrained or raw.
    #[arg(long, value_enum, default_value = "trained")]
    descriptor: DescriptorKind,
    /// Where to write the matches (CSV: x_a,y_a,x_b,y_b,score in 0-based pixels of the original images).
    #[arg(long, default_value = "matches.csv")]
    out: PathBuf,
    /// Where to write the side-by-side picture with match lines.
    #[arg(long, default_value = "matches.png")]
    png: PathBuf,
    /// A homography mapping A to B to score the matches against: a CMP `*_model.txt` (B to A, 1-based, as
    /// that dataset stores it) or an Oxford `H1toNp` file; correct matches are drawn green, others red.
    #[arg(long)]
    gt: Option<PathBuf>,
    #[command(flatten)]
    options: MatchOptions,
}

fn read_homography(path: &Path) -> Result<Homography> {
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    if name.ends_with("_model.txt") {
        read_cmp_model(path)
    } else {
        read_oxford_homography(path)
    }
}

pub fn run_match(args: MatchArgs) -> Result<()> {
    let cfg = args.options.config()?;
    let a = load_frame(&args.a)?.to_rgb8();
    let b = load_frame(&args.b)?.to_rgb8();
    let gt = args.gt.as_deref().map(read_homography).transpose()?;
    let inputs: Vec<&Path> =
        [Some(args.a.as_path()), Some(args.b.as_path()), args.gt.as_deref(), args.options.weights.as_deref()]
            .into_iter()
            .flatten()
            .collect();
    let outputs = OutputSet::check(&inputs, &[&args.out, &args.png])?;
    let (ctx, first_run) = super::open_context(false)?;
    let describer = args.descriptor.describer(&ctx, args.options.weights.as_deref())?;
    let report = match_dense(&ctx, &a, &b, describer.as_ref(), &cfg)?;
    say!(
        "descriptor {}: {} x {} and {} x {} described at {}x{} / {}x{}; {} and {} descriptors take part",
        describer.name(),
        a.width(),
        a.height(),
        b.width(),
        b.height(),
        report.sizes.0 .0,
        report.sizes.0 .1,
        report.sizes.1 .0,
        report.sizes.1 .1,
        report.points.0,
        report.points.1
    );
    for (stage, d) in &report.stages {
        say!("time: {stage} {:.1} ms", d.as_secs_f64() * 1e3);
    }
    let ((wa, ha), (wb, hb)) = report.sizes;
    if let Some(net) = describer.gpu_bytes(wa.max(wb), ha.max(hb)) {
        say!(
            "GPU memory for describing: {:.1} MB (the network's activations at {}x{} and its weights; one image at a time)",
            net as f64 / 1e6,
            wa.max(wb),
            ha.max(hb)
        );
    }
    say!(
        "GPU memory for matching: {:.1} MB (no all-pairs matrix: bounded by the descriptors)",
        report.gpu_bytes as f64 / 1e6
    );
    say!("matches: {} (mutual nearest neighbours, ratio {})", report.matches.len(), cfg.ratio);
    if let Some(h) = &gt {
        let acc = match_accuracy(&report.matches, h, &MMA_THRESHOLDS_PX)?;
        let mma: Vec<String> =
            MMA_THRESHOLDS_PX.iter().enumerate().map(|(i, t)| format!("@{t}: {:.3}", acc.mma(i))).collect();
        say!("correct within 3 px: {} of {}; MMA {}", acc.correct[2], acc.matches, mma.join("  "));
    }
    let csv = corrflow::io::matches::encode_matches_csv(&report.matches)?;
    let picture = corrflow::matching::draw_matches(&a, &b, &report.matches, gt.as_ref().map(|h| (h, 3.0)))?;
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(picture)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| Error::Image { path: args.png.clone(), message: format!("cannot encode PNG: {e}") })?;
    outputs.write(&[(&args.out, csv.as_bytes()), (&args.png, &png)])?;
    say!("wrote {} and {}", args.out.display(), args.png.display());
    first_run.done();
    Ok(())
}

#[derive(Args)]
pub struct EvalMatchArgs {
    /// Folder laid out like ../shared/data/cmp_homogr (`<name>A.*, <name>B.*, <name>_model.txt`) or
    /// oxford_affine/graf (`img1`, `imgN`, `H1toNp`); searched recursively. Default: ../shared/data.
    dir: Option<PathBuf>,
    /// Descriptors to compare, side by side.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "trained,untrained,raw")]
    descriptors: Vec<DescriptorKind>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    options: MatchOptions,
}

pub fn run_eval(args: EvalMatchArgs) -> Result<()> {
    let cfg = args.options.config()?;
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from("../shared/data"));
    let found = find_homography_pairs(&dir)?;
    for s in &found.skipped {
        eprintln!("skipping {}: {}", s.ground_truth.display(), s.reason);
    }
    if found.pairs.is_empty() {
        return Err(Error::Format {
            path: dir,
            message: "no image pairs with a homography found (see `corrflow eval-match --help` for the layouts)".into(),
        });
    }
    let (ctx, first_run) = super::open_context(args.json)?;
    let describers: Vec<Box<dyn DenseDescriber>> =
        args.descriptors.iter().map(|d| d.describer(&ctx, args.options.weights.as_deref())).collect::<Result<_>>()?;
    let mut rows = Vec::new();
    for (i, pair) in found.pairs.iter().enumerate() {
        let (a, b) = match (load_frame(&pair.image_a), load_frame(&pair.image_b)) {
            (Ok(a), Ok(b)) => (a.to_rgb8(), b.to_rgb8()),
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("skipping {} {}: {e}", pair.dataset, pair.name);
                continue;
            }
        };
        for d in &describers {
            eprintln!("[{}/{}] {} {} ({})", i + 1, found.pairs.len(), pair.dataset, pair.name, d.name());
            rows.push(evaluate_pair(&ctx, &pair.dataset, &pair.name, &a, &b, &pair.a_to_b, d.as_ref(), &cfg)?);
        }
    }
    say!("{}", if args.json { to_json(&rows) } else { to_table(&rows) });
    first_run.done();
    Ok(())
}
