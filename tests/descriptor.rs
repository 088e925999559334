//! The descriptor network and its training step:
//! * one whole loss step on the GPU (forward, sampling, normalisation, distances, mining, loss, backward into
//!   every parameter) against the same chain in f64 on the CPU (`graph::cpu` and the `reference::metric`
//!   twins of every kernel), for every loss and sampler;
//! * the f64 chain's gradients against central finite differences (h = 1e-6) of its loss, triplets and
//!   neighbour tables held fixed (they are piecewise constant);
//! * dense description (GPU vs the CPU graph, grid, unit norms), patch mode, CPU sampling of the dense map;
//! * the data stream: deterministic by index, prefetched = made in place, classes as documented.
//!
//! Tolerances: GPU (f32) vs CPU (f64) gradients |gpu - cpu| <= 1e-4 max|cpu| + 2e-3 |cpu| (the graph tests'
//! bound, plus rounding of the f32 distances that feed the hinge and softmax); loss values 1e-4 relative;
//! finite differences |fd - analytic| <= 1e-6 max|analytic| + 1e-5 |analytic|.

mod common;

use common::{assert_close, gpu_with_subgroups, Rng};
use corrflow::graph::cpu::{self, CpuParams};
use corrflow::graph::Graph;
use corrflow::matching::dense::DenseDescriber;
use corrflow::models::descriptor::data::{descriptor_batch, descriptor_batches, ClassPool, DescBatch, DescDataConfig};
use corrflow::models::descriptor::train::PROXIES;
use corrflow::models::descriptor::{
    sample_dense, Descriptor, DescriptorArch, DescriptorModel, LossKind, SamplerKind, TrainLossConfig, GRID,
};
use corrflow::ops::metric::{DistanceWeighted, PositiveChoice, DISTANCE_EPS, L2_NORM_EPS};
use corrflow::reference::metric::{distance as rdist, hierarchy as rhier, loss as rloss, mining as rmine};
use corrflow::reference::metric::{normalize as rnorm, sample as rsample};
use corrflow::training::{ModelTrainer, TrainConfig};
use corrflow::{HostTensor, Tensor64, Weights};

/// A tiny tower: widths 3..6, D = 8.
fn tiny_arch() -> DescriptorArch {
    DescriptorArch { channels: [3, 4, 4, 5, 6], dim: 8 }
}

const N: usize = 2;
const K: usize = 6;
const SIDE: usize = 24;

/// Random images and points; pair 1 repeats its first two points in slots 4 and 5 (a padded pair).
fn batch(seed: u64, classes: Option<usize>) -> DescBatch {
    let mut rng = Rng::new(seed);
    let images = rng.tensor([2 * N, 1, SIDE, SIDE]);
    let mut points = HostTensor::zeros([2 * N, K, 2, 1]);
    let mut labels = vec![0u32; N * K];
    for j in 0..N {
        for q in 0..K {
            let src = if j == 1 && q >= 4 { q - 4 } else { q };
            for (img, off) in [(j, 0.0), (N + j, 0.7)] {
                let i = (img * K + q) * 2;
                let si = (img * K + src) * 2;
                if src == q {
                    points.data[i] = 2.0 + 19.0 * (0.5 + 0.5 * rng.uniform()) + off;
                    points.data[i + 1] = 2.0 + 19.0 * (0.5 + 0.5 * rng.uniform());
                } else {
                    points.data[i] = points.data[si];
                    points.data[i + 1] = points.data[si + 1];
                }
            }
            labels[j * K + q] = match classes {
                Some(c) => ((j * K + src) * 7 % c) as u32,
                None => (j * K + src) as u32,
            };
        }
    }
    DescBatch { images, points, labels, seed: 77, channels: None }
}

fn t64(t: &HostTensor) -> Tensor64 {
    Tensor64::from_f32(t)
}

/// The rows (first half A, second half B) of a tensor [2M, D].
fn halves(x: &Tensor64) -> (Tensor64, Tensor64) {
    let [m2, d, _, _] = x.shape;
    let m = m2 / 2;
    (
        Tensor64::new([m, d, 1, 1], x.data[..m * d].to_vec()).unwrap(),
        Tensor64::new([m, d, 1, 1], x.data[m * d..].to_vec()).unwrap(),
    )
}

/// What the f64 chain holds fixed: the triplets (triplet loss) and nothing else.
#[derive(Clone, Debug)]
enum Fixed {
    None,
    Triplets(Vec<[u32; 4]>),
}

