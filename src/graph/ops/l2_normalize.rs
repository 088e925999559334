//! L2 normalisation over channels: `y = x / sqrt(|x|^2 + eps)` at every pixel, so a descriptor network's
//! output is unit descriptors on its grid. GPU: [`crate::ops::metric::l2_normalize`] (and its backward);
//! CPU: [`crate::reference::metric::normalize`].

use crate::error::{Error, Result};
use crate::graph::{Act, CpuBackward, CpuForward, CpuGrads, GpuBackward, GpuForward, GraphBuilder, Op};
use crate::host::Tensor64;
use crate::ops::metric::{l2_normalize, l2_normalize_backward, L2_NORM_EPS};
use crate::ops::Slice;
use crate::reference::metric::normalize::{l2_normalize_backward_f64, l2_normalize_f64};
use crate::runtime::{Recorder, Tensor};

/// L2 normalisation of input 0 over its channels, with `eps` added to the squared norm.
#[derive(Clone, Debug)]
pub struct L2NormalizeOp {
    eps: f32,
}

impl GraphBuilder {
    /// `x / sqrt(|x|^2 + eps)` over channels at every pixel of `x`, with eps = [`L2_NORM_EPS`]: unit
    /// vectors (a descriptor map's output).
    pub fn l2_normalize(&mut self, x: Act) -> Act {
        self.add(L2NormalizeOp { eps: L2_NORM_EPS }, &[x])
    }
}

fn err(message: impl Into<String>) -> Error {
    Error::Shape { op: "graph l2_normalize", message: message.into() }
}

/// The whole tensor behind a slice: the kernels read and write whole `[N, D, H, W]` tensors.
fn whole<'a>(s: Slice<'a>, what: &str) -> Result<&'a Tensor> {
    if s.c_offset == 0 && s.channels == s.total_channels() {
        Ok(s.tensor)
    } else {
        Err(err(format!(
            "{what} is part of a concatenation; the L2 normalisation kernels read and write whole tensors"
        )))
    }
}

impl Op for L2NormalizeOp {
    fn label(&self) -> String {
        "l2_normalize".into()
    }

    fn channels(&self, inputs: &[usize]) -> Result<usize> {
        match inputs {
            [c] if *c > 0 => Ok(*c),
            _ => Err(err(format!("takes one input with at least one channel, got {inputs:?}"))),
        }
    }

    fn shape(&self, inputs: &[[usize; 4]]) -> Result<[usize; 4]> {
        Ok(inputs[0])
    }

    /// A multiply-add per element for the norm and a division per element (counted as one FLOP).
    fn flops(&self, inputs: &[[usize; 4]], _output: [usize; 4]) -> f64 {
        3.0 * inputs[0].iter().product::<usize>() as f64
    }

    fn forward(&self, rec: &mut Recorder<'_>, io: &GpuForward<'_>) -> Result<()> {
        l2_normalize(rec, whole(io.inputs[0], "the input")?, whole(io.output, "the output")?, self.eps)
    }

    /// The kernel overwrites the input's gradient, so the normalisation must be the first to write it (the
    /// only reader of its input, as after a descriptor head).
    fn backward(&self, rec: &mut Recorder<'_>, io: &GpuBackward<'_>) -> Result<()> {
        let Some(dx) = io.d_inputs[0] else { return Ok(()) };
        if !io.fresh[0] {
            return Err(err(
                "the input's gradient already has contributions, but the kernel overwrites it: normalise an activation that nothing else reads",
            ));
        }
        let x = whole(io.inputs[0], "the input")?;
        l2_normalize_backward(
            rec,
            x,
            whole(io.d_output, "the output gradient")?,
            whole(dx, "the input gradient")?,
            self.eps,
        )
    }

    fn forward_cpu(&self, io: &CpuForward<'_>) -> Result<Tensor64> {
        Ok(l2_normalize_f64(io.inputs[0], self.eps as f64))
    }

    fn backward_cpu(&self, io: &CpuBackward<'_>) -> Result<CpuGrads> {
        let dx = l2_normalize_backward_f64(io.inputs[0], io.d_output, self.eps as f64);
        Ok(CpuGrads { d_inputs: vec![Some(dx)], ..Default::default() })
    }
}
