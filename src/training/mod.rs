//! Training on the GPU: a trainer for any model built as a graph ([`ModelTrainer`], over a [`Model`]: the
//! network, its batches and its loss), with Adam, the schedule and checkpoints; [`Trainer`] is FlowNet's
//! (its multiscale loss is in `models::flownet`); data loading for optical flow (`data`). A step (forward,
//! loss, backward) is recorded once per batch shape and replayed, then the update once the loss is known to
//! be finite.

pub mod data;
pub mod log;
mod trainer;
pub mod validate;

pub use data::{DataSource, Loader};
pub use trainer::{Model, ModelTrainer, StepReport, TrainBatch, TrainConfig, Trainer, DEFAULT_TRAIN_PLANS};
