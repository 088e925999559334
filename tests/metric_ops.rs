//! The metric-learning and matching ops (issue 12): finite-difference checks of every backward through the
//! f64 references (no GPU), then every GPU kernel against its reference on random inputs with odd sizes and
//! sizes spanning several workgroups, outputs pre-filled with NaN (floats) or 0xDEADBEEF (indices) so
//! unwritten elements fail.
//!
//! Tolerances: GPU vs f64 reference `|gpu - ref| <= abs + rel |ref|`, stated per test (f32 accumulation
//! over D = 128 terms or K = a few hundred columns against f64); finite differences: central, step 1e-6,
//! agreement to 1e-6 relative to the gradient scale. The samplers must make exactly the reference's choices
//! (distance-weighted sampling: except where a draw falls within rounding distance of a bucket boundary).

mod common;

use common::{assert_close, gpu, Rng};
use corrflow::host::Tensor64;
use corrflow::ops::loss::reduce_sum;
use corrflow::ops::metric::{self as metric, GradWrite, GridSpec, Indices, LabelledDistances, NO_INDEX};
use corrflow::reference::metric::{distance as rdist, hierarchy as rhier, loss as rloss, matcher as rmatch};
use corrflow::reference::metric::{mining as rmine, normalize as rnorm, sample as rsample};
use corrflow::{Context, Error, HostTensor, Tensor};

const SENTINEL: u32 = 0xDEAD_BEEF;

// ---------------------------------------------------------------------------------------------------------
// Helpers

fn t64(t: &HostTensor) -> Tensor64 {
    Tensor64::from_f32(t)
}

fn labels(rng: &mut Rng, n: usize, classes: u64) -> Vec<u32> {
    (0..n).map(|_| (rng.next_u64() % classes) as u32).collect()
}

/// Unit rows `[n, d, 1, 1]`.
fn unit_rows(rng: &mut Rng, n: usize, d: usize) -> HostTensor {
    let mut t = rng.tensor([n, d, 1, 1]);
    for r in t.data.chunks_mut(d) {
        let s = r.iter().map(|v| v * v).sum::<f32>().sqrt();
        r.iter_mut().for_each(|v| *v /= s);
    }
    t
}

