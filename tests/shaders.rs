//! Every WGSL kernel parses and validates with naga (no GPU needed), and each Rust parameter struct has
//! the size naga computes for its WGSL `Params` twin.

use corrflow::ops::{
    conv::ConvParams,
    correlation::CorrelationParams,
    elementwise::{CropParams, LeakyReluParams},
    metric,
    resize::ResizeParams,
};
use corrflow::runtime::Kernel;
use std::mem::size_of;

fn params_size(k: Kernel) -> usize {
    match k {
        Kernel::Conv2dForward | Kernel::ConvTranspose2dForward => std::mem::size_of::<ConvParams>(),
        Kernel::LeakyRelu => std::mem::size_of::<LeakyReluParams>(),
        Kernel::Conv2dForwardTiled => std::mem::size_of::<corrflow::ops::conv::ConvTiledParams>(),
        Kernel::WinogradWeights => std::mem::size_of::<corrflow::ops::conv::WinogradWeightParams>(),
        Kernel::WinogradInput => std::mem::size_of::<corrflow::ops::conv::WinogradInputParams>(),
        Kernel::WinogradOutput => std::mem::size_of::<corrflow::ops::conv::WinogradOutputParams>(),
        Kernel::WinogradGradOutput => std::mem::size_of::<corrflow::ops::conv::WinogradOutputParams>(),
        Kernel::WinogradGradWeights => std::mem::size_of::<corrflow::ops::conv::WinogradWeightParams>(),
        Kernel::ConvWeightsSwap => std::mem::size_of::<corrflow::ops::conv::WeightSwapParams>(),
        Kernel::ConvBackwardWeight => std::mem::size_of::<corrflow::ops::conv::WeightGradParams>(),
        Kernel::ConvBackwardWeightReduce => std::mem::size_of::<corrflow::ops::conv::WeightReduceParams>(),
        Kernel::ConvBackwardBias => std::mem::size_of::<corrflow::ops::conv::BiasGradParams>(),
        Kernel::LeakyReluBackward => std::mem::size_of::<corrflow::ops::elementwise::LeakyReluBackwardParams>(),
        Kernel::AdaptiveAvgPool => std::mem::size_of::<corrflow::ops::loss::PoolParams>(),
        Kernel::EpeLoss => std::mem::size_of::<corrflow::ops::loss::EpeParams>(),
        Kernel::ReduceSum => std::mem::size_of::<corrflow::ops::loss::ReduceParams>(),
        Kernel::Adam => std::mem::size_of::<corrflow::ops::optim::AdamParams>(),
        Kernel::Crop => std::mem::size_of::<CropParams>(),
        Kernel::ResizeBilinear => std::mem::size_of::<ResizeParams>(),
        Kernel::CorrelationForwardNaive => std::mem::size_of::<CorrelationParams>(),
        Kernel::CorrelationForward => std::mem::size_of::<corrflow::ops::correlation::CorrelationTiledParams>(),
        Kernel::CorrelationPack => std::mem::size_of::<corrflow::ops::correlation::CorrelationPackParams>(),
        Kernel::CorrelationGradPack => std::mem::size_of::<corrflow::ops::correlation::CorrelationGradPackParams>(),
        Kernel::CorrelationBackwardA | Kernel::CorrelationBackwardB => {
            std::mem::size_of::<corrflow::ops::correlation::CorrelationBackwardParams>()
        }
        Kernel::CorrelationBackwardANaive | Kernel::CorrelationBackwardBNaive => {
            std::mem::size_of::<CorrelationParams>()
        }
        Kernel::SubgroupProbe => std::mem::size_of::<corrflow::ops::correlation::SubgroupProbeParams>(),
        Kernel::FmaPeak => std::mem::size_of::<corrflow::bench::peak::FmaPeakParams>(),
        Kernel::L2Normalize | Kernel::L2NormalizeBackward => size_of::<metric::L2NormalizeParams>(),
        Kernel::SampleDescriptors | Kernel::SampleDescriptorsBackward | Kernel::SampleDescriptorsBackwardPoints => {
            size_of::<metric::SampleParams>()
        }
        Kernel::PairwiseDistance | Kernel::PairwiseDistanceVec4 => size_of::<metric::DistanceParams>(),
        Kernel::PairwiseDistanceWeights => size_of::<metric::DistanceWeightsParams>(),
        Kernel::PairwiseDistanceBackward | Kernel::PairwiseDistanceBackwardVec4 => {
            size_of::<metric::DistanceBackwardParams>()
        }
        Kernel::ContrastiveLoss => size_of::<metric::ContrastiveParams>(),
        Kernel::TripletLoss | Kernel::TripletLossBackward => size_of::<metric::TripletParams>(),
        Kernel::ProxyNcaLoss => size_of::<metric::ProxyNcaParams>(),
        Kernel::MinePositives => size_of::<metric::PositivesParams>(),
        Kernel::MineRandomNegatives => size_of::<metric::RandomNegativesParams>(),
        Kernel::MineHardestNegatives => size_of::<metric::HardestNegativesParams>(),
        Kernel::MineSemihardNegatives => size_of::<metric::SemihardNegativesParams>(),
        Kernel::MineDistanceWeighted => size_of::<metric::DistanceWeightedParams>(),
        Kernel::ClassMeans => size_of::<metric::ClassMeansParams>(),
        Kernel::MineClassNegatives => size_of::<metric::ClassNegativesParams>(),
        Kernel::NnTop2 | Kernel::NnTop2Subgroup => size_of::<metric::NearestTwoParams>(),
        Kernel::MutualMatches => size_of::<metric::MutualParams>(),
    }
}

#[test]
fn every_shader_validates_and_params_match() {
    for &k in Kernel::ALL {
        let module = naga::front::wgsl::parse_str(k.source())
            .unwrap_or_else(|e| panic!("{}: {}", k.name(), e.emit_to_string(k.source())));
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::all())
            .validate(&module)
            .unwrap_or_else(|e| panic!("{}: {e:?}", k.name()));
        let (_, ty) = module
            .types
            .iter()
            .find(|(_, t)| t.name.as_deref() == Some("Params"))
            .unwrap_or_else(|| panic!("{} has no Params struct", k.name()));
        let wgsl_size = ty.inner.size(module.to_ctx()) as usize;
        assert_eq!(
            wgsl_size,
            params_size(k),
            "{}: WGSL Params is {wgsl_size} bytes, Rust twin {}",
            k.name(),
            params_size(k)
        );
        assert!(module.entry_points.iter().any(|e| e.name == "main"), "{} has no `main` entry point", k.name());
    }
}

#[test]
fn shader_files_are_all_registered() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .expect("shaders/ exists")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".wgsl"))
        .map(|n| n.trim_end_matches(".wgsl").to_string())
        .collect();
    on_disk.sort();
    let mut registered: Vec<String> = Kernel::ALL.iter().map(|k| k.name().to_string()).collect();
    registered.sort();
    assert_eq!(on_disk, registered, "every shaders/*.wgsl must be in Kernel::ALL and vice versa");
}
