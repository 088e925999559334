//! Named f32 tensors from a safetensors file (stored as f32, f16 or bf16), checked on the way in (size,
//! dtype, finiteness) so that the networks can ask for a tensor by name and expected shape and get a
//! precise error otherwise.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Result};
use crate::io::half::{bf16_to_f32, f16_to_f32, f32_to_bf16, f32_to_f16};
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
/// Largest safetensors JSON header, as the format itself allows (100 MB).
pub const MAX_HEADER_BYTES: u64 = 100_000_000;

/// How [`Weights::to_bytes_as`] / [`Weights::save_as`] store each value. Loading accepts all three and
/// converts to f32.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StoreAs {
    /// 4 bytes per value, exact.
    #[default]
    F32,
    /// IEEE binary16, 2 bytes per value: about 3 significant digits, magnitudes up to 65504; rounded to
    /// nearest even. A value beyond the range is an error, not an infinity.
    F16,
    /// bfloat16, 2 bytes per value: f32's range with about 2 significant digits; rounded to nearest even.
    BF16,
}

impl StoreAs {
    fn dtype(self) -> safetensors::Dtype {
        match self {
            StoreAs::F32 => safetensors::Dtype::F32,
            StoreAs::F16 => safetensors::Dtype::F16,
            StoreAs::BF16 => safetensors::Dtype::BF16,
        }
    }
}

/// Decodes a tensor's little-endian bytes to f32 (F32, F16 or BF16), or says which dtype is not supported.
fn decode_values(dtype: safetensors::Dtype, bytes: &[u8]) -> std::result::Result<Vec<f32>, String> {
    let pairs = || bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]));
    match dtype {
        safetensors::Dtype::F32 => {
            Ok(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
        }
        safetensors::Dtype::F16 => Ok(pairs().map(f16_to_f32).collect()),
        safetensors::Dtype::BF16 => Ok(pairs().map(bf16_to_f32).collect()),
        other => Err(format!(
            "is {other:?}; corrflow reads f32, f16 or bf16 weights (convert with `.float()` before saving)"
        )),
    }
}

