//! Re-layouts the tiled correlation kernels read: features into zero-padded channels-last vec4
//! (`shaders/correlation_pack.wgsl`) and the output gradient into per-lane sweep order
//! (`shaders/correlation_grad_pack.wgsl`).

use crate::error::{Error, Result};
use crate::ops::{i32_of, u32_of};
use crate::runtime::{gpu_params, Kernel, Recorder, Tensor};

const OP: &str = "correlation";

gpu_params! {
    /// The WGSL `Params` twin of `correlation_pack`.
    pub struct CorrelationPackParams {
        pub batch: u32,
        pub channels: u32,
        pub in_h: u32,
        pub in_w: u32,
        pub c4: u32,
        pub hp: u32,
        pub wp: u32,
        pub total: u32,
        pub row0: i32,
        pub col0: i32,
        pub _pad0: u32,
        pub _pad1: u32,
    }
}

/// A packed window: `hp` x `wp` pixels of `c4` channel quads, whose (0, 0) is source pixel (row0, col0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PackWindow {
    pub hp: usize,
    pub wp: usize,
    pub c4: usize,
    pub row0: i64,
    pub col0: i64,
}

impl PackWindow {
    /// Bytes of the packed copy for `batch` images.
    pub fn bytes(&self, batch: usize) -> u64 {
        (batch * self.hp * self.wp * self.c4) as u64 * 16
    }
}

/// A scratch tensor able to hold `bytes` (shape [1, 1, 1, bytes / 4]; the kernels index it as vec4).
/// The largest `rows` in `1..=max` with `fits(rows)`, for a `fits` that holds up to some row count and
/// fails beyond it (buffer bytes grow linearly with rows): bisection. 0 when even one row does not fit.
pub(crate) fn largest_fitting_rows(max: usize, fits: impl Fn(usize) -> bool) -> usize {
    if max == 0 || !fits(1) {
        return 0;
    }
    let (mut lo, mut hi) = (1usize, max);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    lo
}

/// A packing buffer of at least `bytes`, from the context's shared scratch (the packed operands are
/// written and read within one op's dispatches, like the Winograd transforms').
pub(crate) fn scratch(rec: &Recorder<'_>, name: &'static str, bytes: u64) -> Result<Tensor> {
    let floats = usize::try_from(bytes / 4)
        .map_err(|_| Error::InvalidParam { op: OP, message: format!("scratch buffer of {bytes} bytes") })?;
    rec.context().scratch(name, [1, 1, 1, floats.max(4)])
}

/// Fails with a message that says what to change when a grid exceeds the device's per-dimension limit.
fn check_groups(rec: &Recorder<'_>, groups: [u32; 3]) -> Result<()> {
    let max = rec.context().limits().max_compute_workgroups_per_dimension;
    if groups.iter().any(|&g| g > max) {
        return Err(Error::InvalidParam {
            op: OP,
            message: format!("a packing pass needs {groups:?} workgroups, more than {max} per dimension; use a smaller batch or a smaller max_band_rows"),
        });
    }
    Ok(())
}

/// Records the copy of window `win` of every image of `src` ([N, C, H, W]) into `dst`.
pub(crate) fn pack_features(rec: &mut Recorder<'_>, src: &Tensor, win: &PackWindow, dst: &Tensor) -> Result<()> {
    let [n, c, h, w] = src.shape();
    let total = n * win.hp * win.wp * win.c4;
    if (total as u64) * 16 > dst.bytes() {
        return Err(Error::Shape {
            op: OP,
            message: format!("packed window needs {} bytes, scratch holds {}", total * 16, dst.bytes()),
        });
    }
    let params = CorrelationPackParams {
        batch: u32_of(OP, "batch", n)?,
        channels: u32_of(OP, "channels", c)?,
        in_h: u32_of(OP, "in_h", h)?,
        in_w: u32_of(OP, "in_w", w)?,
        c4: u32_of(OP, "c4", win.c4)?,
        hp: u32_of(OP, "packed height", win.hp)?,
        wp: u32_of(OP, "packed width", win.wp)?,
        total: u32_of(OP, "packed elements", total)?,
        row0: i32_of(OP, "packed row origin", win.row0)?,
        col0: i32_of(OP, "packed column origin", win.col0)?,
        _pad0: 0,
        _pad1: 0,
    };
    let groups = [
        u32_of(OP, "pack x groups", win.c4.div_ceil(8))?,
        u32_of(OP, "pack y groups", win.wp.div_ceil(8))?,
        u32_of(OP, "pack z groups", n * win.hp)?,
    ];
    check_groups(rec, groups)?;
    rec.dispatch(Kernel::CorrelationPack, &[], &params, &[src.buffer(), dst.buffer()], groups)
}