/// The f64 loss chain from the network's parameters: (loss, parameter gradients, proxies' gradient, the
/// triplets it mined). `fixed` replaces mining (finite differences).
fn cpu_step(
    graph: &Graph,
    params: &CpuParams,
    proxies: Option<&Tensor64>,
    b: &DescBatch,
    cfg: &TrainLossConfig,
    fixed: &Fixed,
) -> (f64, CpuParams, Option<Tensor64>, Vec<[u32; 4]>) {
    let acts = cpu::forward(graph, params, &[t64(&b.images)]).unwrap();
    let map = acts.outputs(graph).remove(0);
    // The loss's channels: all, or a learner's slice (divide and conquer), re-normalised on its own.
    let channels = b.channels.clone().unwrap_or(0..map.shape[1]);
    let rows = rsample::sample_descriptors_channels_f64(&map, &t64(&b.points), GRID, channels.clone());
    let unit = rnorm::l2_normalize_f64(&rows, L2_NORM_EPS as f64);
    let m = b.labels.len();
    let d = unit.shape[1];
    let labels2: Vec<u32> = b.labels.iter().chain(&b.labels).copied().collect();
    let mut d_proxies = None;
    let mut triplets_out = Vec::new();
    let (loss, d_unit) = if let Some(p) = proxies {
        let up = rnorm::l2_normalize_f64(p, L2_NORM_EPS as f64);
        let dist = rdist::pairwise_distance_f64(&unit, &up, true, 0.0);
        let spec = corrflow::ops::metric::ProxyNcaSpec { temperature: cfg.temperature, scale: 1.0 };
        let (loss, _, g) = rloss::proxy_nca_loss_f64(&dist, &labels2, spec);
        let (du, dup) = rdist::pairwise_distance_backward_f64(&unit, &up, &g, true, 0.0);
        d_proxies = Some(rnorm::l2_normalize_backward_f64(p, &dup, L2_NORM_EPS as f64));
        (loss, du)
    } else {
        let (ra, rb) = halves(&unit);
        let eps = DISTANCE_EPS as f64;
        let dist = rdist::pairwise_distance_f64(&ra, &rb, false, eps);
        let (loss, g) = match cfg.loss {
            LossKind::Contrastive => {
                let spec =
                    corrflow::ops::metric::ContrastiveSpec { margin: cfg.margin, exclude_diagonal: false, scale: 1.0 };
                let (loss, _, g) = rloss::contrastive_loss_f64(&dist, &b.labels, &b.labels, spec);
                (loss, g)
            }
            _ => {
                let (la, seed) = (&b.labels, b.seed);
                let triplets = match fixed {
                    Fixed::Triplets(t) => t.clone(),
                    Fixed::None => {
                        let mut t = rmine::mine_positives_ref(&dist, la, la, 1, PositiveChoice::Hardest, false, seed);
                        match cfg.sampler.unwrap() {
                            SamplerKind::Random => rmine::mine_random_negatives_ref(&mut t, la, la, seed),
                            SamplerKind::Hardest => rmine::mine_hardest_negatives_ref(&mut t, &dist, la, la, true),
                            SamplerKind::Semihard => {
                                rmine::mine_semihard_negatives_ref(&mut t, &dist, la, la, cfg.margin)
                            }
                            SamplerKind::DistanceWeighted => {
                                let dw = DistanceWeighted { dim: d as u32, ..DistanceWeighted::default() };
                                let margins = rmine::mine_distance_weighted_ref(&mut t, &dist, la, la, dw, seed);
                                assert!(margins.iter().all(|&x| x > 1e-4), "a draw sits on a bucket boundary");
                            }
                            SamplerKind::Hierarchical => {
                                let (means, counts) = rhier::class_means_f64(&unit, &labels2, m);
                                let cd = rdist::pairwise_distance_f64(&means, &means, false, eps);
                                let table = rhier::nearest_classes_ref(&cd, &counts, cfg.neighbours.min(m));
                                rhier::mine_class_negatives_ref(&mut t, la, la, &table, cfg.neighbours.min(m), seed);
                            }
                        }
                        t
                    }
                };
                let spec = corrflow::ops::metric::TripletSpec { margin: cfg.margin, scale: 1.0 };
                let (loss, _, g) = rloss::triplet_loss_f64(&dist, &triplets, spec);
                triplets_out = triplets;
                (loss, g)
            }
        };
        let (ga, gb) = rdist::pairwise_distance_backward_f64(&ra, &rb, &g, false, eps);
        let mut du = Tensor64::zeros(unit.shape);
        du.data[..m * d].copy_from_slice(&ga.data);
        du.data[m * d..].copy_from_slice(&gb.data);
        (loss, du)
    };
    let d_rows = rnorm::l2_normalize_backward_f64(&rows, &d_unit, L2_NORM_EPS as f64);
    let d_map = rsample::sample_descriptors_channels_backward_f64(map.shape, &t64(&b.points), &d_rows, GRID, channels);
    let grads = cpu::backward(graph, params, &acts, &[d_map]).unwrap();
    (loss, grads, d_proxies, triplets_out)
}

