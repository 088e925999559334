//! The FlowNet benchmark's FLOP accounting and a smoke run of `corrflow bench flownet` (tiny configs).

mod common;

use common::gpu_with_subgroups;
use corrflow::bench::flownet::{run, FlowNetBenchOptions, FlowNetConfig};
use corrflow::models::flownet::{Arch, Variant};

#[test]
fn flop_counts_match_the_issue_figure_and_hand_counts() {
    // The speed issue: FlowNetS at 384x512 is about 31 GFLOP per forward pass (FlowNetC a little more).
    let s: f64 = Arch::new(Variant::S, 1.0).layer_flops(1, 384, 512).iter().map(|(_, f)| f).sum();
    let c: f64 = Arch::new(Variant::C, 1.0).layer_flops(1, 384, 512).iter().map(|(_, f)| f).sum();
    assert!((s / 31e9 - 1.0).abs() < 0.1, "FlowNetS forward {:.2} GFLOP", s / 1e9);
    assert!(c > s, "FlowNetC {:.2} GFLOP should exceed FlowNetS {:.2}", c / 1e9, s / 1e9);
    // Hand count of conv1 (6 -> 64, 7x7, stride 2) at 384x512: 2 * 192*256 * 6*64 * 49.
    let conv1 = Arch::new(Variant::S, 1.0).layer_flops(1, 384, 512)[0].1;
    assert_eq!(conv1, 2.0 * (192 * 256) as f64 * (6 * 64) as f64 * 49.0);
    // The correlation: 2 * C * D * H/8 * W/8 with C = 256, D = 441.
    let corr =
        Arch::new(Variant::C, 1.0).layer_flops(1, 384, 512).into_iter().find(|(n, _)| n == "correlation").unwrap().1;
    assert_eq!(corr, 2.0 * 256.0 * 441.0 * (48 * 64) as f64);
    let train = FlowNetConfig::standard().into_iter().find(|c| c.name == "flownetc_train_b8_w1").unwrap();
    assert!((train.flop() / (24.0 * c) - 1.0).abs() < 1e-9, "training step = 3 x forward x batch 8");
}

#[test]
fn smoke_run_reports_every_selected_config() {
    let Some(ctx) = gpu_with_subgroups() else { return };
    let opts = FlowNetBenchOptions {
        only: vec!["flownetc_fwd_b1".into(), "flownetc_train_b8_w0.25".into()],
        runs: 1,
        smoke: true,
        ..Default::default()
    };
    let report = run(ctx, &opts).unwrap();
    assert_eq!(report.results.len(), 2);
    assert!(report.fma_peak_gflops > 0.0);
    for r in &report.results {
        assert!(r.ms > 0.0 && r.gflops > 0.0, "{}: {} ms", r.config.name, r.ms);
        assert!(r.layers.iter().any(|l| l.name == "conv3_1"), "{}: no conv3_1 in the breakdown", r.config.name);
    }
    assert!(
        report.results[1].layers.iter().any(|l| l.name.ends_with(" backward")),
        "training breakdown lacks backward layers"
    );
    let json = report.to_json();
    assert!(
        json.starts_with("{\"adapter\": ")
            && json.contains("\"name\": \"flownetc_train_b8_w0.25\"")
            && json.contains("\"fma_peak_gflops\"")
    );
    assert!(run(ctx, &FlowNetBenchOptions { only: vec!["nope".into()], smoke: true, ..Default::default() }).is_err());
}
