//! The tiled convolution kernels and the conv backward passes.
//!
//! * Forward: the tiled kernel (every register block it offers, and the auto-tuned choice) against the f64
//!   CPU reference on FlowNet's layer kinds (k7 s2, k5 s2, k3 s2, k3, k1, deconv 4x4 s2 with crop) and on
//!   awkward ones (odd sizes, odd kernels with stride, stride 3, cout not a multiple of the block), reading
//!   and writing channel slices of wider tensors, outputs pre-filled with NaN.
//! * Backward: the f64 CPU references against finite differences (central, h = 1e-6, in f64 on tiny
//!   shapes), then the GPU passes against the references on random inputs with odd sizes, batch > 1 and
//!   channel slices.
//!
//! Tolerance for f32 GPU results: |gpu - cpu| <= abs + rel |cpu| with the pair named at each check (the
//! references accumulate in f64; the GPU in f32 over cin kh kw terms, or over batch x pixels for weight
//! gradients, hence their looser abs).

mod common;

use common::{assert_close, gpu, Rng};
use corrflow::ops::conv::ConvTile;
use corrflow::ops::conv::{conv_backward, conv_backward_data, conv_backward_weight};
use corrflow::ops::conv::{conv_forward, ConvAlgo, ConvSpec, ConvWeights};
use corrflow::reference::conv::{conv2d_backward_f64, conv2d_f64, conv_transpose2d_backward_f64, conv_transpose2d_f64};
use corrflow::reference::elementwise::leaky_relu_backward_f64;
use corrflow::{Context, HostTensor, Tensor, Tensor64};

const FWD_ABS: f32 = 1e-4;
const FWD_REL: f32 = 1e-4;

fn spec(stride: usize, pad: usize, leaky: Option<f32>) -> ConvSpec {
    ConvSpec { stride, pad, leaky }
}

/// A layer to test: channels, kernel, input size, and (transposed) an optional crop of the output.
#[derive(Clone, Copy, Debug)]
struct Layer {
    n: usize,
    cin: usize,
    cout: usize,
    k: usize,
    h: usize,
    w: usize,
    spec: ConvSpec,
    transposed: bool,
    crop: Option<(usize, usize)>,
    bias: bool,
}

impl Layer {
    fn out_hw(&self) -> (usize, usize) {
        let s = self.spec;
        if self.transposed {
            self.crop.unwrap_or((
                s.transposed_out(self.h, self.k).unwrap_or(0),
                s.transposed_out(self.w, self.k).unwrap_or(0),
            ))
        } else {
            (s.conv_out(self.h, self.k).unwrap_or(0), s.conv_out(self.w, self.k).unwrap_or(0))
        }
    }
    fn weight_shape(&self) -> [usize; 4] {
        if self.transposed {
            [self.cin, self.cout, self.k, self.k]
        } else {
            [self.cout, self.cin, self.k, self.k]
        }
    }
}

/// The channels [off, off + c) of a host tensor with more channels.
fn channels(t: &HostTensor, off: usize, c: usize) -> HostTensor {
    let [n, total, h, w] = t.shape;
    let plane = h * w;
    let data = (0..n).flat_map(|b| t.data[(b * total + off) * plane..(b * total + off + c) * plane].to_vec()).collect();
    HostTensor { shape: [n, c, h, w], data }
}

/// Asserts that channels outside [off, off + c) of a downloaded tensor are still NaN (never written).
fn assert_untouched(what: &str, t: &HostTensor, off: usize, c: usize) {
    let [n, total, h, w] = t.shape;
    let plane = h * w;
    for b in 0..n {
        for ch in (0..total).filter(|ch| *ch < off || *ch >= off + c) {
            let s = (b * total + ch) * plane;
            assert!(t.data[s..s + plane].iter().all(|v| v.is_nan()), "{what}: wrote channel {ch} outside the slice");
        }
    }
}

/// The f64 reference forward of a layer, with the fused LeakyReLU.
fn reference_forward(l: &Layer, x: &HostTensor, wt: &HostTensor, b: Option<&[f32]>) -> HostTensor {
    let (x, wt) = (Tensor64::from_f32(x), Tensor64::from_f32(wt));
    let b: Option<Vec<f64>> = b.map(|b| b.iter().map(|&v| v as f64).collect());
    let y = if l.transposed {
        conv_transpose2d_f64(&x, &wt, b.as_deref(), l.spec.stride, l.spec.pad, l.out_hw())
    } else {
        conv2d_f64(&x, &wt, b.as_deref(), l.spec.stride, l.spec.pad)
    };
    let mut y = y.to_f32();
    if let Some(s) = l.spec.leaky {
        y.data.iter_mut().for_each(|v| {
            if *v < 0.0 {
                *v *= s
            }
        });
    }
    y
}

