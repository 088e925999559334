//! The correlation layer: finite-difference checks of the f64 CPU backward; the GPU forward (tiled and
//! naive) and backward (tiled and naive) against the CPU references on random inputs with odd sizes,
//! batch > 1, channel counts that are not multiples of 4, multi-window sweeps and every stride/patch
//! combination; row-band splitting forced small; and the errors for inputs that cannot fit.
//!
//! GPU outputs are pre-filled with NaN so unwritten elements fail. Tolerance for GPU vs CPU (f32
//! accumulation against f64): |gpu - cpu| <= ABS + REL * |cpu|. Finite differences of the f64 forward are
//! exact up to rounding (the correlation is bilinear), so the f64 checks use 1e-9.

mod common;

use common::{assert_close, gpu, Rng};
use corrflow::bench::correlation::{run, CorrelationBenchOptions};
use corrflow::ops::correlation::{
    correlation_backward_chunked, correlation_backward_naive, correlation_backward_with, correlation_forward_chunked,
    correlation_forward_naive, correlation_forward_with, subgroup_tiling_available, CorrelationBand,
    CorrelationOptions, CorrelationSpec,
};
use corrflow::reference::correlation::{
    correlation_backward_cpu, correlation_backward_cpu_f64, correlation_cpu, correlation_cpu_f64,
};
use corrflow::{Context, Error, HostTensor, Tensor};

const ABS: f32 = 2e-5;
const REL: f32 = 1e-4;

fn spec(pad: usize, kernel_size: usize, max_displacement: usize, stride1: usize, stride2: usize) -> CorrelationSpec {
    CorrelationSpec { pad, kernel_size, max_displacement, stride1, stride2 }
}

/// Tiny layers for the finite-difference checks: kernel_size 1 and 3, stride1 1 and 2, stride2 1 and 2,
/// padding smaller than (and equal to, and larger than) the displacement.
fn tiny_cases() -> Vec<([usize; 4], CorrelationSpec)> {
    vec![
        ([1, 2, 5, 6], spec(1, 1, 2, 1, 1)),
        ([2, 2, 6, 5], spec(1, 1, 2, 1, 2)),
        ([1, 3, 7, 6], spec(2, 3, 1, 1, 1)),
        ([1, 2, 7, 7], spec(1, 1, 2, 2, 1)),
        ([1, 2, 8, 7], spec(2, 3, 2, 2, 2)),
        ([1, 2, 5, 5], spec(3, 1, 2, 1, 2)),
    ]
}

/// Layers for the GPU comparisons: odd sizes, several x blocks, batch > 1, C % 4 != 0, kernel 3, both
/// strides, pad < md and pad > md, a grid needing several sweep windows (md 20, stride2 1: 41 x 41), and
/// strides whose lanes are 2 and 3 sweep steps apart.
fn gpu_cases() -> Vec<([usize; 4], CorrelationSpec)> {
    vec![
        ([1, 8, 12, 14], spec(4, 1, 4, 1, 2)),
        ([2, 5, 11, 37], spec(3, 1, 3, 1, 1)),
        ([1, 7, 13, 21], spec(2, 3, 3, 1, 1)),
        ([2, 3, 15, 29], spec(1, 1, 3, 2, 1)),
        ([1, 6, 17, 19], spec(2, 3, 4, 2, 2)),
        ([1, 9, 9, 11], spec(5, 1, 3, 1, 2)),
        ([1, 4, 23, 23], spec(20, 1, 20, 1, 1)),
        ([1, 5, 14, 40], spec(2, 1, 2, 3, 1)),
        ([1, 4, 16, 33], spec(3, 1, 3, 2, 3)),
    ]
}

fn f64s(t: &HostTensor) -> Vec<f64> {
    t.data.iter().map(|&v| v as f64).collect()
}

fn random_f64(rng: &mut Rng, n: usize) -> Vec<f64> {
    (0..n).map(|_| rng.uniform() as f64 + 1e-3 * rng.uniform() as f64).collect()
}

