//! The CPU references: for every GPU kernel in [`crate::ops`], a plain f64 twin (forward and, where the
//! kernel has one, backward), in a module of the same name: `ops::conv` <-> `reference::conv`,
//! `ops::correlation` <-> `reference::correlation`, and so on. Nothing here touches the GPU (only
//! [`crate::host`] tensors), so a reference never shares a line with the code it checks. The operations'
//! descriptions that both sides need ([`conv::ConvSpec`], [`correlation::CorrelationSpec`],
//! [`optim::AdamConfig`]) are defined here, with the semantics, and re-exported by `ops`.
//!
//! The whole-network CPU forward and backward walk the same graph the GPU runs: [`crate::graph::cpu`].

pub mod conv;
pub mod correlation;
pub mod elementwise;
pub mod loss;
pub mod metric;
pub mod optim;
pub mod resize;