fn max_abs_err(a: &[f32], e: &[f32]) -> f32 {
    a.iter().zip(e).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Compares and reports the worst error (run with --nocapture to read it).
fn check(what: &str, actual: &[f32], expected: &[f32], abs: f32, rel: f32) {
    assert_close(what, actual, expected, abs, rel);
    eprintln!("{what}: max abs error {:.3e} over {} values", max_abs_err(actual, expected), actual.len());
}

fn nan_tensor(ctx: &Context, name: &str, shape: [usize; 4]) -> Tensor {
    let t = ctx.tensor(name, shape).unwrap();
    ctx.fill(&t, f32::NAN).unwrap();
    t
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// Central finite differences of `loss` at `x` against `analytic`, element by element.
fn fd_check(what: &str, x: &Tensor64, analytic: &Tensor64, loss: impl Fn(&Tensor64) -> f64) {
    let h = 1e-6;
    let scale = analytic.data.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
    let mut worst = 0.0f64;
    for i in 0..x.numel() {
        let mut plus = x.clone();
        plus.data[i] += h;
        let mut minus = x.clone();
        minus.data[i] -= h;
        let numeric = (loss(&plus) - loss(&minus)) / (2.0 * h);
        let err = (numeric - analytic.data[i]).abs();
        worst = worst.max(err / scale);
        assert!(err <= 1e-6 * scale, "{what}: element {i}: numeric {numeric}, analytic {}", analytic.data[i]);
    }
    eprintln!("{what}: finite differences agree to {worst:.2e} of the gradient scale");
}

fn weighted_sum(y: &Tensor64, w: &Tensor64) -> f64 {
    y.data.iter().zip(&w.data).map(|(a, b)| a * b).sum()
}

fn to_triplets(v: &[u32]) -> Vec<[u32; 4]> {
    v.chunks(4).map(|c| [c[0], c[1], c[2], c[3]]).collect()
}

// ---------------------------------------------------------------------------------------------------------
// Finite-difference checks of the references (f64, tiny shapes)

#[test]
fn l2_normalize_gradient_by_finite_differences() {
    let mut rng = Rng::new(101);
    let eps = metric::L2_NORM_EPS as f64;
    for (shape, magnitude) in [([2, 5, 3, 4], 1.0), ([4, 6, 1, 1], 1.0), ([1, 3, 2, 2], 1e-3)] {
        let mut x = t64(&rng.tensor(shape));
        x.data.iter_mut().for_each(|v| *v *= magnitude);
        let w = t64(&rng.tensor(shape));
        let dx = rnorm::l2_normalize_backward_f64(&x, &w, eps);
        fd_check(&format!("l2_normalize {shape:?} |x| ~ {magnitude}"), &x, &dx, |x| {
            weighted_sum(&rnorm::l2_normalize_f64(x, eps), &w)
        });
    }
}

#[test]
fn sample_descriptors_gradients_by_finite_differences() {
    let mut rng = Rng::new(102);
    let (n, d, h, w, k) = (2, 3, 4, 5, 6);
    for stride in [1u32, 4] {
        let grid = GridSpec { stride };
        let map = t64(&rng.tensor([n, d, h, w]));
        // Points inside, near the border and outside the grid (clamped), off the grid lines.
        let mut points = Tensor64::zeros([n, k, 2, 1]);
        for (i, v) in points.data.iter_mut().enumerate() {
            let extent = if i % 2 == 0 { w } else { h } as f64 * stride as f64;
            *v = (rng.uniform() as f64 * 0.6 + 0.5) * extent + 0.013;
        }
        points.data[0] = -3.3; // left of the grid
        points.data[3] = h as f64 * stride as f64 + 2.7; // below the grid
        let dout = t64(&rng.tensor([n * k, d, 1, 1]));
        let dmap = rsample::sample_descriptors_backward_f64(map.shape, &points, &dout, grid);
        fd_check(&format!("sample_descriptors d/dmap stride {stride}"), &map, &dmap, |m| {
            weighted_sum(&rsample::sample_descriptors_f64(m, &points, grid), &dout)
        });
        let dpoints = rsample::sample_descriptors_backward_points_f64(&map, &points, &dout, grid);
        assert_eq!(dpoints.data[0], 0.0, "a clamped coordinate has no gradient");
        fd_check(&format!("sample_descriptors d/dpoints stride {stride}"), &points, &dpoints, |p| {
            weighted_sum(&rsample::sample_descriptors_f64(&map, p, grid), &dout)
        });
    }
}

#[test]
fn sample_descriptors_reference_on_hand_values() {
    // Stride 4: cell centres at image x = 1.5, 5.5, 9.5. A 1 x 3 map [10, 20, 30], one channel.
    let map = Tensor64::new([1, 1, 1, 3], vec![10.0, 20.0, 30.0]).unwrap();
    let grid = GridSpec { stride: 4 };
    let at = |x: f64| {
        let p = Tensor64::new([1, 1, 2, 1], vec![x, 0.0]).unwrap();
        rsample::sample_descriptors_f64(&map, &p, grid).data[0]
    };
    assert_eq!(at(1.5), 10.0); // first centre
    assert_eq!(at(5.5), 20.0); // second centre
    assert_eq!(at(3.5), 15.0); // half-way
    assert_eq!(at(8.5), 27.5); // three quarters of the way from 5.5 to 9.5
    assert_eq!(at(-7.0), 10.0); // clamped to the border
    assert_eq!(at(100.0), 30.0);
    assert_eq!(GridSpec { stride: 4 }.to_image(2.0), 9.5);
}

#[test]
fn pairwise_distance_gradients_by_finite_differences() {
    let mut rng = Rng::new(103);
    let a = t64(&rng.tensor([4, 5, 1, 1]));
    let mut b = t64(&rng.tensor([3, 5, 1, 1]));
    b.data[..5].copy_from_slice(&a.data[..5]); // a coincident pair: the epsilon case
    let g = t64(&rng.tensor([4, 3, 1, 1]));
    let eps = metric::DISTANCE_EPS as f64;
    for squared in [false, true] {
        let (da, db) = rdist::pairwise_distance_backward_f64(&a, &b, &g, squared, eps);
        fd_check(&format!("distance d/dA squared={squared}"), &a, &da, |a| {
            weighted_sum(&rdist::pairwise_distance_f64(a, &b, squared, eps), &g)
        });
        fd_check(&format!("distance d/dB squared={squared}"), &b, &db, |b| {
            weighted_sum(&rdist::pairwise_distance_f64(&a, b, squared, eps), &g)
        });
    }
}

/// Distances in [0.2, 1.8] away from the margin's kink (|d - margin| > 0.02).
fn distances_off_kink(rng: &mut Rng, m: usize, k: usize, margin: f64) -> Tensor64 {
    let mut d = Tensor64::zeros([m, k, 1, 1]);
    for v in d.data.iter_mut() {
        *v = 1.0 + 0.8 * rng.uniform() as f64;
        if (*v - margin).abs() < 0.02 {
            *v += 0.05;
        }
    }
    d
}

#[test]
fn loss_gradients_by_finite_differences() {
    let mut rng = Rng::new(104);
    let (m, k) = (5, 6);
    let la = labels(&mut rng, m, 3);
    let lb = labels(&mut rng, k, 3);
    let dist = distances_off_kink(&mut rng, m, k, 1.2);
    for exclude_diagonal in [false, true] {
        let spec = rloss::ContrastiveSpec { margin: 1.2, exclude_diagonal, scale: 0.7 };
        let (_, _, g) = rloss::contrastive_loss_f64(&dist, &la, &lb, spec);
        fd_check(&format!("contrastive exclude_diagonal={exclude_diagonal}"), &dist, &g, |d| {
            rloss::contrastive_loss_f64(d, &la, &lb, spec).0
        });
    }
    // Triplets with repeated cells, one invalid; hinge values kept away from 0.
    let triplets = vec![[0, 1, 0, 2], [0, 1, 0, 3], [1, 1, 4, 1], [2, 5, 2, 0], [NO_INDEX, 0, 0, 0], [4, 4, 3, 4]];
    let spec = rloss::TripletSpec { margin: 0.5, scale: 1.3 };
    let (_, _, g) = rloss::triplet_loss_f64(&dist, &triplets, spec);
    fd_check("triplet", &dist, &g, |d| rloss::triplet_loss_f64(d, &triplets, spec).0);
    let mut labels_p = labels(&mut rng, m, k as u64);
    labels_p[2] = k as u32 + 5; // an unlabelled row
    let spec = rloss::ProxyNcaSpec { temperature: 0.3, scale: 0.9 };
    let (_, _, g) = rloss::proxy_nca_loss_f64(&dist, &labels_p, spec);
    fd_check("proxy_nca", &dist, &g, |d| rloss::proxy_nca_loss_f64(d, &labels_p, spec).0);
}

/// ProxyNCA end to end through the references: x and proxies normalised, squared distances, the loss;
/// gradients to x and to the proxies by the chain of reference backwards, against finite differences.
#[test]
fn proxy_nca_chain_gradients_by_finite_differences() {
    let mut rng = Rng::new(105);
    let (m, c, d) = (4, 3, 5);
    let x = t64(&rng.tensor([m, d, 1, 1]));
    let proxies = t64(&rng.tensor([c, d, 1, 1]));
    let lab = labels(&mut rng, m, c as u64);
    let spec = rloss::ProxyNcaSpec { temperature: 0.5, scale: 1.0 };
    let eps = metric::L2_NORM_EPS as f64;
    let loss = |x: &Tensor64, p: &Tensor64| {
        let (xn, pn) = (rnorm::l2_normalize_f64(x, eps), rnorm::l2_normalize_f64(p, eps));
        rloss::proxy_nca_loss_f64(&rdist::pairwise_distance_f64(&xn, &pn, true, 0.0), &lab, spec).0
    };
    let (xn, pn) = (rnorm::l2_normalize_f64(&x, eps), rnorm::l2_normalize_f64(&proxies, eps));
    let dist = rdist::pairwise_distance_f64(&xn, &pn, true, 0.0);
    let (_, _, g) = rloss::proxy_nca_loss_f64(&dist, &lab, spec);
    let (dxn, dpn) = rdist::pairwise_distance_backward_f64(&xn, &pn, &g, true, 0.0);
    let dx = rnorm::l2_normalize_backward_f64(&x, &dxn, eps);
    let dp = rnorm::l2_normalize_backward_f64(&proxies, &dpn, eps);
    fd_check("proxy_nca chain d/dx", &x, &dx, |x| loss(x, &proxies));
    fd_check("proxy_nca chain d/dproxies", &proxies, &dp, |p| loss(&x, p));
}

// ---------------------------------------------------------------------------------------------------------
// GPU against the references

#[test]
fn l2_normalize_matches_reference() {
    let Some(ctx) = gpu() else { return };
    let mut rng = Rng::new(201);
    let eps = metric::L2_NORM_EPS;
    // A dense map (odd plane, batch 2) and rows spanning several workgroups (700 rows, D = 128).
    for shape in [[2, 7, 9, 11], [700, 128, 1, 1], [3, 1, 5, 5]] {
        let x = rng.tensor(shape);
        let dy = rng.tensor(shape);
        let (gx, gdy) = (ctx.upload("x", &x).unwrap(), ctx.upload("dy", &dy).unwrap());
        let (y, dx) = (nan_tensor(ctx, "y", shape), nan_tensor(ctx, "dx", shape));
        let mut rec = ctx.recorder("l2_normalize test");
        metric::l2_normalize(&mut rec, &gx, &y, eps).unwrap();
        metric::l2_normalize_backward(&mut rec, &gx, &gdy, &dx, eps).unwrap();
        rec.submit().unwrap();
        let y_ref = rnorm::l2_normalize_f64(&t64(&x), eps as f64).to_f32();
        let dx_ref = rnorm::l2_normalize_backward_f64(&t64(&x), &t64(&dy), eps as f64).to_f32();
        check(&format!("l2_normalize {shape:?}"), &ctx.download(&y).unwrap().data, &y_ref.data, 1e-6, 1e-5);
        check(&format!("l2_normalize_backward {shape:?}"), &ctx.download(&dx).unwrap().data, &dx_ref.data, 1e-5, 1e-4);
    }
}

#[test]
fn sample_descriptors_match_reference() {
    let Some(ctx) = gpu() else { return };
    let mut rng = Rng::new(202);
    for (n, d, h, w, k, stride) in [(2, 5, 13, 17, 37, 4), (1, 16, 8, 8, 300, 2), (3, 3, 1, 6, 5, 1)] {
        let grid = GridSpec { stride };
        let map = rng.tensor([n, d, h, w]);
        let mut points = HostTensor::zeros([n, k, 2, 1]);
        for (i, v) in points.data.iter_mut().enumerate() {
            let extent = if i % 2 == 0 { w } else { h } as f32 * stride as f32;
            *v = (rng.uniform() * 0.65 + 0.5) * extent; // some beyond the grid on both sides
        }
        let dout = rng.tensor([n * k, d, 1, 1]);
        let (gm, gp, gd) = (
            ctx.upload("map", &map).unwrap(),
            ctx.upload("points", &points).unwrap(),
            ctx.upload("dout", &dout).unwrap(),
        );
        let out = nan_tensor(ctx, "rows", [n * k, d, 1, 1]);
        let dmap = nan_tensor(ctx, "dmap", [n, d, h, w]);
        let dpoints = nan_tensor(ctx, "dpoints", [n, k, 2, 1]);
        let mut rec = ctx.recorder("sample test");
        metric::sample_descriptors(&mut rec, &gm, &gp, grid, &out).unwrap();
        metric::sample_descriptors_backward(&mut rec, &gp, &gd, grid, &dmap, GradWrite::Overwrite).unwrap();
        metric::sample_descriptors_backward_points(&mut rec, &gm, &gp, &gd, grid, &dpoints).unwrap();
        rec.submit().unwrap();
        let (map64, points64, dout64) = (t64(&map), t64(&points), t64(&dout));
        let what = format!("n{n} d{d} {h}x{w} k{k} stride {stride}");
        let out_ref = rsample::sample_descriptors_f64(&map64, &points64, grid).to_f32();
        check(&format!("sample {what}"), &ctx.download(&out).unwrap().data, &out_ref.data, 1e-5, 1e-5);
        let dmap_ref = rsample::sample_descriptors_backward_f64(map.shape, &points64, &dout64, grid).to_f32();
        check(&format!("sample d/dmap {what}"), &ctx.download(&dmap).unwrap().data, &dmap_ref.data, 1e-5, 1e-5);
        let dp_ref = rsample::sample_descriptors_backward_points_f64(&map64, &points64, &dout64, grid).to_f32();
        check(&format!("sample d/dpoints {what}"), &ctx.download(&dpoints).unwrap().data, &dp_ref.data, 1e-4, 1e-4);
        // Accumulate: a second backward adds the same gradient again.
        let mut rec = ctx.recorder("sample accumulate");
        metric::sample_descriptors_backward(&mut rec, &gp, &gd, grid, &dmap, GradWrite::Accumulate).unwrap();
        rec.submit().unwrap();
        let twice: Vec<f32> = dmap_ref.data.iter().map(|v| 2.0 * v).collect();
        check(&format!("sample d/dmap accumulated {what}"), &ctx.download(&dmap).unwrap().data, &twice, 2e-5, 1e-5);
    }
}

/// A channel range of the map (offset > 0, ending before the last channel): the rows hold those channels
/// (also equal to the full reference's columns), the map gradient lands in them only (the other channels
/// zeroed on overwrite, kept on accumulate), and the point gradient sees only them.
#[test]
fn sample_descriptors_channel_range_matches_reference() {
    let Some(ctx) = gpu() else { return };
    let mut rng = Rng::new(212);
    for (n, d, h, w, k, stride, channels) in [(2, 12, 9, 11, 37, 4, 3..7), (1, 8, 5, 6, 300, 2, 6..8)] {
        let grid = GridSpec { stride };
        let c = channels.len();
        let map = rng.tensor([n, d, h, w]);
        let mut points = HostTensor::zeros([n, k, 2, 1]);
        for (i, v) in points.data.iter_mut().enumerate() {
            let extent = if i % 2 == 0 { w } else { h } as f32 * stride as f32;
            *v = (rng.uniform() * 0.65 + 0.5) * extent;
        }
        let dout = rng.tensor([n * k, c, 1, 1]);
        let (gm, gp, gd) = (
            ctx.upload("map", &map).unwrap(),
            ctx.upload("points", &points).unwrap(),
            ctx.upload("dout", &dout).unwrap(),
        );
        let out = nan_tensor(ctx, "rows", [n * k, c, 1, 1]);
        let dmap = nan_tensor(ctx, "dmap", [n, d, h, w]);
        let dpoints = nan_tensor(ctx, "dpoints", [n, k, 2, 1]);
        let mut rec = ctx.recorder("sample channels test");
        metric::sample_descriptors_channels(&mut rec, &gm, &gp, grid, channels.clone(), &out).unwrap();
        metric::sample_descriptors_channels_backward(
            &mut rec,
            &gp,
            &gd,
            grid,
            channels.clone(),
            &dmap,
            GradWrite::Overwrite,
        )
        .unwrap();
        metric::sample_descriptors_channels_backward_points(&mut rec, &gm, &gp, &gd, grid, channels.clone(), &dpoints)
            .unwrap();
        rec.submit().unwrap();
        let (map64, points64, dout64) = (t64(&map), t64(&points), t64(&dout));
        let what = format!("n{n} d{d} channels {channels:?} {h}x{w} k{k} stride {stride}");
        let out_ref = rsample::sample_descriptors_channels_f64(&map64, &points64, grid, channels.clone());
        let full = rsample::sample_descriptors_f64(&map64, &points64, grid);
        let columns: Vec<f64> = full.data.chunks(d).flat_map(|r| r[channels.clone()].to_vec()).collect();
        assert_eq!(out_ref.data, columns, "{what}: the channel reference is not the full reference's columns");
        check(&format!("sample {what}"), &ctx.download(&out).unwrap().data, &out_ref.to_f32().data, 1e-5, 1e-5);
        let dmap_ref =
            rsample::sample_descriptors_channels_backward_f64(map.shape, &points64, &dout64, grid, channels.clone());
        let outside = (0..dmap_ref.data.len()).filter(|i| !channels.contains(&(i / (h * w) % d)));
        assert!(outside.clone().all(|i| dmap_ref.data[i] == 0.0));
        let dmap_ref = dmap_ref.to_f32();
        check(&format!("sample d/dmap {what}"), &ctx.download(&dmap).unwrap().data, &dmap_ref.data, 1e-5, 1e-5);
        let dp_ref = rsample::sample_descriptors_channels_backward_points_f64(
            &map64,
            &points64,
            &dout64,
            grid,
            channels.clone(),
        )
        .to_f32();
        check(&format!("sample d/dpoints {what}"), &ctx.download(&dpoints).unwrap().data, &dp_ref.data, 1e-4, 1e-4);
        // Accumulate onto a map gradient of 1s: the range gains the gradient, the rest stays 1.
        ctx.fill(&dmap, 1.0).unwrap();
        let mut rec = ctx.recorder("sample channels accumulate");
        metric::sample_descriptors_channels_backward(
            &mut rec,
            &gp,
            &gd,
            grid,
            channels.clone(),
            &dmap,
            GradWrite::Accumulate,
        )
        .unwrap();
        rec.submit().unwrap();
        let plus_one: Vec<f32> = dmap_ref.data.iter().map(|v| 1.0 + v).collect();
        check(&format!("sample d/dmap accumulated {what}"), &ctx.download(&dmap).unwrap().data, &plus_one, 2e-5, 1e-5);
    }
    // A range outside the map is refused, naming the channels.
    let (gm, gp) = (ctx.tensor("map", [1, 4, 3, 3]).unwrap(), ctx.tensor("points", [1, 2, 2, 1]).unwrap());
    let out = ctx.tensor("rows", [2, 2, 1, 1]).unwrap();
    let mut rec = ctx.recorder("bad range");
    let e = metric::sample_descriptors_channels(&mut rec, &gm, &gp, GridSpec { stride: 4 }, 3..5, &out).unwrap_err();
    assert!(matches!(e, Error::InvalidParam { .. }) && e.to_string().contains("3..5"), "{e}");
}

#[test]
fn pairwise_distance_matches_reference() {
    let Some(ctx) = gpu() else { return };
    let mut rng = Rng::new(203);
    let eps = metric::DISTANCE_EPS;
    for (m, k, d) in [(70, 45, 13), (33, 129, 128), (1, 1, 3)] {
        let a = rng.tensor([m, d, 1, 1]);
        let mut b = rng.tensor([k, d, 1, 1]);
        b.data[..d].copy_from_slice(&a.data[..d]); // coincident rows 0
        let g = rng.tensor([m, k, 1, 1]);
        let (ga, gb, gg) = (ctx.upload("a", &a).unwrap(), ctx.upload("b", &b).unwrap(), ctx.upload("g", &g).unwrap());
        for squared in [false, true] {
            let dist = nan_tensor(ctx, "dist", [m, k, 1, 1]);
            let (da, db) = (nan_tensor(ctx, "da", [m, d, 1, 1]), nan_tensor(ctx, "db", [k, d, 1, 1]));
            let mut rec = ctx.recorder("distance test");
            metric::pairwise_distance(&mut rec, &ga, &gb, squared, eps, &dist).unwrap();
            metric::pairwise_distance_backward(
                &mut rec,
                &ga,
                &gb,
                &dist,
                &gg,
                squared,
                Some((&da, GradWrite::Overwrite)),
                Some((&db, GradWrite::Overwrite)),
            )
            .unwrap();
            rec.submit().unwrap();
            let (a64, b64) = (t64(&a), t64(&b));
            let what = format!("{m}x{k} d{d} squared={squared}");
            let dist_ref = rdist::pairwise_distance_f64(&a64, &b64, squared, eps as f64).to_f32();
            check(&format!("distance {what}"), &ctx.download(&dist).unwrap().data, &dist_ref.data, 1e-5, 1e-5);
            let (da_ref, db_ref) = rdist::pairwise_distance_backward_f64(&a64, &b64, &t64(&g), squared, eps as f64);
            // The GPU weights read the f32 distances: at the coincident pair (d = 1e-3) a relative 1e-4
            // error of d is 1e-4 of a gradient term of size |g| |a - b| / d <= |g|.
            check(
                &format!("distance d/dA {what}"),
                &ctx.download(&da).unwrap().data,
                &da_ref.to_f32().data,
                1e-4,
                1e-4,
            );
            check(
                &format!("distance d/dB {what}"),
                &ctx.download(&db).unwrap().data,
                &db_ref.to_f32().data,
                1e-4,
                1e-4,
            );
        }
    }
}

/// A = B (one batch against itself): both gradients land in one tensor, the second accumulated.
#[test]
fn pairwise_distance_self_gradient_accumulates() {
    let Some(ctx) = gpu() else { return };
    let mut rng = Rng::new(204);
    let (m, d) = (50, 12);
    let x = rng.tensor([m, d, 1, 1]);
    let g = rng.tensor([m, m, 1, 1]);
    let (gx, gg) = (ctx.upload("x", &x).unwrap(), ctx.upload("g", &g).unwrap());
    let dist = nan_tensor(ctx, "dist", [m, m, 1, 1]);
    let dx = nan_tensor(ctx, "dx", [m, d, 1, 1]);
    let mut rec = ctx.recorder("self distance");
    metric::pairwise_distance(&mut rec, &gx, &gx, false, metric::DISTANCE_EPS, &dist).unwrap();
    metric::pairwise_distance_backward(
        &mut rec,
        &gx,
        &gx,
        &dist,
        &gg,
        false,
        Some((&dx, GradWrite::Overwrite)),
        Some((&dx, GradWrite::Accumulate)),
    )
    .unwrap();
    rec.submit().unwrap();
    let x64 = t64(&x);
    let (da, db) = rdist::pairwise_distance_backward_f64(&x64, &x64, &t64(&g), false, metric::DISTANCE_EPS as f64);
    let sum: Vec<f32> = da.data.iter().zip(&db.data).map(|(p, q)| (p + q) as f32).collect();
    check("distance A = B, dA + dB", &ctx.download(&dx).unwrap().data, &sum, 1e-4, 1e-4);
}

/// Uploads a labelled distance matrix.
struct Batch {
    dist: Tensor,
    la: Indices,
    lb: Indices,
}

impl Batch {
    fn new(ctx: &Context, dist: &HostTensor, la: &[u32], lb: &[u32]) -> Batch {
        Batch {
            dist: ctx.upload("dist", dist).unwrap(),
            la: Indices::upload(ctx, "labels a", la.len(), 1, la).unwrap(),
            lb: Indices::upload(ctx, "labels b", lb.len(), 1, lb).unwrap(),
        }
    }
    fn view(&self) -> LabelledDistances<'_> {
        LabelledDistances { dist: &self.dist, labels_a: &self.la, labels_b: &self.lb }
    }
}

/// Runs reduce_sum over `terms` and returns the sum.
fn gpu_sum(ctx: &Context, terms: &Tensor) -> f32 {
    let out = nan_tensor(ctx, "loss", [1, 1, 1, 1]);
    let mut rec = ctx.recorder("sum");
    reduce_sum(&mut rec, terms, &out, 0).unwrap();
    rec.submit().unwrap();
    ctx.download(&out).unwrap().data[0]
}

#[test]
fn contrastive_loss_matches_reference() {
    let Some(ctx) = gpu() else { return };
    let mut rng = Rng::new(205);
    for (m, k, classes, exclude_diagonal) in [(300, 130, 20, false), (64, 64, 8, true), (5, 7, 1, false)] {
        let dist = rng.tensor([m, k, 1, 1]);
        let dist = HostTensor { data: dist.data.iter().map(|v| 1.0 + v).collect(), ..dist };
        let (la, lb) = (labels(&mut rng, m, classes), labels(&mut rng, k, classes));
        let batch = Batch::new(ctx, &dist, &la, &lb);
        let spec = metric::ContrastiveSpec { margin: 1.1, exclude_diagonal, scale: 2.0 };
        let terms = nan_tensor(ctx, "terms", [m, 1, 1, 1]);
        let grad = nan_tensor(ctx, "grad", [m, k, 1, 1]);
        let mut rec = ctx.recorder("contrastive");
        metric::contrastive_loss(&mut rec, &batch.view(), spec, &terms, &grad, GradWrite::Overwrite).unwrap();
        rec.submit().unwrap();
        let (loss, t_ref, g_ref) = rloss::contrastive_loss_f64(&t64(&dist), &la, &lb, spec);
        let what = format!("contrastive {m}x{k} classes {classes} exclude_diagonal={exclude_diagonal}");
        check(&format!("{what} terms"), &ctx.download(&terms).unwrap().data, &f32s(&t_ref), 1e-6, 1e-5);
        check(&format!("{what} grad"), &ctx.download(&grad).unwrap().data, &g_ref.to_f32().data, 1e-7, 1e-5);
        check(&format!("{what} loss"), &[gpu_sum(ctx, &terms)], &[loss as f32], 1e-6, 1e-5);
    }
}

#[test]
fn triplet_loss_matches_reference() {
    let Some(ctx) = gpu() else { return };
    let mut rng = Rng::new(206);
    let (m, k, t) = (90, 70, 400);
    let dist = rng.tensor([m, k, 1, 1]);
    let mut triplets: Vec<[u32; 4]> = (0..t)
        .map(|_| {
            let a = (rng.next_u64() % m as u64) as u32;
            let p = (rng.next_u64() % k as u64) as u32;
            let n = (rng.next_u64() % k as u64) as u32;
            if rng.next_u64().is_multiple_of(4) {
                [a, p, (rng.next_u64() % m as u64) as u32, p] // a column negative
            } else {
                [a, p, a, n]
            }
        })
        .collect();
    triplets[3] = [NO_INDEX, 0, 0, 0];
    triplets[7] = [0, k as u32, 0, 1]; // out of range
    triplets[11] = triplets[10]; // a duplicate
    let flat: Vec<u32> = triplets.iter().flatten().copied().collect();
    let gt = Indices::upload(ctx, "triplets", t, 4, &flat).unwrap();
    let gd = ctx.upload("dist", &dist).unwrap();
    let spec = metric::TripletSpec { margin: 0.3, scale: 1.5 };
    let terms = nan_tensor(ctx, "terms", [t, 1, 1, 1]);
    let grad = nan_tensor(ctx, "grad", [m, k, 1, 1]);
    let mut rec = ctx.recorder("triplet");
    metric::triplet_loss(&mut rec, &gd, &gt, spec, &terms).unwrap();
    metric::triplet_loss_backward(&mut rec, &gd, &gt, spec, &grad, GradWrite::Overwrite).unwrap();
    rec.submit().unwrap();
    let (loss, t_ref, g_ref) = rloss::triplet_loss_f64(&t64(&dist), &triplets, spec);
    check("triplet terms", &ctx.download(&terms).unwrap().data, &f32s(&t_ref), 1e-6, 1e-5);
    check("triplet grad", &ctx.download(&grad).unwrap().data, &g_ref.to_f32().data, 1e-6, 1e-5);
    check("triplet loss", &[gpu_sum(ctx, &terms)], &[loss as f32], 1e-6, 1e-5);
}

#[test]
fn proxy_nca_loss_matches_reference() {
    let Some(ctx) = gpu() else { return };
    let mut rng = Rng::new(207);
    let (m, c) = (300, 17);
    let dist = rng.tensor([m, c, 1, 1]);
    let dist = HostTensor { data: dist.data.iter().map(|v| 2.0 + 2.0 * v).collect(), ..dist };
    let mut lab = labels(&mut rng, m, c as u64);
    lab[5] = c as u32; // unlabelled
    let gd = ctx.upload("dist", &dist).unwrap();
    let gl = Indices::upload(ctx, "labels", m, 1, &lab).unwrap();
    let spec = metric::ProxyNcaSpec { temperature: 0.2, scale: 1.0 };
    let terms = nan_tensor(ctx, "terms", [m, 1, 1, 1]);
    let grad = nan_tensor(ctx, "grad", [m, c, 1, 1]);
    let mut rec = ctx.recorder("proxy nca");
    metric::proxy_nca_loss(&mut rec, &gd, &gl, spec, &terms, &grad, GradWrite::Overwrite).unwrap();
    rec.submit().unwrap();
    let (loss, t_ref, g_ref) = rloss::proxy_nca_loss_f64(&t64(&dist), &lab, spec);
    check("proxy_nca terms", &ctx.download(&terms).unwrap().data, &f32s(&t_ref), 1e-6, 1e-5);
    check("proxy_nca grad", &ctx.download(&grad).unwrap().data, &g_ref.to_f32().data, 1e-6, 1e-5);
    check("proxy_nca loss", &[gpu_sum(ctx, &terms)], &[loss as f32], 1e-5, 1e-5);
}

// ---------------------------------------------------------------------------------------------------------
// Samplers: exact agreement with the references

/// A labelled batch of random unit descriptors (A row 1 of a class absent from B), distances computed on
/// the GPU and downloaded, so GPU and reference mine the same f32 matrix.
struct MiningCase {
    batch: Batch,
    dist64: Tensor64,
    la: Vec<u32>,
    lb: Vec<u32>,
}

fn mining_case(ctx: &Context, rng: &mut Rng, m: usize, k: usize, d: usize, classes: u64) -> MiningCase {
    let a = unit_rows(rng, m, d);
    let b = unit_rows(rng, k, d);
    let (mut la, lb) = (labels(rng, m, classes), labels(rng, k, classes));
    la[1] = classes as u32 + 7; // an anchor without positives
    let (ga, gb) = (ctx.upload("a", &a).unwrap(), ctx.upload("b", &b).unwrap());
    let dist = ctx.tensor("dist", [m, k, 1, 1]).unwrap();
    let mut rec = ctx.recorder("mining distances");
    metric::pairwise_distance(&mut rec, &ga, &gb, false, metric::DISTANCE_EPS, &dist).unwrap();
    rec.submit().unwrap();
    let host = ctx.download(&dist).unwrap();
    let batch = Batch {
        dist,
        la: Indices::upload(ctx, "la", m, 1, &la).unwrap(),
        lb: Indices::upload(ctx, "lb", k, 1, &lb).unwrap(),
    };
    MiningCase { batch, dist64: t64(&host), la, lb }
}

fn new_triplets(ctx: &Context, t: usize) -> Indices {
    let tr = Indices::zeros(ctx, "triplets", t, 4).unwrap();
    tr.fill(ctx, SENTINEL).unwrap();
    tr
}

#[test]
fn samplers_match_reference_exactly() {
    let Some(ctx) = gpu() else { return };
    let mut rng = Rng::new(301);
    // 300 anchors x 2 slots span several workgroups; 40 classes over 300 / 260 rows: several positives each,
    // some anchors with none.
    let (m, k, per_anchor) = (300, 260, 2);
    let c = mining_case(ctx, &mut rng, m, k, 16, 40);
    let view = c.batch.view();
    let t = m * per_anchor;
    for (choice, exclude_diagonal, seed) in
        [(metric::PositiveChoice::Hardest, false, 0), (metric::PositiveChoice::Random, true, 77)]
    {
        let tr = new_triplets(ctx, t);
        let mut rec = ctx.recorder("positives");
        let gseed = metric::SeedBuffer::new(ctx, seed).unwrap();
        metric::mine_positives(&mut rec, &view, choice, per_anchor, exclude_diagonal, &gseed, &tr).unwrap();
        rec.submit().unwrap();
        let got = to_triplets(&tr.download(ctx).unwrap());
        let expected = rmine::mine_positives_ref(&c.dist64, &c.la, &c.lb, per_anchor, choice, exclude_diagonal, seed);
        assert_eq!(got, expected, "positives {choice:?}");
        assert!(got.iter().any(|x| x[1] == NO_INDEX) && got.iter().any(|x| x[1] != NO_INDEX));

        // Each negative sampler on these positives.
        let base = expected;
        let run = |name: &str, f: &dyn Fn(&mut corrflow::runtime::Recorder<'_>, &Indices)| {
            let tr =
                Indices::upload(ctx, "triplets", t, 4, &base.iter().flatten().copied().collect::<Vec<_>>()).unwrap();
            let mut rec = ctx.recorder(name);
            f(&mut rec, &tr);
            rec.submit().unwrap();
            to_triplets(&tr.download(ctx).unwrap())
        };
        let seed_1234 = metric::SeedBuffer::new(ctx, 1234).unwrap();
        let got = run("random", &|rec, tr| metric::mine_random_negatives(rec, &view, &seed_1234, tr).unwrap());
        let mut exp = base.clone();
        rmine::mine_random_negatives_ref(&mut exp, &c.la, &c.lb, 1234);
        assert_eq!(got, exp, "random negatives");
        assert!(got.iter().all(|x| c.lb[x[3] as usize] != c.la[x[0] as usize]));
        for symmetric in [false, true] {
            let got = run("hardest", &|rec, tr| metric::mine_hardest_negatives(rec, &view, symmetric, tr).unwrap());
            let mut exp = base.clone();
            rmine::mine_hardest_negatives_ref(&mut exp, &c.dist64, &c.la, &c.lb, symmetric);
            assert_eq!(got, exp, "hardest negatives symmetric={symmetric}");
            if symmetric {
                assert!(got.iter().any(|x| x[2] != x[0]), "some column negatives win");
            }
        }
        let got = run("semihard", &|rec, tr| metric::mine_semihard_negatives(rec, &view, 0.2, tr).unwrap());
        let mut exp = base.clone();
        rmine::mine_semihard_negatives_ref(&mut exp, &c.dist64, &c.la, &c.lb, 0.2);
        assert_eq!(got, exp, "semi-hard negatives");
        let mut hardest = base.clone();
        rmine::mine_hardest_negatives_ref(&mut hardest, &c.dist64, &c.la, &c.lb, false);
        let semi = got.iter().zip(&hardest).filter(|(s, h)| s[3] != h[3]).count();
        eprintln!("semi-hard: {semi} of {t} slots chose another negative than the hardest");
        assert!(semi > 0);
    }
}

#[test]
fn random_choices_are_reproducible_and_uniform() {
    // The hash: values computed independently (Python, arbitrary-precision integers mod 2^32) and a uniform
    // spread.
    assert_eq!(rmine::pcg_hash(0), 129_708_002);
    assert_eq!(rmine::hash_u32(1, 2, 3), 3_404_032_338);
    assert_ne!(rmine::hash_u32(1, 2, 3), rmine::hash_u32(1, 2, 4));
    let mut counts = [0u32; 10];
    for i in 0..100_000 {
        counts[(rmine::hash_u32(9, i, 1) % 10) as usize] += 1;
    }
    assert!(counts.iter().all(|&n| (9_500..10_500).contains(&n)), "{counts:?}");
    let Some(ctx) = gpu() else { return };
    // One anchor, 50 slots, 9 negatives: GPU draws are the reference's and cover every negative.
    let la = [0u32];
    let lb: Vec<u32> = (0..10).collect();
    let dist = HostTensor::zeros([1, 10, 1, 1]);
    let batch = Batch::new(ctx, &dist, &la, &lb);
    let t = 50;
    let base: Vec<u32> = (0..t).flat_map(|_| [0, 0, 0, NO_INDEX]).collect();
    let tr = Indices::upload(ctx, "triplets", t, 4, &base).unwrap();
    let mut rec = ctx.recorder("random");
    metric::mine_random_negatives(&mut rec, &batch.view(), &metric::SeedBuffer::new(ctx, 5).unwrap(), &tr).unwrap();
    rec.submit().unwrap();
    let got = to_triplets(&tr.download(ctx).unwrap());
    let mut exp = to_triplets(&base);
    rmine::mine_random_negatives_ref(&mut exp, &la, &lb, 5);
    assert_eq!(got, exp);
    let mut seen: Vec<u32> = got.iter().map(|x| x[3]).collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen, (1..10).collect::<Vec<u32>>());
}