/// Central differences of L = sum(w * correlation(a, b)) w.r.t. every element of `x` (a when `wrt_a`).
fn finite_difference(
    shape: [usize; 4],
    a: &[f64],
    b: &[f64],
    w: &[f64],
    spec: CorrelationSpec,
    wrt_a: bool,
) -> Vec<f64> {
    let loss = |a: &[f64], b: &[f64]| -> f64 {
        correlation_cpu_f64(shape, a, b, spec).unwrap().iter().zip(w).map(|(o, w)| o * w).sum()
    };
    let h = 1e-3;
    let n = a.len();
    (0..n)
        .map(|i| {
            let (mut ap, mut am, mut bp, mut bm) = (a.to_vec(), a.to_vec(), b.to_vec(), b.to_vec());
            if wrt_a {
                ap[i] += h;
                am[i] -= h;
            } else {
                bp[i] += h;
                bm[i] -= h;
            }
            (loss(&ap, &bp) - loss(&am, &bm)) / (2.0 * h)
        })
        .collect()
}

fn assert_close_f64(what: &str, actual: &[f64], expected: &[f64], tol: f64) {
    assert_eq!(actual.len(), expected.len(), "{what}: length differs");
    let bad: Vec<String> = actual
        .iter()
        .zip(expected)
        .enumerate()
        // NaN compares as unordered and so fails.
        .filter(|(_, (a, e))| {
            !matches!(
                (*a - *e).abs().partial_cmp(&(tol * (1.0 + e.abs()))),
                Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
            )
        })
        .take(8)
        .map(|(i, (a, e))| format!("[{i}] expected {e} got {a}"))
        .collect();
    assert!(bad.is_empty(), "{what}: mismatches beyond {tol}: {}", bad.join(", "));
}

#[test]
fn cpu_backward_matches_finite_differences() {
    let mut rng = Rng::new(3);
    for (shape, spec) in tiny_cases() {
        let n: usize = shape.iter().product();
        let a = random_f64(&mut rng, n);
        let b = random_f64(&mut rng, n);
        let (oh, ow) = spec.output_size(shape[2], shape[3]).unwrap();
        let w = random_f64(&mut rng, shape[0] * spec.displacements() * oh * ow);
        let (ga, gb) = correlation_backward_cpu_f64(shape, &a, &b, &w, spec).unwrap();
        assert!(ga.iter().any(|&v| v != 0.0) && gb.iter().any(|&v| v != 0.0), "{spec:?}: gradients vanish");
        assert_close_f64(
            &format!("grad_a {shape:?} {spec:?}"),
            &ga,
            &finite_difference(shape, &a, &b, &w, spec, true),
            1e-9,
        );
        assert_close_f64(
            &format!("grad_b {shape:?} {spec:?}"),
            &gb,
            &finite_difference(shape, &a, &b, &w, spec, false),
            1e-9,
        );
    }
}

#[test]
fn cpu_f64_forward_agrees_with_the_f32_reference() {
    let mut rng = Rng::new(5);
    for (shape, spec) in tiny_cases() {
        let a = rng.tensor(shape);
        let b = rng.tensor(shape);
        let ours = correlation_cpu_f64(shape, &f64s(&a), &f64s(&b), spec).unwrap();
        let theirs = correlation_cpu(&a, &b, spec).unwrap();
        assert_close(
            &format!("f64 forward {spec:?}"),
            &ours.iter().map(|&v| v as f32).collect::<Vec<_>>(),
            &theirs.data,
            1e-6,
            1e-6,
        );
    }
}

