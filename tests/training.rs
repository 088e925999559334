//! Training parity: the multiscale loss and every parameter gradient of FlowNetS / FlowNetC against the
//! independent PyTorch fixtures (skipped, with a message, when `../shared/fixtures` is absent), and a
//! short training run that must reduce the loss.
//!
//! Tolerances: loss within 1e-4 relative; each gradient tensor within |g - ref| <= 1e-4 * max|ref| +
//! 1e-3 |ref| element-wise (f32 with a different summation order than the f64 reference; fixtures/README.md
//! expects about 1e-3 relative).

mod common;

use std::path::PathBuf;

use common::{assert_close, get4, gpu_with_subgroups, normalised_frame};
use corrflow::models::Weights;
use corrflow::training::{TrainBatch, TrainConfig, Trainer};
use corrflow::FlowNet;

fn fixtures() -> Option<Vec<PathBuf>> {
    common::fixture_dirs("grads.safetensors")
}

#[test]
fn loss_and_every_gradient_match_fixtures() {
    let Some(dirs) = fixtures() else { return };
    let Some(ctx) = gpu_with_subgroups() else { return };
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let net = FlowNet::new(ctx, &Weights::load(dir.join("weights.safetensors")).unwrap()).unwrap();
        let io = Weights::load(dir.join("io.safetensors")).unwrap();
        let batch = TrainBatch {
            frame_a: normalised_frame(&io, "frame_a"),
            frame_b: normalised_frame(&io, "frame_b"),
            flow: get4(&io, "gt_flow"),
        };
        let mut trainer = Trainer::new(ctx, net, TrainConfig::default()).unwrap();
        let report = trainer.compute_gradients(ctx, &batch).unwrap();
        let want_loss = io.get("loss", &[1]).unwrap()[0];
        eprintln!("{name}: loss {} (fixture {want_loss})", report.loss);
        assert!(
            (report.loss - want_loss).abs() <= 1e-4 * want_loss.abs(),
            "{name}: loss {} vs {want_loss}",
            report.loss
        );
        let grads = trainer.gradients(ctx).unwrap();
        let want = Weights::load(dir.join("grads.safetensors")).unwrap();
        let mut worst = (0.0f32, String::new());
        for tensor in want.names() {
            let shape = want.shape(tensor).unwrap().to_vec();
            let expected = want.get(tensor, &shape).unwrap();
            let got = grads.get(tensor, &shape).unwrap_or_else(|e| panic!("{name}: {e}"));
            let scale = expected.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let err = got.iter().zip(expected).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
            if err / scale.max(1e-30) > worst.0 {
                worst = (err / scale.max(1e-30), tensor.to_string());
            }
            assert_close(&format!("{name} {tensor}"), got, expected, 1e-4 * scale, 1e-3);
        }
        eprintln!("{name}: worst gradient error {:.2e} of its tensor's scale ({})", worst.0, worst.1);
    }
}

#[test]
fn a_few_steps_on_one_batch_reduce_the_loss() {
    let Some(dirs) = fixtures() else { return };
    let Some(ctx) = gpu_with_subgroups() else { return };
    let dir = dirs.iter().find(|d| d.ends_with("flownetc_w0.125")).expect("flownetc_w0.125 fixture");
    let net = FlowNet::new(ctx, &Weights::load(dir.join("weights.safetensors")).unwrap()).unwrap();
    let io = Weights::load(dir.join("io.safetensors")).unwrap();
    let batch = TrainBatch {
        frame_a: normalised_frame(&io, "frame_a"),
        frame_b: normalised_frame(&io, "frame_b"),
        flow: get4(&io, "gt_flow"),
    };
    let config =
        TrainConfig { adam: corrflow::ops::optim::AdamConfig { lr: 1e-3, ..Default::default() }, ..Default::default() };
    let mut trainer = Trainer::new(ctx, net, config).unwrap();
    let first = trainer.step(ctx, &batch).unwrap();
    let mut last = first;
    for _ in 0..9 {
        last = trainer.step(ctx, &batch).unwrap();
    }
    eprintln!("loss {} -> {} over 10 steps", first.loss, last.loss);
    assert_eq!(last.step, 10);
    assert!(last.loss < 0.8 * first.loss, "loss {} -> {}", first.loss, last.loss);
}

