//! Evaluation on folders of real frame pairs with ground truth, laid out like `../shared/data`:
//!
//! | dataset | layout (under any folder of the tree) |
//! |---|---|
//! | `middlebury` | `<Seq>/frame10.png, frame11.png, flow10.flo` |
//! | `sintel_clean`, `sintel_final` | `<seq>/clean|final/frame_NNNN.png` with `<seq>/flow/frame_NNNN.flo` (each frame with ground truth and a next frame), or the official `training/clean|final/<seq>/` with `training/flow/<seq>/` |
//! | `kitti2015` | `<id>/frame1.png, frame2.png, flow_gt.png`, or the official `image_2/NNNNNN_10.png, _11.png` with `flow_occ/NNNNNN_10.png` (16-bit PNG flow with valid mask) |
//! | `flyingchairs` | `NNNNN-img0.ppm, -img1.ppm, -gt.flo` |
//! | `generated` | `NNNNN_img1.png, _img2.png, _flow.flo` (as `corrflow gen` writes) |
//!
//! Each pair is scored by the average endpoint error over the pixels with known ground truth (Middlebury's
//! entries above 1e9 and KITTI's invalid pixels excluded), beside the zero-flow baseline on the same pixels, and
//! for KITTI Fl-all. A pair that cannot be read is reported and skipped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::flow::Flow;
use crate::metrics::evaluate;
use crate::models::{load_frame, FlowNet};
use crate::{Context, Error, Result};

/// Ground-truth file kinds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroundTruth {
    /// Middlebury `.flo` (values > 1e9 unknown).
    Flo(PathBuf),
    /// KITTI 16-bit PNG with its valid bit.
    KittiPng(PathBuf),
}

impl GroundTruth {
    pub fn path(&self) -> &Path {
        match self {
            GroundTruth::Flo(p) | GroundTruth::KittiPng(p) => p,
        }
    }
    /// Reads the flow and its validity mask (None: every pixel whose flow is finite and < 1e9).
    pub fn read(&self) -> Result<(Flow, Option<Vec<bool>>)> {
        match self {
            GroundTruth::Flo(p) => Ok((crate::io::read_flo(p)?, None)),
            GroundTruth::KittiPng(p) => {
                let (f, valid) = crate::io::read_kitti_flow(p)?;
                Ok((f, Some(valid)))
            }
        }
    }
}

/// One frame pair with ground truth.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvalPair {
    /// `middlebury`, `sintel_clean`, `sintel_final`, `kitti2015`, `flyingchairs` or `generated`.
    pub dataset: String,
    /// A short name unique within the dataset (the sequence, or sequence/frame).
    pub name: String,
    pub frame_a: PathBuf,
    pub frame_b: PathBuf,
    pub gt: GroundTruth,
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

/// The first file in `names` whose stem is `stem` with an image extension.
fn image_named(dir: &Path, names: &[String], stem: &str) -> Option<PathBuf> {
    names
        .iter()
        .find(|n| {
            n.rsplit_once('.').is_some_and(|(s, ext)| {
                s == stem && matches!(ext.to_ascii_lowercase().as_str(), "png" | "ppm" | "jpg" | "jpeg" | "bmp")
            })
        })
        .map(|n| dir.join(n))
}

/// The name of `dir` (its last component).
fn leaf(dir: &Path) -> String {
    dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| dir.display().to_string())
}

/// Finds every evaluation pair under `root` (up to 6 folders deep), sorted by dataset then name.
pub fn find_pairs(root: &Path) -> Result<Vec<EvalPair>> {
    let meta = std::fs::metadata(root).map_err(|e| Error::io(root, e))?;
    if !meta.is_dir() {
        return Err(Error::format(
            root,
            "not a folder: give a folder laid out like ../shared/data (see `corrflow eval --help`)",
        ));
    }
    let mut pairs = Vec::new();
    walk(root, 0, &mut pairs);
    pairs.sort_by(|a, b| (&a.dataset, &a.name).cmp(&(&b.dataset, &b.name)));
    pairs.dedup();
    Ok(pairs)
}

fn walk(dir: &Path, depth: usize, out: &mut Vec<EvalPair>) {
    let names = file_names(dir);
    scan_dir(dir, &names, out);
    if depth >= 6 {
        return;
    }
    for n in &names {
        let p = dir.join(n);
        // Follow real folders only (no symlinked folders: no cycles).
        if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
            walk(&p, depth + 1, out);
        }
    }
}

