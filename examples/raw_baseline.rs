//! The raw-patch baseline of issue 12 on every homography pair of a folder tree (CMP and Oxford layouts):
//! mean matching accuracy at 1, 2, 3, 5 and 10 px with the CPU mutual-nearest-neighbour matcher and ratio 0.8.
//!
//! cargo run --release --example raw_baseline -- [DIR (default ../shared/data)] [MAX_SIDE (default 800; 0 = full
//! size)] [PNG_DIR (optional: a side-by-side picture per pair)]

use std::path::PathBuf;
use std::time::Instant;

use corrflow::io::homography::find_homography_pairs;
use corrflow::matching::{
    draw_matches, match_accuracy, raw_matches, write_matches_png, MatcherConfig, RawPatchConfig, MMA_THRESHOLDS_PX,
};

fn main() -> corrflow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = PathBuf::from(args.first().cloned().unwrap_or_else(|| "../shared/data".into()));
    let max_side: u32 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(800);
    let png_dir = args.get(2).map(PathBuf::from);
    let found = find_homography_pairs(&dir)?;
    for s in &found.skipped {
        if !s.ground_truth.to_string_lossy().contains("homographies_only") {
            println!("skipped {}: {}", s.ground_truth.display(), s.reason);
        }
    }
    let (raw, matcher) = (RawPatchConfig::default(), MatcherConfig::default());
    println!(
        "raw patches {}x{} (spacing {} px, blur sigma {}), stride {}, images scaled to at most {} px a side; \
         mutual NN, ratio {:?}",
        raw.patch,
        raw.patch,
        raw.spacing,
        raw.blur_sigma,
        raw.stride,
        if max_side == 0 { "full".to_string() } else { max_side.to_string() },
        matcher.ratio
    );
    println!("| pair | size A | matches | correct@3 | MMA@1 | MMA@2 | MMA@3 | MMA@5 | MMA@10 | time |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut sums = [0.0; 5];
    for pair in &found.pairs {
        let a = corrflow::io::read_frame(&pair.image_a)?.to_rgb8();
        let b = corrflow::io::read_frame(&pair.image_b)?.to_rgb8();
        let start = Instant::now();
        let matches = raw_matches(&a, &b, &raw, &matcher, (max_side > 0).then_some(max_side))?;
        let time = start.elapsed();
        let acc = match_accuracy(&matches, &pair.a_to_b, &MMA_THRESHOLDS_PX)?;
        for (i, s) in sums.iter_mut().enumerate() {
            *s += acc.mma(i);
        }
        println!(
            "| {}/{} | {}x{} | {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.1} s |",
            pair.dataset,
            pair.name,
            a.width(),
            a.height(),
            acc.matches,
            acc.correct[2],
            acc.mma(0),
            acc.mma(1),
            acc.mma(2),
            acc.mma(3),
            acc.mma(4),
            time.as_secs_f64()
        );
        if let Some(out) = &png_dir {
            let picture = draw_matches(&a, &b, &matches, Some((&pair.a_to_b, 3.0)))?;
            write_matches_png(out.join(format!("{}_{}.png", pair.dataset, pair.name)), &picture)?;
        }
    }
    let n = found.pairs.len().max(1) as f64;
    println!(
        "| mean over {} pairs | | | | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | |",
        found.pairs.len(),
        sums[0] / n,
        sums[1] / n,
        sums[2] / n,
        sums[3] / n,
        sums[4] / n
    );
    Ok(())
}
