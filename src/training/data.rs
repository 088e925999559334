//! Training batches: synthetic FlyingChairs-style pairs made on the fly ([`crate::data::synthetic`]), or
//! a folder of frame pairs with `.flo` ground truth (FlyingChairs' `NNNNN-img0.ppm, -img1.ppm, -gt.flo`,
//! or `NNNNN_img1.png, _img2.png, _flow.flo` as `synthetic::write_sample` writes them), randomly cropped.

use std::path::{Path, PathBuf};

use super::trainer::TrainBatch;
use crate::data::synthetic::{generate, SyntheticConfig};
use crate::data::Rng;
use crate::error::{Error, Result};
use crate::models::estimate::normalise;
use crate::models::load_frame;
use crate::runtime::HostTensor;

/// One sample on disk.
#[derive(Clone, Debug, PartialEq)]
pub struct SampleFiles {
    pub frame_a: PathBuf,
    pub frame_b: PathBuf,
    pub flow: PathBuf,
}

/// Where samples come from.
#[derive(Clone, Debug)]
pub enum DataSource {
    /// Fresh synthetic pairs at the batch size (the config's width and height are overridden).
    Synthetic(SyntheticConfig),
    Folder(Vec<SampleFiles>),
}

/// Finds `(frame a, frame b, flow)` triples in a folder: every `<prefix>flow.flo` or `<prefix>gt.flo` with
/// `<prefix>img1.* + <prefix>img2.*` or `<prefix>img0.* + <prefix>img1.*` beside it.
pub fn scan_folder(dir: &Path) -> Result<Vec<SampleFiles>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut names: Vec<String> =
        entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().to_string()).collect();
    names.sort();
    let find = |prefix: &str, tag: &str| -> Option<PathBuf> {
        names.iter().find(|n| n.starts_with(&format!("{prefix}{tag}.")) && !n.ends_with(".flo")).map(|n| dir.join(n))
    };
    let mut out = Vec::new();
    for name in &names {
        let Some(stem) = name.strip_suffix(".flo") else { continue };
        let Some(prefix) = stem.strip_suffix("flow").or_else(|| stem.strip_suffix("gt")) else { continue };
        let pair = match (find(prefix, "img1"), find(prefix, "img2"), find(prefix, "img0")) {
            (Some(a), Some(b), _) => Some((a, b)),
            (Some(b), None, Some(a)) => Some((a, b)),
            _ => None,
        };
        if let Some((frame_a, frame_b)) = pair {
            out.push(SampleFiles { frame_a, frame_b, flow: dir.join(name) });
        }
    }
    if out.is_empty() {
        return Err(Error::format(dir, "no training samples found: expected <prefix>img1.* + <prefix>img2.* + <prefix>flow.flo (or FlyingChairs' -img0/-img1/-gt.flo)"));
    }
    Ok(out)
}

/// Makes batches of `batch` samples at `height` x `width` (multiples of 64).
pub struct Loader {
    source: DataSource,
    batch: usize,
    height: usize,
    width: usize,
    rng: Rng,
    next_seed: u64,
}

impl Loader {
    pub fn new(source: DataSource, batch: usize, height: usize, width: usize, seed: u64) -> Result<Self> {
        if batch == 0 || height == 0 || width == 0 || !height.is_multiple_of(64) || !width.is_multiple_of(64) {
            return Err(Error::InvalidParam {
                op: "train data",
                message: format!(
                    "batch {batch} at {width}x{height}: need a batch >= 1 and sides that are multiples of 64"
                ),
            });
        }
        if let DataSource::Synthetic(cfg) = &source {
            SyntheticConfig { width, height, ..cfg.clone() }.validate()?;
        }
        Ok(Loader { source, batch, height, width, rng: Rng::new(seed), next_seed: seed.wrapping_mul(1_000_003) })
    }

    /// The next batch (synthetic: new scenes every call; folder: random samples and crops).
    pub fn next_batch(&mut self) -> Result<TrainBatch> {
        let (n, h, w) = (self.batch, self.height, self.width);
        let mut batch = TrainBatch {
            frame_a: HostTensor::zeros([n, 3, h, w]),
            frame_b: HostTensor::zeros([n, 3, h, w]),
            flow: HostTensor::zeros([n, 2, h, w]),
        };
        for i in 0..n {
            let (a, b, planes) = self.sample()?;
            let frame = 3 * h * w;
            batch.frame_a.data[i * frame..(i + 1) * frame].copy_from_slice(&a.data);
            batch.frame_b.data[i * frame..(i + 1) * frame].copy_from_slice(&b.data);
            batch.flow.data[i * 2 * h * w..(i + 1) * 2 * h * w].copy_from_slice(&planes);
        }
        Ok(batch)
    }

    /// One sample: normalised frames [1, 3, h, w] and flow planes [2 h w].
    fn sample(&mut self) -> Result<(HostTensor, HostTensor, Vec<f32>)> {
        let (h, w) = (self.height, self.width);
        match &self.source {
            DataSource::Synthetic(cfg) => {
                let cfg = SyntheticConfig { width: w, height: h, ..cfg.clone() };
                let seed = self.next_seed;
                self.next_seed = self.next_seed.wrapping_add(1);
                let pair = generate(&cfg, seed)?;
                let a = normalise(&image::DynamicImage::ImageRgb8(pair.frame_a));
                let b = normalise(&image::DynamicImage::ImageRgb8(pair.frame_b));
                Ok((a, b, pair.flow.to_planes()))
            }
            DataSource::Folder(samples) => {
                let pick = (self.rng.next_u64() % samples.len() as u64) as usize;
                let s = &samples[pick];
                let fa = load_frame(&s.frame_a)?;
                let fb = load_frame(&s.frame_b)?;
                let flow = crate::io::read_flo(&s.flow)?;
                let (fw, fh) = (fa.width() as usize, fa.height() as usize);
                if (fb.width() as usize, fb.height() as usize) != (fw, fh) || (flow.width, flow.height) != (fw, fh) {
                    return Err(Error::Mismatch {
                        message: format!("{}: frames and flow differ in size", s.flow.display()),
                    });
                }
                if fw < w || fh < h {
                    return Err(Error::Mismatch {
                        message: format!(
                            "{}: sample is {fw}x{fh}, smaller than the training crop {w}x{h}; use a smaller --size",
                            s.frame_a.display()
                        ),
                    });
                }
                let x0 = (self.rng.next_u64() % (fw - w + 1) as u64) as u32;
                let y0 = (self.rng.next_u64() % (fh - h + 1) as u64) as u32;
                let crop = |img: &image::DynamicImage| normalise(&img.crop_imm(x0, y0, w as u32, h as u32));
                let mut planes = vec![0.0f32; 2 * h * w];
                for y in 0..h {
                    for x in 0..w {
                        let (u, v) = flow.get(x + x0 as usize, y + y0 as usize);
                        // Unknown flow (> 1e9) would dominate the loss: train on zero there.
                        let ok = crate::flow::is_valid_flow(u, v);
                        planes[y * w + x] = if ok { u } else { 0.0 };
                        planes[h * w + y * w + x] = if ok { v } else { 0.0 };
                    }
                }
                Ok((crop(&fa), crop(&fb), planes))
            }
        }
    }
}
