//! FlowNetS and FlowNetC exactly as `FLOWNET.md` defines them (Dosovitskiy et al., ICCV 2015, with the
//! FlowNetPytorch state-dict names), for any width multiplier, defined once: [`Arch::graph`] builds the
//! network as a [`Graph`], and everything else walks that graph (the GPU forward of [`FlowNet`], the CPU
//! reference [`forward_cpu`], the backward pass of training, the parameter list and names, the FLOP
//! counts). The multiscale training loss is in `train`.

mod train;

pub use train::FlowLoss;

use crate::error::{Error, Result};
use crate::graph::cpu::{self, CpuParams};
use crate::graph::{Act, ConvLayer, Graph, GraphBuilder, Network};
use crate::host::Tensor64;
use crate::ops::conv::ConvAlgo;
use crate::ops::correlation::CorrelationSpec;
use crate::runtime::{Context, HostTensor, Program, Tensor};

use super::weights::Weights;

/// LeakyReLU slope used after every conv/deconv of FlowNet.
pub const LEAKY_SLOPE: f32 = 0.1;
/// Network outputs are flow divided by this.
pub const DIV_FLOW: f32 = 20.0;
/// Per-channel (R, G, B) mean subtracted from pixels in [0, 1].
pub const RGB_MEAN: [f32; 3] = [0.411, 0.432, 0.450];
/// Input sides must be multiples of this.
pub const SIZE_MULTIPLE: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// Both frames stacked into one 6-channel input.
    S,
    /// Siamese tower + correlation.
    C,
}

impl std::fmt::Display for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Variant::S => "FlowNetS",
            Variant::C => "FlowNetC",
        })
    }
}

/// Python's `round` (half to even), which the reference implementation uses for `round(w * width)`.
fn round_half_even(x: f64) -> usize {
    let r = x.round();
    let v = if (x - x.trunc()).abs() == 0.5 && r % 2.0 != 0.0 { r - x.signum() } else { r };
    v.max(0.0) as usize
}

/// `conv(name, cin, cout, k, s)` of FLOWNET.md: Conv2d (padding (k - 1) / 2, bias) + LeakyReLU(0.1), with
/// FlowNetPytorch's tensor names `name.0.weight` and `name.0.bias` (a `Sequential(conv, LeakyReLU)`).
fn conv_layer(name: &str, cin: usize, cout: usize, k: usize, stride: usize) -> ConvLayer {
    ConvLayer::new(name, cin, cout, k)
        .stride(stride)
        .leaky(LEAKY_SLOPE)
        .named(format!("{name}.0.weight"), format!("{name}.0.bias"))
}

/// [`conv_layer`] applied to `x`.
fn conv(g: &mut GraphBuilder, name: &str, x: Act, cout: usize, k: usize, stride: usize) -> Act {
    let layer = g.layer(conv_layer(name, g.channels(x), cout, k, stride));
    g.conv(x, layer)
}

/// `crop_like(deconv(name, cin, cout)(x), like)`: ConvTranspose2d k4 s2 p1, no bias, + LeakyReLU(0.1).
fn deconv(g: &mut GraphBuilder, name: &str, x: Act, cout: usize, like: Act) -> Act {
    let def = ConvLayer::new(name, g.channels(x), cout, 4).transposed().stride(2).pad(1).no_bias().leaky(LEAKY_SLOPE);
    let layer = g.layer(def.named(format!("{name}.0.weight"), ""));
    g.conv_like(x, layer, like)
}

/// `predict_flow(name, cin)`: Conv2d cin -> 2, k3 s1 p1, no bias, no activation (tensor `name.weight`).
fn predict_flow(g: &mut GraphBuilder, name: &str, x: Act) -> Act {
    let layer = g.layer(ConvLayer::new(name, g.channels(x), 2, 3).no_bias());
    g.conv(x, layer)
}

