//! The command line never destroys a user's data or wastes their time (issue 11, cases 2-4 and 7): outputs go
//! only to regular files (through symlinks), never over an input or each other; every input is checked before
//! any GPU work (a refused run prints no "adapter:" line, which comes with the GPU context); nothing is left
//! half-written.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{corrflow, entries, TempDir};
use corrflow::models::flownet::{Arch, Variant};

/// Two 64x64 frames, tiny FlowNetS weights and a matching ground truth in `dir`.
fn inputs(dir: &Path) -> (String, String, String, String) {
    let a = dir.join("a.png");
    let b = dir.join("b.png");
    image::RgbImage::from_fn(64, 64, |x, y| image::Rgb([(x * 4) as u8, (y * 4) as u8, 90])).save(&a).unwrap();
    image::RgbImage::from_fn(64, 64, |x, y| image::Rgb([(x * 4 + 3) as u8, (y * 4) as u8, 90])).save(&b).unwrap();
    let w = dir.join("w.safetensors");
    Arch::new(Variant::S, 0.125).init_weights(3).save(&w).unwrap();
    let gt = dir.join("gt.flo");
    corrflow::io::write_flo(&gt, &corrflow::Flow::zeros(64, 64)).unwrap();
    let s = |p: PathBuf| p.to_string_lossy().to_string();
    (s(a), s(b), s(w), s(gt))
}

