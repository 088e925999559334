//! `corrflow train` as a user runs it: arguments checked before any work, an existing checkpoint never
//! replaced by accident, and a run killed mid-way (SIGKILL) that resumes to the same bits as an
//! uninterrupted one.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{
    assert_resumed_equals_whole, corrflow, corrflow_owned as run, kill_after_first_checkpoint, refuse_then_resume,
    tensors_equal, TempDir,
};
use corrflow::Weights;

/// A tiny, fast run: FlowNetS width 0.125 on 64x64 crops, no validation pairs.
fn tiny(out: &Path, steps: u64) -> Vec<String> {
    [
        "train",
        "--variant",
        "s",
        "--width",
        "0.125",
        "--size",
        "64x64",
        "--batch",
        "2",
        "--val-pairs",
        "0",
        "--validate-every",
        "0",
        "--eval-data",
        "none",
        "--log-every",
        "1",
        "--checkpoint-every",
        "2",
        "--warmup",
        "3",
        "--lr",
        "1e-3",
        "--steps",
        &steps.to_string(),
        "--out",
        &out.to_string_lossy(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Every bad number is refused before any work, with exit code 1, naming the flag (and `-1` is taken as a
/// number in both spellings).
#[test]
fn numeric_arguments_are_range_checked() {
    let dir = TempDir::new("ranges");
    let out = dir.join("r.safetensors");
    let o = out.to_string_lossy().to_string();
    let cases: [(&[&str], &str); 12] = [
        (&["--width", "0"], "--width"),
        (&["--width=-1"], "--width"),
        (&["--width", "-1"], "--width"),
        (&["--width", "NaN"], "--width"),
        (&["--width", "1e9"], "--width"),
        (&["--lr=-1"], "--lr"),
        (&["--lr", "-1"], "--lr"),
        (&["--lr", "NaN"], "--lr"),
        (&["--steps", "0"], "--steps"),
        (&["--size", "65x64"], "--size"),
        (&["--size", "4096x4096", "--batch", "256"], "--batch"),
        (&["--augment", "zoom=2:1"], "zoom"),
    ];
    for (extra, flag) in cases {
        let mut args = vec!["train", "--out", &o];
        args.extend_from_slice(extra);
        let t = Instant::now();
        let (code, _, err) = corrflow(&args);
        assert_eq!(code, 1, "{extra:?}: exit {code}, {err}");
        assert!(err.starts_with("error:") && err.contains(flag) && !err.contains("panicked"), "{extra:?}: {err}");
        assert!(t.elapsed() < Duration::from_secs(20), "{extra:?} was checked only after some work");
        assert!(!out.exists(), "{extra:?} wrote a checkpoint");
    }
}

/// Kill a real `corrflow train` after its first checkpoint, resume it, and compare with a run that was never
/// interrupted: the weights, Adam's moments and the log's losses are bit-for-bit equal. Also: an existing
/// checkpoint is refused without --resume / --overwrite, and reaching a step already reached says so.
#[test]
fn killed_run_resumes_bit_exactly_and_checkpoints_are_protected() {
    if common::gpu_with_subgroups().is_none() {
        return;
    }
    let dir = TempDir::new("resume");
    let (whole, cut) = (dir.join("whole.safetensors"), dir.join("cut.safetensors"));
    let steps = 12;
    let (code, stdout, err) = run(&tiny(&whole, steps));
    assert_eq!(code, 0, "{stdout}\n{err}");

    // The interrupted run: killed as soon as a checkpoint exists (step >= 2), well before step 12.
    let killed_at = kill_after_first_checkpoint(&tiny(&cut, 1000), &cut);
    eprintln!("killed after the checkpoint at step {killed_at}");
    assert!(killed_at < steps);
    // Refused without --resume or --overwrite (the checkpoint left as it was), then resumed.
    refuse_then_resume(&tiny(&cut, steps), &cut);
    assert_resumed_equals_whole(&whole, &cut, steps);

    // Asking for a step already reached trains nothing and says so.
    let (code, stdout, _) = run(&{
        let mut a = tiny(&cut, 6);
        a.push("--resume".into());
        a
    });
    assert_eq!(code, 0);
    assert!(stdout.contains("already at step 12"), "{stdout}");
}

/// `--keep-every N` keeps the weights of every N-th step beside the checkpoint, and `corrflow export` of
/// several of them writes their tensor-by-tensor mean (what `Weights::average` computes), refusing to
/// write over one of its sources.
#[test]
fn snapshots_are_kept_and_export_averages_them() {
    if common::gpu_with_subgroups().is_none() {
        return;
    }
    let dir = TempDir::new("snapshots");
    let out = dir.join("run.safetensors");
    let mut args = tiny(&out, 6);
    args.extend(["--keep-every".to_string(), "2".to_string()]);
    let (code, stdout, err) = run(&args);
    assert_eq!(code, 0, "{stdout}\n{err}");
    let snaps: Vec<PathBuf> = [2, 4, 6].iter().map(|s| dir.join(format!("run.step-{s}.safetensors"))).collect();
    for (s, path) in [2, 4, 6].iter().zip(&snaps) {
        let w = Weights::load(path).unwrap_or_else(|e| panic!("snapshot {}: {e}\n{stdout}", path.display()));
        assert_eq!(w.metadata().get("step"), Some(&s.to_string()));
    }
    tensors_equal(&snaps[2], &out);
    assert!(!dir.join("run.step-3.safetensors").exists() && !dir.join("run.step-1.safetensors").exists());

    let avg = dir.join("avg.safetensors");
    let paths: Vec<&str> = snaps.iter().map(|p| p.to_str().unwrap()).collect();
    let mut export = vec!["export"];
    export.extend(&paths);
    export.extend(["--out", avg.to_str().unwrap(), "--f32"]);
    let (code, stdout, err) = corrflow(&export);
    assert_eq!(code, 0, "{stdout}\n{err}");
    assert!(stdout.contains("averaging 3 checkpoints (steps 2,4,6)"), "{stdout}");
    let expected = Weights::average(&snaps.iter().map(|p| Weights::load(p).unwrap()).collect::<Vec<_>>()).unwrap();
    let expected_path = dir.join("expected.safetensors");
    expected.save(&expected_path).unwrap();
    tensors_equal(&expected_path, &avg);
    // The mean differs from every snapshot (the weights moved between them).
    let got = Weights::load(&avg).unwrap();
    let name = got.names().next().unwrap().to_string();
    let shape = got.shape(&name).unwrap().to_vec();
    for p in &snaps {
        assert_ne!(Weights::load(p).unwrap().get(&name, &shape).unwrap(), got.get(&name, &shape).unwrap());
    }

    // An output that is one of the sources is refused before anything is read or written.
    let before = std::fs::read(&snaps[0]).unwrap();
    let (code, _, err) = corrflow(&["export", paths[0], paths[1], "--out", paths[0], "--f32"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(paths[0]), "{err}");
    assert_eq!(std::fs::read(&snaps[0]).unwrap(), before);
}

/// `corrflow export`'s f16 check: the flow of the f16 model is compared with the f32 one's on the pairs of
/// `--check-data`, the measured figure is printed and stored in the model's metadata, and a tolerance below
/// it refuses the export without writing anything.
#[test]
fn export_checks_f16_and_records_the_figure() {
    if common::gpu_with_subgroups().is_none() {
        return;
    }
    let dir = TempDir::new("export-f16");
    let out = dir.join("run.safetensors");
    let (code, stdout, err) = run(&tiny(&out, 2));
    assert_eq!(code, 0, "{stdout}\n{err}");
    // One Middlebury-style pair: a textured frame and the same texture moved by 2 px.
    let pair = dir.join("check/middlebury/Tiny");
    std::fs::create_dir_all(&pair).unwrap();
    let frame = |dx: u32| {
        image::RgbImage::from_fn(64, 64, |x, y| {
            let x = x + dx;
            image::Rgb([(x * 37 % 251) as u8, ((x * y) % 253) as u8, ((y * 11 + x) % 255) as u8])
        })
    };
    frame(0).save(pair.join("frame10.png")).unwrap();
    frame(2).save(pair.join("frame11.png")).unwrap();
    corrflow::io::write_flo(pair.join("flow10.flo"), &corrflow::Flow::zeros(64, 64)).unwrap();

    let model = dir.join("model.safetensors");
    let (src, dst, check) = (out.to_str().unwrap(), model.to_str().unwrap(), dir.join("check"));
    let check = check.to_str().unwrap();
    let (code, stdout, err) = corrflow(&["export", src, "--out", dst, "--check-data", check]);
    assert_eq!(code, 0, "{stdout}\n{err}");
    let line = stdout.lines().find(|l| l.starts_with("f16 check:")).unwrap_or_else(|| panic!("{stdout}"));
    let printed: f64 = line.split_whitespace().nth(5).unwrap().parse().unwrap();
    assert!(line.contains("over 1 pairs"), "{line}");
    let meta = Weights::load(&model).unwrap().metadata().clone();
    assert_eq!(meta.get("f16_check_px").map(|s| s.parse::<f64>().unwrap()), Some(printed), "{meta:?}");
    assert_eq!(meta.get("f16_check_pairs").map(String::as_str), Some("1"));
    assert_eq!(meta.get("f16_check_worst").map(String::as_str), Some("middlebury Tiny"));
    // Rounding ~25k weights to f16 moves the flow, if only a little.
    assert!(printed > 0.0 && printed < 0.01, "{line}");

    // A tolerance below the all-f16 figure: the tensors that move the flow most are kept in f32, listed in
    // the metadata, and the stored model passes the tolerance.
    let mixed = dir.join("mixed.safetensors");
    let tol = printed / 4.0;
    let tol_arg = format!("{tol}");
    let args = ["export", src, "--out", mixed.to_str().unwrap(), "--check-data", check, "--tolerance", &tol_arg];
    let (code, stdout, err) = corrflow(&args);
    assert_eq!(code, 0, "{stdout}\n{err}");
    assert!(stdout.contains("choosing tensors to keep in f32"), "{stdout}");
    let bytes = std::fs::read(&mixed).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = header.metadata().clone().unwrap_or_default();
    let listed: std::collections::BTreeSet<&str> = meta["f32_tensors"].split(',').collect();
    let tensors = header.tensors();
    let stored_f32: std::collections::BTreeSet<&str> = tensors
        .iter()
        .filter(|(_, info)| info.dtype == safetensors::Dtype::F32)
        .map(|(name, _)| name.as_str())
        .collect();
    assert!(!listed.is_empty() && listed == stored_f32, "{listed:?} vs {stored_f32:?}");
    assert!(
        tensors.iter().all(|(n, i)| listed.contains(n.as_str()) || i.dtype == safetensors::Dtype::F16),
        "every other tensor is f16"
    );
    let figure: f64 = meta["f16_check_px"].parse().unwrap();
    assert!(figure <= tol, "{figure} > {tol}\n{stdout}");
    // The kept tensors hold exactly the checkpoint's values, the others its values rounded to f16.
    let (full, stored) = (Weights::load(&out).unwrap(), Weights::load(&mixed).unwrap());
    for name in full.names() {
        let shape = full.shape(name).unwrap().to_vec();
        let (a, b) = (full.get(name, &shape).unwrap(), stored.get(name, &shape).unwrap());
        if listed.contains(name) {
            assert_eq!(a, b, "{name}");
        } else {
            assert!(a.iter().zip(b).all(|(x, y)| (x - y).abs() <= x.abs() / 1024.0 + 1e-7), "{name}");
        }
    }

    // `--passes` is stored with the model, and `corrflow flow` runs what the model says unless told otherwise.
    // Re-exported without a check, the mixed model loses its now stale check figure and f32 list.
    let two = dir.join("two.safetensors");
    let two_s = two.to_str().unwrap();
    let mixed_s = mixed.to_str().unwrap();
    let (code, stdout, err) =
        corrflow(&["export", mixed_s, "--out", two_s, "--check-data", "none", "--passes", "0.5,1"]);
    assert_eq!(code, 0, "{stdout}\n{err}");
    assert!(stdout.contains("2 passes at input scales 0.5, 1"), "{stdout}");
    let meta = Weights::load(&two).unwrap().metadata().clone();
    assert_eq!(meta.get("passes").map(String::as_str), Some("0.5,1"));
    assert!(!meta.contains_key("f32_tensors") && !meta.contains_key("f16_check_px"), "{meta:?}");
    let (flo, png) = (dir.join("f.flo"), dir.join("f.png"));
    let (flo, png) = (flo.to_str().unwrap(), png.to_str().unwrap());
    let (code, stdout, err) = corrflow(&["flow", "--weights", two_s, "--out", flo, "--png", png]);
    assert_eq!(code, 0, "{stdout}\n{err}");
    assert!(stdout.contains(", 2 passes at input scales 0.5, 1\n"), "{stdout}");
    let (code, stdout, err) = corrflow(&["flow", "--weights", two_s, "--out", flo, "--png", png, "--passes", "1"]);
    assert_eq!(code, 0, "{stdout}\n{err}");
    assert!(stdout.contains(", 1 pass\n"), "{stdout}");
    let (code, _, err) = corrflow(&["flow", "--weights", two_s, "--out", flo, "--png", png, "--passes", "1,x"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--passes") && err.contains("`1,x`") && err.contains("0.5,1,1"), "{err}");
}
