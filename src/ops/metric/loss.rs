//! Losses on a distance matrix, each writing per-row (or per-triplet) terms whose sum is the loss
//! ([`crate::ops::loss::reduce_sum`] sums them) and the gradient `dL/ddist`, which
//! [`super::pairwise_distance_backward`] carries to the rows: the contrastive loss
//! (`shaders/contrastive_loss.wgsl`), the triplet loss (`shaders/triplet_loss.wgsl`, gradient
//! `shaders/triplet_loss_backward.wgsl`) and ProxyNCA (`shaders/proxy_nca_loss.wgsl`). The contrastive
//! and ProxyNCA kernels compute terms and gradient in one pass, as `epe_loss` does. Definitions and
//! normalisations: `crate::reference::metric::loss`.

use super::super::{grid_1d, u32_of};
use super::{expect_finite, expect_indices, expect_matrix, matrix_dims, GradWrite, Indices, LabelledDistances};
use crate::error::{Error, Result};
pub use crate::reference::metric::loss::{ContrastiveSpec, ProxyNcaSpec, TripletSpec};
use crate::runtime::{gpu_params, Kernel, Recorder, Tensor};

gpu_params! {
    /// The WGSL `Params` twin of `contrastive_loss`.
    pub struct ContrastiveParams {
        pub rows: u32,
        pub cols: u32,
        pub margin: f32,
        pub scale: f32,
        pub exclude_diagonal: u32,
        pub accumulate: u32,
        pub _pad0: u32,
        pub _pad1: u32,
    }
}

gpu_params! {
    /// The WGSL `Params` twin of `triplet_loss` and `triplet_loss_backward` (`accumulate`: backward only).
    pub struct TripletParams {
        pub rows: u32,
        pub cols: u32,
        pub triplets: u32,
        pub margin: f32,
        pub scale: f32,
        pub accumulate: u32,
        pub _pad0: u32,
        pub _pad1: u32,
    }
}

gpu_params! {
    /// The WGSL `Params` twin of `proxy_nca_loss`.
    pub struct ProxyNcaParams {
        pub rows: u32,
        pub classes: u32,
        pub temperature: f32,
        pub scale: f32,
        pub accumulate: u32,
        pub _pad0: u32,
        pub _pad1: u32,
        pub _pad2: u32,
    }
}

/// The contrastive loss on `batch` (`[M, K]` distances, labels of both sides): `terms [M, 1, 1, 1]` and
/// `grad [M, K, 1, 1]` (`dL/ddist`, written as `write` says).
pub fn contrastive_loss(
    rec: &mut Recorder<'_>,
    batch: &LabelledDistances<'_>,
    spec: ContrastiveSpec,
    terms: &Tensor,
    grad: &Tensor,
    write: GradWrite,
) -> Result<()> {
    let op = "contrastive_loss";
    let (m, k) = batch.check(op)?;
    expect_finite(op, "margin", spec.margin, false)?;
    expect_finite(op, "scale", spec.scale, false)?;
    expect_matrix(op, "terms", terms, m, 1)?;
    expect_matrix(op, "grad", grad, m, k)?;
    let p = ContrastiveParams {
        rows: m as u32,
        cols: k as u32,
        margin: spec.margin,
        scale: spec.scale,
        exclude_diagonal: spec.exclude_diagonal as u32,
        accumulate: write.flag(),
        ..Default::default()
    };
    let groups = grid_1d(rec, m, 256);
    rec.dispatch(
        Kernel::ContrastiveLoss,
        &[],
        &p,
        &[batch.dist.buffer(), batch.labels_a.buffer(), batch.labels_b.buffer(), terms.buffer(), grad.buffer()],
        groups,
    )
}

