//! Bilinear sampling of a descriptor map at sub-pixel image points (`shaders/sample_descriptors.wgsl`) and
//! its gradients w.r.t. the map (`shaders/sample_descriptors_backward.wgsl`, a gather) and the points
//! (`shaders/sample_descriptors_backward_points.wgsl`); CPU reference and the grid convention in
//! `crate::reference::metric::sample`.
//!
//! Each op also exists for a range of the map's channels (`*_channels`): the rows then hold those channels
//! only, and the map gradient has none outside them. The divide-and-conquer descriptor trains each learner
//! on its slice of one shared output this way (`crate::models::descriptor::divide`).

use std::ops::Range;

use super::super::{grid_1d, u32_of};
use super::GradWrite;
use crate::error::{Error, Result};
pub use crate::reference::metric::sample::GridSpec;
use crate::runtime::{gpu_params, Kernel, Recorder, Tensor};

gpu_params! {
    /// The WGSL `Params` twin of the three sampling kernels (`accumulate` is read by the map gradient only).
    pub struct SampleParams {
        pub batch: u32,
        /// Channels per row: the sampled range's length.
        pub dim: u32,
        pub map_h: u32,
        pub map_w: u32,
        /// Points per image (K).
        pub points: u32,
        pub stride: u32,
        pub accumulate: u32,
        /// The first sampled channel of the map.
        pub channel_offset: u32,
        /// The map's channels (D).
        pub map_channels: u32,
        pub _pad0: u32,
        pub _pad1: u32,
        pub _pad2: u32,
    }
}

/// Checks map `[N, D, H, W]`, the channel range inside `0..D`, points `[N, K, 2, 1]`, rows
/// `[N*K, channels.len(), 1, 1]`.
fn params(
    op: &'static str,
    map: [usize; 4],
    channels: Range<usize>,
    points: &Tensor,
    rows: [usize; 4],
    grid: GridSpec,
) -> Result<SampleParams> {
    let [n, map_channels, h, w] = map;
    if channels.is_empty() || channels.end > map_channels {
        return Err(Error::InvalidParam {
            op,
            message: format!("channels {channels:?} of a map of {map_channels}: need a non-empty range inside it"),
        });
    }
    let d = channels.len();
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
            message: format!("descriptor rows are {rows:?}, expected [N*K, channels, 1, 1] = [{}, {d}, 1, 1]", n * k),
        });
    }
    if h == 0 || w == 0 || d == 0 {
        return Err(Error::Shape { op, message: format!("empty map {map:?}") });
    }
    if grid.stride == 0 {
        return Err(Error::InvalidParam { op, message: "grid stride must be at least 1".into() });
    }
    u32_of(op, "map elements", n * map_channels * h * w)?;
    u32_of(op, "output elements", n * k * d)?;
    Ok(SampleParams {
        batch: n as u32,
        dim: d as u32,
        map_h: h as u32,
        map_w: w as u32,
        points: k as u32,
        stride: grid.stride,
        accumulate: 0,
        channel_offset: channels.start as u32,
        map_channels: map_channels as u32,
        ..SampleParams::default()
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
    sample_descriptors_channels(rec, map, points, grid, 0..map.shape()[1], out)
}

/// [`sample_descriptors`] of the map's channels `channels` only: out `[N*K, channels.len(), 1, 1]`,
/// `out[n*K + k, c] = bilinear(map[n, channels.start + c], points[n, k])`.
pub fn sample_descriptors_channels(
    rec: &mut Recorder<'_>,
    map: &Tensor,
    points: &Tensor,
    grid: GridSpec,
    channels: Range<usize>,
    out: &Tensor,
) -> Result<()> {
    let op = "sample_descriptors";
    let p = params(op, map.shape(), channels, points, out.shape(), grid)?;
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
    sample_descriptors_channels_backward(rec, points, dout, grid, 0..dmap.shape()[1], dmap, write)
}

/// The map gradient of [`sample_descriptors_channels`]: `dout` (`[N*K, channels.len(), 1, 1]`) lands in
/// `dmap`'s channels `channels`; the other channels get no gradient (zeroed on `Overwrite`, left as they are
/// on `Accumulate`), so `Overwrite` still writes the whole map gradient.
pub fn sample_descriptors_channels_backward(
    rec: &mut Recorder<'_>,
    points: &Tensor,
    dout: &Tensor,
    grid: GridSpec,
    channels: Range<usize>,
    dmap: &Tensor,
    write: GradWrite,
) -> Result<()> {
    let op = "sample_descriptors_backward";
    let mut p = params(op, dmap.shape(), channels, points, dout.shape(), grid)?;
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
    sample_descriptors_channels_backward_points(rec, map, points, dout, grid, 0..map.shape()[1], dpoints)
}

/// The point gradient of [`sample_descriptors_channels`] (`dout` `[N*K, channels.len(), 1, 1]`).
pub fn sample_descriptors_channels_backward_points(
    rec: &mut Recorder<'_>,
    map: &Tensor,
    points: &Tensor,
    dout: &Tensor,
    grid: GridSpec,
    channels: Range<usize>,
    dpoints: &Tensor,
) -> Result<()> {
    let op = "sample_descriptors_backward_points";
    let p = params(op, map.shape(), channels, points, dout.shape(), grid)?;
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
