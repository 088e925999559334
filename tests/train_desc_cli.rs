//! `corrflow train-desc` as a user runs it: arguments checked before any work, an existing checkpoint never
//! replaced by accident, a run killed mid-way (SIGKILL) that resumes to the same bits as an uninterrupted
//! one (random and hierarchical negatives, so the samplers' per-step seeds are part of it; ProxyNCA,
//! whose proxies and their Adam moments are; divide and conquer, whose clustering is), the naive ensemble's
//! file; and the network descriptors in
//! `corrflow match` and `corrflow eval-match`.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{
    assert_resumed_equals_whole, corrflow, corrflow_owned as run, kill_after_first_checkpoint, refuse_then_resume,
    TempDir,
};
use corrflow::Weights;

/// A tiny, fast run: a narrow tower on 2 pairs of 32x32 with 8 points, 2 validation pairs; `loss` adds
/// arguments and replaces those of these settings it names.
fn tiny(out: &Path, steps: u64, loss: &[&str]) -> Vec<String> {
    let base: Vec<String> = [
        "train-desc",
        "--width",
        "0.25",
        "--dim",
        "16",
        "--size",
        "32x32",
        "--pairs",
        "2",
        "--points",
        "8",
        "--val-pairs",
        "2",
        "--val-size",
        "48x48",
        "--validate-every",
        "4",
        "--log-every",
        "1",
        "--checkpoint-every",
        "2",
        "--warmup",
        "2",
        "--proxy-scenes",
        "3",
        "--steps",
        &steps.to_string(),
        "--out",
        &out.to_string_lossy(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // After the subcommand, the settings come as (flag, value) pairs.
    let mut a = vec![base[0].clone()];
    for fv in base[1..].chunks(2) {
        if !loss.contains(&fv[0].as_str()) {
            a.extend_from_slice(fv);
        }
    }
    a.extend(loss.iter().map(|s| s.to_string()));
    a
}

/// Every bad argument is refused before any work, with exit code 1, naming the flag.
#[test]
fn arguments_are_checked_before_any_work() {
    let dir = TempDir::new("ranges");
    let out = dir.join("r.safetensors");
    let o = out.to_string_lossy().to_string();
    let cases: [(&[&str], &str); 24] = [
        (&["--loss", "hinge"], "--loss"),
        (&["--sampler", "nearest"], "--sampler"),
        (&["--loss", "contrastive", "--sampler", "hardest"], "--sampler"),
        (&["--loss", "proxy-nca", "--sampler", "random"], "--sampler"),
        (&["--margin", "0"], "--margin"),
        (&["--margin=-1"], "--margin"),
        (&["--margin", "NaN"], "--margin"),
        (&["--margin", "5"], "--margin"),
        (&["--lr", "-1"], "--lr"),
        (&["--steps", "0"], "--steps"),
        (&["--pairs", "0"], "--pairs"),
        (&["--size", "30x32"], "--size"),
        (&["--neighbours", "33"], "--neighbours"),
        (&["--cpu-budget", "-5"], "--cpu-budget"),
        (&["--ensemble", "9"], "--ensemble"),
        (&["--scene-share", "1.5"], "--scene-share"),
        (&["--divide", "1"], "--divide"),
        (&["--divide", "17"], "--divide"),
        (&["--divide", "3"], "--divide 3 with --dim 128"),
        (&["--divide", "4", "--loss", "proxy-nca"], "proxy-nca"),
        (&["--divide", "4", "--ensemble", "2"], "--ensemble 2"),
        (&["--divide", "4", "--recluster", "0"], "--recluster"),
        (&["--divide", "4", "--conquer-share", "1"], "--conquer-share"),
        (&["--recluster", "10"], "need --divide"),
    ];
    for (extra, flag) in cases {
        let mut args = vec!["train-desc", "--out", &o];
        args.extend_from_slice(extra);
        let t = Instant::now();
        let (code, _, err) = corrflow(&args);
        assert_eq!(code, 1, "{extra:?}: exit {code}, {err}");
        assert!(err.starts_with("error:") && err.contains(flag) && !err.contains("panicked"), "{extra:?}: {err}");
        assert!(t.elapsed() < Duration::from_secs(20), "{extra:?} was checked only after some work");
        assert!(!out.exists(), "{extra:?} wrote a checkpoint");
    }
}

/// Kill a real run after its first checkpoint, resume it, compare with an uninterrupted run: weights (and
/// proxies), Adam's moments and the logged losses are bit-for-bit equal.
fn kill_and_resume(name: &str, loss: &[&str], steps: u64) {
    if common::gpu_with_subgroups().is_none() {
        return;
    }
    let dir = TempDir::new(name);
    let (whole, cut) = (dir.join("whole.safetensors"), dir.join("cut.safetensors"));
    let (code, stdout, err) = run(&tiny(&whole, steps, loss));
    assert_eq!(code, 0, "{stdout}\n{err}");
    assert!(stdout.contains("validation at step 4: R@1"), "{stdout}");

    let killed_at = kill_after_first_checkpoint(&tiny(&cut, 1000, loss), &cut);
    eprintln!("{name}: killed after the checkpoint at step {killed_at}");
    assert!(killed_at < steps);
    refuse_then_resume(&tiny(&cut, steps, loss), &cut);
    assert_resumed_equals_whole(&whole, &cut, steps);
    let header = std::fs::read_to_string(dir.join("whole.csv")).unwrap();
    assert!(
        header.starts_with("step,") && header.lines().next().unwrap().ends_with("val_recall1,val_recall4,val_mma3")
    );
    assert!(image::open(dir.join("whole.png")).unwrap().width() > 100);
    // The best weights carry their validation figures; the latest checkpoint, not the best, does not repeat them.
    assert!(Weights::load(dir.join("whole.best.safetensors")).unwrap().metadata().contains_key("val_mma3"));
    assert!(!Weights::load(&whole).unwrap().metadata().contains_key("val_mma3"));
}

#[test]
fn killed_triplet_run_with_random_negatives_resumes_bit_exactly() {
    kill_and_resume("random", &["--loss", "triplet", "--sampler", "random"], 8);
}

#[test]
fn killed_hierarchical_run_resumes_bit_exactly() {
    kill_and_resume("hierarchical", &["--sampler", "hierarchical", "--neighbours", "3"], 8);
}

#[test]
fn killed_proxy_nca_run_resumes_bit_exactly() {
    kill_and_resume("proxy", &["--loss", "proxy-nca"], 8);
}

/// Divide and conquer (2 learners, re-clustering every 3 steps, the whole descriptor from step 7; 48x48
/// pairs with 4 points kept of 16 candidates, so that the clusters choose the points): the centroids and
/// phase come back from the checkpoint, so the resumed run equals the uninterrupted one.
#[test]
fn killed_divide_and_conquer_run_resumes_bit_exactly() {
    let divide = ["--divide", "2", "--recluster", "3", "--conquer-share", "0.25", "--points", "4", "--size", "48x48"];
    kill_and_resume("divide", &divide, 8);
}

/// `--ensemble 2`: two members with their own files and the ensemble file, which `corrflow match` and
/// `corrflow eval-match` take as `--weights`, beside the untrained network and the raw baseline.
#[test]
fn ensemble_and_network_descriptors_in_match_and_eval_match() {
    if common::gpu_with_subgroups().is_none() {
        return;
    }
    let dir = TempDir::new("ensemble");
    let out = dir.join("e.safetensors");
    let mut args = tiny(&out, 4, &["--loss", "contrastive"]);
    args.extend(["--ensemble".into(), "2".into()]);
    let (code, stdout, err) = run(&args);
    assert_eq!(code, 0, "{stdout}\n{err}");
    for f in ["e.m0.safetensors", "e.m1.best.safetensors", "e.m1.csv", "e.ensemble.safetensors"] {
        assert!(dir.join(f).exists(), "{f} missing: {stdout}");
    }
    assert!(stdout.contains("ensemble of 2:"), "{stdout}");
    let ens = Weights::load(dir.join("e.ensemble.safetensors")).unwrap();
    assert_eq!(ens.metadata().get("ensemble").map(String::as_str), Some("2"));
    assert!(ens.contains("member1.head.weight") && !ens.names().any(|n| n.contains("loss.")));

    // A small textured pair shifted by (4, 8) px, and a homography file saying so (Oxford layout).
    let tex = |x: f64, y: f64| {
        let v = 0.5 + 0.25 * (x * 0.21).sin() * (y * 0.17).cos() + 0.25 * ((x + 2.0 * y) * 0.05).sin();
        image::Rgb([(255.0 * v) as u8, (200.0 * v) as u8, (255.0 * (1.0 - v)) as u8])
    };
    let a = image::RgbImage::from_fn(96, 80, |x, y| tex(x as f64, y as f64));
    let b = image::RgbImage::from_fn(96, 80, |x, y| tex(x as f64 - 4.0, y as f64 - 8.0));
    let pairs = dir.join("pairs");
    std::fs::create_dir_all(&pairs).unwrap();
    a.save(pairs.join("img1.png")).unwrap();
    b.save(pairs.join("img2.png")).unwrap();
    std::fs::write(pairs.join("H1to2p"), "1 0 4\n0 1 8\n0 0 1\n").unwrap();
    let s = |p: &Path| p.to_string_lossy().to_string();
    let w = s(&dir.join("e.ensemble.safetensors"));
    for kind in ["trained", "untrained"] {
        let (csv, png) = (dir.join(format!("{kind}.csv")), dir.join(format!("{kind}.png")));
        let mut m = vec!["match", "--descriptor", kind, "--out"];
        let (c, p) = (s(&csv), s(&png));
        m.extend([c.as_str(), "--png", p.as_str(), "--weights", w.as_str()]);
        let (ia, ib) = (s(&pairs.join("img1.png")), s(&pairs.join("img2.png")));
        m.extend([ia.as_str(), ib.as_str()]);
        let (code, stdout, err) = corrflow(&m);
        assert_eq!(code, 0, "{stdout}\n{err}");
        assert!(
            stdout.contains(if kind == "trained" { "descriptor trained" } else { "descriptor untrained" }),
            "{stdout}"
        );
        assert!(std::fs::read_to_string(&csv).unwrap().starts_with("x_a,y_a,x_b,y_b,score"));
        assert!(png.exists());
    }
    let (code, stdout, err) =
        corrflow(&["eval-match", &s(&pairs), "--descriptors", "trained,untrained,raw", "--weights", &w, "--json"]);
    assert_eq!(code, 0, "{stdout}\n{err}");
    // stdout is one JSON document (the adapter line goes to stderr).
    assert!(stdout.starts_with("{\"rows\":[") && stdout.trim_end().ends_with("]}"), "{stdout}");
    assert!(err.contains("adapter:"), "{err}");
    for d in ["\"trained\"", "\"untrained\"", "\"raw\""] {
        assert!(stdout.contains(d), "{d} missing: {stdout}");
    }
    // A missing weights file is an error naming it, before any matching.
    let (code, _, err) = corrflow(&["eval-match", &s(&pairs), "--weights", &s(&dir.join("none.safetensors"))]);
    assert_eq!(code, 1);
    assert!(err.contains("none.safetensors"), "{err}");
}