fn triplet_params(
    op: &'static str,
    dist: &Tensor,
    triplets: &Indices,
    spec: TripletSpec,
    write: GradWrite,
) -> Result<TripletParams> {
    let (m, k) = matrix_dims(op, "dist", dist)?;
    u32_of(op, "matrix elements", m * k)?;
    if triplets.cols() != 4 || triplets.rows() == 0 {
        return Err(Error::Shape {
            op,
            message: format!(
                "triplets hold {} x {} indices, expected T x 4 with T > 0",
                triplets.rows(),
                triplets.cols()
            ),
        });
    }
    expect_finite(op, "margin", spec.margin, false)?;
    expect_finite(op, "scale", spec.scale, false)?;
    Ok(TripletParams {
        rows: m as u32,
        cols: k as u32,
        triplets: u32_of(op, "triplets", triplets.rows())?,
        margin: spec.margin,
        scale: spec.scale,
        accumulate: write.flag(),
        ..Default::default()
    })
}

/// The triplet loss's terms `[T, 1, 1, 1]` for triplets `[T, 4]` of cells of `dist [M, K]`.
pub fn triplet_loss(
    rec: &mut Recorder<'_>,
    dist: &Tensor,
    triplets: &Indices,
    spec: TripletSpec,
    terms: &Tensor,
) -> Result<()> {
    let op = "triplet_loss";
    let p = triplet_params(op, dist, triplets, spec, GradWrite::Overwrite)?;
    expect_matrix(op, "terms", terms, triplets.rows(), 1)?;
    let groups = grid_1d(rec, triplets.rows(), 256);
    rec.dispatch(Kernel::TripletLoss, &[], &p, &[dist.buffer(), triplets.buffer(), terms.buffer()], groups)
}

/// The triplet loss's gradient `dL/ddist [M, K]` (written as `write` says), gathered per matrix row.
pub fn triplet_loss_backward(
    rec: &mut Recorder<'_>,
    dist: &Tensor,
    triplets: &Indices,
    spec: TripletSpec,
    grad: &Tensor,
    write: GradWrite,
) -> Result<()> {
    let op = "triplet_loss_backward";
    let p = triplet_params(op, dist, triplets, spec, write)?;
    expect_matrix(op, "grad", grad, p.rows as usize, p.cols as usize)?;
    let groups = grid_1d(rec, p.rows as usize, 256);
    rec.dispatch(Kernel::TripletLossBackward, &[], &p, &[dist.buffer(), triplets.buffer(), grad.buffer()], groups)
}

/// ProxyNCA on `dist [M, C]`, the distances from the embeddings to the C proxies (typically
/// [`super::pairwise_distance`] between the L2-normalised embeddings and proxies, squared as in the paper),
/// with `labels [M, 1]`: `terms [M, 1, 1, 1]` and `grad [M, C, 1, 1]` (written as `write` says). The
/// gradients to the embeddings and to the proxies follow from `grad` by
/// [`super::pairwise_distance_backward`] (and [`super::l2_normalize_backward`]).
pub fn proxy_nca_loss(
    rec: &mut Recorder<'_>,
    dist: &Tensor,
    labels: &Indices,
    spec: ProxyNcaSpec,
    terms: &Tensor,
    grad: &Tensor,
    write: GradWrite,
) -> Result<()> {
    let op = "proxy_nca_loss";
    let (m, c) = matrix_dims(op, "dist", dist)?;
    u32_of(op, "matrix elements", m * c)?;
    if c < 2 {
        return Err(Error::Shape { op, message: format!("{c} proxies: the loss needs at least 2 classes") });
    }
    expect_indices(op, "labels", labels, m, 1)?;
    expect_finite(op, "temperature", spec.temperature, true)?;
    expect_finite(op, "scale", spec.scale, false)?;
    expect_matrix(op, "terms", terms, m, 1)?;
    expect_matrix(op, "grad", grad, m, c)?;
    let p = ProxyNcaParams {
        rows: m as u32,
        classes: c as u32,
        temperature: spec.temperature,
        scale: spec.scale,
        accumulate: write.flag(),
        ..Default::default()
    };
    let groups = grid_1d(rec, m, 256);
    rec.dispatch(
        Kernel::ProxyNcaLoss,
        &[],
        &p,
        &[dist.buffer(), labels.buffer(), terms.buffer(), grad.buffer()],
        groups,
    )
}
