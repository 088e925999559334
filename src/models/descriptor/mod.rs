//! The dense descriptor network (issue 12): a small fully convolutional tower in the manner of L2-Net /
//! HardNet (Tian et al. 2017, Mishchuk et al. 2017), defined once as a [`Graph`] ([`DescriptorArch::graph`]),
//! mapping a grey image to L2-normalised `D`-dimensional descriptors (D = 128 by default) on the stride-4
//! grid whose cell `j` is centred at image coordinate `4 j + 1.5` (the convention of
//! [`crate::ops::metric::sample_descriptors`] and [`crate::matching::grid_points`]).
//!
//! The tower (widths at `width` 1; every conv has a bias and LeakyReLU(0.1) but the head):
//!
//! | layer | in -> out | kernel, stride | output | receptive field |
//! |---|---|---|---|---|
//! | conv1 | 1 -> 32 | 4x4, 2 (pad 1) | 1/2 | 4 px |
//! | conv2 | 32 -> 32 | 3x3, 1 | 1/2 | 8 px |
//! | conv3 | 32 -> 64 | 4x4, 2 (pad 1) | 1/4 | 14 px |
//! | conv4 | 64 -> 64 | 3x3, 1 | 1/4 | 22 px |
//! | conv5 | 64 -> 128 | 3x3, 1 | 1/4 | 30 px |
//! | head | 128 -> D | 3x3, 1, no activation | 1/4 | 38 px |
//! | l2_normalize | D -> D | | 1/4 | |
//!
//! Why this stack: L2-Net/HardNet's 32-32-64-64-128-128 widths and two stride-2 steps (their patch net is
//! the same tower plus an 8x8 conv that collapses a 32x32 patch), without batch normalisation (the graph has
//! none; LeakyReLU with He initialisation trains as well at this depth), and with the two downsampling
//! convolutions 4x4 with padding 1 instead of 3x3: a k x k stride-2 conv with padding 1 centres output
//! `i` at input `2 i + (k - 3) / 2`, so two 4x4 steps centre cell `j` exactly at `4 j + 1.5`, the sampling
//! grid's convention (3x3 steps would put it at `4 j`, 1.5 px off). The receptive field, 38 px, covers
//! L2-Net's 32 x 32 patch. About 20,600 multiply-adds per input pixel; measured costs are in the README.
//!
//! Input: Rec. 601 luma in [0, 1], locally normalised to zero mean and unit standard deviation over a
//! 17 x 17 window ([`local_normalise`]), which removes gain, contrast and brightness changes, also local
//! ones (shadows, backlit facades), as the normalised cross-correlation of the raw-patch baseline does.
//!
//! **Patch mode** ([`Descriptor::describe_patches`]): a 32 x 32 patch (normalised on its own, the window
//! cut at its borders) runs through
//! the same tower with the same weights, giving an 8 x 8 map; the patch's descriptor is that map sampled
//! bilinearly at the patch centre (15.5, 15.5), i.e. the mean of cells (3..4, 3..4), re-normalised. It
//! equals the dense descriptor of the patch centre computed inside a larger image except for the context
//! the tower sees beyond the patch (zero padding here, image content there).
//!
//! Parameter names are `conv1.weight`, `conv1.bias`, ..., `head.weight`, `head.bias`: stable across
//! versions, so checkpoints keep loading. Training (the [`crate::training::Model`] with its metric losses)
//! is in `train`; the divide-and-conquer form (K learners on slices of the one output, each trained on its
//! k-means cluster's points, then the whole descriptor fine-tuned) in `divide`; the naive ensemble of
//! separately trained networks in `ensemble`.

pub mod data;
pub mod divide;
mod ensemble;
pub mod train;
pub mod validate;

pub use ensemble::DescriptorEnsemble;
pub use train::{DescriptorModel, LossKind, SamplerKind, TrainLossConfig};

use image::RgbImage;