/// Encodes f32 values as `store` little-endian bytes; a finite value that does not fit is an error naming
/// the value and its index.
fn encode_values(store: StoreAs, values: &[f32]) -> std::result::Result<Vec<u8>, String> {
    let (convert, infinity, name, largest): (fn(f32) -> u16, u16, &str, &str) = match store {
        StoreAs::F32 => return Ok(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
        StoreAs::F16 => (f32_to_f16, 0x7c00, "f16", "65504"),
        StoreAs::BF16 => (f32_to_bf16, 0x7f80, "bf16", "about 3.39e38"),
    };
    let mut bytes = Vec::with_capacity(2 * values.len());
    for (i, &v) in values.iter().enumerate() {
        let bits = convert(v);
        if v.is_finite() && bits & 0x7fff == infinity {
            return Err(format!(
                "holds {v} at flat index {i}, beyond the largest {name} value ({largest}): store it as f32{}",
                if store == StoreAs::F16 { " or bf16" } else { "" }
            ));
        }
        bytes.extend_from_slice(&bits.to_le_bytes());
    }
    Ok(bytes)
}

impl Weights {
    /// Reads a safetensors file: a regular file of at most [`MAX_WEIGHTS_BYTES`], parsed by
    /// [`Weights::from_bytes`]. Devices such as `/dev/zero`, FIFOs and directories are refused.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = crate::io::read_limited(path, MAX_WEIGHTS_BYTES)?;
        Self::from_bytes(&bytes, &path.display().to_string())
    }

    /// Parses safetensors bytes; `source` names them in errors. Tensors may be F32, F16 or BF16 (converted
    /// to f32) and must hold only finite values. The header's declared length is checked against the data
    /// before it is parsed, and every tensor's extent against the data (by the safetensors crate), so what
    /// is allocated is bounded by `bytes.len()`.
    pub fn from_bytes(bytes: &[u8], source: &str) -> Result<Self> {
        let err = |message: String| Error::Weights { path: source.to_string(), message };
        let Some(length_bytes) = bytes.get(..8) else {
            return Err(err(format!(
                "not a valid safetensors file: {} bytes, shorter than the 8-byte header length (truncated?)",
                bytes.len()
            )));
        };
        let header_len = u64::from_le_bytes(length_bytes.try_into().unwrap_or_default());
        let available = bytes.len() as u64 - 8;
        if header_len > available || header_len > MAX_HEADER_BYTES {
            return Err(err(format!(
                "not a valid safetensors file (truncated or another format?): the header declares {header_len} \
                 bytes, but {available} bytes follow and safetensors allows at most {MAX_HEADER_BYTES}"
            )));
        }
        let (_, meta) = safetensors::SafeTensors::read_metadata(bytes)
            .map_err(|e| err(format!("not a valid safetensors file (truncated or another format?): {e}")))?;
        // `read_metadata` checked that the tensors tile the data exactly, in offset order.
        let data = &bytes[8 + header_len as usize..];
        let metadata = meta.metadata().clone().unwrap_or_default().into_iter().collect();
        let mut tensors = BTreeMap::new();
        for (name, info) in meta.tensors() {
            let (start, end) = info.data_offsets;
            let raw = data.get(start..end).ok_or_else(|| {
                err(format!("tensor `{name}` claims bytes {start}..{end} but the data has {}", data.len()))
            })?;
            let values = decode_values(info.dtype, raw).map_err(|m| err(format!("tensor `{name}` {m}")))?;
            if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                return Err(err(format!("tensor `{name}` holds a non-finite value ({}) at flat index {i}: the file is corrupt or from a diverged training run", values[i])));
            }
            tensors.insert(name, (info.shape.clone(), values));
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

    /// Removes a metadata entry (if present).
    pub fn without_metadata(mut self, key: &str) -> Self {
        self.metadata.remove(key);
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

    /// Serialises to safetensors bytes (f32), with the metadata.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        self.to_bytes_as(StoreAs::F32)
    }

    /// Serialises to safetensors bytes storing every tensor as `store`, with the metadata. For
    /// [`StoreAs::F16`] a finite value beyond +-65504 is an error naming the tensor (likewise for bf16 past
    /// its range); values are otherwise rounded to nearest even.
    pub fn to_bytes_as(&self, store: StoreAs) -> Result<Vec<u8>> {
        self.to_bytes_per_tensor(|_| store)
    }

    /// Serialises to safetensors bytes storing each tensor as `store(name)` says (mixed precision: f16 for
    /// most tensors, f32 for the few whose rounding matters), with the metadata; errors as
    /// [`Weights::to_bytes_as`].
    pub fn to_bytes_per_tensor(&self, store: impl Fn(&str) -> StoreAs) -> Result<Vec<u8>> {
        let err = |message: String| Error::Weights { path: self.source.clone(), message };
        let encoded: Vec<(&String, &Vec<usize>, StoreAs, Vec<u8>)> = self
            .tensors
            .iter()
            .map(|(n, (s, d))| {
                let as_ = store(n);
                encode_values(as_, d).map(|b| (n, s, as_, b)).map_err(|m| err(format!("tensor `{n}` {m}")))
            })
            .collect::<Result<_>>()?;
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = encoded
            .iter()
            .map(|(n, s, as_, b)| {
                safetensors::tensor::TensorView::new(as_.dtype(), s.to_vec(), b).map(|v| (n.to_string(), v))
            })
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| err(e.to_string()))?;
        let meta: std::collections::HashMap<String, String> = self.metadata.clone().into_iter().collect();
        safetensors::serialize(views, Some(meta)).map_err(|e| err(e.to_string()))
    }

    /// The values these weights would have after a round trip through [`Weights::to_bytes_per_tensor`] with
    /// `store` (what a model stored that way computes with), without serialising the whole set.
    pub fn rounded(&self, store: impl Fn(&str) -> StoreAs) -> Result<Weights> {
        let err = |message: String| Error::Weights { path: self.source.clone(), message };
        let mut out = self.clone();
        for (name, (_, values)) in out.tensors.iter_mut() {
            let as_ = store(name);
            if as_ != StoreAs::F32 {
                let bytes = encode_values(as_, values).map_err(|m| err(format!("tensor `{name}` {m}")))?;
                *values = decode_values(as_.dtype(), &bytes).map_err(|m| err(format!("tensor `{name}` {m}")))?;
            }
        }
        Ok(out)
    }

    /// Number of values in tensor `name` (0 when absent).
    pub fn numel(&self, name: &str) -> usize {
        self.tensors.get(name).map_or(0, |(_, d)| d.len())
    }

    /// The tensor-by-tensor mean of `sets` (accumulated in f64), for averaging checkpoints of one run
    /// (stochastic weight averaging, Izmailov et al. 2018): every set must hold the same tensor names with
    /// the same shapes, else the error names the first difference and both files. The metadata is the first
    /// set's, with `averaged_steps` listing each set's `step` entry (`?` where one has none), `step` the largest
    /// of them (removed when one is missing) and no `val_synthetic_epe` (measured on one input, not the mean).
    pub fn average(sets: &[Weights]) -> Result<Weights> {
        let Some(first) = sets.first() else {
            return Err(Error::InvalidParam { op: "average", message: "no weights to average".into() });
        };
        let differ = |other: &Weights, message: String| Error::Weights {
            path: other.source.clone(),
            message: format!("cannot be averaged with {}: {message}", first.source),
        };
        for other in &sets[1..] {
            for (name, (shape, _)) in &first.tensors {
                match other.tensors.get(name) {
                    None => return Err(differ(other, format!("it has no tensor `{name}`"))),
                    Some((s, _)) if s != shape => {
                        return Err(differ(other, format!("tensor `{name}` has shape {s:?} there, {shape:?} here")))
                    }
                    Some(_) => {}
                }
            }
            if let Some(extra) = other.tensors.keys().find(|n| !first.tensors.contains_key(*n)) {
                return Err(differ(other, format!("it has a tensor `{extra}` the first file lacks")));
            }
        }
        let scale = 1.0 / sets.len() as f64;
        let mut tensors = BTreeMap::new();
        for (name, (shape, values)) in &first.tensors {
            let mut sum: Vec<f64> = values.iter().map(|&v| v as f64).collect();
            for other in &sets[1..] {
                for (s, &v) in sum.iter_mut().zip(&other.tensors[name].1) {
                    *s += v as f64;
                }
            }
            tensors.insert(name.clone(), (shape.clone(), sum.into_iter().map(|s| (s * scale) as f32).collect()));
        }
        let steps: Vec<&str> = sets.iter().map(|w| w.metadata.get("step").map_or("?", |s| s.as_str())).collect();
        let mut metadata = first.metadata.clone();
        // A figure measured on one of the inputs does not describe their average.
        metadata.remove("val_synthetic_epe");
        match steps.iter().map(|s| s.parse::<u64>()).collect::<std::result::Result<Vec<_>, _>>() {
            Ok(numbers) => metadata.insert("step".into(), numbers.iter().max().copied().unwrap_or(0).to_string()),
            Err(_) => metadata.remove("step"),
        };
        metadata.insert("averaged_steps".into(), steps.join(","));
        Ok(Weights { source: format!("average of {} files", sets.len()), tensors, metadata })
    }

    /// Writes a safetensors file (f32) atomically; see [`crate::io::write_atomic`].
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        self.save_as(path, StoreAs::F32)
    }

    /// Writes a safetensors file storing every tensor as `store`, atomically; see [`Weights::to_bytes_as`].
    pub fn save_as(&self, path: impl AsRef<Path>, store: StoreAs) -> Result<()> {
        crate::io::write_atomic(path.as_ref(), &self.to_bytes_as(store)?)
    }
}