/// A recorded program freezes its parameters; the samplers read their seed from a buffer, so a replay draws
/// anew after `SeedBuffer::set`, each time exactly the reference's choices for that seed.
#[test]
fn replayed_samplers_follow_the_seed_buffer() {
    let Some(ctx) = gpu() else { return };
    let mut rng = Rng::new(304);
    let (m, k) = (70, 90);
    let c = mining_case(ctx, &mut rng, m, k, 8, 12);
    let seed = metric::SeedBuffer::new(ctx, 1).unwrap();
    let tr = new_triplets(ctx, m);
    let mut rec = ctx.recorder("record sampling");
    metric::mine_positives(&mut rec, &c.batch.view(), metric::PositiveChoice::Random, 1, false, &seed, &tr).unwrap();
    metric::mine_random_negatives(&mut rec, &c.batch.view(), &seed, &tr).unwrap();
    let program = rec.finish_program().unwrap();
    let mut draws = Vec::new();
    for s in [11u32, 12, 11] {
        seed.set(ctx, s).unwrap();
        let mut rec = ctx.recorder("replay sampling");
        rec.replay(&program);
        rec.submit().unwrap();
        let got = to_triplets(&tr.download(ctx).unwrap());
        let mut exp = rmine::mine_positives_ref(&c.dist64, &c.la, &c.lb, 1, metric::PositiveChoice::Random, false, s);
        rmine::mine_random_negatives_ref(&mut exp, &c.la, &c.lb, s);
        assert_eq!(got, exp, "seed {s}");
        draws.push(got);
    }
    assert_ne!(draws[0], draws[1], "a new seed, new draws");
    assert_eq!(draws[0], draws[2], "the same seed, the same draws");
}

