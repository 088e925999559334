//! The choices of which kernel runs a convolution (plain data; [`super::select`] applies them): the
//! algorithm ([`ConvAlgo`]), the tiled kernel's register block ([`ConvTile`]) and whether the Winograd form
//! may be used ([`WinogradUse`]).

/// Which kernel runs a convolution.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ConvAlgo {
    /// The first, correctness-first kernels (`conv2d_forward`, `conv_transpose2d_forward`): 4 channels x 4
    /// pixels per invocation, transposed convs as a gather that tests every tap. Kept as the baseline to
    /// measure against. Forward only: the backward passes always run the tiled kernels.
    Direct,
    /// The implicit-GEMM kernel (`conv2d_forward_tiled`) with the register block measured fastest for the
    /// layer's shape class on this adapter (measured at first use, cached in the [`Context`](crate::runtime::Context)).
    #[default]
    Tiled,
    /// The implicit-GEMM kernel with a fixed register block (tests, benches, reproducible runs). Never
    /// Winograd.
    TiledWith(ConvTile),
    /// The Winograd form (`ops::conv`, `winograd.rs`) for every layer, stride phase and gradient that qualifies
    /// (3x3 stride 1; 3x3 to 6x6 stride 2 over their input phases; the 2x2 and larger phases of transposed
    /// convolutions), whatever its size; the tuned tiled kernel elsewhere. [`ConvAlgo::Tiled`] uses it only
    /// where it gains (large enough layers; weight gradients only at >= 2.5x fewer multiplications).
    Winograd,
}

impl ConvAlgo {
    /// The tile (None: tuned) and Winograd policy of the tiled kernels for this choice (not `Direct`).
    pub(crate) fn tiled_policy(self) -> (Option<ConvTile>, WinogradUse) {
        match self {
            ConvAlgo::TiledWith(t) => (Some(t), WinogradUse::Never),
            ConvAlgo::Winograd => (None, WinogradUse::Always),
            ConvAlgo::Tiled | ConvAlgo::Direct => (None, WinogradUse::Auto),
        }
    }
}

/// Register block of the tiled kernel: `tm` output channels x `tn` output columns per invocation (both
/// multiples of 4; `tm` at most 32, `tn` at most 16), `wg` invocations per workgroup (all along the pixels;
/// the workgroup shares one block of channels).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvTile {
    pub tm: u32,
    pub tn: u32,
    pub wg: u32,
}

impl ConvTile {
    /// Every block the kernel supports that is worth measuring, largest first. [`ConvTile::candidates`]
    /// picks the few that fit a layer.
    pub const ALL: &'static [ConvTile] = &[
        ConvTile { tm: 32, tn: 8, wg: 64 },
        ConvTile { tm: 32, tn: 4, wg: 64 },
        ConvTile { tm: 16, tn: 8, wg: 64 },
        ConvTile { tm: 16, tn: 4, wg: 64 },
        ConvTile { tm: 8, tn: 8, wg: 64 },
        ConvTile { tm: 8, tn: 4, wg: 64 },
        ConvTile { tm: 4, tn: 16, wg: 64 },
        ConvTile { tm: 4, tn: 8, wg: 64 },
    ];

    /// The blocks measured for a layer with `cout` output channels on an adapter whose subgroups have at
    /// least `subgroup_min` lanes (each block is a pipeline to compile, so only 2-3 that do not waste most
    /// of a block on padding channels). The first is the default when tuning is off.
    ///
    /// 32-channel blocks need 8 lanes (lane l loads channel quad l % 8). On llvmpipe they were measured
    /// 0-27 % faster than 16 x 8 on FlowNet's layers with 128 or more output channels (conv3, conv4_1,
    /// deconv3 most), because one weight load per lane then feeds twice the multiply-adds.
    pub fn candidates(cout: usize, subgroup_min: u32) -> Vec<ConvTile> {
        let order: &[(u32, u32)] = if cout >= 32 && subgroup_min >= 8 {
            &[(32, 8), (16, 8), (32, 4)]
        } else if cout >= 16 {
            &[(16, 8), (16, 4), (8, 8)]
        } else if cout >= 8 {
            &[(8, 8), (8, 4), (4, 16)]
        } else {
            &[(4, 16), (4, 8)]
        };
        order.iter().map(|&(tm, tn)| ConvTile { tm, tn, wg: 64 }).collect()
    }

    /// Whether the kernel can run this block on an adapter allowing `max_invocations` per workgroup with
    /// subgroups of at least `subgroup_min` lanes. `wg` must be a multiple of 4 so that every subgroup has
    /// the lanes the weight shuffles read from, and `tm / 4` (the channel quads shared by shuffles) must
    /// not exceed the subgroup.
    pub fn supports(&self, max_invocations: u32, subgroup_min: u32) -> bool {
        let ok = |v: u32, max: u32| (4..=max).contains(&v) && v.is_multiple_of(4);
        ok(self.tm, Self::max_tm(subgroup_min))
            && ok(self.tn, 16)
            && self.wg >= 4
            && self.wg.is_multiple_of(4)
            && self.wg <= max_invocations
    }

    /// The most output channels a block may have with subgroups of at least `subgroup_min` lanes: 4 per
    /// lane the weight shuffles read from, at most 8 such lanes (wgpu guarantees 4).
    pub fn max_tm(subgroup_min: u32) -> u32 {
        4 * subgroup_min.clamp(4, 8)
    }

    pub(crate) fn encode(&self) -> Vec<u32> {
        vec![self.tm, self.tn, self.wg]
    }
    pub(crate) fn decode(v: &[u32]) -> Option<ConvTile> {
        match v {
            [tm, tn, wg] => Some(ConvTile { tm: *tm, tn: *tn, wg: *wg }),
            _ => None,
        }
    }
}

/// Whether a convolution runs in the Winograd form where it qualifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WinogradUse {
    /// Never (the direct tiled kernel).
    Never,
    /// When the layer qualifies and is large enough to gain (see [`AUTO_MIN_FLOPS`](super::AUTO_MIN_FLOPS), [`AUTO_MIN_TILES`](super::AUTO_MIN_TILES)).
    Auto,
    /// Whenever the layer qualifies, whatever its size (tests).
    Always,
}