fn config(loss: LossKind, sampler: Option<SamplerKind>, classes: usize) -> TrainLossConfig {
    TrainLossConfig {
        loss,
        sampler,
        margin: 0.8,
        proxy_classes: classes,
        temperature: 0.5,
        neighbours: 3,
        proxy_seed: 5,
    }
}

fn cases() -> Vec<TrainLossConfig> {
    let mut c = vec![config(LossKind::Contrastive, None, 0), config(LossKind::ProxyNca, None, 9)];
    for s in SamplerKind::ALL {
        c.push(config(LossKind::Triplet, Some(s), 0));
    }
    c
}

/// One loss step (forward, loss, backward; no update) on the GPU equals the f64 chain: the loss, every
/// layer's weight and bias gradient, and ProxyNCA's proxies' gradient.
#[test]
fn loss_step_matches_the_f64_reference() {
    let Some(ctx) = gpu_with_subgroups() else { return };
    let arch = tiny_arch();
    let graph = arch.graph().unwrap();
    for (i, cfg) in cases().into_iter().enumerate() {
        let classes = (cfg.loss == LossKind::ProxyNca).then_some(cfg.proxy_classes);
        let b = batch(100 + i as u64, classes);
        let weights = arch.init_weights(3 + i as u64);
        let model = DescriptorModel::new(ctx, &weights, cfg.clone()).unwrap();
        let mut trainer = ModelTrainer::new(ctx, model, TrainConfig::default()).unwrap();
        let report = trainer.compute_gradients(ctx, &b).unwrap();
        let gpu = trainer.gradients(ctx).unwrap();
        let stored = trainer.weights(ctx).unwrap();
        let proxies = stored.shape(PROXIES).map(|_| t64(&common::get4(&stored, PROXIES)));
        let params = CpuParams::new(&graph, &weights).unwrap();
        let (loss, grads, d_proxies, _) = cpu_step(&graph, &params, proxies.as_ref(), &b, &cfg, &Fixed::None);
        let label = cfg.label();
        assert!(loss > 1e-3, "{label}: loss {loss} (a vacuous check)");
        assert!(((report.loss as f64) - loss).abs() <= 1e-4 * loss, "{label}: GPU loss {} vs {loss}", report.loss);
        let want = grads.to_weights(&graph, "grad.");
        for name in want.names() {
            let shape = want.shape(name).unwrap().to_vec();
            let expected = want.get(name, &shape).unwrap();
            let scale = expected.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert!(scale > 0.0, "{label} {name}: zero gradient");
            assert_close(&format!("{label} {name}"), gpu.get(name, &shape).unwrap(), expected, 1e-4 * scale, 2e-3);
        }
        if let Some(dp) = d_proxies {
            let slot = trainer.network().proxy_gradient(ctx).unwrap().unwrap();
            let expected = dp.to_f32();
            let scale = expected.data.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert_close(&format!("{label} proxies"), &slot.data, &expected.data, 1e-4 * scale, 2e-3);
        }
    }
}