/// Runs the layer with `algo` reading channels [2, 2 + cin) of a wider input and writing channels
/// [1, 1 + cout) of a NaN-filled wider output, and checks it against the reference.
fn check_forward(ctx: &Context, seed: u64, l: Layer, algo: ConvAlgo) {
    check_forward_tol(ctx, seed, l, algo, None)
}

/// [`check_forward`] with an absolute tolerance of `abs_per_scale` x the largest output (at least 1)
/// instead of `FWD_ABS` when given.
fn check_forward_tol(ctx: &Context, seed: u64, l: Layer, algo: ConvAlgo, abs_per_scale: Option<f32>) {
    let mut rng = Rng::new(seed);
    let (in_off, out_off) = (2, 1);
    let x_wide = rng.tensor([l.n, l.cin + in_off + 1, l.h, l.w]);
    let x = channels(&x_wide, in_off, l.cin);
    let wt = rng.tensor(l.weight_shape());
    let b: Option<Vec<f32>> = l.bias.then(|| (0..l.cout).map(|_| rng.uniform()).collect());
    let expected = reference_forward(&l, &x, &wt, b.as_deref());
    let (oh, ow) = l.out_hw();
    let weights = ConvWeights::new(ctx, "w", &wt, b.as_deref(), l.transposed).unwrap().with_algo(algo);
    let xg = ctx.upload("x", &x_wide).unwrap();
    let out = ctx.tensor("out", [l.n, l.cout + out_off + 2, oh, ow]).unwrap();
    ctx.fill(&out, f32::NAN).unwrap();
    let mut rec = ctx.recorder("conv test");
    conv_forward(&mut rec, xg.slice(in_off, l.cin).unwrap(), &weights, l.spec, out.slice(out_off, l.cout).unwrap())
        .unwrap();
    rec.submit().unwrap();
    let got = ctx.download(&out).unwrap();
    let what = format!("{algo:?} {l:?}");
    assert_untouched(&what, &got, out_off, l.cout);
    let scale = expected.data.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    let abs = abs_per_scale.map_or(FWD_ABS, |a| a * scale);
    assert_close(&what, &channels(&got, out_off, l.cout).data, &expected.data, abs, FWD_REL);
}

fn conv(n: usize, cin: usize, cout: usize, k: usize, h: usize, w: usize, spec: ConvSpec) -> Layer {
    Layer { n, cin, cout, k, h, w, spec, transposed: false, crop: None, bias: true }
}

#[allow(clippy::too_many_arguments)]
fn deconv(
    n: usize,
    cin: usize,
    cout: usize,
    k: usize,
    h: usize,
    w: usize,
    spec: ConvSpec,
    crop: Option<(usize, usize)>,
) -> Layer {
    Layer { n, cin, cout, k, h, w, spec, transposed: true, crop, bias: true }
}