/// `crop_like(upflow(name)(flow), like)`: ConvTranspose2d 2 -> 2, k4 s2 p1, no bias, no activation.
fn upflow(g: &mut GraphBuilder, name: &str, flow: Act, like: Act) -> Act {
    let layer = g.layer(ConvLayer::new(name, 2, 2, 4).transposed().stride(2).pad(1).no_bias());
    g.conv_like(flow, layer, like)
}

/// A FlowNet architecture: variant and width multiplier, with every channel count derived from them.
#[derive(Clone, Debug, PartialEq)]
pub struct Arch {
    pub variant: Variant,
    pub width: f64,
}

impl Arch {
    pub fn new(variant: Variant, width: f64) -> Self {
        Arch { variant, width }
    }

    /// `round(w * base)`, at least 1.
    pub fn ch(&self, base: usize) -> usize {
        round_half_even(self.width * base as f64).max(1)
    }

    /// The correlation layer of FlowNetC.
    pub fn correlation(&self) -> CorrelationSpec {
        CorrelationSpec::FLOWNETC
    }

    /// The network, FLOWNET.md line by line: inputs (FlowNetS: the two frames stacked, [N, 6, H, W];
    /// FlowNetC: frame A and frame B, [N, 3, H, W] each), outputs flow2, flow3, ..., flow6 (flow / 20, at
    /// 1/4 .. 1/64 of the input size). Layers are registered in FlowNetPytorch's order (the order
    /// [`Arch::init_weights`] draws them in).
    pub fn graph(&self) -> Result<Graph> {
        let c = |base| self.ch(base);
        let mut g = GraphBuilder::new();
        let (c2, c3) = match self.variant {
            Variant::S => {
                let frames = g.input("frames", 6);
                let c1 = conv(&mut g, "conv1", frames, c(64), 7, 2);
                let c2 = conv(&mut g, "conv2", c1, c(128), 5, 2);
                let c3 = conv(&mut g, "conv3", c2, c(256), 5, 2);
                (c2, conv(&mut g, "conv3_1", c3, c(256), 3, 1))
            }
            Variant::C => {
                let (a, b) = (g.input("frame_a", 3), g.input("frame_b", 3));
                // The Siamese tower: one set of weights applied to both frames.
                let tower = [
                    g.layer(conv_layer("conv1", 3, c(64), 7, 2)),
                    g.layer(conv_layer("conv2", c(64), c(128), 5, 2)),
                    g.layer(conv_layer("conv3", c(128), c(256), 5, 2)),
                ];
                let run_tower = |g: &mut GraphBuilder, x: Act| {
                    let x1 = g.conv(x, tower[0]);
                    let x2 = g.conv(x1, tower[1]);
                    (x2, g.conv(x2, tower[2]))
                };
                let (a2, a3) = run_tower(&mut g, a);
                let (_, b3) = run_tower(&mut g, b);
                let redir = conv(&mut g, "conv_redir", a3, c(32), 1, 1);
                // Added after conv_redir, its other reader of a3: its backward overwrites a3's gradient.
                let corr = g.correlation(a3, b3, self.correlation(), Some(LEAKY_SLOPE));
                let cat = g.concat(&[redir, corr]);
                (a2, conv(&mut g, "conv3_1", cat, c(256), 3, 1))
            }
        };
        let c4 = conv(&mut g, "conv4", c3, c(512), 3, 2);
        let c4 = conv(&mut g, "conv4_1", c4, c(512), 3, 1);
        let c5 = conv(&mut g, "conv5", c4, c(512), 3, 2);
        let c5 = conv(&mut g, "conv5_1", c5, c(512), 3, 1);
        let c6 = conv(&mut g, "conv6", c5, c(1024), 3, 2);
        let c6 = conv(&mut g, "conv6_1", c6, c(1024), 3, 1);
        // The decoder: cat_k = [c_k, crop(deconv_k(cat_{k+1})), crop(upflow(flow_{k+1}))], flow_k =
        // predict_flow_k(cat_k); the deconvolution and the upsampled flow are written into cat_k in place.
        let mut flow = predict_flow(&mut g, "predict_flow6", c6);
        let (mut prev, mut flows) = (c6, vec![flow]);
        for (k, ck, dk) in [(5, c5, c(512)), (4, c4, c(256)), (3, c3, c(128)), (2, c2, c(64))] {
            let up = upflow(&mut g, &format!("upsampled_flow{}_to_{k}", k + 1), flow, ck);
            let d = deconv(&mut g, &format!("deconv{k}"), prev, dk, ck);
            prev = g.concat(&[ck, d, up]);
            flow = predict_flow(&mut g, &format!("predict_flow{k}"), prev);
            flows.push(flow);
        }
        for &f in flows.iter().rev() {
            g.output(f);
        }
        g.finish()
    }

