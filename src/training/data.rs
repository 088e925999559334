//! Training batches: synthetic pairs made on the fly ([`crate::data::synthetic`]), or a folder of frame
//! pairs with `.flo` ground truth (FlyingChairs' `NNNNN-img0.ppm, -img1.ppm, -gt.flo`, or `NNNNN_img1.png,
//! _img2.png, _flow.flo` as `corrflow gen` writes them), randomly cropped; then FlowNet's augmentation
//! ([`crate::data::augment`]).
//!
//! Samples are addressed by index: sample `i` of a stream with seed `s` is a pure function of `(s, i)` and
//! the configuration, and batch `k` holds samples `k * batch .. (k + 1) * batch`. So a run resumed at step
//! `k` sees exactly the batches an uninterrupted run would have, and the batches can be made ahead of time
//! on a CPU thread ([`Loader`] prefetches while the GPU trains) without changing them.

use std::path::{Path, PathBuf};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::trainer::TrainBatch;
use crate::data::augment::{augment, AugmentConfig, FramePair};
use crate::data::synthetic::{generate, SyntheticConfig};
use crate::data::Rng;
use crate::error::{Error, Result};
use crate::flow::{is_valid_flow, Flow};
use crate::models::flownet::RGB_MEAN;
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

/// Seeds of training samples: `(seed << 40) + index`, so streams of seeds below 2^23 never meet each other
/// or the held-out validation seeds ([`VALIDATION_SEED_BASE`] and up).
pub fn sample_seed(seed: u64, index: u64) -> u64 {
    (seed << 40).wrapping_add(index)
}

/// First seed of the held-out synthetic validation pairs (disjoint from every training stream of a seed
/// below 2^23).
pub const VALIDATION_SEED_BASE: u64 = 0xFFFF_0000_0000_0000;

/// Sample `index` of the stream `seed`, at `width x height`, augmented: a pure function of its arguments.
pub fn make_sample(
    source: &DataSource,
    width: usize,
    height: usize,
    seed: u64,
    index: u64,
    aug: &AugmentConfig,
) -> Result<FramePair> {
    let id = sample_seed(seed, index);
    let pair = match source {
        DataSource::Synthetic(cfg) => {
            let pair = generate(&SyntheticConfig { width, height, ..cfg.clone() }, id)?;
            FramePair::from_rgb8(&pair.frame_a, &pair.frame_b, pair.flow)?
        }
        DataSource::Folder(samples) => {
            let mut rng = Rng::new(id ^ 0x464f_4c44_4552_2121);
            let s = &samples[(rng.next_u64() % samples.len() as u64) as usize];
            let fa = load_frame(&s.frame_a)?;
            let fb = load_frame(&s.frame_b)?;
            let flow = crate::io::read_flo(&s.flow)?;
            let (fw, fh) = (fa.width() as usize, fa.height() as usize);
            if (fb.width() as usize, fb.height() as usize) != (fw, fh) || (flow.width, flow.height) != (fw, fh) {
                return Err(Error::Mismatch {
                    message: format!("{}: frames and flow differ in size", s.flow.display()),
                });
            }
            if fw < width || fh < height {
                return Err(Error::Mismatch {
                    message: format!(
                        "{}: sample is {fw}x{fh}, smaller than the training crop {width}x{height}; use a smaller --size",
                        s.frame_a.display()
                    ),
                });
            }
            let x0 = (rng.next_u64() % (fw - width + 1) as u64) as usize;
            let y0 = (rng.next_u64() % (fh - height + 1) as u64) as usize;
            let crop =
                |img: &image::DynamicImage| img.crop_imm(x0 as u32, y0 as u32, width as u32, height as u32).to_rgb8();
            let mut cropped = Flow::zeros(width, height);
            for y in 0..height {
                for x in 0..width {
                    let (u, v) = flow.get(x + x0, y + y0);
                    cropped.set(x, y, u, v);
                }
            }
            FramePair::from_rgb8(&crop(&fa), &crop(&fb), cropped)?
        }
    };
    augment(&pair, aug, id)
}

