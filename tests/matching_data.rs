//! Issue 12, items 3 and 7 on the CPU: homographies and their readers, the evaluation-folder walker, training
//! pairs with exact correspondences, the matching metrics, the raw-patch baseline with the CPU matcher, and
//! the match file and picture. Real-data checks read ../shared/data and skip, saying so, when it is absent.

use std::path::{Path, PathBuf};

use corrflow::data::correspondence::{
    sample_correspondences, scene_pair, warp_pair, warp_source, CorrespondencePair, GroundTruth, PhotometricConfig,
    PointSampling, SourceImages, WarpConfig,
};
use corrflow::data::homography::Homography;
use corrflow::data::synthetic::{generate, SyntheticConfig};
use corrflow::io::homography::{
    find_homography_pairs, read_cmp_model, read_cmp_validation_points, read_oxford_homography,
};
use corrflow::io::matches::{encode_matches_csv, parse_matches_csv, read_matches_csv, write_matches_csv};
use corrflow::matching::{
    draw_matches, grid_points, match_accuracy, match_descriptors, raw_matches, raw_patch_descriptors,
    raw_patch_descriptors_at, recall_at_k, true_correspondents, Descriptors, Match, MatcherConfig, RawPatchConfig,
    MMA_THRESHOLDS_PX, RECALL_KS,
};
use image::{Rgb, RgbImage};

fn shared_data(relative: &str) -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data").join(relative);
    if path.exists() {
        Some(path)
    } else {
        println!("skipping: {} not found", path.display());
        None
    }
}