use crate::error::{Error, Result};
use crate::graph::{ConvLayer, Graph, GraphBuilder, Network};
use crate::matching::dense::{DenseDescriber, DenseDescriptors};
use crate::models::Weights;
use crate::ops::metric::GridSpec;
use crate::runtime::{Context, HostTensor};

/// LeakyReLU slope after every conv but the head.
pub const LEAKY_SLOPE: f32 = 0.1;
/// Stride of the descriptor grid, pixels.
pub const STRIDE: usize = 4;
/// Descriptor dimension by default.
pub const DEFAULT_DIM: usize = 128;
/// Side of a patch in patch mode, pixels.
pub const PATCH: usize = 32;
/// The widths of conv1 .. conv5 at width 1.
pub const BASE_CHANNELS: [usize; 5] = [32, 32, 64, 64, 128];
/// Radius of the local contrast normalisation window ([`local_normalise`]): 17 x 17 pixels, about half the
/// receptive field.
pub const NORMALISE_RADIUS: usize = 8;
/// Added to the local standard deviation (grey levels in [0, 1]): about 2.5 8-bit levels, so that flat,
/// noisy regions are not blown up beyond what a normalised cross-correlation would.
pub const NORMALISE_EPS: f32 = 0.01;
/// The name of the graph's input.
pub const INPUT: &str = "image";
/// Checkpoint tensors whose names start with this belong to the training loss (ProxyNCA's proxies), not to
/// the network: [`Descriptor::new`] leaves them out.
pub const LOSS_PREFIX: &str = "loss.";

/// The grid of the network's output.
pub const GRID: GridSpec = GridSpec { stride: STRIDE as u32 };

/// A descriptor architecture: the widths of conv1 .. conv5 and the descriptor dimension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DescriptorArch {
    pub channels: [usize; 5],
    pub dim: usize,
}

impl Default for DescriptorArch {
    fn default() -> Self {
        DescriptorArch { channels: BASE_CHANNELS, dim: DEFAULT_DIM }
    }
}

impl DescriptorArch {
    /// Widths `round(width * base)` (at least 1) and dimension `dim`.
    pub fn new(width: f64, dim: usize) -> Self {
        DescriptorArch { channels: BASE_CHANNELS.map(|c| ((c as f64 * width).round() as usize).max(1)), dim }
    }

    /// Every layer, in order (the order [`DescriptorArch::init_weights`] draws them in).
    pub fn layers(&self) -> Vec<ConvLayer> {
        let [c1, c2, c3, c4, c5] = self.channels;
        let conv = |name: &str, cin, cout, k, stride| {
            ConvLayer::new(name, cin, cout, k).stride(stride).pad(1).leaky(LEAKY_SLOPE)
        };
        vec![
            conv("conv1", 1, c1, 4, 2),
            conv("conv2", c1, c2, 3, 1),
            conv("conv3", c2, c3, 4, 2),
            conv("conv4", c3, c4, 3, 1),
            conv("conv5", c4, c5, 3, 1),
            ConvLayer::new("head", c5, self.dim, 3),
        ]
    }

    /// The network: input `image` [N, 1, H, W] (H, W multiples of 4), output the unit descriptors
    /// [N, D, H / 4, W / 4]. A Siamese pair is a batch holding both images.
    pub fn graph(&self) -> Result<Graph> {
        if self.dim == 0 {
            return Err(Error::InvalidParam { op: "descriptor", message: "descriptor dimension 0".into() });
        }
        let mut g = GraphBuilder::new();
        let mut x = g.input(INPUT, 1);
        for l in self.layers() {
            let layer = g.layer(l);
            x = g.conv(x, layer);
        }
        let y = g.l2_normalize(x);
        g.output(y);
        g.finish()
    }

    pub fn num_params(&self) -> usize {
        self.layers().iter().map(ConvLayer::num_params).sum()
    }

