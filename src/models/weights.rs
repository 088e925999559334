//! Named f32 tensors from a safetensors file, checked on the way in (dtype, finiteness) so that the
//! networks can ask for a tensor by name and expected shape and get a precise error otherwise.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Result};
use crate::runtime::HostTensor;

/// A set of named tensors (f32), as stored in a safetensors file.
#[derive(Clone, Debug, Default)]
pub struct Weights {
    /// Where the tensors came from, for error messages.
    pub source: String,
    tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    metadata: BTreeMap<String, String>,
}

/// Largest weights file [`Weights::load`] reads: 4 GiB (FlowNetC at full width is about 150 MB in f32).
pub const MAX_WEIGHTS_BYTES: u64 = 4 << 30;

impl Weights {
    /// Reads a safetensors file: a regular file of at most [`MAX_WEIGHTS_BYTES`], parsed by
    /// [`Weights::from_bytes`]. Devices such as `/dev/zero`, FIFOs and directories are refused.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = crate::io::read_limited(path, MAX_WEIGHTS_BYTES)?;
        Self::from_bytes(&bytes, &path.display().to_string())
    }

    /// Parses safetensors bytes; `source` names them in errors.
    pub fn from_bytes(bytes: &[u8], source: &str) -> Result<Self> {
        let err = |message: String| Error::Weights { path: source.to_string(), message };
        let st = safetensors::SafeTensors::deserialize(bytes)
            .map_err(|e| err(format!("not a valid safetensors file (truncated or another format?): {e}")))?;
        let (_, meta) = safetensors::SafeTensors::read_metadata(bytes)
            .map_err(|e| err(format!("unreadable safetensors header: {e}")))?;
        let metadata = meta.metadata().clone().unwrap_or_default().into_iter().collect();
        let mut tensors = BTreeMap::new();
        for (name, view) in st.tensors() {
            if view.dtype() != safetensors::Dtype::F32 {
                return Err(err(format!(
                    "tensor `{name}` is {:?}; corrflow reads f32 weights (convert with `.float()` before saving)",
                    view.dtype()
                )));
            }
            let data: Vec<f32> =
                view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            if let Some(i) = data.iter().position(|v| !v.is_finite()) {
                return Err(err(format!("tensor `{name}` holds a non-finite value ({}) at flat index {i}: the file is corrupt or from a diverged training run", data[i])));
            }
            tensors.insert(name, (view.shape().to_vec(), data));
        }
        Ok(Weights { source: source.to_string(), tensors, metadata })
    }

    /// Builds a set from tensors in memory (for tests and training).
    pub fn from_tensors(source: &str, tensors: impl IntoIterator<Item = (String, Vec<usize>, Vec<f32>)>) -> Self {
        Weights {
            source: source.to_string(),
            tensors: tensors.into_iter().map(|(n, s, d)| (n, (s, d))).collect(),
            metadata: BTreeMap::new(),
        }
    }

    /// Adds a metadata entry (saved in the safetensors header).
    pub fn with_metadata(mut self, key: &str, value: impl ToString) -> Self {
        self.metadata.insert(key.to_string(), value.to_string());
        self
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(|s| s.as_str())
    }
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }
    /// Shape of a tensor, if present.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.tensors.get(name).map(|(s, _)| s.as_slice())
    }

    /// The tensor `name`, which must have exactly `shape`.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<&[f32]> {
        let (have, data) = self.tensors.get(name).ok_or_else(|| Error::Weights {
            path: self.source.clone(),
            message: format!("missing tensor `{name}` (expected shape {shape:?})"),
        })?;
        if have.as_slice() != shape {
            return Err(Error::Weights {
                path: self.source.clone(),
                message: format!("tensor `{name}` has shape {have:?}, expected {shape:?}"),
            });
        }
        Ok(data)
    }

    /// The 4-D tensor `name` as a [`HostTensor`].
    pub fn get4(&self, name: &str, shape: [usize; 4]) -> Result<HostTensor> {
        let data = self.get(name, &shape)?;
        HostTensor::new(shape, data.to_vec())
    }

    /// Serialises to safetensors bytes (f32), with optional metadata.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = self
            .tensors
            .iter()
            .map(|(n, (s, d))| {
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), bytemuck::cast_slice(d))
                    .map(|v| (n.clone(), v))
            })
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::Weights { path: self.source.clone(), message: e.to_string() })?;
        let meta: std::collections::HashMap<String, String> = self.metadata.clone().into_iter().collect();
        safetensors::serialize(views, Some(meta))
            .map_err(|e| Error::Weights { path: self.source.clone(), message: e.to_string() })
    }

    /// Writes a safetensors file atomically.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        crate::io::write_atomic(path.as_ref(), &self.to_bytes()?)
    }
}
