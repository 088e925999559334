//! Seeded mutation fuzzing of every parser that reads user files: Middlebury `.flo` ([`decode_flo`]), KITTI
//! flow PNGs ([`decode_kitti_flow`]), safetensors weights ([`Weights::from_bytes`]) and image frames
//! ([`decode_frame`]: PNG, JPEG, PPM, BMP).
//!
//! Each parser gets valid files made here, then thousands of mutations of them (truncations, flipped bits,
//! overwritten bytes, header fields set to huge or odd values, inserted, duplicated and deleted chunks, and
//! format-aware edits that keep checksums and length prefixes consistent so the mutation reaches past the
//! first check). For every input the test asserts:
//! - no panic (each parse runs inside `catch_unwind`; panics are counted and the first ones printed);
//! - no abort (an abort ends this test binary; the allocator below refuses any single allocation above
//!   2 GiB, so a parser asking for absurd memory aborts here instead of on a bigger machine);
//! - no allocation beyond a bound stated per parser from the format: the counting allocator records, for
//!   the thread doing the parse, the largest single allocation and the peak of live bytes.
//!
//! The generator is `corrflow::data::Rng` with fixed seeds, so a failure reproduces: the message names the
//! parser, the input index and the mutations applied.

use corrflow::data::Rng;
use corrflow::io::frame::{DECODED_BYTES_ANY_FILE, MAX_EXPANSION};
use corrflow::io::{decode_flo, decode_frame, decode_kitti_flow, encode_flo, encode_kitti_flow};
use corrflow::models::{StoreAs, Weights};
use corrflow::Flow;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::Instant;

// ---------------------------------------------------------------------------------------------------------
// Counting allocator: per-thread figures, so parsers fuzzed on parallel test threads do not mix.

/// Any single allocation above this is refused (and so aborts the binary): no parser here has a reason to
/// ask for it on inputs of a few kilobytes.
const HARD_LIMIT: usize = 2 << 30;

struct Counting;