fn scan_dir(dir: &Path, names: &[String], out: &mut Vec<EvalPair>) {
    let has = |n: &str| names.iter().any(|x| x == n);
    // Middlebury.
    if has("flow10.flo") {
        if let (Some(a), Some(b)) = (image_named(dir, names, "frame10"), image_named(dir, names, "frame11")) {
            out.push(EvalPair {
                dataset: "middlebury".into(),
                name: leaf(dir),
                frame_a: a,
                frame_b: b,
                gt: GroundTruth::Flo(dir.join("flow10.flo")),
            });
        }
    }
    // KITTI, as in ../shared/data.
    if has("flow_gt.png") {
        if let (Some(a), Some(b)) = (image_named(dir, names, "frame1"), image_named(dir, names, "frame2")) {
            out.push(EvalPair {
                dataset: "kitti2015".into(),
                name: leaf(dir),
                frame_a: a,
                frame_b: b,
                gt: GroundTruth::KittiPng(dir.join("flow_gt.png")),
            });
        }
    }
    // KITTI official: image_2/NNNNNN_10.png, NNNNNN_11.png, flow_occ/NNNNNN_10.png.
    if has("image_2") && has("flow_occ") {
        let images = dir.join("image_2");
        let flows = dir.join("flow_occ");
        let image_names = file_names(&images);
        for f in file_names(&flows) {
            let Some(id) = f.strip_suffix("_10.png") else { continue };
            if let (Some(a), Some(b)) = (
                image_named(&images, &image_names, &format!("{id}_10")),
                image_named(&images, &image_names, &format!("{id}_11")),
            ) {
                out.push(EvalPair {
                    dataset: "kitti2015".into(),
                    name: id.into(),
                    frame_a: a,
                    frame_b: b,
                    gt: GroundTruth::KittiPng(flows.join(&f)),
                });
            }
        }
    }
    // Sintel: <seq>/clean|final/frame_NNNN.png with <seq>/flow/frame_NNNN.flo, or the official layout
    // training/clean|final/<seq>/ with training/flow/<seq>/.
    let pass = leaf(dir);
    if pass == "clean" || pass == "final" {
        let parent = dir.parent().unwrap_or(dir);
        let local_flow = parent.join("flow");
        if local_flow.is_dir() {
            sintel_pairs(dir, &local_flow, &leaf(parent), &pass, out);
        }
    }
    if let Some(pass_dir) = dir.parent() {
        let pass = leaf(pass_dir);
        if pass == "clean" || pass == "final" {
            if let Some(training) = pass_dir.parent() {
                let flow = training.join("flow").join(leaf(dir));
                if flow.is_dir() {
                    sintel_pairs(dir, &flow, &leaf(dir), &pass, out);
                }
            }
        }
    }
    // FlyingChairs (-img0/-img1/-gt.flo) and corrflow gen (_img1/_img2/_flow.flo).
    for n in names {
        let (prefix, dataset, first, second) = if let Some(p) = n.strip_suffix("-gt.flo") {
            (p, "flyingchairs", "-img0", "-img1")
        } else if let Some(p) = n.strip_suffix("_flow.flo") {
            (p, "generated", "_img1", "_img2")
        } else {
            continue;
        };
        if let (Some(a), Some(b)) = (
            image_named(dir, names, &format!("{prefix}{first}")),
            image_named(dir, names, &format!("{prefix}{second}")),
        ) {
            out.push(EvalPair {
                dataset: dataset.into(),
                name: prefix.into(),
                frame_a: a,
                frame_b: b,
                gt: GroundTruth::Flo(dir.join(n)),
            });
        }
    }
}

fn sintel_pairs(frames: &Path, flows: &Path, sequence: &str, pass: &str, out: &mut Vec<EvalPair>) {
    let names = file_names(frames);
    for f in file_names(flows) {
        let Some(stem) = f.strip_suffix(".flo") else { continue };
        let Some(num) = stem.strip_prefix("frame_").and_then(|d| d.parse::<u32>().ok()) else { continue };
        let next = format!("frame_{:04}", num + 1);
        if let (Some(a), Some(b)) = (image_named(frames, &names, stem), image_named(frames, &names, &next)) {
            out.push(EvalPair {
                dataset: format!("sintel_{pass}"),
                name: format!("{sequence}/{stem}"),
                frame_a: a,
                frame_b: b,
                gt: GroundTruth::Flo(flows.join(&f)),
            });
        }
    }
}

