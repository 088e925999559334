//! Correlation-layer throughput (FlowNetC's layer at batch 1 and 8, a PWC-Net-style layer, and FlowNetC's
//! layer on quarter-resolution 1080p features, computed in row bands): the subgroup-tiled forward and
//! backward, and the one-invocation-per-output forward as the baseline (FlowNetC batch 1 only: it is slow).
//!
//! Throughput is in FLOPs: criterion's "elem/s" are FLOP/s, 2 * B * C * D * H' * W' per forward and twice
//! that per backward (both input gradients). Each iteration replays the recorded work, submits it and waits
//! for the GPU (`iter_custom`); the first replay (pipeline JIT, buffer initialisation) is not timed. The
//! adapter and its register-only FMA peak (`corrflow::bench::peak`) are printed first.
//!
//! `cargo bench --bench correlation`; `CORRFLOW_BENCH_ONLY=pwc` keeps the configs whose name contains that
//! text. `corrflow bench correlation [--json]` prints the same measurements as one table.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};

use corrflow::bench::correlation::{prepare, CorrelationConfig};
use corrflow::bench::peak::measure_fma_peak_gflops;
use corrflow::runtime::Program;
use corrflow::Context;

/// Replays `program`, submits and waits; returns the wall time of submit + wait.
fn replay(ctx: &Context, program: &Program) -> Duration {
    let mut rec = ctx.recorder("correlation bench");
    rec.replay(program);
    let t0 = Instant::now();
    rec.submit().unwrap_or_else(|e| panic!("correlation bench: {e}"));
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
    match measure_fma_peak_gflops(&ctx) {
        Ok(peak) => println!("FMA peak (register-only kernel): {peak:.1} GFLOP/s"),
        Err(e) => println!("FMA peak: {e}"),
    }
    let only = std::env::var("CORRFLOW_BENCH_ONLY").unwrap_or_default();
    let mut summary = Vec::new();
    for config in CorrelationConfig::standard().into_iter().filter(|c| c.name.contains(only.as_str())) {
        let prepared = prepare(&ctx, &config).unwrap_or_else(|e| panic!("{}: {e}", config.name));
        let flop = config.forward_flop().unwrap_or_else(|e| panic!("{}: {e}", config.name));
        let mut group = c.benchmark_group(format!("correlation/{}", config.name));
        group
            .sampling_mode(SamplingMode::Flat)
            .sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(5));
        let mut passes: Vec<(&str, &Program, f64)> =
            vec![("forward tiled", &prepared.forward, flop), ("backward tiled", &prepared.backward, 2.0 * flop)];
        if config.name == "flownetc_b1" {
            if let Some(naive) = &prepared.naive {
                passes.push(("forward naive", naive, flop));
            }
        }
        for (name, program, pass_flop) in passes {
            replay(&ctx, program); // pipeline JIT, lazy buffer initialisation
                                   // 1 element = 1 FLOP.
            group.throughput(Throughput::Elements(pass_flop as u64));
            group.bench_function(name, |b| b.iter_custom(|iters| (0..iters).map(|_| replay(&ctx, program)).sum()));
            let best = (0..3).map(|_| replay(&ctx, program)).min().unwrap_or_default();
            summary.push((config.name, name, pass_flop / best.as_secs_f64().max(1e-9) / 1e9, best, prepared.bands));
        }
        group.finish();
    }
    println!("\nadapter: {}", ctx.adapter());
    println!("| config | pass | bands | GFLOP/s | ms |");
    println!("|---|---|---|---|---|");
    for (config, pass, gflops, t, bands) in summary {
        println!("| {config} | {pass} | {bands} | {gflops:.2} | {:.2} |", t.as_secs_f64() * 1e3);
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