/// A fresh, empty directory under cargo's per-target scratch folder.
fn scratch_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("matching_data-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// The CMP pair names of ../shared/data/cmp_homogr (MANIFEST.md §6), graf having no images there.
const CMP_PAIRS: [&str; 8] =
    ["Boston", "BruggeSquare", "CapitalRegion", "LePoint1", "WhiteBoard", "adam", "boat", "city"];

fn distance(a: (f64, f64), b: (f64, f64)) -> f64 {
    (a.0 - b.0).hypot(a.1 - b.1)
}

// ---------------------------------------------------------------------------------------------------------
// Readers and the CMP convention

#[test]
fn oxford_xml_and_text_agree_and_map_image_1_to_3() {
    let (Some(xml), Some(text)) =
        (shared_data("oxford_affine/graf/H1to3p.xml"), shared_data("oxford_affine/homographies_only/graf/H1to3p"))
    else {
        return;
    };
    let h_xml = read_oxford_homography(&xml).unwrap();
    let h_text = read_oxford_homography(&text).unwrap();
    // Both files hold the same 9 numbers (MANIFEST.md §5b), already normalised to m22 = 1.
    assert_eq!(h_xml.matrix(), h_text.matrix());
    let m = h_xml.matrix();
    assert_eq!(m[0][0], 7.6285898e-01);
    assert_eq!(m[1][2], -7.6999973e+01);
    assert_eq!(m[2][2], 1.0);
    // Every Oxford file of the folder parses.
    let root = xml.parent().unwrap().parent().unwrap().join("homographies_only");
    let mut count = 0;
    for seq in std::fs::read_dir(&root).unwrap() {
        for f in std::fs::read_dir(seq.unwrap().path()).unwrap() {
            read_oxford_homography(f.unwrap().path()).unwrap();
            count += 1;
        }
    }
    assert_eq!(count, 40, "8 sequences x H1to2p..H1to6p");
}

#[test]
fn cmp_model_maps_b_onto_a_in_one_based_pixels() {
    // The convention check of issue 12 item 2: the hand-marked correspondences of <name>_vpts.mat
    // (validation.pts, homogeneous [xA; yA; 1; xB; yB; 1], 1-based) must agree with the canonical A->B
    // homography read from <name>_model.txt, and must disagree with the two wrong readings of the file.
    let Some(dir) = shared_data("cmp_homogr") else { return };
    let names: Vec<&str> = CMP_PAIRS.iter().copied().chain(["graf"]).collect();
    for name in names {
        let points = read_cmp_validation_points(dir.join(format!("{name}_vpts.mat"))).unwrap();
        assert!(points.len() >= 4, "{name}: {} points", points.len());
        let a_to_b = read_cmp_model(dir.join(format!("{name}_model.txt"))).unwrap();
        let stored = Homography::new(
            corrflow::io::homography::parse_matrix_text(
                &std::fs::read_to_string(dir.join(format!("{name}_model.txt"))).unwrap(),
                Path::new(name),
            )
            .unwrap(),
        )
        .unwrap();
        let worst = |h: &Homography| -> f64 {
            points.iter().map(|p| h.apply(p.a.0, p.a.1).map_or(f64::INFINITY, |q| distance(q, p.b))).fold(0.0, f64::max)
        };
        let canonical = worst(&a_to_b);
        // Wrong reading 1: the stored matrix taken as A->B (direction not inverted).
        let not_inverted = worst(&Homography::from_one_based(&stored));
        // Wrong reading 2: the inverse taken as 0-based (no 1-based shift).
        let not_shifted = worst(&stored.inverse());
        println!(
            "{name:>14}: {} points, worst |H(a) - b| = {canonical:.2e} px; not inverted {not_inverted:.1} px, \
             not shifted {not_shifted:.3} px",
            points.len()
        );
        // Measured: the canonical reading fits every point to about 1e-12 px (the models were fitted to these
        // refined points), the uninverted one misses by 1.4 px (city, a near-identity pair) to 2000 px, the
        // unshifted one by 0.019 px (city) to 1.4 px. So the convention is B->A, 1-based, on every pair.
        assert!(canonical < 1e-6, "{name}: the canonical homography misses a hand-marked point by {canonical} px");
        assert!(not_inverted > 1.0, "{name}: the uninverted model fits too ({not_inverted} px)");
        assert!(not_shifted > 0.01, "{name}: the unshifted model fits too ({not_shifted} px)");
    }
}

#[test]
fn walker_finds_every_real_pair_and_skips_cmp_graf() {
    let Some(root) = shared_data("") else { return };
    let cmp = find_homography_pairs(root.join("cmp_homogr")).unwrap();
    let names: Vec<&str> = cmp.pairs.iter().map(|p| p.name.as_str()).collect();
    let mut expected = CMP_PAIRS.to_vec();
    expected.sort();
    assert_eq!(names, expected);
    assert_eq!(cmp.skipped.len(), 1, "{:?}", cmp.skipped);
    assert!(cmp.skipped[0].ground_truth.ends_with("graf_model.txt"));
    assert!(cmp.skipped[0].reason.contains("grafA"), "{}", cmp.skipped[0].reason);
    for p in &cmp.pairs {
        assert_eq!(p.dataset, "cmp_homogr");
        assert_eq!(p.a_to_b, read_cmp_model(&p.ground_truth).unwrap());
        assert!(p.image_a.is_file() && p.image_b.is_file());
    }

    let oxford = find_homography_pairs(root.join("oxford_affine")).unwrap();
    assert_eq!(oxford.pairs.len(), 1);
    let graf = &oxford.pairs[0];
    assert_eq!((graf.dataset.as_str(), graf.name.as_str()), ("oxford", "graf_1to3"));
    assert!(graf.image_a.ends_with("graf/graf1.png") && graf.image_b.ends_with("graf/graf3.png"));
    // homographies_only: 40 files without images.
    assert_eq!(oxford.skipped.len(), 40, "{:?}", oxford.skipped);

    // The CMP graf model and the Oxford H1to3p are two estimates of the same map (MANIFEST.md §5a: the CMP
    // graf pair is the Oxford graf 1 -> 3 pair), so after conversion they agree to a few pixels where graf1
    // lands inside graf3; the uninverted CMP model lands hundreds of pixels away.
    let stored = Homography::new(
        corrflow::io::homography::parse_matrix_text(
            &std::fs::read_to_string(root.join("cmp_homogr/graf_model.txt")).unwrap(),
            Path::new("graf_model.txt"),
        )
        .unwrap(),
    )
    .unwrap();
    let cmp_graf = read_cmp_model(root.join("cmp_homogr/graf_model.txt")).unwrap();
    let uninverted = Homography::from_one_based(&stored);
    let (mut gaps, mut wrong) = (Vec::new(), Vec::new());
    for (x, y) in grid_points(800, 640, 40) {
        let truth = graf.a_to_b.apply(x, y).unwrap();
        if truth.0 >= 0.0 && truth.1 >= 0.0 && truth.0 <= 799.0 && truth.1 <= 639.0 {
            gaps.push(distance(cmp_graf.apply(x, y).unwrap(), truth));
            wrong.push(uninverted.apply(x, y).map_or(f64::INFINITY, |q| distance(q, truth)));
        }
    }
    gaps.sort_by(f64::total_cmp);
    wrong.sort_by(f64::total_cmp);
    let (median, worst) = (gaps[gaps.len() / 2], gaps[gaps.len() - 1]);
    println!(
        "CMP graf model vs Oxford H1to3p over {} grid points of graf1 that land in graf3: median {median:.2} px, \
         worst {worst:.2} px; uninverted CMP model: median {:.0} px",
        gaps.len(),
        wrong[wrong.len() / 2]
    );
    assert!(gaps.len() > 100);
    assert!(median < 3.0 && worst < 10.0, "median {median}, worst {worst}");
    assert!(wrong[wrong.len() / 2] > 50.0, "{}", wrong[wrong.len() / 2]);
}

#[test]
fn walker_on_a_hand_made_tree() {
    let dir = scratch_dir("walker");
    let png = {
        let mut bytes = Vec::new();
        RgbImage::new(4, 3).write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png).unwrap();
        bytes
    };
    let cmp = dir.join("cmp");
    let oxford = dir.join("wall");
    std::fs::create_dir_all(&cmp).unwrap();
    std::fs::create_dir_all(&oxford).unwrap();
    // x: complete; y: model only; z: two A images.
    for f in ["xA.png", "xB.jpg", "zA.png", "zA.jpg", "zB.png"] {
        std::fs::write(cmp.join(f), &png).unwrap();
    }
    let identity = "1 0 0\n0 1 0\n0 0 1\n";
    for f in ["x_model.txt", "y_model.txt", "z_model.txt"] {
        std::fs::write(cmp.join(f), identity).unwrap();
    }
    // Oxford: img1, img2 with H1to2p (text) and H1to2p.xml (preferred); H1to3p without img3.
    for f in ["img1.ppm", "img2.ppm"] {
        std::fs::write(oxford.join(f), &png).unwrap();
    }
    std::fs::write(oxford.join("H1to2p"), "2 0 0\n0 2 0\n0 0 1\n").unwrap();
    std::fs::write(
        oxford.join("H1to2p.xml"),
        "<?xml version=\"1.0\"?>\n<opencv_storage>\n<H12 type_id=\"opencv-matrix\">\n<rows>3</rows>\n<cols>3</cols>\n\
         <dt>d</dt>\n<data>\n 1 0 5\n 0 1 0\n 0 0 1</data></H12>\n</opencv_storage>\n",
    )
    .unwrap();
    std::fs::write(oxford.join("H1to3p"), identity).unwrap();

    let found = find_homography_pairs(&dir).unwrap();
    let names: Vec<(&str, &str)> = found.pairs.iter().map(|p| (p.dataset.as_str(), p.name.as_str())).collect();
    assert_eq!(names, [("cmp_homogr", "x"), ("oxford", "wall_1to2")]);
    assert_eq!(found.pairs[0].image_b, cmp.join("xB.jpg"));
    // CMP identity stored B->A 1-based is the identity A->B 0-based.
    assert_eq!(found.pairs[0].a_to_b.apply(3.0, 2.0), Some((3.0, 2.0)));
    // The XML (translation by 5) was used, not the text file (scaling by 2).
    assert_eq!(found.pairs[1].a_to_b.apply(1.0, 1.0), Some((6.0, 1.0)));
    let mut skipped: Vec<(String, &str)> = found
        .skipped
        .iter()
        .map(|s| (s.ground_truth.file_name().unwrap().to_string_lossy().into_owned(), s.reason.as_str()))
        .collect();
    skipped.sort();
    assert_eq!(skipped.len(), 4, "{skipped:?}");
    assert_eq!(skipped[0].0, "H1to2p");
    assert!(skipped[0].1.contains("H1to2p.xml"));
    assert_eq!(skipped[1].0, "H1to3p");
    assert!(skipped[1].1.contains("<prefix>3"));
    assert_eq!(skipped[2].0, "y_model.txt");
    assert!(skipped[2].1.contains("no image yA.*"));
    assert_eq!(skipped[3].0, "z_model.txt");
    assert!(skipped[3].1.contains("several images named zA.*"));

    // A corrupt model beside its images is an error naming the file, not a skip.
    std::fs::write(cmp.join("x_model.txt"), "1 0 0\n0 1 0\n").unwrap();
    let err = find_homography_pairs(&dir).unwrap_err().to_string();
    assert!(err.contains("x_model.txt") && err.contains("3 lines of 3 numbers"), "{err}");
    // A singular model too.
    std::fs::write(cmp.join("x_model.txt"), "1 2 3\n2 4 6\n0 0 1\n").unwrap();
    let err = find_homography_pairs(&dir).unwrap_err().to_string();
    assert!(err.contains("x_model.txt") && err.contains("singular"), "{err}");
    // Not a folder.
    assert!(find_homography_pairs(cmp.join("xA.png")).is_err());
}

