//! The GPU runtime: adapter selection, the device context with its pipeline cache, tensors, and the
//! kernel registry. Everything else dispatches through here.

mod cache;
mod context;
mod kernels;
mod params;
mod policy;
mod tensor;

pub use crate::host::HostTensor;
pub use cache::LruCache;
pub use context::{adapter_summaries, AdapterSummary, Context, Program, Recorder};
pub use kernels::Kernel;
pub(crate) use params::gpu_params;
pub use params::{GpuParams, ParamField, ParamsInfo};
pub use policy::Policy;
pub use tensor::Tensor;
