//! Image decoding within limits, shared by the frame loader and the KITTI flow reader.
//!
//! An image header can declare any size; decoders allocate the whole output before reading the pixel data.
//! So before decoding, the declared size is checked against:
//! - [`MAX_IMAGE_SIDE`] pixels per side and [`MAX_DECODED_BYTES`] of decoded pixels, and
//! - what the file's own length can plausibly hold: [`DECODED_BYTES_ANY_FILE`] plus [`MAX_EXPANSION`]
//!   decoded bytes per byte of file. Deflate (PNG) cannot expand data more than 1032:1, so no valid PNG is
//!   refused by this rule; a JPEG or run-length BMP of a nearly uniform picture can beat that ratio, and is
//!   refused only when it also decodes to more than 64 MiB.
//!
//! The same budget is handed to the `image` crate as `Limits::max_alloc`, which bounds the decoders' own
//! buffers as well.

use crate::{Error, Result};
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};
use std::io::Cursor;
use std::path::Path;

/// Largest width or height accepted, in pixels.
pub const MAX_IMAGE_SIDE: u32 = 32_768;
/// Largest decoded image accepted, in bytes (1 GiB).
pub const MAX_DECODED_BYTES: u64 = 1 << 30;
/// Largest image file read from disk, in bytes (1 GiB).
pub const MAX_IMAGE_FILE_BYTES: u64 = 1 << 30;
/// Decoded bytes allowed whatever the file's length (64 MiB: a 4096 x 4096 RGBA frame).
pub const DECODED_BYTES_ANY_FILE: u64 = 64 << 20;
/// Decoded bytes allowed per byte of file beyond [`DECODED_BYTES_ANY_FILE`]: deflate's largest expansion.
pub const MAX_EXPANSION: u64 = 1032;

/// The most decoded bytes (output image plus decoder buffers) a file of `file_len` bytes may need.
pub fn decode_budget(file_len: u64) -> u64 {
    DECODED_BYTES_ANY_FILE.saturating_add(MAX_EXPANSION.saturating_mul(file_len)).min(MAX_DECODED_BYTES)
}

/// An [`Error::Image`] naming `path`.
fn image_error(path: &Path, message: String) -> Error {
    Error::Image { path: path.to_path_buf(), message }
}

/// Decodes `bytes` as an image of `format` (or of the format guessed from the content, then from `path`'s
/// extension), within the limits described in the module documentation. `path` names the file in errors.
pub(crate) fn decode_image(bytes: &[u8], path: &Path, format: Option<ImageFormat>) -> Result<DynamicImage> {
    let mut reader = ImageReader::new(Cursor::new(bytes));
    match format {
        Some(format) => reader.set_format(format),
        None => {
            reader = reader.with_guessed_format().map_err(|e| Error::io(path, e))?;
            if reader.format().is_none() {
                if let Ok(format) = ImageFormat::from_path(path) {
                    reader.set_format(format);
                }
            }
        }
    }
    let budget = decode_budget(bytes.len() as u64);
    let mut limits = Limits::default();
    limits.max_alloc = Some(budget);
    // Dimensions are checked below, with a message naming the limit.
    limits.max_image_width = None;
    limits.max_image_height = None;
    reader.limits(limits.clone());
    let cannot_decode = |e: image::ImageError| image_error(path, format!("cannot decode as an image: {e}"));
    let mut decoder = reader.into_decoder().map_err(cannot_decode)?;
    let (width, height) = decoder.dimensions();
    if width > MAX_IMAGE_SIDE || height > MAX_IMAGE_SIDE {
        return Err(image_error(
            path,
            format!(
                "the image declares {width}x{height} pixels, more than the {MAX_IMAGE_SIDE} pixels per side \
                 corrflow accepts: the file is corrupt, or downscale it"
            ),
        ));
    }
    let needed = decoder.total_bytes();
    if needed > budget {
        let reason = if budget == MAX_DECODED_BYTES {
            format!("the {MAX_DECODED_BYTES}-byte limit on decoded images: downscale it")
        } else {
            format!(
                "what a {}-byte file can hold ({budget} bytes: {DECODED_BYTES_ANY_FILE} plus {MAX_EXPANSION} per \
                 byte of file): the file is corrupt or truncated",
                bytes.len()
            )
        };
        return Err(image_error(
            path,
            format!("the image declares {width}x{height} pixels ({needed} bytes decoded), more than {reason}"),
        ));
    }
    // The output buffer counts against the budget; what is left bounds the decoder's own buffers.
    limits.reserve(needed).map_err(cannot_decode)?;
    decoder.set_limits(limits).map_err(cannot_decode)?;
    DynamicImage::from_decoder(decoder).map_err(cannot_decode)
}

/// Decodes an image frame held in memory (PNG, JPEG, PPM/PGM, BMP; RGB, RGBA, grey, 8 or 16 bit), the
/// format taken from the content or else from `name`'s extension; `name` only names it in errors. The
/// limits of this module apply ([`MAX_IMAGE_SIDE`], [`decode_budget`]).
pub fn decode_frame(bytes: &[u8], name: impl AsRef<Path>) -> Result<DynamicImage> {
    decode_image(bytes, name.as_ref(), None)
}

/// Reads an image frame: a regular file of at most [`MAX_IMAGE_FILE_BYTES`], decoded by [`decode_frame`].
pub fn read_frame(path: impl AsRef<Path>) -> Result<DynamicImage> {
    let path = path.as_ref();
    decode_frame(&super::read_limited(path, MAX_IMAGE_FILE_BYTES)?, path)
}