/// The layer kinds of FlowNet and the awkward cases, each with one small register block (compiling a
/// pipeline per block and kernel shape is the slow part on a software rasteriser).
#[test]
fn tiled_forward_matches_cpu_on_flownet_and_odd_shapes() {
    let Some(ctx) = common::gpu_with_subgroups() else { return };
    let small = ConvAlgo::TiledWith(ConvTile { tm: 8, tn: 4, wg: 64 });
    let layers = [
        conv(1, 6, 13, 7, 37, 29, spec(2, 3, Some(0.1))), // conv1: k7 s2, odd size, cout not a multiple of 8
        conv(2, 5, 8, 5, 23, 31, spec(2, 2, Some(0.1))),  // conv2: k5 s2, batch 2
        conv(1, 9, 12, 3, 19, 17, spec(2, 1, Some(0.1))), // conv3: k3 s2
        conv(2, 7, 10, 3, 11, 21, spec(1, 1, None)),      // conv3_1 / predict_flow: k3 s1
        conv(1, 11, 6, 1, 9, 13, spec(1, 0, Some(0.2))),  // k1 (conv_redir)
        conv(2, 7, 9, 1, 5, 16, spec(1, 0, Some(0.1))),   // k1, width a multiple of 4: vec4 input loads
        conv(1, 4, 5, 3, 10, 11, spec(3, 0, None)),       // stride 3, no padding
        conv(1, 3, 9, 3, 70, 90, spec(1, 1, None)),       // many workgroups
        conv(5, 7, 9, 3, 3, 4, spec(1, 1, Some(0.1))),    // tiny images, batch 5: workgroups span images
        conv(9, 4, 6, 3, 6, 8, spec(2, 1, None)),         // conv6-like 3x4 output, batch 9
        deconv(1, 10, 6, 4, 7, 9, spec(2, 1, Some(0.1)), None), // deconv: 4x4 s2
        deconv(2, 3, 2, 4, 6, 5, spec(2, 1, None), Some((11, 9))), // upflow, cropped, cout 2
        deconv(1, 5, 7, 3, 8, 7, spec(1, 1, None), None), // stride 1
        deconv(1, 4, 5, 3, 5, 6, spec(2, 0, Some(0.3)), None), // odd kernel: 2 and 1 taps per phase
        deconv(1, 3, 4, 2, 5, 4, spec(3, 0, None), None), // stride > kernel: phases without taps
        deconv(3, 6, 5, 4, 3, 4, spec(2, 1, Some(0.1)), None), // deconv5-like tiny input, batch 3
    ];
    for (i, l) in layers.into_iter().enumerate() {
        check_forward(ctx, 100 + i as u64, l, small);
    }
}

/// Every register block the tuner may pick computes the same thing (on a conv and a deconv).
#[test]
fn every_tile_matches_cpu() {
    let Some(ctx) = common::gpu_with_subgroups() else { return };
    let (max_wg, subgroup_min) = (ctx.limits().max_compute_invocations_per_workgroup, ctx.adapter().subgroup_min_size);
    for (i, &tile) in ConvTile::ALL.iter().enumerate() {
        if !tile.supports(max_wg, subgroup_min) {
            eprintln!("skipping tile {tile:?}: subgroups of {subgroup_min} lanes are too small for it");
            continue;
        }
        check_forward(ctx, 200 + i as u64, conv(2, 5, 19, 3, 13, 27, spec(2, 1, Some(0.1))), ConvAlgo::TiledWith(tile));
        check_forward(
            ctx,
            300 + i as u64,
            deconv(1, 6, 17, 4, 6, 9, spec(2, 1, None), Some((11, 17))),
            ConvAlgo::TiledWith(tile),
        );
    }
    // Blocks the tuner does not offer but the kernel supports.
    check_forward(
        ctx,
        400,
        conv(1, 3, 13, 3, 9, 23, spec(1, 1, None)),
        ConvAlgo::TiledWith(ConvTile { tm: 12, tn: 12, wg: 32 }),
    );
    if subgroup_min >= 8 {
        check_forward(
            ctx,
            401,
            conv(3, 5, 45, 3, 5, 11, spec(1, 1, Some(0.1))),
            ConvAlgo::TiledWith(ConvTile { tm: 28, tn: 12, wg: 16 }),
        );
    }
}

/// The default (tuned) algorithm and the baseline agree with the reference, and an unsupported block is an
/// error, not a wrong result.
#[test]
fn tuned_and_direct_match_cpu() {
    let Some(ctx) = gpu() else { return };
    // Above the size below which the tuner does not measure (1e8 FLOPs): 2 x 40 x 36 x 9 x 70 x 120 = 218 M,
    // with stride 2 so that it is not a Winograd layer (whose 1x1 GEMM is below that size here)...
    let l = conv(1, 36, 40, 3, 140, 240, spec(2, 1, Some(0.1)));
    check_forward(ctx, 500, l, ConvAlgo::Tiled);
    check_forward(ctx, 501, l, ConvAlgo::Direct);
    // ... and the same work at stride 1, where `Tiled` picks the Winograd form.
    check_forward(ctx, 503, conv(1, 36, 40, 3, 70, 120, spec(1, 1, Some(0.1))), ConvAlgo::Tiled);
    let key_count = ctx.tuned_all().iter().filter(|(k, _)| k.starts_with("conv_tiled/")).count();
    if corrflow::ops::conv::tiled_supported(ctx) {
        assert!(key_count >= 1, "tuning should have cached a choice");
    }
    let wt = Rng::new(502).tensor([4, 3, 3, 3]);
    let w = ConvWeights::new(ctx, "w", &wt, None, false).unwrap().with_algo(ConvAlgo::TiledWith(ConvTile {
        tm: 6,
        tn: 4,
        wg: 64,
    }));
    let x = ctx.tensor("x", [1, 3, 8, 8]).unwrap();
    let y = ctx.tensor("y", [1, 4, 8, 8]).unwrap();
    let mut rec = ctx.recorder("bad tile");
    assert!(conv_forward(&mut rec, x.slice_all(), &w, spec(1, 1, None), y.slice_all()).is_err());
    let w = w.with_algo(ConvAlgo::TiledWith(ConvTile { tm: 36, tn: 4, wg: 64 }));
    let mut rec = ctx.recorder("bad tile");
    assert!(conv_forward(&mut rec, x.slice_all(), &w, spec(1, 1, None), y.slice_all()).is_err());
}

