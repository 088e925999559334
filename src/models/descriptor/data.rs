//! Training batches for the descriptor: N image pairs with K exact correspondences each
//! ([`crate::data::correspondence`]), addressed by index like every training stream
//! ([`crate::training::data::sample_seed`]): batch `k` is a pure function of `(config, k)`, so it can be made
//! ahead on a thread ([`descriptor_batches`]) and a resumed run sees exactly the batches an uninterrupted
//! one would.
//!
//! A pair is, by a per-pair draw:
//! - a **homography pair** ([`warp_pair`]): a procedural scene (or a crop of the user's photos) and the same
//!   source seen through a random homography, each image with its own photometric change; or, with
//!   probability `scene_share`,
//! - a **scene pair** ([`scene_pair`]): the synthetic generator's layered scenes, whose objects move on their
//!   own (occlusions, several motions in one pair).
//!
//! Its K points are drawn by [`sample_correspondences`] at least `min_distance_px` apart in both images (so
//! any two distinct points of a batch are negatives of each other); each point pair is one class, labelled
//! `pair * K + point`. A pair with fewer than K correspondences repeats its points cyclically, with their
//! labels (a repeated point is the same class, never a false negative).
//!
//! **Class pools** (ProxyNCA, whose proxies need classes that recur): the pairs come from `sources` fixed
//! procedural scenes, each with `points` fixed points in its image A (drawn once per scene, at least
//! `min_distance_px` apart), seen through a new homography and photometric change every time; class
//! `scene * points + point`. The pool's scenes are disjoint from every stream's pairs and from validation.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use image::RgbImage;

use super::normalise_grey;
use crate::data::correspondence::{
    sample_correspondences, scene_pair, warp_pair, warp_source, CorrespondencePair, PointSampling, SourceImages,
    WarpConfig,
};
use crate::data::synthetic::{Sampler, SyntheticConfig};
use crate::data::Rng;
use crate::error::{Error, Result};
use crate::reference::metric::mining::pcg_hash;
use crate::runtime::HostTensor;
use crate::training::data::{sample_seed, MakeBatch, Prefetcher};

/// One training batch of the descriptor.
#[derive(Clone, Debug, PartialEq)]
pub struct DescBatch {
    /// The images A of the N pairs, then their images B: `[2N, 1, H, W]`, normalised grey
    /// ([`super::normalise_grey`]).
    pub images: HostTensor,
    /// `[2N, K, 2, 1]`: image i's point k as (x, y) pixels; point k of A_n (image n) and of B_n (image N + n)
    /// show one scene point.
    pub points: HostTensor,
    /// The class of point k of pair n, at `n * K + k` (shared by its A and B rows).
    pub labels: Vec<u32>,
    /// The samplers' seed for this batch.
    pub seed: u32,
    /// The descriptor channels the loss sees (`None`: all of them): a learner's slice in the divide phase of
    /// the divide-and-conquer descriptor ([`super::divide`]), re-normalised on its own.
    pub channels: Option<Range<usize>>,
}

impl DescBatch {
    /// Checks the shapes against each other.
    pub fn check(&self) -> Result<()> {
        let [n2, c, h, w] = self.images.shape;
        let [pn, k, two, one] = self.points.shape;
        let ok = n2 > 0
            && n2 % 2 == 0
            && c == 1
            && h.is_multiple_of(super::STRIDE)
            && w.is_multiple_of(super::STRIDE)
            && h > 0
            && w > 0
            && pn == n2
            && k > 0
            && two == 2
            && one == 1
            && self.labels.len() == n2 / 2 * k;
        if !ok {
            return Err(Error::Shape {
                op: "descriptor batch",
                message: format!(
                    "images {:?}, points {:?} and {} labels: need images [2N, 1, H, W] (H, W multiples of 4), points \
                     [2N, K, 2, 1] and N * K labels",
                    self.images.shape,
                    self.points.shape,
                    self.labels.len()
                ),
            });
        }
        Ok(())
    }
}

/// A fixed pool of classes (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassPool {
    /// Source scenes.
    pub sources: usize,
    /// Fixed points per scene.
    pub points: usize,
}

