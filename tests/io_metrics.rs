//! CPU tests of the flow container, the .flo and KITTI readers/writers, the Middlebury colour coding and the
//! error metrics. Expected values are derived in the test from the format or paper definitions, each stated
//! beside it; real-data checks read ../shared/data and skip (saying so) when it is absent.

mod common;

use common::{entries, TempDir};

use corrflow::io::{decode_flo, decode_kitti_flow, encode_flo, encode_kitti_flow, write_atomic};
use corrflow::io::{read_flo, read_kitti_flow, write_flo, write_kitti_flow};
use corrflow::metrics::{angular_error, epe, evaluate, fl_all};
use corrflow::viz::{color_wheel_legend, encode_flow_png, flow_to_rgb, write_flow_png};
use corrflow::{Error, Flow};
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------------------------------------
// helpers

/// xorshift64*: deterministic pseudo-random values without a dependency.
struct Rng(u64);

impl Rng {
    fn next_f32(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40; // 24 random bits
        bits as f32 / (1u64 << 24) as f32
    }
    /// Uniform in [lo, hi).
    fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.next_f32()
    }
}

fn random_flow(width: usize, height: usize, range: f32, seed: u64) -> Flow {
    let mut rng = Rng(seed);
    let data = (0..2 * width * height).map(|_| rng.uniform(-range, range)).collect();
    Flow::from_interleaved(width, height, data).expect("length is 2*w*h by construction")
}

/// Asserts `result` failed and its message contains every word of `needles` (case-insensitive).
fn assert_err_mentions<T: std::fmt::Debug>(result: corrflow::Result<T>, needles: &[&str]) -> Error {
    let err = result.expect_err("expected an error");
    let message = err.to_string().to_lowercase();
    for needle in needles {
        assert!(message.contains(&needle.to_lowercase()), "error `{err}` does not mention `{needle}`");
    }
    err
}

fn shared_data(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data").join(relative)
}

// ---------------------------------------------------------------------------------------------------------
// Flow container

#[test]
fn planes_round_trip_and_layout() {
    // [2, H, W] planar input: u plane 0..6, v plane 100..106, for a 3x2 field.
    let planes: Vec<f32> = (0..6).map(|i| i as f32).chain((0..6).map(|i| 100.0 + i as f32)).collect();
    let flow = Flow::from_planes(3, 2, &planes).unwrap();
    // Pixel (x=2, y=1) is plane index 1*3 + 2 = 5.
    assert_eq!(flow.get(2, 1), (5.0, 105.0));
    assert_eq!(&flow.data[..4], &[0.0, 100.0, 1.0, 101.0]);
    assert_eq!(flow.to_planes(), planes);
}

#[test]
fn constructors_reject_wrong_lengths() {
    assert_err_mentions(Flow::from_interleaved(3, 2, vec![0.0; 11]), &["12", "11"]);
    assert_err_mentions(Flow::from_planes(3, 2, &[0.0; 13]), &["12", "13"]);
}

#[test]
fn get_set_and_max_magnitude() {
    let mut flow = Flow::zeros(4, 3);
    flow.set(1, 2, 3.0, -4.0);
    flow.set(3, 0, 1e10, 0.0); // unknown: ignored by max_magnitude
    flow.set(0, 0, 0.5, 0.0);
    assert_eq!(flow.get(1, 2), (3.0, -4.0));
    assert_eq!(flow.max_magnitude(None), 5.0);
    let mut mask = vec![true; 12];
    mask[2 * 4 + 1] = false; // exclude (1, 2)
    assert_eq!(flow.max_magnitude(Some(&mask)), 0.5);
    assert_eq!(Flow::zeros(2, 2).max_magnitude(None), 0.0);
}

#[test]
fn unknown_values_are_invalid() {
    // Middlebury: components with |value| > 1e9 are unknown; NaN and infinities are never valid.
    let data = vec![
        1e10,
        0.0, // unknown u
        0.0,
        -2e9, // unknown v
        f32::NAN,
        0.0, // NaN
        f32::INFINITY,
        1.0, // inf
        1e9,
        -1e9, // exactly at the threshold: still valid
        -3.5,
        7.25, // ordinary
    ];
    let flow = Flow::from_interleaved(6, 1, data).unwrap();
    assert_eq!(flow.valid_mask(), vec![false, false, false, false, true, true]);
}

// ---------------------------------------------------------------------------------------------------------
// Middlebury .flo

#[test]
fn flo_round_trip_odd_sizes() {
    let dir = TempDir::new("flo-round-trip");
    for (i, &(w, h)) in [(7usize, 5usize), (1, 1), (13, 1), (1, 9)].iter().enumerate() {
        let mut flow = random_flow(w, h, 300.0, 0x9E37_79B9 + i as u64);
        flow.data[0] = 1e10; // an unknown value survives bit for bit
        let path = dir.join(format!("f{w}x{h}.flo"));
        write_flo(&path, &flow).unwrap();
        let back = read_flo(&path).unwrap();
        assert_eq!((back.width, back.height), (w, h));
        let bits = |f: &Flow| f.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back), bits(&flow), "{w}x{h} flow changed in a round trip");
        assert!(flow.data.iter().any(|&v| v < 0.0), "test data must include negatives");
    }
}

#[test]
fn flo_header_is_byte_exact() {
    let mut flow = Flow::zeros(3, 2);
    flow.set(0, 0, 1.5, -2.0);
    let bytes = encode_flo(&flow);
    assert_eq!(&bytes[0..4], b"PIEH");
    assert_eq!(&bytes[0..4], &202021.25f32.to_le_bytes());
    assert_eq!(&bytes[4..8], &[3, 0, 0, 0]); // width, i32 LE
    assert_eq!(&bytes[8..12], &[2, 0, 0, 0]); // height, i32 LE
    assert_eq!(bytes.len(), 12 + 3 * 2 * 2 * 4);
    assert_eq!(&bytes[12..16], &1.5f32.to_le_bytes());
    assert_eq!(&bytes[16..20], &(-2.0f32).to_le_bytes());
}