/// Stacks samples into a batch: frames normalised as the network expects (RGB minus the mean), flow planes
/// in pixels with unknown flow (> 1e9, NaN) replaced by zero, which would otherwise dominate the loss.
pub fn to_batch(samples: &[FramePair]) -> Result<TrainBatch> {
    let first = samples.first().ok_or(Error::InvalidParam { op: "train data", message: "empty batch".into() })?;
    let (n, h, w) = (samples.len(), first.height, first.width);
    let mut batch = TrainBatch {
        frame_a: HostTensor::zeros([n, 3, h, w]),
        frame_b: HostTensor::zeros([n, 3, h, w]),
        flow: HostTensor::zeros([n, 2, h, w]),
    };
    let plane = h * w;
    for (i, s) in samples.iter().enumerate() {
        if (s.width, s.height) != (w, h) {
            return Err(Error::Shape {
                op: "train data",
                message: format!("sample {i} is {}x{}, not {w}x{h}", s.width, s.height),
            });
        }
        for (c, mean) in RGB_MEAN.iter().enumerate() {
            let dst = (i * 3 + c) * plane;
            let channel = c * plane..(c + 1) * plane;
            for (k, (&a, &b)) in s.frame_a[channel.clone()].iter().zip(&s.frame_b[channel]).enumerate() {
                batch.frame_a.data[dst + k] = a - mean;
                batch.frame_b.data[dst + k] = b - mean;
            }
        }
        for (k, p) in s.flow.data.chunks_exact(2).enumerate() {
            let ok = is_valid_flow(p[0], p[1]);
            batch.flow.data[i * 2 * plane + k] = if ok { p[0] } else { 0.0 };
            batch.flow.data[i * 2 * plane + plane + k] = if ok { p[1] } else { 0.0 };
        }
    }
    Ok(batch)
}

/// How batches are made.
#[derive(Clone, Debug)]
pub struct LoaderOptions {
    pub batch: usize,
    pub height: usize,
    pub width: usize,
    /// The stream's seed (below 2^23, see [`sample_seed`]).
    pub seed: u64,
    pub augment: AugmentConfig,
    /// Index of the first batch (a resumed run starts at its step count).
    pub start_batch: u64,
    /// Batches made ahead on a background thread (0: made on the caller's thread when asked).
    pub prefetch: usize,
}

/// Generator throughput counters shared with the prefetch thread.
#[derive(Default)]
struct GenCounters {
    samples: AtomicU64,
    busy_ns: AtomicU64,
}

/// What makes batch `k` of a stream: a pure function of `k` (and whatever it captured), called from the
/// prefetch thread.
pub type MakeBatch<B> = Arc<dyn Fn(u64) -> Result<B> + Send + Sync>;

/// Batches of any kind made in stream order by a [`MakeBatch`] function, ahead of time on a background
/// thread when `prefetch > 0`: what every model's data loading shares ([`Loader`] for optical flow, the
/// descriptor's pairs with correspondences). Because batch `k` is a pure function of `k`, prefetching never
/// changes the stream, and a resumed run starts at its step count.
pub struct Prefetcher<B> {
    make: MakeBatch<B>,
    samples_per_batch: usize,
    next: u64,
    queue: Option<Receiver<Result<B>>>,
    counters: Arc<GenCounters>,
    waited: Duration,
}

/// Calls `make(k)` and counts its samples and busy time.
fn timed<B>(make: &MakeBatch<B>, k: u64, samples: usize, counters: &GenCounters) -> Result<B> {
    let t = Instant::now();
    let batch = make(k);
    counters.samples.fetch_add(samples as u64, Ordering::Relaxed);
    counters.busy_ns.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
    batch
}

