//! The convolution forward ([`conv_forward`]): checks the shapes, then records the kernels
//! [`super::select`] chooses (direct, tiled or Winograd), which fuse bias and LeakyReLU and read and write
//! channel slices.

use super::algo::ConvAlgo;
use super::desc::TiledConv;
use super::weights::ConvWeights;
use super::{direct, select};
use crate::error::{Error, Result};
use crate::ops::Slice;
use crate::reference::conv::ConvSpec;
use crate::runtime::Recorder;

/// Records a conv2d (or conv_transpose2d when the weights are transposed) from the channel slice `x` into
/// the channel slice `out`. `out`'s height/width must equal the conv output size; for a transposed conv
/// they may be smaller (top-left crop, FlowNet's `crop_like`).
pub fn conv_forward(
    rec: &mut Recorder<'_>,
    x: Slice<'_>,
    w: &ConvWeights,
    spec: ConvSpec,
    out: Slice<'_>,
) -> Result<()> {
    let op = if w.transposed { "conv_transpose2d" } else { "conv2d" };
    if spec.stride == 0 {
        return Err(Error::InvalidParam { op, message: "stride must be >= 1".into() });
    }
    if x.channels != w.cin {
        return Err(Error::Shape {
            op,
            message: format!("input has {} channels, weights expect {}", x.channels, w.cin),
        });
    }
    if out.channels != w.cout {
        return Err(Error::Shape {
            op,
            message: format!("output slice has {} channels, weights give {}", out.channels, w.cout),
        });
    }
    if x.batch() != out.batch() {
        return Err(Error::Shape {
            op,
            message: format!("input batch {} but output batch {}", x.batch(), out.batch()),
        });
    }
    let (oh, ow) = (out.height(), out.width());
    if w.transposed {
        let full = (spec.transposed_out(x.height(), w.kh), spec.transposed_out(x.width(), w.kw));
        match full {
            (Some(fh), Some(fw)) if oh <= fh && ow <= fw => {}
            _ => {
                return Err(Error::Shape {
                    op,
                    message: format!(
                        "output {oh}x{ow} larger than the transposed conv's {full:?} for input {}x{}",
                        x.height(),
                        x.width()
                    ),
                })
            }
        }
    } else {
        let want = (spec.conv_out(x.height(), w.kh), spec.conv_out(x.width(), w.kw));
        if want != (Some(oh), Some(ow)) {
            return Err(Error::Shape {
                op,
                message: format!(
                    "output is {oh}x{ow}, but a {}x{} kernel (stride {}, pad {}) on {}x{} gives {want:?}",
                    w.kh,
                    w.kw,
                    spec.stride,
                    spec.pad,
                    x.height(),
                    x.width()
                ),
            });
        }
    }
    let algo = w.effective_algo(rec.context());
    if algo == ConvAlgo::Direct {
        return direct::record(rec, x, w, spec, out);
    }
    let (tile, winograd) = select::tiled_choice(rec.context(), algo);
    let conv = TiledConv {
        bias: w.bias().map(|b| b.buffer()),
        leaky: spec.leaky,
        winograd,
        ..w.tiled(op, w.geometry(), x, spec, out)
    };
    select::record(rec, &conv, tile)
}

/// Multiply-adds x 2 that [`conv_forward`] performs for these shapes, counting only real taps (for a
/// transposed conv, the products with input values; both algorithms are credited with the same FLOPs).
pub fn conv_flops(x: Slice<'_>, w: &ConvWeights, spec: ConvSpec, out: Slice<'_>) -> f64 {
    w.tiled("conv_flops", w.geometry(), x, ConvSpec { stride: spec.stride.max(1), ..spec }, out).flops()
}
