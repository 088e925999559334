//! Middlebury `.flo` files (Baker et al., IJCV 2011; `flowIO.cpp`).
//!
//! Layout, all little-endian: the f32 tag 202021.25 (bytes "PIEH"), i32 width, i32 height, then
//! `height * width` `(u, v)` f32 pairs, row-major. Unknown flow is stored as values above 1e9.

use super::{read_limited, write_atomic};
use crate::{Error, Flow, Result};
use std::path::Path;

/// The tag float; its little-endian bytes spell "PIEH" and catch byte-order mix-ups.
pub const FLO_TAG: f32 = 202021.25;
/// Header length: tag, width, height.
const HEADER_BYTES: usize = 12;
/// Largest width or height accepted on read; anything bigger is a corrupt header, not a real frame.
pub const MAX_FLO_DIMENSION: i32 = 100_000;
/// Largest `.flo` file [`read_flo`] reads: 2 GiB, a flow of 268 million pixels (16384 x 16384).
pub const MAX_FLO_BYTES: u64 = 2 << 30;

/// Reads the little-endian 4 bytes at `offset` (the caller has checked the length).
fn le_bytes(bytes: &[u8], offset: usize) -> [u8; 4] {
    [bytes[offset], bytes[offset + 1], bytes[offset + 2], bytes[offset + 3]]
}

/// Checks one header dimension and converts it to `usize`.
fn check_dimension(path: &Path, what: &str, value: i32) -> Result<usize> {
    if value <= 0 || value > MAX_FLO_DIMENSION {
        return Err(Error::format(
            path,
            format!("invalid .flo header: {what} {value} is outside 1..={MAX_FLO_DIMENSION}"),
        ));
    }
    Ok(value as usize)
}

/// Validates the 12-byte header and returns `(width, height)`.
fn decode_header(bytes: &[u8], path: &Path) -> Result<(usize, usize)> {
    if bytes.len() < HEADER_BYTES {
        return Err(Error::format(
            path,
            format!("truncated .flo file: {} bytes, shorter than the {HEADER_BYTES}-byte header", bytes.len()),
        ));
    }
    let tag = f32::from_le_bytes(le_bytes(bytes, 0));
    if tag != FLO_TAG {
        return Err(Error::format(
            path,
            format!(
                "not a Middlebury .flo file: bad tag {:?} (as f32: {tag}), expected \"PIEH\" (202021.25)",
                String::from_utf8_lossy(&bytes[..4])
            ),
        ));
    }
    let width = check_dimension(path, "width", i32::from_le_bytes(le_bytes(bytes, 4)))?;
    let height = check_dimension(path, "height", i32::from_le_bytes(le_bytes(bytes, 8)))?;
    Ok((width, height))
}

/// Decodes a `.flo` file held in memory; `path` only names the file in errors. The header is checked
/// against the length of `bytes` before the flow is allocated, so a corrupt header cannot cause a large
/// allocation. Fails with [`Error::Format`] on a bad tag, a width or height outside `1..=100000`, or a length that is
/// not exactly `12 + 8 * width * height` bytes.
pub fn decode_flo(bytes: &[u8], path: &Path) -> Result<Flow> {
    let (width, height) = decode_header(bytes, path)?;
    // Both dimensions are <= 1e5, so this fits in u64 (and in usize on 64-bit targets, checked below).
    let expected = HEADER_BYTES as u64 + 8 * width as u64 * height as u64;
    if bytes.len() as u64 != expected {
        let problem = if (bytes.len() as u64) < expected { "truncated" } else { "trailing data in" };
        return Err(Error::format(
            path,
            format!("{problem} .flo file: {} bytes, but a {width}x{height} flow needs exactly {expected}", bytes.len()),
        ));
    }
    let data = bytes[HEADER_BYTES..].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    Flow::from_interleaved(width, height, data)
}

/// Encodes `flow` as `.flo` bytes. No checks: [`write_flo`] is the validating entry point (dimensions in
/// `1..=100000`, consistent data length).
pub fn encode_flo(flow: &Flow) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER_BYTES + 4 * flow.data.len());
    bytes.extend_from_slice(&FLO_TAG.to_le_bytes());
    bytes.extend_from_slice(&(flow.width as i32).to_le_bytes());
    bytes.extend_from_slice(&(flow.height as i32).to_le_bytes());
    for value in &flow.data {
        bytes.extend_from_slice(&value.to_le_bytes());
    }
    bytes
}

/// Reads a Middlebury `.flo` file: a regular file of at most [`MAX_FLO_BYTES`] bytes, whose header must
/// agree with its length before anything is allocated for the flow (see [`decode_flo`]).
pub fn read_flo(path: impl AsRef<Path>) -> Result<Flow> {
    let path = path.as_ref();
    decode_flo(&read_limited(path, MAX_FLO_BYTES)?, path)
}

/// Writes `flow` as a Middlebury `.flo` file, atomically (see [`super::write_atomic`]).
pub fn write_flo(path: impl AsRef<Path>, flow: &Flow) -> Result<()> {
    let path = path.as_ref();
    let limit = MAX_FLO_DIMENSION as usize;
    if flow.width == 0 || flow.height == 0 || flow.width > limit || flow.height > limit {
        return Err(Error::format(
            path,
            format!(
                "cannot write a {}x{} flow as .flo: width and height must be in 1..={limit}",
                flow.width, flow.height
            ),
        ));
    }
    flow.check_consistent()?;
    write_atomic(path, &encode_flo(flow))
}