    /// Forward FLOP (multiply-adds x 2) per input pixel.
    pub fn flops_per_pixel(&self) -> f64 {
        self.graph()
            .and_then(|g| g.layer_flops(&[[1, 1, 64, 64]]))
            .map(|f| f.iter().map(|(_, v)| v).sum::<f64>() / (64.0 * 64.0))
            .unwrap_or(0.0)
    }

    /// Fresh weights: He (Kaiming) uniform for LeakyReLU(0.1) with fan-in `cin k^2` (the head: gain 1),
    /// biases zero; a pure function of `seed`.
    pub fn init_weights(&self, seed: u64) -> Weights {
        let mut rng = crate::data::Rng::new(seed ^ 0x4445_5343_5249_5054);
        let mut tensors = Vec::new();
        for l in self.layers() {
            let shape = l.weight_shape();
            let fan_in = (l.cin * l.k * l.k) as f64;
            let gain = if l.leaky.is_some() { (2.0 / (1.0 + (LEAKY_SLOPE as f64).powi(2))).sqrt() } else { 1.0 };
            let bound = (gain * (3.0 / fan_in).sqrt()) as f32;
            let n: usize = shape.iter().product();
            tensors.push((l.weight_name.clone(), shape.to_vec(), (0..n).map(|_| rng.uniform() * bound).collect()));
            if let Some(b) = &l.bias_name {
                tensors.push((b.clone(), vec![l.cout], vec![0.0; l.cout]));
            }
        }
        Weights::from_tensors(&format!("descriptor (initialised, seed {seed})"), tensors)
            .with_metadata("model", "descriptor")
            .with_metadata("init_seed", seed)
    }

    /// The architecture of a weights file (from the shapes of conv1 .. conv5 and the head); the tensors are
    /// checked when the network is built.
    pub fn infer(weights: &Weights) -> Result<Self> {
        let err = |message: String| Error::Weights { path: weights.source.clone(), message };
        let shape = |name: &str| {
            weights
                .shape(name)
                .map(|s| s.to_vec())
                .ok_or_else(|| err(format!("no tensor `{name}`: this is not a corrflow descriptor weights file")))
        };
        let mut channels = [0; 5];
        for (i, c) in channels.iter_mut().enumerate() {
            *c = shape(&format!("conv{}.weight", i + 1))?.first().copied().unwrap_or(0);
        }
        let dim = shape("head.weight")?.first().copied().unwrap_or(0);
        Ok(DescriptorArch { channels, dim })
    }
}

/// The network's tensors of `weights`: everything but the loss's parameters ([`LOSS_PREFIX`]).
pub fn network_weights(weights: &Weights) -> Weights {
    let kept = weights.names().filter(|n| !n.starts_with(LOSS_PREFIX)).filter_map(|n| {
        let shape = weights.shape(n)?.to_vec();
        let values = weights.get(n, &shape).ok()?.to_vec();
        Some((n.to_string(), shape, values))
    });
    let mut out = Weights::from_tensors(&weights.source, kept.collect::<Vec<_>>());
    for (k, v) in weights.metadata() {
        out = out.with_metadata(k, v);
    }
    out
}

/// Rec. 601 luma of `image` in [0, 1], locally normalised ([`local_normalise`]), row-major.
pub fn normalise_grey(image: &RgbImage) -> Vec<f32> {
    let g: Vec<f32> =
        image.pixels().map(|p| (0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32) / 255.0).collect();
    local_normalise(&g, image.width() as usize, image.height() as usize)
}

