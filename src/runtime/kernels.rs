//! The registry of WGSL kernels. Every kernel is one file under `shaders/`, compiled into the binary with
//! `include_str!` so no shader text is ever assembled from strings at run time.

/// One compute kernel (one WGSL file, entry point `main`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kernel {
    Conv2dForward,
    ConvTranspose2dForward,
    LeakyRelu,
    Crop,
    ResizeBilinear,
    CorrelationForwardNaive,
}

impl Kernel {
    /// Every kernel, for validation tests and warm-up.
    pub const ALL: &'static [Kernel] = &[
        Kernel::Conv2dForward,
        Kernel::ConvTranspose2dForward,
        Kernel::LeakyRelu,
        Kernel::Crop,
        Kernel::ResizeBilinear,
        Kernel::CorrelationForwardNaive,
    ];

    /// The file name under `shaders/` without extension; also the name used in errors.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Conv2dForward => "conv2d_forward",
            Kernel::ConvTranspose2dForward => "conv_transpose2d_forward",
            Kernel::LeakyRelu => "leaky_relu",
            Kernel::Crop => "crop",
            Kernel::ResizeBilinear => "resize_bilinear",
            Kernel::CorrelationForwardNaive => "correlation_forward_naive",
        }
    }

    /// The WGSL source.
    pub fn source(self) -> &'static str {
        match self {
            Kernel::Conv2dForward => include_str!("../../shaders/conv2d_forward.wgsl"),
            Kernel::ConvTranspose2dForward => include_str!("../../shaders/conv_transpose2d_forward.wgsl"),
            Kernel::LeakyRelu => include_str!("../../shaders/leaky_relu.wgsl"),
            Kernel::Crop => include_str!("../../shaders/crop.wgsl"),
            Kernel::ResizeBilinear => include_str!("../../shaders/resize_bilinear.wgsl"),
            Kernel::CorrelationForwardNaive => include_str!("../../shaders/correlation_forward_naive.wgsl"),
        }
    }
}
