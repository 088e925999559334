//! FlowNetS and FlowNetC exactly as `FLOWNET.md` defines them (Dosovitskiy et al., ICCV 2015, with the
//! FlowNetPytorch state-dict names), for any width multiplier. The architecture is described once by
//! [`Arch`] (layer list with derived channel counts); the GPU forward and the CPU reference forward both
//! walk it.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::ops::conv::{conv_forward, ConvAlgo, ConvSpec, ConvWeights};
use crate::ops::correlation::{correlation_forward, correlation_forward_naive, CorrelationSpec};
use crate::reference::conv::{conv2d_cpu, conv_transpose2d_cpu};
use crate::reference::correlation::correlation_cpu;
use crate::reference::elementwise::{concat_cpu, leaky_relu_cpu};
use crate::runtime::{Context, HostTensor, Program, Recorder, Tensor};

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

/// One conv layer: `conv(name, cin, cout, k, s)` (with LeakyReLU), `deconv`, `predict_flow` or `upflow`.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerDef {
    pub name: String,
    pub cin: usize,
    pub cout: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
    pub transposed: bool,
    pub bias: bool,
    pub leaky: bool,
}

impl LayerDef {
    fn conv(name: &str, cin: usize, cout: usize, k: usize, stride: usize) -> Self {
        LayerDef {
            name: name.into(),
            cin,
            cout,
            k,
            stride,
            pad: (k - 1) / 2,
            transposed: false,
            bias: true,
            leaky: true,
        }
    }
    fn deconv(name: &str, cin: usize, cout: usize) -> Self {
        LayerDef { name: name.into(), cin, cout, k: 4, stride: 2, pad: 1, transposed: true, bias: false, leaky: true }
    }
    fn predict_flow(name: &str, cin: usize) -> Self {
        LayerDef {
            name: name.into(),
            cin,
            cout: 2,
            k: 3,
            stride: 1,
            pad: 1,
            transposed: false,
            bias: false,
            leaky: false,
        }
    }
    fn upflow(name: &str) -> Self {
        LayerDef {
            name: name.into(),
            cin: 2,
            cout: 2,
            k: 4,
            stride: 2,
            pad: 1,
            transposed: true,
            bias: false,
            leaky: false,
        }
    }
    /// State-dict name of the weight tensor (`conv1.0.weight`, `predict_flow2.weight`, ...).
    pub fn weight_name(&self) -> String {
        if self.leaky {
            format!("{}.0.weight", self.name)
        } else {
            format!("{}.weight", self.name)
        }
    }
    pub fn bias_name(&self) -> String {
        format!("{}.0.bias", self.name)
    }
    pub fn weight_shape(&self) -> [usize; 4] {
        if self.transposed {
            [self.cin, self.cout, self.k, self.k]
        } else {
            [self.cout, self.cin, self.k, self.k]
        }
    }
    pub fn spec(&self) -> ConvSpec {
        ConvSpec { stride: self.stride, pad: self.pad, leaky: self.leaky.then_some(LEAKY_SLOPE) }
    }
    pub fn num_params(&self) -> usize {
        self.weight_shape().iter().product::<usize>() + if self.bias { self.cout } else { 0 }
    }
}

/// Python's `round` (half to even), which the reference implementation uses for `round(w * width)`.
fn round_half_even(x: f64) -> usize {
    let r = x.round();
    let v = if (x - x.trunc()).abs() == 0.5 && r % 2.0 != 0.0 { r - x.signum() } else { r };
    v.max(0.0) as usize
}

/// A FlowNet architecture: variant and width multiplier, with every channel count derived from them.
#[derive(Clone, Debug, PartialEq)]
pub struct Arch {
    pub variant: Variant,
    pub width: f64,
}

/// Channel counts the decoder needs (derived, never hard-coded sums).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Widths {
    pub(crate) c2: usize,
    pub(crate) c3: usize,
    pub(crate) c4: usize,
    pub(crate) c5: usize,
    pub(crate) c6: usize,
    pub(crate) d5: usize,
    pub(crate) d4: usize,
    pub(crate) d3: usize,
    pub(crate) d2: usize,
    pub(crate) redir: usize,
}

