//! Kernels: one module per WGSL kernel (or kernel family), each with its parameter struct (the WGSL `Params`
//! twin) and the host function that records a dispatch. Each has a plain f64 CPU twin in the module of the
//! same name under [`crate::reference`], which imports nothing of the GPU side.

pub mod conv;
pub mod correlation;
pub mod elementwise;
pub mod loss;
pub mod metric;
pub mod optim;
pub mod resize;

use crate::error::{Error, Result};
use crate::runtime::{Recorder, Tensor};

/// A channel range of a GPU tensor: ops read and write slices so that concatenation needs no copy.
#[derive(Clone, Copy, Debug)]
pub struct Slice<'a> {
    pub tensor: &'a Tensor,
    pub c_offset: usize,
    pub channels: usize,
}

impl<'a> Slice<'a> {
    pub fn all(tensor: &'a Tensor) -> Self {
        Slice { tensor, c_offset: 0, channels: tensor.shape()[1] }
    }
    pub fn new(tensor: &'a Tensor, c_offset: usize, channels: usize) -> Result<Self> {
        if c_offset + channels > tensor.shape()[1] {
            return Err(Error::Shape {
                op: "slice",
                message: format!(
                    "channels {c_offset}..{} of a tensor with {} channels",
                    c_offset + channels,
                    tensor.shape()[1]
                ),
            });
        }
        Ok(Slice { tensor, c_offset, channels })
    }
    pub fn batch(&self) -> usize {
        self.tensor.shape()[0]
    }
    pub fn height(&self) -> usize {
        self.tensor.shape()[2]
    }
    pub fn width(&self) -> usize {
        self.tensor.shape()[3]
    }
    pub fn total_channels(&self) -> usize {
        self.tensor.shape()[1]
    }
}

impl Tensor {
    /// The whole tensor as a slice.
    pub fn slice_all(&self) -> Slice<'_> {
        Slice::all(self)
    }
    /// Channels `c_offset .. c_offset + channels`.
    pub fn slice(&self, c_offset: usize, channels: usize) -> Result<Slice<'_>> {
        Slice::new(self, c_offset, channels)
    }
}

/// A 1-D launch of `total` invocations in workgroups of `wg`, folded into 2-D when the number of
/// workgroups exceeds the per-dimension limit (kernels index with `gid.x + gid.y * nwg.x * WG`).
pub(crate) fn grid_1d(rec: &Recorder<'_>, total: usize, wg: usize) -> [u32; 3] {
    let groups = total.div_ceil(wg).max(if total == 0 { 0 } else { 1 });
    let (x, y) = split_groups(groups, rec.context().limits().max_compute_workgroups_per_dimension as usize);
    [x as u32, y as u32, 1]
}

/// Splits `groups` workgroups into x * n with x at most `max` (the adapter's limit per dimension) and n = 1
/// when they fit; x * n covers `groups` with less than one row of x to spare.
pub(crate) fn split_groups(groups: usize, max: usize) -> (usize, usize) {
    let n = groups.div_ceil(max.max(1)).max(1);
    (groups.div_ceil(n), n)
}

/// Checks that a dimension fits the u32 arithmetic of the kernels.
pub(crate) fn u32_of(op: &'static str, what: &str, v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::InvalidParam { op, message: format!("{what} = {v} exceeds the u32 range") })
}

/// Checks that a signed offset fits the i32 arithmetic of the kernels.
pub(crate) fn i32_of(op: &'static str, what: &str, v: i64) -> Result<i32> {
    i32::try_from(v).map_err(|_| Error::InvalidParam { op, message: format!("{what} = {v} exceeds the i32 range") })
}
