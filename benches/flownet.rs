//! Whole-network throughput under criterion: the six configurations of `corrflow bench flownet` (FlowNetS
//! and FlowNetC forward at 384x512, batch 1 and 8, width 1; a FlowNetC training step at batch 8, widths 1
//! and 0.25), each a recorded program replayed with one submit per iteration. Criterion's "elem/s" are
//! FLOP/s (`FlowNetConfig::flop`). `corrflow bench flownet` prints the same work with a per-layer breakdown
//! and fractions of the adapter's FMA peak; this bench adds criterion's statistics and history.
//!
//! `cargo bench --bench flownet`; `CORRFLOW_BENCH_ONLY=fwd_b1` keeps the configs whose name contains that
//! text (on a software adapter the batch-8 configs take 10-40 s per iteration).

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};

use corrflow::bench::flownet::{prepare, FlowNetConfig};
use corrflow::Context;

fn bench(c: &mut Criterion) {
    let ctx = match Context::new_blocking() {
        Ok(ctx) => ctx,
        Err(e) => {
            eprintln!("no adapter, nothing to benchmark: {e}");
            return;
        }
    };
    println!("adapter: {}", ctx.adapter());
    if !corrflow::ops::conv::tiled_supported(&ctx) {
        println!("adapter has no subgroup operations: training steps are skipped, forwards run the direct kernels");
    }
    let only = std::env::var("CORRFLOW_BENCH_ONLY").unwrap_or_default();
    for config in FlowNetConfig::standard().into_iter().filter(|c| c.name.contains(only.as_str())) {
        if config.train && !corrflow::ops::conv::tiled_supported(&ctx) {
            continue;
        }
        let prepared = match prepare(&ctx, &config) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("{}: {e}", config.name);
                continue;
            }
        };
        let run = || -> Duration {
            let mut rec = ctx.recorder("bench flownet");
            rec.replay(&prepared.program);
            let t0 = Instant::now();
            rec.submit().unwrap_or_else(|e| panic!("{}: {e}", config.name));
            t0.elapsed()
        };
        run(); // pipelines were compiled and tuned at recording; this warms the driver's caches
        let once = run();
        let mut group = c.benchmark_group("flownet");
        // Ten samples of one iteration each: as long as the measurement needs, no longer.
        group
            .sampling_mode(SamplingMode::Flat)
            .sample_size(10)
            .warm_up_time(Duration::from_millis(1))
            .measurement_time(once * 11);
        group.throughput(Throughput::Elements(config.flop() as u64));
        group.bench_function(config.name.as_str(), |b| b.iter_custom(|iters| (0..iters).map(|_| run()).sum()));
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
