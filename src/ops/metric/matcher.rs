//! Mutual nearest neighbours between two sets of L2-normalised descriptor rows, in tiles
//! (`shaders/nn_top2.wgsl`, `shaders/mutual_matches.wgsl`); CPU reference in
//! `crate::reference::metric::matcher`.
//!
//! [`nearest_two`] finds every query row's nearest and second-nearest database rows by walking the
//! database in tiles of `tile_rows` rows, one dispatch per tile, each merging into a running state of 12
//! bytes per query row; no queries x database matrix exists at any point. [`mutual_matches`] runs it both
//! ways (A against B, B against A: twice the dot products of one pass, the price of needing no
//! cross-workgroup reduction) and marks the mutual matches passing Lowe's ratio test.
//!
//! Memory bound: besides the inputs `A [M, D]` and `B [K, D]` (each within one storage binding, 128 MiB on
//! llvmpipe: 262,144 rows at D = 128), [`Matches`] holds `20 M + 12 K` bytes (M = K = 250k: 8 MB), whatever
//! the tile size; the tile size only bounds the work of one dispatch (`tile_rows x M x D` multiply-adds).
//! Each invocation keeps a 4 x 4 block of dot products in registers; no workgroup memory.

use super::super::{grid_1d, u32_of};
use super::{matrix_dims, Indices, NO_INDEX};
use crate::error::{Error, Result};
use crate::runtime::{gpu_params, Context, Kernel, Recorder, Tensor};

/// Database rows per dispatch by default (about a second of llvmpipe time per 4k queries at D = 128).
pub const MATCH_TILE_ROWS: usize = 8192;

gpu_params! {
    /// The WGSL `Params` twin of `nn_top2`.
    pub struct NearestTwoParams {
        pub rows_q: u32,
        pub rows_x: u32,
        /// D / 4 (rows are read as vec4).
        pub dim4: u32,
        pub x_begin: u32,
        pub x_end: u32,
        /// Added to database row numbers (databases split over several buffers).
        pub index_offset: u32,
        /// Bit 0: merge with the stored state; bit 1: final tile (write distances).
        pub stage: u32,
        pub _pad0: u32,
    }
}

gpu_params! {
    /// The WGSL `Params` twin of `mutual_matches`.
    pub struct MutualParams {
        pub rows_a: u32,
        pub rows_b: u32,
        pub ratio: f32,
        pub _pad0: u32,
    }
}

/// Every query row's two nearest database rows: `best_index [N, 1]` ([`NO_INDEX`] for an empty
/// database), and after the final tile the distances `best_dist`, `second_dist` (`[N, 1, 1, 1]`,
/// `sqrt(max(0, 2 - 2 dot))`, [`super::NO_DISTANCE`] where there is no such row).
#[derive(Clone, Debug)]
pub struct NearestTwo {
    pub best_index: Indices,
    pub best_dist: Tensor,
    pub second_dist: Tensor,
}

impl NearestTwo {
    pub fn new(ctx: &Context, rows: usize) -> Result<Self> {
        Ok(NearestTwo {
            best_index: Indices::zeros(ctx, "nearest index", rows, 1)?,
            best_dist: ctx.tensor("nearest distance", [rows, 1, 1, 1])?,
            second_dist: ctx.tensor("second-nearest distance", [rows, 1, 1, 1])?,
        })
    }
    pub fn rows(&self) -> usize {
        self.best_index.rows()
    }
}

/// How [`nearest_two`] walks the database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TileOptions {
    /// Database rows per dispatch.
    pub tile_rows: usize,
    /// Use `nn_top2_subgroup` where [`subgroup_matcher_supported`] (default); `false` forces the portable
    /// `nn_top2` (for tests and comparisons).
    pub subgroups: bool,
}

impl Default for TileOptions {
    fn default() -> Self {
        TileOptions { tile_rows: MATCH_TILE_ROWS, subgroups: true }
    }
}

/// Matcher options.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MatchOptions {
    /// Lowe's ratio: a match needs `d1 < ratio * d2` (1.0 keeps every mutual match).
    pub ratio: f32,
    pub tiles: TileOptions,
}

impl Default for MatchOptions {
    fn default() -> Self {
        MatchOptions { ratio: 0.8, tiles: TileOptions::default() }
    }
}

/// Whether [`nearest_two`] runs `nn_top2_subgroup` (subgroups of at least 8 lanes) rather than `nn_top2`.
pub fn subgroup_matcher_supported(ctx: &Context) -> bool {
    ctx.device().features().contains(wgpu::Features::SUBGROUP) && ctx.adapter().subgroup_min_size >= 8
}

/// Checks a set of rows `[N, D, 1, 1]` with D a multiple of 4; returns (N, D).
fn rows_of(op: &'static str, what: &str, t: &Tensor) -> Result<(usize, usize)> {
    let (n, d) = matrix_dims(op, what, t)?;
    if d == 0 || d % 4 != 0 {
        return Err(Error::Shape {
            op,
            message: format!(
                "{what} {:?}: the matcher reads rows as vec4, so D must be a positive multiple of 4",
                t.shape()
            ),
        });
    }
    u32_of(op, "elements", n * d)?;
    Ok((n, d))
}