#[test]
fn distance_weighted_sampling_matches_reference() {
    let Some(ctx) = gpu() else { return };
    let mut rng = Rng::new(302);
    // D = 128 unit descriptors (distances concentrate near sqrt(2): the regime the weights are for).
    let (m, k, d) = (260, 200, 128);
    let c = mining_case(ctx, &mut rng, m, k, d, 30);
    let per_anchor = 3;
    let t = m * per_anchor;
    let mut base =
        rmine::mine_positives_ref(&c.dist64, &c.la, &c.lb, per_anchor, metric::PositiveChoice::Hardest, false, 0);
    base[5][0] = NO_INDEX; // an invalid anchor
    let cfg = metric::DistanceWeighted { dim: d as u32, cutoff: 0.5, nonzero_loss_cutoff: 1.4 };
    let tr = Indices::upload(ctx, "triplets", t, 4, &base.iter().flatten().copied().collect::<Vec<_>>()).unwrap();
    let mut rec = ctx.recorder("distance weighted");
    metric::mine_distance_weighted(&mut rec, &c.batch.view(), cfg, &metric::SeedBuffer::new(ctx, 99).unwrap(), &tr)
        .unwrap();
    rec.submit().unwrap();
    let got = to_triplets(&tr.download(ctx).unwrap());
    let mut exp = base.clone();
    let margins = rmine::mine_distance_weighted_ref(&mut exp, &c.dist64, &c.la, &c.lb, cfg, 99);
    let mut differ = 0;
    for (s, (g, e)) in got.iter().zip(&exp).enumerate() {
        if g != e {
            differ += 1;
            assert!(margins[s] < 1e-4, "slot {s}: GPU {g:?}, reference {e:?}, draw {:.2e} from a boundary", margins[s]);
        }
    }
    eprintln!("distance weighted: {differ} of {t} draws differ, all within 1e-4 of a bucket boundary");
    assert!(got[5][3] == NO_INDEX);
    // The weights favour the nearer negatives among those below the cutoff: the mean sampled distance is
    // below the mean distance of the eligible negatives.
    let valid: Vec<&[u32; 4]> = got.iter().filter(|x| x[3] != NO_INDEX).collect();
    let at = |x: &[u32; 4]| c.dist64.data[x[2] as usize * k + x[3] as usize];
    let sampled = valid.iter().map(|x| at(x)).sum::<f64>() / valid.len() as f64;
    let eligible: Vec<f64> = c.dist64.data.iter().copied().filter(|&v| v < 1.4).collect();
    let mean_eligible = eligible.iter().sum::<f64>() / eligible.len() as f64;
    eprintln!("distance weighted: mean sampled distance {sampled:.4}, mean eligible {mean_eligible:.4}");
    assert!(sampled < mean_eligible);
}

