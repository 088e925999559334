//! Flow between two images of any size: frames are normalised as FLOWNET.md says, resized to the next
//! multiple of 64, run through the network, and flow2 is upsampled (bilinear, align_corners = false) back
//! to the frames' size with u, v rescaled to the original pixel grid.
//!
//! With several [`FlowNet::passes`], each further pass warps frame B by the flow so far (bilinear, at the
//! frames' size, `ops::resize::warp_bilinear`) and adds the flow the same network finds between frame A and
//! the warped B: the residual motion is small, where the network is most accurate (the stacking of FlowNet
//! 2.0, Ilg et al. 2017, §4, with one network run again rather than several trained in sequence). Each pass
//! has its input scale: a first pass at half size sees large motions halved (coarse to fine).

use std::path::Path;
use std::time::{Duration, Instant};

use super::flownet::{FlowNet, Variant, DIV_FLOW, RGB_MEAN, SIZE_MULTIPLE};
use crate::error::{Error, Result};
use crate::flow::Flow;
use crate::ops::resize::{resize_bilinear, resize_bilinear_into, warp_bilinear};
use crate::runtime::{Context, HostTensor, Tensor};

pub use crate::io::decode_frame;

/// Reads an image file (PNG, JPEG, PPM, BMP; RGB, RGBA, grey, 8 or 16 bit): a regular file of at most
/// 1 GiB, decoded by [`decode_frame`] within its limits (32768 px per side, 1 GiB decoded, and no more than
/// the file's length can hold).
pub fn load_frame(path: impl AsRef<Path>) -> Result<image::DynamicImage> {
    crate::io::read_frame(path)
}

/// The flow and how long each stage took.
#[derive(Clone, Debug)]
pub struct EstimateReport {
    pub flow: Flow,
    /// (stage, wall time) in order: prepare (normalise + upload + resize), network (every pass, with the
    /// warps and the flow's upsampling), readback.
    pub stages: Vec<(&'static str, Duration)>,
    /// The size the network ran at (multiples of 64; the largest of the passes').
    pub network_size: (usize, usize),
}

/// Next multiple of 64, at least 64.
fn network_side(n: usize) -> usize {
    n.div_ceil(SIZE_MULTIPLE).max(1) * SIZE_MULTIPLE
}

/// RGB in [0, 1] minus the per-channel mean, as a [1, 3, H, W] host tensor.
pub(crate) fn normalise(img: &image::DynamicImage) -> HostTensor {
    let rgb = img.to_rgb32f();
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    let mut t = HostTensor::zeros([1, 3, h, w]);
    for (x, y, p) in rgb.enumerate_pixels() {
        for (c, (value, mean)) in p.0.iter().zip(RGB_MEAN).enumerate() {
            let i = t.idx(0, c, y as usize, x as usize);
            t.data[i] = value - mean;
        }
    }
    t
}

impl FlowNet {
    /// Optical flow from `frame_a` to `frame_b` (same size, any size >= 1x1), in pixels at full resolution.
    pub fn estimate(
        &self,
        ctx: &Context,
        frame_a: &image::DynamicImage,
        frame_b: &image::DynamicImage,
    ) -> Result<Flow> {
        Ok(self.estimate_report(ctx, frame_a, frame_b)?.flow)
    }

