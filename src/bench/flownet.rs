//! End-to-end FlowNet throughput: FlowNetS / FlowNetC forward at 384x512 (batch 1 and 8, width 1) and one
//! FlowNetC training step (forward + multiscale loss + backward + Adam) at batch 8, widths 1 and 0.25, with
//! a per-layer breakdown and every figure as a fraction of the adapter's FMA peak measured in the same run.
//! Used by `corrflow bench flownet`.

use std::collections::BTreeMap;
use std::time::Instant;

use super::correlation::json_string;
use super::peak::measure_fma_peak_gflops_with;
use crate::data::Rng;
use crate::error::Result;
use crate::models::flownet::{Arch, Variant};
use crate::ops::conv::ConvAlgo;
use crate::runtime::{Context, HostTensor, Program};
use crate::training::{TrainBatch, TrainConfig, Trainer};
use crate::FlowNet;

/// One benchmarked configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct FlowNetConfig {
    pub name: String,
    pub variant: Variant,
    pub width_multiplier: f64,
    pub batch: usize,
    pub height: usize,
    pub width: usize,
    /// A training step instead of a forward pass.
    pub train: bool,
}

impl FlowNetConfig {
    /// The six configurations of the speed issue, at 384x512, and the shipped model's training step
    /// (FlowNetS width 0.25, batch 4 at 256x192: what `corrflow train`'s steps/s comes from).
    pub fn standard() -> Vec<FlowNetConfig> {
        let c = |name: &str, variant, width_multiplier, batch, train| FlowNetConfig {
            name: name.to_string(),
            variant,
            width_multiplier,
            batch,
            height: 384,
            width: 512,
            train,
        };
        vec![
            c("flownets_fwd_b1", Variant::S, 1.0, 1, false),
            c("flownets_fwd_b8", Variant::S, 1.0, 8, false),
            c("flownetc_fwd_b1", Variant::C, 1.0, 1, false),
            c("flownetc_fwd_b8", Variant::C, 1.0, 8, false),
            c("flownetc_train_b8_w1", Variant::C, 1.0, 8, true),
            c("flownetc_train_b8_w0.25", Variant::C, 0.25, 8, true),
            FlowNetConfig {
                height: 192,
                width: 256,
                ..c("flownets_train_b4_w0.25_256x192", Variant::S, 0.25, 4, true)
            },
        ]
    }

    /// FLOP of one forward pass, or of one training step (forward + input and weight gradients: three
    /// times the forward's conv FLOP; the correlation's backward, both inputs, twice its forward).
    pub fn flop(&self) -> f64 {
        let per_layer = Arch::new(self.variant, self.width_multiplier).layer_flops(self.batch, self.height, self.width);
        let fwd: f64 = per_layer.iter().map(|(_, f)| f).sum();
        if self.train {
            3.0 * fwd
        } else {
            fwd
        }
    }
}

/// What [`run`] measures.
#[derive(Clone, Debug, Default)]
pub struct FlowNetBenchOptions {
    /// Only the configs with these names (empty: all of [`FlowNetConfig::standard`]).
    pub only: Vec<String>,
    /// Timed repetitions after the warm-up (at least 1).
    pub runs: usize,
    /// Also time the first, direct conv kernels (forward configs only; slow).
    pub baseline: bool,
    /// Replace the standard configs by small ones (64x128, width 0.125, batch 2): for tests.
    pub smoke: bool,
    /// Say on stderr which config is running (the full run takes minutes on a software adapter).
    pub progress: bool,
}

/// Time and throughput of one layer (forward and backward of a layer are separate entries).
#[derive(Clone, Debug)]
pub struct LayerTiming {
    pub name: String,
    pub ms: f64,
    pub gflop: f64,
}

/// Measurements of one config.
#[derive(Clone, Debug)]
pub struct FlowNetResult {
    pub config: FlowNetConfig,
    pub ms: f64,
    pub gflops: f64,
    pub baseline_ms: Option<f64>,
    /// Layers by time, slowest first; their times come from running each layer alone (submit + wait).
    pub layers: Vec<LayerTiming>,
}

/// A full run.
#[derive(Clone, Debug)]
pub struct FlowNetReport {
    pub adapter: String,
    /// The register-only FMA kernel's rate: the larger of a measurement before and one after the configs.
    pub fma_peak_gflops: f64,
    pub results: Vec<FlowNetResult>,
}

fn smoke_configs() -> Vec<FlowNetConfig> {
    FlowNetConfig::standard()
        .into_iter()
        .map(|mut c| {
            c.height = 64;
            c.width = 128;
            c.width_multiplier = 0.125;
            c.batch = c.batch.min(2);
            c
        })
        .collect()
}

/// Wall time of replaying `program` once (submit + wait), in ms.
fn time_program(ctx: &Context, program: &Program) -> Result<f64> {
    let t = Instant::now();
    let mut rec = ctx.recorder("bench");
    rec.replay(program);
    rec.submit()?;
    Ok(t.elapsed().as_secs_f64() * 1e3)
}