impl ClassPool {
    pub fn classes(&self) -> usize {
        self.sources * self.points
    }
}

/// How descriptor batches are made.
#[derive(Clone, Debug)]
pub struct DescDataConfig {
    /// Pairs per batch (N).
    pub pairs: usize,
    /// Size of every image (multiples of 4).
    pub width: usize,
    pub height: usize,
    /// Correspondences per pair (K).
    pub points: usize,
    /// Points of a pair are at least this far apart in each image, and this far inside both images, pixels.
    pub min_distance_px: f64,
    pub margin_px: f64,
    /// The homographies and photometric changes of homography pairs (its size is replaced by the batch's).
    pub warp: WarpConfig,
    /// Where homography pairs' images come from.
    pub source: SourceImages,
    /// The layered scenes of scene pairs (its size is replaced by the batch's), and their share of the pairs.
    pub scene: SyntheticConfig,
    pub scene_share: f64,
    /// Fixed classes (ProxyNCA) instead of fresh ones.
    pub pool: Option<ClassPool>,
    /// The stream's seed (below 2^23).
    pub seed: u64,
}

impl DescDataConfig {
    /// The defaults of `corrflow train-desc`: 4 pairs of 128 x 128 with 64 points at least 8 px apart and 6 px
    /// inside, [`DescDataConfig::training_warp`], procedural sources, a quarter scene pairs, no pool.
    pub fn new(seed: u64) -> Self {
        DescDataConfig {
            pairs: 4,
            width: 128,
            height: 128,
            points: 64,
            min_distance_px: 8.0,
            margin_px: 6.0,
            warp: Self::training_warp(),
            source: SourceImages::Procedural(SyntheticConfig::default()),
            scene: Self::training_scene(),
            scene_share: 0.25,
            pool: None,
            seed,
        }
    }

    /// Viewpoint and illumination changes wider than [`WarpConfig::default`]'s, closer to real image pairs
    /// of one planar scene (the evaluation pairs have scale changes of 0.6-2.4, anisotropy up to ~2.8 and
    /// strong illumination changes): rotation +-40 degrees, scale 0.4-2.5, shear 0.25, perspective 0.5,
    /// translation 15 %, at least 40 % of B inside A; per image: gains 0.7-1.4, contrast 0.5-2, gamma
    /// 0.5-2, brightness +-0.2, blur in 30 % of images (sigma 0.3-1.5 px), noise sigma up to 0.03.
    pub fn training_warp() -> WarpConfig {
        use crate::data::correspondence::PhotometricConfig;
        WarpConfig {
            width: 128,
            height: 128,
            max_rotation_deg: 40.0,
            scale_range: (0.4, 2.5),
            max_shear: 0.25,
            max_perspective: 0.5,
            max_translation: 0.15,
            min_inside: 0.4,
            photometric: PhotometricConfig {
                gain: (0.7, 1.4),
                contrast: (0.5, 2.0),
                gamma: (0.5, 2.0),
                brightness: 0.2,
                blur_prob: 0.3,
                blur_sigma: (0.3, 1.5),
                noise_std: (0.0, 0.03),
            },
        }
    }

    /// The synthetic scenes of scene pairs: the generator's defaults with FlowNet-like motion (a factor up to
    /// 2 rather than 4, so that most of the scene stays in view at 128 px) and frame B's own brightness,
    /// contrast and noise changes.
    pub fn training_scene() -> SyntheticConfig {
        SyntheticConfig {
            motion_scale: (0.05, 2.0),
            brightness_jitter: 0.1,
            contrast_jitter: 0.3,
            noise_std: 0.02,
            ..SyntheticConfig::default()
        }
    }

    /// The number of classes labels can take: the pool's, or the batch's points.
    pub fn classes(&self) -> usize {
        match self.pool {
            Some(p) => p.classes(),
            None => self.pairs * self.points,
        }
    }

