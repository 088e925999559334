//! `corrflow gen`: writes synthetic training pairs exactly as `corrflow train` sees them (sample `i` of the
//! stream `--seed`), and/or prints their displacement histogram.

use std::path::PathBuf;

use clap::Args;
use corrflow::data::augment::{AugmentConfig, FramePair};
use corrflow::data::synthetic::{load_texture_folder, SyntheticConfig};
use corrflow::training::data::{make_sample, DataSource};
use corrflow::{Error, Result};

#[derive(Args)]
pub struct GenArgs {
    /// Number of pairs (1..=100000).
    #[arg(long, default_value_t = 16)]
    count: u64,
    /// Folder to write `NNNNN_img1.png, _img2.png, _flow.flo, _flow.png` into (created if missing).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Frame size WxH (any size up to 4096; training uses multiples of 64).
    #[arg(long, default_value = "512x384")]
    size: String,
    /// Seed of the stream (below 2^23); sample i of seed s is what `corrflow train --seed s` trains on.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Index of the first sample.
    #[arg(long, default_value_t = 0)]
    start: u64,
    /// Texture some layers with crops of the images in this folder.
    #[arg(long)]
    textures: Option<PathBuf>,
    /// Apply the training augmentation (FlowNet §5.2) as `corrflow train` does: `--augment` alone for the
    /// default, or a specification as `train --augment` takes (`zoom=1:1.3,noise_std=0:0.01`).
    #[arg(long, num_args = 0..=1, default_missing_value = "default")]
    augment: Option<String>,
    /// Print the displacement histogram of the pairs.
    #[arg(long)]
    stats: bool,
}

/// Bin edges of the displacement histogram, pixels.
const EDGES: [f64; 11] = [0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];

pub fn run(args: GenArgs) -> Result<()> {
    if args.out.is_none() && !args.stats {
        return Err(Error::InvalidParam {
            op: "gen",
            message: "nothing to do: give --out DIR, --stats, or both".into(),
        });
    }
    super::check_int("gen", "--count", args.count, 1, 100_000)?;
    super::check_int("gen", "--seed", args.seed, 0, (1 << 23) - 1)?;
    let (w, h) = super::parse_size("gen", "--size", &args.size, 1, 4096)?;
    let mut cfg = SyntheticConfig::default();
    if let Some(dir) = &args.textures {
        cfg.photos = load_texture_folder(dir)?;
    }
    let source = DataSource::Synthetic(cfg);
    let aug = match &args.augment {
        Some(spec) => AugmentConfig::from_spec(spec)?,
        None => AugmentConfig::none(),
    };
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).map_err(|e| Error::Io { path: dir.clone(), source: e })?;
    }
    let mut magnitudes: Vec<f32> = Vec::new();
    let t = std::time::Instant::now();
    // Two samples at a time on two threads (the generator is CPU-bound); output order stays by index.
    let mut index = args.start;
    let end = args.start + args.count;
    while index < end {
        let chunk: Vec<u64> = (index..end.min(index + 2)).collect();
        let pairs: Vec<Result<FramePair>> = std::thread::scope(|scope| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|&i| {
                    let (source, aug) = (&source, &aug);
                    scope.spawn(move || make_sample(source, w, h, args.seed, i, aug))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(Error::InvalidParam { op: "gen", message: "a generator thread panicked".into() })
                    })
                })
                .collect()
        });
        for (&i, pair) in chunk.iter().zip(pairs) {
            let pair = pair?;
            if args.stats {
                magnitudes.extend(pair.flow.data.chunks_exact(2).map(|p| p[0].hypot(p[1])).filter(|m| m.is_finite()));
            }
            if let Some(dir) = &args.out {
                write_pair(dir, i, &pair)?;
            }
        }
        index += chunk.len() as u64;
    }
    let secs = t.elapsed().as_secs_f64();
    if let Some(dir) = &args.out {
        say!("wrote {} pairs ({w}x{h}) to {} in {secs:.1} s", args.count, dir.display());
    }
    if args.stats {
        print_stats(&mut magnitudes, args.count, w, h, args.augment.is_some());
    }
    Ok(())
}

fn write_pair(dir: &std::path::Path, i: u64, pair: &FramePair) -> Result<()> {
    let png = |img: &image::RgbImage, path: PathBuf| -> Result<()> {
        use image::ImageEncoder;
        let mut bytes = Vec::new();
        image::codecs::png::PngEncoder::new(&mut bytes)
            .write_image(img.as_raw(), img.width(), img.height(), image::ExtendedColorType::Rgb8)
            .map_err(|e| Error::Image { path: path.clone(), message: format!("cannot encode PNG: {e}") })?;
        corrflow::io::write_atomic(&path, &bytes)
    };
    png(&pair.to_rgb8(&pair.frame_a), dir.join(format!("{i:05}_img1.png")))?;
    png(&pair.to_rgb8(&pair.frame_b), dir.join(format!("{i:05}_img2.png")))?;
    corrflow::io::write_flo(dir.join(format!("{i:05}_flow.flo")), &pair.flow)?;
    corrflow::viz::write_flow_png(dir.join(format!("{i:05}_flow.png")), &pair.flow, None)
}

fn print_stats(m: &mut [f32], count: u64, w: usize, h: usize, augmented: bool) {
    if m.is_empty() {
        say!("no known flow in the samples");
        return;
    }
    m.sort_by(f32::total_cmp);
    let q = |p: f64| m[((m.len() - 1) as f64 * p).round() as usize];
    let mean = m.iter().map(|&v| v as f64).sum::<f64>() / m.len() as f64;
    say!(
        "displacement over {count} pairs at {w}x{h}{} ({} px): mean {mean:.2} px, median {:.2}, p90 {:.2}, p99 {:.2}, max {:.2}",
        if augmented { ", augmented" } else { "" },
        m.len(),
        q(0.5),
        q(0.9),
        q(0.99),
        q(1.0)
    );
    for (k, &lo) in EDGES.iter().enumerate() {
        let hi = EDGES.get(k + 1).copied().unwrap_or(f64::INFINITY);
        let n = m.iter().filter(|&&v| (v as f64) >= lo && (v as f64) < hi).count();
        let frac = n as f64 / m.len() as f64;
        let label = if hi.is_finite() { format!("[{lo:>6}, {hi:>6})") } else { format!("[{lo:>6},    inf)") };
        say!("  {label} px {:>6.2} %  {}", 100.0 * frac, "#".repeat((frac * 60.0).round() as usize));
    }
}