#[test]
fn checkpoint_resume_continues_exactly() {
    let Some(ctx) = gpu_with_subgroups() else { return };
    use corrflow::data::synthetic::SyntheticConfig;
    use corrflow::models::flownet::{Arch, Variant};
    use corrflow::training::{DataSource, Loader};
    let dir = common::TempDir::new("ckpt");
    let path = dir.join("net.safetensors");
    let weights = Arch::new(Variant::S, 0.0625).init_weights(3);
    let config =
        TrainConfig { adam: corrflow::ops::optim::AdamConfig { lr: 1e-3, ..Default::default() }, ..Default::default() };
    let mut loader = Loader::new(DataSource::Synthetic(SyntheticConfig::small()), 2, 64, 64, 9).unwrap();
    let batches: Vec<TrainBatch> = (0..3).map(|_| loader.next_batch().unwrap()).collect();
    // Straight through: three steps.
    let mut a = Trainer::new(ctx, FlowNet::new(ctx, &weights).unwrap(), config.clone()).unwrap();
    for b in &batches {
        a.step(ctx, b).unwrap();
    }
    // Two steps, checkpoint, resume in a new trainer, third step.
    let mut b = Trainer::new(ctx, FlowNet::new(ctx, &weights).unwrap(), config.clone()).unwrap();
    b.step(ctx, &batches[0]).unwrap();
    b.step(ctx, &batches[1]).unwrap();
    b.set_metadata("seed", 9);
    b.save_checkpoint(ctx, &path).unwrap();
    // A best checkpoint's figures stay in its own file.
    let best = dir.join("net.best.safetensors");
    b.save_weights_with(ctx, &best, &[("val_synthetic_epe", "1.2345".into())]).unwrap();
    assert_eq!(Weights::load(&best).unwrap().metadata().get("val_synthetic_epe").unwrap(), "1.2345");
    assert!(!Weights::load(&path).unwrap().metadata().contains_key("val_synthetic_epe"));
    let (mut c, optimizer_restored) = Trainer::resume(ctx, &path, config.clone()).unwrap();
    assert!(optimizer_restored);
    assert_eq!(c.steps(), 2);
    assert_eq!(c.metadata().get("seed").map(String::as_str), Some("9"));
    // Resuming from a file with validation figures does not pass them on to later checkpoints.
    let (from_best, _) = Trainer::resume(ctx, &best, config).unwrap();
    assert!(from_best.metadata().keys().all(|k| !k.starts_with("val_")), "{:?}", from_best.metadata());
    let last = c.step(ctx, &batches[2]).unwrap();
    assert_eq!(last.step, 3);
    let (wa, wc) = (a.weights(ctx).unwrap(), c.weights(ctx).unwrap());
    for name in wa.names() {
        let shape = wa.shape(name).unwrap().to_vec();
        assert_eq!(wa.get(name, &shape).unwrap(), wc.get(name, &shape).unwrap(), "{name} differs after resume");
    }
    // The checkpoint is a plain weights file: the flow command's loader takes it.
    assert!(FlowNet::load(ctx, &path).is_ok());
    let names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect();
    assert!(names.iter().all(|n| !n.contains(".tmp")), "temporary files left: {names:?}");
}

#[test]
fn loader_reads_flyingchairs_folder_and_synthetic_pairs() {
    use corrflow::data::synthetic::SyntheticConfig;
    use corrflow::training::data::scan_folder;
    use corrflow::training::{DataSource, Loader};
    let mut synthetic = Loader::new(DataSource::Synthetic(SyntheticConfig::small()), 3, 64, 128, 1).unwrap();
    let b = synthetic.next_batch().unwrap();
    assert_eq!((b.frame_a.shape, b.flow.shape), ([3, 3, 64, 128], [3, 2, 64, 128]));
    assert!(b.flow.data.iter().any(|&v| v != 0.0));
    assert!(
        Loader::new(DataSource::Synthetic(SyntheticConfig::small()), 1, 60, 64, 1).is_err(),
        "sizes must be multiples of 64"
    );
    let chairs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/flyingchairs");
    if !chairs.exists() {
        common::skip(format!("the folder loader: {} not found", chairs.display()));
        return;
    }
    let samples = scan_folder(&chairs).unwrap();
    assert_eq!(samples.len(), 3);
    assert!(
        samples[0].frame_a.to_string_lossy().ends_with("0000000-img0.ppm")
            && samples[0].frame_b.to_string_lossy().ends_with("0000000-img1.ppm")
    );
    let mut folder = Loader::new(DataSource::Folder(samples.clone()), 2, 320, 448, 2).unwrap();
    let b = folder.next_batch().unwrap();
    // A crop of real FlyingChairs flow: finite, non-zero, within the dataset's range.
    assert!(b.flow.data.iter().all(|v| v.is_finite() && v.abs() < 500.0) && b.flow.data.iter().any(|&v| v.abs() > 0.1));
    let mut too_big = Loader::new(DataSource::Folder(samples), 1, 448, 576, 2).unwrap();
    let e = too_big.next_batch().unwrap_err();
    assert!(e.to_string().contains("smaller"), "{e}");
    assert!(scan_folder(&std::env::temp_dir().join("corrflow-no-such-dir")).is_err());
}