#[test]
fn flo_rejects_truncated_and_trailing() {
    let good = encode_flo(&random_flow(7, 5, 10.0, 1));
    let path = Path::new("cut.flo");
    assert_err_mentions(decode_flo(&good[..good.len() - 1], path), &["cut.flo", "truncated", "7x5"]);
    assert_err_mentions(decode_flo(&good[..7], path), &["truncated", "header"]);
    assert_err_mentions(decode_flo(&[], path), &["truncated"]);
    let mut long = good.clone();
    long.push(0);
    assert_err_mentions(decode_flo(&long, path), &["trailing"]);
    assert!(decode_flo(&good, path).is_ok());
}

#[test]
fn flo_rejects_bad_tag() {
    let mut bytes = encode_flo(&Flow::zeros(2, 2));
    bytes[0..4].copy_from_slice(b"HEIP");
    let err = assert_err_mentions(decode_flo(&bytes, Path::new("x.flo")), &["x.flo", "tag", "PIEH"]);
    assert!(matches!(err, Error::Format { .. }));
}

#[test]
fn flo_rejects_absurd_dimensions() {
    let with_dims = |w: i32, h: i32| {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&202021.25f32.to_le_bytes());
        bytes.extend_from_slice(&w.to_le_bytes());
        bytes.extend_from_slice(&h.to_le_bytes());
        bytes.extend_from_slice(&[0u8; 64]);
        bytes
    };
    let p = Path::new("dims.flo");
    assert_err_mentions(decode_flo(&with_dims(0, 4), p), &["width", "0"]);
    assert_err_mentions(decode_flo(&with_dims(-3, 4), p), &["width", "-3"]);
    assert_err_mentions(decode_flo(&with_dims(200_000, 4), p), &["width", "200000"]);
    assert_err_mentions(decode_flo(&with_dims(4, -1), p), &["height", "-1"]);
    assert_err_mentions(decode_flo(&with_dims(4, i32::MAX), p), &["height"]);
    // Sane dimensions but the payload (64 bytes) does not match 8 * 100 * 100.
    assert_err_mentions(decode_flo(&with_dims(100, 100), p), &["truncated", "100x100"]);
}

#[test]
fn flo_missing_file_names_path() {
    let err = assert_err_mentions(read_flo("/nonexistent/dir/missing.flo"), &["missing.flo"]);
    assert!(matches!(err, Error::Io { .. }));
}

#[test]
fn atomic_write_leaves_no_temp_file() {
    let dir = TempDir::new("atomic");
    let path = dir.join("out.flo");
    write_flo(&path, &random_flow(4, 3, 5.0, 2)).unwrap();
    let second = random_flow(4, 3, 5.0, 3);
    write_flo(&path, &second).unwrap(); // overwrite
    assert_eq!(read_flo(&path).unwrap(), second);
    assert_eq!(entries(&dir), vec!["out.flo".to_string()]);

    // Renaming over a non-empty directory fails: the error must name the path and the temp must be gone.
    let blocker = dir.join("blocked.flo");
    std::fs::create_dir(&blocker).unwrap();
    std::fs::write(blocker.join("keep"), b"x").unwrap();
    assert_err_mentions(write_atomic(&blocker, b"data"), &["blocked.flo"]);
    assert_eq!(entries(&dir), vec!["blocked.flo".to_string(), "out.flo".to_string()]);

    // A destination in a missing directory fails cleanly too.
    assert!(write_atomic(&dir.join("no/such/dir.flo"), b"data").is_err());
    assert_eq!(entries(&dir).len(), 2);
}

#[test]
fn write_flo_rejects_inconsistent_flow() {
    let dir = TempDir::new("inconsistent");
    let bad = Flow { width: 3, height: 3, data: vec![0.0; 5] };
    assert!(matches!(write_flo(dir.join("bad.flo"), &bad), Err(Error::Mismatch { .. })));
    assert_err_mentions(write_flo(dir.join("empty.flo"), &Flow::zeros(0, 4)), &["0x4"]);
    assert!(entries(&dir).is_empty());
}

// ---------------------------------------------------------------------------------------------------------
// KITTI 16-bit PNG

#[test]
fn kitti_round_trip_with_mask() {
    let (w, h) = (9, 6);
    let flow = random_flow(w, h, 200.0, 42);
    let mask: Vec<bool> = (0..w * h).map(|i| i % 3 != 1).collect();
    let dir = TempDir::new("kitti");
    let path = dir.join("flow.png");
    write_kitti_flow(&path, &flow, Some(&mask)).unwrap();
    assert_eq!(entries(&dir), vec!["flow.png".to_string()]);
    let (back, valid) = read_kitti_flow(&path).unwrap();
    assert_eq!((back.width, back.height), (w, h));
    assert_eq!(valid, mask);
    assert_eq!(back.valid_mask(), mask, "invalid KITTI pixels must read as unknown flow");
    // Values are stored as round(64 * value) + 2^15, so the error is at most half a step: 1/128 px.
    for (i, (p, q)) in flow.data.chunks_exact(2).zip(back.data.chunks_exact(2)).enumerate() {
        if mask[i] {
            assert!(
                (p[0] - q[0]).abs() <= 1.0 / 128.0 && (p[1] - q[1]).abs() <= 1.0 / 128.0,
                "pixel {i}: {p:?} vs {q:?}"
            );
        }
    }
}