impl Arch {
    pub fn new(variant: Variant, width: f64) -> Self {
        Arch { variant, width }
    }

    /// `round(w * base)`, at least 1.
    pub fn ch(&self, base: usize) -> usize {
        round_half_even(self.width * base as f64).max(1)
    }

    pub(crate) fn widths(&self) -> Widths {
        Widths {
            c2: self.ch(128),
            c3: self.ch(256),
            c4: self.ch(512),
            c5: self.ch(512),
            c6: self.ch(1024),
            d5: self.ch(512),
            d4: self.ch(256),
            d3: self.ch(128),
            d2: self.ch(64),
            redir: self.ch(32),
        }
    }

    /// The correlation layer of FlowNetC.
    pub fn correlation(&self) -> CorrelationSpec {
        CorrelationSpec::FLOWNETC
    }

    /// Every layer, in forward order.
    pub fn layers(&self) -> Vec<LayerDef> {
        let w = self.widths();
        let c = |b| self.ch(b);
        let mut l = Vec::new();
        match self.variant {
            Variant::S => {
                l.push(LayerDef::conv("conv1", 6, c(64), 7, 2));
                l.push(LayerDef::conv("conv2", c(64), w.c2, 5, 2));
                l.push(LayerDef::conv("conv3", w.c2, c(256), 5, 2));
                l.push(LayerDef::conv("conv3_1", c(256), w.c3, 3, 1));
            }
            Variant::C => {
                l.push(LayerDef::conv("conv1", 3, c(64), 7, 2));
                l.push(LayerDef::conv("conv2", c(64), w.c2, 5, 2));
                l.push(LayerDef::conv("conv3", w.c2, c(256), 5, 2));
                l.push(LayerDef::conv("conv_redir", c(256), w.redir, 1, 1));
                l.push(LayerDef::conv("conv3_1", w.redir + self.correlation().displacements(), w.c3, 3, 1));
            }
        }
        l.push(LayerDef::conv("conv4", w.c3, c(512), 3, 2));
        l.push(LayerDef::conv("conv4_1", c(512), w.c4, 3, 1));
        l.push(LayerDef::conv("conv5", w.c4, c(512), 3, 2));
        l.push(LayerDef::conv("conv5_1", c(512), w.c5, 3, 1));
        l.push(LayerDef::conv("conv6", w.c5, c(1024), 3, 2));
        l.push(LayerDef::conv("conv6_1", c(1024), w.c6, 3, 1));
        // Decoder: cat_k = [c_k, d_k, up_k]; deconv_k reads cat_{k+1} (or c6), predict_flow_k reads cat_k.
        let cat5 = w.c5 + w.d5 + 2;
        let cat4 = w.c4 + w.d4 + 2;
        let cat3 = w.c3 + w.d3 + 2;
        let cat2 = w.c2 + w.d2 + 2;
        l.push(LayerDef::predict_flow("predict_flow6", w.c6));
        l.push(LayerDef::upflow("upsampled_flow6_to_5"));
        l.push(LayerDef::deconv("deconv5", w.c6, w.d5));
        l.push(LayerDef::predict_flow("predict_flow5", cat5));
        l.push(LayerDef::upflow("upsampled_flow5_to_4"));
        l.push(LayerDef::deconv("deconv4", cat5, w.d4));
        l.push(LayerDef::predict_flow("predict_flow4", cat4));
        l.push(LayerDef::upflow("upsampled_flow4_to_3"));
        l.push(LayerDef::deconv("deconv3", cat4, w.d3));
        l.push(LayerDef::predict_flow("predict_flow3", cat3));
        l.push(LayerDef::upflow("upsampled_flow3_to_2"));
        l.push(LayerDef::deconv("deconv2", cat3, w.d2));
        l.push(LayerDef::predict_flow("predict_flow2", cat2));
        l
    }

    pub fn num_params(&self) -> usize {
        self.layers().iter().map(LayerDef::num_params).sum()
    }