/// The score of one pair.
#[derive(Clone, Debug, PartialEq)]
pub struct PairResult {
    pub dataset: String,
    pub name: String,
    pub width: usize,
    pub height: usize,
    /// Average endpoint error of the model, pixels.
    pub epe: f64,
    /// Average endpoint error of zero flow on the same pixels.
    pub zero_epe: f64,
    /// KITTI's outlier fraction (0..=1) for KITTI pairs.
    pub fl_all: Option<f64>,
    pub valid_pixels: usize,
    /// Time of the estimate (network and resampling).
    pub time: Duration,
}

/// A pair that could not be evaluated, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Skipped {
    pub dataset: String,
    pub name: String,
    pub reason: String,
}

/// Per-dataset means (of the per-pair figures).
#[derive(Clone, Debug, PartialEq)]
pub struct DatasetSummary {
    pub dataset: String,
    pub pairs: usize,
    pub epe: f64,
    pub zero_epe: f64,
    pub fl_all: Option<f64>,
}

/// Everything `corrflow eval` reports.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EvalReport {
    pub pairs: Vec<PairResult>,
    pub skipped: Vec<Skipped>,
}

/// Loads the pair's frames and ground truth, checking their sizes agree.
pub fn load_pair(pair: &EvalPair) -> Result<(image::DynamicImage, image::DynamicImage, Flow, Option<Vec<bool>>)> {
    let a = load_frame(&pair.frame_a)?;
    let b = load_frame(&pair.frame_b)?;
    let (gt, valid) = pair.gt.read()?;
    if (a.width(), a.height()) != (b.width(), b.height())
        || (gt.width, gt.height) != (a.width() as usize, a.height() as usize)
    {
        return Err(Error::Mismatch {
            message: format!(
                "frames {}x{} / {}x{} and ground truth {}x{} differ in size",
                a.width(),
                a.height(),
                b.width(),
                b.height(),
                gt.width,
                gt.height
            ),
        });
    }
    Ok((a, b, gt, valid))
}

/// Scores `flow` against the pair's ground truth (shared by evaluation and training validation).
pub fn score(pair: &EvalPair, flow: &Flow, gt: &Flow, valid: Option<&[bool]>, time: Duration) -> Result<PairResult> {
    let m = evaluate(flow, gt, valid)?;
    if m.valid_pixels == 0 {
        return Err(Error::format(pair.gt.path(), "the ground truth has no valid pixel (every flow value unknown)"));
    }
    let zero = evaluate(&Flow::zeros(gt.width, gt.height), gt, valid)?;
    Ok(PairResult {
        dataset: pair.dataset.clone(),
        name: pair.name.clone(),
        width: gt.width,
        height: gt.height,
        epe: m.epe,
        zero_epe: zero.epe,
        fl_all: matches!(pair.gt, GroundTruth::KittiPng(_)).then_some(m.fl_all),
        valid_pixels: m.valid_pixels,
        time,
    })
}

/// Runs `net` on every pair; `progress(i, n, pair)` is called before each.
pub fn evaluate_pairs(
    ctx: &Context,
    net: &FlowNet,
    pairs: &[EvalPair],
    mut progress: impl FnMut(usize, usize, &EvalPair),
) -> Result<EvalReport> {
    let mut report = EvalReport::default();
    for (i, pair) in pairs.iter().enumerate() {
        progress(i, pairs.len(), pair);
        let skip = |reason: String| Skipped { dataset: pair.dataset.clone(), name: pair.name.clone(), reason };
        let (a, b, gt, valid) = match load_pair(pair) {
            Ok(x) => x,
            Err(e) => {
                report.skipped.push(skip(e.to_string()));
                continue;
            }
        };
        let t = Instant::now();
        // A GPU failure is not the pair's fault: stop and report it.
        let flow = net.estimate(ctx, &a, &b)?;
        match score(pair, &flow, &gt, valid.as_deref(), t.elapsed()) {
            Ok(r) => report.pairs.push(r),
            Err(e) => report.skipped.push(skip(e.to_string())),
        }
    }
    Ok(report)
}