#[test]
fn kitti_quantisation_and_clamping() {
    // 1000 px is past the 16-bit range: clamps to (65535 - 32768) / 64 = 511.984375; -1000 to -512.
    // 0.01 px rounds to 1/64 (0.64 steps -> 1). NaN flow is written as invalid even without a mask.
    let flow = Flow::from_interleaved(3, 1, vec![1000.0, -1000.0, 0.01, -0.25, f32::NAN, 0.0]).unwrap();
    let (back, valid) = decode_kitti_flow(&encode_kitti_flow(&flow, None).unwrap(), Path::new("m.png")).unwrap();
    assert_eq!(valid, vec![true, true, false]);
    assert_eq!(back.get(0, 0), ((65535.0 - 32768.0) / 64.0, -512.0));
    assert_eq!(back.get(1, 0), (1.0 / 64.0, -0.25));
}

#[test]
fn kitti_rejects_wrong_mask_length() {
    let flow = Flow::zeros(2, 2);
    assert!(matches!(encode_kitti_flow(&flow, Some(&[true; 3])), Err(Error::Mismatch { .. })));
}

#[test]
fn kitti_rejects_non_16bit_png() {
    let mut rgb8 = Vec::new();
    image::DynamicImage::ImageRgb8(image::RgbImage::new(4, 3))
        .write_to(&mut std::io::Cursor::new(&mut rgb8), image::ImageFormat::Png)
        .unwrap();
    assert_err_mentions(decode_kitti_flow(&rgb8, Path::new("eight.png")), &["eight.png", "16-bit RGB"]);

    let mut gray16 = Vec::new();
    image::DynamicImage::ImageLuma16(image::ImageBuffer::new(4, 3))
        .write_to(&mut std::io::Cursor::new(&mut gray16), image::ImageFormat::Png)
        .unwrap();
    assert_err_mentions(decode_kitti_flow(&gray16, Path::new("gray.png")), &["16-bit RGB", "greyscale"]);

    let err = assert_err_mentions(decode_kitti_flow(b"not a png", Path::new("junk.png")), &["junk.png"]);
    assert!(matches!(err, Error::Image { .. }));
}

// ---------------------------------------------------------------------------------------------------------
// Middlebury colour wheel

/// The wheel, written out from the segment table of Baker et al. (`makecolorwheel`): segment lengths
/// RY=15, YG=6, GC=4, CB=11, BM=13, MR=6, ramps are floor(255 * i / n).
fn reference_wheel() -> Vec<[u8; 3]> {
    let ramp = |i: usize, n: usize| (255 * i / n) as u8;
    let mut wheel = Vec::new();
    wheel.extend((0..15).map(|i| [255, ramp(i, 15), 0]));
    wheel.extend((0..6).map(|i| [255 - ramp(i, 6), 255, 0]));
    wheel.extend((0..4).map(|i| [0, 255, ramp(i, 4)]));
    wheel.extend((0..11).map(|i| [0, 255 - ramp(i, 11), 255]));
    wheel.extend((0..13).map(|i| [ramp(i, 13), 0, 255]));
    wheel.extend((0..6).map(|i| [255, 0, 255 - ramp(i, 6)]));
    wheel
}

/// `fk = (atan2(-v, -u) / pi + 1) / 2 * (ncols - 1)` from `computeColor`, in f64.
fn wheel_position(u: f64, v: f64) -> f64 {
    ((-v).atan2(-u) / std::f64::consts::PI + 1.0) / 2.0 * 54.0
}

fn pixel(img: &image::RgbImage, x: u32, y: u32) -> [u8; 3] {
    img.get_pixel(x, y).0
}

#[test]
fn wheel_table_spot_checks() {
    let wheel = reference_wheel();
    assert_eq!(wheel.len(), 55);
    assert_eq!(wheel[0], [255, 0, 0]); // red
    assert_eq!(wheel[15], [255, 255, 0]); // yellow: start of YG
    assert_eq!(wheel[21], [0, 255, 0]); // green: start of GC
    assert_eq!(wheel[25], [0, 255, 255]); // cyan: start of CB
    assert_eq!(wheel[36], [0, 0, 255]); // blue: start of BM
    assert_eq!(wheel[49], [255, 0, 255]); // magenta: start of MR
    assert_eq!(wheel[54], [255, 0, 255 - 212]); // last MR entry: 255 - floor(255 * 5 / 6)
    assert_eq!(corrflow::viz::color_wheel().to_vec(), wheel);
}

#[test]
fn zero_flow_is_white_and_unknown_is_black() {
    let flow = Flow::from_interleaved(3, 1, vec![0.0, 0.0, 1e10, 0.0, f32::NAN, 1.0]).unwrap();
    let img = flow_to_rgb(&flow, None);
    assert_eq!(pixel(&img, 0, 0), [255, 255, 255]);
    assert_eq!(pixel(&img, 1, 0), [0, 0, 0]);
    assert_eq!(pixel(&img, 2, 0), [0, 0, 0]);
}