#[test]
fn readers_refuse_bad_files_without_panicking() {
    let dir = scratch_dir("bad-readers");
    let xml = dir.join("H1to2p.xml");
    for (content, needle) in [
        ("<opencv_storage></opencv_storage>", "opencv-matrix"),
        ("<a type_id=\"opencv-matrix\"><rows>2</rows><cols>3</cols><dt>d</dt><data>1 2 3 4 5 6</data></a>", "2x3"),
        ("<a type_id=\"opencv-matrix\"><rows>3</rows><cols>3</cols><dt>d</dt><data>1 2 3</data></a>", "3 numbers"),
        (
            "<a type_id=\"opencv-matrix\"><rows>3</rows><cols>3</cols><dt>d</dt><data>1 0 0 0 1 0 0 0 nan</data></a>",
            "finite",
        ),
        ("<a type_id=\"opencv-matrix\"><rows>3</rows><cols>3</cols><dt>d</dt>", "<data>"),
    ] {
        std::fs::write(&xml, content).unwrap();
        let err = read_oxford_homography(&xml).unwrap_err().to_string();
        assert!(err.contains("H1to2p.xml") && err.contains(needle), "{err}");
    }
    // A folder, and a file over the size limit, are refused before reading.
    assert!(read_cmp_model(&dir).is_err());
    std::fs::write(dir.join("big_model.txt"), vec![b' '; 70_000]).unwrap();
    assert!(read_cmp_model(dir.join("big_model.txt")).unwrap_err().to_string().contains("bytes"));

    // MAT-files: not a MAT-file, and every truncation and many corruptions of a real one.
    let mat = dir.join("x_vpts.mat");
    std::fs::write(&mat, b"not a mat file").unwrap();
    assert!(read_cmp_validation_points(&mat).unwrap_err().to_string().contains("MAT-file"));
    // Hand-made structs claiming 2^60 elements, with no field and with one: refused or kept empty, never
    // allocated.
    for (fields, needle) in [(&b""[..], "no variable `validation`"), (&b"p"[..], "claims more elements")] {
        std::fs::write(&mat, huge_struct_mat(fields)).unwrap();
        let err = read_cmp_validation_points(&mat).unwrap_err().to_string();
        assert!(err.contains("x_vpts.mat") && err.contains(needle), "{err}");
    }
    let Some(real) = shared_data("cmp_homogr/boat_vpts.mat") else { return };
    let bytes = std::fs::read(real).unwrap();
    for len in 0..bytes.len() {
        std::fs::write(&mat, &bytes[..len]).unwrap();
        assert!(read_cmp_validation_points(&mat).is_err(), "truncated to {len} bytes");
    }
    let mut rng = corrflow::data::Rng::new(12);
    for _ in 0..300 {
        let mut corrupt = bytes.clone();
        for _ in 0..1 + rng.next_u64() % 4 {
            let at = (rng.next_u64() % corrupt.len() as u64) as usize;
            corrupt[at] ^= 1 << (rng.next_u64() % 8);
        }
        std::fs::write(&mat, &corrupt).unwrap();
        // Ok or Err, never a panic.
        let _ = read_cmp_validation_points(&mat);
    }
}