    /// Every layer, in registration (FlowNetPytorch) order.
    pub fn layers(&self) -> Vec<ConvLayer> {
        self.graph().map(|g| g.layers().to_vec()).unwrap_or_default()
    }

    pub fn num_params(&self) -> usize {
        self.layers().iter().map(ConvLayer::num_params).sum()
    }

    /// The graph's input shapes for a batch of `n` pairs at `h` x `w`.
    pub fn input_shapes(&self, n: usize, h: usize, w: usize) -> Vec<[usize; 4]> {
        match self.variant {
            Variant::S => vec![[n, 6, h, w]],
            Variant::C => vec![[n, 3, h, w]; 2],
        }
    }

    /// Forward FLOP (multiply-adds counted as 2) of every layer for a batch of `n` pairs at `h` x `w`, by
    /// layer name in forward order, plus `correlation` for FlowNetC (from the graph: transposed convs count
    /// only the taps that exist, k^2 / stride^2 per output pixel; FlowNetC's tower layers count both frames).
    /// Empty if the network cannot run at that size.
    pub fn layer_flops(&self, n: usize, h: usize, w: usize) -> Vec<(String, f64)> {
        self.graph().and_then(|g| g.layer_flops(&self.input_shapes(n, h, w))).unwrap_or_default()
    }

    /// Fresh weights: He (Kaiming) uniform initialisation for LeakyReLU(0.1) with PyTorch's fan-in
    /// convention (weight.size(1) * k * k, which for a transposed conv is its cout), biases zero.
    pub fn init_weights(&self, seed: u64) -> Weights {
        let mut rng = crate::data::Rng::new(seed);
        let gain = (2.0 / (1.0 + (LEAKY_SLOPE as f64).powi(2))).sqrt();
        let mut tensors = Vec::new();
        for l in self.layers() {
            let shape = l.weight_shape();
            let fan_in = (shape[1] * l.k * l.k) as f64;
            let bound = (gain * (3.0 / fan_in).sqrt()) as f32;
            let n: usize = shape.iter().product();
            tensors.push((l.weight_name.clone(), shape.to_vec(), (0..n).map(|_| rng.uniform() * bound).collect()));
            if let Some(b) = &l.bias_name {
                tensors.push((b.clone(), vec![l.cout], vec![0.0; l.cout]));
            }
        }
        Weights::from_tensors(&format!("{} width {} (initialised, seed {seed})", self.variant, self.width), tensors)
    }

    /// Infers variant (conv_redir present = FlowNetC) and width (from conv6_1, the widest layer) from a
    /// weights file, then checks that every tensor the network needs is there with the right shape.
    pub fn infer(weights: &Weights) -> Result<Self> {
        let err = |message: String| Error::Weights { path: weights.source.clone(), message };
        let variant = if weights.contains("conv_redir.0.weight") { Variant::C } else { Variant::S };
        let c61 = weights.shape("conv6_1.0.weight").ok_or_else(|| {
            err("no tensor `conv6_1.0.weight`: this is not a FlowNetS/FlowNetC weights file (tensor names follow FlowNetPytorch)".into())
        })?;
        let width = c61[0] as f64 / 1024.0;
        let arch = match weights.metadata().get("width").and_then(|w| w.parse::<f64>().ok()) {
            Some(w) if Arch::new(variant, w).ch(1024) == c61[0] => Arch::new(variant, w),
            _ => Arch::new(variant, width),
        };
        let conv1_cin = weights.shape("conv1.0.weight").map(|s| s.get(1).copied());
        let expected_cin = if variant == Variant::C { 3 } else { 6 };
        if let Some(Some(cin)) = conv1_cin {
            if cin != expected_cin {
                return Err(err(format!(
                    "conv1 takes {cin} input channels, but {variant} takes {expected_cin} (FlowNetS: 6, FlowNetC: 3); the file mixes networks"
                )));
            }
        }
        arch.check(weights)?;
        Ok(arch)
    }

