//! The shipped FlowNet, embedded in the binary: trained by `corrflow train` on the procedural generator alone
//! (the README's model card gives the variant, width, commands, steps, time and its evaluation), stored with
//! f16 values (computation stays f32; `corrflow export` checked that the flow stays within 0.01 px of the f32
//! weights' on the evaluation pairs).

use super::{FlowNet, Weights};
use crate::{Context, Result};

/// The safetensors bytes of the shipped model.
pub static FLOWNET_SAFETENSORS: &[u8] = include_bytes!("pretrained/flownet.safetensors");

/// How the embedded model is named in messages.
pub const SOURCE: &str = "the embedded model";

/// The shipped weights (decoded from f16 to f32).
pub fn flownet_weights() -> Result<Weights> {
    Weights::from_bytes(FLOWNET_SAFETENSORS, SOURCE)
}

impl FlowNet {
    /// The shipped, trained model: what `corrflow flow A B` uses when no `--weights` are given.
    pub fn pretrained(ctx: &Context) -> Result<FlowNet> {
        FlowNet::new(ctx, &flownet_weights()?)
    }
}