    /// Forward FLOP (multiply-adds counted as 2) of every layer for a batch of `n` pairs at `h` x `w`, by
    /// layer name in forward order, plus `correlation` for FlowNetC. Transposed convs count only the taps
    /// that exist (k^2 / stride^2 per output pixel); FlowNetC's tower layers count both frames.
    pub fn layer_flops(&self, n: usize, h: usize, w: usize) -> Vec<(String, f64)> {
        let scale = |name: &str| -> u32 {
            let digit = |s: &str| s.chars().find(|c| c.is_ascii_digit()).and_then(|c| c.to_digit(10)).unwrap_or(3);
            match name {
                "conv_redir" => 3,
                _ if name.starts_with("upsampled_flow") => name.rsplit('_').next().map_or(2, digit),
                _ => digit(name),
            }
        };
        let mut out = Vec::new();
        for l in self.layers() {
            let k = scale(&l.name);
            let pixels = (n * (h >> k) * (w >> k)) as f64;
            let taps =
                if l.transposed { (l.k * l.k) as f64 / (l.stride * l.stride) as f64 } else { (l.k * l.k) as f64 };
            let tower = self.variant == Variant::C && matches!(l.name.as_str(), "conv1" | "conv2" | "conv3");
            let flops = 2.0 * pixels * (l.cin * l.cout) as f64 * taps * if tower { 2.0 } else { 1.0 };
            out.push((l.name.clone(), flops));
            if l.name == "conv_redir" {
                let corr = self.correlation();
                let c = self.ch(256) as f64;
                out.push(("correlation".to_string(), 2.0 * pixels * c * corr.displacements() as f64));
            }
        }
        out
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
            tensors.push((l.weight_name(), shape.to_vec(), (0..n).map(|_| rng.uniform() * bound).collect()));
            if l.bias {
                tensors.push((l.bias_name(), vec![l.cout], vec![0.0; l.cout]));
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
        let mut expected = std::collections::BTreeSet::new();
        for l in self.layers() {
            weights.get(&l.weight_name(), &l.weight_shape())?;
            expected.insert(l.weight_name());
            if l.bias {
                weights.get(&l.bias_name(), &[l.cout])?;
                expected.insert(l.bias_name());
            }
        }
        if let Some(extra) = weights.names().find(|n| !expected.contains(*n)) {
            return Err(Error::Weights {
                path: weights.source.clone(),
                message: format!(
                    "unexpected tensor `{extra}` for {} at width {} (batch-norm checkpoints are not supported)",
                    self.variant, self.width
                ),
            });
        }
        Ok(())
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
}

/// Every tensor of one forward pass at one input shape, by name: the inputs, each layer's output
/// (`conv1`, `cat2` .. `cat5` holding [c_k | d_k | up_k], `conv6_1`, `flow2` .. `flow6`; FlowNetC adds the
/// tower's `*_b` twins, `conv1_a`, `conv3_a` and `cat_redir_corr`). Kept so training can run the backward
/// pass over them, and reused so a forward pass at a known shape allocates nothing.
pub struct Activations {
    pub shape: (usize, usize, usize),
    tensors: HashMap<&'static str, Tensor>,
}

impl Activations {
    pub fn get(&self, name: &str) -> Result<&Tensor> {
        self.tensors.get(name).ok_or_else(|| Error::Shape { op: "flownet", message: format!("no activation `{name}`") })
    }
    /// Every tensor, by name (in no particular order).
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &Tensor)> {
        self.tensors.iter().map(|(k, v)| (*k, v))
    }
    fn add(&mut self, ctx: &Context, name: &'static str, shape: [usize; 4]) -> Result<()> {
        let t = ctx.tensor(name, shape)?;
        self.tensors.insert(name, t);
        Ok(())
    }
    pub fn pyramid(&self) -> Result<Pyramid<Tensor>> {
        Ok(Pyramid {
            flow2: self.get("flow2")?.clone(),
            flow3: self.get("flow3")?.clone(),
            flow4: self.get("flow4")?.clone(),
            flow5: self.get("flow5")?.clone(),
            flow6: self.get("flow6")?.clone(),
        })
    }
}

/// A recorded forward pass over fixed buffers, replayed for every input of its shape.
struct ForwardPlan {
    acts: Activations,
    program: Program,
}

/// A FlowNet with its weights on the GPU.
pub struct FlowNet {
    arch: Arch,
    layers: HashMap<String, (LayerDef, ConvWeights)>,
    plans: Mutex<HashMap<(usize, usize, usize), ForwardPlan>>,
    /// Use the one-invocation-per-output correlation (the baseline) instead of the tiled one.
    naive_correlation: bool,
}

/// Channel-slice shorthand used by the forward pass.
fn sl(t: &Tensor, offset: usize, channels: usize) -> Result<crate::ops::Slice<'_>> {
    t.slice(offset, channels)
}

