//! GPU kernels against their CPU references on random inputs: odd sizes, sizes spanning many workgroups,
//! channel slices, batch > 1. Outputs are pre-filled with NaN so any element a kernel fails to write
//! fails the comparison. Tolerance: |gpu - cpu| <= 1e-4 + 1e-4 |cpu| (f32 accumulation against f64).

mod common;

use common::{assert_close, gpu, Rng};
use corrflow::ops::conv::{conv_forward, ConvSpec, ConvWeights};
use corrflow::ops::correlation::{correlation_forward_naive, CorrelationSpec};
use corrflow::ops::elementwise::{crop, leaky_relu};
use corrflow::ops::resize::{resize_bilinear, warp_bilinear};
use corrflow::reference::conv::{conv2d_cpu, conv_transpose2d_cpu};
use corrflow::reference::correlation::correlation_cpu;
use corrflow::reference::elementwise::{concat_cpu, crop_cpu, leaky_relu_cpu};
use corrflow::reference::resize::{resize_bilinear_cpu, warp_bilinear_cpu};
use corrflow::HostTensor;

const ABS: f32 = 1e-4;
const REL: f32 = 1e-4;

/// Runs a conv on the GPU, reading input channels [in_off, in_off + cin) of a wider tensor and writing
/// output channels [out_off, out_off + cout) of a wider tensor, and checks the slice against the CPU.
#[allow(clippy::too_many_arguments)]
fn check_conv(
    seed: u64,
    n: usize,
    cin: usize,
    h: usize,
    w: usize,
    cout: usize,
    k: usize,
    spec: ConvSpec,
    bias: bool,
    transposed: bool,
    crop_to: Option<(usize, usize)>,
) {
    let Some(ctx) = gpu() else { return };
    let mut rng = Rng::new(seed);
    let (in_off, in_extra) = (1, 2);
    let (out_off, out_extra) = (3, 1);
    let x_wide = rng.tensor([n, cin + in_off + in_extra, h, w]);
    let x = HostTensor {
        shape: [n, cin, h, w],
        data: (0..n)
            .flat_map(|b| {
                let plane = h * w;
                let start = (b * (cin + in_off + in_extra) + in_off) * plane;
                x_wide.data[start..start + cin * plane].to_vec()
            })
            .collect(),
    };
    let wshape = if transposed { [cin, cout, k, k] } else { [cout, cin, k, k] };
    let wt = rng.tensor(wshape);
    let b: Option<Vec<f32>> = bias.then(|| (0..cout).map(|_| rng.uniform()).collect());
    let expected = if transposed {
        conv_transpose2d_cpu(&x, &wt, b.as_deref(), spec, crop_to)
    } else {
        conv2d_cpu(&x, &wt, b.as_deref(), spec)
    };
    let [_, _, oh, ow] = expected.shape;
    let weights = ConvWeights::new(ctx, "w", &wt, b.as_deref(), transposed).unwrap();
    let xg = ctx.upload("x", &x_wide).unwrap();
    let out = ctx.tensor("out", [n, cout + out_off + out_extra, oh, ow]).unwrap();
    ctx.fill(&out, f32::NAN).unwrap();
    let mut rec = ctx.recorder("conv test");
    conv_forward(&mut rec, xg.slice(in_off, cin).unwrap(), &weights, spec, out.slice(out_off, cout).unwrap()).unwrap();
    rec.submit().unwrap();
    let got = ctx.download(&out).unwrap();
    let plane = oh * ow;
    let total_c = cout + out_off + out_extra;
    let mut slice = Vec::new();
    for bb in 0..n {
        let start = (bb * total_c + out_off) * plane;
        slice.extend_from_slice(&got.data[start..start + cout * plane]);
        // Channels outside the slice must stay untouched (NaN).
        assert!(
            got.data[bb * total_c * plane..(bb * total_c + out_off) * plane].iter().all(|v| v.is_nan()),
            "wrote before the slice"
        );
    }
    let what = format!(
        "{} n{n} cin{cin} {h}x{w} cout{cout} k{k} {spec:?}",
        if transposed { "conv_transpose2d" } else { "conv2d" }
    );
    assert_close(&what, &slice, &expected.data, ABS, REL);
}