impl<B: Send + 'static> Prefetcher<B> {
    /// Batches `start, start + 1, ...` of `make` (`samples_per_batch` samples each, for the rate), with up to
    /// `prefetch` made ahead on a thread (0: made on the caller's thread when asked). After a failed batch
    /// the thread stops; [`Prefetcher::next_batch`] returns the error.
    pub fn new(make: MakeBatch<B>, samples_per_batch: usize, start: u64, prefetch: usize) -> Result<Self> {
        let counters = Arc::new(GenCounters::default());
        let mut p = Prefetcher { make, samples_per_batch, next: start, queue: None, counters, waited: Duration::ZERO };
        if prefetch > 0 {
            let (tx, rx) = sync_channel(prefetch);
            let (make, counters) = (p.make.clone(), p.counters.clone());
            std::thread::Builder::new()
                .name("corrflow-data".into())
                .spawn(move || {
                    for k in start.. {
                        let batch = timed(&make, k, samples_per_batch, &counters);
                        let failed = batch.is_err();
                        if tx.send(batch).is_err() || failed {
                            break;
                        }
                    }
                })
                .map_err(|e| Error::InvalidParam {
                    op: "train data",
                    message: format!("cannot start the data thread: {e}"),
                })?;
            p.queue = Some(rx);
        }
        Ok(p)
    }

    /// The next batch, in stream order.
    pub fn next_batch(&mut self) -> Result<B> {
        let k = self.next;
        self.next += 1;
        match &self.queue {
            Some(rx) => {
                let t = Instant::now();
                let batch = rx.recv().map_err(|_| Error::InvalidParam {
                    op: "train data",
                    message: "the data thread stopped (after an error reported earlier)".into(),
                })?;
                self.waited += t.elapsed();
                batch
            }
            None => timed(&self.make, k, self.samples_per_batch, &self.counters),
        }
    }

    /// Index of the batch the next call returns.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// Samples the generator made per second of its own busy time (0 before the first).
    pub fn generator_samples_per_s(&self) -> f64 {
        let busy = self.counters.busy_ns.load(Ordering::Relaxed) as f64 * 1e-9;
        if busy > 0.0 {
            self.counters.samples.load(Ordering::Relaxed) as f64 / busy
        } else {
            0.0
        }
    }

    /// Total time [`Prefetcher::next_batch`] waited for the data thread (the trainer starved of data).
    pub fn waited(&self) -> Duration {
        self.waited
    }
}

/// Makes optical-flow batches in order (see the module documentation), ahead of time on a background thread
/// when `prefetch > 0` (a [`Prefetcher`] of [`TrainBatch`]).
pub struct Loader {
    batches: Prefetcher<TrainBatch>,
}

impl Loader {
    /// Batches of `batch` un-augmented samples at `height x width` from batch 0 of stream `seed`, made on the
    /// caller's thread.
    pub fn new(source: DataSource, batch: usize, height: usize, width: usize, seed: u64) -> Result<Self> {
        let options =
            LoaderOptions { batch, height, width, seed, augment: AugmentConfig::none(), start_batch: 0, prefetch: 0 };
        Self::with_options(source, options)
    }

    pub fn with_options(source: DataSource, options: LoaderOptions) -> Result<Self> {
        let LoaderOptions { batch, height, width, seed, .. } = options;
        if batch == 0 || height == 0 || width == 0 || !height.is_multiple_of(64) || !width.is_multiple_of(64) {
            return Err(Error::InvalidParam {
                op: "train data",
                message: format!(
                    "batch {batch} at {width}x{height}: need a batch >= 1 and sides that are multiples of 64"
                ),
            });
        }
        if seed >= 1 << 23 {
            return Err(Error::InvalidParam {
                op: "train data",
                message: format!("seed {seed} must be below 2^23 (8388608)"),
            });
        }
        if let DataSource::Synthetic(cfg) = &source {
            SyntheticConfig { width, height, ..cfg.clone() }.validate()?;
        }
        options.augment.validate()?;
        let (start, prefetch) = (options.start_batch, options.prefetch);
        let make: MakeBatch<TrainBatch> = Arc::new(move |k| make_batch(&source, &options, k));
        Ok(Loader { batches: Prefetcher::new(make, batch, start, prefetch)? })
    }

    /// The next batch, in stream order.
    pub fn next_batch(&mut self) -> Result<TrainBatch> {
        self.batches.next_batch()
    }

    /// Index of the batch the next call returns.
    pub fn position(&self) -> u64 {
        self.batches.position()
    }

    /// Samples the generator made per second of its own busy time (0 before the first).
    pub fn generator_samples_per_s(&self) -> f64 {
        self.batches.generator_samples_per_s()
    }

    /// Total time [`Loader::next_batch`] waited for the data thread (the trainer starved of data).
    pub fn waited(&self) -> Duration {
        self.batches.waited()
    }
}

fn make_batch(source: &DataSource, o: &LoaderOptions, k: u64) -> Result<TrainBatch> {
    let first = k * o.batch as u64;
    let samples = (0..o.batch as u64)
        .map(|j| make_sample(source, o.width, o.height, o.seed, first + j, &o.augment))
        .collect::<Result<Vec<_>>>()?;
    to_batch(&samples)
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