thread_local! {
    static TRACKING: Cell<bool> = const { Cell::new(false) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

/// Records `grow` new bytes (negative: freed) and a new block of `size` bytes, on this thread.
fn record(grow: isize, size: usize) {
    let _ = TRACKING.try_with(|tracking| {
        if tracking.get() {
            let live = LIVE.with(|l| {
                l.set(l.get() + grow);
                l.get()
            });
            PEAK.with(|p| p.set(p.get().max(live)));
            LARGEST.with(|l| l.set(l.get().max(size)));
        }
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > HARD_LIMIT {
            return std::ptr::null_mut();
        }
        record(layout.size() as isize, layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // Forwarded as zeroed so large zeroed buffers stay lazy (the OS maps zero pages on demand).
        if layout.size() > HARD_LIMIT {
            return std::ptr::null_mut();
        }
        record(layout.size() as isize, layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        record(-(layout.size() as isize), 0);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > HARD_LIMIT {
            return std::ptr::null_mut();
        }
        record(new_size as isize - layout.size() as isize, new_size);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocation figures of one parse.
#[derive(Clone, Copy, Default)]
struct Usage {
    largest: usize,
    peak_live: usize,
}

/// Runs `f` with allocation tracking on this thread; returns its result (None if it panicked) and usage.
fn measured<T>(f: impl FnOnce() -> T) -> (Option<T>, Usage) {
    LIVE.with(|l| l.set(0));
    PEAK.with(|p| p.set(0));
    LARGEST.with(|l| l.set(0));
    TRACKING.with(|t| t.set(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    TRACKING.with(|t| t.set(false));
    let usage = Usage { largest: LARGEST.with(|l| l.get()), peak_live: PEAK.with(|p| p.get()).max(0) as usize };
    (result.ok(), usage)
}

// ---------------------------------------------------------------------------------------------------------
// Mutations

fn below(rng: &mut Rng, n: usize) -> usize {
    if n == 0 {
        0
    } else {
        (rng.next_u64() % n as u64) as usize
    }
}

/// Integers that break size arithmetic: zero, one, sign boundaries, powers of two around common limits.
const INTERESTING: [u64; 14] = [
    0,
    1,
    0x7f,
    0xff,
    0x7fff,
    0x8000,
    0xffff,
    32_769,
    100_001,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    1 << 40,
    u64::MAX,
];

/// Format knowledge a mutation may use.
struct Format {
    /// Offsets of header fields worth setting to huge values (written as u32 LE unless `big_endian`).
    header_fields: &'static [usize],
    big_endian: bool,
    /// A format-aware edit that keeps the file superficially valid (checksums, length prefixes, text
    /// headers), so that the mutation reaches past the first check.
    structured: fn(&mut Rng, &mut Vec<u8>) -> &'static str,
}

/// Applies one random mutation to `bytes` and names it.
fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>, format: &Format) -> &'static str {
    let len = bytes.len();
    match below(rng, 9) {
        0 => {
            bytes.truncate(below(rng, len + 1));
            "truncate"
        }
        1 => {
            for _ in 0..1 + below(rng, 8) {
                if len > 0 {
                    let i = below(rng, len);
                    bytes[i] ^= 1 << below(rng, 8);
                }
            }
            "flip bits"
        }
        2 => {
            for _ in 0..1 + below(rng, 4) {
                if len > 0 {
                    let i = below(rng, len);
                    bytes[i] = INTERESTING[below(rng, INTERESTING.len())] as u8 ^ (rng.next_u64() as u8 & 1);
                }
            }
            "overwrite bytes"
        }
        3 => {
            let value = INTERESTING[below(rng, INTERESTING.len())];
            let offset = if format.header_fields.is_empty() || rng.next_u64() & 3 == 0 {
                below(rng, len.min(64))
            } else {
                format.header_fields[below(rng, format.header_fields.len())]
            };
            let field = if format.big_endian { (value as u32).to_be_bytes() } else { (value as u32).to_le_bytes() };
            for (k, b) in field.iter().enumerate() {
                if let Some(slot) = bytes.get_mut(offset + k) {
                    *slot = *b;
                }
            }
            "huge header field"
        }
        4 => {
            let start = below(rng, len);
            let end = (start + 1 + below(rng, 64)).min(len);
            let chunk = bytes.get(start..end).unwrap_or_default().to_vec();
            let at = below(rng, len + 1);
            bytes.splice(at..at, chunk);
            "insert chunk"
        }
        5 => {
            let start = below(rng, len);
            let end = (start + 1 + below(rng, 256)).min(len);
            let chunk = bytes.get(start..end).unwrap_or_default().to_vec();
            bytes.splice(end..end, chunk);
            "duplicate chunk"
        }
        6 => {
            let start = below(rng, len);
            let end = (start + 1 + below(rng, 64)).min(len);
            bytes.drain(start..end.max(start));
            "delete chunk"
        }
        7 => {
            bytes.extend((0..1 + below(rng, 32)).map(|_| rng.next_u64() as u8));
            "append bytes"
        }
        _ => (format.structured)(rng, bytes),
    }
}

fn no_structure(_: &mut Rng, _: &mut Vec<u8>) -> &'static str {
    "none"
}

// ---------------------------------------------------------------------------------------------------------
// Format-aware edits

/// CRC-32 (ISO 3309, as PNG uses): reflected polynomial 0xEDB88320.
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

/// Recomputes the CRC of every complete PNG chunk, so corrupted chunk data reaches the decoder.
fn fix_png_crcs(bytes: &mut [u8]) {
    let mut at = 8;
    while at + 12 <= bytes.len() {
        let length = u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize;
        let Some(end) = at.checked_add(8).and_then(|s| s.checked_add(length)) else { return };
        if end + 4 > bytes.len() {
            return;
        }
        let crc = crc32(&bytes[at + 4..end]);
        bytes[end..end + 4].copy_from_slice(&crc.to_be_bytes());
        at = end + 4;
    }
}

// The format-aware edits share one signature (`Format::structured`); some of them resize the file.
#[allow(clippy::ptr_arg)]
/// PNG: set IHDR's width or height (offsets 16, 20) to a large or odd size, or corrupt a byte anywhere,
/// then fix every CRC.
fn png_structured(rng: &mut Rng, bytes: &mut Vec<u8>) -> &'static str {
    const SIDES: [u32; 8] = [0, 1, 4_000, 16_384, 32_768, 32_769, 1 << 20, 0x7fff_ffff];
    let what = match below(rng, 3) {
        0 if bytes.len() >= 24 => {
            // Width, height or both.
            let which = below(rng, 3);
            for (k, offset) in [16, 20].into_iter().enumerate() {
                if which == 2 || which == k {
                    bytes[offset..offset + 4].copy_from_slice(&SIDES[below(rng, SIDES.len())].to_be_bytes());
                }
            }
            "PNG IHDR size + CRC"
        }
        1 if bytes.len() >= 26 => {
            bytes[24 + below(rng, 2)] = [1u8, 2, 4, 8, 16, 0, 3, 6][below(rng, 8)];
            "PNG IHDR depth/colour + CRC"
        }
        _ => {
            if !bytes.is_empty() {
                let i = 8 + below(rng, bytes.len().saturating_sub(8));
                if let Some(b) = bytes.get_mut(i) {
                    *b = rng.next_u64() as u8;
                }
            }
            "PNG byte + CRC"
        }
    };
    fix_png_crcs(bytes);
    what
}

/// safetensors: rewrite the 8-byte header length, or replace a number or dtype inside the JSON header
/// (then fix the length prefix so the JSON is parsed).
fn safetensors_structured(rng: &mut Rng, bytes: &mut Vec<u8>) -> &'static str {
    if bytes.len() < 8 || rng.next_u64().is_multiple_of(3) {
        let value = INTERESTING[below(rng, INTERESTING.len())];
        for (k, b) in value.to_le_bytes().iter().enumerate() {
            if let Some(slot) = bytes.get_mut(k) {
                *slot = *b;
            }
        }
        return "safetensors header length";
    }
    let n = (u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize).min(bytes.len() - 8);
    let mut header = String::from_utf8_lossy(&bytes[8..8 + n]).into_owned();
    let rest = bytes[8 + n..].to_vec();
    let what = if rng.next_u64() & 1 == 0 {
        // A run of digits becomes a huge or odd number.
        let digit_runs: Vec<usize> = header
            .char_indices()
            .filter(|&(i, c)| c.is_ascii_digit() && !header[..i].ends_with(|p: char| p.is_ascii_digit()))
            .map(|(i, _)| i)
            .collect();
        if let Some(&start) = digit_runs.get(below(rng, digit_runs.len())) {
            let end = header[start..].find(|c: char| !c.is_ascii_digit()).map_or(header.len(), |e| start + e);
            let replacement = ["18446744073709551615", "99999999999", "4294967296", "0", "1", "65536", "-1"];
            header.replace_range(start..end, replacement[below(rng, replacement.len())]);
        }
        "safetensors JSON number"
    } else {
        let dtypes = ["\"F16\"", "\"BF16\"", "\"F64\"", "\"I64\"", "\"U8\"", "\"BOOL\"", "\"F32\""];
        header = header.replacen("\"F32\"", dtypes[below(rng, dtypes.len())], 1);
        "safetensors dtype"
    };
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&rest);
    *bytes = out;
    what
}

#[allow(clippy::ptr_arg)]
/// JPEG: set the frame header's (SOF0/SOF2) height or width to a large or odd value.
fn jpeg_structured(rng: &mut Rng, bytes: &mut Vec<u8>) -> &'static str {
    let sof = bytes.windows(2).position(|w| w[0] == 0xff && (w[1] == 0xc0 || w[1] == 0xc2));
    if let Some(at) = sof {
        // FFC0, length (2), precision (1), height (2), width (2): set the height, the width or both.
        let which = below(rng, 3);
        for k in 0..2 {
            if which == 2 || which == k {
                let offset = at + 5 + 2 * k;
                let value = [0u16, 1, 4_000, 16_384, 32_768, 65_535][below(rng, 6)];
                if let Some(field) = bytes.get_mut(offset..offset + 2) {
                    field.copy_from_slice(&value.to_be_bytes());
                }
            }
        }
    }
    "JPEG SOF size"
}

/// PPM: replace the text header's size or maximum value.
fn ppm_structured(rng: &mut Rng, bytes: &mut Vec<u8>) -> &'static str {
    // The encoder writes "P6\n<w> <h>\n<max>\n"; find the end of the header (third newline).
    let newlines: Vec<usize> = bytes.iter().enumerate().filter(|(_, &b)| b == b'\n').map(|(i, _)| i).take(3).collect();
    if newlines.len() == 3 {
        let sizes = ["4000 4000", "32769 2", "99999999 99999999", "0 0", "17 11", "1 1", "18446744073709551616 1"];
        let maxima = ["255", "65535", "0", "65536", "1"];
        let header =
            format!("P6\n{}\n{}\n", sizes[below(rng, sizes.len())], maxima[below(rng, maxima.len())]).into_bytes();
        bytes.splice(..newlines[2] + 1, header);
    }
    "PPM header"
}

// ---------------------------------------------------------------------------------------------------------
// Valid files to start from

fn random_flow(width: usize, height: usize, seed: u64) -> Flow {
    let mut rng = Rng::new(seed);
    Flow::from_interleaved(width, height, (0..2 * width * height).map(|_| 40.0 * rng.uniform()).collect()).unwrap()
}

fn flo_files() -> Vec<Vec<u8>> {
    vec![encode_flo(&random_flow(9, 7, 1)), encode_flo(&random_flow(1, 1, 2)), encode_flo(&random_flow(33, 2, 3))]
}

fn kitti_files() -> Vec<Vec<u8>> {
    let flow = random_flow(13, 9, 4);
    let valid: Vec<bool> = (0..13 * 9).map(|i| i % 5 != 0).collect();
    vec![encode_kitti_flow(&flow, Some(&valid)).unwrap(), encode_kitti_flow(&random_flow(2, 3, 5), None).unwrap()]
}

fn weights_files() -> Vec<Vec<u8>> {
    let mut rng = Rng::new(6);
    let mut values = |n: usize| (0..n).map(|_| rng.uniform()).collect::<Vec<f32>>();
    let weights = Weights::from_tensors(
        "fuzz",
        [
            ("conv1.0.weight".to_string(), vec![4, 3, 3, 3], values(108)),
            ("conv1.0.bias".to_string(), vec![4], values(4)),
            ("predict_flow2.weight".to_string(), vec![2, 4, 3, 3], values(72)),
        ],
    )
    .with_metadata("step", 12);
    vec![
        weights.to_bytes().unwrap(),
        weights.to_bytes_as(StoreAs::F16).unwrap(),
        weights.to_bytes_as(StoreAs::BF16).unwrap(),
    ]
}

fn frame(format: image::ImageFormat, picture: image::DynamicImage) -> Vec<u8> {
    let mut bytes = Cursor::new(Vec::new());
    picture.write_to(&mut bytes, format).unwrap();
    bytes.into_inner()
}

fn test_picture(width: u32, height: u32) -> image::RgbImage {
    image::RgbImage::from_fn(width, height, |x, y| image::Rgb([(x * 13) as u8, (y * 29) as u8, ((x ^ y) * 7) as u8]))
}

// ---------------------------------------------------------------------------------------------------------
// The driver

/// Allocation bounds for one parser, as a function of the input's length in bytes.
struct Bound {
    /// Why the bound holds, for the failure message.
    reason: &'static str,
    largest: fn(usize) -> usize,
    peak_live: fn(usize) -> usize,
}

/// `.flo` and safetensors allocate at most a few times the input: the decoded f32 values (twice the input
/// for f16 weights), the parsed JSON header. 1 MiB covers fixed-size buffers.
const LINEAR: Bound = Bound {
    reason: "1 MiB + 4 x input length",
    largest: |len| (1 << 20) + 4 * len,
    peak_live: |len| (1 << 20) + 8 * len,
};

/// Images: the decode budget (`DECODED_BYTES_ANY_FILE` + `MAX_EXPANSION` x length) bounds the output and the
/// decoder's buffers together; the KITTI reader then builds the flow (8 bytes per 6-byte pixel) and mask.
/// Twice the budget for one allocation, three times for everything live at once.
const IMAGE: Bound = Bound {
    reason: "2 x (64 MiB + 1032 x input length) for one allocation, 3 x for the live peak",
    largest: |len| 2 * (DECODED_BYTES_ANY_FILE as usize + MAX_EXPANSION as usize * len),
    peak_live: |len| 3 * (DECODED_BYTES_ANY_FILE as usize + MAX_EXPANSION as usize * len),
};

struct Report {
    inputs: usize,
    accepted: usize,
    panics: usize,
    largest: usize,
    peak_live: usize,
}

/// Feeds `count` mutations of `bases` to `parse` and checks every one; returns the figures.
fn fuzz(
    name: &str,
    seed: u64,
    count: usize,
    bases: &[Vec<u8>],
    format: &Format,
    bound: &Bound,
    parse: impl Fn(&[u8]) -> bool,
) -> Report {
    let start = Instant::now();
    let mut rng = Rng::new(seed);
    let mut report = Report { inputs: 0, accepted: 0, panics: 0, largest: 0, peak_live: 0 };
    let mut failures: Vec<String> = Vec::new();
    // The unmutated files must parse: otherwise every mutation is tested against a parser that rejects all.
    for (k, base) in bases.iter().enumerate() {
        assert!(parse(base), "{name}: valid base file {k} does not parse");
    }
    for index in 0..count {
        let base = &bases[index % bases.len()];
        let mut input = base.clone();
        let steps: Vec<&str> = (0..1 + below(&mut rng, 3)).map(|_| mutate(&mut rng, &mut input, format)).collect();
        let (result, usage) = measured(|| parse(&input));
        report.inputs += 1;
        report.largest = report.largest.max(usage.largest);
        report.peak_live = report.peak_live.max(usage.peak_live);
        let what = || format!("{name} input {index} (base {}, {} bytes, {steps:?})", index % bases.len(), input.len());
        match result {
            None => {
                report.panics += 1;
                failures.push(format!("panic on {}", what()));
            }
            Some(ok) => report.accepted += ok as usize,
        }
        if usage.largest > (bound.largest)(input.len()) || usage.peak_live > (bound.peak_live)(input.len()) {
            failures.push(format!(
                "{}: largest allocation {} bytes, live peak {} bytes, above the bound ({})",
                what(),
                usage.largest,
                usage.peak_live,
                bound.reason
            ));
        }
    }
    println!(
        "{name}: {} inputs, {} accepted, {} panics, largest allocation {} bytes, live peak {} bytes, {:.1} s",
        report.inputs,
        report.accepted,
        report.panics,
        report.largest,
        report.peak_live,
        start.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} failures in {name}, first ones:\n{}",
        failures.len(),
        failures[..failures.len().min(10)].join("\n")
    );
    report
}

