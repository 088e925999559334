//! Command-line face of the library (clap), one file per command. Every failure is printed as `error: ...`
//! with exit code 1; nothing here panics on user input.

/// `println!` that never panics: output to a closed pipe (`corrflow gen --stats | head`) is dropped quietly
/// instead of aborting the command.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod bench;
mod eval;
mod export;
mod flow;
mod gen;
mod info;
mod matching;
mod progress;
mod train;
mod train_desc;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use corrflow::{Error, Result};

#[derive(Parser)]
#[command(
    name = "corrflow",
    version,
    about = "Optical flow (FlowNetS / FlowNetC) and its training, as WGSL kernels on any wgpu adapter"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Optical flow from frame A to frame B (the built-in demo pair when no frames are given).
    Flow(flow::FlowArgs),
    /// List the adapters wgpu sees, best first, with their compute limits.
    Info,
    /// Train FlowNetS / FlowNetC on synthetic pairs (default) or a folder of samples, with checkpoints,
    /// validation, a CSV log and a plot.
    Train(train::TrainArgs),
    /// Train the dense descriptor network with a metric loss (contrastive, triplet with a sampler, ProxyNCA)
    /// on image pairs with exact correspondences, with checkpoints, validation, a CSV log and a plot.
    TrainDesc(train_desc::TrainDescArgs),
    /// Write synthetic training pairs (frames, .flo, flow picture) and/or their displacement statistics.
    Gen(gen::GenArgs),
    /// Endpoint error of a model on folders of real pairs with ground truth (Middlebury, Sintel, KITTI, ...).
    Eval(eval::EvalArgs),
    /// Measure kernel and network throughput on the chosen adapter.
    Bench(bench::BenchArgs),
    /// Write a trained checkpoint as a model file to ship (f16 storage, checked against the f32 flow).
    Export(export::ExportArgs),
    /// Dense matches between two images (mutual nearest neighbours of dense descriptors), as CSV and a picture.
    Match(matching::MatchArgs),
    /// Matching accuracy (MMA at 1-10 px) and Recall@K on image pairs with known homographies.
    EvalMatch(matching::EvalMatchArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Flow(args) => flow::run(args),
        Command::Info => info::run(),
        Command::Train(args) => train::run(args),
        Command::TrainDesc(args) => train_desc::run(args),
        Command::Gen(args) => gen::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Export(args) => export::run(args),
        Command::Match(args) => matching::run_match(args),
        Command::EvalMatch(args) => matching::run_eval(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `WxH` with both sides multiples of `multiple` (1 for any size) and at most `max`.
pub(crate) fn parse_size(
    op: &'static str,
    flag: &str,
    size: &str,
    multiple: usize,
    max: usize,
) -> Result<(usize, usize)> {
    let bad = || Error::InvalidParam {
        op,
        message: format!(
            "{flag} {size:?}: expected WxH with positive sides{} of at most {max}, e.g. 256x192",
            if multiple > 1 { format!(" that are multiples of {multiple}") } else { String::new() }
        ),
    };
    let (w, h) = size.split_once(['x', 'X']).ok_or_else(bad)?;
    let (w, h): (usize, usize) = (w.trim().parse().map_err(|_| bad())?, h.trim().parse().map_err(|_| bad())?);
    if w == 0 || h == 0 || w % multiple != 0 || h % multiple != 0 || w > max || h > max {
        return Err(bad());
    }
    Ok((w, h))
}

/// `<out>` with its extension replaced by `suffix` (`run.safetensors` -> `run.best.safetensors`).
pub(crate) fn beside(out: &std::path::Path, suffix: &str) -> std::path::PathBuf {
    let stem = out.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "run".into());
    out.with_file_name(format!("{stem}{suffix}"))
}

/// User CPU + system time of this process (all threads, the software GPU's included), from /proc.
pub(crate) fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th of those.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Checks that the integer `value` is in `lo..=hi`, naming the flag.
pub(crate) fn check_int(op: &'static str, flag: &str, value: u64, lo: u64, hi: u64) -> Result<()> {
    if (lo..=hi).contains(&value) {
        return Ok(());
    }
    Err(Error::InvalidParam { op, message: format!("{flag} {value}: must be in {lo}..={hi}") })
}

/// Checks that `value` is finite and inside `lo..=hi` (or `lo < value` when `open_lo`), naming the flag.
pub(crate) fn check_range(op: &'static str, flag: &str, value: f64, lo: f64, hi: f64, open_lo: bool) -> Result<()> {
    let ok = value.is_finite() && if open_lo { value > lo } else { value >= lo } && value <= hi;
    if ok {
        return Ok(());
    }
    Err(Error::InvalidParam {
        op,
        message: format!("{flag} {value}: must be a number in {}{lo}, {hi}]", if open_lo { "(" } else { "[" }),
    })
}

/// The GPU context of a command, with its adapter printed (to stderr when `json`: stdout is then one JSON
/// document). On the first run on this adapter (no marker in
/// `$XDG_CACHE_HOME/corrflow` or `~/.cache/corrflow`) it says that the kernels are being compiled, with a count,
/// since that takes tens of seconds on a software adapter and would otherwise look like a hang; call
/// [`FirstRun::done`] when the command succeeded so later runs stay quiet.
pub(crate) fn open_context(json: bool) -> Result<(corrflow::Context, FirstRun)> {
    let ctx = corrflow::Context::new_blocking()?.with_policy(corrflow::runtime::Policy::from_env());
    if json {
        // stdout carries only the JSON document.
        eprintln!("adapter: {}", ctx.adapter());
    } else {
        say!("adapter: {}", ctx.adapter());
    }
    let a = ctx.adapter();
    let key = format!("{}|{}|{}|{}", a.name, a.driver, a.backend, env!("CARGO_PKG_VERSION"));
    // FNV-1a: a stable file name per adapter, driver and corrflow version.
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3));
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache")));
    let marker = cache.map(|c| c.join("corrflow").join(format!("kernels-{hash:016x}")));
    let first = marker.as_ref().is_some_and(|m| !m.exists());
    if first {
        use std::io::IsTerminal;
        let terminal = std::io::stderr().is_terminal();
        eprintln!(
            "first run on this adapter: compiling the GPU kernels it needs (tens of seconds on a software adapter; the driver caches them for later runs)"
        );
        ctx.on_compile(Box::new(move |kernel, built| {
            if terminal {
                eprint!("\r  compiling kernel {:>3}: {kernel:<40}", built + 1);
            } else if built % 10 == 0 {
                eprintln!("  compiling kernel {:>3}: {kernel}", built + 1);
            }
        }));
    }
    Ok((ctx, FirstRun { marker: marker.filter(|_| first) }))
}

/// Remembers that the kernels of this adapter were compiled (see [`open_context`]).
pub(crate) struct FirstRun {
    marker: Option<std::path::PathBuf>,
}

impl FirstRun {
    /// Writes the marker; failures are ignored (the only cost is the notice on the next run).
    pub(crate) fn done(&self) {
        if let Some(m) = &self.marker {
            eprintln!();
            if let Some(dir) = m.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let _ = std::fs::write(m, b"corrflow compiled its kernels for this adapter\n");
        }
    }
}