fn assert_refused_before_work(what: &str, code: i32, stdout: &str, stderr: &str, needle: &str) {
    assert_eq!(code, 1, "{what}: exit {code}\n{stdout}\n{stderr}");
    assert!(stderr.starts_with("error:") && stderr.contains(needle), "{what}: {stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains(".tmp-"), "{what}: {stderr}");
    assert!(!stdout.contains("adapter:"), "{what}: the GPU was started before the error:\n{stdout}");
}

/// Case 3 and 4: an output that is an input, two outputs on one file, a ground truth of the wrong size or a
/// corrupt one, a missing output folder: each refused before any GPU work, naming the user's paths, with the
/// folder exactly as it was.
#[test]
fn bad_arguments_are_refused_before_any_work_and_nothing_is_touched() {
    let dir = TempDir::new("refuse");
    let (a, b, w, _) = inputs(&dir);
    let before_a = std::fs::read(&a).unwrap();
    let flo = dir.join("f.flo").to_string_lossy().to_string();
    let png = dir.join("f.png").to_string_lossy().to_string();
    std::fs::write(&flo, b"previous flow").unwrap();
    let files = entries(&dir);
    let base = |extra: &[&str]| -> Vec<String> {
        ["flow", a.as_str(), b.as_str(), "--weights", w.as_str()].iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let corrflow = |args: Vec<String>| corrflow(&args.iter().map(String::as_str).collect::<Vec<_>>());
    // --png over an input frame.
    let (c, o, e) = corrflow(base(&["--out", &flo, "--png", &a]));
    assert_refused_before_work("--png = input", c, &o, &e, "a.png");
    // --out and --png on one file (the default --png is flow.png).
    let same = dir.join("flow.png").to_string_lossy().to_string();
    let (c, o, e) = corrflow(base(&["--out", &same, "--png", &same]));
    assert_refused_before_work("--out = --png", c, &o, &e, "flow.png");
    // The same file spelled differently.
    let spelled = format!("{}/../{}/a.png", dir.display(), dir.file_name().unwrap().to_string_lossy());
    let (c, o, e) = corrflow(base(&["--out", &flo, "--png", &spelled]));
    assert_refused_before_work("--png = input via ..", c, &o, &e, "a.png");
    // Ground truth of another size.
    let small_gt = dir.join("small.flo");
    corrflow::io::write_flo(&small_gt, &corrflow::Flow::zeros(32, 16)).unwrap();
    let (c, o, e) = corrflow(base(&["--out", &flo, "--png", &png, "--gt", &small_gt.to_string_lossy()]));
    assert_refused_before_work("--gt size", c, &o, &e, "32x16");
    // A corrupt ground truth.
    let bad_gt = dir.join("bad.flo");
    std::fs::write(&bad_gt, b"PIEH but not really").unwrap();
    let (c, o, e) = corrflow(base(&["--out", &flo, "--png", &png, "--gt", &bad_gt.to_string_lossy()]));
    assert_refused_before_work("corrupt --gt", c, &o, &e, "bad.flo");
    // An output in a folder that does not exist, named as the user wrote it.
    let missing = dir.join("no/such/dir/f.flo").to_string_lossy().to_string();
    let (c, o, e) = corrflow(base(&["--out", &missing, "--png", &png]));
    assert_refused_before_work("missing folder", c, &o, &e, "no/such/dir");
    // A --png in a missing folder leaves no new flow file either.
    let bad_png = dir.join("nope/f.png").to_string_lossy().to_string();
    let (c, o, e) = corrflow(base(&["--out", &flo, "--png", &bad_png]));
    assert_refused_before_work("bad --png", c, &o, &e, "nope");
    // Weights that are not a regular file.
    let args = ["flow", &a, &b, "--weights", "/dev/zero", "--out", &flo, "--png", &png];
    let (c, o, e) = corrflow(args.iter().map(|s| s.to_string()).collect());
    assert_refused_before_work("--weights /dev/zero", c, &o, &e, "/dev/zero");
    assert_eq!(std::fs::read(&a).unwrap(), before_a, "an input changed");
    assert_eq!(std::fs::read(&flo).unwrap(), b"previous flow", "an existing output was replaced by a refused run");
    let mut now = entries(&dir);
    now.retain(|n| n != "small.flo" && n != "bad.flo");
    assert_eq!(now, files, "a refused run left files behind");
}

/// Case 2: a device, a FIFO or a folder is never replaced by an output; a symlink's target is replaced and the
/// link kept. Case 7: a ground truth with no valid pixel is an error, not "EPE NaN".
#[test]
fn outputs_go_only_to_regular_files() {
    let dir = TempDir::new("devices");
    let (a, b, w, _) = inputs(&dir);
    let png = dir.join("p.png").to_string_lossy().to_string();
    let run = |out: &str| corrflow(&["flow", &a, &b, "--weights", &w, "--out", out, "--png", &png]);
    for dev in ["/dev/full", "/dev/null"] {
        if Path::new(dev).exists() {
            let (c, o, e) = run(dev);
            assert_refused_before_work(dev, c, &o, &e, dev);
            use std::os::unix::fs::FileTypeExt;
            assert!(std::fs::metadata(dev).unwrap().file_type().is_char_device(), "{dev} was replaced");
        }
    }
    let fifo = dir.join("fifo");
    if Command::new("mkfifo").arg(&fifo).status().is_ok_and(|s| s.success()) {
        let (c, o, e) = run(&fifo.to_string_lossy());
        assert_refused_before_work("fifo", c, &o, &e, "fifo");
    }
    let folder = dir.join("folder");
    std::fs::create_dir(&folder).unwrap();
    let (c, o, e) = run(&folder.to_string_lossy());
    assert_refused_before_work("folder", c, &o, &e, "folder");

    // Through a symlink: the target gets the flow, the link stays a link.
    let target = dir.join("target.flo");
    std::fs::write(&target, b"old").unwrap();
    let link = dir.join("link.flo");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let (c, o, e) = run(&link.to_string_lossy());
    if corrflow::Context::new_blocking().is_err() {
        eprintln!("skipping the GPU half: no adapter ({e})");
        return;
    }
    assert_eq!(c, 0, "{o}\n{e}");
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link was replaced");
    assert_eq!(corrflow::io::read_flo(&target).unwrap().width, 64);

    // All-NaN ground truth: an error naming the problem.
    let nan_gt = dir.join("nan.flo");
    let mut f = corrflow::Flow::zeros(64, 64);
    f.data.iter_mut().for_each(|v| *v = f32::NAN);
    corrflow::io::write_flo(&nan_gt, &f).unwrap();
    let out = dir.join("n.flo").to_string_lossy().to_string();
    let (c, o, e) =
        corrflow(&["flow", &a, &b, "--weights", &w, "--out", &out, "--png", &png, "--gt", &nan_gt.to_string_lossy()]);
    assert_refused_before_work("all-NaN --gt", c, &o, &e, "valid");
    assert!(!Path::new(&out).exists());
}

/// Case 8: the first run on an adapter says the kernels are being compiled (with a count), later runs do not.
#[test]
fn first_run_says_it_compiles_the_kernels() {
    if corrflow::Context::new_blocking().is_err() {
        eprintln!("skipping: no adapter");
        return;
    }
    let dir = TempDir::new("first-run");
    let (a, b, w, _) = inputs(&dir);
    let run = || {
        let out = Command::new(env!("CARGO_BIN_EXE_corrflow"))
            .args(["flow", &a, &b, "--weights", &w, "--out", &dir.join("f.flo").to_string_lossy(), "--png"])
            .arg(dir.join("f.png"))
            .env("XDG_CACHE_HOME", dir.join("cache"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let first = run();
    assert!(first.contains("first run on this adapter") && first.contains("compiling kernel"), "{first}");
    let second = run();
    assert!(!second.contains("first run"), "{second}");
}
