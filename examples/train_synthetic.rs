//! Trains a small FlowNetC on synthetic pairs for a few steps and saves a checkpoint (the README's
//! training example). cargo run --release --example train_synthetic -- [steps] [out.safetensors]

use corrflow::models::flownet::{Arch, Variant};
use corrflow::training::{DataSource, Loader, TrainConfig, Trainer};
use corrflow::{Context, FlowNet};

fn main() -> corrflow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let steps: u64 = args.first().and_then(|s| s.parse().ok()).unwrap_or(20);
    let out = args.get(1).cloned().unwrap_or_else(|| "net.safetensors".to_string());
    let ctx = Context::new_blocking()?;
    println!("adapter: {}", ctx.adapter());
    let net = FlowNet::new(&ctx, &Arch::new(Variant::C, 0.25).init_weights(1))?;
    let mut trainer = Trainer::new(&ctx, net, TrainConfig::default())?;
    let mut data = Loader::new(DataSource::Synthetic(Default::default()), 4, 192, 256, 1)?;
    for _ in 0..steps {
        let report = trainer.step(&ctx, &data.next_batch()?)?; // forward + loss + backward + Adam
        println!("step {} loss {:.4}", report.step, report.loss);
    }
    trainer.save_checkpoint(&ctx, out.as_ref())?; // atomic; loadable by FlowNet::load
    println!("saved {out}");
    Ok(())
}
