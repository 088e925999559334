//! Correlation nodes (FlowNetC's cost volume, [`CorrelationSpec`]), with an optional fused LeakyReLU.
//! GPU: [`crate::ops::correlation`]; CPU: [`crate::reference::correlation`].

use crate::error::{Error, Result};
use crate::graph::{Act, CpuBackward, CpuForward, CpuGrads, GpuBackward, GpuForward, GraphBuilder, Op};
use crate::host::Tensor64;
use crate::ops::conv::ConvAlgo;
use crate::ops::correlation::{correlation_backward, correlation_forward, correlation_forward_naive};
use crate::ops::elementwise::{crop, leaky_relu_backward};
use crate::ops::Slice;
use crate::reference::correlation::{correlation_backward_cpu_f64, correlation_cpu_f64, CorrelationSpec};
use crate::reference::elementwise::{leaky_relu_backward_f64, leaky_relu_f64};
use crate::runtime::{Recorder, Tensor};

/// The correlation of input 0 (the first frame's features) with input 1 (the second's).
#[derive(Clone, Debug)]
pub struct CorrelationOp {
    spec: CorrelationSpec,
    leaky: Option<f32>,
}

impl GraphBuilder {
    /// The correlation of `a` and `b` (same shape), [N, D, H', W'] with D = `spec.displacements()`, then
    /// LeakyReLU(`leaky`) if given.
    pub fn correlation(&mut self, a: Act, b: Act, spec: CorrelationSpec, leaky: Option<f32>) -> Act {
        self.add(CorrelationOp { spec, leaky }, &[a, b])
    }
}

fn err(message: impl Into<String>) -> Error {
    Error::Shape { op: "graph correlation", message: message.into() }
}

/// The whole tensor behind a slice, which the correlation kernels need for their inputs.
fn whole<'a>(s: Slice<'a>, what: &str) -> Result<&'a Tensor> {
    if s.c_offset == 0 && s.channels == s.total_channels() {
        Ok(s.tensor)
    } else {
        Err(err(format!("{what} is part of a concatenation; the correlation kernels read whole tensors")))
    }
}

impl Op for CorrelationOp {
    fn label(&self) -> String {
        "correlation".into()
    }

    fn channels(&self, inputs: &[usize]) -> Result<usize> {
        match inputs {
            [a, b] if a == b => Ok(self.spec.displacements()),
            _ => Err(err(format!("takes two inputs with the same channels, got {inputs:?}"))),
        }
    }

    fn shape(&self, inputs: &[[usize; 4]]) -> Result<[usize; 4]> {
        if inputs[0] != inputs[1] {
            return Err(err(format!("inputs differ: {:?} vs {:?}", inputs[0], inputs[1])));
        }
        let [n, _, h, w] = inputs[0];
        let (oh, ow) = self.spec.output_size(h, w)?;
        Ok([n, self.spec.displacements(), oh, ow])
    }

    /// One multiply-add per channel, patch tap and displacement of every output position.
    fn flops(&self, inputs: &[[usize; 4]], output: [usize; 4]) -> f64 {
        let [n, d, oh, ow] = output;
        let taps = (self.spec.kernel_size * self.spec.kernel_size) as f64;
        2.0 * (n * oh * ow) as f64 * inputs[0][1] as f64 * d as f64 * taps
    }

    fn forward(&self, rec: &mut Recorder<'_>, io: &GpuForward<'_>) -> Result<()> {
        let (a, b) = (whole(io.inputs[0], "input a")?, whole(io.inputs[1], "input b")?);
        if io.algo == ConvAlgo::Direct {
            correlation_forward_naive(rec, a, b, self.spec, io.output, self.leaky)
        } else {
            correlation_forward(rec, a, b, self.spec, io.output, self.leaky)
        }
    }

    /// The kernels overwrite both input gradients, so they must be the first written (the correlation's
    /// inputs' other consumers were added to the graph before it: the reverse walk reaches it first).
    fn backward(&self, rec: &mut Recorder<'_>, io: &GpuBackward<'_>) -> Result<()> {
        let (a, b) = (whole(io.inputs[0], "input a")?, whole(io.inputs[1], "input b")?);
        if let Some(slope) = self.leaky {
            leaky_relu_backward(rec, io.output_tensor, io.d_output, slope)?;
        }
        let ctx = rec.context();
        // The gradient of the output as a tensor of its own (copied out of a concatenation's gradient).
        let g = match whole(io.d_output, "gradient") {
            Ok(t) => t.clone(),
            Err(_) => {
                let d = io.d_output;
                let t = ctx.tensor("correlation gradient", [d.batch(), d.channels, d.height(), d.width()])?;
                crop(rec, d, 0, 0, t.slice_all())?;
                t
            }
        };
        let mut targets = Vec::with_capacity(2);
        for (i, what) in [(0, "input a"), (1, "input b")] {
            targets.push(match io.d_inputs[i] {
                Some(d) if io.fresh[i] => whole(d, what)?.clone(),
                Some(_) => {
                    return Err(err(format!(
                        "the gradient of {what} already has contributions, but the correlation kernels overwrite it: add the correlation to the graph after the other consumers of its inputs"
                    )))
                }
                None => ctx.tensor("correlation gradient (unused)", a.shape())?,
            });
        }
        if targets[0].buffer() == targets[1].buffer() {
            return Err(err("the correlation of an activation with itself has no GPU backward"));
        }
        correlation_backward(rec, a, b, &g, self.spec, &targets[0], &targets[1])
    }

    fn forward_cpu(&self, io: &CpuForward<'_>) -> Result<Tensor64> {
        let (a, b) = (io.inputs[0], io.inputs[1]);
        let data = correlation_cpu_f64(a.shape, &a.data, &b.data, self.spec)?;
        Ok(leaky_relu_f64(Tensor64::new(io.output_shape, data)?, self.leaky))
    }

    fn backward_cpu(&self, io: &CpuBackward<'_>) -> Result<CpuGrads> {
        let (a, b) = (io.inputs[0], io.inputs[1]);
        let g = match self.leaky {
            Some(slope) => leaky_relu_backward_f64(io.output, io.d_output, slope as f64),
            None => io.d_output.clone(),
        };
        let (ga, gb) = correlation_backward_cpu_f64(a.shape, &a.data, &b.data, &g.data, self.spec)?;
        Ok(CpuGrads {
            d_inputs: vec![Some(Tensor64::new(a.shape, ga)?), Some(Tensor64::new(b.shape, gb)?)],
            ..Default::default()
        })
    }
}