/// Best of `runs` timings of the whole program, after one warm-up run.
fn best_time(ctx: &Context, program: &Program, runs: usize) -> Result<f64> {
    time_program(ctx, program)?;
    let mut best = f64::INFINITY;
    for _ in 0..runs.max(1) {
        best = best.min(time_program(ctx, program)?);
    }
    Ok(best)
}

/// Times every segment alone; forward FLOP attributed by layer name (backward segments: 2x the layer's).
fn layer_breakdown(ctx: &Context, program: &Program, config: &FlowNetConfig) -> Result<Vec<LayerTiming>> {
    let flops: BTreeMap<String, f64> = Arch::new(config.variant, config.width_multiplier)
        .layer_flops(config.batch, config.height, config.width)
        .into_iter()
        .collect();
    let mut by_name: BTreeMap<String, LayerTiming> = BTreeMap::new();
    for (label, segment) in program.segments() {
        if segment.is_empty() {
            continue;
        }
        let ms = time_program(ctx, &segment)?;
        let (base, factor) = match label.strip_suffix(" backward") {
            Some(base) => (base, 2.0),
            None => (label.as_str(), 1.0),
        };
        let gflop = flops.get(base).copied().unwrap_or(0.0) * factor / 1e9;
        let name = if label.is_empty() { "(setup: clears, loss)".to_string() } else { label.clone() };
        let entry = by_name.entry(name.clone()).or_insert(LayerTiming { name, ms: 0.0, gflop: 0.0 });
        entry.ms += ms;
        // A layer run twice (FlowNetC's tower) shows up as two segments: its FLOP count covers both.
        entry.gflop = entry.gflop.max(gflop);
    }
    let mut layers: Vec<LayerTiming> = by_name.into_values().collect();
    layers.sort_by(|a, b| b.ms.total_cmp(&a.ms));
    Ok(layers)
}

fn inputs(config: &FlowNetConfig) -> TrainBatch {
    let mut rng = Rng::new(7);
    let shape = [config.batch, 3, config.height, config.width];
    let scaled = |mut t: HostTensor, s: f32| {
        t.data.iter_mut().for_each(|v| *v *= s);
        t
    };
    TrainBatch {
        frame_a: scaled(rng.tensor(shape), 0.5),
        frame_b: scaled(rng.tensor(shape), 0.5),
        flow: scaled(rng.tensor([config.batch, 2, config.height, config.width]), 10.0),
    }
}

/// A configuration's recorded work, ready to replay: the forward pass, or the whole training step
/// (gradients, loss and Adam), on freshly initialised weights and random inputs. Used by `corrflow bench
/// flownet` and by `benches/flownet.rs`.
pub struct PreparedFlowNet {
    pub config: FlowNetConfig,
    pub program: Program,
    // The network or trainer whose buffers the program uses; kept alive with it.
    _owner: Box<dyn std::any::Any>,
}

/// Builds and records `config` (allocating its activations; a training step also runs once to load its
/// inputs).
pub fn prepare(ctx: &Context, config: &FlowNetConfig) -> Result<PreparedFlowNet> {
    let weights = Arch::new(config.variant, config.width_multiplier).init_weights(1);
    let (n, h, w) = (config.batch, config.height, config.width);
    let (program, owner): (Program, Box<dyn std::any::Any>) = if config.train {
        let mut trainer = Trainer::new(ctx, FlowNet::new(ctx, &weights)?, TrainConfig::default())?;
        trainer.step(ctx, &inputs(config))?; // records the plan and loads real inputs
        (trainer.recorded_step(ctx, n, h, w)?, Box::new(trainer))
    } else {
        let net = FlowNet::new(ctx, &weights)?;
        (net.recorded_forward(ctx, n, h, w)?, Box::new(net))
    };
    Ok(PreparedFlowNet { config: config.clone(), program, _owner: owner })
}

fn run_config(ctx: &Context, config: &FlowNetConfig, opts: &FlowNetBenchOptions) -> Result<FlowNetResult> {
    let prepared = prepare(ctx, config)?;
    let baseline_ms = if opts.baseline && !config.train {
        let mut direct = FlowNet::new(ctx, &Arch::new(config.variant, config.width_multiplier).init_weights(1))?;
        direct.set_conv_algo(ConvAlgo::Direct);
        let p = direct.recorded_forward(ctx, config.batch, config.height, config.width)?;
        Some(best_time(ctx, &p, 1)?)
    } else {
        None
    };
    let ms = best_time(ctx, &prepared.program, opts.runs)?;
    let layers = layer_breakdown(ctx, &prepared.program, config)?;
    Ok(FlowNetResult { config: config.clone(), ms, gflops: config.flop() / (ms * 1e6), baseline_ms, layers })
}

