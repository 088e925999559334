//! Convolution throughput on FlowNet's layers at 384x512 input, batch 1: the baseline direct kernels
//! against the tiled (implicit-GEMM) kernel with a fixed 32x8 block (16x8 where subgroups are smaller than
//! 8 lanes) and against the default choice (`ConvAlgo::Tiled`: tuned blocks, and the Winograd form where
//! it gains), forward and backward.
//!
//! Throughput is in FLOPs (2 per multiply-add of a real tap; a transposed conv is credited only with the
//! products of input values, whichever kernel runs it): criterion's "elem/s" below are FLOP/s. Each
//! iteration records, submits and waits for the GPU (`iter_custom`), after a warm-up that compiles the
//! pipelines and tunes the tiles. A summary of GFLOP/s (best of 5) is printed at the end for RESULTS.md.
//!
//! `cargo bench --bench conv2d`; `CORRFLOW_BENCH_SCALE=2` halves the image size for a quick run,
//! `CORRFLOW_BENCH_ONLY=conv3_1` keeps the layers whose name contains that text.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};

use corrflow::data::Rng;
use corrflow::ops::conv::ConvTile;
use corrflow::ops::conv::{conv_backward_data, conv_backward_weight, ConvGrads};
use corrflow::ops::conv::{conv_flops, conv_forward, ConvAlgo, ConvSpec, ConvWeights};
use corrflow::{Context, Tensor};

/// One FlowNet layer: name, input channels, output channels, kernel, stride, pad, input size, transposed.
struct Layer {
    name: &'static str,
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    pad: usize,
    in_hw: (usize, usize),
    transposed: bool,
}

fn layers(scale: usize) -> Vec<Layer> {
    let hw = |h: usize, w: usize| ((h / scale).max(8), (w / scale).max(8));
    vec![
        Layer {
            name: "conv1 6->64 k7 s2 @384x512",
            cin: 6,
            cout: 64,
            k: 7,
            stride: 2,
            pad: 3,
            in_hw: hw(384, 512),
            transposed: false,
        },
        Layer {
            name: "conv2 64->128 k5 s2 @192x256",
            cin: 64,
            cout: 128,
            k: 5,
            stride: 2,
            pad: 2,
            in_hw: hw(192, 256),
            transposed: false,
        },
        Layer {
            name: "conv3_1 256->256 k3 @48x64",
            cin: 256,
            cout: 256,
            k: 3,
            stride: 1,
            pad: 1,
            in_hw: hw(48, 64),
            transposed: false,
        },
        Layer {
            name: "deconv2 386->64 k4 s2 @48x64",
            cin: 386,
            cout: 64,
            k: 4,
            stride: 2,
            pad: 1,
            in_hw: hw(48, 64),
            transposed: true,
        },
    ]
}

/// A layer's tensors on the device.
struct Setup {
    spec: ConvSpec,
    x: Tensor,
    y: Tensor,
    dx: Tensor,
    direct: ConvWeights,
    /// The tiled kernel alone, fixed block.
    plain: ConvWeights,
    /// The default: tuned tiled kernel or Winograd form.
    tiled: ConvWeights,
    grads: ConvGrads,
}

fn setup(ctx: &Context, l: &Layer) -> Setup {
    let mut rng = Rng::new(7);
    let spec = ConvSpec { stride: l.stride, pad: l.pad, leaky: Some(0.1) };
    let wshape = if l.transposed { [l.cin, l.cout, l.k, l.k] } else { [l.cout, l.cin, l.k, l.k] };
    let wt = rng.tensor(wshape);
    let bias: Vec<f32> = (0..l.cout).map(|_| rng.uniform()).collect();
    let (h, w) = l.in_hw;
    let (oh, ow) = if l.transposed {
        (spec.transposed_out(h, l.k).unwrap_or(1), spec.transposed_out(w, l.k).unwrap_or(1))
    } else {
        (spec.conv_out(h, l.k).unwrap_or(1), spec.conv_out(w, l.k).unwrap_or(1))
    };
    let x = ctx.upload("x", &rng.tensor([1, l.cin, h, w])).expect("upload");
    let y = ctx.upload("y", &rng.tensor([1, l.cout, oh, ow])).expect("upload");
    let dx = ctx.tensor("dx", [1, l.cin, h, w]).expect("tensor");
    let direct =
        ConvWeights::new(ctx, l.name, &wt, Some(&bias), l.transposed).expect("weights").with_algo(ConvAlgo::Direct);
    let tiled =
        ConvWeights::new(ctx, l.name, &wt, Some(&bias), l.transposed).expect("weights").with_algo(ConvAlgo::Tiled);
    let tm = if ctx.adapter().subgroup_min_size >= 8 { 32 } else { 16 };
    let plain = ConvWeights::new(ctx, l.name, &wt, Some(&bias), l.transposed)
        .expect("weights")
        .with_algo(ConvAlgo::TiledWith(ConvTile { tm, tn: 8, wg: 64 }));
    let grads = tiled.new_grads(ctx, l.name).expect("grads");
    Setup { spec, x, y, dx, direct, plain, tiled, grads }
}