    /// Checks every field (the warp and scene configurations at the batch's size).
    pub fn validate(&self) -> Result<()> {
        let bad = |message: String| Err(Error::InvalidParam { op: "descriptor data", message });
        if self.pairs == 0 || self.points == 0 {
            return bad(format!("{} pairs of {} points: both must be at least 1", self.pairs, self.points));
        }
        if self.width < 16 || self.height < 16 || !self.width.is_multiple_of(4) || !self.height.is_multiple_of(4) {
            return bad(format!("size {}x{}: sides must be multiples of 4, at least 16", self.width, self.height));
        }
        if !(self.scene_share.is_finite() && (0.0..=1.0).contains(&self.scene_share)) {
            return bad(format!("scene share {}: must be in [0, 1]", self.scene_share));
        }
        if !(self.min_distance_px.is_finite() && self.margin_px.is_finite())
            || self.min_distance_px < 0.0
            || self.margin_px < 0.0
            || 2.0 * self.margin_px >= self.width.min(self.height) as f64
        {
            return bad(format!(
                "min distance {} and margin {} px must be finite, >= 0, and leave room inside the images",
                self.min_distance_px, self.margin_px
            ));
        }
        if self.seed >= 1 << 23 {
            return bad(format!("seed {}: must be below 2^23 (8388608)", self.seed));
        }
        if let Some(p) = self.pool {
            if p.sources == 0 || p.points == 0 || p.classes() > 1 << 20 {
                return bad(format!("a pool of {} scenes x {} points: 1 to 2^20 classes", p.sources, p.points));
            }
        }
        self.warp_config().validate()?;
        self.scene_config().validate()
    }

    fn warp_config(&self) -> WarpConfig {
        WarpConfig { width: self.width, height: self.height, ..self.warp.clone() }
    }

    fn scene_config(&self) -> SyntheticConfig {
        SyntheticConfig { width: self.width, height: self.height, ..self.scene.clone() }
    }
}

/// The seed of pool scene `s`: outside every pair's index range ([`sample_seed`] indices below 2^39).
fn pool_seed(seed: u64, s: usize) -> u64 {
    sample_seed(seed, (1 << 39) + s as u64)
}

/// The fixed points of pool scene `s` in its image A: dart throwing, `min_distance_px` apart, inside the
/// margin (at most `20 * points + 100` darts).
fn pool_points(cfg: &DescDataConfig, pool: ClassPool, s: usize) -> Vec<(f64, f64)> {
    let mut rng = Sampler::new(pool_seed(cfg.seed, s) ^ 0x504f_4f4c_5054_5321);
    let (lo, hx, hy) = (cfg.margin_px, cfg.width as f64 - 1.0 - cfg.margin_px, cfg.height as f64 - 1.0 - cfg.margin_px);
    let mut out: Vec<(f64, f64)> = Vec::new();
    for _ in 0..pool.points * 20 + 100 {
        if out.len() == pool.points {
            break;
        }
        let p = (rng.range(lo, hx), rng.range(lo, hy));
        if out.iter().all(|q| (q.0 - p.0).hypot(q.1 - p.1) >= cfg.min_distance_px) {
            out.push(p);
        }
    }
    out
}

/// Rendered pool scenes, shared by the batches of one stream (rendering dominates a pair's cost).
type SourceCache = Mutex<HashMap<usize, Arc<RgbImage>>>;

/// A correspondence with its class: (x_a, y_a, x_b, y_b, class).
type Labelled = (f64, f64, f64, f64, u32);