    /// Every tensor of the network present with its expected shape; no unexpected extra tensors.
    pub fn check(&self, weights: &Weights) -> Result<()> {
        self.graph()?.check_weights(weights).map_err(|e| match e {
            Error::Weights { path, message } if message.starts_with("unexpected tensor") => Error::Weights {
                path,
                message: format!(
                    "{message}: {} at width {} (batch-norm checkpoints are not supported)",
                    self.variant, self.width
                ),
            },
            e => e,
        })
    }
}

/// The five flow predictions, each [N, 2, H / 2^k, W / 2^k] for k = 2..6, in units of flow / 20.
pub struct Pyramid<T> {
    pub flow2: T,
    pub flow3: T,
    pub flow4: T,
    pub flow5: T,
    pub flow6: T,
}

impl<T> Pyramid<T> {
    /// Finest first: flow2, flow3, ..., flow6.
    pub fn levels(&self) -> [&T; 5] {
        [&self.flow2, &self.flow3, &self.flow4, &self.flow5, &self.flow6]
    }

    /// From the graph's outputs (flow2 first).
    fn from_outputs(outputs: Vec<T>) -> Result<Self> {
        let n = outputs.len();
        match <[T; 5]>::try_from(outputs) {
            Ok([flow2, flow3, flow4, flow5, flow6]) => Ok(Pyramid { flow2, flow3, flow4, flow5, flow6 }),
            Err(_) => Err(Error::Shape { op: "flownet", message: format!("{n} outputs, expected flow2 .. flow6") }),
        }
    }
}

/// FlowNetS / FlowNetC on a device: the graph of its [`Arch`] with its weights uploaded, and its recorded
/// forward passes (one per input shape, LRU-bounded: [`FlowNet::set_plan_capacity`]).
pub struct FlowNet {
    arch: Arch,
    net: Network,
    passes: Passes,
}

/// The passes of [`FlowNet::estimate`]: the input scale of each, in order (1 = the frames' size, 0.5 = half
/// of it, rounded up to the network's multiple of 64). The first pass runs on the two frames; each further
/// one on frame A and frame B warped by the flow so far, adding the flow it finds. Written as the scales
/// joined by commas (`0.5,1,1`), as `corrflow flow --passes` takes them and a model file's `passes` metadata
/// holds them.
#[derive(Clone, Debug, PartialEq)]
pub struct Passes(Vec<f32>);

/// Most passes a [`Passes`] may hold (each costs a forward pass).
pub const MAX_PASSES: usize = 8;
/// Smallest and largest input scale of a pass.
pub const PASS_SCALES: (f32, f32) = (0.125, 2.0);

impl Passes {
    /// The network once, on the frames at their size.
    pub fn single() -> Passes {
        Passes(vec![1.0])
    }

    /// 1 to [`MAX_PASSES`] scales, each within [`PASS_SCALES`].
    pub fn new(scales: Vec<f32>) -> Result<Passes> {
        let (lo, hi) = PASS_SCALES;
        if scales.is_empty() || scales.len() > MAX_PASSES || scales.iter().any(|s| !(lo..=hi).contains(s)) {
            return Err(Error::InvalidParam {
                op: "flownet passes",
                message: format!(
                    "`{}`: give 1 to {MAX_PASSES} input scales from {lo} to {hi}, one per pass (e.g. `1`, or `0.5,1,1`)",
                    Passes(scales)
                ),
            });
        }
        Ok(Passes(scales))
    }

