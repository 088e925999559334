//! The backward pass of FlowNet, layer by layer in reverse, over the activations of the forward pass.
//!
//! Every activation X has a gradient buffer gX of the same shape (a second [`Activations`]); all of them
//! are zeroed at the start of the pass and every contribution is added (`+=`), so a tensor read by several
//! layers (each `cat_k` feeds predict_flow_k and deconv_{k-1}, its first slice also conv_{k+1}) simply
//! collects all of them. A gradient is consumed only after its last contribution: the decoder is walked from
//! the finest level to the coarsest, then the encoder top-down. Layers with a fused LeakyReLU first turn the
//! activation gradient into the pre-activation one in place (`conv_backward` does this from the forward
//! output). Parameter gradients accumulate (`+=`), so the Siamese tower's shared weights collect both
//! frames' contributions.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::models::flownet::{Activations, FlowNet, Variant, LEAKY_SLOPE};
use crate::ops::conv::{conv_backward, ConvGrads};
use crate::ops::correlation::correlation_backward;
use crate::ops::elementwise::{crop, leaky_relu_backward};
use crate::ops::Slice;
use crate::runtime::{Recorder, Tensor};

fn all(t: &Tensor) -> Slice<'_> {
    t.slice_all()
}

fn sl(t: &Tensor, offset: usize, channels: usize) -> Result<Slice<'_>> {
    t.slice(offset, channels)
}