/// Local contrast normalisation of a `w x h` plane (row-major): `(v - mean) / (std + NORMALISE_EPS)` with
/// the mean and standard deviation of the `(2 r + 1)^2` window around each pixel (r =
/// [`NORMALISE_RADIUS`], the window cut at the borders), from integral images. What the raw-patch baseline's
/// per-patch normalisation (normalised cross-correlation) does for a patch, done once for the image: the
/// descriptor's input no longer depends on the local brightness and contrast, which differ across a scene
/// between two photos (a backlit facade, a shadow) and which a global normalisation leaves.
pub fn local_normalise(plane: &[f32], w: usize, h: usize) -> Vec<f32> {
    if w == 0 || h == 0 || plane.len() != w * h {
        return plane.to_vec();
    }
    // Integral images of v and v^2, (w + 1) x (h + 1), in f64.
    let (iw, r) = (w + 1, NORMALISE_RADIUS);
    let mut s1 = vec![0.0f64; iw * (h + 1)];
    let mut s2 = vec![0.0f64; iw * (h + 1)];
    for y in 0..h {
        let (mut row1, mut row2) = (0.0, 0.0);
        for x in 0..w {
            let v = plane[y * w + x] as f64;
            row1 += v;
            row2 += v * v;
            s1[(y + 1) * iw + x + 1] = s1[y * iw + x + 1] + row1;
            s2[(y + 1) * iw + x + 1] = s2[y * iw + x + 1] + row2;
        }
    }
    let mut out = vec![0.0f32; w * h];
    for y in 0..h {
        let (y0, y1) = (y.saturating_sub(r), (y + r + 1).min(h));
        for x in 0..w {
            let (x0, x1) = (x.saturating_sub(r), (x + r + 1).min(w));
            let box_sum = |s: &[f64]| s[y1 * iw + x1] - s[y0 * iw + x1] - s[y1 * iw + x0] + s[y0 * iw + x0];
            let n = ((y1 - y0) * (x1 - x0)) as f64;
            let mean = box_sum(&s1) / n;
            let var = (box_sum(&s2) / n - mean * mean).max(0.0);
            out[y * w + x] = ((plane[y * w + x] as f64 - mean) / (var.sqrt() + NORMALISE_EPS as f64)) as f32;
        }
    }
    out
}

/// `plane` (`w x h`, row-major) extended by its edge values to `pw x ph` (both at least as large).
fn pad_edge(plane: &[f32], w: usize, h: usize, pw: usize, ph: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(pw * ph);
    for y in 0..ph {
        let row = &plane[y.min(h - 1) * w..y.min(h - 1) * w + w];
        out.extend((0..pw).map(|x| row[x.min(w - 1)]));
    }
    out
}

/// The trained descriptor network on a device.
pub struct Descriptor {
    arch: DescriptorArch,
    net: Network,
    /// How the weights are named in reports (`trained`, `untrained`, a file).
    name: String,
}

impl Descriptor {
    /// The network with `weights` (architecture inferred; every tensor checked; the loss's tensors of a
    /// training checkpoint are left out).
    pub fn new(ctx: &Context, weights: &Weights) -> Result<Self> {
        let weights = network_weights(weights);
        let arch = DescriptorArch::infer(&weights)?;
        let net = Network::new(ctx, arch.graph()?, &weights)?;
        // One recorded plan: the activations of one image size live at a time, which bounds the memory of
        // describing two images of different sizes by the larger one (re-recording costs milliseconds).
        net.set_plan_capacity(1);
        Ok(Descriptor { arch, net, name: "descriptor".into() })
    }

    /// Loads a weights file (a `corrflow train-desc` checkpoint or exported model).
    pub fn load(ctx: &Context, path: impl AsRef<std::path::Path>) -> Result<Self> {
        Ok(Self::new(ctx, &Weights::load(path)?)?.named("trained"))
    }

    /// The network with its seeded initial weights (the `untrained` baseline).
    pub fn untrained(ctx: &Context, seed: u64) -> Result<Self> {
        Ok(Self::new(ctx, &DescriptorArch::default().init_weights(seed))?.named("untrained"))
    }

