//! The correlation layer's throughput on the layers of FlowNetC, a PWC-Net-style cost volume and
//! quarter-resolution 1080p features: the tiled forward and backward, the one-invocation-per-output
//! baseline, and the adapter's FMA peak measured in the same run, so every figure is also a fraction of
//! what the adapter can do. Used by `corrflow bench correlation` and `benches/correlation.rs`.

use std::time::Instant;

use super::peak::measure_fma_peak_gflops_with;
use crate::error::Result;
use crate::ops::correlation::{
    correlation_backward, correlation_backward_chunked, correlation_forward, correlation_forward_chunked,
    correlation_forward_naive, subgroup_tiling_available, CorrelationOptions, CorrelationSpec,
};
use crate::runtime::{Context, HostTensor, Program, Tensor};

/// One benchmarked layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorrelationConfig {
    pub name: &'static str,
    pub batch: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub spec: CorrelationSpec,
}

impl CorrelationConfig {
    /// The four layers of the issue: FlowNetC's (batch 1 and 8), a PWC-Net-style one, and FlowNetC's on
    /// quarter-resolution 1080p features (a ~230 MB cost volume, computed in row bands).
    pub fn standard() -> Vec<CorrelationConfig> {
        let pwc = CorrelationSpec { pad: 4, kernel_size: 1, max_displacement: 4, stride1: 1, stride2: 1 };
        vec![
            CorrelationConfig {
                name: "flownetc_b1",
                batch: 1,
                channels: 256,
                height: 48,
                width: 64,
                spec: CorrelationSpec::FLOWNETC,
            },
            CorrelationConfig {
                name: "flownetc_b8",
                batch: 8,
                channels: 256,
                height: 48,
                width: 64,
                spec: CorrelationSpec::FLOWNETC,
            },
            CorrelationConfig { name: "pwc", batch: 1, channels: 128, height: 96, width: 128, spec: pwc },
            CorrelationConfig {
                name: "hd1080_quarter",
                batch: 1,
                channels: 256,
                height: 270,
                width: 480,
                spec: CorrelationSpec::FLOWNETC,
            },
        ]
    }

    /// (out_h, out_w) of the layer.
    pub fn output_size(&self) -> Result<(usize, usize)> {
        self.spec.output_size(self.height, self.width)
    }

    /// FLOP of one forward: 2 * B * C * D * H' * W'.
    pub fn forward_flop(&self) -> Result<f64> {
        let (oh, ow) = self.output_size()?;
        Ok(2.0 * (self.batch * self.channels * self.spec.displacements() * oh * ow) as f64)
    }

    /// Bytes one forward must move at least: both inputs read once, the output written once.
    pub fn forward_bytes(&self) -> Result<f64> {
        let (oh, ow) = self.output_size()?;
        let inputs = 2 * self.batch * self.channels * self.height * self.width;
        Ok(4.0 * (inputs + self.batch * self.spec.displacements() * oh * ow) as f64)
    }

    fn output_bytes(&self) -> Result<u64> {
        let (oh, ow) = self.output_size()?;
        Ok(4 * (self.batch * self.spec.displacements() * oh * ow) as u64)
    }
}

/// What [`run`] measures.
#[derive(Clone, Debug, Default)]
pub struct CorrelationBenchOptions {
    /// One timed repetition after the warm-up (instead of seven), and the naive baseline only where its
    /// output is at most 8 MiB: for tests and smoke runs.
    pub quick: bool,
    /// Run only the configs with these names; empty means all of [`CorrelationConfig::standard`].
    pub only: Vec<String>,
}

/// Measurements of one config. Times are the best over the repetitions (forward and backward alternating
/// after one warm-up each), wall clock around submit + wait.
#[derive(Clone, Debug)]
pub struct CorrelationResult {
    pub config: CorrelationConfig,
    /// Row bands the output was computed in (1 unless it exceeds one storage binding).
    pub bands: usize,
    pub forward_ms: f64,
    pub forward_gflops: f64,
    /// Minimum traffic (inputs read once, output written once) per forward time.
    pub forward_gbps: f64,
    /// Both input gradients.
    pub backward_ms: f64,
    /// 2 x the forward FLOP per backward time.
    pub backward_gflops: f64,
    /// The one-invocation-per-output kernel; `None` when skipped (see `naive_note`).
    pub naive_forward_ms: Option<f64>,
    pub naive_note: Option<String>,
}