    /// Parses `0.5,1,1` (see [`Passes::new`]).
    pub fn parse(text: &str) -> Result<Passes> {
        let scales = text.split(',').map(|v| v.trim().parse::<f32>()).collect::<std::result::Result<Vec<_>, _>>();
        match scales {
            Ok(s) => Passes::new(s),
            Err(_) => Err(Error::InvalidParam {
                op: "flownet passes",
                message: format!(
                    "`{text}`: give the input scale of each pass, separated by commas (e.g. `1`, or `0.5,1,1`)"
                ),
            }),
        }
    }

    /// The input scale of each pass, in order.
    pub fn scales(&self) -> &[f32] {
        &self.0
    }

    /// `1 pass`, `3 passes at input scales 0.5, 1, 1`.
    pub fn describe(&self) -> String {
        match self.0.as_slice() {
            [s] if *s == 1.0 => "1 pass".to_string(),
            [s] => format!("1 pass at input scale {s}"),
            v => format!(
                "{} passes at input scales {}",
                v.len(),
                v.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ")
            ),
        }
    }
}

impl std::fmt::Display for Passes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(","))
    }
}

/// The passes a model file asks for: its `passes` metadata entry (written by `corrflow export --passes`),
/// else one; an entry [`Passes::parse`] refuses is an error naming the file.
pub fn passes_in(weights: &Weights) -> Result<Passes> {
    match weights.metadata().get("passes") {
        None => Ok(Passes::single()),
        Some(v) => Passes::parse(v).map_err(|e| Error::Weights {
            path: weights.source.clone(),
            message: format!("metadata `passes` (the passes the model is meant to run) is not valid: {e}"),
        }),
    }
}

impl FlowNet {
    /// Builds the network described by `weights` (variant and width inferred, every tensor checked). The
    /// [`FlowNet::passes`] are the weights' `passes` metadata entry (what `corrflow export --passes` chose for
    /// the model), else one pass.
    pub fn new(ctx: &Context, weights: &Weights) -> Result<Self> {
        let arch = Arch::infer(weights)?;
        let passes = passes_in(weights)?;
        Ok(FlowNet { net: Network::new(ctx, arch.graph()?, weights)?, arch, passes })
    }

    /// Sets the passes [`FlowNet::estimate`] runs (see [`Passes`]).
    pub fn with_passes(mut self, passes: Passes) -> Self {
        self.passes = passes;
        self
    }

    /// The passes [`FlowNet::estimate`] runs: the model file's, unless [`FlowNet::with_passes`] set others.
    pub fn passes(&self) -> &Passes {
        &self.passes
    }

    /// Loads a safetensors file.
    pub fn load(ctx: &Context, path: impl AsRef<std::path::Path>) -> Result<Self> {
        Self::new(ctx, &Weights::load(path)?)
    }

    pub fn arch(&self) -> &Arch {
        &self.arch
    }

    /// The graph and its weights.
    pub fn network(&self) -> &Network {
        &self.net
    }

    /// Chooses the conv kernels of every layer (the context's policy, by default the tiled ones;
    /// [`ConvAlgo::Direct`] for the first, correctness-first kernels and the naive correlation, to measure
    /// speed-ups). Drops the recorded plans.
    pub fn set_conv_algo(&mut self, algo: ConvAlgo) {
        self.net.set_conv_algo(algo);
    }

    /// How many input shapes keep a recorded forward pass (default 4); the least recently used is dropped
    /// first, so calls on frames of many sizes hold a bounded amount of memory.
    pub fn set_plan_capacity(&self, capacity: usize) {
        self.net.set_plan_capacity(capacity);
    }

    /// The number of recorded forward passes held.
    pub fn cached_plans(&self) -> usize {
        self.net.cached_plans()
    }

