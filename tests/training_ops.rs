//! Loss and optimiser kernels against their CPU references, plus a finite-difference check of the EPE
//! gradient. Tolerance for GPU vs CPU: |gpu - cpu| <= 1e-5 + 1e-4 |cpu|.

mod common;

use common::{assert_close, gpu, Rng};
use corrflow::ops::loss::{adaptive_avg_pool, epe_loss, reduce_sum};
use corrflow::ops::optim::{adam_step, AdamConfig, AdamStepBuffer};
use corrflow::reference::loss::{adaptive_avg_pool_cpu, epe_loss_cpu};
use corrflow::reference::optim::adam_step_cpu;
use corrflow::HostTensor;

#[test]
fn adaptive_avg_pool_matches_cpu_and_hand_values() {
    // Hand-derived: 2x2 blocks of [[1, 2], [3, 4]] average to 2.5; scaled by 1/20 -> 0.125.
    let x = HostTensor::new([1, 1, 2, 2], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
    assert_eq!(adaptive_avg_pool_cpu(&x, 1, 1, 0.05).data, vec![0.125]);
    let Some(ctx) = gpu() else { return };
    let mut rng = Rng::new(31);
    for (shape, oh, ow) in [([2, 2, 64, 96], 16, 24), ([1, 2, 37, 29], 5, 7), ([1, 3, 8, 8], 8, 8)] {
        let x = rng.tensor(shape);
        let src = ctx.upload("src", &x).unwrap();
        let dst = ctx.tensor("dst", [shape[0], shape[1], oh, ow]).unwrap();
        ctx.fill(&dst, f32::NAN).unwrap();
        let mut rec = ctx.recorder("pool");
        adaptive_avg_pool(&mut rec, &src, &dst, 0.05).unwrap();
        rec.submit().unwrap();
        assert_close(
            &format!("pool {shape:?}"),
            &ctx.download(&dst).unwrap().data,
            &adaptive_avg_pool_cpu(&x, oh, ow, 0.05).data,
            1e-6,
            1e-5,
        );
    }
}

#[test]
fn epe_loss_gradient_by_finite_differences() {
    let mut rng = Rng::new(32);
    let pred = rng.tensor([2, 2, 3, 4]);
    let target = rng.tensor([2, 2, 3, 4]);
    let scale = 0.37;
    let (_, grad) = epe_loss_cpu(&pred, &target, scale);
    let h = 1e-3f32;
    for i in 0..pred.numel() {
        let mut plus = pred.clone();
        plus.data[i] += h;
        let mut minus = pred.clone();
        minus.data[i] -= h;
        let numeric =
            (epe_loss_cpu(&plus, &target, scale).0 - epe_loss_cpu(&minus, &target, scale).0) / (2.0 * h as f64);
        assert!(
            (numeric - grad.data[i] as f64).abs() < 1e-3,
            "element {i}: numeric {numeric}, analytic {}",
            grad.data[i]
        );
    }
}

#[test]
fn epe_loss_and_reduction_match_cpu() {
    let Some(ctx) = gpu() else { return };
    let mut rng = Rng::new(33);
    let shape = [3, 2, 19, 23];
    let pred = rng.tensor(shape);
    let mut target = rng.tensor(shape);
    target.data[0] = pred.data[0]; // one exactly-zero error: gradient must be 0, not NaN
    target.data[19 * 23] = pred.data[19 * 23];
    let (loss, grad) = epe_loss_cpu(&pred, &target, 0.02);
    assert_eq!(grad.data[0], 0.0);
    let gp = ctx.upload("pred", &pred).unwrap();
    let gt = ctx.upload("target", &target).unwrap();
    let gg = ctx.tensor("grad", shape).unwrap();
    let terms = ctx.tensor("terms", [1, 1, 1, 3 * 19 * 23]).unwrap();
    let out = ctx.tensor("loss", [1, 1, 1, 4]).unwrap();
    ctx.fill(&gg, f32::NAN).unwrap();
    ctx.fill(&out, f32::NAN).unwrap();
    let mut rec = ctx.recorder("epe");
    epe_loss(&mut rec, &gp, &gt, 0.02, &gg, &terms).unwrap();
    reduce_sum(&mut rec, &terms, &out, 2).unwrap();
    rec.submit().unwrap();
    assert_close("epe grad", &ctx.download(&gg).unwrap().data, &grad.data, 1e-6, 1e-4);
    let got = ctx.download(&out).unwrap().data;
    assert!(got[0].is_nan() && got[1].is_nan() && got[3].is_nan(), "reduce_sum wrote outside its slot");
    assert!((got[2] as f64 - loss).abs() <= 1e-4 * loss.abs(), "loss {} vs {loss}", got[2]);
}

#[test]
fn adam_matches_cpu_over_several_steps() {
    let Some(ctx) = gpu() else { return };
    let mut rng = Rng::new(34);
    let n = 1000;
    let mut p: Vec<f32> = (0..n).map(|_| rng.uniform()).collect();
    let (mut m, mut v) = (vec![0.0f32; n], vec![0.0f32; n]);
    let cfg = AdamConfig { lr: 1e-2, weight_decay: 4e-4, ..Default::default() };
    let t = |name, d: &[f32]| ctx.upload(name, &HostTensor::new([1, 1, 1, n], d.to_vec()).unwrap()).unwrap();
    let (gp, gm, gv, gg) = (t("p", &p), t("m", &m), t("v", &v), t("g", &m));
    let step_buf = AdamStepBuffer::new(ctx).unwrap();
    // Recorded once, replayed every step with new gradients and step values (as training does).
    let mut rec = ctx.recorder("adam");
    adam_step(&mut rec, &gp, &gg, &gm, &gv, &cfg, &step_buf).unwrap();
    let program = rec.finish_program().unwrap();
    for step in 1..=3u64 {
        let g: Vec<f32> = (0..n).map(|_| rng.uniform()).collect();
        ctx.write(&gg, &g).unwrap();
        let lr = cfg.lr * step as f32; // a schedule: the lr may change every step
        step_buf.set(ctx, &cfg, step, lr).unwrap();
        let mut rec = ctx.recorder("adam step");
        rec.replay(&program);
        rec.submit().unwrap();
        adam_step_cpu(&mut p, &g, &mut m, &mut v, &cfg, step, lr);
    }
    assert_close("adam param", &ctx.download(&gp).unwrap().data, &p, 1e-6, 1e-5);
    assert_close("adam m", &ctx.download(&gm).unwrap().data, &m, 1e-6, 1e-5);
    assert_close("adam v", &ctx.download(&gv).unwrap().data, &v, 1e-7, 1e-5);
}

#[test]
fn adam_first_step_moves_each_parameter_by_lr() {
    // Derived: at step 1 with no weight decay, m_hat = g and v_hat = g^2, so the update is
    // lr * g / (|g| + eps) ~= lr * sign(g).
    let mut p = vec![0.5f32, -0.5];
    let (mut m, mut v) = (vec![0.0; 2], vec![0.0; 2]);
    adam_step_cpu(&mut p, &[2.0, -0.25], &mut m, &mut v, &AdamConfig::default(), 1, 0.1);
    assert!((p[0] - 0.4).abs() < 1e-6 && (p[1] + 0.4).abs() < 1e-6, "{p:?}");
}

#[test]
fn leaky_relu_backward_matches_cpu_on_a_slice() {
    let Some(ctx) = gpu() else { return };
    let mut rng = Rng::new(35);
    let out = rng.tensor([2, 7, 5, 6]);
    let grad = rng.tensor([2, 7, 5, 6]);
    let go = ctx.upload("out", &out).unwrap();
    let gg = ctx.upload("grad", &grad).unwrap();
    let mut rec = ctx.recorder("leaky bwd");
    corrflow::ops::elementwise::leaky_relu_backward(&mut rec, &go, gg.slice(2, 3).unwrap(), 0.1).unwrap();
    rec.submit().unwrap();
    let full = corrflow::reference::elementwise::leaky_relu_backward_cpu(&out, &grad, 0.1);
    // Channels 2..5 get the derivative, the rest keep the incoming gradient.
    let mut expected = grad.clone();
    for b in 0..2 {
        for c in 2..5 {
            for i in 0..30 {
                let j = (b * 7 + c) * 30 + i;
                expected.data[j] = full.data[j];
            }
        }
    }
    assert_close("leaky_relu_backward slice", &ctx.download(&gg).unwrap().data, &expected.data, 0.0, 0.0);
}
