//! Times FlowNetS and FlowNetC forward passes with freshly initialised weights (no trained weights needed).
//!
//! cargo run --release --example flownet_forward -- [width] [height] [width_multiplier] [batch] [runs]
//! (defaults: 512 384 1.0 1 3)

use corrflow::models::flownet::{Arch, Variant};
use corrflow::{Context, FlowNet, HostTensor};
use std::time::Instant;

fn main() -> corrflow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: f64| args.get(i).and_then(|s| s.parse::<f64>().ok()).unwrap_or(d);
    let (w, h, mult, batch, runs) = (arg(0, 512.0) as usize, arg(1, 384.0) as usize, arg(2, 1.0), arg(3, 1.0) as usize, arg(4, 3.0) as usize);
    let ctx = Context::new_blocking()?;
    println!("adapter: {}", ctx.adapter());
    for variant in [Variant::S, Variant::C] {
        let arch = Arch::new(variant, mult);
        let net = FlowNet::new(&ctx, &arch.init_weights(1))?;
        let mut rng = corrflow::data::Rng::new(2);
        let channels = if variant == Variant::S { 6 } else { 3 };
        let a = ctx.upload("a", &rng.tensor([batch, channels, h, w]))?;
        let b = ctx.upload("b", &HostTensor::zeros([batch, 3, h, w]))?;
        let second = (variant == Variant::C).then_some(&b);
        net.forward(&ctx, &a, second)?; // warm-up: pipeline creation and shader JIT
        let mut times = Vec::new();
        for _ in 0..runs.max(1) {
            let t = Instant::now();
            net.forward(&ctx, &a, second)?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(|x, y| x.total_cmp(y));
        println!("{variant} width {mult} batch {batch} at {w}x{h}: best {:.0} ms, median {:.0} ms over {} runs", times[0], times[times.len() / 2], times.len());
    }
    Ok(())
}