#[derive(Clone, Copy, PartialEq)]
enum Pass {
    ForwardDirect,
    ForwardPlain,
    ForwardTiled,
    BackwardDataPlain,
    BackwardData,
    BackwardWeightPlain,
    BackwardWeight,
}

impl Pass {
    fn name(self) -> &'static str {
        match self {
            Pass::ForwardDirect => "forward direct",
            Pass::ForwardPlain => "forward tiled 32x8",
            Pass::ForwardTiled => "forward default",
            Pass::BackwardDataPlain => "backward data (tiled 32x8)",
            Pass::BackwardData => "backward data (default)",
            Pass::BackwardWeightPlain => "backward weight+bias (tiled 32x8)",
            Pass::BackwardWeight => "backward weight+bias (default)",
        }
    }
}

/// Records, submits and waits for one pass; returns the time from recording to completion.
fn run(ctx: &Context, s: &Setup, pass: Pass) -> Duration {
    let t0 = Instant::now();
    let mut rec = ctx.recorder("bench");
    let r = match pass {
        Pass::ForwardDirect => conv_forward(&mut rec, s.x.slice_all(), &s.direct, s.spec, s.y.slice_all()),
        Pass::ForwardPlain => conv_forward(&mut rec, s.x.slice_all(), &s.plain, s.spec, s.y.slice_all()),
        Pass::ForwardTiled => conv_forward(&mut rec, s.x.slice_all(), &s.tiled, s.spec, s.y.slice_all()),
        Pass::BackwardDataPlain => {
            conv_backward_data(&mut rec, s.y.slice_all(), &s.plain, s.spec, s.dx.slice_all(), false)
        }
        Pass::BackwardData => conv_backward_data(&mut rec, s.y.slice_all(), &s.tiled, s.spec, s.dx.slice_all(), false),
        Pass::BackwardWeightPlain => {
            conv_backward_weight(&mut rec, s.x.slice_all(), s.y.slice_all(), &s.plain, s.spec, &s.grads)
        }
        Pass::BackwardWeight => {
            conv_backward_weight(&mut rec, s.x.slice_all(), s.y.slice_all(), &s.tiled, s.spec, &s.grads)
        }
    };
    r.and_then(|_| rec.submit()).unwrap_or_else(|e| panic!("{}: {e}", pass.name()));
    t0.elapsed()
}

fn bench(c: &mut Criterion) {
    let ctx = match Context::new_blocking() {
        Ok(ctx) => ctx,
        Err(e) => {
            eprintln!("no adapter, nothing to benchmark: {e}");
            return;
        }
    };
    println!("adapter: {}", ctx.adapter());
    let scale = std::env::var("CORRFLOW_BENCH_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1usize).max(1);
    let tiled_ok = corrflow::ops::conv::tiled_supported(&ctx);
    if !tiled_ok {
        println!("adapter has no subgroup operations: the tiled kernels are unavailable, only the direct ones run");
    }
    let passes: &[Pass] = if tiled_ok {
        &[
            Pass::ForwardDirect,
            Pass::ForwardPlain,
            Pass::ForwardTiled,
            Pass::BackwardDataPlain,
            Pass::BackwardData,
            Pass::BackwardWeightPlain,
            Pass::BackwardWeight,
        ]
    } else {
        &[Pass::ForwardDirect]
    };
    let mut summary = Vec::new();
    let only = std::env::var("CORRFLOW_BENCH_ONLY").unwrap_or_default();
    for l in layers(scale).into_iter().filter(|l| l.name.contains(only.as_str())) {
        let s = setup(&ctx, &l);
        let flops = conv_flops(s.x.slice_all(), &s.tiled, s.spec, s.y.slice_all());
        let mut group = c.benchmark_group(format!("conv2d/{}", l.name));
        group
            .sampling_mode(SamplingMode::Flat)
            .sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(4));
        // 1 element = 1 FLOP.
        group.throughput(Throughput::Elements(flops as u64));
        for &pass in passes {
            run(&ctx, &s, pass); // compile, tune
            group.bench_function(pass.name(), |b| b.iter_custom(|iters| (0..iters).map(|_| run(&ctx, &s, pass)).sum()));
            let best = (0..5).map(|_| run(&ctx, &s, pass)).min().unwrap_or_default();
            summary.push((l.name, pass.name(), flops / best.as_secs_f64().max(1e-9) / 1e9, best));
        }
        group.finish();
    }
    println!("\nadapter: {}  (scale 1/{scale})", ctx.adapter());
    println!("| layer | pass | GFLOP/s | ms |");
    println!("|---|---|---|---|");
    for (layer, pass, gflops, t) in summary {
        println!("| {layer} | {pass} | {gflops:.1} | {:.1} |", t.as_secs_f64() * 1e3);
    }
    for (key, choice) in ctx.tuned_all() {
        println!("tuned {key}: {choice:?}");
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