#[test]
fn pure_directions_at_max_magnitude_are_wheel_colours() {
    let wheel = reference_wheel();
    // Max magnitude 2 is reached by each pixel, so each has normalised radius 1 and shows its wheel colour
    // unchanged (computeColor: 1 - rad * (1 - col) = col at rad = 1).
    let dirs: [(f32, f32); 5] = [(2.0, 0.0), (2.0, -0.0), (-2.0, 0.0), (0.0, 2.0), (0.0, -2.0)];
    let data = dirs.iter().flat_map(|&(u, v)| [u, v]).collect();
    let img = flow_to_rgb(&Flow::from_interleaved(5, 1, data).unwrap(), None);

    // +u with v = +0.0: -v is -0.0, and IEEE atan2(-0.0, -1) = -pi (as in C and numpy), so fk = 0 -> wheel[0].
    // With v = -0.0 the angle is +pi, fk = 54 -> wheel[54], the last MR entry: +u sits on the wheel's seam.
    assert_eq!(wheel_position(1.0, 0.0), 0.0);
    assert_eq!(wheel_position(1.0, -0.0), 54.0);
    assert_eq!(pixel(&img, 0, 0), wheel[0]);
    assert_eq!(pixel(&img, 1, 0), wheel[54]);
    assert_eq!(pixel(&img, 1, 0), [255, 0, 43]);

    // -u: angle atan2(-0, 1) = -0 -> fk = 27 -> wheel[27] = CB entry 2 = (0, 255 - floor(510 / 11), 255).
    assert_eq!(wheel_position(-1.0, 0.0), 27.0);
    assert_eq!(pixel(&img, 2, 0), [0, 209, 255]);
    assert_eq!(pixel(&img, 2, 0), wheel[27]);

    // +v (down) and -v (up) fall between two entries: fk = 13.5 and 40.5, colour = floor of the mean.
    for (x, (u, v)) in [(3u32, (0.0, 1.0)), (4, (0.0, -1.0))] {
        let fk = wheel_position(u, v);
        let k0 = fk.floor() as usize;
        assert_eq!(fk - k0 as f64, 0.5);
        let expected: Vec<u8> =
            (0..3).map(|c| ((wheel[k0][c] as f64 + wheel[k0 + 1][c] as f64) / 2.0).floor() as u8).collect();
        assert_eq!(pixel(&img, x, 0).to_vec(), expected, "direction ({u}, {v})");
    }
    assert_eq!(pixel(&img, 3, 0), [255, 229, 0]); // (221 + 238) / 2 = 229.5
    assert_eq!(pixel(&img, 4, 0), [88, 0, 255]); // (78 + 98) / 2 = 88
}

#[test]
fn saturation_scales_with_magnitude_and_caller_max() {
    let wheel = reference_wheel();
    // Half the max magnitude: col = 255 - 0.5 * (255 - w) per channel (computeColor's 1 - rad * (1 - col)).
    let flow = Flow::from_interleaved(2, 1, vec![4.0, 0.0, 2.0, 0.0]).unwrap();
    let img = flow_to_rgb(&flow, None);
    let half: Vec<u8> = wheel[0].iter().map(|&w| (255.0 - 0.5 * (255.0 - w as f64)).floor() as u8).collect();
    assert_eq!(pixel(&img, 1, 0).to_vec(), half);
    assert_eq!(pixel(&img, 1, 0), [255, 127, 127]);
    // Caller max 2: pixel 0 is out of range (rad 2) -> 0.75 * wheel colour, floor(0.75 * 255) = 191.
    let img = flow_to_rgb(&flow, Some(2.0));
    assert_eq!(pixel(&img, 0, 0), [191, 0, 0]);
    assert_eq!(pixel(&img, 1, 0), wheel[0]);
}

#[test]
fn legend_is_centred_white_and_red_to_the_right() {
    let img = color_wheel_legend(65);
    assert_eq!(img.dimensions(), (65, 65));
    assert_eq!(pixel(&img, 32, 32), [255, 255, 255]);
    // Right edge: u = 32 / 32.5, v = +0 -> wheel[0] red, desaturated by 1 - rad = 1/65 -> floor(255/65) = 3.
    assert_eq!(pixel(&img, 64, 32), [255, 3, 3]);
    assert_eq!(color_wheel_legend(0).dimensions(), (0, 0));
}

#[test]
fn flow_png_written_atomically() {
    let dir = TempDir::new("viz");
    let path = dir.join("flow_vis.png");
    let flow = random_flow(11, 7, 8.0, 5);
    write_flow_png(&path, &flow, None).unwrap();
    assert_eq!(entries(&dir), vec!["flow_vis.png".to_string()]);
    let back = image::open(&path).unwrap().into_rgb8();
    assert_eq!(back, flow_to_rgb(&flow, None));
    // The in-memory encoding (for OutputSet::write) is the same file.
    assert_eq!(std::fs::read(&path).unwrap(), encode_flow_png(&flow, None, &path).unwrap());
}

// ---------------------------------------------------------------------------------------------------------
// Metrics

fn one_pixel(u: f32, v: f32) -> Flow {
    Flow::from_interleaved(1, 1, vec![u, v]).unwrap()
}

/// Barron et al. angular error in degrees, written out in f64.
fn reference_ae(u: f64, v: f64, ug: f64, vg: f64) -> f64 {
    let num = u * ug + v * vg + 1.0;
    let den = (u * u + v * v + 1.0).sqrt() * (ug * ug + vg * vg + 1.0).sqrt();
    (num / den).acos().to_degrees()
}

#[test]
fn epe_and_ae_single_pixels() {
    // (3, 4) against (0, 0): endpoint error is the 3-4-5 triangle's hypotenuse.
    assert_eq!(epe(&one_pixel(3.0, 4.0), &one_pixel(0.0, 0.0), None).unwrap(), 5.0);
    // (1, 0) vs (0, 1): cos = 1 / (sqrt 2 * sqrt 2) = 0.5 -> 60 degrees.
    let ae = angular_error(&one_pixel(1.0, 0.0), &one_pixel(0.0, 1.0), None).unwrap();
    assert!((ae - 60.0).abs() < 1e-9, "{ae}");
    // (3, 4) vs (0, 0): cos = 1 / sqrt 26.
    let ae = angular_error(&one_pixel(3.0, 4.0), &one_pixel(0.0, 0.0), None).unwrap();
    assert!((ae - reference_ae(3.0, 4.0, 0.0, 0.0)).abs() < 1e-9);
    assert!((ae - (1.0f64 / 26f64.sqrt()).acos().to_degrees()).abs() < 1e-9);
    // Identical vectors: exactly zero, not acos of a cosine rounded off 1 (~1e-6 degrees, or NaN above 1).
    assert_eq!(angular_error(&one_pixel(0.1, 0.7), &one_pixel(0.1, 0.7), None).unwrap(), 0.0);
}

