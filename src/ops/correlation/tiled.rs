//! The fast correlation forward (`shaders/correlation_forward.wgsl`), its row-band planning for inputs whose
//! temporaries or output exceed one storage binding, and the once-per-device subgroup probe.

use super::pack::{pack_features, scratch, PackWindow};
use super::{check, correlation_forward_naive, CorrelationOptions, CorrelationSpec};
use crate::error::{Error, Result};
use crate::ops::{u32_of, Slice};
use crate::runtime::{gpu_params, Context, Kernel, Recorder, Tensor};

const OP: &str = "correlation";
/// Lanes of the subgroup tiles (the kernels' SG).
pub(crate) const SG: usize = 8;
/// Longest sweep window one workgroup handles (4 * KW4 <= 32 keeps the unrolled loops in registers).
pub(crate) const MAX_WINDOW: usize = 32;

gpu_params! {
    /// The WGSL `Params` twin of `correlation_forward`.
    pub struct CorrelationTiledParams {
        pub batch: u32,
        pub c4: u32,
        pub out_h: u32,
        pub out_w: u32,
        pub band_rows: u32,
        pub out_row0: u32,
        pub x_blocks: u32,
        pub k_windows: u32,
        pub stride1: u32,
        pub stride2: u32,
        pub kernel_size: u32,
        pub lane_step: u32,
        pub a_hp: u32,
        pub a_wp: u32,
        pub b_hp: u32,
        pub b_wp: u32,
        pub out_c_offset: u32,
        pub out_c_total: u32,
        pub leaky: u32,
        pub slope: f32,
        pub norm: f32,
        pub _pad0: u32,
        pub _pad1: u32,
        pub _pad2: u32,
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Splits a sweep of `len` positions into `windows` windows of `4 * kw4` positions each.
pub(crate) fn sweep_windows(len: usize) -> (usize, usize) {
    let windows = len.div_ceil(MAX_WINDOW).max(1);
    let kw4 = len.div_ceil(windows).div_ceil(4);
    (windows, kw4)
}

/// The tile geometry of the forward kernel for one layer (see the header of the WGSL file).
#[derive(Clone, Copy, Debug)]
struct ForwardGeometry {
    gw: usize,
    /// Output-column step between neighbouring lanes.
    m: usize,
    /// Sweep steps between neighbouring lanes.
    l: usize,
    /// Column blocks per lane.
    ta: usize,
    kw4: usize,
    k_windows: usize,
    x_blocks: usize,
    c4: usize,
    a_wp: usize,
    b_wp: usize,
}

impl ForwardGeometry {
    fn new(spec: &CorrelationSpec, channels: usize, out_w: usize) -> Self {
        let (s1, s2, ks) = (spec.stride1, spec.stride2, spec.kernel_size);
        let gw = spec.grid_width();
        let g = gcd(s1, s2);
        let (m, l) = (s2 / g, s1 / g);
        let ta = if l <= 4 && out_w > SG * m { 2 } else { 1 };
        let (k_windows, kw4) = sweep_windows((SG - 1) * l + gw);
        let rounds = (SG * l * (ta - 1) + 4 * kw4).div_ceil(SG);
        let x_blocks = out_w.div_ceil(m).div_ceil(SG * ta);
        // Largest block-0 lane-0 column, and the largest column any lane touches.
        let ox0_max = (m - 1) + (x_blocks - 1) * SG * ta * m;
        let ox_max = (m - 1) + (x_blocks * SG * ta - 1) * m;
        let a_wp = ox_max * s1 + ks;
        let b_wp = ox0_max * s1 + ks + ((k_windows - 1) * 4 * kw4 + SG * rounds - 1) * s2;
        ForwardGeometry { gw, m, l, ta, kw4, k_windows, x_blocks, c4: channels.div_ceil(4), a_wp, b_wp }
    }

    fn a_window(&self, spec: &CorrelationSpec, o0: usize, rows: usize) -> PackWindow {
        let origin = spec.max_displacement as i64 - spec.pad as i64;
        PackWindow {
            hp: (rows - 1) * spec.stride1 + spec.kernel_size,
            wp: self.a_wp,
            c4: self.c4,
            row0: (o0 * spec.stride1) as i64 + origin,
            col0: origin,
        }
    }

    fn b_window(&self, spec: &CorrelationSpec, o0: usize, rows: usize) -> PackWindow {
        let origin = spec.max_displacement as i64 - spec.pad as i64;
        let reach = (spec.grid_radius() * spec.stride2) as i64;
        PackWindow {
            hp: (rows - 1) * spec.stride1 + spec.kernel_size + (self.gw - 1) * spec.stride2,
            wp: self.b_wp,
            c4: self.c4,
            row0: (o0 * spec.stride1) as i64 + origin - reach,
            col0: origin - reach,
        }
    }

    /// The most output rows one dispatch may cover so that both packed inputs fit `limit` bytes and the
    /// grid fits the device.
    fn max_rows(&self, spec: &CorrelationSpec, batch: usize, limit: u64, max_groups: usize) -> usize {
        // Both packed inputs fit the budget, and the packing grid (one workgroup row per packed row) the device.
        let fits = |rows: usize| {
            let b = self.b_window(spec, 0, rows);
            self.a_window(spec, 0, rows).bytes(batch) <= limit && b.bytes(batch) <= limit && batch * b.hp <= max_groups
        };
        super::pack::largest_fitting_rows(max_groups / (self.gw * self.k_windows), fits)
    }
}

/// The byte budget of one buffer: the adapter's storage-binding limit, or less when the caller asks.
pub(crate) fn byte_limit(ctx: &Context, opts: &CorrelationOptions) -> u64 {
    let device = ctx.max_binding_bytes();
    opts.max_band_bytes.map_or(device, |b| b.min(device))
}

fn too_large(ctx: &Context, what: &str, shape: &[usize], bytes: u64, limit: u64, hint: &str) -> Error {
    Error::TooLarge {
        name: what.to_string(),
        shape: shape.to_vec(),
        bytes,
        limit,
        adapter: ctx.adapter().name.clone(),
        hint: format!(": {hint}"),
    }
}

/// Records the tiled forward for output rows `o0 .. o1`, written to rows `out_row0 ..` of `out` (channels
/// `out_c_offset ..`). Splits the rows into bands whose packed inputs fit `limit` bytes.
#[allow(clippy::too_many_arguments)]
fn forward_rows(
    rec: &mut Recorder<'_>,
    a: &Tensor,
    b: &Tensor,
    spec: &CorrelationSpec,
    out: &Tensor,
    out_c_offset: usize,
    out_row0: usize,
    (o0, o1): (usize, usize),
    leaky: Option<f32>,
    opts: &CorrelationOptions,
) -> Result<()> {
    let ctx = rec.context();
    let limit = byte_limit(ctx, opts);
    let [n, c, h, w] = a.shape();
    let (_, ow) = spec.output_size(h, w)?;
    let geo = ForwardGeometry::new(spec, c, ow);
    let max_groups = ctx.limits().max_compute_workgroups_per_dimension as usize;
    if n > max_groups || geo.x_blocks * geo.m > max_groups {
        return Err(Error::InvalidParam {
            op: OP,
            message: format!(
                "batch {n} x width {ow} needs more workgroups than adapter `{}` allows; split the batch",
                ctx.adapter().name
            ),
        });
    }
    let band =
        geo.max_rows(spec, n, limit, max_groups).min(o1 - o0).min(opts.max_band_rows.map_or(usize::MAX, |r| r.max(1)));
    if band == 0 {
        let win = geo.b_window(spec, 0, 1);
        return Err(too_large(
            ctx,
            "correlation packed input row",
            &[n, win.hp, win.wp, win.c4 * 4],
            win.bytes(n),
            limit,
            "one output row of the correlation needs more than one storage binding; use a smaller batch, fewer channels or narrower inputs",
        ));
    }
    let a_packed = scratch(rec, "correlation a packed", geo.a_window(spec, 0, band).bytes(n))?;
    let b_packed = scratch(rec, "correlation b packed", geo.b_window(spec, 0, band).bytes(n))?;
    let [_, out_c_total, out_h, out_w] = out.shape();
    let constants = [
        ("GW", geo.gw as f64),
        ("KW4", geo.kw4 as f64),
        ("TA", geo.ta as f64),
        ("SL", geo.l as f64),
        ("KS", spec.kernel_size as f64),
    ];
    let mut r0 = o0;
    while r0 < o1 {
        let rows = band.min(o1 - r0);
        let aw = geo.a_window(spec, r0, rows);
        let bw = geo.b_window(spec, r0, rows);
        pack_features(rec, a, &aw, &a_packed)?;
        pack_features(rec, b, &bw, &b_packed)?;
        let params = CorrelationTiledParams {
            batch: u32_of(OP, "batch", n)?,
            c4: u32_of(OP, "c4", geo.c4)?,
            out_h: u32_of(OP, "out_h", out_h)?,
            out_w: u32_of(OP, "out_w", out_w)?,
            band_rows: u32_of(OP, "band rows", rows)?,
            out_row0: u32_of(OP, "out_row0", out_row0 + (r0 - o0))?,
            x_blocks: u32_of(OP, "x_blocks", geo.x_blocks)?,
            k_windows: u32_of(OP, "k_windows", geo.k_windows)?,
            stride1: u32_of(OP, "stride1", spec.stride1)?,
            stride2: u32_of(OP, "stride2", spec.stride2)?,
            kernel_size: u32_of(OP, "kernel_size", spec.kernel_size)?,
            lane_step: u32_of(OP, "lane_step", geo.m)?,
            a_hp: u32_of(OP, "a_hp", aw.hp)?,
            a_wp: u32_of(OP, "a_wp", aw.wp)?,
            b_hp: u32_of(OP, "b_hp", bw.hp)?,
            b_wp: u32_of(OP, "b_wp", bw.wp)?,
            out_c_offset: u32_of(OP, "out_c_offset", out_c_offset)?,
            out_c_total: u32_of(OP, "out_c_total", out_c_total)?,
            leaky: leaky.is_some() as u32,
            slope: leaky.unwrap_or(0.0),
            norm: 1.0 / (spec.kernel_size * spec.kernel_size * c) as f32,
            _pad0: 0,
            _pad1: 0,
            _pad2: 0,
        };
        let groups = [
            u32_of(OP, "x groups", geo.x_blocks * geo.m)?,
            u32_of(OP, "y groups", rows * geo.gw * geo.k_windows)?,
            u32_of(OP, "batch", n)?,
        ];
        rec.dispatch(
            Kernel::CorrelationForward,
            &constants,
            &params,
            &[a_packed.buffer(), b_packed.buffer(), out.buffer()],
            groups,
        )?;
        r0 += rows;
    }
    Ok(())
}

/// Records the correlation of `a` and `b` into the channel slice `out` ([N, D, out_h, out_w]), with an
/// optional fused LeakyReLU: the subgroup-tiled kernel where the device has subgroups (see
/// [`subgroup_tiling_available`]), else the one-invocation-per-output kernel. Inputs whose packed copies
/// exceed one storage binding are processed in row bands.
pub fn correlation_forward(
    rec: &mut Recorder<'_>,
    a: &Tensor,
    b: &Tensor,
    spec: CorrelationSpec,
    out: Slice<'_>,
    leaky: Option<f32>,
) -> Result<()> {
    correlation_forward_with(rec, a, b, spec, out, leaky, &CorrelationOptions::default())
}

/// [`correlation_forward`] with explicit [`CorrelationOptions`].
pub fn correlation_forward_with(
    rec: &mut Recorder<'_>,
    a: &Tensor,
    b: &Tensor,
    spec: CorrelationSpec,
    out: Slice<'_>,
    leaky: Option<f32>,
    opts: &CorrelationOptions,
) -> Result<()> {
    check(a, b, &spec, &out)?;
    if opts.tiled && subgroup_tiling_available(rec.context())? {
        forward_rows(rec, a, b, &spec, out.tensor, out.c_offset, 0, (0, out.height()), leaky, opts)
    } else {
        correlation_forward_naive(rec, a, b, spec, out, leaky)
    }
}

/// Output rows `row0 .. row0 + tensor.shape()[2]` of a correlation computed in row bands.
#[derive(Debug)]
pub struct CorrelationBand {
    pub row0: usize,
    /// [N, D, rows, out_w]
    pub tensor: Tensor,
}

impl CorrelationBand {
    pub fn rows(&self) -> usize {
        self.tensor.shape()[2]
    }
}

/// The correlation as row bands of at most `opts.max_band_bytes` (default: the adapter's storage-binding
/// limit) each: for cost volumes larger than one binding, e.g. quarter-resolution 1080p features with 441
/// displacements (~230 MB). Bands are in order and cover all output rows; the backward pass takes them
/// back through [`super::correlation_backward_chunked`]. Needs the subgroup-tiled kernels.
pub fn correlation_forward_chunked(
    rec: &mut Recorder<'_>,
    a: &Tensor,
    b: &Tensor,
    spec: CorrelationSpec,
    leaky: Option<f32>,
    opts: &CorrelationOptions,
) -> Result<Vec<CorrelationBand>> {
    let ctx = rec.context();
    if a.shape() != b.shape() {
        return Err(Error::Shape { op: OP, message: format!("inputs differ: {:?} vs {:?}", a.shape(), b.shape()) });
    }
    let [n, c, h, w] = a.shape();
    if c == 0 {
        return Err(Error::Shape { op: OP, message: "inputs have no channels".into() });
    }
    let (oh, ow) = spec.output_size(h, w)?;
    let d = spec.displacements();
    if !opts.tiled || !subgroup_tiling_available(ctx)? {
        return Err(Error::InvalidParam {
            op: OP,
            message: format!(
                "the banded correlation needs subgroup operations, which adapter `{}` does not offer; use correlation_forward with an output tensor that fits one storage binding",
                ctx.adapter().name
            ),
        });
    }
    let limit = byte_limit(ctx, opts);
    let row_bytes = (n * d * ow) as u64 * 4;
    let rows_per_band = usize::try_from(limit / row_bytes.max(1))
        .unwrap_or(usize::MAX)
        .min(oh)
        .min(opts.max_band_rows.map_or(usize::MAX, |r| r.max(1)));
    if rows_per_band == 0 {
        return Err(too_large(
            ctx,
            "correlation output row",
            &[n, d, 1, ow],
            row_bytes,
            limit,
            "one output row exceeds the band limit; use a smaller batch or narrower inputs",
        ));
    }
    let mut bands = Vec::with_capacity(oh.div_ceil(rows_per_band));
    let mut r0 = 0;
    while r0 < oh {
        let rows = rows_per_band.min(oh - r0);
        let tensor = ctx.tensor("correlation band", [n, d, rows, ow])?;
        forward_rows(rec, a, b, &spec, &tensor, 0, 0, (r0, r0 + rows), leaky, opts)?;
        bands.push(CorrelationBand { row0: r0, tensor });
        r0 += rows;
    }
    Ok(bands)
}

gpu_params! {
    /// The WGSL `Params` twin of `subgroup_probe`.
    pub struct SubgroupProbeParams {
        pub salt: u32,
        pub _pad0: u32,
        pub _pad1: u32,
        pub _pad2: u32,
    }
}

/// Whether the subgroup-tiled correlation kernels run on this device: it has the SUBGROUP feature and a
/// probe dispatch (`shaders/subgroup_probe.wgsl`) shows that a workgroup of 8 invocations is one subgroup
/// with lanes 0..7 and working shuffles. Probed once per context; otherwise the portable kernels are used.
pub fn subgroup_tiling_available(ctx: &Context) -> Result<bool> {
    const KEY: &str = "correlation.subgroup8";
    if !ctx.device().features().contains(wgpu::Features::SUBGROUP) {
        return Ok(false);
    }
    if let Some(v) = ctx.tuned(KEY) {
        return Ok(v.first() == Some(&1));
    }
    let salt = 7u32;
    let out = ctx.tensor("subgroup probe", [1, 1, 1, 3 * SG])?;
    let mut rec = ctx.recorder("subgroup probe");
    rec.dispatch(
        Kernel::SubgroupProbe,
        &[],
        &SubgroupProbeParams { salt, _pad0: 0, _pad1: 0, _pad2: 0 },
        &[out.buffer()],
        [1, 1, 1],
    )?;
    rec.submit()?;
    let words: Vec<u32> = ctx.download(&out)?.data.iter().map(|v| v.to_bits()).collect();
    let mut ids: Vec<u32> = (0..SG).map(|i| words[3 * i + 1]).collect();
    let ok = (0..SG).all(|i| {
        let (size, id, shuffled) = (words[3 * i], words[3 * i + 1], words[3 * i + 2]);
        size as usize >= SG && shuffled == 100 * ((id + 3) % SG as u32) + salt
    }) && {
        ids.sort_unstable();
        ids == (0..SG as u32).collect::<Vec<_>>()
    };
    ctx.set_tuned(KEY, vec![ok as u32]);
    Ok(ok)
}