impl EvalReport {
    /// Per-dataset means, in dataset order.
    pub fn summaries(&self) -> Vec<DatasetSummary> {
        let mut by: BTreeMap<&str, Vec<&PairResult>> = BTreeMap::new();
        for p in &self.pairs {
            by.entry(&p.dataset).or_default().push(p);
        }
        by.into_iter()
            .map(|(dataset, ps)| {
                let n = ps.len() as f64;
                let fl: Vec<f64> = ps.iter().filter_map(|p| p.fl_all).collect();
                DatasetSummary {
                    dataset: dataset.to_string(),
                    pairs: ps.len(),
                    epe: ps.iter().map(|p| p.epe).sum::<f64>() / n,
                    zero_epe: ps.iter().map(|p| p.zero_epe).sum::<f64>() / n,
                    fl_all: (!fl.is_empty()).then(|| fl.iter().sum::<f64>() / fl.len() as f64),
                }
            })
            .collect()
    }

    /// A plain-text table: every pair, then the per-dataset means, then the skipped pairs.
    pub fn to_table(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!(
            "{:<14} {:<22} {:>9} {:>9} {:>9} {:>8} {:>8}\n",
            "dataset", "pair", "EPE", "zero EPE", "Fl-all", "size", "time"
        ));
        for p in &self.pairs {
            s.push_str(&format!(
                "{:<14} {:<22} {:>9.3} {:>9.3} {:>9} {:>8} {:>7.2}s\n",
                p.dataset,
                p.name,
                p.epe,
                p.zero_epe,
                p.fl_all.map_or("-".to_string(), |f| format!("{:.2} %", 100.0 * f)),
                format!("{}x{}", p.width, p.height),
                p.time.as_secs_f64()
            ));
        }
        s.push_str("\nper dataset (mean over pairs):\n");
        for d in self.summaries() {
            s.push_str(&format!(
                "{:<14} {:>2} pairs  EPE {:>8.3}  zero {:>8.3}{}\n",
                d.dataset,
                d.pairs,
                d.epe,
                d.zero_epe,
                d.fl_all.map_or(String::new(), |f| format!("  Fl-all {:.2} %", 100.0 * f))
            ));
        }
        for k in &self.skipped {
            s.push_str(&format!("skipped {} {}: {}\n", k.dataset, k.name, k.reason));
        }
        s
    }

    /// The report as one JSON object (no dependency: the fields are numbers and plain strings).
    pub fn to_json(&self) -> String {
        let num = |x: f64| if x.is_finite() { format!("{x:.6}") } else { "null".to_string() };
        let pairs: Vec<String> = self
            .pairs
            .iter()
            .map(|p| {
                format!(
                    "{{\"dataset\":{},\"pair\":{},\"width\":{},\"height\":{},\"epe\":{},\"zero_epe\":{},\"fl_all\":{},\"valid_pixels\":{},\"seconds\":{}}}",
                    json_string(&p.dataset),
                    json_string(&p.name),
                    p.width,
                    p.height,
                    num(p.epe),
                    num(p.zero_epe),
                    p.fl_all.map_or("null".into(), num),
                    p.valid_pixels,
                    num(p.time.as_secs_f64())
                )
            })
            .collect();
        let datasets: Vec<String> = self
            .summaries()
            .iter()
            .map(|d| {
                format!(
                    "{{\"dataset\":{},\"pairs\":{},\"epe\":{},\"zero_epe\":{},\"fl_all\":{}}}",
                    json_string(&d.dataset),
                    d.pairs,
                    num(d.epe),
                    num(d.zero_epe),
                    d.fl_all.map_or("null".into(), num)
                )
            })
            .collect();
        let skipped: Vec<String> = self
            .skipped
            .iter()
            .map(|k| {
                format!(
                    "{{\"dataset\":{},\"pair\":{},\"reason\":{}}}",
                    json_string(&k.dataset),
                    json_string(&k.name),
                    json_string(&k.reason)
                )
            })
            .collect();
        format!(
            "{{\"pairs\":[{}],\"datasets\":[{}],\"skipped\":[{}]}}",
            pairs.join(","),
            datasets.join(","),
            skipped.join(",")
        )
    }
}

/// A JSON string literal.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
