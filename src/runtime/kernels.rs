//! The registry of WGSL kernels: one line per kernel names its file under `shaders/` (compiled into the
//! binary with `include_str!`, so no shader text is ever assembled at run time), its parameter struct (the
//! Rust twin of the WGSL `Params`, declared with `gpu_params!`, see [`GpuParams`](super::GpuParams)) and the
//! device features it needs. WGSL has no includes: a kernel may also name one file under `shaders/lib/`
//! (`+ "lib/hash"`), put in front of its own at compile time (`concat!`), so that functions several kernels
//! share are written once. Adding a kernel is adding its line; `tests/shaders.rs` then validates the WGSL with
//! naga and compares its `Params` with the Rust twin field by field, and [`Recorder::dispatch`](super::Recorder)
//! refuses a parameter struct that is not the kernel's.

use super::params::ParamsInfo;

macro_rules! kernels {
    ($($(#[$doc:meta])* $variant:ident = $file:literal $(+ $lib:literal)?, $params:ty, $features:expr;)*) => {
        /// One compute kernel (one WGSL file, entry point `main`).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Kernel {
            $($(#[$doc])* $variant,)*
        }

        impl Kernel {
            /// Every kernel, for validation tests and warm-up.
            pub const ALL: &'static [Kernel] = &[$(Kernel::$variant,)*];

            /// The file name under `shaders/` without extension; also the name used in errors.
            pub fn name(self) -> &'static str {
                match self {
                    $(Kernel::$variant => $file,)*
                }
            }

            /// The WGSL source: the kernel's file, after the library file it names (if any).
            pub fn source(self) -> &'static str {
                match self {
                    $(Kernel::$variant => concat!(
                        $(include_str!(concat!("../../shaders/", $lib, ".wgsl")),)?
                        include_str!(concat!("../../shaders/", $file, ".wgsl"))
                    ),)*
                }
            }

            /// The library file (under `shaders/`, without extension) put in front of the kernel's own, if any.
            pub fn library(self) -> Option<&'static str> {
                match self {
                    $(Kernel::$variant => None$(.or(Some($lib)))?,)*
                }
            }

            /// The Rust twin of the kernel's WGSL `Params` struct.
            pub fn params(self) -> ParamsInfo {
                match self {
                    $(Kernel::$variant => ParamsInfo::of::<$params>(),)*
                }
            }

            /// Device features the kernel's WGSL needs (its pipeline cannot be built without them).
            pub fn required_features(self) -> wgpu::Features {
                match self {
                    $(Kernel::$variant => $features,)*
                }
            }
        }
    };
}

use crate::ops::conv::{
    BiasGradParams, ConvParams, ConvTiledParams, WeightGradParams, WeightReduceParams, WeightSwapParams,
    WinogradInputParams, WinogradOutputParams, WinogradWeightParams,
};
use crate::ops::correlation::{
    CorrelationBackwardParams, CorrelationGradPackParams, CorrelationPackParams, CorrelationParams,
    CorrelationTiledParams, SubgroupProbeParams,
};
use crate::ops::elementwise::{CropParams, LeakyReluBackwardParams, LeakyReluParams};
use crate::ops::loss::{EpeParams, PoolParams, ReduceParams};
use crate::ops::metric::{
    ClassMeansParams, ClassNegativesParams, ContrastiveParams, DistanceBackwardParams, DistanceParams,
    DistanceWeightedParams, DistanceWeightsParams, HardestNegativesParams, L2NormalizeParams, MutualParams,
    NearestClassesParams, NearestTwoParams, PositivesParams, ProxyNcaParams, RandomNegativesParams, SampleParams,
    SemihardNegativesParams, TripletParams,
};
use crate::ops::optim::AdamParams;
use crate::ops::resize::{ResizeParams, WarpParams};
const NONE: wgpu::Features = wgpu::Features::empty();
const SUBGROUP: wgpu::Features = wgpu::Features::SUBGROUP;

