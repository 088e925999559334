//! Flow file formats (Middlebury `.flo`, KITTI 16-bit PNG) and the atomic file write they share.

pub mod flo;
pub mod kitti;

pub use flo::{decode_flo, encode_flo, read_flo, write_flo};
pub use kitti::{decode_kitti_flow, encode_kitti_flow, read_kitti_flow, write_kitti_flow};

use crate::{Error, Result};
use std::ffi::OsString;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Distinguishes temporary names when several threads of one process write the same path.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// `<dir>/<name>.tmp-<pid>-<n>`: a sibling of `path`, so the final rename stays on one file system.
fn temp_sibling(path: &Path) -> Result<PathBuf> {
    let name = path.file_name().ok_or_else(|| {
        Error::io(path, std::io::Error::new(std::io::ErrorKind::InvalidInput, "path has no file name"))
    })?;
    let mut temp_name = OsString::from(name);
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    temp_name.push(format!(".tmp-{}-{n}", std::process::id()));
    Ok(path.with_file_name(temp_name))
}

/// Creates `temp`, writes `bytes` and syncs them to disk.
fn write_synced(temp: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = File::create(temp)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Writes `bytes` to `path` atomically: readers see either the old file or the complete new one, never a
/// partial write. The data goes to a temporary sibling (`<name>.tmp-<pid>-<n>`), is synced, then renamed over
/// `path`; on any failure the temporary file is removed and the error names the path that failed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let temp = temp_sibling(path)?;
    if let Err(e) = write_synced(&temp, bytes) {
        let _ = std::fs::remove_file(&temp);
        return Err(Error::io(&temp, e));
    }
    if let Err(e) = std::fs::rename(&temp, path) {
        let _ = std::fs::remove_file(&temp);
        return Err(Error::io(path, e));
    }
    Ok(())
}

/// Reads a whole file, naming it in the error.
pub(crate) fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}
