//! Training FlowNetS / FlowNetC on the GPU: the multiscale loss, the backward pass of the whole network,
//! and Adam, recorded once per input shape and replayed every step (two submissions: the gradients, then
//! the update once the loss is known to be finite).

mod backward;
pub mod data;
pub mod log;
mod trainer;
pub mod validate;

pub use data::{DataSource, Loader};
pub use trainer::{StepReport, TrainBatch, TrainConfig, Trainer};