#[test]
fn metrics_respect_mask_and_unknown_gt() {
    // Four pixels. Pixel 2 is masked out, pixel 3 has unknown ground truth; only pixels 0 and 1 count.
    let pred = Flow::from_interleaved(4, 1, vec![3.0, 4.0, 1.0, 1.0, 100.0, 0.0, 50.0, 50.0]).unwrap();
    let gt = Flow::from_interleaved(4, 1, vec![0.0, 0.0, 1.0, -1.0, 0.0, 0.0, 1e10, 0.0]).unwrap();
    let mask = [true, true, false, true];
    // EPEs: 5 and 2 -> mean 3.5.
    assert_eq!(epe(&pred, &gt, Some(&mask)).unwrap(), 3.5);
    let expected_ae = (reference_ae(3.0, 4.0, 0.0, 0.0) + reference_ae(1.0, 1.0, 1.0, -1.0)) / 2.0;
    assert!((angular_error(&pred, &gt, Some(&mask)).unwrap() - expected_ae).abs() < 1e-9);
    let m = evaluate(&pred, &gt, Some(&mask)).unwrap();
    assert_eq!(m.valid_pixels, 2);
    assert_eq!(m.epe, 3.5);
    assert!((m.ae_deg - expected_ae).abs() < 1e-9);
    // Pixel 0: EPE 5 > 3 and > 0.05 * 0 -> outlier; pixel 1: EPE 2 -> not.
    assert_eq!(m.fl_all, 0.5);
    // Without the mask pixel 2 (EPE 100) counts too, pixel 3 is still excluded by its unknown gt.
    assert_eq!(evaluate(&pred, &gt, None).unwrap().valid_pixels, 3);
    assert!((epe(&pred, &gt, None).unwrap() - 107.0 / 3.0).abs() < 1e-12);
}

#[test]
fn fl_all_constructed_case() {
    // KITTI outlier: EPE > 3 px AND EPE > 5 % of |gt|.
    let gt = Flow::from_interleaved(4, 1, vec![100.0, 0.0, 10.0, 0.0, 0.0, 0.0, 0.0, 0.0]).unwrap();
    let pred = Flow::from_interleaved(4, 1, vec![104.0, 0.0, 14.0, 0.0, 2.0, 0.0, 0.0, 3.5]).unwrap();
    // pixel 0: EPE 4 > 3 but < 5 (5 % of 100) -> inlier
    // pixel 1: EPE 4 > 3 and > 0.5            -> outlier
    // pixel 2: EPE 2 <= 3                     -> inlier
    // pixel 3: EPE 3.5 > 3 and > 0            -> outlier
    assert_eq!(fl_all(&pred, &gt, None).unwrap(), 0.5);
    assert_eq!(fl_all(&pred, &gt, Some(&[true, true, false, false])).unwrap(), 0.5);
    assert_eq!(fl_all(&pred, &gt, Some(&[true, false, true, false])).unwrap(), 0.0);
}

#[test]
fn size_mismatches_are_errors() {
    let a = Flow::zeros(4, 3);
    let b = Flow::zeros(3, 4);
    let err = assert_err_mentions(evaluate(&a, &b, None), &["4x3", "3x4"]);
    assert!(matches!(err, Error::Mismatch { .. }));
    assert!(matches!(epe(&a, &b, None), Err(Error::Mismatch { .. })));
    assert!(matches!(evaluate(&a, &a, Some(&[true; 11])), Err(Error::Mismatch { .. })));
    let broken = Flow { width: 4, height: 3, data: vec![0.0; 7] };
    assert!(matches!(evaluate(&broken, &a, None), Err(Error::Mismatch { .. })));
}

#[test]
fn no_valid_pixel_is_an_error_not_nan() {
    let a = Flow::zeros(2, 2);
    // Every pixel masked out.
    let err = assert_err_mentions(evaluate(&a, &a, Some(&[false; 4])), &["no valid pixel", "4 are marked invalid"]);
    assert!(matches!(err, Error::Mismatch { .. }));
    // Every ground-truth pixel unknown: NaN, infinite, or above 1e9.
    let unknown = Flow::from_interleaved(3, 1, vec![f32::NAN, 0.0, 0.0, f32::INFINITY, 2e9, 0.0]).unwrap();
    let pred = Flow::zeros(3, 1);
    assert_err_mentions(evaluate(&pred, &unknown, None), &["no valid pixel", "3 hold unknown flow"]);
    assert_err_mentions(epe(&pred, &unknown, None), &["no valid pixel"]);
    assert_err_mentions(angular_error(&pred, &unknown, None), &["no valid pixel"]);
    assert_err_mentions(fl_all(&pred, &unknown, None), &["no valid pixel"]);
    // Both reasons at once: pixel 0 masked, pixels 1 and 2 unknown.
    assert_err_mentions(
        evaluate(&pred, &unknown, Some(&[false, true, true])),
        &["1 are marked invalid", "2 hold unknown"],
    );
    // One valid pixel is enough.
    let one = Flow::from_interleaved(3, 1, vec![f32::NAN, 0.0, 3.0, 4.0, 2e9, 0.0]).unwrap();
    let m = evaluate(&pred, &one, None).unwrap();
    assert_eq!((m.valid_pixels, m.epe), (1, 5.0));
}

#[test]
fn display_formats_metrics() {
    let m = evaluate(&one_pixel(3.0, 4.0), &one_pixel(0.0, 0.0), None).unwrap();
    let text = m.to_string();
    assert!(text.contains("EPE 5.000 px"), "{text}");
    assert!(text.contains("Fl-all 100.00 %"), "{text}");
    assert!(text.contains("n = 1"), "{text}");
}

// ---------------------------------------------------------------------------------------------------------
// Bounded reading: regular files only, allocation bounded by the file's real size