gpu_params! {
    /// The WGSL `Params` twin of `correlation_grad_pack`.
    pub struct CorrelationGradPackParams {
        pub batch: u32,
        pub d_total: u32,
        pub g_h: u32,
        pub g_w: u32,
        pub g_row0: u32,
        pub o0: u32,
        pub o1: u32,
        pub rows: u32,
        pub wp: u32,
        pub kp4: u32,
        pub stride1: u32,
        pub stride2: u32,
        pub kernel_size: u32,
        pub grid_radius: u32,
        pub frame: u32,
        pub total: u32,
        pub y0: i32,
        pub origin: i32,
        pub norm: f32,
        pub _pad0: u32,
    }
}

/// Which backward kernel a packed gradient is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GradFrame {
    /// Rows/columns are a-pixels (`correlation_backward_a`).
    A = 0,
    /// Rows/columns are b-pixels (`correlation_backward_b`).
    B = 1,
}

/// Where a band of the output gradient lives: output rows `o0 .. o1` are rows `row0 ..` of `tensor`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GradBand<'a> {
    pub tensor: &'a Tensor,
    pub row0: usize,
    pub o0: usize,
    pub o1: usize,
}

/// Geometry of one packed gradient: `rows` gradient rows starting at input row `y0`, `wp` columns,
/// `kp4` sweep quads per (column, displacement row).
#[derive(Clone, Copy, Debug)]
pub(crate) struct GradWindow {
    pub rows: usize,
    pub y0: usize,
    pub wp: usize,
    pub kp4: usize,
}

impl GradWindow {
    pub fn bytes(&self, batch: usize, gw: usize) -> u64 {
        (batch * self.rows * self.wp * gw * self.kp4) as u64 * 16
    }
}

/// Records the sweep-order gradient for `frame` (see `shaders/correlation_grad_pack.wgsl`).
pub(crate) fn pack_grad(
    rec: &mut Recorder<'_>,
    spec: &super::CorrelationSpec,
    channels: usize,
    band: &GradBand<'_>,
    win: &GradWindow,
    frame: GradFrame,
    dst: &Tensor,
) -> Result<()> {
    let [n, d, gh, gwid] = band.tensor.shape();
    let gw = spec.grid_width();
    let total = n * win.rows * win.wp * gw * win.kp4;
    if (total as u64) * 16 > dst.bytes() {
        return Err(Error::Shape {
            op: OP,
            message: format!("packed gradient needs {} bytes, scratch holds {}", total * 16, dst.bytes()),
        });
    }
    let params = CorrelationGradPackParams {
        batch: u32_of(OP, "batch", n)?,
        d_total: u32_of(OP, "gradient channels", d)?,
        g_h: u32_of(OP, "gradient rows", gh)?,
        g_w: u32_of(OP, "gradient columns", gwid)?,
        g_row0: u32_of(OP, "gradient band row", band.row0)?,
        o0: u32_of(OP, "band start", band.o0)?,
        o1: u32_of(OP, "band end", band.o1)?,
        rows: u32_of(OP, "rows", win.rows)?,
        wp: u32_of(OP, "packed width", win.wp)?,
        kp4: u32_of(OP, "sweep quads", win.kp4)?,
        stride1: u32_of(OP, "stride1", spec.stride1)?,
        stride2: u32_of(OP, "stride2", spec.stride2)?,
        kernel_size: u32_of(OP, "kernel_size", spec.kernel_size)?,
        grid_radius: u32_of(OP, "grid_radius", spec.grid_radius())?,
        frame: frame as u32,
        total: u32_of(OP, "packed gradient elements", total)?,
        y0: i32_of(OP, "gradient row origin", win.y0 as i64)?,
        origin: i32_of(OP, "patch origin", spec.max_displacement as i64 - spec.pad as i64)?,
        norm: 1.0 / (spec.kernel_size * spec.kernel_size * channels) as f32,
        _pad0: 0,
    };
    let groups = [
        u32_of(OP, "grad pack x groups", win.wp.div_ceil(8))?,
        u32_of(OP, "grad pack y groups", n * win.rows)?,
        u32_of(OP, "grad pack z groups", gw)?,
    ];
    check_groups(rec, groups)?;
    rec.dispatch(
        Kernel::CorrelationGradPack,
        &[("GW", gw as f64)],
        &params,
        &[band.tensor.buffer(), dst.buffer()],
        groups,
    )
}