/// The f64 chain's parameter gradients against central finite differences of its loss (every 3rd weight of
/// every layer), for the contrastive loss, the triplet loss (hardest negatives, the mined triplets then held
/// fixed) and ProxyNCA (also the proxies).
#[test]
fn loss_chain_matches_finite_differences() {
    let arch = tiny_arch();
    let graph = arch.graph().unwrap();
    let h = 1e-6;
    for (i, cfg) in [
        config(LossKind::Contrastive, None, 0),
        config(LossKind::Triplet, Some(SamplerKind::Hardest), 0),
        config(LossKind::ProxyNca, None, 9),
    ]
    .into_iter()
    .enumerate()
    {
        let classes = (cfg.loss == LossKind::ProxyNca).then_some(cfg.proxy_classes);
        let b = batch(200 + i as u64, classes);
        let params = CpuParams::new(&graph, &arch.init_weights(30 + i as u64)).unwrap();
        let mut rng = Rng::new(9);
        let proxies = classes.map(|c| t64(&rng.tensor([c, arch.dim, 1, 1])));
        let (loss, grads, d_proxies, triplets) = cpu_step(&graph, &params, proxies.as_ref(), &b, &cfg, &Fixed::None);
        let fixed = if triplets.is_empty() { Fixed::None } else { Fixed::Triplets(triplets) };
        assert!(loss > 1e-3, "{}: loss {loss}", cfg.label());
        let eval = |p: &CpuParams, px: Option<&Tensor64>| cpu_step(&graph, p, px, &b, &cfg, &fixed).0;
        for (li, l) in graph.layers().iter().enumerate() {
            let (dw, _) = &grads.layers[li];
            let scale = dw.data.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            assert!(scale > 0.0, "{} {}: zero gradient", cfg.label(), l.name);
            for k in (0..dw.data.len()).step_by(3) {
                let at = |delta: f64| {
                    let mut p = params.clone();
                    p.layers[li].0.data[k] += delta;
                    eval(&p, proxies.as_ref())
                };
                let fd = (at(h) - at(-h)) / (2.0 * h);
                assert!(
                    (fd - dw.data[k]).abs() <= 1e-6 * scale + 1e-5 * dw.data[k].abs(),
                    "{} {} weight {k}: finite difference {fd}, backward {}",
                    cfg.label(),
                    l.name,
                    dw.data[k]
                );
            }
        }
        if let (Some(p), Some(dp)) = (&proxies, &d_proxies) {
            let scale = dp.data.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            for k in (0..p.data.len()).step_by(5) {
                let at = |delta: f64| {
                    let mut q = p.clone();
                    q.data[k] += delta;
                    eval(&params, Some(&q))
                };
                let fd = (at(h) - at(-h)) / (2.0 * h);
                assert!((fd - dp.data[k]).abs() <= 1e-6 * scale + 1e-5 * dp.data[k].abs(), "proxy value {k}");
            }
        }
    }
}

/// A divide-phase step (the loss on a learner's slice of the descriptor, `DescBatch::channels`) on the GPU
/// equals the f64 chain on that slice: the loss and every gradient. (The head's rows outside the slice get
/// gradient too: the slice is taken from the network's output, normalised per grid cell over all D
/// channels, and bilinear sampling mixes cells whose norms the other channels set.) ProxyNCA (whose proxies span the whole descriptor) refuses a slice.
#[test]
fn divide_phase_step_matches_the_f64_reference_on_the_slice() {
    let Some(ctx) = gpu_with_subgroups() else { return };
    let arch = tiny_arch();
    let graph = arch.graph().unwrap();
    let cases = [
        (config(LossKind::Triplet, Some(SamplerKind::Hardest), 0), 4..8),
        (config(LossKind::Contrastive, None, 0), 2..6),
        (config(LossKind::Triplet, Some(SamplerKind::DistanceWeighted), 0), 0..4),
    ];
    for (i, (cfg, channels)) in cases.into_iter().enumerate() {
        let b = DescBatch { channels: Some(channels.clone()), ..batch(300 + i as u64, None) };
        let weights = arch.init_weights(40 + i as u64);
        let model = DescriptorModel::new(ctx, &weights, cfg.clone()).unwrap();
        let mut trainer = ModelTrainer::new(ctx, model, TrainConfig::default()).unwrap();
        let report = trainer.compute_gradients(ctx, &b).unwrap();
        let gpu = trainer.gradients(ctx).unwrap();
        let params = CpuParams::new(&graph, &weights).unwrap();
        let (loss, grads, _, _) = cpu_step(&graph, &params, None, &b, &cfg, &Fixed::None);
        let full = cpu_step(&graph, &params, None, &DescBatch { channels: None, ..b.clone() }, &cfg, &Fixed::None).0;
        let label = format!("{} on channels {channels:?}", cfg.label());
        assert!(loss > 1e-3 && (loss - full).abs() > 1e-6, "{label}: loss {loss} (whole descriptor: {full})");
        assert!(((report.loss as f64) - loss).abs() <= 1e-4 * loss, "{label}: GPU loss {} vs {loss}", report.loss);
        let want = grads.to_weights(&graph, "grad.");
        for name in want.names() {
            let shape = want.shape(name).unwrap().to_vec();
            let expected = want.get(name, &shape).unwrap();
            let scale = expected.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert!(scale > 0.0, "{label} {name}: zero gradient");
            assert_close(&format!("{label} {name}"), gpu.get(name, &shape).unwrap(), expected, 1e-4 * scale, 2e-3);
        }
    }
    let model = DescriptorModel::new(ctx, &arch.init_weights(1), config(LossKind::ProxyNca, None, 9)).unwrap();
    let mut trainer = ModelTrainer::new(ctx, model, TrainConfig::default()).unwrap();
    let b = DescBatch { channels: Some(0..4), ..batch(5, Some(9)) };
    let e = trainer.compute_gradients(ctx, &b).unwrap_err().to_string();
    assert!(e.contains("ProxyNCA") && e.contains("0..4"), "{e}");
}

