//! The registry of WGSL kernels. Every kernel is one file under `shaders/`, compiled into the binary with
//! `include_str!` so no shader text is ever assembled from strings at run time.

/// One compute kernel (one WGSL file, entry point `main`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kernel {
    Conv2dForward,
    ConvTranspose2dForward,
    Conv2dForwardTiled,
    WinogradWeights,
    WinogradInput,
    WinogradOutput,
    WinogradGradOutput,
    WinogradGradWeights,
    ConvWeightsSwap,
    ConvBackwardWeight,
    ConvBackwardWeightReduce,
    ConvBackwardBias,
    LeakyRelu,
    LeakyReluBackward,
    AdaptiveAvgPool,
    EpeLoss,
    ReduceSum,
    Adam,
    Crop,
    ResizeBilinear,
    CorrelationForwardNaive,
    CorrelationForward,
    CorrelationPack,
    CorrelationGradPack,
    CorrelationBackwardA,
    CorrelationBackwardB,
    CorrelationBackwardANaive,
    CorrelationBackwardBNaive,
    SubgroupProbe,
    FmaPeak,
}

impl Kernel {
    /// Every kernel, for validation tests and warm-up.
    pub const ALL: &'static [Kernel] = &[
        Kernel::Conv2dForward,
        Kernel::ConvTranspose2dForward,
        Kernel::Conv2dForwardTiled,
        Kernel::WinogradWeights,
        Kernel::WinogradInput,
        Kernel::WinogradOutput,
        Kernel::WinogradGradOutput,
        Kernel::WinogradGradWeights,
        Kernel::ConvWeightsSwap,
        Kernel::ConvBackwardWeight,
        Kernel::ConvBackwardWeightReduce,
        Kernel::ConvBackwardBias,
        Kernel::LeakyRelu,
        Kernel::LeakyReluBackward,
        Kernel::AdaptiveAvgPool,
        Kernel::EpeLoss,
        Kernel::ReduceSum,
        Kernel::Adam,
        Kernel::Crop,
        Kernel::ResizeBilinear,
        Kernel::CorrelationForwardNaive,
        Kernel::CorrelationForward,
        Kernel::CorrelationPack,
        Kernel::CorrelationGradPack,
        Kernel::CorrelationBackwardA,
        Kernel::CorrelationBackwardB,
        Kernel::CorrelationBackwardANaive,
        Kernel::CorrelationBackwardBNaive,
        Kernel::SubgroupProbe,
        Kernel::FmaPeak,
    ];

    /// The file name under `shaders/` without extension; also the name used in errors.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Conv2dForward => "conv2d_forward",
            Kernel::ConvTranspose2dForward => "conv_transpose2d_forward",
            Kernel::Conv2dForwardTiled => "conv2d_forward_tiled",
            Kernel::WinogradWeights => "winograd_weights",
            Kernel::WinogradInput => "winograd_input",
            Kernel::WinogradOutput => "winograd_output",
            Kernel::WinogradGradOutput => "winograd_grad_output",
            Kernel::WinogradGradWeights => "winograd_grad_weights",
            Kernel::ConvWeightsSwap => "conv_weights_swap",
            Kernel::ConvBackwardWeight => "conv_backward_weight",
            Kernel::ConvBackwardWeightReduce => "conv_backward_weight_reduce",
            Kernel::ConvBackwardBias => "conv_backward_bias",
            Kernel::LeakyRelu => "leaky_relu",
            Kernel::LeakyReluBackward => "leaky_relu_backward",
            Kernel::AdaptiveAvgPool => "adaptive_avg_pool",
            Kernel::EpeLoss => "epe_loss",
            Kernel::ReduceSum => "reduce_sum",
            Kernel::Adam => "adam",
            Kernel::Crop => "crop",
            Kernel::ResizeBilinear => "resize_bilinear",
            Kernel::CorrelationForwardNaive => "correlation_forward_naive",
            Kernel::CorrelationForward => "correlation_forward",
            Kernel::CorrelationPack => "correlation_pack",
            Kernel::CorrelationGradPack => "correlation_grad_pack",
            Kernel::CorrelationBackwardA => "correlation_backward_a",
            Kernel::CorrelationBackwardB => "correlation_backward_b",
            Kernel::CorrelationBackwardANaive => "correlation_backward_a_naive",
            Kernel::CorrelationBackwardBNaive => "correlation_backward_b_naive",
            Kernel::SubgroupProbe => "subgroup_probe",
            Kernel::FmaPeak => "fma_peak",
        }
    }

    /// The WGSL source.
    pub fn source(self) -> &'static str {
        match self {
            Kernel::Conv2dForward => include_str!("../../shaders/conv2d_forward.wgsl"),
            Kernel::ConvTranspose2dForward => include_str!("../../shaders/conv_transpose2d_forward.wgsl"),
            Kernel::Conv2dForwardTiled => include_str!("../../shaders/conv2d_forward_tiled.wgsl"),
            Kernel::WinogradWeights => include_str!("../../shaders/winograd_weights.wgsl"),
            Kernel::WinogradInput => include_str!("../../shaders/winograd_input.wgsl"),
            Kernel::WinogradOutput => include_str!("../../shaders/winograd_output.wgsl"),
            Kernel::WinogradGradOutput => include_str!("../../shaders/winograd_grad_output.wgsl"),
            Kernel::WinogradGradWeights => include_str!("../../shaders/winograd_grad_weights.wgsl"),
            Kernel::ConvWeightsSwap => include_str!("../../shaders/conv_weights_swap.wgsl"),
            Kernel::ConvBackwardWeight => include_str!("../../shaders/conv_backward_weight.wgsl"),
            Kernel::ConvBackwardWeightReduce => include_str!("../../shaders/conv_backward_weight_reduce.wgsl"),
            Kernel::ConvBackwardBias => include_str!("../../shaders/conv_backward_bias.wgsl"),
            Kernel::LeakyRelu => include_str!("../../shaders/leaky_relu.wgsl"),
            Kernel::LeakyReluBackward => include_str!("../../shaders/leaky_relu_backward.wgsl"),
            Kernel::AdaptiveAvgPool => include_str!("../../shaders/adaptive_avg_pool.wgsl"),
            Kernel::EpeLoss => include_str!("../../shaders/epe_loss.wgsl"),
            Kernel::ReduceSum => include_str!("../../shaders/reduce_sum.wgsl"),
            Kernel::Adam => include_str!("../../shaders/adam.wgsl"),
            Kernel::Crop => include_str!("../../shaders/crop.wgsl"),
            Kernel::ResizeBilinear => include_str!("../../shaders/resize_bilinear.wgsl"),
            Kernel::CorrelationForwardNaive => include_str!("../../shaders/correlation_forward_naive.wgsl"),
            Kernel::CorrelationForward => include_str!("../../shaders/correlation_forward.wgsl"),
            Kernel::CorrelationPack => include_str!("../../shaders/correlation_pack.wgsl"),
            Kernel::CorrelationGradPack => include_str!("../../shaders/correlation_grad_pack.wgsl"),
            Kernel::CorrelationBackwardA => include_str!("../../shaders/correlation_backward_a.wgsl"),
            Kernel::CorrelationBackwardB => include_str!("../../shaders/correlation_backward_b.wgsl"),
            Kernel::CorrelationBackwardANaive => include_str!("../../shaders/correlation_backward_a_naive.wgsl"),
            Kernel::CorrelationBackwardBNaive => include_str!("../../shaders/correlation_backward_b_naive.wgsl"),
            Kernel::SubgroupProbe => include_str!("../../shaders/subgroup_probe.wgsl"),
            Kernel::FmaPeak => include_str!("../../shaders/fma_peak.wgsl"),
        }
    }

    /// Device features the kernel's WGSL needs (its pipeline cannot be built without them).
    pub fn required_features(self) -> wgpu::Features {
        match self {
            Kernel::CorrelationForward
            | Kernel::CorrelationBackwardA
            | Kernel::CorrelationBackwardB
            | Kernel::SubgroupProbe => wgpu::Features::SUBGROUP,
            Kernel::Conv2dForwardTiled | Kernel::ConvBackwardWeight => wgpu::Features::SUBGROUP,
            _ => wgpu::Features::empty(),
        }
    }
}