/// A little-endian MAT-file holding one struct `v` of 2^30 x 2^30 elements whose field names are `fields`
/// (one name of one character, or none), and nothing else: MathWorks' "MAT-File Format", chapter 1.
fn huge_struct_mat(fields: &[u8]) -> Vec<u8> {
    let mut out = format!("{:<116}", "MATLAB 5.0 MAT-file, hand-made").into_bytes();
    out.extend([0u8; 8]);
    out.extend([0x00, 0x01, b'I', b'M']);
    let u32s = |v: &[u32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let mut body = u32s(&[6, 8, 2, 0]); // array flags: class 2 = struct
    body.extend(u32s(&[5, 8, 1 << 30, 1 << 30])); // dimensions
    body.extend(u32s(&[1 | (1 << 16)])); // name: small element, 1 byte
    body.extend(b"v\0\0\0");
    body.extend(u32s(&[5 | (4 << 16), 1])); // field-name length 1: small element
    body.extend(u32s(&[1, fields.len() as u32])); // field names
    body.extend(fields);
    body.resize(body.len().div_ceil(8) * 8, 0);
    out.extend(u32s(&[14, body.len() as u32]));
    out.extend(body);
    out
}

// ---------------------------------------------------------------------------------------------------------
// Training pairs

/// Bilinear colour of `img` at `(x, y)` (inside the image), f64 grey levels.
fn bilinear(img: &RgbImage, x: f64, y: f64) -> [f64; 3] {
    let (w, h) = img.dimensions();
    let x = x.clamp(0.0, (w - 1) as f64);
    let y = y.clamp(0.0, (h - 1) as f64);
    let (x0, y0) = (x.floor() as u32, y.floor() as u32);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (fx, fy) = (x - x0 as f64, y - y0 as f64);
    let at = |xx: u32, yy: u32, c: usize| img.get_pixel(xx, yy)[c] as f64;
    [0, 1, 2].map(|c| {
        let top = at(x0, y0, c) * (1.0 - fx) + at(x1, y0, c) * fx;
        let bottom = at(x0, y1, c) * (1.0 - fx) + at(x1, y1, c) * fx;
        top * (1.0 - fy) + bottom * fy
    })
}

fn colour_distance(a: [f64; 3], b: [f64; 3]) -> f64 {
    a.iter().zip(&b).map(|(x, y)| (x - y).abs()).sum::<f64>() / 3.0
}

fn procedural() -> SourceImages {
    SourceImages::Procedural(SyntheticConfig::small())
}

#[test]
fn warp_pairs_are_exact() {
    let cfg = WarpConfig { width: 96, height: 72, photometric: PhotometricConfig::none(), ..WarpConfig::default() };
    for seed in 0..4 {
        let pair = warp_pair(&procedural(), &cfg, seed).unwrap();
        let GroundTruth::Homography { a_to_b } = pair.truth.clone() else { panic!("not a homography pair") };
        assert_ne!(a_to_b, Homography::identity(), "seed {seed}");
        let b_to_a = a_to_b.inverse();
        // B's pixel q was rendered as the bilinear sample of the source at H^-1(q); where that lies inside A
        // (valid_b), the source's pixels there are A's, so B(q) is A's bilinear sample rounded to 8 bits:
        // at most half a grey level away.
        let (mut worst, mut valid) = (0.0f64, 0);
        for (i, &v) in pair.valid_b.iter().enumerate() {
            let (x, y) = ((i % 96) as u32, (i / 96) as u32);
            let p = b_to_a.apply(x as f64, y as f64).unwrap();
            let inside_a = p.0 >= 0.0 && p.1 >= 0.0 && p.0 <= 95.0 && p.1 <= 71.0;
            assert_eq!(v, inside_a, "valid_b at ({x}, {y})");
            if v {
                valid += 1;
                let expected = bilinear(&pair.a, p.0, p.1);
                let actual = pair.b.get_pixel(x, y).0.map(|c| c as f64);
                for c in 0..3 {
                    worst = worst.max((expected[c] - actual[c]).abs());
                }
            }
        }
        assert!(worst <= 0.5 + 1e-3, "seed {seed}: B differs from A warped by H by {worst} grey levels");
        assert!(valid as f64 >= (cfg.min_inside - 0.05) * (96.0 * 72.0), "seed {seed}: {valid} valid pixels");

        // Warping B back by H reproduces A within interpolation error; H off by 3 px does not.
        let back_error = |h: &Homography| -> f64 {
            let (mut sum, mut n) = (0.0, 0);
            for y in 0..72 {
                for x in 0..96 {
                    if let Some(q) = h.apply(x as f64, y as f64).filter(|q| {
                        pair.correspond(x as f64, y as f64).is_some()
                            && q.0 >= 0.0
                            && q.1 >= 0.0
                            && q.0 <= 95.0
                            && q.1 <= 71.0
                    }) {
                        sum += colour_distance(bilinear(&pair.b, q.0, q.1), pair.a.get_pixel(x, y).0.map(|c| c as f64));
                        n += 1;
                    }
                }
            }
            sum / n as f64
        };
        let right = back_error(&a_to_b);
        let wrong = back_error(&a_to_b.then(&Homography::translation(3.0, 0.0).unwrap()));
        println!("seed {seed}: mean |A - B(H(p))| = {right:.2} grey levels; with H shifted 3 px: {wrong:.2}");
        assert!(right < 0.5 * wrong, "seed {seed}: {right} vs {wrong}");
    }
}

#[test]
fn warp_pairs_are_deterministic_and_photometry_leaves_geometry() {
    let cfg = WarpConfig { width: 64, height: 48, ..WarpConfig::default() };
    let p1 = warp_pair(&procedural(), &cfg, 7).unwrap();
    assert_eq!(p1, warp_pair(&procedural(), &cfg, 7).unwrap());
    let plain =
        warp_pair(&procedural(), &WarpConfig { photometric: PhotometricConfig::none(), ..cfg.clone() }, 7).unwrap();
    assert_eq!(p1.truth, plain.truth);
    assert_eq!(p1.valid_b, plain.valid_b);
    assert_ne!(p1.b, plain.b, "the photometric change changed nothing");
    assert_ne!(p1, warp_pair(&procedural(), &cfg, 8).unwrap());

    // One rendered source, several homographies: A is the same crop, the ground truths differ.
    let plain_cfg = WarpConfig { photometric: PhotometricConfig::none(), ..cfg.clone() };
    let (sw, sh) = plain_cfg.source_size();
    assert_eq!((sw, sh), (64 + 32, 48 + 32), "a margin of a quarter of the larger side");
    let source = procedural().render(sw, sh, 7).unwrap();
    let (q1, q2) = (warp_source(&source, &plain_cfg, 1).unwrap(), warp_source(&source, &plain_cfg, 2).unwrap());
    assert_eq!(q1.a, q2.a);
    assert_ne!(q1.truth, q2.truth);
    assert_eq!(warp_source(&source, &plain_cfg, 7).unwrap(), plain);
    assert!(warp_source(&RgbImage::new(63, 48), &plain_cfg, 1).is_err());

    // Photos as the source: a folder image through load_texture_folder's type.
    let photo = generate(&SyntheticConfig { width: 120, height: 90, ..SyntheticConfig::small() }, 3).unwrap().frame_a;
    let source =
        SourceImages::Photos(vec![std::sync::Arc::new(corrflow::data::texture::PhotoSource::from_rgb8(&photo))]);
    let pair = warp_pair(&source, &cfg, 1).unwrap();
    assert_eq!(pair.a.dimensions(), (64, 48));
    assert!(pair.valid_b.iter().filter(|&&v| v).count() > 64 * 48 / 2);
    assert!(warp_pair(&SourceImages::Photos(Vec::new()), &cfg, 1).is_err());
}

#[test]
fn sampled_correspondences_follow_the_homography_and_keep_their_distance() {
    let cfg = WarpConfig { width: 128, height: 96, ..WarpConfig::default() };
    let sampling = PointSampling { count: 64, min_distance_px: 6.0, margin_px: 4.0 };
    for seed in 0..3 {
        let pair = warp_pair(&procedural(), &cfg, seed).unwrap();
        let GroundTruth::Homography { a_to_b } = &pair.truth else { panic!() };
        let points = sample_correspondences(&pair, &sampling, seed).unwrap();
        assert_eq!(points, sample_correspondences(&pair, &sampling, seed).unwrap());
        assert_eq!(points.len(), 64, "seed {seed}");
        for (i, p) in points.iter().enumerate() {
            let q = a_to_b.apply(p.a.0, p.a.1).unwrap();
            assert!(distance(q, p.b) < 1e-9, "{p:?}");
            assert!(p.a.0 >= 4.0 && p.a.1 >= 4.0 && p.a.0 <= 123.0 && p.a.1 <= 91.0, "{p:?}");
            assert!(p.b.0 >= 4.0 && p.b.1 >= 4.0 && p.b.0 <= 123.0 && p.b.1 <= 91.0, "{p:?}");
            for o in &points[..i] {
                assert!(distance(o.a, p.a) >= 6.0 && distance(o.b, p.b) >= 6.0, "{o:?} {p:?}");
            }
        }
    }
}

#[test]
fn scene_correspondences_agree_with_the_flow_and_reproduce_colours() {
    let cfg = SyntheticConfig::small();
    let (mut same, mut shuffled, mut n, mut hidden) = (0.0, 0.0, 0, 0);
    for seed in 0..4 {
        let scene = generate(&cfg, seed).unwrap();
        let pair = scene_pair(&cfg, seed).unwrap();
        let (w, h) = (cfg.width, cfg.height);
        // At every pixel, correspond() is p + flow(p) exactly (f32 storage of the flow aside) when the point
        // is visible, and None exactly when B shows another layer there or it leaves the frame.
        for y in 0..h {
            for x in 0..w {
                let (u, v) = scene.flow.get(x, y);
                let q = (x as f64 + u as f64, y as f64 + v as f64);
                match pair.correspond(x as f64, y as f64) {
                    Some(c) => {
                        assert!(distance(c, q) < 1e-3, "({x}, {y}): {c:?} vs {q:?}");
                        let (qx, qy) = (c.0.round() as usize, c.1.round() as usize);
                        assert_eq!(scene.ids_b[qy * w + qx], scene.ids_a[y * w + x]);
                    }
                    None => {
                        hidden += 1;
                        let inside = q.0 >= 0.0 && q.1 >= 0.0 && q.0 <= (w - 1) as f64 && q.1 <= (h - 1) as f64;
                        if inside {
                            // Hidden: some B pixel around q shows another layer.
                            let (x0, y0) = (q.0.floor() as usize, q.1.floor() as usize);
                            let around = [
                                (x0, y0),
                                ((x0 + 1).min(w - 1), y0),
                                (x0, (y0 + 1).min(h - 1)),
                                ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1)),
                            ];
                            let layer = scene.ids_a[y * w + x];
                            assert!(
                                around.iter().any(|&(xx, yy)| scene.ids_b[yy * w + xx] != layer),
                                "({x}, {y}) hidden without reason"
                            );
                        }
                    }
                }
            }
        }
        // Sampled correspondences: the colour of A at p and of B at q (bilinear) agree up to the texture's
        // interpolation error; against the correspondences shifted by one (other scene points) they do not.
        let points =
            sample_correspondences(&pair, &PointSampling { count: 48, ..PointSampling::default() }, seed).unwrap();
        assert!(points.len() >= 24, "seed {seed}: {}", points.len());
        for (i, p) in points.iter().enumerate() {
            let other = &points[(i + 1) % points.len()];
            let colour_a = bilinear(&pair.a, p.a.0, p.a.1);
            same += colour_distance(colour_a, bilinear(&pair.b, p.b.0, p.b.1));
            shuffled += colour_distance(colour_a, bilinear(&pair.b, other.b.0, other.b.1));
            n += 1;
        }
    }
    let (same, shuffled) = (same / n as f64, shuffled / n as f64);
    println!("scene pairs: mean colour difference {same:.2} grey levels at correspondences, {shuffled:.2} shuffled; {hidden} pixels hidden");
    assert!(hidden > 0, "no pixel was occluded or left the frame in 4 scenes");
    assert!(same < 0.25 * shuffled, "{same} vs {shuffled}");
}

