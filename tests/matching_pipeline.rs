//! The dense matching pipeline on the GPU against the CPU reference matcher, sub-pixel refinement on a known
//! sub-pixel shift, and `corrflow match` writing its CSV and picture.

mod common;

use std::process::Command;

use corrflow::data::homography::Homography;
use corrflow::matching::dense::{match_dense, DenseMatchConfig};
use corrflow::matching::{match_accuracy, match_descriptors, raw_patch_descriptors, MatcherConfig, RawPatchConfig};

/// A non-repeating texture: random values on lattices of 6, 11 and 23 px, bilinearly interpolated and summed
/// (a crude 1/f field), mostly shared by the three channels (the raw descriptor sees grey levels), as a
/// function of the continuous position.
fn texture(seed: u64) -> impl Fn(f64, f64) -> [f64; 3] {
    let mut rng = corrflow::data::Rng::new(seed);
    let n = 64;
    let lattices: Vec<Vec<f32>> = (0..12).map(|_| (0..n * n).map(|_| rng.uniform()).collect()).collect();
    let field = move |l: usize, x: f64, y: f64| -> f64 {
        let mut v = 0.0;
        for (k, cell) in [6.0, 11.0, 23.0].iter().enumerate() {
            let lat = &lattices[l * 3 + k];
            let (u, w) = (x / cell + 8.0, y / cell + 8.0);
            let (i, j) = (u.floor(), w.floor());
            let (fu, fw) = (u - i, w - j);
            let at = |a: f64, b: f64| lat[(b as usize % n) * n + a as usize % n] as f64;
            v += (1.0 - fw) * ((1.0 - fu) * at(i, j) + fu * at(i + 1.0, j))
                + fw * ((1.0 - fu) * at(i, j + 1.0) + fu * at(i + 1.0, j + 1.0));
        }
        v
    };
    move |x: f64, y: f64| {
        let grey = field(3, x, y);
        std::array::from_fn(|c| 0.5 + 0.25 * grey + 0.06 * field(c, x, y))
    }
}

/// A 192x128 image of [`texture`] and the same texture translated by `(tx, ty)`: B shows at `x + t` what A
/// shows at `x`, both sampled exactly from the continuous texture.
fn shifted_pair(tx: f64, ty: f64, seed: u64) -> (image::RgbImage, image::RgbImage) {
    let t = texture(seed);
    let render = |dx: f64, dy: f64| {
        image::RgbImage::from_fn(192, 128, |x, y| {
            image::Rgb(t(x as f64 - dx, y as f64 - dy).map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8))
        })
    };
    (render(0.0, 0.0), render(tx, ty))
}

/// Without refinement or resizing, the GPU pipeline returns exactly the CPU reference matcher's mutual
/// nearest neighbours passing the ratio test (same points, same scores up to f32 rounding).
#[test]
fn gpu_dense_matches_equal_the_cpu_reference() {
    let Some(ctx) = common::gpu() else { return };
    let (a, b) = shifted_pair(8.0, -4.0, 2);
    let raw = RawPatchConfig::default();
    let cfg = DenseMatchConfig { max_side: None, refine: false, ratio: 0.8, ..DenseMatchConfig::default() };
    let gpu = match_dense(ctx, &a, &b, &raw, &cfg).unwrap().matches;
    let (da, db) = (raw_patch_descriptors(&a, &raw).unwrap(), raw_patch_descriptors(&b, &raw).unwrap());
    let cpu = match_descriptors(&da, &db, &MatcherConfig { mutual: true, ratio: Some(0.8) }).unwrap();
    eprintln!("{} GPU matches, {} CPU matches", gpu.len(), cpu.len());
    assert!(cpu.len() > 100, "the reference found only {} matches", cpu.len());
    let key = |m: &corrflow::matching::Match| (m.xa.to_bits(), m.ya.to_bits(), m.xb.to_bits(), m.yb.to_bits());
    let mut g: Vec<_> = gpu.iter().map(key).collect();
    let mut c: Vec<_> = cpu.iter().map(key).collect();
    g.sort();
    c.sort();
    // Near-ties at the ratio threshold may flip between f32 summation orders: allow a handful.
    let common = g.iter().filter(|k| c.binary_search(k).is_ok()).count();
    assert!(
        common + 3 >= c.len() && common + 3 >= g.len(),
        "GPU {} vs CPU {} matches, {common} shared",
        g.len(),
        c.len()
    );
}

/// A sub-pixel shift: grid matches are off by (0.4, 0.3) px, refined ones land close to the true position
/// (median error well under half a pixel, and lower than without refinement).
#[test]
fn refinement_recovers_a_sub_pixel_shift() {
    let Some(ctx) = common::gpu() else { return };
    // Within half a pixel of a whole grid step, so the raw patches at the nearest grid points still match
    // (they decorrelate quickly beyond that on this smooth texture).
    let (tx, ty) = (4.4, 7.7);
    let (a, b) = shifted_pair(tx, ty, 5);
    let h = Homography::translation(tx, ty).unwrap();
    let raw = RawPatchConfig::default();
    let median_error = |refine: bool| {
        let cfg = DenseMatchConfig { max_side: None, refine, ratio: 0.9, ..DenseMatchConfig::default() };
        let matches = match_dense(ctx, &a, &b, &raw, &cfg).unwrap().matches;
        let mut e = corrflow::matching::reprojection_errors(&matches, &h);
        e.sort_by(f64::total_cmp);
        let acc = match_accuracy(&matches, &h, &[1.0]).unwrap();
        (e[e.len() / 2], acc.mma(0), matches.len())
    };
    let (plain, plain_mma1, n) = median_error(false);
    let (refined, refined_mma1, _) = median_error(true);
    eprintln!("{n} matches: median error {plain:.3} px on the grid, {refined:.3} px refined; MMA@1 {plain_mma1:.3} -> {refined_mma1:.3}");
    assert!(n > 50);
    assert!(refined < 0.45 && refined < plain, "refined median error {refined} vs grid {plain}");
    assert!(refined_mma1 > 0.95, "refined MMA@1 {refined_mma1}");
}

#[test]
fn match_command_writes_csv_and_picture() {
    if common::gpu().is_none() {
        return;
    }
    let dir = common::TempDir::new("match-cli");
    let (a, b) = shifted_pair(4.0, 8.0, 7);
    a.save(dir.join("a.png")).unwrap();
    b.save(dir.join("b.png")).unwrap();
    let s = |n: &str| dir.join(n).to_string_lossy().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_corrflow"))
        .args(["match", &s("a.png"), &s("b.png"), "--descriptor", "raw", "--out", &s("m.csv"), "--png", &s("m.png")])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("matches:") && stdout.contains("time: match"), "{stdout}");
    let csv = std::fs::read_to_string(dir.join("m.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("x_a,y_a,x_b,y_b,score"));
    let rows: Vec<Vec<f64>> = lines.map(|l| l.split(',').map(|v| v.parse().unwrap()).collect()).collect();
    assert!(rows.len() > 50);
    // Mostly the true shift (4, 8).
    let good = rows.iter().filter(|r| ((r[2] - r[0] - 4.0).abs() < 1.0) && ((r[3] - r[1] - 8.0).abs() < 1.0)).count();
    assert!(good * 10 > rows.len() * 8, "{good} of {} matches follow the shift", rows.len());
    let picture = image::open(dir.join("m.png")).unwrap();
    assert_eq!((picture.width(), picture.height()), (2 * 192, 128));
}