    /// Checks a forward input shape: FlowNetS takes one [N, 6, H, W] tensor, FlowNetC two [N, 3, H, W];
    /// H and W positive multiples of 64.
    fn check_input(&self, a: [usize; 4], b: Option<[usize; 4]>) -> Result<(usize, usize, usize)> {
        let [n, cin, h, w] = a;
        let want_cin = match self.arch.variant {
            Variant::S => 6,
            Variant::C => 3,
        };
        if cin != want_cin || (self.arch.variant == Variant::C) != b.is_some() {
            return Err(Error::Shape {
                op: "flownet",
                message: format!(
                    "{} takes {} (got {cin} channels, second frame {})",
                    self.arch.variant,
                    if want_cin == 6 { "one [N, 6, H, W] input" } else { "two [N, 3, H, W] inputs" },
                    if b.is_some() { "given" } else { "absent" }
                ),
            });
        }
        if let Some(b) = b {
            if b != a {
                return Err(Error::Shape { op: "flownet", message: format!("frames differ: {a:?} vs {b:?}") });
            }
        }
        if n == 0 || h == 0 || w == 0 || h % SIZE_MULTIPLE != 0 || w % SIZE_MULTIPLE != 0 {
            return Err(Error::Shape { op: "flownet", message: format!("input is {n} x {w}x{h}; sides must be positive multiples of {SIZE_MULTIPLE} (use `estimate`, which resizes)") });
        }
        Ok((n, h, w))
    }

    /// The recorded forward pass for a batch of `n` pairs at `h` x `w` (recording it if needed), with a
    /// mark before every layer so [`Program::segments`] times it layer by layer. Its inputs are the plan's
    /// input activations.
    pub fn recorded_forward(&self, ctx: &Context, n: usize, h: usize, w: usize) -> Result<Program> {
        let channels = if self.arch.variant == Variant::S { 6 } else { 3 };
        let b = (self.arch.variant == Variant::C).then_some([n, 3, h, w]);
        self.check_input([n, channels, h, w], b)?;
        self.net.recorded_forward(ctx, &self.arch.input_shapes(n, h, w))
    }

    /// Runs the network on normalised frames. For FlowNetS pass `a` = both frames stacked [N, 6, H, W] and
    /// `b = None`; for FlowNetC pass `a`, `b` [N, 3, H, W]. H and W must be multiples of 64.
    ///
    /// The first call at a shape allocates that shape's activations and records the pass; later calls
    /// copy the inputs in and replay it as one submission, allocating nothing. The returned tensors are
    /// handles to those reused buffers: the next forward at the same shape overwrites them.
    pub fn forward(&self, ctx: &Context, a: &Tensor, b: Option<&Tensor>) -> Result<Pyramid<Tensor>> {
        self.check_input(a.shape(), b.map(|b| b.shape()))?;
        let inputs: Vec<&Tensor> = std::iter::once(a).chain(b).collect();
        Pyramid::from_outputs(self.net.forward(ctx, &inputs)?)
    }
}

/// CPU reference forward of the whole network in f64 (the graph's [`cpu::forward`]), rounded to f32 at
/// the end. Inputs as in [`FlowNet::forward`], on the host. Slow: for tests at small sizes and widths.
pub fn forward_cpu(
    arch: &Arch,
    weights: &Weights,
    a: &HostTensor,
    b: Option<&HostTensor>,
) -> Result<Pyramid<HostTensor>> {
    let graph = arch.graph()?;
    let mut inputs = vec![Tensor64::from_f32(a)];
    if arch.variant == Variant::C {
        let b = b.ok_or(Error::Shape { op: "flownet", message: "FlowNetC needs frame b".into() })?;
        inputs.push(Tensor64::from_f32(b));
    }
    let acts = cpu::forward(&graph, &CpuParams::new(&graph, weights)?, &inputs)?;
    Pyramid::from_outputs(acts.outputs(&graph).iter().map(Tensor64::to_f32).collect())
}
