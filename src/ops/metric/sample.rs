//! Bilinear sampling of a descriptor map at sub-pixel image points (`shaders/sample_descriptors.wgsl`) and
//! its gradients w.r.t. the map (`shaders/sample_descriptors_backward.wgsl`, a gather) and the points
//! (`shaders/sample_descriptors_backward_points.wgsl`); CPU reference and the grid convention in
//! `crate::reference::metric::sample`.

use super::super::{grid_1d, u32_of};
use super::GradWrite;
use crate::error::{Error, Result};
pub use crate::reference::metric::sample::GridSpec;
use crate::runtime::{gpu_params, Kernel, Recorder, Tensor};

gpu_params! {
    /// The WGSL `Params` twin of the three sampling kernels (`accumulate` is read by the map gradient only).
    pub struct SampleParams {
        pub batch: u32,
        pub dim: u32,
        pub map_h: u32,
        pub map_w: u32,
        /// Points per image (K).
        pub points: u32,
        pub stride: u32,
        pub accumulate: u32,
        pub _pad0: u32,
    }
}

/// Checks map `[N, D, H, W]`, points `[N, K, 2, 1]`, rows `[N*K, D, 1, 1]`.
fn params(
    op: &'static str,
    map: [usize; 4],
    points: &Tensor,
    rows: [usize; 4],
    grid: GridSpec,
) -> Result<SampleParams> {
    let [n, d, h, w] = map;
    let [pn, k, two, one] = points.shape();
    if pn != n || two != 2 || one != 1 {
        return Err(Error::Shape {
            op,
            message: format!("points {:?} must be [N, K, 2, 1] with the map's N = {n}", points.shape()),
        });
    }
    if rows != [n * k, d, 1, 1] {
        return Err(Error::Shape {
            op,
            message: format!("descriptor rows are {rows:?}, expected [N*K, D, 1, 1] = [{}, {d}, 1, 1]", n * k),
        });
    }
    if h == 0 || w == 0 || d == 0 {
        return Err(Error::Shape { op, message: format!("empty map {map:?}") });
    }
    if grid.stride == 0 {
        return Err(Error::InvalidParam { op, message: "grid stride must be at least 1".into() });
    }
    u32_of(op, "map elements", n * d * h * w)?;
    u32_of(op, "output elements", n * k * d)?;
    Ok(SampleParams {
        batch: n as u32,
        dim: d as u32,
        map_h: h as u32,
        map_w: w as u32,
        points: k as u32,
        stride: grid.stride,
        accumulate: 0,
        _pad0: 0,
    })
}

/// `out[n*K + k, :] = bilinear(map[n], points[n, k])`: map `[N, D, Hf, Wf]` on the stride-`grid.stride` grid,
/// points `[N, K, 2, 1]` as (x, y) image pixels, out `[N*K, D, 1, 1]`.
pub fn sample_descriptors(
    rec: &mut Recorder<'_>,
    map: &Tensor,
    points: &Tensor,
    grid: GridSpec,
    out: &Tensor,
) -> Result<()> {
    let op = "sample_descriptors";
    let p = params(op, map.shape(), points, out.shape(), grid)?;
    let groups = grid_1d(rec, out.numel(), 256);
    rec.dispatch(Kernel::SampleDescriptors, &[], &p, &[map.buffer(), points.buffer(), out.buffer()], groups)
}

/// The gradient w.r.t. the map of [`sample_descriptors`], gathered per map pixel: `dmap` (`[N, D, Hf, Wf]`)
/// gets `sum_k w_k(pixel) dout[k]` over the points whose bilinear footprint covers the pixel (`write`:
/// overwrite or accumulate). Cost grows as map pixels x points per image (fine for ~2k points).
pub fn sample_descriptors_backward(
    rec: &mut Recorder<'_>,
    points: &Tensor,
    dout: &Tensor,
    grid: GridSpec,
    dmap: &Tensor,
    write: GradWrite,
) -> Result<()> {
    let op = "sample_descriptors_backward";
    let mut p = params(op, dmap.shape(), points, dout.shape(), grid)?;
    p.accumulate = write.flag();
    let [n, _, h, w] = dmap.shape();
    let groups = grid_1d(rec, n * h * w, 256);
    rec.dispatch(Kernel::SampleDescriptorsBackward, &[], &p, &[points.buffer(), dout.buffer(), dmap.buffer()], groups)
}

/// The gradient w.r.t. the point coordinates of [`sample_descriptors`]: `dpoints` (`[N, K, 2, 1]`,
/// overwritten); 0 along an axis where the point lies outside the grid (clamped).
pub fn sample_descriptors_backward_points(
    rec: &mut Recorder<'_>,
    map: &Tensor,
    points: &Tensor,
    dout: &Tensor,
    grid: GridSpec,
    dpoints: &Tensor,
) -> Result<()> {
    let op = "sample_descriptors_backward_points";
    let p = params(op, map.shape(), points, dout.shape(), grid)?;
    if dpoints.shape() != points.shape() {
        return Err(Error::Shape {
            op,
            message: format!("dpoints {:?} must have the points' shape {:?}", dpoints.shape(), points.shape()),
        });
    }
    let groups = grid_1d(rec, (p.batch * p.points) as usize, 256);
    rec.dispatch(
        Kernel::SampleDescriptorsBackwardPoints,
        &[],
        &p,
        &[map.buffer(), points.buffer(), dout.buffer(), dpoints.buffer()],
        groups,
    )
}