    /// Sets the name used in reports.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    pub fn arch(&self) -> &DescriptorArch {
        &self.arch
    }
    pub fn network(&self) -> &Network {
        &self.net
    }
    /// The current weights by state-dict name.
    pub fn weights(&self, ctx: &Context) -> Result<Weights> {
        self.net.weights(ctx, &self.name)
    }

    /// GPU memory of describing one `w x h` image: every activation of the graph at the padded size (the
    /// recorded plan allocates them all) and the weights, bytes (`None` if the network cannot run at that size).
    pub fn gpu_bytes_at(&self, w: usize, h: usize) -> Option<u64> {
        let (pw, ph) = (w.div_ceil(STRIDE) * STRIDE, h.div_ceil(STRIDE) * STRIDE);
        let shapes = self.net.graph().shapes(&[[1, 1, ph, pw]]).ok()?;
        let acts: usize = shapes.iter().map(|s| s.iter().product::<usize>()).sum();
        Some(4 * (acts + self.arch.num_params()) as u64)
    }

    /// The dense map `[N, D, H / 4, W / 4]` of normalised grey images `[N, 1, H, W]` (H, W multiples of 4).
    pub fn describe_batch(&self, ctx: &Context, images: &HostTensor) -> Result<HostTensor> {
        let [_, c, h, w] = images.shape;
        if c != 1 || !h.is_multiple_of(STRIDE) || !w.is_multiple_of(STRIDE) || h == 0 || w == 0 {
            return Err(Error::Shape {
                op: "descriptor",
                message: format!("images {:?}: need [N, 1, H, W] with H and W positive multiples of 4", images.shape),
            });
        }
        let out = self.net.run(ctx, std::slice::from_ref(images))?;
        out.into_iter().next().ok_or(Error::Shape { op: "descriptor", message: "no output".into() })
    }

    /// Descriptors of 32 x 32 grey patches (`patches.len() / 1024` of them, each row-major in [0, 1]; each
    /// is normalised on its own, [`local_normalise`]), in patch mode (see the module documentation): `dim` values
    /// per patch, unit norm.
    pub fn describe_patches(&self, ctx: &Context, patches: &[f32]) -> Result<Vec<f32>> {
        let side = PATCH * PATCH;
        if patches.is_empty() || !patches.len().is_multiple_of(side) {
            return Err(Error::Shape {
                op: "describe_patches",
                message: format!("{} values: need a positive multiple of 32 x 32 = {side}", patches.len()),
            });
        }
        let d = self.arch.dim;
        let mut out = Vec::with_capacity(patches.len() / side * d);
        // 256 patches per pass bound the activations (conv1: 256 x 32 x 16 x 16 floats, 8 MB).
        for chunk in patches.chunks(256 * side) {
            let n = chunk.len() / side;
            let data: Vec<f32> = chunk.chunks(side).flat_map(|p| local_normalise(p, PATCH, PATCH)).collect();
            let map = self.describe_batch(ctx, &HostTensor::new([n, 1, PATCH, PATCH], data)?)?;
            let g = PATCH / STRIDE;
            for i in 0..n {
                // The centre (15.5, 15.5) is grid coordinate 3.5 on both axes: the mean of cells 3 and 4.
                let mut v: Vec<f32> = (0..d)
                    .map(|c| {
                        let at = |y: usize, x: usize| map.data[((i * d + c) * g + y) * g + x];
                        0.25 * (at(3, 3) + at(3, 4) + at(4, 3) + at(4, 4))
                    })
                    .collect();
                unit(&mut v);
                out.extend(v);
            }
        }
        Ok(out)
    }

    /// Descriptors on the stride-4 grid of `image` (at least 4 x 4 pixels): the image is extended by its
    /// edge pixels to multiples of 4, described, and the `floor(W / 4) x floor(H / 4)` cells inside it kept
    /// (the points of [`crate::matching::grid_points`]).
    pub fn describe_image(&self, ctx: &Context, image: &RgbImage) -> Result<DenseDescriptors> {
        let (w, h) = (image.width() as usize, image.height() as usize);
        if w < STRIDE || h < STRIDE {
            return Err(Error::Shape {
                op: "descriptor",
                message: format!("a {w}x{h} image: the descriptor network needs at least 4 x 4 pixels"),
            });
        }
        let (pw, ph) = (w.div_ceil(STRIDE) * STRIDE, h.div_ceil(STRIDE) * STRIDE);
        let grey = pad_edge(&normalise_grey(image), w, h, pw, ph);
        let map = self.describe_batch(ctx, &HostTensor::new([1, 1, ph, pw], grey)?)?;
        let [_, d, mh, mw] = map.shape;
        let (gw, gh) = (w / STRIDE, h / STRIDE);
        let mut data = Vec::with_capacity(gw * gh * d);
        for gy in 0..gh {
            for gx in 0..gw {
                data.extend((0..d).map(|c| map.data[(c * mh + gy) * mw + gx]));
            }
        }
        Ok(DenseDescriptors { stride: STRIDE, grid_w: gw, grid_h: gh, dim: d, data })
    }
}