/// k-means (f64, k-means++) on three separated blobs in 5-D recovers them: one cluster per blob (up to
/// the order), centroids equal to the blobs' means (the Lloyd fixed point), the same clustering for every
/// seed, and the same result for one seed twice; too few points is an error.
#[test]
fn kmeans_recovers_separated_clusters() {
    use corrflow::models::descriptor::divide::{kmeans, nearest_centroid};
    let dim = 5;
    let centres = [[4.0, 0.0, 0.0, 1.0, 0.0], [0.0, -4.0, 0.0, 0.0, 1.0], [0.0, 0.0, 4.0, -1.0, 0.0]];
    let sizes = [30, 17, 41];
    let mut rng = Rng::new(17);
    let (mut points, mut truth) = (Vec::new(), Vec::new());
    // Interleaved, so that order tells nothing.
    for i in 0..sizes.iter().sum::<usize>() {
        let blob = (0..3).cycle().skip(i).find(|&b| truth.iter().filter(|&&t| t == b).count() < sizes[b]).unwrap();
        truth.push(blob);
        points.extend(centres[blob].iter().map(|c| c + 0.8 * rng.uniform() as f64));
    }
    for seed in [1, 2, 99] {
        let km = kmeans(&points, dim, 3, seed).unwrap();
        assert_eq!(km, kmeans(&points, dim, 3, seed).unwrap(), "seed {seed}: not deterministic");
        for blob in 0..3 {
            let members: Vec<usize> = (0..truth.len()).filter(|&i| truth[i] == blob).collect();
            let c = km.assignment[members[0]];
            assert!(members.iter().all(|&i| km.assignment[i] == c), "seed {seed}: blob {blob} split");
            assert_eq!(km.assignment.iter().filter(|&&a| a == c).count(), sizes[blob], "seed {seed}: blob {blob}");
            for j in 0..dim {
                let mean = members.iter().map(|&i| points[i * dim + j]).sum::<f64>() / members.len() as f64;
                assert!((km.centroids[c * dim + j] - mean).abs() < 1e-12, "seed {seed}: centroid {c}[{j}]");
            }
            let (nearest, _) = nearest_centroid(&km.centroids, dim, &centres[blob]);
            assert_eq!(nearest, c);
        }
    }
    assert!(kmeans(&points[..2 * dim], dim, 3, 1).is_err());
    assert!(kmeans(&[0.0, f64::NAN, 1.0, 2.0], 2, 1, 1).is_err());
}

/// The divide phase's point selection: from pairs of candidates (one padded by repetition), each learner
/// gets its cluster's points (then the nearest others), distinct, in candidate order, relabelled
/// `pair * K + i`, with its slice as the loss's channels; the conquer phase takes the first distinct
/// candidates.
#[test]
fn divide_selects_each_learners_points() {
    use corrflow::models::descriptor::divide::{first_points, select_points};
    let (n, kc, points) = (2, 8, 3);
    let mut cand = DescBatch {
        images: HostTensor::zeros([2 * n, 1, 16, 16]),
        points: HostTensor::zeros([2 * n, kc, 2, 1]),
        labels: (0..(n * kc) as u32).collect(),
        seed: 1,
        channels: None,
    };
    for (i, v) in cand.points.data.iter_mut().enumerate() {
        *v = i as f32;
    }
    // Pair 1 has 5 distinct candidates, repeated.
    for q in 5..kc {
        cand.labels[kc + q] = cand.labels[kc + q - 5];
    }
    // 2-D anchors: candidate q of pair j at angle q (cluster 0 near (1, 0), cluster 1 near (0, 1)).
    let centroids = [1.0, 0.0, 0.0, 1.0];
    let anchor = |q: usize| if q.is_multiple_of(3) { [0.9, 0.1 * q as f64] } else { [0.1 * q as f64, 0.95] };
    let anchors: Vec<(Vec<usize>, Vec<f64>)> =
        [8, 5].iter().map(|&m| ((0..m).collect(), (0..m).flat_map(anchor).collect())).collect();
    // Learner 0: pair 0 has candidates 0, 3, 6 in cluster 0; pair 1 has 0, 3 and then the nearest other.
    let b = select_points(&cand, &anchors, &centroids, 2, 0, points, 0..4);
    assert_eq!(b.channels, Some(0..4));
    assert_eq!(b.labels, vec![0, 1, 2, 3, 4, 5]);
    let x = |b: &DescBatch, img: usize, i: usize| b.points.data[(img * points + i) * 2] as usize;
    let picked = |b: &DescBatch, j: usize| (0..points).map(|i| (x(b, j, i) - j * kc * 2) / 2).collect::<Vec<_>>();
    assert_eq!(picked(&b, 0), vec![0, 3, 6]);
    // Pair 1's third: the non-member nearest to (1, 0): candidate 4 at (0.4, 0.95), before 2 and 1.
    assert_eq!(picked(&b, 1), vec![0, 3, 4]);
    for j in 0..n {
        for i in 0..points {
            assert_eq!(x(&b, n + j, i) - x(&b, j, i), n * kc * 2, "B's point is A's counterpart");
        }
    }
    let b = select_points(&cand, &anchors, &centroids, 2, 1, points, 4..8);
    assert_eq!((picked(&b, 0), picked(&b, 1)), (vec![1, 2, 4], vec![1, 2, 4]));
    // Conquer: the first distinct candidates; a pair with fewer repeats them with their labels.
    let b = first_points(&cand, 7).unwrap();
    assert_eq!(b.channels, None);
    assert_eq!(&b.labels[7..], &[7, 8, 9, 10, 11, 7, 8]);
}