kernels! {
    Conv2dForward = "conv2d_forward", ConvParams, NONE;
    ConvTranspose2dForward = "conv_transpose2d_forward", ConvParams, NONE;
    Conv2dForwardTiled = "conv2d_forward_tiled", ConvTiledParams, SUBGROUP;
    WinogradWeights = "winograd_weights", WinogradWeightParams, NONE;
    WinogradInput = "winograd_input", WinogradInputParams, NONE;
    WinogradOutput = "winograd_output", WinogradOutputParams, NONE;
    WinogradGradOutput = "winograd_grad_output", WinogradOutputParams, NONE;
    WinogradGradWeights = "winograd_grad_weights", WinogradWeightParams, NONE;
    ConvWeightsSwap = "conv_weights_swap", WeightSwapParams, NONE;
    ConvBackwardWeight = "conv_backward_weight", WeightGradParams, SUBGROUP;
    ConvBackwardWeightReduce = "conv_backward_weight_reduce", WeightReduceParams, NONE;
    ConvBackwardBias = "conv_backward_bias", BiasGradParams, NONE;
    LeakyRelu = "leaky_relu", LeakyReluParams, NONE;
    LeakyReluBackward = "leaky_relu_backward", LeakyReluBackwardParams, NONE;
    AdaptiveAvgPool = "adaptive_avg_pool", PoolParams, NONE;
    EpeLoss = "epe_loss", EpeParams, NONE;
    ReduceSum = "reduce_sum", ReduceParams, NONE;
    Adam = "adam", AdamParams, NONE;
    Crop = "crop", CropParams, NONE;
    ResizeBilinear = "resize_bilinear", ResizeParams, NONE;
    WarpBilinear = "warp_bilinear", WarpParams, NONE;
    CorrelationForwardNaive = "correlation_forward_naive", CorrelationParams, NONE;
    CorrelationForward = "correlation_forward", CorrelationTiledParams, SUBGROUP;
    CorrelationPack = "correlation_pack", CorrelationPackParams, NONE;
    CorrelationGradPack = "correlation_grad_pack", CorrelationGradPackParams, NONE;
    CorrelationBackwardA = "correlation_backward_a", CorrelationBackwardParams, SUBGROUP;
    CorrelationBackwardB = "correlation_backward_b", CorrelationBackwardParams, SUBGROUP;
    CorrelationBackwardANaive = "correlation_backward_a_naive", CorrelationParams, NONE;
    CorrelationBackwardBNaive = "correlation_backward_b_naive", CorrelationParams, NONE;
    SubgroupProbe = "subgroup_probe", SubgroupProbeParams, SUBGROUP;
    FmaPeak = "fma_peak", crate::bench::peak::FmaPeakParams, NONE;
    // Metric learning and matching (ops::metric).
    L2Normalize = "l2_normalize", L2NormalizeParams, NONE;
    L2NormalizeBackward = "l2_normalize_backward", L2NormalizeParams, NONE;
    SampleDescriptors = "sample_descriptors", SampleParams, NONE;
    SampleDescriptorsBackward = "sample_descriptors_backward", SampleParams, NONE;
    SampleDescriptorsBackwardPoints = "sample_descriptors_backward_points", SampleParams, NONE;
    PairwiseDistance = "pairwise_distance", DistanceParams, NONE;
    PairwiseDistanceVec4 = "pairwise_distance_vec4", DistanceParams, NONE;
    PairwiseDistanceWeights = "pairwise_distance_weights", DistanceWeightsParams, NONE;
    PairwiseDistanceBackward = "pairwise_distance_backward", DistanceBackwardParams, NONE;
    PairwiseDistanceBackwardVec4 = "pairwise_distance_backward_vec4", DistanceBackwardParams, NONE;
    ContrastiveLoss = "contrastive_loss", ContrastiveParams, NONE;
    TripletLoss = "triplet_loss", TripletParams, NONE;
    TripletLossBackward = "triplet_loss_backward", TripletParams, NONE;
    ProxyNcaLoss = "proxy_nca_loss", ProxyNcaParams, NONE;
    MinePositives = "mine_positives" + "lib/hash", PositivesParams, NONE;
    MineRandomNegatives = "mine_random_negatives" + "lib/hash", RandomNegativesParams, NONE;
    MineHardestNegatives = "mine_hardest_negatives", HardestNegativesParams, NONE;
    MineSemihardNegatives = "mine_semihard_negatives", SemihardNegativesParams, NONE;
    MineDistanceWeighted = "mine_distance_weighted" + "lib/hash", DistanceWeightedParams, NONE;
    ClassMeans = "class_means", ClassMeansParams, NONE;
    NearestClasses = "nearest_classes", NearestClassesParams, NONE;
    MineClassNegatives = "mine_class_negatives" + "lib/hash", ClassNegativesParams, NONE;
    NnTop2 = "nn_top2", NearestTwoParams, NONE;
    NnTop2Subgroup = "nn_top2_subgroup", NearestTwoParams, SUBGROUP;
    MutualMatches = "mutual_matches", MutualParams, NONE;
}
