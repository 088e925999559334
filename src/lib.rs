//! corrflow: dense correspondence (FlowNetS / FlowNetC optical flow, Siamese descriptors) as hand-written
//! WGSL compute kernels on wgpu.

pub mod bench;
pub mod data;
pub mod error;
pub mod eval;
pub mod flow;
pub mod graph;
pub mod host;
pub mod io;
pub mod matching;
pub mod metrics;
pub mod models;
pub mod ops;
pub mod plot;
pub mod reference;
pub mod runtime;
pub mod training;
pub mod viz;

pub use error::{Error, Result};
pub use flow::Flow;
pub use host::{HostTensor, Tensor64};
pub use models::{FlowNet, Passes, Weights};
pub use runtime::{Context, Tensor};