#[test]
fn readers_refuse_devices_fifos_and_directories() {
    use corrflow::models::{load_frame, Weights};
    let dir = TempDir::new("read-kinds");
    let fifo = dir.join("pipe");
    let have_fifo = std::process::Command::new("mkfifo").arg(&fifo).status().is_ok_and(|s| s.success());
    let mut cases: Vec<(PathBuf, &str)> = vec![(dir.to_path_buf(), "a directory")];
    if Path::new("/dev/zero").exists() {
        cases.push((PathBuf::from("/dev/zero"), "character device"));
    } else {
        println!("skipping /dev/zero: absent");
    }
    if have_fifo {
        cases.push((fifo.clone(), "FIFO"));
    } else {
        println!("skipping the FIFO case: mkfifo unavailable");
    }
    for (path, kind) in &cases {
        let name = path.display().to_string();
        // Each returns at once (a FIFO with no writer would block an open; /dev/zero would never end).
        assert_err_mentions(read_flo(path), &[&name, kind, "not a regular file"]);
        assert_err_mentions(read_kitti_flow(path), &[&name, kind]);
        assert_err_mentions(load_frame(path), &[&name, kind]);
        assert_err_mentions(Weights::load(path), &[&name, kind]);
    }
}

#[test]
fn read_limited_enforces_its_limit() {
    let dir = TempDir::new("read-limit");
    let path = dir.join("ten.bin");
    std::fs::write(&path, [7u8; 10]).unwrap();
    assert_eq!(corrflow::io::read_limited(&path, 10).unwrap(), vec![7u8; 10]);
    assert_err_mentions(corrflow::io::read_limited(&path, 9), &["ten.bin", "10 bytes", "9 bytes"]);
    assert_eq!(corrflow::io::check_input(&path, 100).unwrap(), 10);
}

/// CRC-32 as PNG uses it (reflected polynomial 0xEDB88320), to forge consistent PNG headers.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &byte in data {
        crc ^= byte as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// `png` with IHDR's width and height replaced (offsets 16 and 20) and its CRC (offset 29) recomputed.