/// The Winograd form on the layers it takes (F(4x4, 3x3): 3x3 stride 1, 5x5 and 6x6 stride 2 through
/// their input phases, a 3x3 stride-1 transposed conv, whose taps are flipped; F(4x4, 2x2): 3x3 and 4x4
/// stride 2, the 2x2 phases of deconvolutions) agrees with the reference, with partial tiles, batches,
/// channel slices, every padding; a layer it does not take (7x7 stride 2) still runs, on the tiled kernel. The transforms lose about a decimal digit against the direct sum, hence an absolute
/// tolerance relative to the largest output.
#[test]
fn winograd_forward_matches_cpu() {
    let Some(ctx) = common::gpu_with_subgroups() else { return };
    let layers = [
        conv(1, 7, 10, 3, 11, 21, spec(1, 1, Some(0.1))), // conv3_1-like, partial tiles in both axes
        conv(2, 5, 9, 3, 9, 6, spec(1, 1, None)),         // batch 2, one tile column
        conv(1, 6, 13, 3, 8, 8, spec(1, 0, None)),        // no padding: 6x6 output
        conv(2, 5, 8, 5, 23, 31, spec(2, 2, Some(0.1))),  // conv2 / conv3-like: 5x5 stride 2
        conv(1, 4, 5, 5, 9, 12, spec(2, 1, None)),        // 5x5 stride 2, pad 1
        conv(1, 3, 6, 6, 14, 10, spec(2, 2, None)),       // 6x6 stride 2: all 36 phase taps real
        conv(1, 6, 13, 7, 37, 29, spec(2, 3, Some(0.1))), // 7x7 stride 2: not Winograd, tiled kernel
        deconv(1, 5, 7, 3, 8, 7, spec(1, 1, None), None), // transposed 3x3 stride 1: flipped taps
        conv(1, 150, 40, 3, 13, 17, spec(1, 1, None)),    // a long reduction (1350 terms)
        conv(1, 6, 7, 4, 18, 14, spec(2, 1, None)),       // 4x4 stride 2 (a deconv's input gradient)
        conv(1, 9, 12, 3, 19, 17, spec(2, 1, Some(0.1))), // 3x3 stride 2: F(4x4, 2x2) over input phases
        deconv(1, 10, 6, 4, 7, 9, spec(2, 1, Some(0.1)), None), // FlowNet deconv: four 2x2 phases
        deconv(2, 3, 2, 4, 6, 5, spec(2, 1, None), Some((11, 9))), // upflow: cropped, cout 2
        deconv(1, 4, 5, 3, 5, 6, spec(2, 0, Some(0.3)), None), // phases of 2x2 (Winograd), 2x1, 1x1 (tiled)
    ];
    for (i, l) in layers.into_iter().enumerate() {
        check_forward_tol(ctx, 900 + i as u64, l, ConvAlgo::Winograd, Some(2e-5));
    }
}

// ---------------------------------------------------------------------------------------------------
// Backward: the references against finite differences.

fn rand64(rng: &mut Rng, shape: [usize; 4]) -> Tensor64 {
    Tensor64::from_f32(&rng.tensor(shape))
}