/// Scales `v` to unit norm (a zero vector stays zero).
pub(crate) fn unit(v: &mut [f32]) {
    let n = v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x = (*x as f64 / n) as f32);
    }
}

/// Bilinear samples of a dense map at image points (the grid convention of [`GridSpec`], border clamped),
/// each re-normalised to unit length: `dim` values per point.
pub fn sample_dense(dense: &DenseDescriptors, points: &[(f64, f64)]) -> Result<Vec<f32>> {
    if dense.grid_w == 0 || dense.grid_h == 0 || dense.data.len() != dense.grid_w * dense.grid_h * dense.dim {
        return Err(Error::Shape { op: "sample_dense", message: "an empty or inconsistent descriptor map".into() });
    }
    let grid = GridSpec { stride: dense.stride as u32 };
    let axis = |v: f64, n: usize| {
        let g = grid.to_grid(v).clamp(0.0, (n - 1) as f64);
        let i0 = (g.floor() as usize).min(n - 1);
        (i0, (i0 + 1).min(n - 1), (g - i0 as f64) as f32)
    };
    let mut out = Vec::with_capacity(points.len() * dense.dim);
    for &(x, y) in points {
        if !(x.is_finite() && y.is_finite()) {
            return Err(Error::InvalidParam { op: "sample_dense", message: format!("point ({x}, {y})") });
        }
        let (x0, x1, fx) = axis(x, dense.grid_w);
        let (y0, y1, fy) = axis(y, dense.grid_h);
        let mut v: Vec<f32> = (0..dense.dim)
            .map(|c| {
                let at = |gx: usize, gy: usize| dense.at(gx, gy)[c];
                let top = at(x0, y0) * (1.0 - fx) + at(x1, y0) * fx;
                let bottom = at(x0, y1) * (1.0 - fx) + at(x1, y1) * fx;
                top * (1.0 - fy) + bottom * fy
            })
            .collect();
        unit(&mut v);
        out.extend(v);
    }
    Ok(out)
}

impl DenseDescriber for Descriptor {
    fn describe(&self, ctx: &Context, image: &RgbImage) -> Result<DenseDescriptors> {
        self.describe_image(ctx, image)
    }
    fn describe_at(&self, _image: &RgbImage, dense: &DenseDescriptors, points: &[(f64, f64)]) -> Result<Vec<f32>> {
        sample_dense(dense, points)
    }
    fn name(&self) -> String {
        self.name.clone()
    }
    fn gpu_bytes(&self, width: u32, height: u32) -> Option<u64> {
        self.gpu_bytes_at(width as usize, height as usize)
    }
}

/// A describer from a weights file: an ensemble file ([`DescriptorEnsemble`]) or one network
/// ([`Descriptor`]), named `name` in reports.
pub fn load_describer(ctx: &Context, path: &std::path::Path, name: &str) -> Result<Box<dyn DenseDescriber>> {
    let weights = Weights::load(path)?;
    if DescriptorEnsemble::is_ensemble(&weights) {
        Ok(Box::new(DescriptorEnsemble::from_weights(ctx, &weights)?.named(name)))
    } else {
        Ok(Box::new(Descriptor::new(ctx, &weights)?.named(name)))
    }
}
