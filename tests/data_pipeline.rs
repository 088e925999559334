//! The training data pipeline on the CPU: FlowNet's augmentation keeps frames and flow consistent, the loader's
//! batches are a pure function of (seed, batch index) whether prefetched or not, the evaluation walker finds
//! every dataset layout, and the training log resumes by dropping rows past the checkpoint.

mod common;

use std::path::Path;

use corrflow::data::augment::{augment, AugmentConfig, FramePair};
use corrflow::data::synthetic::{generate, SyntheticConfig};
use corrflow::eval::{find_pairs, GroundTruth};
use corrflow::flow::is_valid_flow;
use corrflow::training::data::{make_sample, DataSource, LoaderOptions};
use corrflow::training::log::{TrainLog, TrainRow};
use corrflow::training::Loader;
use corrflow::Flow;

/// Bilinear sample of channel `c` of a planar frame, `None` outside.
fn sample(p: &FramePair, frame: &[f32], c: usize, x: f64, y: f64) -> Option<f64> {
    let (w, h) = (p.width, p.height);
    if x < 0.0 || y < 0.0 || x > (w - 1) as f64 || y > (h - 1) as f64 {
        return None;
    }
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (fx, fy) = (x - x0 as f64, y - y0 as f64);
    let at = |xx: usize, yy: usize| frame[c * w * h + yy * w + xx] as f64;
    Some((1.0 - fy) * ((1.0 - fx) * at(x0, y0) + fx * at(x1, y0)) + fy * ((1.0 - fx) * at(x0, y1) + fx * at(x1, y1)))
}

/// Mean |A(p) - B(p + flow(p) + offset)| over the pixels whose target is inside B, in 8-bit levels.
fn warp_error(p: &FramePair, offset: (f64, f64)) -> (f64, usize) {
    let (mut sum, mut n) = (0.0, 0usize);
    for y in 0..p.height {
        for x in 0..p.width {
            let (u, v) = p.flow.get(x, y);
            if !is_valid_flow(u, v) {
                continue;
            }
            let (qx, qy) = (x as f64 + u as f64 + offset.0, y as f64 + v as f64 + offset.1);
            let mut err = 0.0;
            let mut inside = true;
            for c in 0..3 {
                match sample(p, &p.frame_b, c, qx, qy) {
                    Some(b) => err += (p.frame_a[c * p.width * p.height + y * p.width + x] as f64 - b).abs(),
                    None => inside = false,
                }
            }
            if inside {
                sum += 255.0 * err / 3.0;
                n += 1;
            }
        }
    }
    (sum / n.max(1) as f64, n)
}

/// A scene without objects (no occlusion): only the background's affine motion and the frame border.
fn background_only(seed: u64) -> FramePair {
    let cfg = SyntheticConfig { width: 96, height: 64, objects: (0, 0), ..SyntheticConfig::default() };
    let p = generate(&cfg, seed).unwrap();
    FramePair::from_rgb8(&p.frame_a, &p.frame_b, p.flow).unwrap()
}

/// Geometric augmentation transforms frames and flow together: warping the augmented B by the augmented flow
/// still reproduces the augmented A (within interpolation error, about a level; bilinear resampling of both
/// frames adds a little over the generator's own check), while a flow off by one pixel does not.
#[test]
fn geometric_augmentation_keeps_frames_and_flow_consistent() {
    let geometric = AugmentConfig {
        geometric_prob: 1.0,
        zoom: (1.0, 1.5),
        rotate_deg: 10.0,
        translate: 0.1,
        relative_zoom: 0.03,
        relative_rotate_deg: 1.0,
        relative_translate_px: 3.0,
        ..AugmentConfig::none()
    };
    for seed in 0..6 {
        let pair = background_only(seed);
        let (before, _) = warp_error(&pair, (0.0, 0.0));
        let out = augment(&pair, &geometric, seed).unwrap();
        assert_ne!(out.flow, pair.flow, "seed {seed}: the view changed nothing");
        let (err, n) = warp_error(&out, (0.0, 0.0));
        let (off, _) = warp_error(&out, (1.0, 0.0));
        eprintln!("seed {seed}: before {before:.2} levels, augmented {err:.2} ({n} px), offset flow {off:.2}");
        assert!(n * 2 > out.width * out.height, "seed {seed}: only {n} pixels checked");
        assert!(err < 3.0, "seed {seed}: augmented B warped by the augmented flow differs from A by {err:.2} levels");
        assert!(off > 1.5 * err, "seed {seed}: a one-pixel flow error costs only {off:.2} vs {err:.2}");
    }
}