/// Runs the benchmark.
pub fn run(ctx: &Context, opts: &FlowNetBenchOptions) -> Result<FlowNetReport> {
    let fma_peak_gflops = measure_fma_peak_gflops_with(ctx, if opts.smoke { 1 } else { 3 })?;
    let configs = if opts.smoke { smoke_configs() } else { FlowNetConfig::standard() };
    let mut results = Vec::new();
    let selected: Vec<&FlowNetConfig> =
        configs.iter().filter(|c| opts.only.is_empty() || opts.only.iter().any(|o| o == &c.name)).collect();
    if selected.is_empty() {
        let names: Vec<&str> = configs.iter().map(|c| c.name.as_str()).collect();
        return Err(crate::Error::InvalidParam {
            op: "bench flownet",
            message: format!("no config named {:?}; the configs are {names:?}", opts.only),
        });
    }
    for (i, config) in selected.iter().enumerate() {
        if opts.progress {
            eprintln!("[{}/{}] {} ({:.1} GFLOP)...", i + 1, selected.len(), config.name, config.flop() / 1e9);
        }
        let t = Instant::now();
        results.push(run_config(ctx, config, opts)?);
        if opts.progress {
            eprintln!("      done in {:.1} s", t.elapsed().as_secs_f64());
        }
    }
    // Measured again at the end, keeping the larger: a CPU adapter shares the machine, and a peak measured
    // during someone else's burst would inflate every fraction of it.
    let fma_peak_gflops = fma_peak_gflops.max(measure_fma_peak_gflops_with(ctx, if opts.smoke { 1 } else { 3 })?);
    Ok(FlowNetReport { adapter: ctx.adapter().to_string(), fma_peak_gflops, results })
}

impl FlowNetReport {
    /// Human-readable table with the per-layer breakdown (top layers of each config).
    pub fn to_table(&self) -> String {
        let peak = self.fma_peak_gflops;
        let mut s =
            format!("adapter: {}\nFMA peak (register-only kernel, this run): {peak:.1} GFLOP/s\n\n", self.adapter);
        s.push_str(&format!(
            "{:<26} {:>10} {:>9} {:>7} {:>12} {:>9}\n",
            "config", "ms", "GFLOP/s", "%peak", "direct ms", "speedup"
        ));
        for r in &self.results {
            let (base, speedup) = match r.baseline_ms {
                Some(b) => (format!("{b:.0}"), format!("{:.1}x", b / r.ms)),
                None => ("-".into(), "-".into()),
            };
            s.push_str(&format!(
                "{:<26} {:>10.1} {:>9.2} {:>6.1}% {:>12} {:>9}\n",
                r.config.name,
                r.ms,
                r.gflops,
                100.0 * r.gflops / peak,
                base,
                speedup
            ));
        }
        for r in &self.results {
            s.push_str(&format!(
                "\n{} ({} x {}x{}, width {}): slowest layers, each run alone\n",
                r.config.name, r.config.batch, r.config.width, r.config.height, r.config.width_multiplier
            ));
            s.push_str(&format!("  {:<28} {:>9} {:>9} {:>7}\n", "layer", "ms", "GFLOP/s", "%peak"));
            for l in r.layers.iter().take(12) {
                let g = if l.ms > 0.0 { l.gflop / (l.ms / 1e3) } else { 0.0 };
                s.push_str(&format!("  {:<28} {:>9.1} {:>9.2} {:>6.1}%\n", l.name, l.ms, g, 100.0 * g / peak));
            }
        }
        s
    }

    /// One JSON object: `{"adapter", "fma_peak_gflops", "results": [{"name", "ms", "gflops", ...}]}`.
    pub fn to_json(&self) -> String {
        let results: Vec<String> = self
            .results
            .iter()
            .map(|r| {
                let layers: Vec<String> = r
                    .layers
                    .iter()
                    .map(|l| format!("{{\"name\": {}, \"ms\": {:.3}, \"gflop\": {:.4}}}", json_string(&l.name), l.ms, l.gflop))
                    .collect();
                format!(
                    "{{\"name\": {}, \"ms\": {:.3}, \"gflops\": {:.3}, \"peak_fraction\": {:.4}, \"gflop\": {:.3}, \"direct_ms\": {}, \"layers\": [{}]}}",
                    json_string(&r.config.name),
                    r.ms,
                    r.gflops,
                    r.gflops / self.fma_peak_gflops,
                    r.config.flop() / 1e9,
                    r.baseline_ms.map_or("null".to_string(), |b| format!("{b:.3}")),
                    layers.join(", ")
                )
            })
            .collect();
        format!(
            "{{\"adapter\": {}, \"fma_peak_gflops\": {:.3}, \"results\": [{}]}}",
            json_string(&self.adapter),
            self.fma_peak_gflops,
            results.join(", ")
        )
    }
}
