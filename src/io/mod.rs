//! Files in and out: the flow formats (Middlebury `.flo`, KITTI 16-bit PNG), image frames decoded within
//! size limits, f16/bf16 conversions for stored weights, bounded reading of regular files, and safe,
//! atomic output writing (see [`output`]).

pub mod flo;
pub mod frame;
pub mod half;
pub mod homography;
pub mod kitti;
pub mod mat5;
pub mod matches;
pub mod output;

pub use flo::{decode_flo, encode_flo, read_flo, write_flo};
pub use frame::{decode_frame, read_frame};
pub use kitti::{decode_kitti_flow, encode_kitti_flow, read_kitti_flow, write_kitti_flow};
pub use output::{check_distinct, check_output, write_atomic, CheckedOutput, OutputSet};

use crate::{Error, Result};
use std::io::Read;
use std::path::Path;

/// An input problem as an [`Error::Io`] naming `path`.
fn input_error(path: &Path, kind: std::io::ErrorKind, message: String) -> Error {
    Error::io(path, std::io::Error::new(kind, message))
}

/// Checks that `path` is a regular file (symbolic links followed) of at most `max_bytes` bytes and returns
/// its size. Devices (`/dev/zero`), FIFOs, sockets and directories are refused: reading them could block
/// or never end.
pub fn check_input(path: impl AsRef<Path>, max_bytes: u64) -> Result<u64> {
    let path = path.as_ref();
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(input_error(
            path,
            std::io::ErrorKind::InvalidInput,
            format!("it is {}, not a regular file: give the path of a file", output::kind_name(&meta.file_type())),
        ));
    }
    if meta.len() > max_bytes {
        return Err(input_error(
            path,
            std::io::ErrorKind::InvalidData,
            format!("the file is {} bytes, more than the {max_bytes} bytes accepted for this kind of file", meta.len()),
        ));
    }
    Ok(meta.len())
}

/// Reads a whole regular file of at most `max_bytes` bytes (see [`check_input`]). The read itself is bounded
/// too, so a file that grows while it is read cannot make the allocation exceed the limit.
pub fn read_limited(path: impl AsRef<Path>, max_bytes: u64) -> Result<Vec<u8>> {
    let path = path.as_ref();
    let len = check_input(path, max_bytes)?;
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    // Between the check and the open the path may have been swapped for something else: check the file
    // actually opened.
    let opened = file.metadata().map_err(|e| Error::io(path, e))?;
    if !opened.is_file() {
        return Err(input_error(path, std::io::ErrorKind::InvalidInput, "it stopped being a regular file".into()));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(max_bytes.saturating_add(1)).read_to_end(&mut bytes).map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > max_bytes {
        return Err(input_error(
            path,
            std::io::ErrorKind::InvalidData,
            format!("the file grew past the {max_bytes} bytes accepted while it was being read"),
        ));
    }
    Ok(bytes)
}
