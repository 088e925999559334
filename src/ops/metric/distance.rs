//! The pairwise distance matrix between two sets of rows (`shaders/pairwise_distance.wgsl`) and its
//! gradient w.r.t. either set: the per-pair weights once (`shaders/pairwise_distance_weights.wgsl`, into
//! the context's scratch), then a gather per side (`shaders/pairwise_distance_backward.wgsl`); where D is a
//! multiple of 4 the `_vec4` twins of the forward and gather kernels read rows as vec4 (4x fewer loads).
//! CPU reference and the epsilon convention in `crate::reference::metric::distance`.

use super::super::{grid_1d, u32_of};
use super::{expect_matrix, matrix_dims, GradWrite};
use crate::error::{Error, Result};
use crate::runtime::{gpu_params, Kernel, Recorder, Tensor};

gpu_params! {
    /// The WGSL `Params` twin of `pairwise_distance`.
    pub struct DistanceParams {
        pub rows_a: u32,
        pub rows_b: u32,
        pub dim: u32,
        /// 1: squared Euclidean distance (no epsilon); 0: `sqrt(|a - b|^2 + eps)`.
        pub squared: u32,
        pub eps: f32,
        pub _pad0: u32,
        pub _pad1: u32,
        pub _pad2: u32,
    }
}

gpu_params! {
    /// The WGSL `Params` twin of `pairwise_distance_weights`.
    pub struct DistanceWeightsParams {
        pub len: u32,
        pub squared: u32,
        pub _pad0: u32,
        pub _pad1: u32,
    }
}

gpu_params! {
    /// The WGSL `Params` twin of `pairwise_distance_backward`.
    pub struct DistanceBackwardParams {
        /// Rows of the side whose gradient is computed.
        pub rows: u32,
        /// Rows of the other side.
        pub others: u32,
        pub dim: u32,
        /// Weight-matrix index step per row of this side (K for A, 1 for B).
        pub w_row_stride: u32,
        /// Weight-matrix index step per row of the other side (1 for A, K for B).
        pub w_other_stride: u32,
        pub accumulate: u32,
        pub _pad0: u32,
        pub _pad1: u32,
    }
}

/// Checks `a [M, D]`, `b [K, D]` and returns (M, K, D).
fn sides(op: &'static str, a: &Tensor, b: &Tensor) -> Result<(usize, usize, usize)> {
    let (m, d) = matrix_dims(op, "A", a)?;
    let (k, db) = matrix_dims(op, "B", b)?;
    if d != db || d == 0 {
        return Err(Error::Shape {
            op,
            message: format!("A {:?} and B {:?} need the same D > 0", a.shape(), b.shape()),
        });
    }
    u32_of(op, "A elements", m * d)?;
    u32_of(op, "B elements", k * d)?;
    u32_of(op, "matrix elements", m * k)?;
    Ok((m, k, d))
}

fn check_eps(op: &'static str, eps: f32) -> Result<()> {
    if !(eps.is_finite() && eps >= 0.0) {
        return Err(Error::InvalidParam { op, message: format!("eps = {eps}: need a finite value >= 0") });
    }
    Ok(())
}

/// `dist [M, K, 1, 1]` between the rows of `a [M, D, 1, 1]` and `b [K, D, 1, 1]`: `sqrt(|a_i - b_j|^2 + eps)`
/// ([`super::DISTANCE_EPS`] is HardNet's eps), or `|a_i - b_j|^2` when `squared` (eps unused).
pub fn pairwise_distance(
    rec: &mut Recorder<'_>,
    a: &Tensor,
    b: &Tensor,
    squared: bool,
    eps: f32,
    dist: &Tensor,
) -> Result<()> {
    let op = "pairwise_distance";
    let (m, k, d) = sides(op, a, b)?;
    expect_matrix(op, "dist", dist, m, k)?;
    check_eps(op, eps)?;
    let p = DistanceParams {
        rows_a: m as u32,
        rows_b: k as u32,
        dim: d as u32,
        squared: squared as u32,
        eps,
        ..Default::default()
    };
    let groups = [u32_of(op, "column blocks", k.div_ceil(32))?, u32_of(op, "row blocks", m.div_ceil(32))?, 1];
    let kernel = if d % 4 == 0 { Kernel::PairwiseDistanceVec4 } else { Kernel::PairwiseDistance };
    rec.dispatch(kernel, &[], &p, &[a.buffer(), b.buffer(), dist.buffer()], groups)
}

/// The gradients of [`pairwise_distance`] from `grad = dL/ddist [M, K]` and the forward output `dist`:
/// `grad_a[i] = sum_j w_ij (a_i - b_j)`, `grad_b[j] = sum_i w_ij (b_j - a_i)`, `w = grad / dist` (0 where
/// dist is 0) or `2 grad` when `squared`. Either output may be skipped (`None`); each is written as
/// `write_a` / `write_b` says (for A = B, pass the same gradient tensor to both with `write_b =
/// Accumulate`).
#[allow(clippy::too_many_arguments)]
pub fn pairwise_distance_backward(
    rec: &mut Recorder<'_>,
    a: &Tensor,
    b: &Tensor,
    dist: &Tensor,
    grad: &Tensor,
    squared: bool,
    grad_a: Option<(&Tensor, GradWrite)>,
    grad_b: Option<(&Tensor, GradWrite)>,
) -> Result<()> {
    let op = "pairwise_distance_backward";
    let (m, k, d) = sides(op, a, b)?;
    expect_matrix(op, "dist", dist, m, k)?;
    expect_matrix(op, "grad", grad, m, k)?;
    if grad_a.is_none() && grad_b.is_none() {
        return Ok(());
    }
    let weights = rec.context().scratch("pairwise_distance weights", [m, k, 1, 1])?;
    let wp = DistanceWeightsParams { len: (m * k) as u32, squared: squared as u32, _pad0: 0, _pad1: 0 };
    let groups = grid_1d(rec, m * k, 256);
    rec.dispatch(Kernel::PairwiseDistanceWeights, &[], &wp, &[dist.buffer(), grad.buffer(), weights.buffer()], groups)?;
    let mut run = |x: &Tensor, y: &Tensor, dx: &Tensor, write: GradWrite, is_a: bool| -> Result<()> {
        let (rows, others) = if is_a { (m, k) } else { (k, m) };
        expect_matrix(op, if is_a { "grad_a" } else { "grad_b" }, dx, rows, d)?;
        let p = DistanceBackwardParams {
            rows: rows as u32,
            others: others as u32,
            dim: d as u32,
            w_row_stride: if is_a { k as u32 } else { 1 },
            w_other_stride: if is_a { 1 } else { k as u32 },
            accumulate: write.flag(),
            ..Default::default()
        };
        let groups = grid_1d(rec, rows.div_ceil(4) * d.div_ceil(4), 64);
        let kernel = if d % 4 == 0 { Kernel::PairwiseDistanceBackwardVec4 } else { Kernel::PairwiseDistanceBackward };
        rec.dispatch(kernel, &[], &p, &[x.buffer(), y.buffer(), weights.buffer(), dx.buffer()], groups)
    };
    if let Some((ga, write)) = grad_a {
        run(a, b, ga, write, true)?;
    }
    if let Some((gb, write)) = grad_b {
        run(b, a, gb, write, false)?;
    }
    Ok(())
}
