//! Test helpers: a seeded generator, a shared GPU context, and element-wise comparison with a stated
//! tolerance that prints the first mismatches.
//!
//! Checks that need a GPU adapter (with subgroups, for the tiled and backward kernels) or the `../shared`
//! fixtures and data skip with a message when those are absent, except under `CI=true`, where they fail:
//! a CI run must not pass by checking nothing.
#![allow(dead_code)]

use std::sync::OnceLock;

use corrflow::Context;

#[allow(unused_imports)]
pub use corrflow::data::Rng;

/// Whether skipping is forbidden: the environment variable `CI` is `true` (or `1`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Reports a check skipped for want of a GPU or of `../shared` files; under `CI=true` it fails the test.
#[track_caller]
pub fn skip(reason: impl std::fmt::Display) {
    if in_ci() {
        panic!("CI=true, so this test may not skip: {reason}");
    }
    eprintln!("skipping: {reason}");
}

/// One context for the whole test binary; `None` (with a message) when the machine has no adapter (a
/// failure under `CI=true`).
pub fn gpu() -> Option<&'static Context> {
    static CTX: OnceLock<Option<Context>> = OnceLock::new();
    let ctx = CTX
        .get_or_init(|| match Context::new_blocking() {
            Ok(c) => {
                eprintln!("GPU tests run on: {}", c.adapter());
                Some(c)
            }
            Err(e) => {
                eprintln!("no GPU adapter: {e}");
                None
            }
        })
        .as_ref();
    if ctx.is_none() {
        skip("no GPU adapter");
    }
    ctx
}

/// The shared context when it offers subgroups, which the tiled and backward kernels need (wgpu's GL
/// backend has none): `None`, with a message, otherwise.
pub fn gpu_with_subgroups() -> Option<&'static Context> {
    let ctx = gpu()?;
    if corrflow::ops::conv::tiled_supported(ctx) {
        Some(ctx)
    } else {
        skip(format!(
            "adapter `{}` has no subgroup operations, which the tiled and backward kernels need",
            ctx.adapter().name
        ));
        None
    }
}

/// Asserts |actual - expected| <= abs + rel * |expected| element-wise (NaN fails), printing the first
/// mismatches with their index.
pub fn assert_close(what: &str, actual: &[f32], expected: &[f32], abs: f32, rel: f32) {
    assert_eq!(actual.len(), expected.len(), "{what}: length differs");
    let mut bad = Vec::new();
    let mut worst = 0.0f32;
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        let err = (a - e).abs();
        let tol = abs + rel * e.abs();
        // NaN fails (a comparison with NaN is false).
        if err.is_nan() || err > tol {
            bad.push((i, e, a));
        }
        if err.is_finite() {
            worst = worst.max(err);
        }
    }
    if !bad.is_empty() {
        let first: Vec<String> = bad.iter().take(8).map(|(i, e, a)| format!("[{i}] expected {e} got {a}")).collect();
        panic!(
            "{what}: {} of {} elements outside abs {abs} + rel {rel} (worst finite error {worst}); first: {}",
            bad.len(),
            actual.len(),
            first.join(", ")
        );
    }
}

/// The fixture folders under `../shared/fixtures` that hold `file`, sorted; `None` (with a message, a
/// failure under `CI=true`) when there are none.
pub fn fixture_dirs(file: &str) -> Option<Vec<std::path::PathBuf>> {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        skip(format!("fixture checks: {} not found", dir.display()));
        return None;
    };
    let mut dirs: Vec<std::path::PathBuf> =
        entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.join(file).exists()).collect();
    dirs.sort();
    if dirs.is_empty() {
        skip(format!("fixture checks: no folder of {} holds {file}", dir.display()));
        return None;
    }
    Some(dirs)
}

/// A 4-D tensor of a safetensors set, whatever its shape.
pub fn get4(w: &corrflow::Weights, name: &str) -> corrflow::HostTensor {
    let s = w.shape(name).unwrap_or_else(|| panic!("no tensor {name}")).to_vec();
    w.get4(name, [s[0], s[1], s[2], s[3]]).unwrap()
}

/// A fixture frame (floats 0..255, [1, 3, H, W]) normalised as the network expects: / 255 - mean.
pub fn normalised_frame(io: &corrflow::Weights, name: &str) -> corrflow::HostTensor {
    let mut t = get4(io, name);
    let plane = t.shape[2] * t.shape[3];
    for c in 0..3 {
        let mean = corrflow::models::flownet::RGB_MEAN[c];
        t.data[c * plane..(c + 1) * plane].iter_mut().for_each(|v| *v = *v / 255.0 - mean);
    }
    t
}

/// A fresh folder under the system's temporary directory, named after the test process and `name`, removed
/// with its contents when dropped (also when the test fails), so test runs leave nothing behind.
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("corrflow-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        TempDir(dir)
    }
}

