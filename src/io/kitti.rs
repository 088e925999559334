//! KITTI flow PNGs (Geiger et al., CVPR 2012; Menze & Geiger, CVPR 2015; devkit `flow_read.m` /
//! `io_flow.h`).
//!
//! A 16-bit RGB PNG: `u = (R - 2^15) / 64`, `v = (G - 2^15) / 64`, `B` = 1 where the ground truth is
//! valid and 0 elsewhere. Values are therefore quantised to 1/64 px and limited to about +-512 px.

use super::frame::{decode_image, MAX_IMAGE_FILE_BYTES};
use super::{read_limited, write_atomic};
use crate::flow::UNKNOWN_FLOW;
use crate::{Error, Flow, Result};
use image::codecs::png::PngEncoder;
use image::{ColorType, DynamicImage, ExtendedColorType, ImageEncoder, ImageFormat};
use std::path::Path;

/// The channel value that encodes zero flow.
const ZERO_OFFSET: f32 = 32768.0;
/// Channel steps per pixel of flow.
const SCALE: f32 = 64.0;

/// Channel value to flow in pixels.
fn decode_component(value: u16) -> f32 {
    (value as f32 - ZERO_OFFSET) / SCALE
}

/// Flow in pixels to the nearest channel value, clamped to the 16-bit range.
fn encode_component(value: f32) -> u16 {
    (value * SCALE + ZERO_OFFSET).round().clamp(0.0, u16::MAX as f32) as u16
}

/// Decodes PNG bytes (within the limits of [`super::frame`]) and insists on 16-bit RGB, the only layout
/// KITTI flow uses.
fn decode_rgb16(bytes: &[u8], path: &Path) -> Result<image::ImageBuffer<image::Rgb<u16>, Vec<u16>>> {
    let image = decode_image(bytes, path, Some(ImageFormat::Png))?;
    match image {
        DynamicImage::ImageRgb16(buffer) => Ok(buffer),
        other => Err(Error::format(
            path,
            format!(
                "not a KITTI flow PNG: expected 16-bit RGB, found {} ({} bits per channel); \
                 KITTI stores u, v and validity in the R, G, B channels at 16 bits each",
                color_name(other.color()),
                other.color().bits_per_pixel() / other.color().channel_count() as u16
            ),
        )),
    }
}

/// A short human name for a PNG colour layout.
fn color_name(color: ColorType) -> &'static str {
    match color {
        ColorType::L8 | ColorType::L16 => "greyscale",
        ColorType::La8 | ColorType::La16 => "greyscale + alpha",
        ColorType::Rgb8 | ColorType::Rgb16 | ColorType::Rgb32F => "RGB",
        ColorType::Rgba8 | ColorType::Rgba16 | ColorType::Rgba32F => "RGBA",
        _ => "an unsupported colour type",
    }
}

/// Decodes a KITTI flow PNG held in memory; `path` only names the file in errors. The PNG's declared size
/// is checked against the limits of [`super::frame`] (32768 px per side, 1 GiB, and what the data's length
/// can hold) before anything is allocated.
///
/// Returns the flow and its validity mask (`B != 0`). Invalid pixels get the Middlebury unknown-flow value
/// ([`UNKNOWN_FLOW`], 1e10) so that [`Flow::valid_mask`] agrees with the returned mask and a flow written
/// back out as `.flo` keeps its holes.
pub fn decode_kitti_flow(bytes: &[u8], path: &Path) -> Result<(Flow, Vec<bool>)> {
    let buffer = decode_rgb16(bytes, path)?;
    let (width, height) = (buffer.width() as usize, buffer.height() as usize);
    let mut data = Vec::with_capacity(2 * width * height);
    let mut valid = Vec::with_capacity(width * height);
    for pixel in buffer.as_raw().chunks_exact(3) {
        let is_valid = pixel[2] != 0;
        valid.push(is_valid);
        if is_valid {
            data.extend([decode_component(pixel[0]), decode_component(pixel[1])]);
        } else {
            data.extend([UNKNOWN_FLOW, UNKNOWN_FLOW]);
        }
    }
    Ok((Flow::from_interleaved(width, height, data)?, valid))
}

/// Reads a KITTI 16-bit flow PNG: a regular file of at most 1 GiB, decoded by [`decode_kitti_flow`].
pub fn read_kitti_flow(path: impl AsRef<Path>) -> Result<(Flow, Vec<bool>)> {
    let path = path.as_ref();
    decode_kitti_flow(&read_limited(path, MAX_IMAGE_FILE_BYTES)?, path)
}

/// Checks that `flow` is self-consistent, fits a PNG, and that `valid` (if any) has one entry per pixel.
fn check_encodable(flow: &Flow, valid: Option<&[bool]>) -> Result<(u32, u32)> {
    flow.check_consistent()?;
    let pixels = flow.pixel_count();
    if let Some(mask) = valid.filter(|m| m.len() != pixels) {
        return Err(Error::Mismatch {
            message: format!("validity mask has {} entries but the flow has {pixels} pixels", mask.len()),
        });
    }
    match (u32::try_from(flow.width), u32::try_from(flow.height)) {
        (Ok(w), Ok(h)) if w > 0 && h > 0 => Ok((w, h)),
        _ => Err(Error::Shape {
            op: "encode_kitti_flow",
            message: format!("a {}x{} flow cannot be stored as a PNG", flow.width, flow.height),
        }),
    }
}

/// Encodes `flow` as KITTI 16-bit PNG bytes.
///
/// A pixel is written as valid (`B = 1`) when `valid` (if given) marks it and its flow is valid per
/// [`Flow::valid_mask`]; invalid pixels are written as zero flow with `B = 0`. Values are rounded to the
/// nearest 1/64 px and clamped to the 16-bit range (about +-512 px).
pub fn encode_kitti_flow(flow: &Flow, valid: Option<&[bool]>) -> Result<Vec<u8>> {
    let (width, height) = check_encodable(flow, valid)?;
    let own_valid = flow.valid_mask();
    let mut channels: Vec<u16> = Vec::with_capacity(3 * own_valid.len());
    for (i, uv) in flow.data.chunks_exact(2).enumerate() {
        let is_valid = own_valid[i] && valid.is_none_or(|m| m[i]);
        if is_valid {
            channels.extend([encode_component(uv[0]), encode_component(uv[1]), 1]);
        } else {
            channels.extend([encode_component(0.0), encode_component(0.0), 0]);
        }
    }
    let mut png = Vec::new();
    PngEncoder::new(&mut png)
        .write_image(bytemuck::cast_slice(&channels), width, height, ExtendedColorType::Rgb16)
        .map_err(|e| Error::Image { path: "<memory>".into(), message: format!("cannot encode PNG: {e}") })?;
    Ok(png)
}

/// Writes `flow` as a KITTI 16-bit flow PNG, atomically; see [`encode_kitti_flow`] for the encoding.
pub fn write_kitti_flow(path: impl AsRef<Path>, flow: &Flow, valid: Option<&[bool]>) -> Result<()> {
    let path = path.as_ref();
    let png = encode_kitti_flow(flow, valid).map_err(|e| with_path(e, path))?;
    write_atomic(path, &png)
}

/// Replaces the placeholder path of an in-memory encoding error with the real destination.
fn with_path(error: Error, path: &Path) -> Error {
    match error {
        Error::Image { message, .. } => Error::Image { path: path.into(), message },
        other => other,
    }
}
