//! The arithmetic peak of the adapter, measured with a register-only FMA kernel (`shaders/fma_peak.wgsl`),
//! so kernel throughput can be reported as a fraction of what the same adapter can do at all.

use std::time::Instant;

use crate::error::Result;
use crate::runtime::{gpu_params, Context, Kernel};

gpu_params! {
    /// The WGSL `Params` twin of `fma_peak`.
    pub struct FmaPeakParams {
        pub iterations: u32,
        pub mul: f32,
        pub add: f32,
        pub _pad0: u32,
    }
}

/// FLOP per invocation per loop iteration of `fma_peak.wgsl` (64 scalar FMAs).
const FLOP_PER_ITERATION: f64 = 128.0;
const WG: u32 = 64;

/// Times `reps` dispatches of `groups` workgroups x `iterations` rounds; returns the best GFLOP/s.
fn time_dispatches(ctx: &Context, groups: u32, iterations: u32, reps: usize) -> Result<f64> {
    let out = ctx.tensor("fma peak", [1, 1, 1, (groups * WG) as usize])?;
    // Multiplier and addend chosen so the chains stay finite and normal for any iteration count.
    let params = FmaPeakParams { iterations, mul: 0.999_9, add: 1e-4, _pad0: 0 };
    let flop = FLOP_PER_ITERATION * iterations as f64 * (groups * WG) as f64;
    let mut best = 0.0f64;
    for _ in 0..reps {
        let mut rec = ctx.recorder("fma peak");
        rec.dispatch(Kernel::FmaPeak, &[("WG", WG as f64)], &params, &[out.buffer()], [groups, 1, 1])?;
        let start = Instant::now();
        rec.submit()?;
        let seconds = start.elapsed().as_secs_f64();
        best = best.max(flop / seconds / 1e9);
    }
    Ok(best)
}

/// Measures the adapter's FMA throughput in GFLOP/s (2 FLOP per FMA): warms up (pipeline build and JIT),
/// sizes the dispatch to run for roughly 50 ms, then returns the best of several timed repetitions, each
/// timed with the wall clock around submit + wait.
pub fn measure_fma_peak_gflops(ctx: &Context) -> Result<f64> {
    measure_fma_peak_gflops_with(ctx, 5)
}

/// [`measure_fma_peak_gflops`] with `reps` timed repetitions (at least 1).
pub fn measure_fma_peak_gflops_with(ctx: &Context, reps: usize) -> Result<f64> {
    // Enough workgroups to fill every core of a CPU driver and every SM of a GPU.
    let groups = 1024u32;
    let mut iterations = 64u32;
    time_dispatches(ctx, groups, iterations, 1)?;
    // Grow the work until one dispatch takes ~50 ms, so launch overhead does not count.
    loop {
        let gflops = time_dispatches(ctx, groups, iterations, 1)?;
        let seconds = FLOP_PER_ITERATION * iterations as f64 * (groups * WG) as f64 / (gflops * 1e9);
        if seconds >= 0.05 || iterations >= 1 << 20 {
            break;
        }
        let grow = (0.06 / seconds.max(1e-6)).ceil().clamp(2.0, 64.0) as u32;
        iterations = iterations.saturating_mul(grow).min(1 << 20);
    }
    time_dispatches(ctx, groups, iterations, reps.max(1))
}