impl std::ops::Deref for TempDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl AsRef<std::path::Path> for TempDir {
    fn as_ref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The names in `dir`, sorted: after a refused or failed write a folder must hold exactly what it held before.
pub fn entries(dir: &std::path::Path) -> Vec<String> {
    let read = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    let mut names: Vec<String> = read
        .map(|e| e.unwrap_or_else(|e| panic!("cannot read an entry of {}: {e}", dir.display())))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Runs the `corrflow` binary of this build: (exit code, -1 when killed by a signal; stdout; stderr).
pub fn corrflow(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_corrflow"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run corrflow: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// Asserts that two safetensors files hold the same tensors, bit for bit.
pub fn tensors_equal(a: &std::path::Path, b: &std::path::Path) {
    let (wa, wb) = (corrflow::Weights::load(a).unwrap(), corrflow::Weights::load(b).unwrap());
    let names: Vec<&str> = wa.names().collect();
    assert_eq!(names, wb.names().collect::<Vec<_>>(), "{} and {} hold different tensors", a.display(), b.display());
    for n in names {
        let shape = wa.shape(n).unwrap().to_vec();
        let (x, y) = (wa.get(n, &shape).unwrap(), wb.get(n, &shape).unwrap());
        let differ = x.iter().zip(y).filter(|(p, q)| p.to_bits() != q.to_bits()).count();
        assert_eq!(
            differ,
            0,
            "tensor `{n}`: {differ} of {} values differ between {} and {}",
            x.len(),
            a.display(),
            b.display()
        );
    }
}

/// Runs the `corrflow` binary with owned arguments; see [`corrflow`].
pub fn corrflow_owned(args: &[String]) -> (i32, String, String) {
    corrflow(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Starts a training command (`args`, writing its checkpoint to `checkpoint`) and kills it with SIGKILL as
/// soon as the checkpoint file holds a step; returns that step.
pub fn kill_after_first_checkpoint(args: &[String], checkpoint: &std::path::Path) -> u64 {
    use std::time::{Duration, Instant};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_corrflow"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run corrflow: {e}"));
    let t = Instant::now();
    let step = loop {
        if let Ok(w) = corrflow::Weights::load(checkpoint) {
            if let Some(step) = w.metadata().get("step").and_then(|s| s.parse::<u64>().ok()) {
                child.kill().unwrap();
                break step;
            }
        }
        assert!(t.elapsed() < Duration::from_secs(300), "no checkpoint after 5 minutes");
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be killed");
        std::thread::sleep(Duration::from_millis(20));
    };
    child.wait().unwrap();
    step
}

/// Re-running a training command (`args`) over an existing checkpoint without `--resume` or `--overwrite`
/// is refused, saying both, and leaves the checkpoint byte-identical; then `args` + `--resume` finishes the
/// run. Returns the resumed run's stdout.
pub fn refuse_then_resume(args: &[String], checkpoint: &std::path::Path) -> String {
    let before = std::fs::read(checkpoint).unwrap();
    let (code, _, err) = corrflow_owned(args);
    assert_eq!(code, 1);
    assert!(err.contains("--resume") && err.contains("--overwrite") && err.contains("already exists"), "{err}");
    assert_eq!(std::fs::read(checkpoint).unwrap(), before, "the refused run touched the checkpoint");
    let mut resume = args.to_vec();
    resume.push("--resume".into());
    let (code, stdout, err) = corrflow_owned(&resume);
    assert_eq!(code, 0, "{stdout}\n{err}");
    assert!(stdout.contains(&format!("resumed {} at step", checkpoint.display())), "{stdout}");
    stdout
}

/// A run resumed at `cut` ended where the uninterrupted run at `whole` did: weights, Adam's state beside them
/// and every logged loss of the `steps` steps (the CSV logs beside them), bit for bit.
pub fn assert_resumed_equals_whole(whole: &std::path::Path, cut: &std::path::Path, steps: u64) {
    use corrflow::training::Trainer;
    tensors_equal(whole, cut);
    tensors_equal(&Trainer::optimizer_path(whole), &Trainer::optimizer_path(cut));
    // The logs agree on every loss (wall and CPU times differ, of course).
    let (lw, lc) = (logged_losses(&whole.with_extension("csv")), logged_losses(&cut.with_extension("csv")));
    assert_eq!(lw.len(), steps as usize);
    assert_eq!(lw, lc);
}

/// The (step, loss) columns of a training log, for comparing two runs (their times differ, of course).
pub fn logged_losses(csv: &std::path::Path) -> Vec<(String, String)> {
    std::fs::read_to_string(csv)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", csv.display()))
        .lines()
        .skip(1)
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            (c[0].to_string(), c[4].to_string())
        })
        .collect()
}
