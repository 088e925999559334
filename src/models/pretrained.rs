//! The shipped models, embedded in the binary, both trained on procedural data alone (computation is f32):
//! - FlowNet, trained by `corrflow train` (the README's model card gives the variant, width, commands, steps,
//!   time and its evaluation), stored as f16 with the 13 small tensors that move its flow most in f32
//!   (`corrflow export` kept its flow within 0.0082 px of the f32 weights' on every evaluation pair), and run
//!   as three passes at input scales 0.5, 1, 1 (its `passes` metadata; see `FlowNet::passes`);
//! - the dense descriptor, trained by `corrflow train-desc` (README, "Dense matching": loss, sampler,
//!   commands, steps, time, evaluation), stored as f16 (`corrflow export` checked the f16 descriptors against
//!   the f32 ones).

use super::{Descriptor, FlowNet, Weights};
use crate::{Context, Result};

/// The safetensors bytes of the shipped model.
pub static FLOWNET_SAFETENSORS: &[u8] = include_bytes!("pretrained/flownet.safetensors");

/// How the embedded model is named in messages.
pub const SOURCE: &str = "the embedded model";

/// The safetensors bytes of the shipped descriptor.
pub static DESCRIPTOR_SAFETENSORS: &[u8] = include_bytes!("pretrained/descriptor.safetensors");

/// How the embedded descriptor is named in messages.
pub const DESCRIPTOR_SOURCE: &str = "the embedded descriptor";

/// The shipped descriptor's weights (decoded from f16 to f32).
pub fn descriptor_weights() -> Result<Weights> {
    Weights::from_bytes(DESCRIPTOR_SAFETENSORS, DESCRIPTOR_SOURCE)
}

impl Descriptor {
    /// The shipped, trained descriptor: what `corrflow match A B` uses by default.
    pub fn pretrained(ctx: &Context) -> Result<Descriptor> {
        Ok(Descriptor::new(ctx, &descriptor_weights()?)?.named("trained"))
    }
}

/// The shipped weights.
pub fn flownet_weights() -> Result<Weights> {
    Weights::from_bytes(FLOWNET_SAFETENSORS, SOURCE)
}

impl FlowNet {
    /// The shipped, trained model: what `corrflow flow A B` uses when no `--weights` are given.
    pub fn pretrained(ctx: &Context) -> Result<FlowNet> {
        FlowNet::new(ctx, &flownet_weights()?)
    }
}