/// Photometric changes leave the flow as it is and change both frames; with every range degenerate the
/// augmentation is the identity.
#[test]
fn photometric_augmentation_leaves_flow_alone() {
    let pair = background_only(3);
    let photometric = AugmentConfig { geometric_prob: 0.0, ..AugmentConfig::default() };
    let out = augment(&pair, &photometric, 5).unwrap();
    assert_eq!(out.flow, pair.flow);
    assert_ne!(out.frame_a, pair.frame_a);
    assert_ne!(out.frame_b, pair.frame_b);
    assert!(out.frame_a.iter().chain(&out.frame_b).all(|v| (0.0..=1.0).contains(v)));
    assert_eq!(augment(&pair, &AugmentConfig::none(), 5).unwrap(), pair);
    // The same seed gives the same augmentation; another seed another one.
    assert_eq!(
        augment(&pair, &AugmentConfig::default(), 5).unwrap(),
        augment(&pair, &AugmentConfig::default(), 5).unwrap()
    );
    assert_ne!(
        augment(&pair, &AugmentConfig::default(), 5).unwrap(),
        augment(&pair, &AugmentConfig::default(), 6).unwrap()
    );
}

#[test]
fn bad_augmentation_ranges_are_named() {
    let pair = background_only(1);
    let cases: [(&str, AugmentConfig); 3] = [
        ("zoom", AugmentConfig { zoom: (1.5, 1.0), ..AugmentConfig::default() }),
        ("gamma", AugmentConfig { gamma: (f64::NAN, 1.0), ..AugmentConfig::default() }),
        ("blur_prob", AugmentConfig { blur_prob: 2.0, ..AugmentConfig::default() }),
    ];
    for (field, cfg) in cases {
        let e = augment(&pair, &cfg, 0).unwrap_err().to_string();
        assert!(e.contains(field), "error for bad {field} does not name it: {e}");
    }
}

fn options(start_batch: u64, prefetch: usize) -> LoaderOptions {
    LoaderOptions {
        batch: 2,
        height: 64,
        width: 128,
        seed: 7,
        augment: AugmentConfig::default(),
        start_batch,
        prefetch,
    }
}

/// Batch k is samples 2k and 2k+1 of the stream, whether the loader starts at 0 or at k, and whether it
/// prefetches on a thread or not: what makes a resumed run see the batches an uninterrupted one would.
#[test]
fn batches_are_addressed_by_index() {
    let source = DataSource::Synthetic(SyntheticConfig::default());
    let mut from_zero = Loader::with_options(source.clone(), options(0, 0)).unwrap();
    let batches: Vec<_> = (0..4).map(|_| from_zero.next_batch().unwrap()).collect();
    let mut prefetched = Loader::with_options(source.clone(), options(0, 2)).unwrap();
    for (k, b) in batches.iter().enumerate() {
        let p = prefetched.next_batch().unwrap();
        assert_eq!(
            (&p.frame_a.data, &p.frame_b.data, &p.flow.data),
            (&b.frame_a.data, &b.frame_b.data, &b.flow.data),
            "batch {k}"
        );
    }
    let mut resumed = Loader::with_options(source.clone(), options(2, 1)).unwrap();
    assert_eq!(resumed.position(), 2);
    let r = resumed.next_batch().unwrap();
    assert_eq!(r.frame_a.data, batches[2].frame_a.data);
    assert_eq!(r.flow.data, batches[2].flow.data);
    // Sample 5 of the stream is the second half of batch 2; its flow planes, in pixels, are the batch's.
    let s5 = make_sample(&source, 128, 64, 7, 5, &AugmentConfig::default()).unwrap();
    let plane = 64 * 128;
    let u: Vec<f32> =
        s5.flow.data.chunks_exact(2).map(|p| if is_valid_flow(p[0], p[1]) { p[0] } else { 0.0 }).collect();
    assert_eq!(&batches[2].flow.data[2 * plane..3 * plane], &u[..]);
    assert_ne!(batches[0].frame_a.data, batches[1].frame_a.data);
    assert!(prefetched.generator_samples_per_s() > 0.0);
}