/// Runs the GPU forward into channels [2, 2 + D) of a [N, D + 3, H', W'] tensor pre-filled with NaN and
/// returns the slice plus whether the untouched channels stayed NaN.
fn gpu_forward(
    ctx: &Context,
    a: &HostTensor,
    b: &HostTensor,
    spec: CorrelationSpec,
    leaky: Option<f32>,
    opts: Option<&CorrelationOptions>,
) -> (Vec<f32>, bool) {
    let [n, _, h, w] = a.shape;
    let (oh, ow) = spec.output_size(h, w).unwrap();
    let d = spec.displacements();
    let ga = ctx.upload("a", a).unwrap();
    let gb = ctx.upload("b", b).unwrap();
    let out = ctx.tensor("corr", [n, d + 3, oh, ow]).unwrap();
    ctx.fill(&out, f32::NAN).unwrap();
    let mut rec = ctx.recorder("corr");
    let slice = out.slice(2, d).unwrap();
    match opts {
        Some(o) => correlation_forward_with(&mut rec, &ga, &gb, spec, slice, leaky, o).unwrap(),
        None => correlation_forward_naive(&mut rec, &ga, &gb, spec, slice, leaky).unwrap(),
    }
    rec.submit().unwrap();
    let all = ctx.download(&out).unwrap();
    let plane = oh * ow;
    let mut inside = Vec::with_capacity(n * d * plane);
    let mut others_nan = true;
    for bb in 0..n {
        for c in 0..d + 3 {
            let chunk = &all.data[(bb * (d + 3) + c) * plane..(bb * (d + 3) + c + 1) * plane];
            if (2..2 + d).contains(&c) {
                inside.extend_from_slice(chunk);
            } else {
                others_nan &= chunk.iter().all(|v| v.is_nan());
            }
        }
    }
    (inside, others_nan)
}

fn leaky_cpu(v: &[f32], slope: f32) -> Vec<f32> {
    v.iter().map(|&x| if x < 0.0 { x * slope } else { x }).collect()
}

#[test]
fn tiled_and_naive_forward_match_cpu() {
    let Some(ctx) = gpu() else { return };
    let tiled = subgroup_tiling_available(ctx).unwrap();
    eprintln!("subgroup-tiled kernels available: {tiled}");
    let mut rng = Rng::new(11);
    for (i, (shape, spec)) in gpu_cases().into_iter().enumerate() {
        let a = rng.tensor(shape);
        let b = rng.tensor(shape);
        let expected = correlation_cpu(&a, &b, spec).unwrap();
        let leaky = if i % 2 == 0 { Some(0.1) } else { None };
        let want = match leaky {
            Some(s) => leaky_cpu(&expected.data, s),
            None => expected.data.clone(),
        };
        let (got, others) = gpu_forward(ctx, &a, &b, spec, leaky, Some(&CorrelationOptions::default()));
        assert!(others, "{spec:?}: tiled forward wrote outside its channel slice");
        assert_close(&format!("tiled forward {shape:?} {spec:?}"), &got, &want, ABS, REL);
        if i < 3 {
            let (got, others) = gpu_forward(ctx, &a, &b, spec, leaky, None);
            assert!(others, "{spec:?}: naive forward wrote outside its channel slice");
            assert_close(&format!("naive forward {shape:?} {spec:?}"), &got, &want, ABS, REL);
        }
    }
}

/// GPU backward into NaN-filled gradients.
fn gpu_backward(
    ctx: &Context,
    a: &HostTensor,
    b: &HostTensor,
    g: &HostTensor,
    spec: CorrelationSpec,
    tiled: bool,
) -> (HostTensor, HostTensor) {
    let ta = ctx.upload("a", a).unwrap();
    let tb = ctx.upload("b", b).unwrap();
    let tg = ctx.upload("g", g).unwrap();
    let ga = ctx.tensor("grad a", a.shape).unwrap();
    let gb = ctx.tensor("grad b", a.shape).unwrap();
    ctx.fill(&ga, f32::NAN).unwrap();
    ctx.fill(&gb, f32::NAN).unwrap();
    let mut rec = ctx.recorder("corr backward");
    if tiled {
        correlation_backward_with(&mut rec, &ta, &tb, &tg, spec, &ga, &gb, &CorrelationOptions::default()).unwrap();
    } else {
        correlation_backward_naive(&mut rec, &ta, &tb, &tg, spec, &ga, &gb).unwrap();
    }
    rec.submit().unwrap();
    (ctx.download(&ga).unwrap(), ctx.download(&gb).unwrap())
}