impl CorrelationResult {
    pub fn speedup_vs_naive(&self) -> Option<f64> {
        self.naive_forward_ms.map(|n| n / self.forward_ms)
    }
    pub fn backward_over_forward(&self) -> f64 {
        self.backward_ms / self.forward_ms
    }
}

/// The whole run: adapter, its FMA peak, and every config.
#[derive(Clone, Debug)]
pub struct CorrelationReport {
    pub adapter: String,
    /// False when the device lacks subgroups and the portable kernels were measured instead.
    pub tiled: bool,
    pub fma_peak_gflops: f64,
    pub results: Vec<CorrelationResult>,
    /// Configs that could not run on this adapter, with the reason.
    pub skipped: Vec<(String, String)>,
}

pub(crate) fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_number(v: f64) -> String {
    if v.is_finite() {
        format!("{:.4}", v)
    } else {
        "null".into()
    }
}

impl CorrelationReport {
    /// A table for people: one row per config, every throughput also as a fraction of the FMA peak.
    pub fn to_table(&self) -> String {
        let mut s = format!(
            "adapter: {}\nkernels: {}\nFMA peak (register-only kernel, this run): {:.1} GFLOP/s\n\n",
            self.adapter,
            if self.tiled {
                "subgroup-tiled forward/backward"
            } else {
                "portable (no subgroups): naive forward/backward"
            },
            self.fma_peak_gflops
        );
        s.push_str(&format!(
            "{:<15} {:>5} {:>10} {:>9} {:>7} {:>7} {:>11} {:>9} {:>7} {:>8} {:>11} {:>8}\n",
            "config",
            "bands",
            "fwd ms",
            "GFLOP/s",
            "%peak",
            "GB/s",
            "bwd ms",
            "GFLOP/s",
            "%peak",
            "bwd/fwd",
            "naive ms",
            "speedup"
        ));
        for r in &self.results {
            let naive = r.naive_forward_ms.map_or("-".to_string(), |v| format!("{v:.1}"));
            let speedup = r.speedup_vs_naive().map_or("-".to_string(), |v| format!("{v:.1}x"));
            s.push_str(&format!(
                "{:<15} {:>5} {:>10.2} {:>9.2} {:>6.1}% {:>7.2} {:>11.2} {:>9.2} {:>6.1}% {:>8.2} {:>11} {:>8}\n",
                r.config.name,
                r.bands,
                r.forward_ms,
                r.forward_gflops,
                100.0 * r.forward_gflops / self.fma_peak_gflops,
                r.forward_gbps,
                r.backward_ms,
                r.backward_gflops,
                100.0 * r.backward_gflops / self.fma_peak_gflops,
                r.backward_over_forward(),
                naive,
                speedup
            ));
        }
        for r in &self.results {
            if let Some(note) = &r.naive_note {
                s.push_str(&format!("{}: naive baseline skipped: {note}\n", r.config.name));
            }
        }
        for (name, reason) in &self.skipped {
            s.push_str(&format!("{name}: skipped: {reason}\n"));
        }
        s
    }

    /// One JSON object for machines: `{"adapter": .., "fma_peak_gflops": .., "configs": [{"name": ..,
    /// "forward_ms": .., "forward_gflops": .., "backward_ms": .., "naive_forward_ms": .. (null when skipped),
    /// ...}]}`.
    pub fn to_json(&self) -> String {
        let configs: Vec<String> = self
            .results
            .iter()
            .map(|r| {
                let c = &r.config;
                format!(
                    concat!(
                        "{{\"name\": {}, \"batch\": {}, \"channels\": {}, \"height\": {}, \"width\": {}, \"displacements\": {}, ",
                        "\"bands\": {}, \"forward_ms\": {}, \"forward_gflops\": {}, \"forward_gbps\": {}, \"forward_peak_fraction\": {}, ",
                        "\"backward_ms\": {}, \"backward_gflops\": {}, \"backward_peak_fraction\": {}, \"backward_over_forward\": {}, ",
                        "\"naive_forward_ms\": {}, \"speedup_vs_naive\": {}}}"
                    ),
                    json_string(c.name),
                    c.batch,
                    c.channels,
                    c.height,
                    c.width,
                    c.spec.displacements(),
                    r.bands,
                    json_number(r.forward_ms),
                    json_number(r.forward_gflops),
                    json_number(r.forward_gbps),
                    json_number(r.forward_gflops / self.fma_peak_gflops),
                    json_number(r.backward_ms),
                    json_number(r.backward_gflops),
                    json_number(r.backward_gflops / self.fma_peak_gflops),
                    json_number(r.backward_over_forward()),
                    r.naive_forward_ms.map_or("null".into(), json_number),
                    r.speedup_vs_naive().map_or("null".into(), json_number),
                )
            })
            .collect();
        let skipped: Vec<String> = self
            .skipped
            .iter()
            .map(|(name, reason)| format!("{{\"name\": {}, \"reason\": {}}}", json_string(name), json_string(reason)))
            .collect();
        format!(
            "{{\"adapter\": {}, \"tiled\": {}, \"fma_peak_gflops\": {}, \"configs\": [{}], \"skipped\": [{}]}}",
            json_string(&self.adapter),
            self.tiled,
            json_number(self.fma_peak_gflops),
            configs.join(", "),
            skipped.join(", ")
        )
    }
}

