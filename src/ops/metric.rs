//! Metric learning and matching on the GPU (issue 12): L2 normalisation, bilinear sampling of descriptor maps,
//! pairwise distances, the contrastive / triplet / ProxyNCA losses, the triplet samplers (miners), per-class
//! means for hierarchical sampling, and tiled mutual nearest neighbours. Each op is WGSL kernel(s) in
//! `shaders/` plus a host function here; its f64 twin is in [`crate::reference::metric`].
//!
//! Conventions shared by every op of the family:
//! - A matrix of `R` rows by `C` columns (descriptor rows `[M, D]`, a distance matrix `[M, K]`) is an f32
//!   [`Tensor`] of shape `[R, C, 1, 1]`: the NCHW layout with 1 x 1 planes is exactly row-major, and a dense
//!   map `[N, D, H, W]` with `H = W = 1` *is* a set of rows, so one kernel serves both.
//! - Class labels, triplets and match indices are `u32` in an [`Indices`] buffer. [`NO_INDEX`]
//!   (`u32::MAX`) means "none" (an anchor without a positive, a row without a mutual match).
//! - A triplet is four `u32`: the positive cell `(pos_row, pos_col)` and the negative cell
//!   `(neg_row, neg_col)` of the distance matrix, so the loss is `max(0, m + D[pos] - D[neg])`. The usual
//!   (anchor a, positive p, negative n) is `(a, p, a, n)`; HardNet's symmetric mining may instead take the
//!   negative in the positive's column, `(a, p, n', p)` (a row `n'` of A that is far from p's class).
//!   Triplets with a [`NO_INDEX`] or out-of-range cell contribute nothing.
//! - Backward kernels are gathers (each invocation owns the output elements it writes; no float atomics).
//!   Whether a gradient output is overwritten or accumulated is the [`GradWrite`] argument where the op
//!   offers both, and is stated at the top of each backward kernel.
//! - Random choices come from a counter-based hash ([`crate::reference::metric::mining::hash_u32`]): the
//!   draw for triplet `t` and stream `s` under seed `seed` is a pure function of `(seed, t, s)`, so the GPU
//!   and the CPU reference make the same integer choices, and a call is reproducible from its seed. The
//!   seed is read from a [`SeedBuffer`] so that replayed recordings can change it.

mod distance;
mod hierarchy;
mod loss;
mod matcher;
mod mining;
mod normalize;
mod sample;

pub use crate::reference::metric::mining::{hash_u32, uniform_from_hash, Stream};
pub use crate::reference::metric::{DISTANCE_EPS, L2_NORM_EPS, NO_DISTANCE, NO_INDEX};
pub use distance::{
    pairwise_distance, pairwise_distance_backward, DistanceBackwardParams, DistanceParams, DistanceWeightsParams,
};
pub use hierarchy::{
    class_means, mine_class_negatives, nearest_classes, ClassMeansParams, ClassNegativesParams, ClassTree, Merge,
    NearestClassesParams, MAX_NEIGHBOURS,
};
pub use loss::{
    contrastive_loss, proxy_nca_loss, triplet_loss, triplet_loss_backward, ContrastiveParams, ContrastiveSpec,
    ProxyNcaParams, ProxyNcaSpec, TripletParams, TripletSpec,
};
pub use matcher::{
    mutual_matches, nearest_two, subgroup_matcher_supported, MatchOptions, Matches, MutualParams, NearestTwo,
    NearestTwoParams, TileOptions, MATCH_TILE_ROWS,
};
pub use mining::{
    mine_distance_weighted, mine_hardest_negatives, mine_positives, mine_random_negatives, mine_semihard_negatives,
    DistanceWeighted, DistanceWeightedParams, HardestNegativesParams, PositiveChoice, PositivesParams,
    RandomNegativesParams, SemihardNegativesParams,
};
pub use normalize::{l2_normalize, l2_normalize_backward, L2NormalizeParams};
pub use sample::{
    sample_descriptors, sample_descriptors_backward, sample_descriptors_backward_points, sample_descriptors_channels,
    sample_descriptors_channels_backward, sample_descriptors_channels_backward_points, GridSpec, SampleParams,
};