/// loss = sum(g * act(conv(x, w) + b)), with `act` the LeakyReLU when `slope` is given.
fn loss(l: &Layer, x: &Tensor64, w: &Tensor64, b: &[f64], g: &Tensor64) -> f64 {
    let y = if l.transposed {
        conv_transpose2d_f64(x, w, Some(b), l.spec.stride, l.spec.pad, l.out_hw())
    } else {
        conv2d_f64(x, w, Some(b), l.spec.stride, l.spec.pad)
    };
    let slope = l.spec.leaky.map_or(1.0, |s| s as f64);
    y.data.iter().zip(&g.data).map(|(&v, &gv)| gv * if v > 0.0 { v } else { slope * v }).sum()
}

/// Checks the analytic gradients of `loss` against central differences, element by element.
fn gradcheck(l: Layer, seed: u64) {
    let mut rng = Rng::new(seed);
    let x = rand64(&mut rng, [l.n, l.cin, l.h, l.w]);
    let w = rand64(&mut rng, l.weight_shape());
    let b: Vec<f64> = (0..l.cout).map(|_| rng.uniform() as f64).collect();
    let (oh, ow) = l.out_hw();
    let g = rand64(&mut rng, [l.n, l.cout, oh, ow]);
    // Analytic: dz = leaky'(z) g, then the conv backward.
    let z = if l.transposed {
        conv_transpose2d_f64(&x, &w, Some(&b), l.spec.stride, l.spec.pad, (oh, ow))
    } else {
        conv2d_f64(&x, &w, Some(&b), l.spec.stride, l.spec.pad)
    };
    let dz = leaky_relu_backward_f64(&z, &g, l.spec.leaky.map_or(1.0, |s| s as f64));
    let (dx, dw, db) = if l.transposed {
        conv_transpose2d_backward_f64(&x, &w, &dz, l.spec.stride, l.spec.pad)
    } else {
        conv2d_backward_f64(&x, &w, &dz, l.spec.stride, l.spec.pad)
    };
    let h = 1e-6;
    let check = |what: &str, analytic: &[f64], numeric: &dyn Fn(usize) -> f64| {
        for (i, &a) in analytic.iter().enumerate() {
            let n = numeric(i);
            assert!(
                (a - n).abs() <= 1e-6 + 1e-6 * n.abs(),
                "{what}[{i}] of {l:?}: analytic {a}, finite difference {n}"
            );
        }
    };
    check("dx", &dx.data, &|i| {
        let (mut p, mut m) = (x.clone(), x.clone());
        p.data[i] += h;
        m.data[i] -= h;
        (loss(&l, &p, &w, &b, &g) - loss(&l, &m, &w, &b, &g)) / (2.0 * h)
    });
    check("dw", &dw.data, &|i| {
        let (mut p, mut m) = (w.clone(), w.clone());
        p.data[i] += h;
        m.data[i] -= h;
        (loss(&l, &x, &p, &b, &g) - loss(&l, &x, &m, &b, &g)) / (2.0 * h)
    });
    check("db", &db, &|i| {
        let (mut p, mut m) = (b.clone(), b.clone());
        p[i] += h;
        m[i] -= h;
        (loss(&l, &x, &w, &p, &g) - loss(&l, &x, &w, &m, &g)) / (2.0 * h)
    });
}

#[test]
fn conv2d_backward_reference_matches_finite_differences() {
    gradcheck(conv(2, 2, 3, 3, 5, 6, spec(2, 1, None)), 1);
    gradcheck(conv(1, 3, 2, 5, 7, 6, spec(2, 2, None)), 2);
    gradcheck(conv(1, 2, 2, 3, 4, 5, spec(1, 1, Some(0.1))), 3); // with the fused LeakyReLU
    gradcheck(conv(1, 2, 3, 1, 3, 4, spec(1, 0, None)), 4);
}

#[test]
fn conv_transpose2d_backward_reference_matches_finite_differences() {
    gradcheck(deconv(2, 3, 2, 4, 3, 4, spec(2, 1, None), None), 5);
    gradcheck(deconv(1, 2, 3, 4, 3, 3, spec(2, 1, Some(0.1)), Some((5, 4))), 6); // cropped, LeakyReLU
    gradcheck(deconv(1, 2, 2, 3, 4, 3, spec(2, 0, None), None), 7);
    gradcheck(deconv(1, 2, 2, 3, 3, 4, spec(1, 1, None), None), 8);
}