#[test]
fn a_diverged_step_is_an_error_and_leaves_the_weights_alone() {
    let Some(ctx) = gpu_with_subgroups() else { return };
    use corrflow::models::flownet::{Arch, Variant};
    let weights = Arch::new(Variant::C, 0.0625).init_weights(4);
    let mut trainer = Trainer::new(ctx, FlowNet::new(ctx, &weights).unwrap(), TrainConfig::default()).unwrap();
    let zeros = |c| corrflow::HostTensor::zeros([1, c, 64, 64]);
    let mut flow = zeros(2);
    flow.data[100] = f32::NAN;
    let e = trainer.step(ctx, &TrainBatch { frame_a: zeros(3), frame_b: zeros(3), flow }).unwrap_err();
    assert!(e.to_string().contains("NaN"), "{e}");
    assert_eq!(trainer.steps(), 0);
    let after = trainer.weights(ctx).unwrap();
    for name in weights.names() {
        let shape = weights.shape(name).unwrap().to_vec();
        assert_eq!(after.get(name, &shape).unwrap(), weights.get(name, &shape).unwrap(), "{name} changed");
    }
}

/// Adam's bias corrections follow the age of the moments, not the training step: a trainer whose moments
/// start at zero late in a run (a checkpoint resumed without its `.adam` file) takes a first update of at most
/// lr per weight, as at step 1 (Adam's first step moves each weight by lr * g / |g|). With the step count
/// driving the corrections instead, step 5001 would move weights by about 3.2 lr (sqrt(1000) / 10).
#[test]
fn restarted_moments_take_a_first_step_of_at_most_lr() {
    use corrflow::data::synthetic::SyntheticConfig;
    use corrflow::models::flownet::{Arch, Variant};
    use corrflow::training::{DataSource, Loader};
    let Some(ctx) = gpu_with_subgroups() else { return };
    let lr = 1e-3f32;
    let config = TrainConfig {
        adam: corrflow::ops::optim::AdamConfig { lr, weight_decay: 0.0, ..Default::default() },
        ..Default::default()
    };
    let weights = Arch::new(Variant::S, 0.125).init_weights(4);
    let mut trainer = Trainer::new(ctx, FlowNet::new(ctx, &weights).unwrap(), config).unwrap();
    trainer.set_steps(5000);
    let batch =
        Loader::new(DataSource::Synthetic(SyntheticConfig::small()), 1, 64, 64, 3).unwrap().next_batch().unwrap();
    let report = trainer.step(ctx, &batch).unwrap();
    assert_eq!(report.step, 5001);
    let after = trainer.weights(ctx).unwrap();
    let mut largest = 0.0f32;
    for name in weights.names() {
        let shape = weights.shape(name).unwrap().to_vec();
        let (w0, w1) = (weights.get(name, &shape).unwrap(), after.get(name, &shape).unwrap());
        largest = w0.iter().zip(w1).fold(largest, |m, (a, b)| m.max((a - b).abs()));
    }
    eprintln!("largest first update {largest:.3e} (lr {lr:.0e})");
    assert!(largest <= 1.01 * lr && largest > 0.5 * lr, "first update {largest} with lr {lr}");
}

#[test]
fn recorded_steps_are_bounded_per_batch_shape() {
    let Some(ctx) = gpu_with_subgroups() else { return };
    use corrflow::models::flownet::{Arch, Variant};
    let weights = Arch::new(Variant::S, 0.0625).init_weights(6);
    let mut trainer = Trainer::new(ctx, FlowNet::new(ctx, &weights).unwrap(), TrainConfig::default()).unwrap();
    let zeros = |n, c| corrflow::HostTensor::zeros([n, c, 64, 64]);
    for n in 1..=3 {
        let batch = TrainBatch { frame_a: zeros(n, 3), frame_b: zeros(n, 3), flow: zeros(n, 2) };
        trainer.compute_gradients(ctx, &batch).unwrap();
        assert_eq!(trainer.cached_plans(), n.min(corrflow::training::DEFAULT_TRAIN_PLANS));
    }
    trainer.set_plan_capacity(1);
    assert_eq!(trainer.cached_plans(), 1);
}