use crate::error::{Error, Result};
use crate::runtime::{Context, Tensor};

/// Whether a gradient kernel overwrites its output (`dx = g`) or adds to it (`dx += g`, for a tensor that
/// feeds several consumers, such as A = B in a distance matrix of one batch against itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum GradWrite {
    #[default]
    Overwrite,
    Accumulate,
}

impl GradWrite {
    pub(crate) fn flag(self) -> u32 {
        match self {
            GradWrite::Overwrite => 0,
            GradWrite::Accumulate => 1,
        }
    }
}

/// A `u32` GPU buffer of `rows x cols` values, row-major: class labels (`[M, 1]`), triplets (`[T, 4]`),
/// match indices. Cloning shares the buffer.
#[derive(Clone, Debug)]
pub struct Indices {
    buffer: wgpu::Buffer,
    rows: usize,
    cols: usize,
}

impl Indices {
    /// A zero-filled buffer of `rows x cols` values.
    pub fn zeros(ctx: &Context, name: &str, rows: usize, cols: usize) -> Result<Self> {
        let bytes = (rows as u64) * (cols as u64) * 4;
        if bytes > ctx.max_binding_bytes() {
            return Err(Error::TooLarge {
                name: name.to_string(),
                shape: vec![rows, cols],
                bytes,
                limit: ctx.max_binding_bytes(),
                adapter: ctx.adapter().name.clone(),
                hint: String::new(),
            });
        }
        let buffer = ctx.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some(name),
            size: bytes.max(4),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Ok(Indices { buffer, rows, cols })
    }

    /// Uploads `data` (`rows * cols` values, row-major).
    pub fn upload(ctx: &Context, name: &str, rows: usize, cols: usize, data: &[u32]) -> Result<Self> {
        let t = Self::zeros(ctx, name, rows, cols)?;
        t.write(ctx, data)?;
        Ok(t)
    }

    /// Overwrites the contents from the host (takes effect before the next submitted work).
    pub fn write(&self, ctx: &Context, data: &[u32]) -> Result<()> {
        if data.len() != self.len() {
            return Err(Error::Shape {
                op: "Indices::write",
                message: format!("buffer of {} x {} values, got {}", self.rows, self.cols, data.len()),
            });
        }
        if !data.is_empty() {
            ctx.queue().write_buffer(&self.buffer, 0, bytemuck::cast_slice(data));
        }
        Ok(())
    }

    /// Fills every value with `value` (tests pre-fill outputs with a sentinel so unwritten values show).
    pub fn fill(&self, ctx: &Context, value: u32) -> Result<()> {
        self.write(ctx, &vec![value; self.len()])
    }