// ---------------------------------------------------------------------------------------------------
// Backward on the GPU against the references.

const DX_ABS: f32 = 1e-4;
const DX_REL: f32 = 1e-4;
/// Weight and bias gradients sum over batch x pixels (hundreds to thousands of f32 terms).
const DW_ABS: f32 = 1e-3;
const DW_REL: f32 = 1e-4;

fn upload_wide(ctx: &Context, t: &HostTensor, off: usize, extra: usize) -> Tensor {
    let [n, c, h, w] = t.shape;
    let total = c + off + extra;
    let mut wide = HostTensor::zeros([n, total, h, w]);
    let plane = h * w;
    for b in 0..n {
        wide.data[(b * total + off) * plane..(b * total + off + c) * plane]
            .copy_from_slice(&t.data[b * c * plane..(b + 1) * c * plane]);
    }
    ctx.upload("wide", &wide).unwrap()
}

/// GPU input, weight and bias gradients of a layer against the f64 reference. Input, output gradient and
/// input gradient are channel slices of wider tensors; the input gradient is NaN-prefilled (`=`) or, with
/// `accumulate`, prefilled with values it must add to; the parameter gradients start from values they must
/// add to (`+=`).
fn check_backward(ctx: &Context, seed: u64, l: Layer, algo: ConvAlgo, accumulate: bool) {
    let mut rng = Rng::new(seed);
    let (oh, ow) = l.out_hw();
    let x = rng.tensor([l.n, l.cin, l.h, l.w]);
    let wt = rng.tensor(l.weight_shape());
    let b: Option<Vec<f32>> = l.bias.then(|| (0..l.cout).map(|_| rng.uniform()).collect());
    let dy = rng.tensor([l.n, l.cout, oh, ow]);
    let (rdx, rdw, rdb) = {
        let (x, wt, dy) = (Tensor64::from_f32(&x), Tensor64::from_f32(&wt), Tensor64::from_f32(&dy));
        if l.transposed {
            conv_transpose2d_backward_f64(&x, &wt, &dy, l.spec.stride, l.spec.pad)
        } else {
            conv2d_backward_f64(&x, &wt, &dy, l.spec.stride, l.spec.pad)
        }
    };
    let weights = ConvWeights::new(ctx, "w", &wt, b.as_deref(), l.transposed).unwrap().with_algo(algo);
    let xg = upload_wide(ctx, &x, 1, 2);
    let dyg = upload_wide(ctx, &dy, 2, 1);
    let dx = ctx.tensor("dx", [l.n, l.cin + 3, l.h, l.w]).unwrap();
    let dx_before = rng.tensor(dx.shape());
    if accumulate {
        ctx.write(&dx, &dx_before.data).unwrap();
    } else {
        ctx.fill(&dx, f32::NAN).unwrap();
    }
    let grads = weights.new_grads(ctx, "w").unwrap();
    let dw_before: Vec<f32> = (0..grads.weight.numel()).map(|i| (i % 7) as f32 * 0.25).collect();
    ctx.write(&grads.weight, &dw_before).unwrap();
    let db_before: Vec<f32> = (0..l.cout).map(|i| i as f32 * 0.5).collect();
    if let Some(db) = &grads.bias {
        ctx.write(db, &db_before).unwrap();
    }
    let mut rec = ctx.recorder("conv backward test");
    let (xs, dys, dxs) = (xg.slice(1, l.cin).unwrap(), dyg.slice(2, l.cout).unwrap(), dx.slice(1, l.cin).unwrap());
    conv_backward_weight(&mut rec, xs, dys, &weights, l.spec, &grads).unwrap();
    conv_backward_data(&mut rec, dys, &weights, l.spec, dxs, accumulate).unwrap();
    rec.submit().unwrap();

    let what = format!("{algo:?} {l:?}");
    let got_dx = ctx.download(&dx).unwrap();
    let mut want_dx = rdx.to_f32();
    if accumulate {
        let before = channels(&dx_before, 1, l.cin);
        want_dx.data.iter_mut().zip(&before.data).for_each(|(v, b)| *v += b);
        // Channels outside the slice keep their values.
        assert_eq!(
            channels(&got_dx, 0, 1).data,
            channels(&dx_before, 0, 1).data,
            "{what}: dx outside the slice changed"
        );
    } else {
        assert_untouched(&format!("dx {what}"), &got_dx, 1, l.cin);
    }
    assert_close(&format!("dx {what}"), &channels(&got_dx, 1, l.cin).data, &want_dx.data, DX_ABS, DX_REL);

    let (got_dw, got_db) = grads.download(ctx, &weights).unwrap();
    let before_dw = weights.unpack(&dw_before);
    let want_dw: Vec<f32> = rdw.data.iter().zip(&before_dw.data).map(|(&g, &b)| g as f32 + b).collect();
    assert_close(&format!("dw {what}"), &got_dw.data, &want_dw, DW_ABS, DW_REL);
    // Padding lanes of the packed gradient stay as they were.
    let packed = ctx.download(&grads.weight).unwrap().data;
    let row = weights.cout4() * 4;
    for (i, (&g, &b)) in packed.iter().zip(&dw_before).enumerate() {
        if i % row >= l.cout {
            assert_eq!(g, b, "{what}: packed padding lane {i} changed");
        }
    }
    if let Some(got_db) = got_db {
        let want_db: Vec<f32> = rdb.iter().zip(&db_before).map(|(&g, &b)| g as f32 + b).collect();
        assert_close(&format!("db {what}"), &got_db, &want_db, DW_ABS, DW_REL);
    }
}