/// One pair with its points and labels (before padding).
fn make_pair(
    cfg: &DescDataConfig,
    cache: &SourceCache,
    index: u64,
    slot: usize,
) -> Result<(CorrespondencePair, Vec<Labelled>)> {
    let base = sample_seed(cfg.seed, index);
    for attempt in 0..4u64 {
        let id = base ^ (attempt << 56);
        let mut rng = Rng::new(id ^ 0x4445_5343_5041_4952);
        let mut found = Vec::new();
        let pair = if let Some(pool) = cfg.pool {
            let s = (rng.next_u64() % pool.sources as u64) as usize;
            let warp = cfg.warp_config();
            let source = {
                let cached = cache.lock().ok().and_then(|c| c.get(&s).cloned());
                match cached {
                    Some(img) => img,
                    None => {
                        let (sw, sh) = warp.source_size();
                        let img = Arc::new(cfg.source.render(sw, sh, pool_seed(cfg.seed, s))?);
                        if let Ok(mut c) = cache.lock() {
                            c.insert(s, img.clone());
                        }
                        img
                    }
                }
            };
            let pair = warp_source(&source, &warp, id)?;
            let (wb, hb) = (cfg.width as f64, cfg.height as f64);
            for (q, p) in pool_points(cfg, pool, s).into_iter().enumerate() {
                if found.len() == cfg.points {
                    break;
                }
                let Some(b) = pair.correspond(p.0, p.1) else { continue };
                let m = cfg.margin_px;
                if b.0 >= m && b.1 >= m && b.0 <= wb - 1.0 - m && b.1 <= hb - 1.0 - m {
                    found.push((p.0, p.1, b.0, b.1, (s * pool.points + q) as u32));
                }
            }
            pair
        } else {
            let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            let scene = u < cfg.scene_share;
            let pair = if scene {
                scene_pair(&cfg.scene_config(), id)?
            } else {
                warp_pair(&cfg.source, &cfg.warp_config(), id)?
            };
            let sampling =
                PointSampling { count: cfg.points, min_distance_px: cfg.min_distance_px, margin_px: cfg.margin_px };
            for (q, pp) in sample_correspondences(&pair, &sampling, id)?.into_iter().enumerate() {
                found.push((pp.a.0, pp.a.1, pp.b.0, pp.b.1, (slot * cfg.points + q) as u32));
            }
            pair
        };
        if !found.is_empty() {
            return Ok((pair, found));
        }
    }
    Err(Error::Mismatch {
        message: format!("descriptor data: pair {index} of stream {} has no correspondence in 4 draws", cfg.seed),
    })
}

/// Batch `k` of the stream (see the module documentation).
fn make_batch(cfg: &DescDataConfig, cache: &SourceCache, k: u64) -> Result<DescBatch> {
    let (n, kk, w, h) = (cfg.pairs, cfg.points, cfg.width, cfg.height);
    let plane = w * h;
    let mut images = HostTensor::zeros([2 * n, 1, h, w]);
    let mut points = HostTensor::zeros([2 * n, kk, 2, 1]);
    let mut labels = vec![0u32; n * kk];
    for j in 0..n {
        let (pair, found) = make_pair(cfg, cache, k * n as u64 + j as u64, j)?;
        images.data[j * plane..(j + 1) * plane].copy_from_slice(&normalise_grey(&pair.a));
        images.data[(n + j) * plane..(n + j + 1) * plane].copy_from_slice(&normalise_grey(&pair.b));
        for q in 0..kk {
            let (xa, ya, xb, yb, label) = found[q % found.len()];
            points.data[(j * kk + q) * 2] = xa as f32;
            points.data[(j * kk + q) * 2 + 1] = ya as f32;
            points.data[((n + j) * kk + q) * 2] = xb as f32;
            points.data[((n + j) * kk + q) * 2 + 1] = yb as f32;
            labels[j * kk + q] = label;
        }
    }
    let seed = pcg_hash((cfg.seed as u32).wrapping_mul(0x9E37_79B9) ^ pcg_hash(k as u32) ^ ((k >> 32) as u32));
    Ok(DescBatch { images, points, labels, seed, channels: None })
}

/// Batch `k` of the stream of `cfg`, made on the caller's thread (for tests; training uses
/// [`descriptor_batches`]).
pub fn descriptor_batch(cfg: &DescDataConfig, k: u64) -> Result<DescBatch> {
    cfg.validate()?;
    make_batch(cfg, &Mutex::new(HashMap::new()), k)
}

/// The batches `start, start + 1, ...` of the stream of `cfg`, `prefetch` of them made ahead on a thread.
pub fn descriptor_batches(cfg: DescDataConfig, start: u64, prefetch: usize) -> Result<Prefetcher<DescBatch>> {
    cfg.validate()?;
    let cache: SourceCache = Mutex::new(HashMap::new());
    let pairs = cfg.pairs;
    let make: MakeBatch<DescBatch> = Arc::new(move |k| make_batch(&cfg, &cache, k));
    Prefetcher::new(make, pairs, start, prefetch)
}