/// Dense description: the GPU map equals the CPU graph's on the edge-padded image, the grid keeps
/// floor(W / 4) x floor(H / 4) unit descriptors, CPU sampling at a grid centre returns that cell, and patch
/// mode equals the CPU forward of the normalised patch sampled at its centre.
#[test]
fn dense_and_patch_descriptors() {
    let Some(ctx) = gpu_with_subgroups() else { return };
    let arch = DescriptorArch { channels: [8, 8, 12, 12, 16], dim: 16 };
    let weights = arch.init_weights(4);
    let desc = Descriptor::new(ctx, &weights).unwrap();
    let (w, h) = (37u32, 30u32);
    let mut rng = Rng::new(12);
    let img =
        image::RgbImage::from_fn(w, h, |_, _| image::Rgb([0, 1, 2].map(|_| (127.0 + 120.0 * rng.uniform()) as u8)));
    let dense = desc.describe(ctx, &img).unwrap();
    assert_eq!((dense.grid_w, dense.grid_h, dense.dim, dense.stride), (9, 7, 16, 4));
    for cell in dense.data.chunks(16) {
        let n: f32 = cell.iter().map(|v| v * v).sum();
        assert!((n - 1.0).abs() < 1e-4, "norm^2 {n}");
    }
    // The CPU graph on the same padded input.
    let grey = corrflow::models::descriptor::normalise_grey(&img);
    let (pw, ph) = (40, 32);
    let padded: Vec<f64> = (0..ph)
        .flat_map(|y: usize| {
            let g = &grey;
            (0..pw).map(move |x: usize| g[y.min(h as usize - 1) * w as usize + x.min(w as usize - 1)] as f64)
        })
        .collect();
    let graph = arch.graph().unwrap();
    let params = CpuParams::new(&graph, &weights).unwrap();
    let map = cpu::forward(&graph, &params, &[Tensor64::new([1, 1, ph, pw], padded).unwrap()])
        .unwrap()
        .outputs(&graph)
        .remove(0);
    let mut expected = Vec::new();
    for gy in 0..7 {
        for gx in 0..9 {
            expected.extend((0..16).map(|c| map.data[(c * 8 + gy) * 10 + gx] as f32));
        }
    }
    assert_close("dense map", &dense.data, &expected, 1e-4, 1e-3);
    // Sampling at grid centres gives the cells back.
    let at = sample_dense(&dense, &[dense.point(3, 2), dense.point(8, 6)]).unwrap();
    assert_close("sampled at centres", &at[..16], dense.at(3, 2), 1e-6, 1e-5);
    assert_close("sampled at centres", &at[16..], dense.at(8, 6), 1e-6, 1e-5);
    // Patch mode.
    let patches: Vec<f32> = (0..2 * 32 * 32).map(|_| 0.5 + 0.4 * rng.uniform()).collect();
    let got = desc.describe_patches(ctx, &patches).unwrap();
    for p in 0..2 {
        let patch = corrflow::models::descriptor::local_normalise(&patches[p * 1024..(p + 1) * 1024], 32, 32);
        let x = Tensor64::new([1, 1, 32, 32], patch.iter().map(|&v| v as f64).collect()).unwrap();
        let map = cpu::forward(&graph, &params, &[x]).unwrap().outputs(&graph).remove(0);
        let mut v: Vec<f64> = (0..16)
            .map(|c| {
                (3..5)
                    .flat_map(|y| (3..5).map(move |x| (y, x)))
                    .map(|(y, x)| map.data[(c * 8 + y) * 8 + x])
                    .sum::<f64>()
                    / 4.0
            })
            .collect();
        let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        v.iter_mut().for_each(|x| *x /= n);
        let v32: Vec<f32> = v.iter().map(|&x| x as f32).collect();
        assert_close("patch descriptor", &got[p * 16..(p + 1) * 16], &v32, 1e-4, 1e-3);
    }
    assert!(desc.describe_patches(ctx, &patches[..1000]).is_err());
    let tiny = image::RgbImage::new(3, 9);
    assert!(desc.describe(ctx, &tiny).unwrap_err().to_string().contains("at least 4 x 4"));
}

