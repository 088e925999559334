//! CPU tests of the FlyingChairs-style generator (`corrflow::data::synthetic`). The key check is the ground
//! truth itself: warping frame B back by the generated flow must reproduce frame A wherever the pixel stays
//! visible, within what 8-bit quantisation and bilinear interpolation allow, while a slightly wrong flow must
//! not.

use corrflow::data::synthetic::{batch, generate, write_sample, SyntheticConfig, SyntheticPair};
use corrflow::io::read_flo;
use corrflow::Error;
use std::time::Instant;

// ---------------------------------------------------------------------------------------------------------
// helpers

/// Bilinear sample of `image` at `(x, y)` in 8-bit levels; `None` unless all four neighbours are inside.
fn bilinear(image: &image::RgbImage, x: f64, y: f64) -> Option<[f64; 3]> {
    let (x0, y0) = (x.floor(), y.floor());
    if x0 < 0.0 || y0 < 0.0 || x0 + 1.0 > image.width() as f64 - 1.0 || y0 + 1.0 > image.height() as f64 - 1.0 {
        return None;
    }
    let (fx, fy) = (x - x0, y - y0);
    let (x0, y0) = (x0 as u32, y0 as u32);
    let px = |dx: u32, dy: u32| image.get_pixel(x0 + dx, y0 + dy).0.map(f64::from);
    let (a, b, c, d) = (px(0, 0), px(1, 0), px(0, 1), px(1, 1));
    Some(std::array::from_fn(|k| (1.0 - fy) * ((1.0 - fx) * a[k] + fx * b[k]) + fy * ((1.0 - fx) * c[k] + fx * d[k])))
}

/// True when frame A's pixel `(x, y)`, moved to `(qx, qy)`, is visible there in frame B: the four pixels
/// bilinear sampling reads are inside B and all show the same layer as A does at `(x, y)`.
fn visible_at(pair: &SyntheticPair, x: usize, y: usize, qx: f64, qy: f64) -> bool {
    let (w, h) = (pair.flow.width, pair.flow.height);
    let (x0, y0) = (qx.floor(), qy.floor());
    if x0 < 0.0 || y0 < 0.0 || x0 + 1.0 > (w - 1) as f64 || y0 + 1.0 > (h - 1) as f64 {
        return false;
    }
    let (x0, y0) = (x0 as usize, y0 as usize);
    let id = pair.ids_a[y * w + x];
    [(0, 0), (1, 0), (0, 1), (1, 1)].iter().all(|&(dx, dy)| pair.ids_b[(y0 + dy) * w + x0 + dx] == id)
}

/// Mean absolute difference (8-bit levels, averaged over channels) between frame A and frame B sampled at
/// `p + flow(p) + offset`, over the pixels visible under both the true flow and the offset one; also returns
/// how many pixels that was.
fn warp_error(pair: &SyntheticPair, offset: (f64, f64)) -> (f64, f64, usize) {
    let (w, h) = (pair.flow.width, pair.flow.height);
    let (mut sum_true, mut sum_offset, mut n) = (0.0, 0.0, 0usize);
    for y in 0..h {
        for x in 0..w {
            let (u, v) = pair.flow.get(x, y);
            let (qx, qy) = (x as f64 + u as f64, y as f64 + v as f64);
            let (ox, oy) = (qx + offset.0, qy + offset.1);
            if !visible_at(pair, x, y, qx, qy) || !visible_at(pair, x, y, ox, oy) {
                continue;
            }
            let a = pair.frame_a.get_pixel(x as u32, y as u32).0.map(f64::from);
            let (bt, bo) = (bilinear(&pair.frame_b, qx, qy).unwrap(), bilinear(&pair.frame_b, ox, oy).unwrap());
            sum_true += (0..3).map(|k| (a[k] - bt[k]).abs()).sum::<f64>() / 3.0;
            sum_offset += (0..3).map(|k| (a[k] - bo[k]).abs()).sum::<f64>() / 3.0;
            n += 1;
        }
    }
    (sum_true / n.max(1) as f64, sum_offset / n.max(1) as f64, n)
}