/// For every row of `queries [N, D]`, its nearest and second-nearest rows of the database, given as one or
/// more parts `[K_p, D]` (numbered consecutively), in dispatches of at most `tiles.tile_rows` database rows.
pub fn nearest_two(
    rec: &mut Recorder<'_>,
    queries: &Tensor,
    database: &[&Tensor],
    tiles: TileOptions,
    out: &NearestTwo,
) -> Result<()> {
    let op = "nearest_two";
    let (nq, d) = rows_of(op, "queries", queries)?;
    if out.rows() != nq || out.best_dist.shape() != [nq, 1, 1, 1] || out.second_dist.shape() != [nq, 1, 1, 1] {
        return Err(Error::Shape { op, message: format!("the output holds {} rows, the queries {nq}", out.rows()) });
    }
    let tile_rows = tiles.tile_rows;
    if tile_rows == 0 {
        return Err(Error::InvalidParam { op, message: "tile_rows must be at least 1".into() });
    }
    let mut steps = Vec::new();
    let mut offset = 0usize;
    for (i, part) in database.iter().enumerate() {
        let (k, dk) = rows_of(op, "database part", part)?;
        if dk != d {
            return Err(Error::Shape { op, message: format!("database part {i} has D = {dk}, the queries {d}") });
        }
        for begin in (0..k).step_by(tile_rows) {
            steps.push((*part, k, begin, (begin + tile_rows).min(k), offset));
        }
        offset += k;
    }
    u32_of(op, "database rows", offset)?;
    if steps.is_empty() {
        return Err(Error::Shape { op, message: "the database has no rows".into() });
    }
    let groups = grid_1d(rec, nq.div_ceil(4), 64);
    let kernel = if tiles.subgroups && subgroup_matcher_supported(rec.context()) {
        Kernel::NnTop2Subgroup
    } else {
        Kernel::NnTop2
    };
    let last = steps.len() - 1;
    for (t, (part, k, begin, end, offset)) in steps.into_iter().enumerate() {
        let p = NearestTwoParams {
            rows_q: nq as u32,
            rows_x: k as u32,
            dim4: (d / 4) as u32,
            x_begin: begin as u32,
            x_end: end as u32,
            index_offset: offset as u32,
            stage: u32::from(t > 0) | (u32::from(t == last) << 1),
            _pad0: 0,
        };
        rec.dispatch(
            kernel,
            &[],
            &p,
            &[
                queries.buffer(),
                part.buffer(),
                out.best_index.buffer(),
                out.best_dist.buffer(),
                out.second_dist.buffer(),
            ],
            groups,
        )?;
    }
    Ok(())
}

/// The matcher's outputs: both directions' nearest rows, and per row of A its mutual match passing the
/// ratio test (`index [M, 1]`: the B row or [`NO_INDEX`]) with `ratio [M, 1, 1, 1]` = d1 / d2 (for every
/// row; 1 where d2 = 0).
#[derive(Clone, Debug)]
pub struct Matches {
    pub a_to_b: NearestTwo,
    pub b_to_a: NearestTwo,
    pub index: Indices,
    pub ratio: Tensor,
}

impl Matches {
    /// Buffers for M rows of A and K rows of B: `20 M + 12 K` bytes.
    pub fn new(ctx: &Context, rows_a: usize, rows_b: usize) -> Result<Self> {
        Ok(Matches {
            a_to_b: NearestTwo::new(ctx, rows_a)?,
            b_to_a: NearestTwo::new(ctx, rows_b)?,
            index: Indices::zeros(ctx, "match index", rows_a, 1)?,
            ratio: ctx.tensor("match ratio", [rows_a, 1, 1, 1])?,
        })
    }

    /// Downloads the matches as `(row of A, row of B, d1, d1 / d2)`, in A's order.
    pub fn download(&self, ctx: &Context) -> Result<Vec<(u32, u32, f32, f32)>> {
        let index = self.index.download(ctx)?;
        let ratio = ctx.download(&self.ratio)?;
        let dist = ctx.download(&self.a_to_b.best_dist)?;
        Ok(index
            .iter()
            .enumerate()
            .filter(|(_, &j)| j != NO_INDEX)
            .map(|(i, &j)| (i as u32, j, dist.data[i], ratio.data[i]))
            .collect())
    }
}

/// Mutual nearest neighbours between `a [M, D]` and `b [K, D]` (L2-normalised rows, D a multiple of 4)
/// passing Lowe's ratio test, into `out` (from [`Matches::new`]).
pub fn mutual_matches(rec: &mut Recorder<'_>, a: &Tensor, b: &Tensor, opts: MatchOptions, out: &Matches) -> Result<()> {
    let op = "mutual_matches";
    let (m, _) = rows_of(op, "A", a)?;
    let (k, _) = rows_of(op, "B", b)?;
    if out.index.rows() != m || out.ratio.shape() != [m, 1, 1, 1] || out.b_to_a.rows() != k {
        return Err(Error::Shape { op, message: format!("the outputs are not sized for M = {m}, K = {k}") });
    }
    if !(opts.ratio.is_finite() && opts.ratio > 0.0) {
        return Err(Error::InvalidParam { op, message: format!("ratio = {}: need a finite value > 0", opts.ratio) });
    }
    nearest_two(rec, a, &[b], opts.tiles, &out.a_to_b)?;
    nearest_two(rec, b, &[a], opts.tiles, &out.b_to_a)?;
    let p = MutualParams { rows_a: m as u32, rows_b: k as u32, ratio: opts.ratio, _pad0: 0 };
    let groups = grid_1d(rec, m, 256);
    rec.dispatch(
        Kernel::MutualMatches,
        &[],
        &p,
        &[
            out.a_to_b.best_index.buffer(),
            out.a_to_b.best_dist.buffer(),
            out.a_to_b.second_dist.buffer(),
            out.b_to_a.best_index.buffer(),
            out.index.buffer(),
            out.ratio.buffer(),
        ],
        groups,
    )
}