#[test]
fn conv2d_matches_cpu() {
    let s = |stride, pad, leaky| ConvSpec { stride, pad, leaky };
    check_conv(1, 1, 6, 37, 29, 8, 7, s(2, 3, Some(0.1)), true, false, None); // FlowNet conv1 shape, odd size
    check_conv(2, 2, 5, 23, 31, 13, 5, s(2, 2, Some(0.1)), true, false, None); // cout not a multiple of 4
    check_conv(3, 1, 9, 19, 17, 6, 3, s(1, 1, None), false, false, None); // predict_flow (no bias)
    check_conv(4, 3, 7, 11, 13, 5, 1, s(1, 0, Some(0.2)), true, false, None); // 1x1, batch 3
    check_conv(5, 1, 3, 70, 90, 4, 3, s(1, 1, None), true, false, None); // many workgroups
    check_conv(6, 1, 4, 9, 10, 3, 3, s(3, 0, None), true, false, None); // stride 3, no padding
}

#[test]
fn conv_transpose2d_matches_cpu() {
    let s = |stride, pad, leaky| ConvSpec { stride, pad, leaky };
    check_conv(11, 1, 10, 7, 9, 6, 4, s(2, 1, Some(0.1)), false, true, None); // FlowNet deconv
    check_conv(12, 2, 3, 6, 5, 2, 4, s(2, 1, None), false, true, Some((11, 9))); // upflow, cropped
    check_conv(13, 1, 5, 8, 7, 7, 3, s(1, 1, None), true, true, None); // general: stride 1, bias
    check_conv(14, 1, 4, 5, 6, 5, 3, s(2, 0, Some(0.3)), true, true, None); // stride 2, no padding
    check_conv(15, 1, 3, 31, 40, 9, 4, s(2, 1, None), false, true, None); // many workgroups
}

#[test]
fn leaky_relu_matches_cpu() {
    let Some(ctx) = gpu() else { return };
    let x = Rng::new(21).tensor([2, 3, 17, 19]);
    let t = ctx.upload("x", &x).unwrap();
    let mut rec = ctx.recorder("leaky");
    leaky_relu(&mut rec, &t, 0.1).unwrap();
    rec.submit().unwrap();
    assert_close("leaky_relu", &ctx.download(&t).unwrap().data, &leaky_relu_cpu(&x, 0.1).data, 0.0, 0.0);
}

#[test]
fn crop_and_concat_match_cpu() {
    let Some(ctx) = gpu() else { return };
    let mut rng = Rng::new(22);
    let a = rng.tensor([2, 3, 13, 11]);
    let b = rng.tensor([2, 5, 10, 9]);
    // concat[crop(a, 10x9), b] built by two crops into channel slices of one buffer.
    let ga = ctx.upload("a", &a).unwrap();
    let gb = ctx.upload("b", &b).unwrap();
    let out = ctx.tensor("cat", [2, 8, 10, 9]).unwrap();
    ctx.fill(&out, f32::NAN).unwrap();
    let mut rec = ctx.recorder("crop");
    crop(&mut rec, ga.slice_all(), 0, 0, out.slice(0, 3).unwrap()).unwrap();
    crop(&mut rec, gb.slice_all(), 0, 0, out.slice(3, 5).unwrap()).unwrap();
    rec.submit().unwrap();
    let expected = concat_cpu(&[&crop_cpu(&a, 0, 0, 10, 9), &b]);
    assert_close("crop+concat", &ctx.download(&out).unwrap().data, &expected.data, 0.0, 0.0);

    // An offset window.
    let win = ctx.tensor("win", [2, 3, 4, 6]).unwrap();
    let mut rec = ctx.recorder("crop offset");
    crop(&mut rec, ga.slice_all(), 5, 2, win.slice_all()).unwrap();
    rec.submit().unwrap();
    assert_close("crop window", &ctx.download(&win).unwrap().data, &crop_cpu(&a, 5, 2, 4, 6).data, 0.0, 0.0);

    // A window that does not fit is an error, not a wrong read.
    let mut rec = ctx.recorder("crop bad");
    assert!(crop(&mut rec, ga.slice_all(), 10, 0, win.slice_all()).is_err());
}

#[test]
fn resize_bilinear_matches_cpu() {
    let Some(ctx) = gpu() else { return };
    let mut rng = Rng::new(23);
    for (shape, oh, ow, scale) in [
        ([1, 2, 12, 16], 48, 64, 20.0),
        ([2, 3, 37, 23], 64, 64, 1.0),
        ([1, 1, 50, 70], 13, 29, 0.5),
        ([1, 2, 1, 1], 5, 3, 1.0),
    ] {
        let x = rng.tensor(shape);
        let src = ctx.upload("src", &x).unwrap();
        let dst = ctx.tensor("dst", [shape[0], shape[1], oh, ow]).unwrap();
        ctx.fill(&dst, f32::NAN).unwrap();
        let mut rec = ctx.recorder("resize");
        resize_bilinear(&mut rec, &src, &dst, scale).unwrap();
        rec.submit().unwrap();
        let expected = resize_bilinear_cpu(&x, oh, ow, scale);
        assert_close(
            &format!("resize {shape:?} -> {oh}x{ow}"),
            &ctx.download(&dst).unwrap().data,
            &expected.data,
            1e-5,
            1e-5,
        );
    }
}