// ---------------------------------------------------------------------------------------------------------
// Metrics

fn m(xa: f64, ya: f64, xb: f64, yb: f64) -> Match {
    Match { xa, ya, xb, yb, score: 1.0 }
}

#[test]
fn mma_on_hand_made_matches() {
    // H: translation by (10, 0). Match i pairs (0, i) of A with (10 + e_i, i) of B, so its reprojection
    // error is e_i exactly: e = 0, 1, 1.5, 2.5, 3, 4.9, 9.99, 10, 20.
    let h = Homography::translation(10.0, 0.0).unwrap();
    let errors = [0.0, 1.0, 1.5, 2.5, 3.0, 4.9, 9.99, 10.0, 20.0];
    let matches: Vec<Match> = errors.iter().enumerate().map(|(i, e)| m(0.0, i as f64, 10.0 + e, i as f64)).collect();
    let acc = match_accuracy(&matches, &h, &MMA_THRESHOLDS_PX).unwrap();
    assert_eq!(acc.matches, 9);
    // Errors <= t (D2-Net's test): t = 1: {0, 1}; 2: + 1.5; 3: + 2.5, 3; 5: + 4.9; 10: + 9.99, 10.
    assert_eq!(acc.correct, [2, 3, 5, 6, 8]);
    assert_eq!(acc.mma_at(3.0), Some(5.0 / 9.0));
    assert_eq!(acc.mma(4), 8.0 / 9.0);
    assert_eq!(acc.mma_at(4.0), None);

    // A projective H: points with 0.01 x + 1 = 0 (x = -100) go to infinity, an infinite error.
    let p = Homography::new([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.01, 0.0, 1.0]]).unwrap();
    // (100, 0) -> (100 / 2, 0) = (50, 0): matched to (50.5, 0), error 0.5.
    let acc = match_accuracy(&[m(-100.0, 0.0, 0.0, 0.0), m(100.0, 0.0, 50.5, 0.0)], &p, &[1.0]).unwrap();
    assert_eq!((acc.matches, acc.correct[0]), (2, 1));

    // No match: 0 at every threshold (D2-Net), not NaN.
    let none = match_accuracy(&[], &h, &MMA_THRESHOLDS_PX).unwrap();
    assert_eq!((none.matches, none.mma(0), none.mma(4)), (0, 0.0, 0.0));
    assert!(match_accuracy(&[m(f64::NAN, 0.0, 0.0, 0.0)], &h, &[1.0]).is_err());
    assert!(match_accuracy(&matches, &h, &[-1.0]).is_err());
}

#[test]
fn recall_at_k_on_hand_made_descriptors() {
    // Gallery (dimension 2): g0 = (1, 0), g1 = (0, 1), g2 = (-1, 0), g3 = (0, -1), g4 = (0.5, 1), and g5 = 0
    // (a flat patch: never retrieved).
    let gallery =
        Descriptors::new(2, vec![(0.0, 0.0); 6], vec![1.0, 0.0, 0.0, 1.0, -1.0, 0.0, 0.0, -1.0, 0.5, 1.0, 0.0, 0.0])
            .unwrap();
    // q0 = (0.9, 0.1), truth g0: |q0 - g0| = 0.14, next g4 at 0.98: rank 0.
    // q1 = (0.5, 0.9), truth g1: g4 is nearer (0.1) than g1 (0.51): rank 1.
    // q2 = (-0.5, -0.5), truth g2: g3 is exactly as near (squared distances 0.5 and 0.5; g5 too, but it is
    //     no descriptor); ties count against the query: rank 1.
    // q3 = 0 (a flat patch), truth g1: a miss at every K.
    // q4 has no true correspondent: dropped.
    // q5 = (-0.2, 0.5), truth g1 at sqrt(0.29) = 0.54; g5 at |q5|, the same distance, is no descriptor, and
    //     the next, g4, is at 0.86: rank 0.
    let queries =
        Descriptors::new(2, vec![(0.0, 0.0); 6], vec![0.9, 0.1, 0.5, 0.9, -0.5, -0.5, 0.0, 0.0, 1.0, 1.0, -0.2, 0.5])
            .unwrap();
    let truth = [Some(0), Some(1), Some(2), Some(1), None, Some(1)];
    let r = recall_at_k(&queries, &gallery, &truth, &RECALL_KS).unwrap();
    assert_eq!((r.queries, r.dropped), (5, 1));
    // K = 1: q0, q5; K = 2, 4, 8: q0, q1, q2, q5.
    assert_eq!(r.hits, [2, 4, 4, 4]);
    assert_eq!(r.recall_at(1), Some(2.0 / 5.0));
    assert_eq!(r.recall_at(4), Some(4.0 / 5.0));

    assert!(recall_at_k(&queries, &gallery, &[None; 6], &RECALL_KS).is_err(), "no query scored");
    assert!(recall_at_k(&queries, &gallery, &[Some(6), None, None, None, None, None], &RECALL_KS).is_err());
    assert!(recall_at_k(&queries, &gallery, &truth, &[0]).is_err());
    assert!(recall_at_k(&queries, &gallery, &truth[..3], &[1]).is_err());
}