#[test]
fn gpu_backward_matches_finite_differences() {
    // Checks the kernels themselves against finite differences of the f64 forward (not only against the
    // CPU backward), so a perturbed backward kernel fails here even if the CPU reference were wrong too.
    let Some(ctx) = gpu() else { return };
    let mut rng = Rng::new(17);
    for (shape, spec) in tiny_cases() {
        let a = rng.tensor(shape);
        let b = rng.tensor(shape);
        let (oh, ow) = spec.output_size(shape[2], shape[3]).unwrap();
        let g = rng.tensor([shape[0], spec.displacements(), oh, ow]);
        let fd_a: Vec<f32> =
            finite_difference(shape, &f64s(&a), &f64s(&b), &f64s(&g), spec, true).iter().map(|&v| v as f32).collect();
        let fd_b: Vec<f32> =
            finite_difference(shape, &f64s(&a), &f64s(&b), &f64s(&g), spec, false).iter().map(|&v| v as f32).collect();
        for tiled in [true, false] {
            let (ga, gb) = gpu_backward(ctx, &a, &b, &g, spec, tiled);
            assert_close(&format!("grad_a (tiled {tiled}) vs finite differences {spec:?}"), &ga.data, &fd_a, ABS, REL);
            assert_close(&format!("grad_b (tiled {tiled}) vs finite differences {spec:?}"), &gb.data, &fd_b, ABS, REL);
        }
    }
}

#[test]
fn tiled_and_naive_backward_match_cpu() {
    let Some(ctx) = gpu() else { return };
    let mut rng = Rng::new(23);
    for (i, (shape, spec)) in gpu_cases().into_iter().enumerate() {
        let a = rng.tensor(shape);
        let b = rng.tensor(shape);
        let (oh, ow) = spec.output_size(shape[2], shape[3]).unwrap();
        let g = rng.tensor([shape[0], spec.displacements(), oh, ow]);
        let (want_a, want_b) = correlation_backward_cpu(&a, &b, &g, spec).unwrap();
        let (ga, gb) = gpu_backward(ctx, &a, &b, &g, spec, true);
        assert_close(&format!("tiled grad_a {shape:?} {spec:?}"), &ga.data, &want_a.data, ABS, REL);
        assert_close(&format!("tiled grad_b {shape:?} {spec:?}"), &gb.data, &want_b.data, ABS, REL);
        if i < 3 {
            let (ga, gb) = gpu_backward(ctx, &a, &b, &g, spec, false);
            assert_close(&format!("naive grad_a {shape:?} {spec:?}"), &ga.data, &want_a.data, ABS, REL);
            assert_close(&format!("naive grad_b {shape:?} {spec:?}"), &gb.data, &want_b.data, ABS, REL);
        }
    }
}

/// Concatenates row bands [N, D, rows, W'] into one [N, D, H', W'] host tensor.
fn join_bands(ctx: &Context, bands: &[CorrelationBand], shape: [usize; 4]) -> HostTensor {
    let [n, d, oh, ow] = shape;
    let mut out = HostTensor::zeros(shape);
    let mut next = 0;
    for band in bands {
        assert_eq!(band.row0, next, "bands must be contiguous");
        let host = ctx.download(&band.tensor).unwrap();
        let rows = band.rows();
        for bb in 0..n {
            for c in 0..d {
                for y in 0..rows {
                    let src = host.idx(bb, c, y, 0);
                    let dst = out.idx(bb, c, band.row0 + y, 0);
                    out.data[dst..dst + ow].copy_from_slice(&host.data[src..src + ow]);
                }
            }
        }
        next += rows;
    }
    assert_eq!(next, oh, "bands must cover every output row");
    out
}