#[test]
fn fuzz_flo() {
    let format = Format { header_fields: &[4, 8], big_endian: false, structured: no_structure };
    let report = fuzz("flo", 11, 50_000, &flo_files(), &format, &LINEAR, |b| decode_flo(b, Path::new("f.flo")).is_ok());
    assert!(report.accepted > 0 && report.accepted < report.inputs);
}

#[test]
fn fuzz_kitti_png() {
    let format = Format { header_fields: &[16, 20], big_endian: true, structured: png_structured };
    let parse = |b: &[u8]| decode_kitti_flow(b, Path::new("k.png")).is_ok();
    let report = fuzz("kitti", 12, 20_000, &kitti_files(), &format, &IMAGE, parse);
    assert!(report.accepted > 0 && report.accepted < report.inputs);
}

#[test]
fn fuzz_safetensors() {
    let format = Format { header_fields: &[0, 4], big_endian: false, structured: safetensors_structured };
    let parse = |b: &[u8]| Weights::from_bytes(b, "w.safetensors").is_ok();
    let report = fuzz("safetensors", 13, 50_000, &weights_files(), &format, &LINEAR, parse);
    assert!(report.accepted > 0 && report.accepted < report.inputs);
}

#[test]
fn fuzz_frames() {
    use image::{DynamicImage, ImageFormat};
    let rgb = DynamicImage::ImageRgb8(test_picture(17, 11));
    let rgba16 = DynamicImage::ImageRgba16(DynamicImage::ImageRgb8(test_picture(5, 4)).to_rgba16());
    let png = Format { header_fields: &[16, 20], big_endian: true, structured: png_structured };
    let jpeg = Format { header_fields: &[], big_endian: true, structured: jpeg_structured };
    let ppm = Format { header_fields: &[], big_endian: false, structured: ppm_structured };
    let bmp =
        Format { header_fields: &[2, 10, 14, 18, 22, 28, 30, 34, 46], big_endian: false, structured: no_structure };
    let cases: [(&str, Vec<Vec<u8>>, &Format); 4] = [
        ("frame.png", vec![frame(ImageFormat::Png, rgb.clone()), frame(ImageFormat::Png, rgba16)], &png),
        ("frame.jpg", vec![frame(ImageFormat::Jpeg, rgb.clone())], &jpeg),
        ("frame.ppm", vec![frame(ImageFormat::Pnm, rgb.clone())], &ppm),
        ("frame.bmp", vec![frame(ImageFormat::Bmp, rgb)], &bmp),
    ];
    for (k, (name, bases, format)) in cases.iter().enumerate() {
        let parse = |b: &[u8]| decode_frame(b, name).is_ok();
        let report = fuzz(name, 20 + k as u64, 10_000, bases, format, &IMAGE, parse);
        assert!(report.accepted > 0 && report.accepted < report.inputs, "{name}");
    }
}