impl FlowNet {
    /// Uploads the weights (checked against the architecture inferred from them).
    pub fn new(ctx: &Context, weights: &Weights) -> Result<Self> {
        let arch = Arch::infer(weights)?;
        let mut layers = HashMap::new();
        for l in arch.layers() {
            let w = weights.get4(&l.weight_name(), l.weight_shape())?;
            let b = if l.bias { Some(weights.get(&l.bias_name(), &[l.cout])?.to_vec()) } else { None };
            let cw = ConvWeights::new(ctx, &l.name, &w, b.as_deref(), l.transposed)?;
            layers.insert(l.name.clone(), (l, cw));
        }
        Ok(FlowNet { arch, layers, plans: Mutex::new(HashMap::new()), naive_correlation: false })
    }

    /// Loads a safetensors file.
    pub fn load(ctx: &Context, path: impl AsRef<std::path::Path>) -> Result<Self> {
        Self::new(ctx, &Weights::load(path)?)
    }

    pub fn arch(&self) -> &Arch {
        &self.arch
    }

    /// Chooses the conv kernels of every layer (the tiled ones by default; [`ConvAlgo::Direct`] for the
    /// first, correctness-first kernels and their naive correlation, to measure speed-ups). Drops the
    /// recorded plans.
    pub fn set_conv_algo(&mut self, algo: ConvAlgo) {
        for (_, w) in self.layers.values_mut() {
            w.set_algo(algo);
        }
        self.naive_correlation = algo == ConvAlgo::Direct;
        if let Ok(mut plans) = self.plans.lock() {
            plans.clear();
        }
    }

    /// The layer `name` and its GPU weights.
    pub fn layer(&self, name: &str) -> Result<&(LayerDef, ConvWeights)> {
        self.layers
            .get(name)
            .ok_or_else(|| Error::Weights { path: String::new(), message: format!("layer `{name}` missing") })
    }

    fn conv(
        &self,
        rec: &mut Recorder<'_>,
        name: &str,
        x: crate::ops::Slice<'_>,
        out: crate::ops::Slice<'_>,
    ) -> Result<()> {
        let (def, w) = self.layer(name)?;
        rec.mark(name);
        conv_forward(rec, x, w, def.spec(), out)
    }