    /// [`FlowNet::estimate`] with per-stage timings.
    pub fn estimate_report(
        &self,
        ctx: &Context,
        frame_a: &image::DynamicImage,
        frame_b: &image::DynamicImage,
    ) -> Result<EstimateReport> {
        let (w, h) = (frame_a.width() as usize, frame_a.height() as usize);
        if (frame_b.width() as usize, frame_b.height() as usize) != (w, h) {
            return Err(Error::Mismatch {
                message: format!(
                    "frames differ in size: {}x{} and {}x{}; pass two frames of the same video",
                    w,
                    h,
                    frame_b.width(),
                    frame_b.height()
                ),
            });
        }
        if w == 0 || h == 0 {
            return Err(Error::Mismatch { message: "a frame is empty (0 pixels)".into() });
        }
        // The network's input size of each pass: the frames scaled by the pass's scale, rounded up to the
        // network's multiple.
        let sizes: Vec<(usize, usize)> = self
            .passes()
            .scales()
            .iter()
            .map(|&s| {
                let side = |n: usize| network_side(((n as f64 * s as f64).round() as usize).max(1));
                (side(h), side(w))
            })
            .collect();
        let (nh, nw) = sizes.iter().fold((0, 0), |m, &(a, b)| (m.0.max(a), m.1.max(b)));
        let hint = |e: Error| {
            match e {
            Error::TooLarge { name, shape, bytes, limit, adapter, .. } => Error::TooLarge {
                name,
                shape,
                bytes,
                limit,
                adapter,
                hint: format!("; the frames are {w}x{h} (network input {nw}x{nh}): downscale them (e.g. to half size) or use a GPU with larger storage buffers"),
            },
            e => e,
        }
        };
        // Checked before the frames are converted to f32 on the host (12 bytes a pixel), so a frame too large
        // for the adapter fails at once instead of after a large allocation.
        for (name, shape) in [("frame_a", [1, 3, h, w]), ("frame_a", [1, 3, nh, nw]), ("flow", [1, 2, h, w])] {
            ctx.check_fits(name, shape).map_err(hint)?;
        }
        let t0 = Instant::now();
        let a_full = ctx.upload("frame_a", &normalise(frame_a)).map_err(hint)?;
        let b_full = ctx.upload("frame_b", &normalise(frame_b)).map_err(hint)?;
        // A frame at a pass's input size (a resized copy unless the frames already have it).
        let resized = |t: &Tensor, name: &str, (ph, pw): (usize, usize)| -> Result<Tensor> {
            if (ph, pw) == (h, w) {
                return Ok(t.clone());
            }
            let r = ctx.tensor(name, [1, 3, ph, pw])?;
            let mut rec = ctx.recorder("resize frames");
            resize_bilinear(&mut rec, t, &r, 1.0)?;
            rec.submit()?;
            Ok(r)
        };
        // The network's inputs for frames `a` and `b` (FlowNetS: stacked along channels, 6 channels).
        let inputs = |a: Tensor, b: Tensor, (ph, pw): (usize, usize)| -> Result<(Tensor, Option<Tensor>)> {
            match self.arch().variant {
                Variant::C => Ok((a, Some(b))),
                Variant::S => {
                    let ab = ctx.tensor("frames", [1, 6, ph, pw])?;
                    let mut rec = ctx.recorder("stack frames");
                    let bytes = a.bytes();
                    rec.copy(a.buffer(), 0, ab.buffer(), 0, bytes);
                    rec.copy(b.buffer(), 0, ab.buffer(), bytes, bytes);
                    rec.submit()?;
                    Ok((ab, None))
                }
            }
        };
        ctx.wait()?;
        let t1 = Instant::now();
        // Full-resolution flow (in the frames' pixels) = bilinear upsample of DIV_FLOW * flow2 straight to
        // the frames' size, u and v rescaled from the pass's grid. Each pass after the first warps frame B
        // by the flow so far and adds the flow the network finds between A and the warped B.
        let full = ctx.tensor("flow", [1, 2, h, w]).map_err(hint)?;
        let warped =
            if sizes.len() > 1 { Some(ctx.tensor("frame_b_warped", [1, 3, h, w]).map_err(hint)?) } else { None };
        let mut a_sized: Vec<((usize, usize), Tensor)> = Vec::new();
        for (pass, &(ph, pw)) in sizes.iter().enumerate() {
            let b_pass = match (&warped, pass) {
                (Some(wb), 1..) => {
                    let mut rec = ctx.recorder("warp frame b");
                    warp_bilinear(&mut rec, &b_full, &full, wb, (1.0, 1.0))?;
                    rec.submit()?;
                    wb
                }
                _ => &b_full,
            };
            // Frame A at this size: resized once, reused by later passes of the same size.
            let a = match a_sized.iter().find(|(size, _)| *size == (ph, pw)) {
                Some((_, t)) => t.clone(),
                None => {
                    let t = resized(&a_full, "frame_a", (ph, pw)).map_err(hint)?;
                    a_sized.push(((ph, pw), t.clone()));
                    t
                }
            };
            let b = resized(b_pass, "frame_b", (ph, pw)).map_err(hint)?;
            let (input_a, input_b) = inputs(a, b, (ph, pw)).map_err(hint)?;
            let pyramid = self.forward(ctx, &input_a, input_b.as_ref()).map_err(hint)?;
            let scale = (DIV_FLOW * w as f32 / pw as f32, DIV_FLOW * h as f32 / ph as f32);
            let mut rec = ctx.recorder("upsample flow");
            resize_bilinear_into(&mut rec, &pyramid.flow2, &full, scale, pass > 0)?;
            rec.submit()?;
        }
        ctx.wait()?;
        let t2 = Instant::now();
        let flow = Flow::from_planes(w, h, &ctx.download(&full)?.data)?;
        let t3 = Instant::now();
        Ok(EstimateReport {
            flow,
            stages: vec![("prepare", t1 - t0), ("network", t2 - t1), ("readback", t3 - t2)],
            network_size: (nw, nh),
        })
    }
}