fn write_png(path: &Path, w: u32, h: u32, seed: u8) {
    image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x as u8).wrapping_mul(seed), y as u8, seed]))
        .save(path)
        .unwrap();
}

fn write_flo(path: &Path, w: usize, h: usize, u: f32) {
    let mut f = Flow::zeros(w, h);
    for y in 0..h {
        for x in 0..w {
            f.set(x, y, u, 0.5);
        }
    }
    corrflow::io::write_flo(path, &f).unwrap();
}

/// The walker finds Middlebury, Sintel (both layouts), KITTI (both layouts), FlyingChairs and `corrflow gen`
/// folders, names the pairs, and ignores incomplete ones.
#[test]
fn eval_walker_finds_every_layout() {
    let root = common::TempDir::new("walker");
    let mk = |p: &str| {
        let d = root.join(p);
        std::fs::create_dir_all(&d).unwrap();
        d
    };
    let mb = mk("middlebury/Venus");
    write_png(&mb.join("frame10.png"), 8, 6, 1);
    write_png(&mb.join("frame11.png"), 8, 6, 2);
    write_flo(&mb.join("flow10.flo"), 8, 6, 1.0);
    let incomplete = mk("middlebury/Broken");
    write_png(&incomplete.join("frame10.png"), 8, 6, 1);
    write_flo(&incomplete.join("flow10.flo"), 8, 6, 1.0);
    for pass in ["clean", "final"] {
        let d = mk(&format!("sintel/alley_1/{pass}"));
        write_png(&d.join("frame_0002.png"), 8, 6, 3);
        write_png(&d.join("frame_0003.png"), 8, 6, 4);
        let o = mk(&format!("official/training/{pass}/cave_2"));
        write_png(&o.join("frame_0010.png"), 8, 6, 3);
        write_png(&o.join("frame_0011.png"), 8, 6, 4);
    }
    write_flo(&mk("sintel/alley_1/flow").join("frame_0002.flo"), 8, 6, 2.0);
    write_flo(&mk("official/training/flow/cave_2").join("frame_0010.flo"), 8, 6, 2.0);
    let k = mk("kitti2015/000000");
    write_png(&k.join("frame1.png"), 8, 6, 5);
    write_png(&k.join("frame2.png"), 8, 6, 6);
    corrflow::io::write_kitti_flow(k.join("flow_gt.png"), &Flow::zeros(8, 6), None).unwrap();
    let ko = mk("kitti_official");
    std::fs::create_dir_all(ko.join("image_2")).unwrap();
    std::fs::create_dir_all(ko.join("flow_occ")).unwrap();
    write_png(&ko.join("image_2/000007_10.png"), 8, 6, 5);
    write_png(&ko.join("image_2/000007_11.png"), 8, 6, 6);
    corrflow::io::write_kitti_flow(ko.join("flow_occ/000007_10.png"), &Flow::zeros(8, 6), None).unwrap();
    let fc = mk("flyingchairs");
    write_png(&fc.join("0000001-img0.png"), 8, 6, 7);
    write_png(&fc.join("0000001-img1.png"), 8, 6, 8);
    write_flo(&fc.join("0000001-gt.flo"), 8, 6, 3.0);
    let generated = mk("gen");
    write_png(&generated.join("00004_img1.png"), 8, 6, 7);
    write_png(&generated.join("00004_img2.png"), 8, 6, 8);
    write_flo(&generated.join("00004_flow.flo"), 8, 6, 3.0);

    let pairs = find_pairs(&root).unwrap();
    let found: Vec<(String, String)> = pairs.iter().map(|p| (p.dataset.clone(), p.name.clone())).collect();
    let expect = [
        ("flyingchairs", "0000001"),
        ("generated", "00004"),
        ("kitti2015", "000000"),
        ("kitti2015", "000007"),
        ("middlebury", "Venus"),
        ("sintel_clean", "alley_1/frame_0002"),
        ("sintel_clean", "cave_2/frame_0010"),
        ("sintel_final", "alley_1/frame_0002"),
        ("sintel_final", "cave_2/frame_0010"),
    ];
    let expect: Vec<(String, String)> = expect.iter().map(|(d, n)| (d.to_string(), n.to_string())).collect();
    assert_eq!(found, expect);
    let kitti = pairs.iter().find(|p| p.name == "000007").unwrap();
    assert!(matches!(kitti.gt, GroundTruth::KittiPng(_)));
    let sintel = pairs.iter().find(|p| p.dataset == "sintel_final" && p.name.starts_with("alley")).unwrap();
    assert!(sintel.frame_b.ends_with("sintel/alley_1/final/frame_0003.png"));
    assert!(sintel.gt.path().ends_with("sintel/alley_1/flow/frame_0002.flo"));

    // Scoring: zero flow against a constant (1, 0.5) ground truth.
    let venus = pairs.iter().find(|p| p.name == "Venus").unwrap();
    let (_, _, gt, valid) = corrflow::eval::load_pair(venus).unwrap();
    let r = corrflow::eval::score(venus, &Flow::zeros(8, 6), &gt, valid.as_deref(), Default::default()).unwrap();
    assert!((r.epe - 1.25f64.sqrt()).abs() < 1e-6 && r.epe == r.zero_epe && r.fl_all.is_none());
    // A ground truth with no known pixel is an error, not NaN.
    let mut unknown = Flow::zeros(8, 6);
    unknown.data.iter_mut().for_each(|v| *v = 1e10);
    assert!(corrflow::eval::score(venus, &Flow::zeros(8, 6), &unknown, None, Default::default()).is_err());
}