#[test]
fn row_bands_give_the_same_answer() {
    // Large inputs are split into row bands: the output into separate tensors (chunked API), the packed
    // temporaries of the forward and of the backward into smaller dispatches, and the backward of bands
    // whose input rows overlap (kernel 3 and the b halo) accumulates. Force all of it with a small byte
    // budget on a layer that is fast on llvmpipe.
    let Some(ctx) = gpu() else { return };
    if !subgroup_tiling_available(ctx).unwrap() {
        common::skip("the banded path needs subgroups");
        return;
    }
    let mut rng = Rng::new(29);
    for (shape, spec) in [
        ([2usize, 6, 19, 23], spec(3, 1, 3, 1, 1)),
        ([1, 5, 21, 17], spec(2, 3, 4, 2, 2)),
        ([1, 4, 20, 18], spec(4, 1, 4, 1, 2)),
    ] {
        let a = rng.tensor(shape);
        let b = rng.tensor(shape);
        let (oh, ow) = spec.output_size(shape[2], shape[3]).unwrap();
        let d = spec.displacements();
        let out_shape = [shape[0], d, oh, ow];
        let expected = correlation_cpu(&a, &b, spec).unwrap();
        let g = rng.tensor(out_shape);
        let (want_a, want_b) = correlation_backward_cpu(&a, &b, &g, spec).unwrap();

        // Three output rows per band (chunked API) and per dispatch (single-tensor API).
        let opts = CorrelationOptions { tiled: true, max_band_bytes: None, max_band_rows: Some(3) };
        let ta = ctx.upload("a", &a).unwrap();
        let tb = ctx.upload("b", &b).unwrap();
        let mut rec = ctx.recorder("banded forward");
        let bands = correlation_forward_chunked(&mut rec, &ta, &tb, spec, None, &opts).unwrap();
        rec.submit().unwrap();
        assert!(bands.len() >= 3, "{spec:?}: expected several bands, got {}", bands.len());
        assert_close(
            &format!("banded forward {spec:?}"),
            &join_bands(ctx, &bands, out_shape).data,
            &expected.data,
            ABS,
            REL,
        );

        // Backward of the bands: each band's gradient as its own tensor; the input rows of neighbouring
        // bands overlap (kernel 3, the b halo), so later bands accumulate into earlier ones' rows.
        let grads: Vec<CorrelationBand> = bands
            .iter()
            .map(|band| {
                let rows = band.rows();
                let mut host = HostTensor::zeros([shape[0], d, rows, ow]);
                for bb in 0..shape[0] {
                    for c in 0..d {
                        for y in 0..rows {
                            let dst = host.idx(bb, c, y, 0);
                            let src = g.idx(bb, c, band.row0 + y, 0);
                            host.data[dst..dst + ow].copy_from_slice(&g.data[src..src + ow]);
                        }
                    }
                }
                CorrelationBand { row0: band.row0, tensor: ctx.upload("g band", &host).unwrap() }
            })
            .collect();
        let ga = ctx.tensor("grad a", shape).unwrap();
        let gb = ctx.tensor("grad b", shape).unwrap();
        for sub_rows in [Some(2), None] {
            ctx.fill(&ga, f32::NAN).unwrap();
            ctx.fill(&gb, f32::NAN).unwrap();
            let mut rec = ctx.recorder("banded backward");
            let o = CorrelationOptions { max_band_rows: sub_rows, ..opts };
            correlation_backward_chunked(&mut rec, &ta, &tb, &grads, spec, &ga, &gb, &o).unwrap();
            rec.submit().unwrap();
            assert_close(
                &format!("banded grad_a {spec:?} {sub_rows:?}"),
                &ctx.download(&ga).unwrap().data,
                &want_a.data,
                ABS,
                REL,
            );
            assert_close(
                &format!("banded grad_b {spec:?} {sub_rows:?}"),
                &ctx.download(&gb).unwrap().data,
                &want_b.data,
                ABS,
                REL,
            );
        }

        // The single-tensor entry points split their work the same way.
        let (got, _) = gpu_forward(ctx, &a, &b, spec, Some(0.1), Some(&opts));
        assert_close(&format!("row-split forward {spec:?}"), &got, &leaky_cpu(&expected.data, 0.1), ABS, REL);
        let tg = ctx.upload("g", &g).unwrap();
        ctx.fill(&ga, f32::NAN).unwrap();
        ctx.fill(&gb, f32::NAN).unwrap();
        let mut rec = ctx.recorder("row-split backward");
        correlation_backward_with(&mut rec, &ta, &tb, &tg, spec, &ga, &gb, &opts).unwrap();
        rec.submit().unwrap();
        assert_close(&format!("row-split grad_a {spec:?}"), &ctx.download(&ga).unwrap().data, &want_a.data, ABS, REL);
        assert_close(&format!("row-split grad_b {spec:?}"), &ctx.download(&gb).unwrap().data, &want_b.data, ABS, REL);
    }
}