/// A flow's resize: even channels (u) scaled by the first factor, odd ones (v) by the second, added to what
/// the destination held when accumulating, written over it otherwise.
#[test]
fn resize_bilinear_scales_u_and_v_and_accumulates() {
    let Some(ctx) = gpu() else { return };
    let mut rng = Rng::new(29);
    let (x, prior) = (rng.tensor([2, 4, 12, 16]), rng.tensor([2, 4, 48, 64]));
    let (u_scale, v_scale) = (20.0 * 1.25, 20.0 * 0.75);
    let resized = |s| resize_bilinear_cpu(&x, 48, 64, s);
    let (ru, rv) = (resized(u_scale), resized(v_scale));
    let plane = 48 * 64;
    let scaled: Vec<f32> =
        (0..ru.data.len()).map(|i| if (i / plane) % 2 == 0 { ru.data[i] } else { rv.data[i] }).collect();
    for accumulate in [false, true] {
        let src = ctx.upload("src", &x).unwrap();
        let dst = ctx.upload("dst", &prior).unwrap();
        let mut rec = ctx.recorder("resize flow");
        corrflow::ops::resize::resize_bilinear_into(&mut rec, &src, &dst, (u_scale, v_scale), accumulate).unwrap();
        rec.submit().unwrap();
        let expected: Vec<f32> =
            scaled.iter().zip(&prior.data).map(|(r, p)| if accumulate { r + p } else { *r }).collect();
        assert_close(
            &format!("resize flow, accumulate {accumulate}"),
            &ctx.download(&dst).unwrap().data,
            &expected,
            1e-5,
            1e-5,
        );
    }
}

/// The backward warp against its CPU reference: random images and flows of up to 3x the image size (so
/// samples fall past every border), a flow scale that is not 1, batch 2, and NaN in the output buffer
/// beforehand (every pixel must be written).
#[test]
fn warp_bilinear_matches_cpu() {
    let Some(ctx) = gpu() else { return };
    let mut rng = Rng::new(31);
    for (shape, reach, scale) in
        [([2, 3, 17, 23], 5.0, (1.0, 1.0)), ([1, 1, 9, 40], 60.0, (0.75, 1.25)), ([1, 3, 1, 1], 2.0, (1.0, 1.0))]
    {
        let [n, _, h, w] = shape;
        let x = rng.tensor(shape);
        let mut flow = rng.tensor([n, 2, h, w]);
        flow.data.iter_mut().for_each(|v| *v *= reach);
        let (src, fl) = (ctx.upload("src", &x).unwrap(), ctx.upload("flow", &flow).unwrap());
        let dst = ctx.tensor("dst", shape).unwrap();
        ctx.fill(&dst, f32::NAN).unwrap();
        let mut rec = ctx.recorder("warp");
        warp_bilinear(&mut rec, &src, &fl, &dst, scale).unwrap();
        rec.submit().unwrap();
        let expected = warp_bilinear_cpu(&x, &flow, scale);
        assert_close(&format!("warp {shape:?}"), &ctx.download(&dst).unwrap().data, &expected.data, 1e-5, 1e-5);
    }
    // Shapes that do not agree are refused.
    let img = ctx.tensor("img", [1, 3, 8, 8]).unwrap();
    let bad_flow = ctx.tensor("flow", [1, 2, 8, 7]).unwrap();
    let mut rec = ctx.recorder("warp bad");
    assert!(warp_bilinear(&mut rec, &img, &bad_flow, &img, (1.0, 1.0)).is_err());
}

/// Derived by hand: a whole-pixel flow shifts the image, the edge pixel repeating past the border; half a
/// pixel averages neighbours.
#[test]
fn warp_cpu_reference_is_exact_on_known_values() {
    let x = HostTensor::new([1, 1, 1, 4], vec![1.0, 2.0, 4.0, 8.0]).unwrap();
    let shift = |u: f32| HostTensor::new([1, 2, 1, 4], vec![u, u, u, u, 0.0, 0.0, 0.0, 0.0]).unwrap();
    assert_eq!(warp_bilinear_cpu(&x, &shift(1.0), (1.0, 1.0)).data, vec![2.0, 4.0, 8.0, 8.0]);
    assert_eq!(warp_bilinear_cpu(&x, &shift(-2.0), (1.0, 1.0)).data, vec![1.0, 1.0, 1.0, 2.0]);
    assert_eq!(warp_bilinear_cpu(&x, &shift(0.5), (1.0, 1.0)).data, vec![1.5, 3.0, 6.0, 8.0]);
    // The scale converts units: u = 2 at scale 0.5 is one pixel.
    assert_eq!(warp_bilinear_cpu(&x, &shift(2.0), (0.5, 1.0)).data, vec![2.0, 4.0, 8.0, 8.0]);
}

