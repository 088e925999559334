//! Flow between two images of any size: frames are normalised as FLOWNET.md says, resized to the next
//! multiple of 64, run through the network, and flow2 is upsampled (bilinear, align_corners = false) back
//! to the frames' size with u, v rescaled to the original pixel grid.

use std::path::Path;
use std::time::{Duration, Instant};

use super::flownet::{FlowNet, Variant, DIV_FLOW, RGB_MEAN, SIZE_MULTIPLE};
use crate::error::{Error, Result};
use crate::flow::Flow;
use crate::ops::resize::resize_bilinear;
use crate::runtime::{Context, HostTensor, Tensor};

/// Reads an image file (PNG, JPEG, PPM, BMP; RGB, RGBA, grey, 8 or 16 bit).
pub fn load_frame(path: impl AsRef<Path>) -> Result<image::DynamicImage> {
    let path = path.as_ref();
    let reader = image::ImageReader::open(path).map_err(|e| Error::io(path, e))?;
    let reader = reader.with_guessed_format().map_err(|e| Error::io(path, e))?;
    reader
        .decode()
        .map_err(|e| Error::Image { path: path.to_path_buf(), message: format!("cannot decode as an image: {e}") })
}

/// The flow and how long each stage took.
#[derive(Clone, Debug)]
pub struct EstimateReport {
    pub flow: Flow,
    /// (stage, wall time) in order: prepare (normalise + upload + resize), network, upsample + readback.
    pub stages: Vec<(&'static str, Duration)>,
    /// The size the network ran at (multiples of 64).
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
        for (c, mean) in RGB_MEAN.iter().enumerate() {
            let i = t.idx(0, c, y as usize, x as usize);
            t.data[i] = p.0[c] - mean;
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
        let (nh, nw) = (network_side(h), network_side(w));
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
        let t0 = Instant::now();
        let prep = |img: &image::DynamicImage, name: &str| -> Result<Tensor> {
            let host = normalise(img);
            let t = ctx.upload(name, &host)?;
            if (nh, nw) == (h, w) {
                return Ok(t);
            }
            let r = ctx.tensor(name, [1, 3, nh, nw])?;
            let mut rec = ctx.recorder("resize frames");
            resize_bilinear(&mut rec, &t, &r, 1.0)?;
            rec.submit()?;
            Ok(r)
        };
        let a = prep(frame_a, "frame_a").map_err(hint)?;
        let b = prep(frame_b, "frame_b").map_err(hint)?;
        let (input_a, input_b) = match self.arch().variant {
            Variant::C => (a, Some(b)),
            Variant::S => {
                // FlowNetS takes the frames stacked along channels: [a, b] = 6 channels.
                let ab = ctx.tensor("frames", [1, 6, nh, nw]).map_err(hint)?;
                let mut rec = ctx.recorder("stack frames");
                let bytes = a.bytes();
                rec.copy(a.buffer(), 0, ab.buffer(), 0, bytes);
                rec.copy(b.buffer(), 0, ab.buffer(), bytes, bytes);
                rec.submit()?;
                (ab, None)
            }
        };
        ctx.wait()?;
        let t1 = Instant::now();
        let pyramid = self.forward(ctx, &input_a, input_b.as_ref()).map_err(hint)?;
        let t2 = Instant::now();
        // Full-resolution flow = bilinear upsample of DIV_FLOW * flow2 straight to the frame size.
        let full = ctx.tensor("flow", [1, 2, h, w]).map_err(hint)?;
        let mut rec = ctx.recorder("upsample flow");
        resize_bilinear(&mut rec, &pyramid.flow2, &full, DIV_FLOW)?;
        rec.submit()?;
        let mut planes = ctx.download(&full)?.data;
        // Flow was computed on the nw x nh grid: rescale u and v to the frames' grid.
        let (su, sv) = (w as f32 / nw as f32, h as f32 / nh as f32);
        let plane = w * h;
        if su != 1.0 || sv != 1.0 {
            planes[..plane].iter_mut().for_each(|u| *u *= su);
            planes[plane..].iter_mut().for_each(|v| *v *= sv);
        }
        let flow = Flow::from_planes(w, h, &planes)?;
        let t3 = Instant::now();
        Ok(EstimateReport {
            flow,
            stages: vec![("prepare", t1 - t0), ("network", t2 - t1), ("upsample+readback", t3 - t2)],
            network_size: (nw, nh),
        })
    }
}