fn with_declared_size(png: &[u8], width: u32, height: u32) -> Vec<u8> {
    let mut bytes = png.to_vec();
    bytes[16..20].copy_from_slice(&width.to_be_bytes());
    bytes[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    bytes
}

#[test]
fn image_headers_cannot_demand_huge_allocations() {
    use corrflow::io::decode_frame;
    let kitti = encode_kitti_flow(&random_flow(4, 3, 1.0, 8), None).unwrap();
    assert!(decode_kitti_flow(&with_declared_size(&kitti, 4, 3), Path::new("same.png")).is_ok());
    // A side above 32768 px.
    let wide = with_declared_size(&kitti, 40_000, 3);
    assert_err_mentions(decode_kitti_flow(&wide, Path::new("wide.png")), &["wide.png", "40000x3", "32768"]);
    assert_err_mentions(decode_frame(&wide, "wide.png"), &["40000x3", "32768"]);
    // 10000 x 10000 16-bit RGB is 600 MB decoded, far beyond what a file of ~100 bytes can hold.
    let liar = with_declared_size(&kitti, 10_000, 10_000);
    assert_err_mentions(
        decode_kitti_flow(&liar, Path::new("liar.png")),
        &["liar.png", "10000x10000", "600000000 bytes", "corrupt or truncated"],
    );
    // Beyond the absolute 1 GiB limit: 1 MiB of trailing bytes lifts the per-file budget to the cap.
    let mut huge = with_declared_size(&kitti, 32_768, 32_768);
    huge.extend(vec![0u8; 1 << 20]);
    assert_err_mentions(decode_frame(&huge, "huge.png"), &["32768x32768", "1073741824-byte limit", "downscale"]);
    // A small lie within the 64 MiB any file may use is decoded and fails on the missing data.
    let short = with_declared_size(&kitti, 100, 100);
    assert_err_mentions(decode_frame(&short, "short.png"), &["short.png", "cannot decode"]);
}

#[test]
fn frames_decode_from_memory_like_from_disk() {
    use corrflow::io::decode_frame;
    use corrflow::models::load_frame;
    let dir = TempDir::new("frames");
    let picture = image::RgbImage::from_fn(7, 5, |x, y| image::Rgb([x as u8 * 30, y as u8 * 50, 9]));
    for format in [image::ImageFormat::Png, image::ImageFormat::Pnm, image::ImageFormat::Bmp] {
        let mut bytes = std::io::Cursor::new(Vec::new());
        image::DynamicImage::ImageRgb8(picture.clone()).write_to(&mut bytes, format).unwrap();
        let bytes = bytes.into_inner();
        let path = dir.join(format!("frame.{}", format.extensions_str()[0]));
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(decode_frame(&bytes, &path).unwrap().to_rgb8(), picture, "{format:?} from memory");
        assert_eq!(load_frame(&path).unwrap().to_rgb8(), picture, "{format:?} from disk");
    }
}

// ---------------------------------------------------------------------------------------------------------
// Weights storage: f32, f16 and bf16 safetensors

/// A safetensors file with one tensor `t` of `dtype` holding `payload`, written out by hand.
fn one_tensor_file(dtype: &str, shape: &[usize], payload: &[u8]) -> Vec<u8> {
    let shape: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let header =
        format!(r#"{{"t":{{"dtype":"{dtype}","shape":[{}],"data_offsets":[0,{}]}}}}"#, shape.join(","), payload.len());
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

#[test]
fn weights_read_f16_and_bf16_exactly() {
    use corrflow::models::Weights;
    // f16 bits: 1.0 = 0x3c00, 65504 = 0x7bff (largest finite), 2^-24 = 0x0001 (smallest subnormal), -2 = 0xc000.
    let f16: Vec<u8> = [0x3c00u16, 0x7bff, 0x0001, 0xc000].iter().flat_map(|b| b.to_le_bytes()).collect();
    let w = Weights::from_bytes(&one_tensor_file("F16", &[2, 2], &f16), "half").unwrap();
    assert_eq!(w.get("t", &[2, 2]).unwrap(), &[1.0, 65504.0, 2f32.powi(-24), -2.0]);
    // bf16 bits are the top half of f32's: 1.0 = 0x3f80, -2.0 = 0xc000, 1.5 = 0x3fc0.
    let bf16: Vec<u8> = [0x3f80u16, 0xc000, 0x3fc0].iter().flat_map(|b| b.to_le_bytes()).collect();
    let w = Weights::from_bytes(&one_tensor_file("BF16", &[3], &bf16), "bf").unwrap();
    assert_eq!(w.get("t", &[3]).unwrap(), &[1.0, -2.0, 1.5]);
    // Non-finite values are refused in any dtype: f16 infinity 0x7c00, NaN 0x7e00.
    for bits in [0x7c00u16, 0x7e00] {
        let e = Weights::from_bytes(&one_tensor_file("F16", &[1], &bits.to_le_bytes()), "inf.safetensors");
        assert_err_mentions(e, &["inf.safetensors", "`t`", "non-finite"]);
    }
    // Other dtypes are named.
    assert_err_mentions(Weights::from_bytes(&one_tensor_file("I64", &[1], &[0; 8]), "int"), &["`t`", "I64", "f16"]);
}

#[test]
fn weights_save_as_f16_and_bf16_round_trip() {
    use corrflow::io::half::{bf16_to_f32, f16_to_f32, f32_to_bf16, f32_to_f16};
    use corrflow::models::{StoreAs, Weights};
    let dir = TempDir::new("weights-half");
    let values: Vec<f32> = vec![1.0, -0.1, 12.345, 1e-3, 65504.0, -65519.0, 2f32.powi(-24), 0.0];
    let weights = Weights::from_tensors(
        "w",
        [("conv.weight".to_string(), vec![2, 4], values.clone()), ("conv.bias".to_string(), vec![1], vec![0.5])],
    )
    .with_metadata("step", 7);
    let full = weights.to_bytes().unwrap();
    for (store, narrow, widen) in [
        (StoreAs::F16, f32_to_f16 as fn(f32) -> u16, f16_to_f32 as fn(u16) -> f32),
        (StoreAs::BF16, f32_to_bf16, bf16_to_f32),
    ] {
        let path = dir.join(format!("{store:?}.safetensors"));
        weights.save_as(&path, store).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.len() < full.len(), "{store:?} file is not smaller than f32");
        let back = Weights::load(&path).unwrap();
        assert_eq!(back.metadata().get("step").map(String::as_str), Some("7"));
        let expected: Vec<f32> = values.iter().map(|&v| widen(narrow(v))).collect();
        assert_eq!(back.get("conv.weight", &[2, 4]).unwrap(), expected.as_slice(), "{store:?}");
        assert_eq!(back.get("conv.bias", &[1]).unwrap(), &[0.5]);
        // Values already representable survive a second round trip bit for bit.
        assert_eq!(back.to_bytes_as(store).unwrap(), bytes);
    }
    // The f16 values: 65504 and -65519 both land on +-65504; 2^-24 is the smallest subnormal.
    let f16 = Weights::from_bytes(&weights.to_bytes_as(StoreAs::F16).unwrap(), "f16").unwrap();
    let got = f16.get("conv.weight", &[2, 4]).unwrap();
    assert_eq!((got[0], got[4], got[5], got[6]), (1.0, 65504.0, -65504.0, 2f32.powi(-24)));
    // Mixed storage: each tensor as asked (conv.bias stays f32: 0.1 is not an f16 value), and `rounded` gives
    // the same values without the file.
    let odd = Weights::from_tensors(
        "odd",
        [("conv.weight".to_string(), vec![1], vec![0.1]), ("conv.bias".to_string(), vec![1], vec![0.1])],
    );
    for w in [&weights, &odd] {
        let store = |n: &str| if n == "conv.bias" { StoreAs::F32 } else { StoreAs::F16 };
        let bytes = w.to_bytes_per_tensor(store).unwrap();
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let dtypes: Vec<(String, safetensors::Dtype)> = header
            .tensors()
            .iter()
            .map(|(n, i)| (n.to_string(), i.dtype))
            .collect::<std::collections::BTreeMap<_, _>>()
            .into_iter()
            .collect();
        assert_eq!(
            dtypes,
            [("conv.bias".to_string(), safetensors::Dtype::F32), ("conv.weight".to_string(), safetensors::Dtype::F16)]
        );
        let (back, rounded) = (Weights::from_bytes(&bytes, "mixed").unwrap(), w.rounded(store).unwrap());
        for name in ["conv.weight", "conv.bias"] {
            let shape = w.shape(name).unwrap().to_vec();
            assert_eq!(back.get(name, &shape).unwrap(), rounded.get(name, &shape).unwrap(), "{name}");
        }
    }
    assert_eq!(
        odd.rounded(|n| if n == "conv.bias" { StoreAs::F32 } else { StoreAs::F16 })
            .unwrap()
            .get("conv.bias", &[1])
            .unwrap(),
        &[0.1]
    );
    assert_eq!(odd.rounded(|_| StoreAs::F16).unwrap().get("conv.bias", &[1]).unwrap(), &[f16_to_f32(f32_to_f16(0.1))]);
    assert_ne!(f16_to_f32(f32_to_f16(0.1)), 0.1);
    // Overflow is an error naming the tensor, not an infinity.
    let big = Weights::from_tensors("big.safetensors", [("fc.weight".to_string(), vec![2], vec![1.0, 70000.0])]);
    assert_err_mentions(big.to_bytes_as(StoreAs::F16), &["big.safetensors", "`fc.weight`", "70000", "65504"]);
    assert_err_mentions(big.save_as(dir.join("big.safetensors"), StoreAs::F16), &["fc.weight"]);
    assert!(big.to_bytes_as(StoreAs::BF16).is_ok());
    let huge = Weights::from_tensors("h", [("x".to_string(), vec![1], vec![f32::MAX])]);
    assert_err_mentions(huge.to_bytes_as(StoreAs::BF16), &["`x`", "bf16"]);
    assert_eq!(entries(&dir), ["BF16.safetensors", "F16.safetensors"]);
}

/// The average of checkpoints is the tensor-by-tensor mean (here of values whose mean is exact in f32), its
/// metadata the first's with `averaged_steps`, the largest `step` and no inherited validation figure; sets
/// that differ in a name or a shape are refused naming the tensor and both sources.
#[test]
fn weights_average_is_the_mean_and_refuses_different_sets() {
    use corrflow::models::Weights;
    let set = |name: &str, step: u64, w: [f32; 4], b: f32| {
        Weights::from_tensors(
            name,
            [("conv.weight".to_string(), vec![2, 2], w.to_vec()), ("conv.bias".to_string(), vec![1], vec![b])],
        )
        .with_metadata("step", step)
        .with_metadata("width", "0.25")
        .with_metadata("val_synthetic_epe", "4.5")
    };
    let sets = [
        set("a", 1000, [1.0, 2.0, -3.0, 0.5], 0.25),
        set("b", 3000, [3.0, 2.0, 3.0, 0.5], -0.25),
        set("c", 2000, [2.0, 5.0, 0.0, -1.0], 3.0),
    ];
    let mean = Weights::average(&sets).unwrap();
    assert_eq!(mean.get("conv.weight", &[2, 2]).unwrap(), &[2.0, 3.0, 0.0, 0.0]);
    assert_eq!(mean.get("conv.bias", &[1]).unwrap(), &[1.0]);
    let meta = mean.metadata();
    assert_eq!(meta.get("averaged_steps").map(String::as_str), Some("1000,3000,2000"));
    assert_eq!(meta.get("step").map(String::as_str), Some("3000"));
    assert_eq!(meta.get("width").map(String::as_str), Some("0.25"));
    assert!(!meta.contains_key("val_synthetic_epe"), "{meta:?}");
    // One set averages to itself.
    let one = Weights::average(&sets[..1]).unwrap();
    assert_eq!(one.get("conv.weight", &[2, 2]).unwrap(), sets[0].get("conv.weight", &[2, 2]).unwrap());

    let missing = Weights::from_tensors("d", [("conv.weight".to_string(), vec![2, 2], vec![0.0; 4])]);
    assert_err_mentions(
        Weights::average(&[sets[0].clone(), missing]),
        &["weights d", "with a", "no tensor `conv.bias`"],
    );
    let extra = Weights::from_tensors(
        "e",
        [
            ("conv.weight".to_string(), vec![2, 2], vec![0.0; 4]),
            ("conv.bias".to_string(), vec![1], vec![0.0]),
            ("fc.weight".to_string(), vec![1], vec![0.0]),
        ],
    );
    assert_err_mentions(Weights::average(&[sets[0].clone(), extra]), &["weights e", "`fc.weight`"]);
    let reshaped = Weights::from_tensors(
        "f",
        [("conv.weight".to_string(), vec![4], vec![0.0; 4]), ("conv.bias".to_string(), vec![1], vec![0.0])],
    );
    assert_err_mentions(
        Weights::average(&[sets[0].clone(), reshaped]),
        &["weights f", "`conv.weight`", "[4]", "[2, 2]"],
    );
    assert!(Weights::average(&[]).is_err());
}

#[test]
fn weights_header_length_is_checked_first() {
    use corrflow::models::Weights;
    let mut bytes = one_tensor_file("F32", &[1], &1f32.to_le_bytes());
    bytes[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_err_mentions(Weights::from_bytes(&bytes, "h.safetensors"), &["h.safetensors", "header declares"]);
    assert_err_mentions(Weights::from_bytes(&bytes[..5], "short"), &["short", "5 bytes", "truncated"]);
}

// ---------------------------------------------------------------------------------------------------------
// Real data (../shared/data), skipped when absent

#[test]
fn middlebury_dimetrodon_ground_truth() {
    let path = shared_data("middlebury/Dimetrodon/flow10.flo");
    if !path.exists() {
        common::skip(format!("{} not found", path.display()));
        return;
    }
    let flow = read_flo(&path).unwrap();
    assert_eq!((flow.width, flow.height), (584, 388));
    let valid = flow.valid_mask();
    let fraction = valid.iter().filter(|&&v| v).count() as f64 / valid.len() as f64;
    // MANIFEST.md: 4.8 % of Dimetrodon's ground truth is unknown.
    assert!(fraction > 0.9, "valid fraction {fraction}");
    assert!(fraction < 1.0, "Dimetrodon has unknown pixels; none were detected");
    // Re-encoding reproduces the file byte for byte.
    assert!(encode_flo(&flow) == std::fs::read(&path).unwrap(), "re-encoded .flo differs from the original");
    // Zero flow against the ground truth is a sane, finite baseline.
    let zero = evaluate(&Flow::zeros(584, 388), &flow, None).unwrap();
    assert!(zero.epe.is_finite() && zero.epe > 0.0, "{zero}");
}

#[test]
fn kitti_2015_ground_truth() {
    let path = shared_data("kitti2015/000000/flow_gt.png");
    if !path.exists() {
        common::skip(format!("{} not found", path.display()));
        return;
    }
    let (flow, valid) = read_kitti_flow(&path).unwrap();
    // MANIFEST.md: 1242x375, 16.2 % valid.
    assert_eq!((flow.width, flow.height), (1242, 375));
    let fraction = valid.iter().filter(|&&v| v).count() as f64 / valid.len() as f64;
    assert!(fraction > 0.05 && fraction <= 1.0, "valid fraction {fraction}");
    assert_eq!(flow.valid_mask(), valid);
    // Re-encoding and decoding is lossless for values already on the 1/64 grid.
    let png = encode_kitti_flow(&flow, Some(&valid)).unwrap();
    let (again, valid_again) = decode_kitti_flow(&png, &path).unwrap();
    assert_eq!(valid_again, valid);
    assert_eq!(again, flow);
}
