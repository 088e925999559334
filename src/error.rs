//! The crate's one error type. Every variant says what went wrong and, where the caller can act, what to do.

use std::path::PathBuf;

/// Result alias used throughout corrflow.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No usable GPU or software adapter.
    #[error("no graphics adapter found{detail}: install a GPU driver, or Mesa's software Vulkan driver (`apt-get install mesa-vulkan-drivers libvulkan1`), or unset WGPU_BACKEND / WGPU_ADAPTER_NAME if they exclude every adapter")]
    NoAdapter { detail: String },

    /// The adapter refused to give us a device.
    #[error("could not open a device on adapter `{adapter}`: {message}")]
    RequestDevice { adapter: String, message: String },

    /// A WGSL kernel failed to compile or its pipeline failed validation.
    #[error("kernel `{kernel}` failed to build: {message}")]
    Kernel { kernel: &'static str, message: String },

    /// A GPU error raised while running a kernel (validation, out of memory, device lost).
    #[error("GPU error in `{op}`: {message}")]
    Gpu { op: String, message: String },

    /// A tensor would exceed what the adapter can bind in one storage buffer.
    #[error("tensor `{name}` of shape {shape:?} needs {bytes} bytes, but adapter `{adapter}` binds at most {limit} bytes per storage buffer{hint}")]
    TooLarge { name: String, shape: Vec<usize>, bytes: u64, limit: u64, adapter: String, hint: String },

    /// Shapes passed to an op do not fit together.
    #[error("{op}: {message}")]
    Shape { op: &'static str, message: String },

    /// A parameter is outside the range an op supports.
    #[error("{op}: invalid parameter: {message}")]
    InvalidParam { op: &'static str, message: String },

    /// Weights file problems: missing tensor, wrong shape, NaN, wrong network.
    #[error("weights {path}: {message}")]
    Weights { path: String, message: String },

    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A file exists but its content is not what the format requires.
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },

    /// An output path cannot be written: it is a directory, device, FIFO or socket, its directory is missing or
    /// not writable, or it is the same file as an input or another output. Raised before any work is done.
    #[error("cannot write {path}: {message}")]
    Output { path: PathBuf, message: String },

    /// An image could not be decoded or encoded.
    #[error("{path}: {message}")]
    Image { path: PathBuf, message: String },

    /// Two inputs that must agree do not (frame sizes, flow sizes).
    #[error("{message}")]
    Mismatch { message: String },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
    pub(crate) fn format(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Format { path: path.into(), message: message.into() }
    }
    pub(crate) fn output(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Output { path: path.into(), message: message.into() }
    }
}
