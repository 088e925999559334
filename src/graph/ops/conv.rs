//! Convolution nodes: conv2d or conv_transpose2d with bias and fused LeakyReLU ([`ConvLayer`]), optionally
//! cropped (top-left) to a reference activation's height and width, FlowNet's `crop_like`, by computing only
//! the region kept. GPU: [`crate::ops::conv`]; CPU: [`crate::reference::conv`].

use crate::error::{Error, Result};
use crate::graph::{
    Act, ConvLayer, CpuBackward, CpuForward, CpuGrads, GpuBackward, GpuForward, GraphBuilder, LayerId, Op,
};
use crate::host::Tensor64;
use crate::ops::conv::{conv_backward, conv_forward};
use crate::reference::conv::{conv2d_backward_f64, conv2d_f64, conv_transpose2d_backward_f64, conv_transpose2d_f64};
use crate::reference::elementwise::{leaky_relu_backward_f64, leaky_relu_f64};
use crate::runtime::Recorder;

/// A convolution node: input 0 is convolved with the layer's weights; with `crop`, input 1 only gives the
/// output's height and width.
#[derive(Clone, Debug)]
pub struct ConvOp {
    layer: LayerId,
    def: ConvLayer,
    crop: bool,
}

impl GraphBuilder {
    /// `layer` applied to `x`: conv2d, or conv_transpose2d at its full output size.
    pub fn conv(&mut self, x: Act, layer: LayerId) -> Act {
        match self.layer_def(layer).cloned() {
            Some(def) => self.add(ConvOp { layer, def, crop: false }, &[x]),
            None => self.add(ConvOp { layer, def: ConvLayer::new("?", 0, 0, 1), crop: false }, &[x]),
        }
    }

    /// `layer` applied to `x`, keeping the top-left height x width of `like` (FlowNet's
    /// `crop_like(deconv(x), like)`); only that region is computed.
    pub fn conv_like(&mut self, x: Act, layer: LayerId, like: Act) -> Act {
        match self.layer_def(layer).cloned() {
            Some(def) => self.add(ConvOp { layer, def, crop: true }, &[x, like]),
            None => self.add(ConvOp { layer, def: ConvLayer::new("?", 0, 0, 1), crop: true }, &[x, like]),
        }
    }
}

impl ConvOp {
    fn full_size(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        let (spec, k) = (self.def.spec(), self.def.k);
        if self.def.transposed {
            Some((spec.transposed_out(h, k)?, spec.transposed_out(w, k)?))
        } else {
            Some((spec.conv_out(h, k)?, spec.conv_out(w, k)?))
        }
    }
    fn err(&self, message: String) -> Error {
        Error::Shape { op: "graph conv", message: format!("{}: {message}", self.def.name) }
    }
}

impl Op for ConvOp {
    fn label(&self) -> String {
        self.def.name.clone()
    }
    fn layer(&self) -> Option<LayerId> {
        Some(self.layer)
    }
    fn reads(&self, input: usize) -> bool {
        input == 0
    }

    fn channels(&self, inputs: &[usize]) -> Result<usize> {
        if inputs.len() != 1 + self.crop as usize {
            return Err(self.err(format!("takes {} inputs, got {}", 1 + self.crop as usize, inputs.len())));
        }
        if inputs[0] != self.def.cin {
            return Err(self.err(format!("input has {} channels, the layer takes {}", inputs[0], self.def.cin)));
        }
        Ok(self.def.cout)
    }

    fn shape(&self, inputs: &[[usize; 4]]) -> Result<[usize; 4]> {
        let [n, _, h, w] = inputs[0];
        let (fh, fw) =
            self.full_size(h, w).ok_or_else(|| self.err(format!("input {w}x{h} is smaller than the kernel")))?;
        if !self.crop {
            return Ok([n, self.def.cout, fh, fw]);
        }
        let [ln, _, lh, lw] = inputs[1];
        if ln != n || lh > fh || lw > fw {
            return Err(self.err(format!("cannot crop a {n} x {fw}x{fh} output to {ln} x {lw}x{lh}")));
        }
        Ok([n, self.def.cout, lh, lw])
    }

    /// Real taps only: k^2 per output pixel for a conv2d, k^2 / stride^2 for a transposed conv.
    fn flops(&self, _inputs: &[[usize; 4]], output: [usize; 4]) -> f64 {
        let [n, _, oh, ow] = output;
        let l = &self.def;
        let taps = if l.transposed { (l.k * l.k) as f64 / (l.stride * l.stride) as f64 } else { (l.k * l.k) as f64 };
        2.0 * (n * oh * ow) as f64 * (l.cin * l.cout) as f64 * taps
    }

    fn forward(&self, rec: &mut Recorder<'_>, io: &GpuForward<'_>) -> Result<()> {
        let w = io.weights.ok_or_else(|| self.err("no weights".into()))?;
        conv_forward(rec, io.inputs[0], w, self.def.spec(), io.output)
    }

    fn backward(&self, rec: &mut Recorder<'_>, io: &GpuBackward<'_>) -> Result<()> {
        let w = io.weights.ok_or_else(|| self.err("no weights".into()))?;
        let grads = io.grads.ok_or_else(|| self.err("no parameter gradients".into()))?;
        let (x, dx) = (io.inputs[0], io.d_inputs[0]);
        conv_backward(rec, x, Some(io.output_tensor), io.d_output, w, self.def.spec(), grads, dx, true)
    }

    fn forward_cpu(&self, io: &CpuForward<'_>) -> Result<Tensor64> {
        let w = io.weight.ok_or_else(|| self.err("no weights".into()))?;
        let (x, l) = (io.inputs[0], &self.def);
        let y = if l.transposed {
            conv_transpose2d_f64(x, w, io.bias, l.stride, l.pad, (io.output_shape[2], io.output_shape[3]))
        } else {
            conv2d_f64(x, w, io.bias, l.stride, l.pad)
        };
        Ok(leaky_relu_f64(y, l.leaky))
    }

    fn backward_cpu(&self, io: &CpuBackward<'_>) -> Result<CpuGrads> {
        let w = io.weight.ok_or_else(|| self.err("no weights".into()))?;
        let (x, l) = (io.inputs[0], &self.def);
        // The output is positive exactly where the pre-activation is (slope > 0).
        let dz = match l.leaky {
            Some(slope) => leaky_relu_backward_f64(io.output, io.d_output, slope as f64),
            None => io.d_output.clone(),
        };
        let (dx, dw, db) = if l.transposed {
            conv_transpose2d_backward_f64(x, w, &dz, l.stride, l.pad)
        } else {
            conv2d_backward_f64(x, w, &dz, l.stride, l.pad)
        };
        let mut d_inputs = vec![Some(dx)];
        if self.crop {
            d_inputs.push(None);
        }
        Ok(CpuGrads { d_inputs, d_weight: Some(dw), d_bias: l.has_bias().then_some(db) })
    }
}
