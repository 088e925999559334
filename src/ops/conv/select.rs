//! Which kernels run a convolution, decided in one place: the algorithm a layer asks for ([`ConvAlgo`], or
//! the context's [`Policy`](crate::runtime::Policy)), the policy's Winograd switch, what the adapter allows (the tiled and Winograd paths need subgroups), and per stride phase whether the
//! Winograd form applies ([`super::winograd::record_phase`]) or the tiled kernel runs it with a fixed or
//! tuned register block ([`super::tiled::record`]).

use super::algo::{ConvAlgo, ConvTile, WinogradUse};
use super::desc::TiledConv;
use super::{tiled, winograd};
use crate::error::Result;
use crate::runtime::{Context, Recorder};

/// The kernels that run a layer asking for `algo` on `ctx`: [`ConvAlgo::Tiled`] and [`ConvAlgo::Winograd`]
/// become [`ConvAlgo::Direct`] on adapters without subgroup operations (GL), where the tiled kernels cannot
/// be built.
pub(crate) fn effective(ctx: &Context, algo: ConvAlgo) -> ConvAlgo {
    match algo {
        ConvAlgo::Tiled | ConvAlgo::Winograd if !tiled::tiled_supported(ctx) => ConvAlgo::Direct,
        a => a,
    }
}

/// The register block (None: tuned) and Winograd use of the tiled kernels for a layer asking for `algo`
/// (not [`ConvAlgo::Direct`]), under the context's policy: [`WinogradUse::Auto`] becomes
/// [`WinogradUse::Never`] when the policy turns the automatic Winograd form off.
pub(crate) fn tiled_choice(ctx: &Context, algo: ConvAlgo) -> (Option<ConvTile>, WinogradUse) {
    let (tile, winograd) = algo.tiled_policy();
    match winograd {
        WinogradUse::Auto if !ctx.policy().winograd => (tile, WinogradUse::Never),
        w => (tile, w),
    }
}

/// Records `conv` (its `winograd` field says whether the Winograd form may be used) phase by phase: each
/// phase that qualifies in the Winograd form, the others with the tiled kernel and `tile` (None: tuned).
pub(crate) fn record(rec: &mut Recorder<'_>, conv: &TiledConv<'_>, tile: Option<ConvTile>) -> Result<()> {
    let mut rest = Vec::new();
    for ph in conv.phases() {
        if !winograd::record_phase(rec, conv, &ph)? {
            rest.push(ph);
        }
    }
    if rest.is_empty() {
        return Ok(());
    }
    tiled::record(rec, conv, tile, &rest)
}
