//! A layer's parameters ([`ConvLayer`]): what a [`LayerId`](super::LayerId) stands for.

use crate::reference::conv::ConvSpec;

/// A convolution layer's parameters and fixed settings: conv2d (weights [cout, cin, k, k]) or
/// conv_transpose2d (weights [cin, cout, k, k], PyTorch layouts), an optional bias `[cout]`, and a fused
/// LeakyReLU. The tensor names are the state-dict keys under which checkpoints store it.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvLayer {
    /// The layer's name: marks for per-layer timing, FLOP tables, errors.
    pub name: String,
    pub weight_name: String,
    /// `Some` when the layer has a bias.
    pub bias_name: Option<String>,
    pub cin: usize,
    pub cout: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
    pub transposed: bool,
    /// Fused LeakyReLU slope (`None`: no activation).
    pub leaky: Option<f32>,
}

impl ConvLayer {
    /// A `k` x `k` conv2d `cin` -> `cout`, stride 1, padding (k - 1) / 2, with a bias, no activation, tensors
    /// named `{name}.weight` and `{name}.bias`; the builder methods change the rest.
    pub fn new(name: &str, cin: usize, cout: usize, k: usize) -> Self {
        ConvLayer {
            name: name.to_string(),
            weight_name: format!("{name}.weight"),
            bias_name: Some(format!("{name}.bias")),
            cin,
            cout,
            k,
            stride: 1,
            pad: k.saturating_sub(1) / 2,
            transposed: false,
            leaky: None,
        }
    }
    pub fn stride(mut self, stride: usize) -> Self {
        self.stride = stride;
        self
    }
    pub fn pad(mut self, pad: usize) -> Self {
        self.pad = pad;
        self
    }
    /// A conv_transpose2d.
    pub fn transposed(mut self) -> Self {
        self.transposed = true;
        self
    }
    pub fn no_bias(mut self) -> Self {
        self.bias_name = None;
        self
    }
    pub fn leaky(mut self, slope: f32) -> Self {
        self.leaky = Some(slope);
        self
    }
    /// Other state-dict names for the weight and bias (the bias name only matters if it has one).
    pub fn named(mut self, weight: impl Into<String>, bias: impl Into<String>) -> Self {
        self.weight_name = weight.into();
        if self.bias_name.is_some() {
            self.bias_name = Some(bias.into());
        }
        self
    }
    pub fn has_bias(&self) -> bool {
        self.bias_name.is_some()
    }
    /// The weight's shape in PyTorch's layout.
    pub fn weight_shape(&self) -> [usize; 4] {
        if self.transposed {
            [self.cin, self.cout, self.k, self.k]
        } else {
            [self.cout, self.cin, self.k, self.k]
        }
    }
    pub fn spec(&self) -> ConvSpec {
        ConvSpec { stride: self.stride, pad: self.pad, leaky: self.leaky }
    }
    pub fn num_params(&self) -> usize {
        self.weight_shape().iter().product::<usize>() + if self.has_bias() { self.cout } else { 0 }
    }
    /// The state-dict names of its tensors with their shapes.
    pub fn tensors(&self) -> Vec<(String, Vec<usize>)> {
        let mut t = vec![(self.weight_name.clone(), self.weight_shape().to_vec())];
        if let Some(b) = &self.bias_name {
            t.push((b.clone(), vec![self.cout]));
        }
        t
    }
}