    /// Copies the values back to the host (blocks until the GPU is done with them).
    pub fn download(&self, ctx: &Context) -> Result<Vec<u32>> {
        let bytes = self.len() as u64 * 4;
        if bytes == 0 {
            return Ok(Vec::new());
        }
        let staging = ctx.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some("download indices"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut rec = ctx.recorder("download indices");
        rec.copy(&self.buffer, 0, &staging, 0, bytes);
        rec.submit()?;
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        ctx.wait()?;
        let gpu_err = |e: String| Error::Gpu { op: "Indices::download".into(), message: e };
        rx.recv().map_err(|e| gpu_err(e.to_string()))?.map_err(|e| gpu_err(e.to_string()))?;
        let data = {
            let view = staging.get_mapped_range(..).map_err(|e| gpu_err(e.to_string()))?;
            bytemuck::cast_slice::<u8, u32>(&view).to_vec()
        };
        staging.unmap();
        Ok(data)
    }

    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }
    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn cols(&self) -> usize {
        self.cols
    }
    pub fn len(&self) -> usize {
        self.rows * self.cols
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The seed of the random samplers ([`mine_positives`] with [`PositiveChoice::Random`],
/// [`mine_random_negatives`], [`mine_distance_weighted`], [`mine_class_negatives`]), in a one-value GPU
/// buffer rather than in the kernels' parameters: a recorded [`crate::runtime::Program`] freezes its
/// parameters, so a training step replayed from a recording draws new triplets only because the caller
/// writes a new seed here (`set`, effective at the next submit) before each step, as Adam's step values.
#[derive(Clone, Debug)]
pub struct SeedBuffer(Indices);

impl SeedBuffer {
    pub fn new(ctx: &Context, seed: u32) -> Result<Self> {
        Ok(SeedBuffer(Indices::upload(ctx, "sampler seed", 1, 1, &[seed])?))
    }
    /// Sets the seed of the work submitted next.
    pub fn set(&self, ctx: &Context, seed: u32) -> Result<()> {
        self.0.write(ctx, &[seed])
    }
    pub fn buffer(&self) -> &wgpu::Buffer {
        self.0.buffer()
    }
}

/// A distance matrix `dist [M, K, 1, 1]` between the rows of A and B with the class labels of both sides
/// (`labels_a [M, 1]`, `labels_b [K, 1]`; equal labels = positive pair): what the contrastive loss and the
/// samplers read.
#[derive(Clone, Copy, Debug)]
pub struct LabelledDistances<'a> {
    pub dist: &'a Tensor,
    pub labels_a: &'a Indices,
    pub labels_b: &'a Indices,
}

impl LabelledDistances<'_> {
    /// Checks the shapes against each other and returns (M, K).
    pub(crate) fn check(&self, op: &'static str) -> Result<(usize, usize)> {
        let (m, k) = matrix_dims(op, "dist", self.dist)?;
        expect_indices(op, "labels_a", self.labels_a, m, 1)?;
        expect_indices(op, "labels_b", self.labels_b, k, 1)?;
        crate::ops::u32_of(op, "matrix elements", m * k)?;
        Ok((m, k))
    }
}

/// The `(rows, cols)` of a tensor used as a matrix: `[R, C, 1, 1]`, or an error naming the op.
pub(crate) fn matrix_dims(op: &'static str, what: &str, t: &Tensor) -> Result<(usize, usize)> {
    let [r, c, h, w] = t.shape();
    if h != 1 || w != 1 {
        return Err(Error::Shape {
            op,
            message: format!("{what} {:?} must be a matrix [rows, cols, 1, 1]", t.shape()),
        });
    }
    Ok((r, c))
}

/// Checks that a tensor is the matrix `[rows, cols, 1, 1]`.
pub(crate) fn expect_matrix(op: &'static str, what: &str, t: &Tensor, rows: usize, cols: usize) -> Result<()> {
    if t.shape() != [rows, cols, 1, 1] {
        return Err(Error::Shape {
            op,
            message: format!("{what} is {:?}, expected [{rows}, {cols}, 1, 1]", t.shape()),
        });
    }
    Ok(())
}

/// Checks that an index buffer holds `rows x cols` values.
pub(crate) fn expect_indices(op: &'static str, what: &str, t: &Indices, rows: usize, cols: usize) -> Result<()> {
    if (t.rows, t.cols) != (rows, cols) {
        return Err(Error::Shape {
            op,
            message: format!("{what} holds {} x {} indices, expected {rows} x {cols}", t.rows, t.cols),
        });
    }
    Ok(())
}

/// Checks that a float parameter is finite (and, with `positive`, > 0).
pub(crate) fn expect_finite(op: &'static str, what: &str, v: f32, positive: bool) -> Result<()> {
    if !v.is_finite() || (positive && v <= 0.0) {
        let need = if positive { "a finite value > 0" } else { "a finite value" };
        return Err(Error::InvalidParam { op, message: format!("{what} = {v}: need {need}") });
    }
    Ok(())
}