fn magnitudes(pair: &SyntheticPair) -> Vec<f32> {
    pair.flow.data.chunks_exact(2).map(|uv| uv[0].hypot(uv[1])).collect()
}

/// The `q`-quantile (0..=1) of `values` (sorted copy, nearest rank).
fn quantile(values: &[f32], q: f64) -> f32 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f32::total_cmp);
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

// ---------------------------------------------------------------------------------------------------------
// determinism and layout

#[test]
fn same_seed_same_bytes_different_seed_differs() {
    let cfg = SyntheticConfig::small();
    let a = generate(&cfg, 7).unwrap();
    let b = generate(&cfg, 7).unwrap();
    assert_eq!(a.frame_a.as_raw(), b.frame_a.as_raw());
    assert_eq!(a.frame_b.as_raw(), b.frame_b.as_raw());
    assert_eq!(
        a.flow.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        b.flow.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
    assert_eq!((&a.ids_a, &a.ids_b), (&b.ids_a, &b.ids_b));

    let c = generate(&cfg, 8).unwrap();
    assert_ne!(a.frame_a.as_raw(), c.frame_a.as_raw(), "seeds 7 and 8 gave the same frame A");
    assert_ne!(a.frame_b.as_raw(), c.frame_b.as_raw(), "seeds 7 and 8 gave the same frame B");
    assert_ne!(a.flow, c.flow, "seeds 7 and 8 gave the same flow");
}

#[test]
fn batch_is_generate_at_consecutive_seeds() {
    let cfg = SyntheticConfig::small();
    let pairs = batch(&cfg, u64::MAX - 1, 3).unwrap();
    assert_eq!(pairs.len(), 3);
    for (k, pair) in pairs.iter().enumerate() {
        assert_eq!(pair, &generate(&cfg, (u64::MAX - 1).wrapping_add(k as u64)).unwrap(), "sample {k}");
    }
    assert!(batch(&cfg, 0, 0).unwrap().is_empty());
}

#[test]
fn shapes_match_the_config() {
    let cfg = SyntheticConfig { width: 37, height: 23, ..SyntheticConfig::small() };
    let pair = generate(&cfg, 3).unwrap();
    assert_eq!(pair.frame_a.dimensions(), (37, 23));
    assert_eq!(pair.frame_b.dimensions(), (37, 23));
    assert_eq!((pair.flow.width, pair.flow.height, pair.flow.data.len()), (37, 23, 2 * 37 * 23));
    assert_eq!((pair.ids_a.len(), pair.ids_b.len()), (37 * 23, 37 * 23));
    // A 1 x 1 sample is legal and must not panic.
    let tiny = generate(&SyntheticConfig { width: 1, height: 1, ..SyntheticConfig::small() }, 0).unwrap();
    assert_eq!(tiny.frame_a.dimensions(), (1, 1));
}

// ---------------------------------------------------------------------------------------------------------
// ground truth

/// The key check: frame B, bilinearly sampled at p + flow(p), reproduces frame A at every pixel that stays
/// visible. Tolerance: 8-bit rounding of A and of B contributes at most 0.5 level each (about 0.25 mean each),
/// and bilinear interpolation of the textures' finest detail (4 px wavelengths at small amplitude, edges
/// anti-aliased over 1 px) errs by about a level where it occurs; so a mean under 2 levels leaves margin
/// without hiding a half-pixel error in the flow, which the offset flow shows costs more.
#[test]
fn warping_b_by_the_flow_reproduces_a() {
    let small = SyntheticConfig::small();
    let mut cases: Vec<(String, SyntheticPair)> =
        (0..6).map(|seed| (format!("small seed {seed}"), generate(&small, seed).unwrap())).collect();
    cases.push(("default seed 1".into(), generate(&SyntheticConfig::default(), 1).unwrap()));
    let mut offsets = Vec::new();
    for (name, pair) in &cases {
        let pixels = pair.flow.pixel_count();
        let (err_true, err_offset, n) = warp_error(pair, (1.0, -0.5));
        eprintln!(
            "{name}: {n}/{pixels} visible, mean |A - warp(B)| = {err_true:.3} levels, offset flow {err_offset:.3}"
        );
        assert!(n * 2 > pixels, "{name}: only {n} of {pixels} pixels visible; the check would be vacuous");
        assert!(err_true < 2.0, "{name}: warping B by the true flow differs from A by {err_true:.3} levels");
        // Some scenes have large flat regions (a wide-striped or gradient background), so the per-sample
        // margin is 2x; over all samples the offset must cost clearly more.
        assert!(
            err_offset > 2.0 * err_true,
            "{name}: a flow off by (1, -0.5) px errs only {err_offset:.3} levels vs {err_true:.3}: texture too flat"
        );
        offsets.push(err_offset);
    }
    let mean_offset = offsets.iter().sum::<f64>() / offsets.len() as f64;
    assert!(mean_offset > 4.0, "a flow off by (1, -0.5) px errs only {mean_offset:.3} levels on average");
}

/// Every layer moves rigidly: within a layer the flow's finite differences are one constant matrix (an
/// affine motion), of similarity form where the configuration has no shear, and it is the motion the sample
/// reports for that layer. The default configuration (shear, anisotropy, a per-sample motion scale) is
/// checked at a small size too.
#[test]
fn flow_is_one_affine_motion_per_layer() {
    let sheared = SyntheticConfig { width: 128, height: 96, ..SyntheticConfig::default() };
    let cases = (0..4)
        .map(|seed| (SyntheticConfig::small(), seed, true))
        .chain((0..3).map(|seed| (sheared.clone(), seed, false)));
    let mut non_similar = 0;
    for (cfg, seed, similarity) in cases {
        let pair = generate(&cfg, seed).unwrap();
        let (w, h) = (pair.flow.width, pair.flow.height);
        assert!(pair.flow.valid_mask().iter().all(|&v| v), "seed {seed}: non-finite flow");
        let mut gradient: Vec<Option<[f64; 4]>> = vec![None; pair.motions.len()];
        for y in 0..h - 1 {
            for x in 0..w - 1 {
                let id = pair.ids_a[y * w + x];
                // Exact reported motion at this pixel.
                let (mx, my) = pair.motions[id as usize].apply(x as f64, y as f64);
                let (u, v) = pair.flow.get(x, y);
                assert!(
                    (u as f64 - (mx - x as f64)).abs() < 1e-3 && (v as f64 - (my - y as f64)).abs() < 1e-3,
                    "seed {seed}: flow at ({x}, {y}) is not layer {id}'s motion"
                );
                if pair.ids_a[y * w + x + 1] != id || pair.ids_a[(y + 1) * w + x] != id {
                    continue;
                }
                let (ur, vr) = pair.flow.get(x + 1, y);
                let (ud, vd) = pair.flow.get(x, y + 1);
                let g = [(ur - u) as f64, (vr - v) as f64, (ud - u) as f64, (vd - v) as f64];
                // Similarity: d(u)/dx = d(v)/dy and d(v)/dx = -d(u)/dy (A - I is a scaled rotation).
                let is_similarity = (g[0] - g[3]).abs() < 1e-3 && (g[1] + g[2]).abs() < 1e-3;
                if similarity {
                    assert!(is_similarity, "seed {seed}: layer {id} at ({x}, {y}) is not a similarity: {g:?}");
                } else if !is_similarity {
                    non_similar += 1;
                }
                match gradient[id as usize] {
                    None => gradient[id as usize] = Some(g),
                    Some(g0) => assert!(
                        g.iter().zip(g0).all(|(a, b)| (a - b).abs() < 1e-3),
                        "seed {seed}: layer {id}'s flow is not affine at ({x}, {y}): {g:?} vs {g0:?}"
                    ),
                }
            }
        }
    }
    assert!(non_similar > 100, "the default configuration's shear never showed ({non_similar} pixels)");
}

/// Occlusion and leaving the frame are both present in the data and neither erases the true flow.
#[test]
fn occluded_and_outgoing_pixels_keep_their_flow() {
    let (mut occluded, mut outgoing) = (0usize, 0usize);
    for seed in 0..6 {
        let pair = generate(&SyntheticConfig::small(), seed).unwrap();
        let (w, h) = (pair.flow.width, pair.flow.height);
        for y in 0..h {
            for x in 0..w {
                let (u, v) = pair.flow.get(x, y);
                let (qx, qy) = ((x as f32 + u).round(), (y as f32 + v).round());
                if qx < 0.0 || qy < 0.0 || qx >= w as f32 || qy >= h as f32 {
                    outgoing += 1;
                } else if pair.ids_b[qy as usize * w + qx as usize] != pair.ids_a[y * w + x] {
                    occluded += 1;
                }
            }
        }
        assert!(pair.flow.valid_mask().iter().all(|&v| v));
    }
    eprintln!("over 6 small samples: {occluded} occluded, {outgoing} leaving the frame");
    assert!(occluded > 0 && outgoing > 0);
}

// ---------------------------------------------------------------------------------------------------------
// statistics

#[test]
fn small_samples_have_the_configured_motion_and_object_counts() {
    let cfg = SyntheticConfig::small();
    let pairs = batch(&cfg, 100, 20).unwrap();
    let bound = cfg.flow_bound() as f32;
    let mut counts = Vec::new();
    let mut medians = Vec::new();
    for (k, pair) in pairs.iter().enumerate() {
        let n = pair.object_count();
        assert!((cfg.objects.0..=cfg.objects.1).contains(&n), "sample {k}: {n} objects");
        counts.push(n);
        let mut distinct: Vec<u8> = pair.ids_a.iter().chain(&pair.ids_b).copied().collect();
        distinct.sort_unstable();
        distinct.dedup();
        assert!(distinct.iter().all(|&id| id as usize <= n), "sample {k}: ids {distinct:?} with {n} objects");
        assert!(distinct.len() >= 2, "sample {k}: only layers {distinct:?} visible");
        let mags = magnitudes(pair);
        let max = mags.iter().copied().fold(0.0, f32::max);
        assert!(max <= bound, "sample {k}: flow {max} px exceeds the configured bound {bound}");
        medians.push(quantile(&mags, 0.5));
    }
    let median = quantile(&medians, 0.5);
    eprintln!("small: median of per-sample median |flow| = {median:.2} px, bound {bound:.1}, counts {counts:?}");
    assert!(median > 0.5, "flow is nearly zero: median {median}");
    let limit = (cfg.max_translation_px + cfg.background_max_translation_px) as f32;
    assert!(median < limit, "median flow {median} px exceeds the translation limits {limit}");
    assert_eq!(counts.iter().min(), Some(&cfg.objects.0), "the fewest objects never drawn: {counts:?}");
    assert_eq!(counts.iter().max(), Some(&cfg.objects.1), "the most objects never drawn: {counts:?}");
    // The object count is not constant and is fully visible in the ids of at least one sample.
    assert!(pairs.iter().any(|p| {
        let mut ids = p.ids_a.clone();
        ids.sort_unstable();
        ids.dedup();
        ids.len() == p.object_count() + 1
    }));
}

/// The default configuration's displacements cover Middlebury's sub-pixel motions and Sintel's large ones
/// (README: the `corrflow gen --stats` histogram over 64 pairs: 22 % under 1 px, 7 % over 32 px, max 133 px).
/// Over 16 pairs at 256x192 each end must be clearly present, and nothing exceeds the configured bound.
#[test]
fn default_samples_cover_small_and_large_motion() {
    let cfg = SyntheticConfig { width: 256, height: 192, ..SyntheticConfig::default() };
    let start = Instant::now();
    let mut mags = Vec::new();
    for seed in 0..16 {
        let pair = generate(&cfg, seed).unwrap();
        assert_eq!(pair.frame_a.dimensions(), (256, 192));
        mags.extend(magnitudes(&pair));
    }
    let frac = |f: &dyn Fn(f32) -> bool| mags.iter().filter(|&&m| f(m)).count() as f64 / mags.len() as f64;
    let (sub_pixel, large) = (frac(&|m| m < 1.0), frac(&|m| m >= 24.0));
    let (p50, max) = (quantile(&mags, 0.5), quantile(&mags, 1.0));
    eprintln!(
        "16 default samples in {:.0} ms: median {p50:.1} px, max {max:.1}, {:.1} % under 1 px, {:.1} % from 24 px, bound {:.0}",
        start.elapsed().as_secs_f64() * 1e3,
        100.0 * sub_pixel,
        100.0 * large,
        cfg.flow_bound()
    );
    assert!(sub_pixel > 0.05, "only {:.1} % of flow under 1 px", 100.0 * sub_pixel);
    assert!(large > 0.01, "only {:.1} % of flow from 24 px", 100.0 * large);
    assert!(max > 30.0, "no flow beyond 30 px (max {max})");
    assert!(p50 > 0.5 && p50 < 20.0, "median flow {p50} px");
    assert!(max <= cfg.flow_bound() as f32);
}

// ---------------------------------------------------------------------------------------------------------
// photometric changes

#[test]
fn photometric_changes_touch_frame_b_only() {
    let clean_cfg = SyntheticConfig::small();
    let clean = generate(&clean_cfg, 11).unwrap();
    let noisy_std = 4.0 / 255.0;
    let noisy = generate(&SyntheticConfig { noise_std: noisy_std, ..clean_cfg.clone() }, 11).unwrap();
    assert_eq!(clean.frame_a, noisy.frame_a);
    assert_eq!((&clean.flow, &clean.ids_a, &clean.ids_b), (&noisy.flow, &noisy.ids_a, &noisy.ids_b));
    // Gaussian noise of 4 levels: the difference has mean about 0 and standard deviation about 4 (textures
    // stay in (0.02, 0.98) of full scale, so clipping at 0 and 255 is rare; rounding adds ~0.3 level).
    let diffs: Vec<f64> =
        clean.frame_b.as_raw().iter().zip(noisy.frame_b.as_raw()).map(|(&a, &b)| b as f64 - a as f64).collect();
    let mean = diffs.iter().sum::<f64>() / diffs.len() as f64;
    let std = (diffs.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / diffs.len() as f64).sqrt();
    eprintln!("noise 4 levels: difference mean {mean:.3}, std {std:.3}");
    assert!(mean.abs() < 0.2 && (std - 4.0).abs() < 0.4, "noise mean {mean}, std {std}");

    let jittered =
        generate(&SyntheticConfig { brightness_jitter: 0.1, contrast_jitter: 0.2, ..clean_cfg }, 11).unwrap();
    assert_eq!(clean.frame_a, jittered.frame_a);
    assert_ne!(clean.frame_b, jittered.frame_b);
}

// ---------------------------------------------------------------------------------------------------------
// validation

#[test]
fn bad_configs_are_rejected_naming_the_field() {
    let ok = SyntheticConfig::small();
    type Edit = fn(&mut SyntheticConfig);
    let cases: Vec<(&str, Edit)> = vec![
        ("width", |c| c.width = 0),
        ("height", |c| c.height = 0),
        ("width", |c| {
            c.width = usize::MAX;
            c.height = 2
        }),
        ("width", |c| {
            c.width = 10_000;
            c.height = 10_000
        }),
        ("objects", |c| c.objects = (5, 2)),
        ("objects", |c| c.objects = (1, 256)),
        ("object_radius", |c| c.object_radius = (0.3, 0.1)),
        ("object_radius", |c| c.object_radius = (0.0, 0.1)),
        ("max_translation_px", |c| c.max_translation_px = -1.0),
        ("max_translation_px", |c| c.max_translation_px = f64::NAN),
        ("max_translation_px", |c| c.max_translation_px = f64::INFINITY),
        ("max_rotation_deg", |c| c.max_rotation_deg = 400.0),
        ("scale_range", |c| c.scale_range = (1.2, 0.8)),
        ("scale_range", |c| c.scale_range = (0.0, 1.0)),
        ("background_max_translation_px", |c| c.background_max_translation_px = f64::NAN),
        ("background_max_rotation_deg", |c| c.background_max_rotation_deg = -2.0),
        ("background_scale_range", |c| c.background_scale_range = (1.1, 0.9)),
        ("brightness_jitter", |c| c.brightness_jitter = 2.0),
        ("contrast_jitter", |c| c.contrast_jitter = -0.1),
        ("noise_std", |c| c.noise_std = -0.01),
        ("noise_std", |c| c.noise_std = f64::NAN),
    ];
    for (field, edit) in cases {
        let mut cfg = ok.clone();
        edit(&mut cfg);
        for result in [cfg.validate(), generate(&cfg, 0).map(|_| ()), batch(&cfg, 0, 2).map(|_| ())] {
            match result {
                Err(Error::InvalidParam { op: "synthetic", message }) => {
                    assert!(message.contains(field), "error for bad `{field}` does not name it: {message}")
                }
                other => panic!("bad `{field}` ({cfg:?}) gave {other:?}"),
            }
        }
    }
    // Edge values that are legal.
    for cfg in [
        SyntheticConfig { objects: (0, 0), ..ok.clone() },
        SyntheticConfig { objects: (255, 255), width: 8, height: 8, ..ok.clone() },
        SyntheticConfig {
            max_translation_px: 0.0,
            max_rotation_deg: 0.0,
            scale_range: (1.0, 1.0),
            background_max_translation_px: 0.0,
            background_max_rotation_deg: 0.0,
            background_scale_range: (1.0, 1.0),
            ..ok.clone()
        },
    ] {
        let pair = generate(&cfg, 5).unwrap();
        assert!(pair.flow.valid_mask().iter().all(|&v| v));
    }
    // No motion at all: zero flow and identical frames.
    let still = generate(
        &SyntheticConfig {
            max_translation_px: 0.0,
            max_rotation_deg: 0.0,
            scale_range: (1.0, 1.0),
            background_max_translation_px: 0.0,
            background_max_rotation_deg: 0.0,
            background_scale_range: (1.0, 1.0),
            ..ok
        },
        5,
    )
    .unwrap();
    assert!(still.flow.data.iter().all(|&v| v.abs() < 1e-4));
    assert_eq!(still.frame_a, still.frame_b);
}

// ---------------------------------------------------------------------------------------------------------
// files

#[test]
fn write_sample_round_trips() {
    let dir = std::env::temp_dir().join(format!("corrflow-synthetic-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let pair = generate(&SyntheticConfig::small(), 21).unwrap();
    write_sample(&dir, 42, &pair).unwrap();
    let mut names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["00042_flow.flo", "00042_img1.png", "00042_img2.png"], "files left: {names:?}");
    assert_eq!(image::open(dir.join("00042_img1.png")).unwrap().to_rgb8(), pair.frame_a);
    assert_eq!(image::open(dir.join("00042_img2.png")).unwrap().to_rgb8(), pair.frame_b);
    assert_eq!(read_flo(dir.join("00042_flow.flo")).unwrap(), pair.flow);
    // A directory path that is a file fails with an error, not a panic.
    let file = dir.join("00042_flow.flo");
    assert!(write_sample(&file, 0, &pair).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}