    fn cout(&self, name: &str) -> usize {
        self.layers.get(name).map_or(0, |(d, _)| d.cout)
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

    /// Allocates every activation for a batch of `n` frame pairs of `h` x `w`.
    pub fn activations(&self, ctx: &Context, n: usize, h: usize, w: usize) -> Result<Activations> {
        let wd = self.arch.widths();
        let mut acts = Activations { shape: (n, h, w), tensors: HashMap::new() };
        let at = |c: usize, k: u32| [n, c, h >> k, w >> k];
        match self.arch.variant {
            Variant::S => {
                acts.add(ctx, "input", at(6, 0))?;
                acts.add(ctx, "conv1", at(self.cout("conv1"), 1))?;
                acts.add(ctx, "conv3", at(self.cout("conv3"), 3))?;
            }
            Variant::C => {
                acts.add(ctx, "input", at(3, 0))?;
                acts.add(ctx, "input_b", at(3, 0))?;
                acts.add(ctx, "conv1", at(self.cout("conv1"), 1))?;
                acts.add(ctx, "conv1_b", at(self.cout("conv1"), 1))?;
                acts.add(ctx, "conv2_b", at(wd.c2, 2))?;
                acts.add(ctx, "conv3", at(self.cout("conv3"), 3))?;
                acts.add(ctx, "conv3_b", at(self.cout("conv3"), 3))?;
                acts.add(ctx, "cat_redir_corr", at(wd.redir + self.arch.correlation().displacements(), 3))?;
            }
        }
        acts.add(ctx, "cat2", at(wd.c2 + wd.d2 + 2, 2))?;
        acts.add(ctx, "cat3", at(wd.c3 + wd.d3 + 2, 3))?;
        acts.add(ctx, "conv4", at(self.cout("conv4"), 4))?;
        acts.add(ctx, "cat4", at(wd.c4 + wd.d4 + 2, 4))?;
        acts.add(ctx, "conv5", at(self.cout("conv5"), 5))?;
        acts.add(ctx, "cat5", at(wd.c5 + wd.d5 + 2, 5))?;
        acts.add(ctx, "conv6", at(self.cout("conv6"), 6))?;
        acts.add(ctx, "conv6_1", at(wd.c6, 6))?;
        for (name, k) in [("flow2", 2), ("flow3", 3), ("flow4", 4), ("flow5", 5), ("flow6", 6)] {
            acts.add(ctx, name, at(2, k))?;
        }
        Ok(acts)
    }

    /// Records the whole network over `acts` (inputs in `input` / `input_b`).
    pub fn record_forward(&self, rec: &mut Recorder<'_>, acts: &Activations) -> Result<()> {
        let wd = self.arch.widths();
        let t = |name: &str| acts.get(name);
        let (cat2, cat3, cat4, cat5) = (t("cat2")?, t("cat3")?, t("cat4")?, t("cat5")?);
        match self.arch.variant {
            Variant::S => {
                self.conv(rec, "conv1", t("input")?.slice_all(), t("conv1")?.slice_all())?;
                self.conv(rec, "conv2", t("conv1")?.slice_all(), sl(cat2, 0, wd.c2)?)?;
                self.conv(rec, "conv3", sl(cat2, 0, wd.c2)?, t("conv3")?.slice_all())?;
                self.conv(rec, "conv3_1", t("conv3")?.slice_all(), sl(cat3, 0, wd.c3)?)?;
            }
            Variant::C => {
                let corr = self.arch.correlation();
                let catr = t("cat_redir_corr")?;
                // Siamese tower: the same weights on both frames.
                self.conv(rec, "conv1", t("input")?.slice_all(), t("conv1")?.slice_all())?;
                self.conv(rec, "conv1", t("input_b")?.slice_all(), t("conv1_b")?.slice_all())?;
                self.conv(rec, "conv2", t("conv1")?.slice_all(), sl(cat2, 0, wd.c2)?)?;
                self.conv(rec, "conv2", t("conv1_b")?.slice_all(), t("conv2_b")?.slice_all())?;
                self.conv(rec, "conv3", sl(cat2, 0, wd.c2)?, t("conv3")?.slice_all())?;
                self.conv(rec, "conv3", t("conv2_b")?.slice_all(), t("conv3_b")?.slice_all())?;
                self.conv(rec, "conv_redir", t("conv3")?.slice_all(), sl(catr, 0, wd.redir)?)?;
                rec.mark("correlation");
                let out = sl(catr, wd.redir, corr.displacements())?;
                if self.naive_correlation {
                    correlation_forward_naive(rec, t("conv3")?, t("conv3_b")?, corr, out, Some(LEAKY_SLOPE))?;
                } else {
                    correlation_forward(rec, t("conv3")?, t("conv3_b")?, corr, out, Some(LEAKY_SLOPE))?;
                }
                self.conv(rec, "conv3_1", catr.slice_all(), sl(cat3, 0, wd.c3)?)?;
            }
        }
        let c6 = t("conv6_1")?;
        self.conv(rec, "conv4", sl(cat3, 0, wd.c3)?, t("conv4")?.slice_all())?;
        self.conv(rec, "conv4_1", t("conv4")?.slice_all(), sl(cat4, 0, wd.c4)?)?;
        self.conv(rec, "conv5", sl(cat4, 0, wd.c4)?, t("conv5")?.slice_all())?;
        self.conv(rec, "conv5_1", t("conv5")?.slice_all(), sl(cat5, 0, wd.c5)?)?;
        self.conv(rec, "conv6", sl(cat5, 0, wd.c5)?, t("conv6")?.slice_all())?;
        self.conv(rec, "conv6_1", t("conv6")?.slice_all(), c6.slice_all())?;
        // Decoder: deconv and upflow write straight into their slices of cat_k, cropped to its size.
        self.conv(rec, "predict_flow6", c6.slice_all(), t("flow6")?.slice_all())?;
        self.conv(rec, "upsampled_flow6_to_5", t("flow6")?.slice_all(), sl(cat5, wd.c5 + wd.d5, 2)?)?;
        self.conv(rec, "deconv5", c6.slice_all(), sl(cat5, wd.c5, wd.d5)?)?;
        self.conv(rec, "predict_flow5", cat5.slice_all(), t("flow5")?.slice_all())?;
        self.conv(rec, "upsampled_flow5_to_4", t("flow5")?.slice_all(), sl(cat4, wd.c4 + wd.d4, 2)?)?;
        self.conv(rec, "deconv4", cat5.slice_all(), sl(cat4, wd.c4, wd.d4)?)?;
        self.conv(rec, "predict_flow4", cat4.slice_all(), t("flow4")?.slice_all())?;
        self.conv(rec, "upsampled_flow4_to_3", t("flow4")?.slice_all(), sl(cat3, wd.c3 + wd.d3, 2)?)?;
        self.conv(rec, "deconv3", cat4.slice_all(), sl(cat3, wd.c3, wd.d3)?)?;
        self.conv(rec, "predict_flow3", cat3.slice_all(), t("flow3")?.slice_all())?;
        self.conv(rec, "upsampled_flow3_to_2", t("flow3")?.slice_all(), sl(cat2, wd.c2 + wd.d2, 2)?)?;
        self.conv(rec, "deconv2", cat3.slice_all(), sl(cat2, wd.c2, wd.d2)?)?;
        self.conv(rec, "predict_flow2", cat2.slice_all(), t("flow2")?.slice_all())?;
        Ok(())
    }

    /// The recorded forward pass for a batch of `n` pairs at `h` x `w` (recording it if needed), with a
    /// mark before every layer so [`Program::segments`] times it layer by layer. Its inputs are the
    /// plan's `input` / `input_b` activations.
    pub fn recorded_forward(&self, ctx: &Context, n: usize, h: usize, w: usize) -> Result<Program> {
        let channels = if self.arch.variant == Variant::S { 6 } else { 3 };
        let b = (self.arch.variant == Variant::C).then_some([n, 3, h, w]);
        let key = self.check_input([n, channels, h, w], b)?;
        let mut plans = self.plans.lock().map_err(|_| Error::Gpu {
            op: "flownet".into(),
            message: "plan cache poisoned by an earlier panic".into(),
        })?;
        if let std::collections::hash_map::Entry::Vacant(e) = plans.entry(key) {
            let acts = self.activations(ctx, n, h, w)?;
            let mut rec = ctx.recorder("flownet forward (record)");
            self.record_forward(&mut rec, &acts)?;
            let program = rec.finish_program()?;
            e.insert(ForwardPlan { acts, program });
        }
        plans
            .get(&key)
            .map(|p| p.program.clone())
            .ok_or_else(|| Error::Gpu { op: "flownet".into(), message: "plan missing".into() })
    }

    /// Runs the network on normalised frames. For FlowNetS pass `a` = both frames stacked [N, 6, H, W] and
    /// `b = None`; for FlowNetC pass `a`, `b` [N, 3, H, W]. H and W must be multiples of 64.
    ///
    /// The first call at a shape allocates that shape's activations and records the pass; later calls
    /// copy the inputs in and replay it as one submission, allocating nothing. The returned tensors are
    /// handles to those reused buffers: the next forward at the same shape overwrites them.
    pub fn forward(&self, ctx: &Context, a: &Tensor, b: Option<&Tensor>) -> Result<Pyramid<Tensor>> {
        let key = self.check_input(a.shape(), b.map(|b| b.shape()))?;
        self.recorded_forward(ctx, key.0, key.1, key.2)?;
        let plans = self.plans.lock().map_err(|_| Error::Gpu {
            op: "flownet".into(),
            message: "plan cache poisoned by an earlier panic".into(),
        })?;
        let plan =
            plans.get(&key).ok_or_else(|| Error::Gpu { op: "flownet".into(), message: "plan missing".into() })?;
        let mut rec = ctx.recorder("flownet forward");
        rec.copy(a.buffer(), 0, plan.acts.get("input")?.buffer(), 0, a.bytes());
        if let Some(b) = b {
            rec.copy(b.buffer(), 0, plan.acts.get("input_b")?.buffer(), 0, b.bytes());
        }
        rec.replay(&plan.program);
        rec.submit()?;
        plan.acts.pyramid()
    }
}

/// CPU reference forward of the whole network (f64 accumulation per op), from the same [`Arch`]. Inputs
/// as in [`FlowNet::forward`], on the host. Slow: for tests at small sizes and widths.
pub fn forward_cpu(
    arch: &Arch,
    weights: &Weights,
    a: &HostTensor,
    b: Option<&HostTensor>,
) -> Result<Pyramid<HostTensor>> {
    let defs: HashMap<String, LayerDef> = arch.layers().into_iter().map(|l| (l.name.clone(), l)).collect();
    let conv = |name: &str, x: &HostTensor, out_hw: Option<(usize, usize)>| -> Result<HostTensor> {
        let l = defs.get(name).ok_or_else(|| Error::Weights {
            path: weights.source.clone(),
            message: format!("layer `{name}` missing"),
        })?;
        let w = weights.get4(&l.weight_name(), l.weight_shape())?;
        let bias = if l.bias { Some(weights.get(&l.bias_name(), &[l.cout])?) } else { None };
        Ok(if l.transposed {
            conv_transpose2d_cpu(x, &w, bias, l.spec(), out_hw)
        } else {
            conv2d_cpu(x, &w, bias, l.spec())
        })
    };
    let hw = |t: &HostTensor| Some((t.shape[2], t.shape[3]));
    let (c2, c3) = match arch.variant {
        Variant::S => {
            let c2 = conv("conv2", &conv("conv1", a, None)?, None)?;
            let c3 = conv("conv3_1", &conv("conv3", &c2, None)?, None)?;
            (c2, c3)
        }
        Variant::C => {
            let b = b.ok_or(Error::Shape { op: "flownet", message: "FlowNetC needs frame b".into() })?;
            let a2 = conv("conv2", &conv("conv1", a, None)?, None)?;
            let b2 = conv("conv2", &conv("conv1", b, None)?, None)?;
            let a3 = conv("conv3", &a2, None)?;
            let b3 = conv("conv3", &b2, None)?;
            let redir = conv("conv_redir", &a3, None)?;
            let corr = leaky_relu_cpu(&correlation_cpu(&a3, &b3, arch.correlation())?, LEAKY_SLOPE);
            let c3 = conv("conv3_1", &concat_cpu(&[&redir, &corr]), None)?;
            (a2, c3)
        }
    };
    let c4 = conv("conv4_1", &conv("conv4", &c3, None)?, None)?;
    let c5 = conv("conv5_1", &conv("conv5", &c4, None)?, None)?;
    let c6 = conv("conv6_1", &conv("conv6", &c5, None)?, None)?;
    let flow6 = conv("predict_flow6", &c6, None)?;
    let cat5 = concat_cpu(&[&c5, &conv("deconv5", &c6, hw(&c5))?, &conv("upsampled_flow6_to_5", &flow6, hw(&c5))?]);
    let flow5 = conv("predict_flow5", &cat5, None)?;
    let cat4 = concat_cpu(&[&c4, &conv("deconv4", &cat5, hw(&c4))?, &conv("upsampled_flow5_to_4", &flow5, hw(&c4))?]);
    let flow4 = conv("predict_flow4", &cat4, None)?;
    let cat3 = concat_cpu(&[&c3, &conv("deconv3", &cat4, hw(&c3))?, &conv("upsampled_flow4_to_3", &flow4, hw(&c3))?]);
    let flow3 = conv("predict_flow3", &cat3, None)?;
    let cat2 = concat_cpu(&[&c2, &conv("deconv2", &cat3, hw(&c2))?, &conv("upsampled_flow3_to_2", &flow3, hw(&c2))?]);
    let flow2 = conv("predict_flow2", &cat2, None)?;
    Ok(Pyramid { flow2, flow3, flow4, flow5, flow6 })
}