#[test]
fn true_correspondents_from_a_homography() {
    let gallery = [(0.0, 0.0), (4.0, 0.0), (8.0, 0.0), (100.0, 100.0)];
    let h = Homography::translation(3.0, 0.5).unwrap();
    // (0, 0) -> (3, 0.5): nearest (4, 0) at 1.118.
    // (3, 0) -> (6, 0.5): (4, 0) and (8, 0) both at sqrt(4.25) = 2.06: beyond radius 2, the lower index
    //     within radius 3.
    // (50, 50) -> (53, 50.5): nothing near.
    let queries = [(0.0, 0.0), (3.0, 0.0), (50.0, 50.0)];
    assert_eq!(true_correspondents(&queries, &gallery, &h, 2.0).unwrap(), [Some(1), None, None]);
    assert_eq!(true_correspondents(&queries, &gallery, &h, 3.0).unwrap(), [Some(1), Some(1), None]);
    assert!(true_correspondents(&queries, &gallery, &h, 0.0).is_err());
}

// ---------------------------------------------------------------------------------------------------------
// Raw descriptor and CPU matcher

#[test]
fn raw_descriptor_grid_and_invariance() {
    // Stride 4 on 10 x 9: columns at 1.5, 5.5 (10 / 4 = 2 cells), rows at 1.5, 5.5.
    assert_eq!(grid_points(10, 9, 4), [(1.5, 1.5), (5.5, 1.5), (1.5, 5.5), (5.5, 5.5)]);
    // Narrower than the stride: one point at the centre.
    assert_eq!(grid_points(3, 1, 4), [(1.0, 0.0)]);
    assert!(grid_points(0, 5, 4).is_empty());

    let mut rng = corrflow::data::Rng::new(4);
    let img = RgbImage::from_fn(40, 30, |_, _| Rgb([0, 1, 2].map(|_| (rng.next_u64() % 200) as u8)));
    let cfg = RawPatchConfig::default();
    let d = raw_patch_descriptors(&img, &cfg).unwrap();
    assert_eq!((d.dim, d.len()), (64, 10 * 7));
    for i in 0..d.len() {
        let norm: f32 = d.row(i).iter().map(|v| v * v).sum();
        assert!((norm - 1.0).abs() < 1e-5, "descriptor {i}: |d|^2 = {norm}");
    }
    // An affine change of intensity (v -> 0.5 v + 20, exact in 8 bits for even v) leaves the
    // mean-subtracted, normalised patch unchanged.
    let darker = RgbImage::from_fn(40, 30, |x, y| {
        let p = img.get_pixel(x, y).0;
        Rgb(p.map(|v| (v / 2 * 2) / 2 + 20))
    });
    let even = RgbImage::from_fn(40, 30, |x, y| Rgb(img.get_pixel(x, y).0.map(|v| v / 2 * 2)));
    let (de, dd) = (raw_patch_descriptors(&even, &cfg).unwrap(), raw_patch_descriptors(&darker, &cfg).unwrap());
    let worst = de.data.iter().zip(&dd.data).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(worst < 1e-4, "{worst}");
    // A flat image: every descriptor is the zero vector.
    let flat = raw_patch_descriptors(&RgbImage::from_pixel(20, 20, Rgb([90, 90, 90])), &cfg).unwrap();
    assert!(flat.data.iter().all(|&v| v == 0.0));
    assert!(raw_patch_descriptors(&img, &RawPatchConfig { stride: 0, ..cfg.clone() }).is_err());
    assert!(raw_patch_descriptors(&img, &RawPatchConfig { patch: 1, ..cfg.clone() }).is_err());
    assert!(raw_patch_descriptors_at(&img, &[(f64::NAN, 1.0)], &cfg).is_err());
}

#[test]
fn cpu_matcher_on_hand_made_descriptors() {
    // A: a0 = (1, 0), a1 = (0, 1), a2 = (0, -1), a3 = (0, 0) (a flat patch: takes no part).
    // B: b0 = (0, 1), b1 = (1, 0), b2 = (0.8, 0.6).
    // a0: b1 at 0, b2 at sqrt(0.4) = 0.63: ratio 0, and b1's nearest in A is a0: match, score 1.
    // a1: b0 at 0, b2 at sqrt(0.8) = 0.89: match (mutual: b0's nearest is a1), score 1.
    // a2: b1 at sqrt(2) = 1.414, b2 at sqrt(3.2) = 1.789, b0 at 2: ratio sqrt(2 / 3.2) = 0.7906 < 0.8, but
    //     b1's nearest is a0: not mutual. Without the mutual check it matches b1 with score 1 - 0.7906.
    let a = Descriptors::new(
        2,
        vec![(0.0, 0.0), (1.0, 0.0), (2.0, 0.0), (3.0, 0.0)],
        vec![1.0, 0.0, 0.0, 1.0, 0.0, -1.0, 0.0, 0.0],
    )
    .unwrap();
    let b =
        Descriptors::new(2, vec![(10.0, 0.0), (11.0, 0.0), (12.0, 0.0)], vec![0.0, 1.0, 1.0, 0.0, 0.8, 0.6]).unwrap();
    let found = match_descriptors(&a, &b, &MatcherConfig::default()).unwrap();
    assert_eq!(found, [m(0.0, 0.0, 11.0, 0.0), m(1.0, 0.0, 10.0, 0.0)]);
    let one_way = match_descriptors(&a, &b, &MatcherConfig { mutual: false, ratio: Some(0.8) }).unwrap();
    assert_eq!(one_way.len(), 3);
    assert_eq!((one_way[2].xa, one_way[2].xb), (2.0, 11.0));
    assert!((one_way[2].score - (1.0 - (2.0f64 / 3.2).sqrt())).abs() < 1e-6, "{}", one_way[2].score);
    // Ratio 0.75 rejects a2's match (0.7906 >= 0.75).
    assert_eq!(match_descriptors(&a, &b, &MatcherConfig { mutual: false, ratio: Some(0.75) }).unwrap().len(), 2);
    // Degenerate inputs: no descriptors, other dimensions, a bad ratio.
    let empty = Descriptors::new(2, Vec::new(), Vec::new()).unwrap();
    assert!(match_descriptors(&empty, &b, &MatcherConfig::default()).unwrap().is_empty());
    let three = Descriptors::new(3, vec![(0.0, 0.0)], vec![1.0, 0.0, 0.0]).unwrap();
    assert!(match_descriptors(&three, &b, &MatcherConfig::default()).is_err());
    assert!(match_descriptors(&a, &b, &MatcherConfig { mutual: true, ratio: Some(1.5) }).is_err());
}

