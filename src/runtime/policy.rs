//! The algorithm policy of a run: which kernels the ops choose where they have a choice, as one value on
//! the [`Context`](super::Context) ([`Context::policy`](super::Context::policy)), set by the application
//! (the `corrflow` command reads it from the environment with [`Policy::from_env`]; the library itself
//! never reads the environment), so a run is reproducible from its arguments.

use crate::ops::conv::ConvAlgo;

/// Kernel choices that are not part of any op's arguments.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// The kernel of every convolution whose weights do not choose their own
    /// ([`ConvWeights::with_algo`](crate::ops::conv::ConvWeights::with_algo)).
    pub conv: ConvAlgo,
    /// Whether [`ConvAlgo::Tiled`] runs a layer in the Winograd form where that gains (large enough layers
    /// that qualify); `false` keeps every such layer on the tiled kernel. [`ConvAlgo::Winograd`] ignores it.
    pub winograd: bool,
    /// Whether the tiled kernel's register block is measured once per layer-shape class at first use
    /// (`false`: the first of [`ConvTile::candidates`](crate::ops::conv::ConvTile::candidates)).
    pub tune: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy { conv: ConvAlgo::Tiled, winograd: true, tune: true }
    }
}

impl Policy {
    /// The policy the environment asks for, for command-line programs: `CORRFLOW_CONV_ALGO=direct` selects
    /// [`ConvAlgo::Direct`] (the first kernels, to measure speed-ups against), `CORRFLOW_WINOGRAD=0` (or
    /// `off` / `false`) turns the automatic Winograd form off, `CORRFLOW_CONV_TUNE=0` skips tile tuning;
    /// anything else, or unset, keeps the default.
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`Policy::from_env`] over any source of variables.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let off = |name: &str| matches!(var(name).as_deref(), Some("0" | "off" | "false"));
        let conv = match var("CORRFLOW_CONV_ALGO").map(|v| v.to_ascii_lowercase()).as_deref() {
            Some("direct") => ConvAlgo::Direct,
            _ => ConvAlgo::Tiled,
        };
        Policy { conv, winograd: !off("CORRFLOW_WINOGRAD"), tune: !off("CORRFLOW_CONV_TUNE") }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_map_to_the_policy() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
        };
        assert_eq!(Policy::from_vars(vars(&[])), Policy::default());
        let p = Policy::from_vars(vars(&[
            ("CORRFLOW_CONV_ALGO", "Direct"),
            ("CORRFLOW_WINOGRAD", "off"),
            ("CORRFLOW_CONV_TUNE", "0"),
        ]));
        assert_eq!(p, Policy { conv: ConvAlgo::Direct, winograd: false, tune: false });
        let p = Policy::from_vars(vars(&[("CORRFLOW_CONV_ALGO", "tiled"), ("CORRFLOW_WINOGRAD", "1")]));
        assert_eq!(p, Policy::default());
    }
}