#[test]
fn distance_weighted_frequencies_follow_the_weights() {
    // One anchor, five negatives at chosen distances, 20000 draws in the reference (which the GPU follows):
    // the frequencies match the normalised weights q(d)^-1.
    let cfg = rmine::DistanceWeighted { dim: 16, cutoff: 0.5, nonzero_loss_cutoff: 1.4 };
    let ds = [0.3, 0.7, 0.9, 1.1, 1.3, 1.5];
    let dist = Tensor64::new([1, 6, 1, 1], ds.to_vec()).unwrap();
    let (la, lb) = ([0u32], [1u32, 2, 3, 4, 5, 6]);
    let n = 20_000;
    let mut tr = vec![[0u32, NO_INDEX, 0, NO_INDEX]; n];
    rmine::mine_distance_weighted_ref(&mut tr, &dist, &la, &lb, cfg, 3);
    let w: Vec<f64> = ds.iter().map(|&d| if d < 1.4 { cfg.log_weight(d).exp() } else { 0.0 }).collect();
    let total: f64 = w.iter().sum();
    for (j, wj) in w.iter().enumerate() {
        let freq = tr.iter().filter(|x| x[3] == j as u32).count() as f64 / n as f64;
        let p = wj / total;
        assert!((freq - p).abs() < 4.0 * (p * (1.0 - p) / n as f64).sqrt() + 1e-9, "column {j}: {freq} vs {p}");
    }
}