fn row(step: u64, val: Option<f64>) -> TrainRow {
    TrainRow {
        step,
        wall_s: step as f64,
        cpu_s: 2.0 * step as f64,
        lr: 1e-4,
        loss: 10.0 / step as f64,
        samples_per_s: 4.0,
        gen_samples_per_s: 20.0,
        data_wait_s: 0.0,
        validation: val
            .map(|v| {
                corrflow::training::validate::ValidationReport {
                    synthetic_epe: v,
                    real: vec![("middlebury".into(), v + 1.0, 4.19, 8)],
                    time: Default::default(),
                }
                .columns()
            })
            .unwrap_or_default(),
    }
}

/// Resuming at step 20 drops the rows of steps 30 and 40 (they will be trained again), keeps the best
/// validation and the cumulative times of the rows it keeps; a new run starts an empty log.
#[test]
fn training_log_resumes_at_the_checkpoint() {
    let dir = common::TempDir::new("log");
    let path = dir.join("run.csv");
    let mut log = TrainLog::open(&path, None).unwrap();
    for (s, v) in [(10, None), (20, Some(3.0)), (30, Some(2.0)), (40, None)] {
        log.append(&row(s, v)).unwrap();
    }
    assert_eq!(log.best(), Some(2.0));
    let resumed = TrainLog::open(&path, Some(20)).unwrap();
    assert_eq!(resumed.rows().iter().map(|r| r.step).collect::<Vec<_>>(), vec![10, 20]);
    assert_eq!(resumed.best(), Some(3.0));
    assert_eq!(resumed.totals(), (20.0, 40.0));
    assert!((resumed.rows()[1].val[1] - 4.0).abs() < 1e-9, "middlebury column");
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 3, "header and two rows: {text}");
    resumed.plot(&dir.join("run.png")).unwrap();
    assert!(image::open(dir.join("run.png")).unwrap().width() > 100);
    let fresh = TrainLog::open(&path, None).unwrap();
    assert!(fresh.rows().is_empty());
}