/// Records the backward pass. `g` holds the activation gradients, whose `flow2` .. `flow6` must already
/// hold the loss gradients (written after the zeroing); `param_grads` maps layer names to their gradients;
/// `corr_grad` is scratch [N, D, H/8, W/8] for FlowNetC's correlation gradient.
pub(crate) fn record_backward(
    net: &FlowNet,
    rec: &mut Recorder<'_>,
    acts: &Activations,
    g: &Activations,
    param_grads: &HashMap<String, ConvGrads>,
    corr_grad: Option<&Tensor>,
) -> Result<()> {
    let wd = net.arch().widths();
    let a = |name: &str| acts.get(name);
    let ga = |name: &str| g.get(name);
    // One layer: input slice x, the layer's forward output tensor y (for its LeakyReLU), the gradient slice
    // of its output dy, and where its input gradient goes (None for the network input).
    let layer = |rec: &mut Recorder<'_>,
                 name: &str,
                 x: Slice<'_>,
                 y: &Tensor,
                 dy: Slice<'_>,
                 dx: Option<Slice<'_>>|
     -> Result<()> {
        let (def, w) = net.layer(name)?;
        let grads = param_grads.get(name).ok_or_else(|| Error::InvalidParam {
            op: "flownet backward",
            message: format!("no gradients for layer `{name}`"),
        })?;
        rec.mark(&format!("{name} backward"));
        conv_backward(rec, x, Some(y), dy, w, def.spec(), grads, dx, true)
    };

    // Decoder, finest level first: cat_k = [c_k | d_k | up_{k+1}] of widths (ck, dk, 2).
    let levels = [(2, wd.c2, wd.d2), (3, wd.c3, wd.d3), (4, wd.c4, wd.d4), (5, wd.c5, wd.d5)];
    for (k, ck, dk) in levels {
        let cat = a(&format!("cat{k}"))?;
        let gcat = ga(&format!("cat{k}"))?;
        let flow = a(&format!("flow{k}"))?;
        let gflow = ga(&format!("flow{k}"))?;
        // flow_k = predict_flow_k(cat_k): its gradient is complete (loss + upflow_k_to_{k-1}).
        layer(rec, &format!("predict_flow{k}"), all(cat), flow, all(gflow), Some(all(gcat)))?;
        // up slice: upsampled_flow{k+1}_to_{k}(flow_{k+1}); every consumer of cat_k has contributed.
        let coarser = a(&format!("flow{}", k + 1))?;
        layer(
            rec,
            &format!("upsampled_flow{}_to_{k}", k + 1),
            all(coarser),
            cat,
            sl(gcat, ck + dk, 2)?,
            Some(all(ga(&format!("flow{}", k + 1))?)),
        )?;
        // d slice: LeakyReLU(deconv_k(cat_{k+1} or conv6_1)).
        let (src, gsrc) = if k == 5 {
            (a("conv6_1")?, ga("conv6_1")?)
        } else {
            (a(&format!("cat{}", k + 1))?, ga(&format!("cat{}", k + 1))?)
        };
        layer(rec, &format!("deconv{k}"), all(src), cat, sl(gcat, ck, dk)?, Some(all(gsrc)))?;
    }
    let (c6, gc6) = (a("conv6_1")?, ga("conv6_1")?);
    layer(rec, "predict_flow6", all(c6), a("flow6")?, all(ga("flow6")?), Some(all(gc6)))?;

    // Encoder, top-down. conv{k}_1 writes c_k into cat_k; conv{k+1} reads it back.
    layer(rec, "conv6_1", all(a("conv6")?), c6, all(gc6), Some(all(ga("conv6")?)))?;
    layer(rec, "conv6", sl(a("cat5")?, 0, wd.c5)?, a("conv6")?, all(ga("conv6")?), Some(sl(ga("cat5")?, 0, wd.c5)?))?;
    layer(rec, "conv5_1", all(a("conv5")?), a("cat5")?, sl(ga("cat5")?, 0, wd.c5)?, Some(all(ga("conv5")?)))?;
    layer(rec, "conv5", sl(a("cat4")?, 0, wd.c4)?, a("conv5")?, all(ga("conv5")?), Some(sl(ga("cat4")?, 0, wd.c4)?))?;
    layer(rec, "conv4_1", all(a("conv4")?), a("cat4")?, sl(ga("cat4")?, 0, wd.c4)?, Some(all(ga("conv4")?)))?;
    layer(rec, "conv4", sl(a("cat3")?, 0, wd.c3)?, a("conv4")?, all(ga("conv4")?), Some(sl(ga("cat3")?, 0, wd.c3)?))?;
    let (cat2, gcat2) = (a("cat2")?, ga("cat2")?);
    match net.arch().variant {
        Variant::S => {
            layer(rec, "conv3_1", all(a("conv3")?), a("cat3")?, sl(ga("cat3")?, 0, wd.c3)?, Some(all(ga("conv3")?)))?;
            layer(rec, "conv3", sl(cat2, 0, wd.c2)?, a("conv3")?, all(ga("conv3")?), Some(sl(gcat2, 0, wd.c2)?))?;
            layer(rec, "conv2", all(a("conv1")?), cat2, sl(gcat2, 0, wd.c2)?, Some(all(ga("conv1")?)))?;
            layer(rec, "conv1", all(a("input")?), a("conv1")?, all(ga("conv1")?), None)?;
        }
        Variant::C => {
            let corr = net.arch().correlation();
            let (catr, gcatr) = (a("cat_redir_corr")?, ga("cat_redir_corr")?);
            layer(rec, "conv3_1", all(catr), a("cat3")?, sl(ga("cat3")?, 0, wd.c3)?, Some(all(gcatr)))?;
            // Correlation (LeakyReLU fused in the forward): pre-activation gradient, copied out of its slice,
            // then the gradients of both towers' conv3 outputs (overwritten, so before conv_redir adds).
            let gcorr = corr_grad.ok_or(Error::InvalidParam {
                op: "flownet backward",
                message: "FlowNetC needs the correlation scratch".into(),
            })?;
            let gslice = sl(gcatr, wd.redir, corr.displacements())?;
            rec.mark("correlation backward");
            leaky_relu_backward(rec, catr, gslice, LEAKY_SLOPE)?;
            crop(rec, gslice, 0, 0, gcorr.slice_all())?;
            correlation_backward(rec, a("conv3")?, a("conv3_b")?, gcorr, corr, ga("conv3")?, ga("conv3_b")?)?;
            layer(rec, "conv_redir", all(a("conv3")?), catr, sl(gcatr, 0, wd.redir)?, Some(all(ga("conv3")?)))?;
            // The Siamese tower, both frames through the same weights (their gradients add up).
            layer(rec, "conv3", sl(cat2, 0, wd.c2)?, a("conv3")?, all(ga("conv3")?), Some(sl(gcat2, 0, wd.c2)?))?;
            layer(rec, "conv3", all(a("conv2_b")?), a("conv3_b")?, all(ga("conv3_b")?), Some(all(ga("conv2_b")?)))?;
            layer(rec, "conv2", all(a("conv1")?), cat2, sl(gcat2, 0, wd.c2)?, Some(all(ga("conv1")?)))?;
            layer(rec, "conv2", all(a("conv1_b")?), a("conv2_b")?, all(ga("conv2_b")?), Some(all(ga("conv1_b")?)))?;
            layer(rec, "conv1", all(a("input")?), a("conv1")?, all(ga("conv1")?), None)?;
            layer(rec, "conv1", all(a("input_b")?), a("conv1_b")?, all(ga("conv1_b")?), None)?;
        }
    }
    Ok(())
}