fn backward_supported(ctx: &Context) -> bool {
    let ok = corrflow::ops::conv::tiled_supported(ctx);
    if !ok {
        common::skip(format!("conv backward GPU checks: adapter `{}` has no subgroup operations", ctx.adapter().name));
    }
    ok
}

#[test]
fn conv2d_backward_matches_cpu() {
    let Some(ctx) = gpu() else { return };
    if !backward_supported(ctx) {
        return;
    }
    let t = ConvAlgo::TiledWith(ConvTile { tm: 8, tn: 4, wg: 64 });
    check_backward(ctx, 600, conv(2, 6, 13, 7, 21, 19, spec(2, 3, None)), t, false); // conv1-like, odd
    check_backward(ctx, 601, conv(2, 9, 18, 3, 15, 17, spec(1, 1, None)), t, true); // k3 s1, dx +=
    check_backward(ctx, 602, conv(1, 5, 7, 5, 13, 11, spec(2, 2, None)), t, false); // k5 s2
    check_backward(ctx, 603, conv(3, 10, 4, 1, 7, 9, spec(1, 0, None)), t, false); // k1, batch 3
                                                                                   // Few weights, many pixels: the pixel reduction is split over workgroups and reduced.
    check_backward(ctx, 604, conv(2, 2, 3, 3, 64, 96, spec(1, 1, None)), t, false);
    // Odd height with stride 2: the last input row is read by no output (its dx is 0).
    check_backward(ctx, 605, conv(1, 3, 5, 3, 10, 9, spec(2, 0, None)), t, false);
    // 45 output channels: two blocks of 32 plain channels (8-lane subgroups) or three of 16, the last partial.
    check_backward(ctx, 606, conv(2, 4, 45, 3, 9, 11, spec(1, 1, None)), t, false);
    // The input gradient of a 3x3 stride-1 conv in the Winograd form (flipped taps), `=` and `+=`.
    check_backward(ctx, 607, conv(2, 9, 18, 3, 15, 17, spec(1, 1, None)), ConvAlgo::Winograd, true);
    check_backward(ctx, 608, conv(1, 6, 5, 3, 9, 14, spec(1, 1, None)), ConvAlgo::Winograd, false);
    // 5x5 stride 2: the input gradient's four phases (3x3, 3x2, 2x3, 2x2 taps) in the Winograd form.
    check_backward(ctx, 609, conv(2, 5, 7, 5, 13, 11, spec(2, 2, None)), ConvAlgo::Winograd, true);
    // 3x3 stride 2: weights in F(4x4, 2x2) over the input phases, input gradient phases of 2x2 (Winograd)
    // and 2x1, 1x1 taps (tiled).
    check_backward(ctx, 610, conv(1, 6, 9, 3, 17, 14, spec(2, 1, None)), ConvAlgo::Winograd, false);
}

