//! Writing results without destroying anything the user did not ask to replace.
//!
//! Rules, checked before any work ([`check_output`], [`check_distinct`], [`OutputSet::check`]) and again at
//! the moment of writing ([`write_atomic`], [`OutputSet::write`]):
//! - only regular files are written: a directory, character or block device, FIFO or socket at the path is
//!   refused, never replaced;
//! - a symbolic link is followed to its final target; the target is replaced (atomically) and the link stays;
//! - the directory must exist and be a directory, and must accept a new file;
//! - an output must not be the same file as an input or another output (canonical paths, and on Unix the
//!   same device and inode, so hard links count too);
//! - errors name the path the user gave (and its link target where there is one), never a temporary file.
//!
//! Each file is replaced atomically: its bytes go to a temporary sibling `<name>.tmp-<pid>-<n>`, are synced,
//! then renamed over the target, so a reader sees the old file or the complete new one. On any failure the
//! temporary file is removed.

use crate::{Error, Result};
use std::ffi::OsString;
use std::fs::{File, FileType, OpenOptions, Permissions};
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Linux's `MAXSYMLINKS`: more links than this in a chain is treated as a loop.
const MAX_SYMLINK_HOPS: usize = 40;

/// Distinguishes temporary names when several threads of one process write into one directory.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// An output path that passed [`check_output`]: what the user gave and the file that will be replaced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedOutput {
    /// The path as the user gave it; errors name this.
    pub path: PathBuf,
    /// The file that is written: `path` with every symbolic link followed, in a canonical directory.
    pub target: PathBuf,
    /// Whether a regular file exists at `target` now (and will be replaced).
    pub exists: bool,
}

/// The file type in words, for messages.
pub(crate) fn kind_name(file_type: &FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_char_device() {
            return "a character device";
        }
        if file_type.is_block_device() {
            return "a block device";
        }
        if file_type.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if file_type.is_socket() {
            return "a socket";
        }
    }
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_symlink() {
        "a symbolic link"
    } else if file_type.is_file() {
        "a regular file"
    } else {
        "not a regular file"
    }
}

/// Follows symbolic links starting at `user` and returns the final path, which need not exist.
fn follow_links(user: &Path) -> Result<PathBuf> {
    let mut current = user.to_path_buf();
    for _ in 0..MAX_SYMLINK_HOPS {
        match std::fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let link = std::fs::read_link(&current).map_err(|e| {
                    Error::output(user, format!("cannot read the symbolic link {}: {e}", current.display()))
                })?;
                current = match current.parent() {
                    Some(dir) if link.is_relative() => dir.join(link),
                    _ => link,
                };
            }
            _ => return Ok(current),
        }
    }
    Err(Error::output(user, format!("more than {MAX_SYMLINK_HOPS} symbolic links in a row (a loop?)")))
}

/// ` (following the symbolic link to T)` when `followed` differs from what the user typed, for messages.
fn via_link(user: &Path, followed: &Path) -> String {
    if user == followed {
        String::new()
    } else {
        format!(" (following the symbolic link to {})", followed.display())
    }
}

/// Where an output really goes: `target` in the canonical directory `dir`.
#[derive(Clone)]
struct Resolved {
    dir: PathBuf,
    target: PathBuf,
    /// The permissions of the regular file at `target`, if one exists (kept by the replacement).
    existing: Option<Permissions>,
    /// For messages: which symbolic link was followed, if any (see [`via_link`]).
    link_note: String,
}