/// The data stream: batch k is the same made in place or prefetched from a later start; points lie inside
/// the images; fresh classes are `pair * K + point` (repeated points keep their class), pool classes stay
/// below the pool's size.
#[test]
fn descriptor_batches_are_addressed_by_index() {
    let mut cfg = DescDataConfig::new(3);
    cfg.width = 64;
    cfg.height = 48;
    cfg.points = 40;
    cfg.pairs = 3;
    let direct: Vec<DescBatch> = (0..4).map(|k| descriptor_batch(&cfg, k).unwrap()).collect();
    let mut pre = descriptor_batches(cfg.clone(), 2, 2).unwrap();
    assert_eq!(pre.next_batch().unwrap(), direct[2]);
    assert_eq!(pre.next_batch().unwrap(), direct[3]);
    assert_ne!(direct[0], direct[1]);
    for b in &direct {
        b.check().unwrap();
        for p in b.points.data.chunks(2) {
            assert!(p[0] >= 6.0 && p[0] <= 57.0 && p[1] >= 6.0 && p[1] <= 41.0, "{p:?}");
        }
        for (i, &l) in b.labels.iter().enumerate() {
            let (j, q) = (i / 40, i % 40);
            assert!(l as usize >= j * 40 && (l as usize) <= j * 40 + q, "slot {i}: class {l}");
            let src = l as usize - j * 40;
            for img in [j, 3 + j] {
                let (a, s) = ((img * 40 + q) * 2, (img * 40 + src) * 2);
                assert_eq!(b.points.data[a..a + 2], b.points.data[s..s + 2], "a repeated point keeps its class");
            }
        }
        // Every image locally normalised: small means, spreads below 1 (flat regions stay small: eps).
        for img in b.images.data.chunks(64 * 48) {
            let mean: f32 = img.iter().sum::<f32>() / img.len() as f32;
            let var: f32 = img.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / img.len() as f32;
            assert!(mean.abs() < 0.2 && var > 0.1 && var < 1.5, "mean {mean}, variance {var}");
        }
    }
    cfg.pool = Some(ClassPool { sources: 5, points: 30 });
    let b = descriptor_batch(&cfg, 0).unwrap();
    assert!(b.labels.iter().all(|&l| l < 150));
    assert_eq!(b, descriptor_batch(&cfg, 0).unwrap());
}