#[test]
fn cpu_matcher_agrees_with_a_plain_f64_search() {
    // Random unit descriptors, several tiles and threads' worth; the reference is the definition itself in
    // f64. Rows whose f64 ratio lies within 1e-4 of the threshold could flip in f32 and are not compared.
    let mut rng = corrflow::data::Rng::new(99);
    let unit = |n: usize, rng: &mut corrflow::data::Rng| -> Descriptors {
        let mut data = Vec::new();
        for _ in 0..n {
            let v: Vec<f32> = (0..16).map(|_| rng.uniform()).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            data.extend(v.iter().map(|x| x / norm));
        }
        Descriptors::new(16, (0..n).map(|i| (i as f64, 0.0)).collect(), data).unwrap()
    };
    let (a, b) = (unit(700, &mut rng), unit(650, &mut rng));
    let d = |i: usize, j: usize| -> f64 {
        a.row(i).iter().zip(b.row(j)).map(|(&x, &y)| (x as f64 - y as f64).powi(2)).sum::<f64>().sqrt()
    };
    let found = match_descriptors(&a, &b, &MatcherConfig::default()).unwrap();
    let mut expected = Vec::new();
    let mut unsure = Vec::new();
    for i in 0..a.len() {
        let mut order: Vec<(f64, usize)> = (0..b.len()).map(|j| (d(i, j), j)).collect();
        order.sort_by(|x, y| x.0.total_cmp(&y.0));
        let (d1, j) = order[0];
        let d2 = order[1].0;
        let back = (0..a.len()).map(|k| (d(k, j), k)).min_by(|x, y| x.0.total_cmp(&y.0)).unwrap().1;
        if ((d1 / d2) - 0.8).abs() < 1e-4 {
            unsure.push(i as f64);
        } else if back == i && d1 < 0.8 * d2 {
            expected.push((i as f64, j as f64));
        }
    }
    let got: Vec<(f64, f64)> = found.iter().map(|m| (m.xa, m.xb)).filter(|p| !unsure.contains(&p.0)).collect();
    assert!(expected.len() > 5, "only {} reference matches", expected.len());
    assert_eq!(got, expected);
}

/// Recall@K of raw patches: queries at every 4th point of A's stride-4 grid each way (16 px apart, on the
/// grid the descriptors live on), the gallery all of B's stride-4 descriptors, the true correspondent the
/// gallery point within 3 px of H(query) (a stride-4 grid has one within 2 sqrt 2 px of any inner point).
fn raw_recall(a: &RgbImage, b: &RgbImage, a_to_b: &Homography) -> corrflow::matching::RecallAtK {
    let cfg = RawPatchConfig::default();
    let cols = (a.width() as usize / 4).max(1);
    let points: Vec<(f64, f64)> = grid_points(a.width(), a.height(), 4)
        .into_iter()
        .enumerate()
        .filter(|(i, _)| (i % cols).is_multiple_of(4) && (i / cols).is_multiple_of(4))
        .map(|(_, p)| p)
        .collect();
    let queries = raw_patch_descriptors_at(a, &points, &cfg).unwrap();
    let gallery = raw_patch_descriptors(b, &cfg).unwrap();
    let truth = true_correspondents(&queries.points, &gallery.points, a_to_b, 3.0).unwrap();
    recall_at_k(&queries, &gallery, &truth, &RECALL_KS).unwrap()
}

#[test]
fn raw_descriptor_recall_on_held_out_pairs() {
    // Synthetic warp pairs (the training distribution, seeds not used elsewhere) and, when present, the real
    // CMP city pair. Printed as the baseline; asserted only against chance (1 / gallery size, < 0.001 here).
    let cfg = WarpConfig { width: 160, height: 128, ..WarpConfig::default() };
    let mut sums = [0.0; 4];
    for seed in 1000..1004 {
        let pair = warp_pair(&procedural(), &cfg, seed).unwrap();
        let GroundTruth::Homography { a_to_b } = &pair.truth else { panic!() };
        let r = raw_recall(&pair.a, &pair.b, a_to_b);
        for (s, i) in sums.iter_mut().zip(0..) {
            *s += r.recall(i) / 4.0;
        }
    }
    println!(
        "raw patches on 4 synthetic warp pairs: Recall@1/2/4/8 = {:.3} / {:.3} / {:.3} / {:.3}",
        sums[0], sums[1], sums[2], sums[3]
    );
    assert!(sums[0] > 0.02 && sums[3] >= sums[0], "{sums:?}");
    let Some(dir) = shared_data("cmp_homogr") else { return };
    let a = corrflow::io::read_frame(dir.join("cityA.png")).unwrap().to_rgb8();
    let b = corrflow::io::read_frame(dir.join("cityB.png")).unwrap().to_rgb8();
    let r = raw_recall(&a, &b, &read_cmp_model(dir.join("city_model.txt")).unwrap());
    println!(
        "raw patches on CMP city: {} queries ({} dropped), Recall@1/2/4/8 = {:.3} / {:.3} / {:.3} / {:.3}",
        r.queries,
        r.dropped,
        r.recall(0),
        r.recall(1),
        r.recall(2),
        r.recall(3)
    );
    assert!(r.recall(0) > 0.02, "{r:?}");
}

#[test]
fn raw_baseline_on_a_real_cmp_pair() {
    // The baseline number the trained descriptor must beat (issue 12's target), printed, not tuned.
    let Some(dir) = shared_data("cmp_homogr") else { return };
    let pairs = find_homography_pairs(&dir).unwrap();
    let city = pairs.pairs.iter().find(|p| p.name == "city").unwrap();
    let a = corrflow::io::read_frame(&city.image_a).unwrap().to_rgb8();
    let b = corrflow::io::read_frame(&city.image_b).unwrap().to_rgb8();
    let matches = raw_matches(&a, &b, &RawPatchConfig::default(), &MatcherConfig::default(), None).unwrap();
    let acc = match_accuracy(&matches, &city.a_to_b, &MMA_THRESHOLDS_PX).unwrap();
    println!(
        "raw baseline on CMP city ({}x{}, stride 4, mutual NN + ratio 0.8): {} matches, MMA@1 {:.3}, @2 {:.3}, \
         @3 {:.3}, @5 {:.3}, @10 {:.3}",
        a.width(),
        a.height(),
        acc.matches,
        acc.mma(0),
        acc.mma(1),
        acc.mma(2),
        acc.mma(3),
        acc.mma(4)
    );
    // A random match lands within 3 px of the truth with probability about pi 3^2 / (329 * 278) < 0.001.
    assert!(acc.matches >= 50, "{} matches", acc.matches);
    // Measured when written: 752 matches, MMA@3 0.836 (city is a near-identity pair, so the two grids align).
    assert!(acc.mma(2) > 0.5, "MMA@3 = {}", acc.mma(2));
}

// ---------------------------------------------------------------------------------------------------------
// Match files and pictures