/// Refuses anything at `target` but a regular file; returns its permissions if a file is there.
fn check_target_kind(user: &Path, target: &Path, link_note: &str) -> Result<Option<Permissions>> {
    match std::fs::symlink_metadata(target) {
        Ok(meta) if meta.file_type().is_file() => Ok(Some(meta.permissions())),
        Ok(meta) => {
            let kind = kind_name(&meta.file_type());
            let what = if link_note.is_empty() {
                format!("it is {kind}")
            } else {
                format!("it is a symbolic link to {}, which is {kind}", target.display())
            };
            Err(Error::output(
                user,
                format!("{what}; corrflow writes only regular files, so it is left untouched: give a file path"),
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::output(user, format!("cannot inspect it{link_note}: {e}"))),
    }
}

/// Follows links, checks the directory and what sits at the final path.
fn resolve_output(user: &Path) -> Result<Resolved> {
    if user.as_os_str().is_empty() {
        return Err(Error::output(user, "the path is empty: give a file name"));
    }
    let followed = follow_links(user)?;
    let link_note = via_link(user, &followed);
    let ends_in_dir = followed.as_os_str().to_string_lossy().ends_with('/')
        || matches!(followed.components().next_back(), Some(Component::ParentDir | Component::CurDir));
    let name = match followed.file_name() {
        Some(name) if !ends_in_dir => name.to_os_string(),
        _ => {
            return Err(Error::output(
                user,
                format!("the path{link_note} names a directory, not a file: add a file name"),
            ))
        }
    };
    let parent = match followed.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let dir = match std::fs::metadata(&parent) {
        Ok(meta) if meta.is_dir() => std::fs::canonicalize(&parent)
            .map_err(|e| Error::output(user, format!("cannot resolve directory {}: {e}", parent.display())))?,
        Ok(meta) => {
            return Err(Error::output(
                user,
                format!("{} is {}, not a directory{link_note}", parent.display(), kind_name(&meta.file_type())),
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::output(
                user,
                format!(
                    "directory {} does not exist{link_note}: create it first or choose another path",
                    parent.display()
                ),
            ))
        }
        Err(e) => return Err(Error::output(user, format!("cannot access directory {}: {e}", parent.display()))),
    };
    let target = dir.join(name);
    let existing = check_target_kind(user, &target, &link_note)?;
    Ok(Resolved { dir, target, existing, link_note })
}

/// `<dir>/<name>.tmp-<pid>-<n>`: a sibling of `target`, so the final rename stays on one file system.
fn temp_sibling(resolved: &Resolved) -> PathBuf {
    let mut temp_name = OsString::from(resolved.target.file_name().unwrap_or_default());
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    temp_name.push(format!(".tmp-{}-{n}", std::process::id()));
    resolved.dir.join(temp_name)
}

/// A temporary file holding an output's complete bytes, synced, waiting to be renamed over its target.
/// Dropping it without [`Pending::commit`] removes it, so no failure path leaves it behind.
struct Pending {
    user: PathBuf,
    resolved: Resolved,
    temp: PathBuf,
    committed: bool,
}

impl Pending {
    /// Creates the temporary file (never over an existing one), writes `bytes` and syncs them.
    fn prepare(user: &Path, resolved: Resolved, bytes: &[u8]) -> Result<Pending> {
        let temp = temp_sibling(&resolved);
        let mut file = OpenOptions::new().write(true).create_new(true).open(&temp).map_err(|e| {
            Error::output(user, format!("cannot create a file in directory {}: {e}", resolved.dir.display()))
        })?;
        let pending = Pending { user: user.to_path_buf(), resolved, temp, committed: false };
        // The replacement keeps the old file's permissions (a private 0600 file stays private).
        if let Some(permissions) = &pending.resolved.existing {
            let _ = file.set_permissions(permissions.clone());
        }
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::output(user, format!("writing {} bytes failed: {e}", bytes.len())))?;
        Ok(pending)
    }

    /// Renames the temporary file over the target, after checking once more that the target is still a
    /// regular file or absent (it may have changed since the first check).
    fn commit(mut self) -> Result<()> {
        check_target_kind(&self.user, &self.resolved.target, &self.resolved.link_note)?;
        std::fs::rename(&self.temp, &self.resolved.target)
            .map_err(|e| Error::output(&self.user, format!("cannot replace it: {e}")))?;
        self.committed = true;
        // Make the rename itself durable; not every file system can sync a directory, hence best effort.
        if let Ok(dir) = File::open(&self.resolved.dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// Checks an output path before any work is done: follows symbolic links, refuses a directory, device,
/// FIFO or socket, requires the directory to exist, and proves it writable by creating and removing a
/// temporary file there. Errors are [`Error::Output`] naming `path`.
pub fn check_output(path: impl AsRef<Path>) -> Result<CheckedOutput> {
    let user = path.as_ref();
    let resolved = resolve_output(user)?;
    // The probe is an empty temporary file; dropping it uncommitted removes it.
    drop(Pending::prepare(user, Resolved { existing: None, ..resolved.clone() }, &[])?);
    Ok(CheckedOutput { path: user.to_path_buf(), target: resolved.target, exists: resolved.existing.is_some() })
}

/// What a path refers to, for same-file comparisons: its resolved path and, where it exists on Unix, its
/// device and inode.
struct Identity {
    resolved: PathBuf,
    inode: Option<(u64, u64)>,
}

impl Identity {
    fn of(path: &Path) -> Identity {
        let resolved = resolve_output(path).map(|r| r.target).unwrap_or_else(|_| lexical_absolute(path));
        #[cfg(unix)]
        let inode = {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
        };
        #[cfg(not(unix))]
        let inode = None;
        Identity { resolved, inode }
    }

    fn same_file(&self, other: &Identity) -> bool {
        self.resolved == other.resolved || (self.inode.is_some() && self.inode == other.inode)
    }
}

/// `path` made absolute against the working directory with `.` and `..` removed, for paths that cannot be
/// resolved on disk (their directory is missing; the output check reports that separately).
fn lexical_absolute(path: &Path) -> PathBuf {
    let absolute = std::env::current_dir().map(|cwd| cwd.join(path)).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for component in absolute.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Refuses outputs that are the same file as an input or as another output: an output over an input would
/// destroy it, two outputs on one file would keep only the last. Paths are compared after following
/// symbolic links and resolving `.` and `..` (and by device and inode on Unix). The error names both paths
/// as given.
pub fn check_distinct<I: AsRef<Path>, O: AsRef<Path>>(inputs: &[I], outputs: &[O]) -> Result<()> {
    let input_ids: Vec<Identity> = inputs.iter().map(|p| Identity::of(p.as_ref())).collect();
    let output_ids: Vec<Identity> = outputs.iter().map(|p| Identity::of(p.as_ref())).collect();
    for (k, (output, id)) in outputs.iter().zip(&output_ids).enumerate() {
        let output = output.as_ref();
        if let Some(input) = inputs.iter().zip(&input_ids).find(|(_, i)| i.same_file(id)).map(|(p, _)| p.as_ref()) {
            return Err(Error::output(
                output,
                format!(
                    "it is the same file as the input {}, which would be overwritten: choose another output path",
                    input.display()
                ),
            ));
        }
        if let Some(earlier) = outputs[..k].iter().zip(&output_ids).find(|(_, o)| o.same_file(id)).map(|(p, _)| p) {
            return Err(Error::output(
                output,
                format!(
                    "it is the same file as the output {}, so one result would overwrite the other: give each \
                     output its own path",
                    earlier.as_ref().display()
                ),
            ));
        }
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically: readers see either the old file or the complete new one, never a
/// partial write. A symbolic link at `path` is followed and its target replaced (the link stays); a
/// directory, device, FIFO or socket is refused and left untouched. The data goes to a temporary sibling,
/// is synced, then renamed over the target; on any failure the temporary file is removed and the error
/// ([`Error::Output`]) names `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let resolved = resolve_output(path)?;
    Pending::prepare(path, resolved, bytes)?.commit()
}

/// The outputs of one run, checked together before the work starts and written together at the end.
///
/// Guarantee: [`OutputSet::write`] first writes every file's bytes to its temporary sibling and syncs it; if
/// any of those fails, every temporary file is removed and no output has been touched. Only then are the
/// temporary files renamed over their targets, one by one. Each rename is atomic; a rename that fails after
/// an earlier one succeeded (the target was replaced by a directory meanwhile, the file system went
/// read-only) leaves the earlier outputs already replaced, and the error says which.
#[derive(Clone, Debug)]
pub struct OutputSet {
    outputs: Vec<CheckedOutput>,
}

impl OutputSet {
    /// Checks every output with [`check_output`] and all of them against the inputs and one another with
    /// [`check_distinct`]. Call it before any expensive work.
    pub fn check<I: AsRef<Path>, O: AsRef<Path>>(inputs: &[I], outputs: &[O]) -> Result<OutputSet> {
        let checked = outputs.iter().map(check_output).collect::<Result<Vec<_>>>()?;
        check_distinct(inputs, outputs)?;
        Ok(OutputSet { outputs: checked })
    }

    /// The checked outputs, in the order given.
    pub fn outputs(&self) -> &[CheckedOutput] {
        &self.outputs
    }

    /// Writes each `(path, bytes)`; every `path` must be one of the checked outputs (spelled as given to
    /// [`OutputSet::check`]), each at most once. See the type's documentation for the guarantee.
    pub fn write(&self, files: &[(&Path, &[u8])]) -> Result<()> {
        for (k, (path, _)) in files.iter().enumerate() {
            if !self.outputs.iter().any(|o| o.path == *path) {
                return Err(Error::output(path, "it was not among the outputs checked before the run"));
            }
            if files[..k].iter().any(|(p, _)| p == path) {
                return Err(Error::output(path, "it was given twice in one write"));
            }
        }
        let mut pending = Vec::with_capacity(files.len());
        for (path, bytes) in files {
            pending.push(Pending::prepare(path, resolve_output(path)?, bytes)?);
        }
        let mut done: Vec<String> = Vec::new();
        for file in pending {
            let user = file.user.clone();
            match file.commit() {
                Err(Error::Output { path, message }) if !done.is_empty() => {
                    let message = format!("{message}; already replaced before this failure: {}", done.join(", "));
                    return Err(Error::Output { path, message });
                }
                Err(e) => return Err(e),
                Ok(()) => {}
            }
            done.push(user.display().to_string());
        }
        Ok(())
    }
}