#[test]
fn resize_cpu_reference_is_exact_on_known_values() {
    // Derived by hand: upsampling [0, 1] by 2 (align_corners = false) samples source x = -0.25 (clamped to
    // 0), 0.25, 0.75, 1.25 (clamped neighbour) -> 0, 0.25, 0.75, 1.
    let x = HostTensor::new([1, 1, 1, 2], vec![0.0, 1.0]).unwrap();
    let y = resize_bilinear_cpu(&x, 1, 4, 1.0);
    assert_eq!(y.data, vec![0.0, 0.25, 0.75, 1.0]);
}

#[test]
fn correlation_naive_matches_cpu() {
    let Some(ctx) = gpu() else { return };
    let mut rng = Rng::new(24);
    let specs = [
        ([1, 8, 12, 14], CorrelationSpec { pad: 4, kernel_size: 1, max_displacement: 4, stride1: 1, stride2: 2 }),
        ([2, 5, 11, 9], CorrelationSpec { pad: 3, kernel_size: 3, max_displacement: 2, stride1: 1, stride2: 1 }),
        ([1, 3, 13, 15], CorrelationSpec { pad: 1, kernel_size: 1, max_displacement: 3, stride1: 2, stride2: 1 }),
        ([1, 4, 10, 12], CorrelationSpec { pad: 2, kernel_size: 3, max_displacement: 4, stride1: 2, stride2: 2 }),
    ];
    for (shape, spec) in specs {
        let a = rng.tensor(shape);
        let b = rng.tensor(shape);
        let expected = correlation_cpu(&a, &b, spec).unwrap();
        let ga = ctx.upload("a", &a).unwrap();
        let gb = ctx.upload("b", &b).unwrap();
        let out = ctx.tensor("corr", expected.shape).unwrap();
        ctx.fill(&out, f32::NAN).unwrap();
        let mut rec = ctx.recorder("corr");
        correlation_forward_naive(&mut rec, &ga, &gb, spec, out.slice_all(), None).unwrap();
        rec.submit().unwrap();
        assert_close(
            &format!("correlation {shape:?} {spec:?}"),
            &ctx.download(&out).unwrap().data,
            &expected.data,
            1e-5,
            1e-4,
        );
    }
}

#[test]
fn correlation_cpu_reference_on_hand_values() {
    // One channel, 1x3 image, max displacement 1, stride2 1, pad 1: out[d, 0, x] = a[x] * b[x + dx] (dy = 0
    // rows read the zero padding). a = [1, 2, 3], b = [4, 5, 6].
    let a = HostTensor::new([1, 1, 1, 3], vec![1.0, 2.0, 3.0]).unwrap();
    let b = HostTensor::new([1, 1, 1, 3], vec![4.0, 5.0, 6.0]).unwrap();
    let spec = CorrelationSpec { pad: 1, kernel_size: 1, max_displacement: 1, stride1: 1, stride2: 1 };
    let out = correlation_cpu(&a, &b, spec).unwrap();
    assert_eq!(out.shape, [1, 9, 1, 3]);
    // Channel 3 = (dy 0, dx -1), 4 = (0, 0), 5 = (0, +1).
    assert_eq!(&out.data[3 * 3..4 * 3], &[0.0, 8.0, 15.0]);
    assert_eq!(&out.data[4 * 3..5 * 3], &[4.0, 10.0, 18.0]);
    assert_eq!(&out.data[5 * 3..6 * 3], &[5.0, 12.0, 0.0]);
    assert!(out.data[..9].iter().all(|&v| v == 0.0));
}

#[test]
fn a_dispatch_with_another_kernels_parameters_is_refused() {
    let Some(ctx) = gpu() else { return };
    let t = ctx.tensor("t", [1, 1, 1, 4]).unwrap();
    let params = corrflow::ops::elementwise::LeakyReluParams { len: 4, slope: 0.1, _pad0: 0, _pad1: 0 };
    let mut rec = ctx.recorder("wrong params");
    let e = rec.dispatch(corrflow::runtime::Kernel::Crop, &[], &params, &[t.buffer(), t.buffer()], [1, 1, 1]);
    let message = e.unwrap_err().to_string();
    assert!(
        message.contains("crop") && message.contains("CropParams") && message.contains("LeakyReluParams"),
        "{message}"
    );
}
