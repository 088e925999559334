//! conv2d and conv_transpose2d on the GPU, forward and backward (PyTorch semantics and layouts:
//! cross-correlation, zero padding, weights [cout, cin, kh, kw] for conv2d and [cin, cout, kh, kw] for
//! conv_transpose2d; f64 CPU references in [`crate::reference::conv`]).
//!
//! One folder, one direction of imports (each file uses only those above it):
//!
//! | file | what |
//! |---|---|
//! | `algo.rs` | the choices: [`ConvAlgo`], [`ConvTile`], [`WinogradUse`] (plain data) |
//! | `desc.rs` | `TiledConv`, one convolution as the tiled kernels see it, its one constructor and its stride phases |
//! | `tiled.rs` | the implicit-GEMM kernel `conv2d_forward_tiled` and its register-block tuning |
//! | `winograd.rs` | the Winograd F(4x4, 3x3) / F(4x4, 2x2) form, forward and weight gradient |
//! | `select.rs` | which of them runs a layer: the algorithm choice, in one place |
//! | `weights.rs` | [`ConvWeights`] (packed once for the kernels) and [`ConvGrads`] |
//! | `direct.rs` | the baseline direct kernels ([`ConvAlgo::Direct`]) |
//! | `forward.rs` | [`conv_forward`] |
//! | `backward.rs` | [`conv_backward`]: input, weight and bias gradients |

mod algo;
mod backward;
mod desc;
mod direct;
mod forward;
mod select;
mod tiled;
mod weights;
mod winograd;

pub use algo::{ConvAlgo, ConvTile, WinogradUse};
pub use backward::{
    conv_backward, conv_backward_bias, conv_backward_data, conv_backward_weight, BiasGradParams, WeightGradParams,
    WeightReduceParams, WeightSwapParams,
};
pub use direct::ConvParams;
pub use forward::{conv_flops, conv_forward};
pub use tiled::{tiled_supported, ConvTiledParams};
pub use weights::{pack_weights, ConvGrads, ConvWeights};
pub use winograd::{
    WinogradInputParams, WinogradOutputParams, WinogradWeightParams, AUTO_MIN_FLOPS, AUTO_MIN_TILES, MIN_GAIN,
    WEIGHT_GRAD_MIN_GAIN,
};

pub use crate::reference::conv::ConvSpec;