/// Checkpoints of a ProxyNCA run carry the proxies (and `Descriptor` ignores them); the loss settings come
/// back from the metadata.
#[test]
fn proxies_round_trip_through_checkpoints() {
    let Some(ctx) = gpu_with_subgroups() else { return };
    let arch = tiny_arch();
    let cfg = config(LossKind::ProxyNca, None, 9);
    let model = DescriptorModel::new(ctx, &arch.init_weights(1), cfg.clone()).unwrap();
    let mut trainer = ModelTrainer::new(ctx, model, TrainConfig::default()).unwrap();
    trainer.step(ctx, &batch(5, Some(9))).unwrap();
    let dir = std::env::temp_dir().join(format!("corrflow-desc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("p.safetensors");
    trainer.save_checkpoint(ctx, &path).unwrap();
    let w = Weights::load(&path).unwrap();
    assert_eq!(w.shape(PROXIES), Some(&[9, 8, 1, 1][..]));
    assert_eq!(w.metadata().get("loss").map(String::as_str), Some("proxy-nca"));
    let (resumed, exact) = ModelTrainer::<DescriptorModel>::resume(ctx, &path, TrainConfig::default()).unwrap();
    assert!(exact);
    assert_eq!(resumed.network().loss_config(), &TrainLossConfig { proxy_seed: 1, ..cfg });
    let desc = Descriptor::new(ctx, &w).unwrap();
    assert_eq!(desc.arch(), &arch);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Local contrast normalisation: a brute-force window mean and deviation per pixel (borders cut), a
/// constant plane gives zeros, and a gain and offset (v -> 3 v + 0.2) change the output only through eps.
#[test]
fn local_normalisation_matches_brute_force_and_removes_gain() {
    use corrflow::models::descriptor::{local_normalise, NORMALISE_EPS, NORMALISE_RADIUS};
    let (w, h) = (23, 19);
    let mut rng = Rng::new(8);
    let plane: Vec<f32> = (0..w * h).map(|_| 0.5 + 0.2 * rng.uniform()).collect();
    let got = local_normalise(&plane, w, h);
    let r = NORMALISE_RADIUS as i64;
    for (y, x) in [(0usize, 0usize), (9, 11), (18, 22), (3, 17)] {
        let mut vals = Vec::new();
        for yy in (y as i64 - r).max(0)..(y as i64 + r + 1).min(h as i64) {
            for xx in (x as i64 - r).max(0)..(x as i64 + r + 1).min(w as i64) {
                vals.push(plane[yy as usize * w + xx as usize] as f64);
            }
        }
        let mean = vals.iter().sum::<f64>() / vals.len() as f64;
        let sd = (vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / vals.len() as f64).sqrt();
        let want = (plane[y * w + x] as f64 - mean) / (sd + NORMALISE_EPS as f64);
        assert!((got[y * w + x] as f64 - want).abs() < 1e-5, "({x}, {y}): {} vs {want}", got[y * w + x]);
    }
    assert!(local_normalise(&vec![0.3; w * h], w, h).iter().all(|&v| v.abs() < 1e-5));
    let brighter: Vec<f32> = plane.iter().map(|v| 3.0 * v + 0.2).collect();
    let g2 = local_normalise(&brighter, w, h);
    // (v - m) / (s + e) against (v - m) / (s + e / 3): within the eps share of the deviation.
    for (a, b) in got.iter().zip(&g2) {
        assert!((a - b).abs() <= 0.15 * a.abs().max(0.05), "{a} vs {b}");
    }
}

/// The embedded (shipped) descriptor on real photographs it never saw: the CMP pairs `Boston` and `adam` (a
/// viewpoint and a viewpoint-and-light change, with their stored homographies), scaled to 480 px, through the
/// same matcher as the raw-patch baseline: its MMA@3 must be above the baseline's on each (the issue's
/// target, also what `corrflow eval-match` reports) and at least 0.6, and its correct matches more numerous.
#[test]
fn embedded_descriptor_beats_raw_patches_on_real_pairs() {
    use corrflow::io::homography::find_homography_pairs;
    use corrflow::matching::dense::DenseMatchConfig;
    use corrflow::matching::evaluate::evaluate_pair;
    use corrflow::matching::RawPatchConfig;
    let Some(ctx) = common::gpu() else { return };
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/cmp_homogr");
    if !dir.exists() {
        common::skip(format!("{} not found", dir.display()));
        return;
    }
    let found = find_homography_pairs(&dir).unwrap();
    let trained = Descriptor::pretrained(ctx).unwrap();
    let raw = RawPatchConfig::default();
    let cfg = DenseMatchConfig { max_side: Some(480), ..DenseMatchConfig::default() };
    for name in ["Boston", "adam"] {
        let pair = found.pairs.iter().find(|p| p.name == name).unwrap_or_else(|| panic!("CMP pair {name} missing"));
        let a = image::open(&pair.image_a).unwrap().to_rgb8();
        let b = image::open(&pair.image_b).unwrap().to_rgb8();
        let t = evaluate_pair(ctx, "cmp", name, &a, &b, &pair.a_to_b, &trained, &cfg).unwrap();
        let r = evaluate_pair(ctx, "cmp", name, &a, &b, &pair.a_to_b, &raw, &cfg).unwrap();
        eprintln!(
            "{name}: trained MMA@3 {:.3} ({} of {}), raw {:.3} ({} of {})",
            t.mma(2),
            t.correct[2],
            t.matches,
            r.mma(2),
            r.correct[2],
            r.matches
        );
        assert!(t.mma(2) > r.mma(2), "{name}: trained MMA@3 {:.3} not above raw {:.3}", t.mma(2), r.mma(2));
        assert!(t.correct[2] > r.correct[2], "{name}: {} correct vs raw {}", t.correct[2], r.correct[2]);
        // The shipped export measured 0.768 (Boston) and 0.935 (adam) here, raw 0.304 and 0.325: a floor well
        // above the baseline catches a weaker model being embedded.
        assert!(t.mma(2) >= 0.6, "{name}: trained MMA@3 {:.3} below 0.6", t.mma(2));
    }
}