#[test]
fn class_means_tree_and_class_negatives() {
    let Some(ctx) = gpu() else { return };
    let mut rng = Rng::new(303);
    // 12 classes in 3 well-separated groups (4 classes around each of 3 far-apart centres).
    let (classes, d, per_class) = (12usize, 8usize, 25usize);
    let centres = unit_rows(&mut rng, 3, d);
    let offsets = rng.tensor([classes, d, 1, 1]);
    let m = classes * per_class + 3;
    let mut x = HostTensor::zeros([m, d, 1, 1]);
    let mut lab = vec![0u32; m];
    for (i, label) in lab.iter_mut().enumerate() {
        let cl = i % classes;
        *label = if i >= classes * per_class { classes as u32 + 1 } else { cl as u32 }; // 3 unlabelled rows
        for e in 0..d {
            x.data[i * d + e] = 10.0 * centres.data[(cl % 3) * d + e] + offsets.data[cl * d + e] + 0.1 * rng.uniform();
        }
    }
    let gx = ctx.upload("x", &x).unwrap();
    let gl = Indices::upload(ctx, "labels", m, 1, &lab).unwrap();
    let means = nan_tensor(ctx, "means", [classes + 1, d, 1, 1]); // one class without rows
    let counts = Indices::zeros(ctx, "counts", classes + 1, 1).unwrap();
    counts.fill(ctx, SENTINEL).unwrap();
    let mut rec = ctx.recorder("class means");
    metric::class_means(&mut rec, &gx, &gl, &means, &counts).unwrap();
    rec.submit().unwrap();
    let (means_ref, counts_ref) = rhier::class_means_f64(&t64(&x), &lab, classes + 1);
    let got = ctx.download(&means).unwrap();
    check("class means", &got.data, &means_ref.to_f32().data, 1e-5, 1e-5);
    assert_eq!(counts.download(ctx).unwrap(), counts_ref);

    // The tree: three top-level clusters are the three groups; nearest classes stay within the group.
    let tree = metric::ClassTree::build(&got, &counts_ref).unwrap();
    assert_eq!(tree.merges().len(), classes - 1, "the empty class stays out");
    let groups = tree.clusters(3);
    let expect: Vec<Vec<u32>> = (0..3).map(|g| (0..classes as u32).filter(|c| c % 3 == g).collect()).collect();
    assert_eq!(groups, expect);
    for cl in 0..classes {
        assert!(tree.nearest_classes(cl, 3).iter().all(|&o| o as usize % 3 == cl % 3), "class {cl}");
    }
    let batch_classes = tree.sample_batch_classes(3, 1, 42);
    assert_eq!(batch_classes.len(), 6);
    let anchor_groups: Vec<u32> = batch_classes[..3].iter().map(|c| c % 3).collect();
    assert_eq!(anchor_groups, vec![0, 1, 2], "one anchor class per top-level cluster");
    assert_eq!(batch_classes, tree.sample_batch_classes(3, 1, 42), "reproducible from the seed");

    // Class negatives on the GPU against the reference, with a 2-neighbour table.
    let table = tree.neighbour_table(2);
    let (mm, kk) = (120, 90);
    let la = labels(&mut rng, mm, classes as u64);
    let mut lb = labels(&mut rng, kk, classes as u64);
    lb.iter_mut().filter(|c| **c % 3 == 2).for_each(|c| *c = 0); // group 2 has no B rows: the fallback
    let dist = HostTensor::zeros([mm, kk, 1, 1]);
    let batch = Batch::new(ctx, &dist, &la, &lb);
    let gtable = Indices::upload(ctx, "neighbours", classes + 1, 2, &table).unwrap();
    let base = rmine::mine_positives_ref(&t64(&dist), &la, &lb, 1, metric::PositiveChoice::Hardest, false, 0);
    let tr = Indices::upload(ctx, "triplets", mm, 4, &base.iter().flatten().copied().collect::<Vec<_>>()).unwrap();
    let mut rec = ctx.recorder("class negatives");
    metric::mine_class_negatives(&mut rec, &batch.view(), &gtable, &metric::SeedBuffer::new(ctx, 8).unwrap(), &tr)
        .unwrap();
    rec.submit().unwrap();
    let got = to_triplets(&tr.download(ctx).unwrap());
    let mut exp = base.clone();
    rhier::mine_class_negatives_ref(&mut exp, &la, &lb, &table, 2, 8);
    assert_eq!(got, exp);
    for x in &got {
        let (ca, cb) = (la[x[0] as usize], lb[x[3] as usize]);
        assert_ne!(ca, cb);
        if ca % 3 != 2 && lb.iter().any(|&l| table[ca as usize * 2..ca as usize * 2 + 2].contains(&l)) {
            assert!(table[ca as usize * 2..ca as usize * 2 + 2].contains(&cb), "anchor class {ca}, negative {cb}");
        }
    }
}

/// The neighbour table on the GPU equals the reference exactly: nearest first, ties (distances rounded to
/// a few values) to the lower id, the class itself and classes without rows left out, NO_INDEX padding
/// when k exceeds the classes available; and it agrees with the host tree's table on class means.
#[test]
fn nearest_classes_match_reference() {
    let Some(ctx) = gpu() else { return };
    let mut rng = Rng::new(404);
    for &(c, k) in &[(1usize, 3usize), (7, 9), (70, 8), (300, 32)] {
        let mut d = Tensor64::zeros([c, c, 1, 1]);
        for i in 0..c {
            for j in 0..i {
                // Few distinct values: many ties.
                let v = ((rng.uniform() + 1.0) * 4.0).floor() as f64 / 4.0;
                d.data[i * c + j] = v;
                d.data[j * c + i] = v;
            }
        }
        let counts: Vec<u32> = (0..c).map(|i| if i % 5 == 3 { 0 } else { 1 + (i % 3) as u32 }).collect();
        let gd = ctx.upload("dist", &d.to_f32()).unwrap();
        let gc = Indices::upload(ctx, "counts", c, 1, &counts).unwrap();
        let table = Indices::zeros(ctx, "neighbours", c, k).unwrap();
        table.fill(ctx, SENTINEL).unwrap();
        let mut rec = ctx.recorder("nearest classes");
        metric::nearest_classes(&mut rec, &gd, &gc, &table).unwrap();
        rec.submit().unwrap();
        let got = table.download(ctx).unwrap();
        assert_eq!(got, rhier::nearest_classes_ref(&d, &counts, k), "{c} classes, k = {k}");
        if c >= 7 {
            assert!(got[3 * k..4 * k].iter().all(|&v| v == NO_INDEX), "a class without rows has no neighbours");
        }
    }
    // On class means: the same table as the host tree's.
    let (c, dim) = (40, 16);
    let means = unit_rows(&mut rng, c, dim);
    let counts = vec![2u32; c];
    let gm = ctx.upload("means", &means).unwrap();
    let gd = ctx.tensor("dist", [c, c, 1, 1]).unwrap();
    let gc = Indices::upload(ctx, "counts", c, 1, &counts).unwrap();
    let table = Indices::zeros(ctx, "neighbours", c, 5).unwrap();
    let mut rec = ctx.recorder("nearest classes of means");
    metric::pairwise_distance(&mut rec, &gm, &gm, false, 0.0, &gd).unwrap();
    metric::nearest_classes(&mut rec, &gd, &gc, &table).unwrap();
    rec.submit().unwrap();
    let tree = metric::ClassTree::build(&means, &counts).unwrap();
    assert_eq!(table.download(ctx).unwrap(), tree.neighbour_table(5));
    let e = {
        let mut rec = ctx.recorder("bad k");
        let big = Indices::zeros(ctx, "neighbours", c, 33).unwrap();
        metric::nearest_classes(&mut rec, &gd, &gc, &big).unwrap_err().to_string()
    };
    assert!(e.contains("nearest_classes") && e.contains("k in 1..=32"), "{e}");
}

// ---------------------------------------------------------------------------------------------------------
// Matcher

/// Unit rows A [m, d] and B [k, d]: the first `planted` B rows are noisy copies of distinct A rows, the
/// rest random. Returns (A, B, the A row each planted B row copies).
fn matching_case(rng: &mut Rng, m: usize, k: usize, d: usize, planted: usize) -> (HostTensor, HostTensor, Vec<usize>) {
    let a = unit_rows(rng, m, d);
    let mut b = unit_rows(rng, k, d);
    let mut src = Vec::new();
    assert!(planted <= m && !m.is_multiple_of(7));
    for j in 0..planted {
        let i = (7 * j + 3) % m; // distinct rows (7 and m coprime)
        src.push(i);
        let row: Vec<f32> = (0..d).map(|e| a.data[i * d + e] + 0.15 * rng.uniform() / (d as f32).sqrt()).collect();
        let s = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        b.data[j * d..(j + 1) * d].iter_mut().zip(&row).for_each(|(v, r)| *v = r / s);
    }
    (a, b, src)
}

fn check_nearest(what: &str, ctx: &Context, got: &metric::NearestTwo, expected: &[rmatch::NearestTwoRef]) {
    let idx = got.best_index.download(ctx).unwrap();
    let d1 = ctx.download(&got.best_dist).unwrap().data;
    let d2 = ctx.download(&got.second_dist).unwrap().data;
    // f32 dot products over D = 128 carry ~1e-6 of error: a different best row is allowed only at a near-tie.
    let mut ties = 0;
    for (i, e) in expected.iter().enumerate() {
        if idx[i] != e.best {
            assert!(e.gap < 1e-5, "{what}: row {i}: GPU {} reference {} (gap {:.2e})", idx[i], e.best, e.gap);
            ties += 1;
        }
    }
    let d1_ref: Vec<f32> = expected.iter().map(|e| e.best_dist as f32).collect();
    let d2_ref: Vec<f32> = expected.iter().map(|e| e.second_dist as f32).collect();
    check(&format!("{what} best distance"), &d1, &d1_ref, 2e-5, 1e-5);
    check(&format!("{what} second distance"), &d2, &d2_ref, 2e-5, 1e-5);
    eprintln!("{what}: {ties} near-tie rows pick another best row");
}