/// Deterministic inputs in [-1, 1) (xorshift64*), so runs are comparable.
fn random_host(shape: [usize; 4], seed: u64) -> HostTensor {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let n: usize = shape.iter().product();
    let data = (0..n)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            ((s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    HostTensor { shape, data }
}

/// Replays `program` once to warm up (pipeline JIT, lazy buffer initialisation) when `warm_up`, then
/// `reps` times, each timed around submit + wait; returns the best in milliseconds.
pub fn time_program(ctx: &Context, program: &Program, reps: usize, warm_up: bool) -> Result<f64> {
    let mut best = f64::INFINITY;
    for i in 0..reps.max(1) + warm_up as usize {
        let mut rec = ctx.recorder("correlation bench");
        rec.replay(program);
        let start = Instant::now();
        rec.submit()?;
        let ms = start.elapsed().as_secs_f64() * 1e3;
        if i >= warm_up as usize {
            best = best.min(ms);
        }
    }
    Ok(best)
}

/// Builds and runs the naive kernel once on a tiny layer, so its (large-config) timings exclude the JIT.
fn warm_up_naive(ctx: &Context) -> Result<()> {
    let spec = CorrelationSpec { pad: 1, kernel_size: 1, max_displacement: 1, stride1: 1, stride2: 1 };
    let a = ctx.upload("warm-up a", &random_host([1, 4, 4, 4], 5))?;
    let out = ctx.tensor("warm-up out", [1, spec.displacements(), 4, 4])?;
    let mut rec = ctx.recorder("naive warm-up");
    correlation_forward_naive(&mut rec, &a, &a, spec, out.slice_all(), None)?;
    rec.submit()
}

/// The recorded work of one config, ready to replay.
pub struct PreparedConfig {
    pub config: CorrelationConfig,
    pub bands: usize,
    pub forward: Program,
    pub backward: Program,
    /// The naive forward, when its output fits one storage binding.
    pub naive: Option<Program>,
    // Buffers the programs use; kept alive with them.
    _tensors: Vec<Tensor>,
}

/// Allocates inputs and outputs for `config` and records its forward, backward and (when the output fits
/// one storage binding) naive forward.
pub fn prepare(ctx: &Context, config: &CorrelationConfig) -> Result<PreparedConfig> {
    let shape = [config.batch, config.channels, config.height, config.width];
    let (oh, ow) = config.output_size()?;
    let d = config.spec.displacements();
    let a = ctx.upload("bench a", &random_host(shape, 1))?;
    let b = ctx.upload("bench b", &random_host(shape, 2))?;
    let grad_a = ctx.tensor("bench grad a", shape)?;
    let grad_b = ctx.tensor("bench grad b", shape)?;
    let fits = config.output_bytes()? <= ctx.max_binding_bytes();
    let mut tensors = Vec::new();
    let (forward, backward, bands, naive) = if fits {
        let out = ctx.tensor("bench correlation", [config.batch, d, oh, ow])?;
        let grad = ctx.upload("bench grad out", &random_host([config.batch, d, oh, ow], 3))?;
        let mut rec = ctx.recorder("bench forward");
        correlation_forward(&mut rec, &a, &b, config.spec, out.slice_all(), Some(0.1))?;
        let forward = rec.finish_program()?;
        let mut rec = ctx.recorder("bench backward");
        correlation_backward(&mut rec, &a, &b, &grad, config.spec, &grad_a, &grad_b)?;
        let backward = rec.finish_program()?;
        let mut rec = ctx.recorder("bench naive forward");
        correlation_forward_naive(&mut rec, &a, &b, config.spec, out.slice_all(), Some(0.1))?;
        let naive = rec.finish_program()?;
        tensors.extend([out, grad]);
        (forward, backward, 1, Some(naive))
    } else {
        let opts = CorrelationOptions::default();
        let mut rec = ctx.recorder("bench forward");
        let bands = correlation_forward_chunked(&mut rec, &a, &b, config.spec, Some(0.1), &opts)?;
        let forward = rec.finish_program()?;
        // The gradient arrives in the same bands as the output.
        let grads: Vec<_> = bands
            .iter()
            .enumerate()
            .map(|(i, band)| -> Result<_> {
                let t = ctx.upload("bench grad band", &random_host(band.tensor.shape(), 10 + i as u64))?;
                Ok(crate::ops::correlation::CorrelationBand { row0: band.row0, tensor: t })
            })
            .collect::<Result<_>>()?;
        let mut rec = ctx.recorder("bench backward");
        correlation_backward_chunked(&mut rec, &a, &b, &grads, config.spec, &grad_a, &grad_b, &opts)?;
        let backward = rec.finish_program()?;
        let n = bands.len();
        tensors.extend(bands.into_iter().map(|band| band.tensor));
        tensors.extend(grads.into_iter().map(|band| band.tensor));
        (forward, backward, n, None)
    };
    tensors.extend([a, b, grad_a, grad_b]);
    Ok(PreparedConfig { config: config.clone(), bands, forward, backward, naive, _tensors: tensors })
}

/// Measures the FMA peak, then every selected config (see [`CorrelationBenchOptions`]).
pub fn run(ctx: &Context, opts: &CorrelationBenchOptions) -> Result<CorrelationReport> {
    let reps = if opts.quick { 1 } else { 7 };
    let tiled = subgroup_tiling_available(ctx)?;
    let fma_peak_gflops = measure_fma_peak_gflops_with(ctx, if opts.quick { 2 } else { 5 })?;
    let mut results = Vec::new();
    let mut naive_warm = false;
    let mut skipped = Vec::new();
    for config in CorrelationConfig::standard() {
        if !opts.only.is_empty() && !opts.only.iter().any(|n| n == config.name) {
            continue;
        }
        if !tiled && config.output_bytes()? > ctx.max_binding_bytes() {
            let reason = "its cost volume exceeds one storage binding and the banded kernels need subgroups, which this adapter lacks";
            skipped.push((config.name.to_string(), reason.to_string()));
            continue;
        }
        let prepared = prepare(ctx, &config)?;
        let flop = config.forward_flop()?;
        // Forward and backward alternate, so a slow spell of a shared machine hits both and their ratio.
        time_program(ctx, &prepared.forward, 1, false)?;
        time_program(ctx, &prepared.backward, 1, false)?;
        let (mut forward_ms, mut backward_ms) = (f64::INFINITY, f64::INFINITY);
        for _ in 0..reps {
            forward_ms = forward_ms.min(time_program(ctx, &prepared.forward, 1, false)?);
            backward_ms = backward_ms.min(time_program(ctx, &prepared.backward, 1, false)?);
        }
        let (naive_forward_ms, naive_note) = match &prepared.naive {
            Some(program) if !opts.quick || config.output_bytes()? <= 8 << 20 => {
                // The baseline takes seconds: its pipeline is warmed up on a tiny layer instead of by a
                // replay, and its buffers are already initialised by the tiled forward above.
                if !naive_warm {
                    warm_up_naive(ctx)?;
                    naive_warm = true;
                }
                (Some(time_program(ctx, program, 1, false)?), None)
            }
            Some(_) => (None, Some("quick run (output over 8 MiB)".to_string())),
            None => {
                (None, Some("its output exceeds one storage binding (the naive kernel writes one tensor)".to_string()))
            }
        };
        results.push(CorrelationResult {
            bands: prepared.bands,
            forward_ms,
            forward_gflops: flop / (forward_ms * 1e6),
            forward_gbps: config.forward_bytes()? / (forward_ms * 1e6),
            backward_ms,
            backward_gflops: 2.0 * flop / (backward_ms * 1e6),
            naive_forward_ms,
            naive_note,
            config,
        });
    }
    // The peak again at the end (best of both), so the fractions do not depend on when it was measured.
    let fma_peak_gflops = fma_peak_gflops.max(measure_fma_peak_gflops_with(ctx, if opts.quick { 1 } else { 5 })?);
    Ok(CorrelationReport { adapter: ctx.adapter().to_string(), tiled, fma_peak_gflops, results, skipped })
}