#[test]
fn conv_transpose2d_backward_matches_cpu() {
    let Some(ctx) = gpu() else { return };
    if !backward_supported(ctx) {
        return;
    }
    let t = ConvAlgo::TiledWith(ConvTile { tm: 8, tn: 4, wg: 64 });
    check_backward(ctx, 700, deconv(2, 14, 6, 4, 7, 9, spec(2, 1, None), None), t, false); // deconv 4x4 s2
    check_backward(ctx, 701, deconv(1, 3, 2, 4, 6, 5, spec(2, 1, None), Some((11, 9))), t, true); // upflow, cropped
    check_backward(ctx, 702, deconv(2, 5, 17, 3, 5, 6, spec(2, 0, None), None), t, false); // odd kernel
    check_backward(ctx, 703, deconv(1, 4, 5, 3, 8, 7, spec(1, 1, None), None), t, false); // stride 1
    check_backward(ctx, 704, deconv(1, 37, 6, 4, 5, 6, spec(2, 1, None), None), t, false); // 37 plain channels
                                                                                           // The input gradient of a 4x4 stride-2 deconv is a 4x4 stride-2 conv: Winograd over its input phases.
    check_backward(ctx, 705, deconv(2, 14, 6, 4, 7, 9, spec(2, 1, None), None), ConvAlgo::Winograd, true);
}

/// `conv_backward` with a fused LeakyReLU: the gradient of the activation, turned into that of the
/// pre-activation from the forward output, then the conv backward.
#[test]
fn conv_backward_through_fused_leaky_relu() {
    let Some(ctx) = gpu() else { return };
    if !backward_supported(ctx) {
        return;
    }
    let l = conv(2, 5, 9, 3, 11, 13, spec(2, 1, Some(0.1)));
    let mut rng = Rng::new(800);
    let (oh, ow) = l.out_hw();
    let x = rng.tensor([l.n, l.cin, l.h, l.w]);
    let wt = rng.tensor(l.weight_shape());
    let b: Vec<f32> = (0..l.cout).map(|_| rng.uniform()).collect();
    let g = rng.tensor([l.n, l.cout, oh, ow]);
    let (x64, w64, b64, g64) = (
        Tensor64::from_f32(&x),
        Tensor64::from_f32(&wt),
        b.iter().map(|&v| v as f64).collect::<Vec<_>>(),
        Tensor64::from_f32(&g),
    );
    let z = conv2d_f64(&x64, &w64, Some(&b64), l.spec.stride, l.spec.pad);
    let dz = leaky_relu_backward_f64(&z, &g64, 0.1);
    let (rdx, rdw, rdb) = conv2d_backward_f64(&x64, &w64, &dz, l.spec.stride, l.spec.pad);

    let weights = ConvWeights::new(ctx, "w", &wt, Some(&b), false).unwrap().with_algo(ConvAlgo::TiledWith(ConvTile {
        tm: 8,
        tn: 4,
        wg: 64,
    }));
    let xg = ctx.upload("x", &x).unwrap();
    let y = ctx.tensor("y", [l.n, l.cout, oh, ow]).unwrap();
    let dy = ctx.upload("dy", &g).unwrap();
    let dx = ctx.tensor("dx", x.shape).unwrap();
    ctx.fill(&dx, f32::NAN).unwrap();
    let grads = weights.new_grads(ctx, "w").unwrap();
    let mut rec = ctx.recorder("leaky backward");
    conv_forward(&mut rec, xg.slice_all(), &weights, l.spec, y.slice_all()).unwrap();
    conv_backward(
        &mut rec,
        xg.slice_all(),
        Some(&y),
        dy.slice_all(),
        &weights,
        l.spec,
        &grads,
        Some(dx.slice_all()),
        false,
    )
    .unwrap();
    rec.submit().unwrap();
    assert_close("leaky dx", &ctx.download(&dx).unwrap().data, &rdx.to_f32().data, DX_ABS, DX_REL);
    let (dw, db) = grads.download(ctx, &weights).unwrap();
    assert_close("leaky dw", &dw.data, &rdw.to_f32().data, DW_ABS, DW_REL);
    let rdb: Vec<f32> = rdb.iter().map(|&v| v as f32).collect();
    assert_close("leaky db", &db.unwrap_or_default(), &rdb, DW_ABS, DW_REL);

    // Without the forward output the fused activation cannot be differentiated: a named error.
    let mut rec = ctx.recorder("leaky backward without y");
    assert!(
        conv_backward(&mut rec, xg.slice_all(), None, dy.slice_all(), &weights, l.spec, &grads, None, false).is_err()
    );
}