#[test]
fn nearest_two_in_tiles_matches_reference() {
    let Some(ctx) = gpu() else { return };
    let mut rng = Rng::new(401);
    // 1001 queries (not a multiple of 4 or of 256); a database of 3 parts (odd sizes), tiles of 300 rows.
    let d = 32;
    let q = unit_rows(&mut rng, 1001, d);
    let parts: Vec<HostTensor> = [517, 300, 3].iter().map(|&n| unit_rows(&mut rng, n, d)).collect();
    let gq = ctx.upload("q", &q).unwrap();
    let gparts: Vec<Tensor> = parts.iter().map(|p| ctx.upload("part", p).unwrap()).collect();
    let out = metric::NearestTwo::new(ctx, 1001).unwrap();
    let all = HostTensor::new([820, d, 1, 1], parts.iter().flat_map(|p| p.data.clone()).collect()).unwrap();
    let expected = rmatch::nearest_two_f64(&t64(&q), &t64(&all));
    for subgroups in [false, true] {
        out.best_index.fill(ctx, SENTINEL).unwrap();
        ctx.fill(&out.best_dist, f32::NAN).unwrap();
        ctx.fill(&out.second_dist, f32::NAN).unwrap();
        let tiles = metric::TileOptions { tile_rows: 300, subgroups };
        let mut rec = ctx.recorder("nearest two");
        metric::nearest_two(&mut rec, &gq, &gparts.iter().collect::<Vec<_>>(), tiles, &out).unwrap();
        rec.submit().unwrap();
        let what = format!("nearest_two 1001 vs 517+300+3 tiles of 300 subgroups={subgroups}");
        check_nearest(&what, ctx, &out, &expected);
    }

    // A one-row database: the second distance is NO_DISTANCE.
    let one = ctx.upload("one", &unit_rows(&mut rng, 1, d)).unwrap();
    let mut rec = ctx.recorder("nearest two, one row");
    metric::nearest_two(&mut rec, &gq, &[&one], Default::default(), &out).unwrap();
    rec.submit().unwrap();
    assert!(out.best_index.download(ctx).unwrap().iter().all(|&i| i == 0));
    assert!(ctx.download(&out.second_dist).unwrap().data.iter().all(|&v| v == metric::NO_DISTANCE));
}

#[test]
fn mutual_matches_match_reference() {
    let Some(ctx) = gpu() else { return };
    let mut rng = Rng::new(402);
    let (m, k, d) = (3000, 2500, 128);
    let (a, b, src) = matching_case(&mut rng, m, k, d, 800);
    let (ga, gb) = (ctx.upload("a", &a).unwrap(), ctx.upload("b", &b).unwrap());
    let (a64, b64) = (t64(&a), t64(&b));
    let ab = rmatch::nearest_two_f64(&a64, &b64);
    let ba = rmatch::nearest_two_f64(&b64, &a64);
    // Ratio 0.8 keeps the planted pairs; 1.0 keeps every mutual pair (random rows too). Both kernels.
    for (ratio, subgroups) in [(0.8f32, true), (1.0, false)] {
        let out = metric::Matches::new(ctx, m, k).unwrap();
        out.index.fill(ctx, SENTINEL).unwrap();
        ctx.fill(&out.ratio, f32::NAN).unwrap();
        let opts = metric::MatchOptions { ratio, tiles: metric::TileOptions { tile_rows: 1024, subgroups } };
        let mut rec = ctx.recorder("mutual matches");
        metric::mutual_matches(&mut rec, &ga, &gb, opts, &out).unwrap();
        rec.submit().unwrap();
        check_nearest(&format!("A -> B ratio {ratio}"), ctx, &out.a_to_b, &ab);
        check_nearest(&format!("B -> A ratio {ratio}"), ctx, &out.b_to_a, &ba);
        let expected = rmatch::mutual_matches_f64(&ab, &ba, ratio as f64);
        let got = out.index.download(ctx).unwrap();
        let got_ratio = ctx.download(&out.ratio).unwrap().data;
        let mut n_matches = 0;
        for i in 0..m {
            match expected[i] {
                Some((j, r)) => {
                    assert_eq!(got[i], j, "row {i}");
                    assert!((got_ratio[i] - r as f32).abs() < 1e-4, "row {i}: ratio {} vs {r}", got_ratio[i]);
                    n_matches += 1;
                }
                None => assert_eq!(got[i], NO_INDEX, "row {i}"),
            }
        }
        let found = src.iter().enumerate().filter(|(j, &i)| got[i] == *j as u32).count();
        eprintln!("mutual matches, ratio {ratio}: {n_matches} of {m} rows; {found} of {} planted pairs", src.len());
        assert_eq!(found, src.len(), "every planted pair is a distinctive mutual match");
        assert!(ratio < 1.0 || n_matches > found, "ratio 1 keeps mutual pairs of random rows too");
        assert_eq!(out.download(ctx).unwrap().len(), n_matches);
    }
}

/// Times the matcher at M = K = 4096, D = 128 (`cargo test --release --test metric_ops -- --ignored
/// --nocapture matcher_timing`): the figure quoted in the op's documentation.
#[test]
#[ignore]
fn matcher_timing_4096() {
    let Some(ctx) = gpu() else { return };
    let mut rng = Rng::new(403);
    let (n, d) = (4096, 128);
    let (a, b, _) = matching_case(&mut rng, n, n, d, 1000);
    let (ga, gb) = (ctx.upload("a", &a).unwrap(), ctx.upload("b", &b).unwrap());
    let out = metric::Matches::new(ctx, n, n).unwrap();
    // Interleaved, best of three each: the machine may be shared.
    let mut best = [f64::INFINITY; 2];
    for _ in 0..3 {
        for (v, subgroups) in [false, true].into_iter().enumerate() {
            let opts = metric::MatchOptions {
                tiles: metric::TileOptions { subgroups, ..Default::default() },
                ..Default::default()
            };
            let start = std::time::Instant::now();
            let mut rec = ctx.recorder("matcher timing");
            metric::mutual_matches(&mut rec, &ga, &gb, opts, &out).unwrap();
            rec.submit().unwrap();
            best[v] = best[v].min(start.elapsed().as_secs_f64());
            assert_eq!(out.download(ctx).unwrap().len(), 1000);
        }
    }
    let gflop = 2.0 * 2.0 * (n * n * d) as f64 / 1e9;
    for (v, name) in ["nn_top2", "nn_top2_subgroup"].iter().enumerate() {
        eprintln!("{name}: M = K = {n}, D = {d}: {:.3} s ({:.1} GFLOP/s of dot products)", best[v], gflop / best[v]);
    }
}

// ---------------------------------------------------------------------------------------------------------
// Errors, not panics

#[test]
fn bad_shapes_and_parameters_are_named_errors() {
    let Some(ctx) = gpu() else { return };
    let t = |shape| ctx.tensor("t", shape).unwrap();
    let mut rec = ctx.recorder("errors");
    let named = |r: corrflow::Result<()>, op: &str| {
        let e = r.unwrap_err();
        assert!(matches!(e, Error::Shape { .. } | Error::InvalidParam { .. }), "{e}");
        assert!(e.to_string().starts_with(op), "{e} should name {op}");
    };
    named(metric::l2_normalize(&mut rec, &t([2, 3, 4, 4]), &t([2, 3, 4, 5]), 1e-10), "l2_normalize");
    named(metric::l2_normalize(&mut rec, &t([2, 3, 4, 4]), &t([2, 3, 4, 4]), f32::NAN), "l2_normalize");
    named(
        metric::sample_descriptors(
            &mut rec,
            &t([2, 3, 4, 4]),
            &t([2, 5, 3, 1]),
            GridSpec { stride: 4 },
            &t([10, 3, 1, 1]),
        ),
        "sample_descriptors",
    );
    named(
        metric::sample_descriptors(
            &mut rec,
            &t([2, 3, 4, 4]),
            &t([2, 5, 2, 1]),
            GridSpec { stride: 0 },
            &t([10, 3, 1, 1]),
        ),
        "sample_descriptors",
    );
    named(
        metric::pairwise_distance(&mut rec, &t([4, 3, 1, 1]), &t([5, 2, 1, 1]), false, 1e-6, &t([4, 5, 1, 1])),
        "pairwise_distance",
    );
    named(
        metric::pairwise_distance(&mut rec, &t([4, 3, 1, 1]), &t([5, 3, 1, 1]), false, -1.0, &t([4, 5, 1, 1])),
        "pairwise_distance",
    );
    let lab = |n| Indices::zeros(ctx, "labels", n, 1).unwrap();
    let (d45, la4, lb4) = (t([4, 5, 1, 1]), lab(4), lab(4));
    let view = LabelledDistances { dist: &d45, labels_a: &la4, labels_b: &lb4 };
    let spec = metric::ContrastiveSpec { margin: 1.0, exclude_diagonal: false, scale: 1.0 };
    named(
        metric::contrastive_loss(&mut rec, &view, spec, &t([4, 1, 1, 1]), &d45, GradWrite::Overwrite),
        "contrastive_loss",
    );
    let trip = Indices::zeros(ctx, "triplets", 3, 3).unwrap();
    named(
        metric::triplet_loss(&mut rec, &d45, &trip, metric::TripletSpec { margin: 1.0, scale: 1.0 }, &t([3, 1, 1, 1])),
        "triplet_loss",
    );
    let spec = metric::ProxyNcaSpec { temperature: 0.0, scale: 1.0 };
    named(
        metric::proxy_nca_loss(&mut rec, &d45, &la4, spec, &t([4, 1, 1, 1]), &d45, GradWrite::Overwrite),
        "proxy_nca_loss",
    );
    let (lb5, trip4) = (lab(5), Indices::zeros(ctx, "triplets", 4, 4).unwrap());
    let view = LabelledDistances { dist: &d45, labels_a: &la4, labels_b: &lb5 };
    let seed = metric::SeedBuffer::new(ctx, 0).unwrap();
    named(
        metric::mine_positives(&mut rec, &view, metric::PositiveChoice::Hardest, 2, false, &seed, &trip4),
        "mine_positives",
    );
    named(metric::mine_semihard_negatives(&mut rec, &view, -1.0, &trip4), "mine_semihard_negatives");
    let cfg = metric::DistanceWeighted { dim: 1, ..Default::default() };
    named(metric::mine_distance_weighted(&mut rec, &view, cfg, &seed, &trip4), "mine_distance_weighted");
    named(
        metric::mutual_matches(
            &mut rec,
            &t([10, 6, 1, 1]),
            &t([12, 6, 1, 1]),
            Default::default(),
            &metric::Matches::new(ctx, 10, 12).unwrap(),
        ),
        "mutual_matches",
    );
    let out = metric::NearestTwo::new(ctx, 10).unwrap();
    named(metric::nearest_two(&mut rec, &t([10, 8, 1, 1]), &[], Default::default(), &out), "nearest_two");
    let tiles = metric::TileOptions { tile_rows: 0, subgroups: true };
    named(metric::nearest_two(&mut rec, &t([10, 8, 1, 1]), &[&t([5, 8, 1, 1])], tiles, &out), "nearest_two");
}

