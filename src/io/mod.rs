//! Files in and out: the flow formats (Middlebury `.flo`, KITTI 16-bit PNG) and safe, atomic output
//! writing (see [`output`]).

pub mod flo;
pub mod kitti;
pub mod output;

pub use flo::{decode_flo, encode_flo, read_flo, write_flo};
pub use kitti::{decode_kitti_flow, encode_kitti_flow, read_kitti_flow, write_kitti_flow};
pub use output::{check_distinct, check_output, write_atomic, CheckedOutput, OutputSet};

use crate::{Error, Result};
use std::path::Path;

/// Reads a whole file, naming it in the error.
pub(crate) fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}
