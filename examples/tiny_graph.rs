//! The smallest network built from the layer graph: a Siamese convolutional tower (one set of weights for
//! both images) giving 16-dimensional descriptors on a stride-4 grid, the shape of the descriptor network
//! to come. Defined once, then: forward and backward on the GPU, and a finite-difference check of the
//! GPU's parameter gradients against the f64 CPU forward of the same graph.
//! `cargo run --release --example tiny_graph`

use corrflow::data::Rng;
use corrflow::graph::cpu::{self, CpuParams};
use corrflow::graph::{ConvLayer, GraphBuilder, Network};
use corrflow::{Context, Error, Tensor64, Weights};

fn main() -> corrflow::Result<()> {
    // The network, once. A new op kind (L2 normalisation, sampling at points) is a module of graph::ops.
    let mut g = GraphBuilder::new();
    let conv1 = g.layer(ConvLayer::new("conv1", 3, 8, 3).stride(2).leaky(0.1));
    let conv2 = g.layer(ConvLayer::new("conv2", 8, 16, 3).stride(2).leaky(0.1));
    let head = g.layer(ConvLayer::new("head", 16, 16, 1));
    for image in ["image_a", "image_b"] {
        let x = g.input(image, 3);
        let c1 = g.conv(x, conv1);
        let c2 = g.conv(c1, conv2);
        let descriptors = g.conv(c2, head);
        g.output(descriptors);
    }
    let graph = g.finish()?;

    // Weights by state-dict name: random here, `Weights::load` for a checkpoint.
    let mut rng = Rng::new(1);
    let tensors = graph.layers().iter().flat_map(|l| l.tensors()).map(|(name, shape)| {
        let n = shape.iter().product();
        (name, shape, (0..n).map(|_| 0.3 * rng.uniform()).collect())
    });
    let weights = Weights::from_tensors("random", tensors.collect::<Vec<_>>());
    let ctx = Context::new_blocking()?;
    let net = Network::new(&ctx, graph, &weights)?;

    // Forward, then backward for the loss L = sum over both outputs of <w, descriptors>.
    let inputs = [rng.tensor([1, 3, 16, 20]), rng.tensor([1, 3, 16, 20])];
    let outputs = net.run(&ctx, &inputs)?;
    println!("descriptors {:?} on {}", outputs[0].shape, ctx.adapter());
    let w: Vec<_> = outputs.iter().map(|o| rng.tensor(o.shape)).collect();
    let grads = net.gradients(&ctx, &inputs, &w)?;

    // Finite differences of the f64 CPU forward, one weight of every layer.
    let graph = net.graph();
    let params = CpuParams::new(graph, &weights)?;
    let (x64, w64): (Vec<_>, Vec<_>) =
        (inputs.iter().map(Tensor64::from_f32).collect(), w.iter().map(Tensor64::from_f32).collect());
    let loss = |p: &CpuParams| -> corrflow::Result<f64> {
        let outs = cpu::forward(graph, p, &x64)?.outputs(graph);
        Ok(outs.iter().zip(&w64).map(|(o, w)| o.data.iter().zip(&w.data).map(|(a, b)| a * b).sum::<f64>()).sum())
    };
    for (i, l) in graph.layers().iter().enumerate() {
        let k = 5 % params.layers[i].0.numel();
        let (mut plus, mut minus) = (params.clone(), params.clone());
        plus.layers[i].0.data[k] += 1e-6;
        minus.layers[i].0.data[k] -= 1e-6;
        let fd = (loss(&plus)? - loss(&minus)?) / 2e-6;
        let gpu = grads.get(&format!("grad.{}", l.weight_name), &l.weight_shape())?[k] as f64;
        println!("{:>6} weight {k}: GPU {gpu:+.6e}, finite difference {fd:+.6e}", l.name);
        if (gpu - fd).abs() > 1e-3 * fd.abs().max(1e-2) {
            return Err(Error::Mismatch { message: format!("{}: gradient check failed", l.name) });
        }
    }
    Ok(())
}