/// The matcher at the binding limit: A holds 262,144 rows of D = 128 (exactly 128 MiB, one 1024 x 1024 image
/// at stride 2) against a small B; the outputs are the only other allocations. Checks B -> A on every row
/// and A -> B on a sample of rows against the reference (`cargo test --release --test metric_ops --
/// --ignored --nocapture binding_limit`; about 4 GFMA).
#[test]
#[ignore]
fn matcher_at_the_binding_limit() {
    let Some(ctx) = gpu() else { return };
    let mut rng = Rng::new(405);
    let (m, k, d) = (262_144, 64, 128);
    let (b, a_small, _) = matching_case(&mut rng, k, 1, d, 0);
    drop(a_small);
    // A: random unit rows, with noisy copies of the B rows planted at rows 1000 j + 7.
    let mut a = unit_rows(&mut rng, m, d);
    for j in 0..k {
        let i = 1000 * j + 7;
        let row: Vec<f32> = (0..d).map(|e| b.data[j * d + e] + 0.01 * rng.uniform()).collect();
        let s = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        a.data[i * d..(i + 1) * d].iter_mut().zip(&row).for_each(|(v, r)| *v = r / s);
    }
    assert_eq!(a.data.len() * 4, 128 << 20);
    let (ga, gb) = (ctx.upload("a", &a).unwrap(), ctx.upload("b", &b).unwrap());
    let out = metric::Matches::new(ctx, m, k).unwrap();
    let start = std::time::Instant::now();
    let mut rec = ctx.recorder("binding limit");
    metric::mutual_matches(&mut rec, &ga, &gb, metric::MatchOptions::default(), &out).unwrap();
    rec.submit().unwrap();
    eprintln!("M = {m}, K = {k}, D = {d}: {:.2} s", start.elapsed().as_secs_f64());
    let matches = out.download(ctx).unwrap();
    assert_eq!(matches.len(), k);
    for (j, &(i, jj, _, _)) in matches.iter().enumerate() {
        assert_eq!((i as usize, jj as usize), (1000 * j + 7, j));
    }
    // B -> A against the reference on every B row; A -> B on every 997th row.
    let (a64, b64) = (t64(&a), t64(&b));
    check_nearest("B -> A at the binding limit", ctx, &out.b_to_a, &rmatch::nearest_two_f64(&b64, &a64));
    let rows: Vec<usize> = (0..m).step_by(997).collect();
    let sub = Tensor64::new(
        [rows.len(), d, 1, 1],
        rows.iter().flat_map(|&i| a64.data[i * d..(i + 1) * d].to_vec()).collect(),
    )
    .unwrap();
    let expected = rmatch::nearest_two_f64(&sub, &b64);
    let idx = out.a_to_b.best_index.download(ctx).unwrap();
    let d1 = ctx.download(&out.a_to_b.best_dist).unwrap().data;
    for (q, &i) in rows.iter().enumerate() {
        assert!(idx[i] == expected[q].best || expected[q].gap < 1e-5, "A row {i}");
        assert!((d1[i] - expected[q].best_dist as f32).abs() < 2e-5, "A row {i}");
    }
}

/// Times one training step's metric ops at HardNet-like sizes (`cargo test --release --test metric_ops --
/// --ignored --nocapture training_timing`): two descriptor maps [2, 128, 64, 64] (256 x 256 images at stride
/// 4), 1024 points per image, the 2048 x 2048 distance matrix, mining, the losses and every backward.
#[test]
#[ignore]
fn training_timing() {
    let Some(ctx) = gpu() else { return };
    let mut rng = Rng::new(404);
    let (n, d, h, w, k) = (2, 128, 64, 64, 1024);
    let grid = GridSpec { stride: 4 };
    let map = ctx.upload("map", &rng.tensor([n, d, h, w])).unwrap();
    let mut points = HostTensor::zeros([n, k, 2, 1]);
    points.data.iter_mut().for_each(|v| *v = (rng.uniform() * 0.5 + 0.5) * 256.0);
    let points = ctx.upload("points", &points).unwrap();
    let m = n * k;
    let rows = ctx.tensor("rows", [m, d, 1, 1]).unwrap();
    let unit = ctx.tensor("unit", [m, d, 1, 1]).unwrap();
    let dist = ctx.tensor("dist", [m, m, 1, 1]).unwrap();
    let g = ctx.tensor("g", [m, m, 1, 1]).unwrap();
    let terms = ctx.tensor("terms", [m, 1, 1, 1]).unwrap();
    let (du, drows, dmap) = (
        ctx.tensor("du", [m, d, 1, 1]).unwrap(),
        ctx.tensor("drows", [m, d, 1, 1]).unwrap(),
        ctx.tensor("dmap", [n, d, h, w]).unwrap(),
    );
    let lab: Vec<u32> = (0..m as u32).map(|i| i % k as u32).collect(); // image 0 point i <-> image 1 point i
    let la = Indices::upload(ctx, "labels", m, 1, &lab).unwrap();
    let tr = Indices::zeros(ctx, "triplets", m, 4).unwrap();
    let view = LabelledDistances { dist: &dist, labels_a: &la, labels_b: &la };
    let seed = metric::SeedBuffer::new(ctx, 1).unwrap();
    let tspec = metric::TripletSpec { margin: 1.0, scale: 1.0 };
    let cspec = metric::ContrastiveSpec { margin: 1.0, exclude_diagonal: true, scale: 1.0 };
    type Step<'a> = Box<dyn Fn(&mut corrflow::runtime::Recorder<'_>) + 'a>;
    let steps: Vec<(&str, Step)> = vec![
        ("sample", Box::new(|r| metric::sample_descriptors(r, &map, &points, grid, &rows).unwrap())),
        ("l2_normalize", Box::new(|r| metric::l2_normalize(r, &rows, &unit, metric::L2_NORM_EPS).unwrap())),
        (
            "distance",
            Box::new(|r| metric::pairwise_distance(r, &unit, &unit, false, metric::DISTANCE_EPS, &dist).unwrap()),
        ),
        (
            "positives",
            Box::new(|r| {
                metric::mine_positives(r, &view, metric::PositiveChoice::Hardest, 1, true, &seed, &tr).unwrap()
            }),
        ),
        ("hardest (symmetric)", Box::new(|r| metric::mine_hardest_negatives(r, &view, true, &tr).unwrap())),
        ("semi-hard", Box::new(|r| metric::mine_semihard_negatives(r, &view, 0.3, &tr).unwrap())),
        (
            "distance-weighted",
            Box::new(|r| metric::mine_distance_weighted(r, &view, Default::default(), &seed, &tr).unwrap()),
        ),
        ("random", Box::new(|r| metric::mine_random_negatives(r, &view, &seed, &tr).unwrap())),
        ("triplet", Box::new(|r| metric::triplet_loss(r, &dist, &tr, tspec, &terms).unwrap())),
        (
            "triplet backward",
            Box::new(|r| metric::triplet_loss_backward(r, &dist, &tr, tspec, &g, GradWrite::Overwrite).unwrap()),
        ),
        (
            "contrastive",
            Box::new(|r| metric::contrastive_loss(r, &view, cspec, &terms, &g, GradWrite::Overwrite).unwrap()),
        ),
        (
            "distance backward (A = B)",
            Box::new(|r| {
                metric::pairwise_distance_backward(
                    r,
                    &unit,
                    &unit,
                    &dist,
                    &g,
                    false,
                    Some((&du, GradWrite::Overwrite)),
                    Some((&du, GradWrite::Accumulate)),
                )
                .unwrap()
            }),
        ),
        (
            "l2_normalize backward",
            Box::new(|r| metric::l2_normalize_backward(r, &rows, &du, &drows, metric::L2_NORM_EPS).unwrap()),
        ),
        (
            "sample backward",
            Box::new(|r| {
                metric::sample_descriptors_backward(r, &points, &drows, grid, &dmap, GradWrite::Overwrite).unwrap()
            }),
        ),
    ];
    for (name, step) in &steps {
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            let start = std::time::Instant::now();
            let mut rec = ctx.recorder(name);
            step(&mut rec);
            rec.submit().unwrap();
            best = best.min(start.elapsed().as_secs_f64());
        }
        eprintln!("{name:>28}: {:8.1} ms", best * 1e3);
    }
}