#[test]
fn matches_csv_round_trip() {
    let dir = scratch_dir("csv");
    let matches = vec![
        Match { xa: 1.5, ya: 2.25, xb: 300.125, yb: 0.0, score: 0.875 },
        Match { xa: 0.1 + 0.2, ya: 1e-7, xb: 12345.678901234, yb: 7.0, score: -1.0 },
    ];
    let path = dir.join("m.csv");
    write_matches_csv(&path, &matches).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("x_a,y_a,x_b,y_b,score\n1.5,2.25,300.125,0,0.875\n"), "{text}");
    assert_eq!(read_matches_csv(&path).unwrap(), matches);
    // Zero matches: the header alone.
    assert_eq!(encode_matches_csv(&[]).unwrap(), "x_a,y_a,x_b,y_b,score\n");
    assert!(parse_matches_csv("x_a,y_a,x_b,y_b,score\n", &path).unwrap().is_empty());
    assert!(encode_matches_csv(&[Match { score: f64::NAN, ..matches[0] }]).is_err());
    assert!(parse_matches_csv("x,y\n1,2\n", &path).is_err());
    let err = parse_matches_csv("x_a,y_a,x_b,y_b,score\n1,2,3,4\n", &path).unwrap_err().to_string();
    assert!(err.contains("line 2") && err.contains("m.csv"), "{err}");
}

#[test]
fn match_picture_colours_by_correctness() {
    let a = RgbImage::from_pixel(20, 10, Rgb([0, 0, 0]));
    let b = RgbImage::from_pixel(15, 12, Rgb([0, 0, 0]));
    let h = Homography::identity();
    // Horizontal lines: (2, 3) -> (2, 3) is correct (error 0), (2, 7) -> (9, 7) is not (error 7); the last,
    // (5, 0) -> (5, 11) (error 11), crosses the correct line, which is drawn on top however listed.
    let matches = [m(2.0, 3.0, 2.0, 3.0), m(2.0, 7.0, 9.0, 7.0), m(5.0, 0.0, 5.0, 11.0)];
    let pic = draw_matches(&a, &b, &matches, Some((&h, 3.0))).unwrap();
    assert_eq!(pic.dimensions(), (35, 12));
    for x in 2..=22 {
        assert_eq!(pic.get_pixel(x, 3).0, corrflow::matching::draw::CORRECT, "({x}, 3)");
    }
    assert_eq!(pic.get_pixel(5, 0).0, corrflow::matching::draw::INCORRECT);
    assert_eq!(pic.get_pixel(20 + 9, 7).0, corrflow::matching::draw::INCORRECT);
    assert_eq!(pic.get_pixel(10, 5).0, [0, 0, 0]);
    // Without ground truth, no panic on empty images, absurd or non-finite coordinates.
    let none = draw_matches(&RgbImage::new(0, 0), &RgbImage::new(0, 0), &[m(f64::NAN, 1e300, 0.0, 0.0)], None).unwrap();
    assert_eq!(none.dimensions(), (0, 0));
}

// ---------------------------------------------------------------------------------------------------------
// Degenerate inputs

#[test]
fn degenerate_inputs_are_errors_not_panics() {
    // Singular and non-finite homographies.
    assert!(Homography::new([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [1.0, 2.0, 3.0]])
        .unwrap_err()
        .to_string()
        .contains("singular"));
    assert!(Homography::new([[f64::INFINITY, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]).is_err());
    assert!(Homography::from_4_points([(0.0, 0.0); 4], [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]).is_err());

    // Empty images: errors; tiny ones: results.
    let empty = RgbImage::new(0, 0);
    assert!(raw_patch_descriptors(&empty, &RawPatchConfig::default()).is_err());
    let tiny = RgbImage::from_pixel(1, 1, Rgb([5, 6, 7]));
    let d = raw_patch_descriptors(&tiny, &RawPatchConfig::default()).unwrap();
    assert_eq!(d.len(), 1);
    assert!(raw_matches(&tiny, &tiny, &RawPatchConfig::default(), &MatcherConfig::default(), Some(1))
        .unwrap()
        .is_empty());

    // Warp pairs of any size, including 1 x 1; size 0 is an error.
    assert!(warp_pair(&procedural(), &WarpConfig { width: 0, ..WarpConfig::default() }, 0).is_err());
    for (w, h) in [(1, 1), (2, 1), (1, 7), (5, 3)] {
        let pair = warp_pair(&procedural(), &WarpConfig { width: w, height: h, ..WarpConfig::default() }, 1).unwrap();
        assert_eq!(pair.b.dimensions(), (w as u32, h as u32));
        let points = sample_correspondences(&pair, &PointSampling::default(), 1).unwrap();
        assert!(points.len() <= w * h);
    }
    assert!(warp_pair(&procedural(), &WarpConfig { max_perspective: 1.0, ..WarpConfig::default() }, 0).is_err());
    assert!(warp_pair(&procedural(), &WarpConfig { scale_range: (2.0, 1.0), ..WarpConfig::default() }, 0).is_err());

    // A pair built by hand around empty images: no correspondences, no panic.
    let hand = CorrespondencePair::from_homography(empty.clone(), empty.clone(), Homography::identity());
    assert_eq!(hand.correspond(0.0, 0.0), None);
    assert!(sample_correspondences(&hand, &PointSampling::default(), 0).unwrap().is_empty());
    assert!(sample_correspondences(&hand, &PointSampling { min_distance_px: f64::NAN, ..PointSampling::default() }, 0)
        .is_err());
    // A scene pair whose ids do not fit its frames.
    let mut scene = generate(&SyntheticConfig::small(), 0).unwrap();
    scene.ids_b.pop();
    assert!(CorrespondencePair::from_scene(scene).is_err());
}

#[test]
fn match_picture_draws_at_most_max_lines_and_marks_every_point() {
    use corrflow::matching::draw::MAX_LINES;
    let a = RgbImage::from_pixel(400, 400, Rgb([0, 0, 0]));
    let b = RgbImage::from_pixel(400, 400, Rgb([0, 0, 0]));
    // 400 horizontal matches, one per row, from (10, y) in A to (390, y) in B: every third gets a line.
    let matches: Vec<Match> = (0..400).map(|y| m(10.0, y as f64, 390.0, y as f64)).collect();
    let pic = draw_matches(&a, &b, &matches, None).unwrap();
    let stride = 400usize.div_ceil(MAX_LINES);
    assert_eq!(stride, 3);
    let drawn = (0..400u32).filter(|&y| pic.get_pixel(400, y).0 != [0, 0, 0]).count();
    // At the seam between the images (x = 400, far from every end mark) only the drawn lines show.
    assert_eq!(drawn, 400usize.div_ceil(stride), "lines drawn at the seam");
    for y in 0..400u32 {
        assert_ne!(pic.get_pixel(10, y).0, [0, 0, 0], "point of match {y} in A not marked");
        assert_ne!(pic.get_pixel(400 + 390, y).0, [0, 0, 0], "point of match {y} in B not marked");
    }
}
