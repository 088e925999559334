//! The op kinds a graph is built from, one module each: its [`Op`](super::Op) implementation (shape rule,
//! FLOPs, GPU forward and backward, f64 CPU forward and backward) and its builder method on
//! [`GraphBuilder`](super::GraphBuilder). A new kind of layer is a new module here.

pub mod conv;
pub mod correlation;
pub mod l2_normalize;

pub use conv::ConvOp;
pub use correlation::CorrelationOp;
pub use l2_normalize::L2NormalizeOp;