#[test]
fn inputs_that_cannot_fit_fail_with_an_error_that_says_what_to_change() {
    let Some(ctx) = gpu() else { return };
    let shape = [1, 8, 12, 14];
    let spec = spec(4, 1, 4, 1, 2);
    let a: Tensor = ctx.tensor("a", shape).unwrap();
    let b: Tensor = ctx.tensor("b", shape).unwrap();
    if subgroup_tiling_available(ctx).unwrap() {
        // A budget smaller than one output row.
        let opts = CorrelationOptions { tiled: true, max_band_bytes: Some(64), max_band_rows: None };
        let mut rec = ctx.recorder("too large");
        let err = correlation_forward_chunked(&mut rec, &a, &b, spec, None, &opts).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::TooLarge { .. }), "{msg}");
        assert!(msg.contains("smaller batch"), "the error should say what to change: {msg}");
        drop(rec);
    }
    // The banded path refuses the portable kernels instead of computing something else.
    let opts = CorrelationOptions { tiled: false, ..CorrelationOptions::default() };
    let mut rec = ctx.recorder("portable banded");
    let err = correlation_forward_chunked(&mut rec, &a, &b, spec, None, &opts).unwrap_err();
    assert!(err.to_string().contains("subgroup"), "{err}");
    drop(rec);
    // A tensor over the binding limit is refused where it is made.
    let huge = [1, 1, 1, (ctx.max_binding_bytes() / 4 + 1) as usize];
    assert!(matches!(ctx.tensor("huge", huge), Err(Error::TooLarge { .. })));
}

#[test]
fn benchmark_report_runs_quickly_and_serialises() {
    let Some(ctx) = gpu() else { return };
    let report = run(ctx, &CorrelationBenchOptions { quick: true, only: vec!["pwc".into()] }).unwrap();
    assert_eq!(report.results.len(), 1);
    let r = &report.results[0];
    assert!(report.fma_peak_gflops > 0.0 && r.forward_ms > 0.0 && r.backward_ms > 0.0 && r.forward_gflops > 0.0);
    assert!(r.naive_forward_ms.is_some(), "the pwc output is small enough for the naive baseline");
    let json = report.to_json();
    assert!(json.starts_with("{\"adapter\": \"") && json.ends_with("], \"skipped\": []}"), "{json}");
    for key in [
        "\"fma_peak_gflops\": ",
        "\"configs\": [{\"name\": \"pwc\"",
        "\"forward_ms\": ",
        "\"forward_gflops\": ",
        "\"backward_ms\": ",
        "\"naive_forward_ms\": ",
    ] {
        assert!(json.contains(key), "missing {key} in {json}");
    }
    let table = report.to_table();
    assert!(table.contains("pwc") && table.contains("GFLOP/s"), "{table}");
    eprintln!("{table}");
}
