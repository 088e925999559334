//! The layer graph: a tiny network that uses every op kind and graph feature (a layer shared by two
//! inputs, correlation with a fused LeakyReLU, concatenations written in place, a stride-2 conv, transposed
//! convs cropped to a reference, two outputs), checked three ways:
//! * the f64 CPU backward (the reverse walk over each op's `backward_cpu`) against central finite
//!   differences of the f64 CPU forward (h = 1e-6);
//! * the GPU forward and backward (`Network::run`, `Network::gradients`) against the CPU ones, odd sizes,
//!   batch 2;
//! * the builder's wiring errors, and the backward's refusal of a correlation whose input gradients
//!   already hold other contributions.
//!
//! Tolerances: finite differences |fd - analytic| <= 1e-6 * max|analytic| + 1e-5 |analytic|; GPU (f32)
//! against CPU (f64) |gpu - cpu| <= 1e-4 * max|cpu| + 1e-3 |cpu| (the fixture tests' gradient bound).

mod common;

use common::{assert_close, gpu_with_subgroups, Rng};
use corrflow::graph::cpu::{self, CpuActivations, CpuParams};
use corrflow::graph::{ConvLayer, Graph, GraphBuilder, Network};
use corrflow::ops::correlation::CorrelationSpec;
use corrflow::{HostTensor, Tensor64, Weights};

const SPEC: CorrelationSpec = CorrelationSpec { pad: 2, kernel_size: 1, max_displacement: 2, stride1: 1, stride2: 2 };

/// The tiny network; `corr_first` adds the correlation before the other reader of its first input.
fn tiny(corr_first: bool) -> Graph {
    let mut g = GraphBuilder::new();
    let (a, b) = (g.input("a", 3), g.input("b", 3));
    let tower = g.layer(ConvLayer::new("tower", 3, 4, 3).leaky(0.1));
    let (fa, fb) = (g.conv(a, tower), g.conv(b, tower));
    let redir = g.layer(ConvLayer::new("redir", 4, 2, 1).leaky(0.1));
    let (r, corr) = if corr_first {
        let corr = g.correlation(fa, fb, SPEC, Some(0.1));
        (g.conv(fa, redir), corr)
    } else {
        let r = g.conv(fa, redir);
        (r, g.correlation(fa, fb, SPEC, Some(0.1)))
    };
    let cat = g.concat(&[r, corr]);
    let down = g.layer(ConvLayer::new("down", 2 + SPEC.displacements(), 6, 3).stride(2).leaky(0.1));
    let d = g.conv(cat, down);
    let coarse = g.layer(ConvLayer::new("coarse", 6, 2, 3).no_bias());
    let flow_lo = g.conv(d, coarse);
    let up = g.layer(ConvLayer::new("up", 6, 3, 4).transposed().stride(2).pad(1).no_bias().leaky(0.1));
    let u = g.conv_like(d, up, r);
    let upflow = g.layer(ConvLayer::new("upflow", 2, 2, 4).transposed().stride(2).pad(1).no_bias());
    let uf = g.conv_like(flow_lo, upflow, r);
    let cat2 = g.concat(&[u, uf]);
    let head = g.layer(ConvLayer::new("head", 5, 2, 3));
    let flow = g.conv(cat2, head);
    g.output(flow);
    g.output(flow_lo);
    g.finish().unwrap()
}

const INPUT: [usize; 4] = [2, 3, 9, 11];

fn random_weights(graph: &Graph, seed: u64) -> Weights {
    let mut rng = Rng::new(seed);
    let mut tensors = Vec::new();
    for l in graph.layers() {
        for (name, shape) in l.tensors() {
            let fan_in = (l.cin * l.k * l.k) as f32;
            let n: usize = shape.iter().product();
            tensors.push((name, shape, (0..n).map(|_| rng.uniform() * 2.0 / fan_in.sqrt()).collect()));
        }
    }
    Weights::from_tensors("random", tensors)
}

/// The loss sum over outputs of <w_o, y_o>, and its gradients w_o.
fn loss(acts: &CpuActivations, graph: &Graph, w: &[Tensor64]) -> f64 {
    graph
        .outputs()
        .iter()
        .zip(w)
        .map(|(&o, w)| acts.get(o).unwrap().data.iter().zip(&w.data).map(|(y, w)| y * w).sum::<f64>())
        .sum()
}

struct Case {
    graph: Graph,
    weights: Weights,
    inputs: Vec<HostTensor>,
    output_grads: Vec<HostTensor>,
}

fn case(seed: u64) -> Case {
    let graph = tiny(false);
    let weights = random_weights(&graph, seed);
    let mut rng = Rng::new(seed + 1);
    let inputs = vec![rng.tensor(INPUT), rng.tensor(INPUT)];
    let shapes = graph.shapes(&[INPUT, INPUT]).unwrap();
    let output_grads = graph.outputs().iter().map(|o| rng.tensor(shapes[o.index()])).collect();
    Case { graph, weights, inputs, output_grads }
}

fn f64s(ts: &[HostTensor]) -> Vec<Tensor64> {
    ts.iter().map(Tensor64::from_f32).collect()
}

#[test]
fn cpu_backward_matches_finite_differences() {
    let c = case(11);
    let (inputs, w) = (f64s(&c.inputs), f64s(&c.output_grads));
    let params = CpuParams::new(&c.graph, &c.weights).unwrap();
    let acts = cpu::forward(&c.graph, &params, &inputs).unwrap();
    let grads = cpu::backward(&c.graph, &params, &acts, &w).unwrap();
    let h = 1e-6;
    let mut checked = 0;
    for (li, l) in c.graph.layers().iter().enumerate() {
        let (dw, db) = &grads.layers[li];
        let scale = dw.data.iter().chain(db.iter().flatten()).fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(scale > 0.0, "{}: zero gradient, the check would be vacuous", l.name);
        let n_w = dw.data.len();
        // Every 3rd weight and every bias.
        let indices = (0..n_w).step_by(3).chain(n_w..n_w + db.as_ref().map_or(0, Vec::len));
        for i in indices {
            let at = |delta: f64| {
                let mut p = params.clone();
                let (pw, pb) = &mut p.layers[li];
                match i < n_w {
                    true => pw.data[i] += delta,
                    false => pb.as_mut().unwrap()[i - n_w] += delta,
                }
                loss(&cpu::forward(&c.graph, &p, &inputs).unwrap(), &c.graph, &w)
            };
            let fd = (at(h) - at(-h)) / (2.0 * h);
            let analytic = if i < n_w { dw.data[i] } else { db.as_ref().unwrap()[i - n_w] };
            assert!(
                (fd - analytic).abs() <= 1e-6 * scale + 1e-5 * analytic.abs(),
                "{} parameter {i}: finite difference {fd}, backward {analytic}",
                l.name
            );
            checked += 1;
        }
    }
    assert!(checked > 300, "only {checked} parameters checked");
}

#[test]
fn gpu_forward_and_gradients_match_the_cpu_reference() {
    let Some(ctx) = gpu_with_subgroups() else { return };
    let c = case(21);
    let net = Network::new(ctx, tiny(false), &c.weights).unwrap();
    let params = CpuParams::new(&c.graph, &c.weights).unwrap();
    let acts = cpu::forward(&c.graph, &params, &f64s(&c.inputs)).unwrap();
    for (gpu, cpu) in net.run(ctx, &c.inputs).unwrap().iter().zip(acts.outputs(&c.graph)) {
        let cpu = cpu.to_f32();
        let scale = cpu.data.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert_eq!(gpu.shape, cpu.shape);
        assert_close("forward output", &gpu.data, &cpu.data, 1e-4 * scale, 1e-4);
    }
    let gpu = net.gradients(ctx, &c.inputs, &c.output_grads).unwrap();
    let want = cpu::backward(&c.graph, &params, &acts, &f64s(&c.output_grads)).unwrap().to_weights(&c.graph, "grad.");
    assert_eq!(gpu.names().collect::<Vec<_>>(), want.names().collect::<Vec<_>>());
    for name in want.names() {
        let shape = want.shape(name).unwrap().to_vec();
        let expected = want.get(name, &shape).unwrap();
        let scale = expected.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert_close(name, gpu.get(name, &shape).unwrap(), expected, 1e-4 * scale, 1e-3);
    }
    // A second pass at the same shapes replays the recorded forward.
    net.run(ctx, &c.inputs).unwrap();
    assert_eq!(net.cached_plans(), 1);
}

#[test]
fn a_correlation_added_before_its_inputs_other_reader_is_refused_on_the_gpu() {
    let Some(ctx) = gpu_with_subgroups() else { return };
    let c = case(31);
    let net = Network::new(ctx, tiny(true), &c.weights).unwrap();
    let e = net.gradients(ctx, &c.inputs, &c.output_grads).unwrap_err().to_string();
    assert!(e.contains("overwrite") && e.contains("after the other consumers"), "{e}");
    // The CPU reference has no such constraint, and the forward none either.
    assert!(net.run(ctx, &c.inputs).is_ok());
}

#[test]
fn flops_count_every_node_of_a_shared_layer() {
    let g = tiny(false);
    let flops = g.layer_flops(&[INPUT, INPUT]).unwrap();
    let names: Vec<&str> = flops.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["tower", "redir", "correlation", "down", "coarse", "up", "upflow", "head"]);
    // Two 3 -> 4 3x3 convolutions on 2 x 9x11 (one per input).
    assert_eq!(flops[0].1, 2.0 * 2.0 * (2 * 9 * 11) as f64 * 12.0 * 9.0);
    // The transposed 4x4 stride-2 conv: 4 real taps per output pixel of the 9x11 crop.
    assert_eq!(flops[5].1, 2.0 * (2 * 9 * 11) as f64 * 18.0 * 4.0);
    assert_eq!(g.num_params(), g.layers().iter().map(|l| l.num_params()).sum::<usize>());
}

fn build_err(f: impl FnOnce(&mut GraphBuilder)) -> String {
    let mut g = GraphBuilder::new();
    f(&mut g);
    g.finish().unwrap_err().to_string()
}

#[test]
fn the_builder_reports_wiring_errors() {
    let e = build_err(|g| {
        let x = g.input("x", 3);
        let l = g.layer(ConvLayer::new("c", 4, 8, 3));
        let y = g.conv(x, l);
        g.output(y);
    });
    assert!(e.contains("c: input has 3 channels, the layer takes 4"), "{e}");
    let e = build_err(|g| {
        let x = g.input("x", 3);
        let l = g.layer(ConvLayer::new("c", 3, 8, 3));
        let y = g.conv(x, l);
        let cat = g.concat(&[x, y]);
        g.output(cat);
    });
    assert!(e.contains("graph input `x` cannot be part of a concatenation"), "{e}");
    let e = build_err(|g| {
        let x = g.input("x", 3);
        let (l1, l2) = (g.layer(ConvLayer::new("c1", 3, 8, 3)), g.layer(ConvLayer::new("c2", 3, 8, 3)));
        let (y1, y2) = (g.conv(x, l1), g.conv(x, l2));
        let _ = g.concat(&[y1, y2]);
        let cat = g.concat(&[y2, y1]);
        g.output(cat);
    });
    assert!(e.contains("already part of a concatenation"), "{e}");
    let e = build_err(|g| {
        let x = g.input("x", 3);
        let l = g.layer(ConvLayer::new("c", 3, 8, 3));
        let y = g.conv(x, l);
        let _ = g.concat(&[y]);
        g.output(y);
    });
    assert!(e.contains("output `c` is part of a concatenation"), "{e}");
    let e = build_err(|g| {
        let x = g.input("x", 3);
        g.layer(ConvLayer::new("c", 3, 8, 3));
        let l = g.layer(ConvLayer::new("c", 3, 8, 3));
        let y = g.conv(x, l);
        g.output(y);
    });
    assert!(e.contains("reuses a name"), "{e}");
    let e = build_err(|g| {
        let mut other = GraphBuilder::new();
        let _ = other.input("y", 3);
        let stray = other.input("z", 3);
        let x = g.input("x", 3);
        let l = g.layer(ConvLayer::new("c", 3, 8, 3));
        let _ = g.conv(x, l);
        let y = g.conv(stray, l);
        g.output(y);
    });
    assert!(e.contains("does not belong to this graph"), "{e}");
    // Shapes that do not fit are found when the graph is given input shapes.
    let mut g = GraphBuilder::new();
    let x = g.input("x", 3);
    let l = g.layer(ConvLayer::new("c", 3, 8, 3).stride(2));
    let y = g.conv(x, l);
    let l2 = g.layer(ConvLayer::new("d", 3, 8, 3));
    let z = g.conv(x, l2);
    let cat = g.concat(&[y, z]);
    g.output(cat);
    let graph = g.finish().unwrap();
    let e = graph.shapes(&[[1, 3, 8, 8]]).unwrap_err().to_string();
    assert!(e.contains("part `d` is 1 x 8x8, the first part 1 x 4x4"), "{e}");
    assert!(graph.shapes(&[[1, 4, 8, 8]]).is_err());
}

/// A descriptor-like graph: a shared stride-2 4x4 conv tower on two inputs, each ending in the L2
/// normalisation op (`l2_first`: a second reader of the head's output added after the normalisation).
fn normalised(l2_first: bool) -> Graph {
    let mut g = GraphBuilder::new();
    let down = g.layer(ConvLayer::new("down", 3, 6, 4).stride(2).pad(1).leaky(0.1));
    let head = g.layer(ConvLayer::new("head", 6, 5, 3));
    let side = l2_first.then(|| g.layer(ConvLayer::new("side", 5, 2, 1)));
    for name in ["a", "b"] {
        let x = g.input(name, 3);
        let d = g.conv(x, down);
        let h = g.conv(d, head);
        let y = g.l2_normalize(h);
        g.output(y);
        if let Some(side) = side {
            let s = g.conv(h, side);
            g.output(s);
        }
    }
    g.finish().unwrap()
}

fn normalised_case(l2_first: bool, seed: u64) -> Case {
    let graph = normalised(l2_first);
    let weights = random_weights(&graph, seed);
    let mut rng = Rng::new(seed + 1);
    let input = [2, 3, 10, 13];
    let inputs = vec![rng.tensor(input), rng.tensor(input)];
    let shapes = graph.shapes(&[input, input]).unwrap();
    let output_grads = graph.outputs().iter().map(|o| rng.tensor(shapes[o.index()])).collect();
    Case { graph, weights, inputs, output_grads }
}

/// The L2 normalisation op: its CPU backward through the conv tower against central finite differences
/// (h = 1e-6, the tolerances above), the GPU forward (unit norms) and parameter gradients against the CPU
/// reference, and the refusal of a backward whose input gradient already holds another reader's part.
#[test]
fn l2_normalize_op_matches_finite_differences_and_the_gpu() {
    let c = normalised_case(false, 41);
    let (inputs, w) = (f64s(&c.inputs), f64s(&c.output_grads));
    let params = CpuParams::new(&c.graph, &c.weights).unwrap();
    let acts = cpu::forward(&c.graph, &params, &inputs).unwrap();
    for out in acts.outputs(&c.graph) {
        let [n, d, h, wd] = out.shape;
        for p in 0..n * h * wd {
            let (b, q) = (p / (h * wd), p % (h * wd));
            let norm: f64 = (0..d).map(|ch| out.data[(b * d + ch) * h * wd + q].powi(2)).sum::<f64>().sqrt();
            // 1 - eps / (2 |x|^2) with eps = 1e-10.
            assert!((norm - 1.0).abs() < 1e-6, "pixel {p}: norm {norm}");
        }
    }
    let grads = cpu::backward(&c.graph, &params, &acts, &w).unwrap();
    let h = 1e-6;
    for (li, l) in c.graph.layers().iter().enumerate() {
        let (dw, _) = &grads.layers[li];
        let scale = dw.data.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(scale > 0.0, "{}: zero gradient", l.name);
        for i in (0..dw.data.len()).step_by(2) {
            let at = |delta: f64| {
                let mut p = params.clone();
                p.layers[li].0.data[i] += delta;
                loss(&cpu::forward(&c.graph, &p, &inputs).unwrap(), &c.graph, &w)
            };
            let fd = (at(h) - at(-h)) / (2.0 * h);
            let analytic = dw.data[i];
            assert!(
                (fd - analytic).abs() <= 1e-6 * scale + 1e-5 * analytic.abs(),
                "{} weight {i}: finite difference {fd}, backward {analytic}",
                l.name
            );
        }
    }

    let Some(ctx) = gpu_with_subgroups() else { return };
    let net = Network::new(ctx, normalised(false), &c.weights).unwrap();
    for (gpu, cpu) in net.run(ctx, &c.inputs).unwrap().iter().zip(acts.outputs(&c.graph)) {
        assert_close("normalised output", &gpu.data, &cpu.to_f32().data, 1e-5, 1e-4);
    }
    let gpu = net.gradients(ctx, &c.inputs, &c.output_grads).unwrap();
    let want = grads.to_weights(&c.graph, "grad.");
    for name in want.names() {
        let shape = want.shape(name).unwrap().to_vec();
        let expected = want.get(name, &shape).unwrap();
        let scale = expected.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert_close(name, gpu.get(name, &shape).unwrap(), expected, 1e-4 * scale, 1e-3);
    }

    // The head's output read by another layer added after the normalisation: the GPU backward refuses.
    let c = normalised_case(true, 43);
    let net = Network::new(ctx, normalised(true), &c.weights).unwrap();
    let e = net.gradients(ctx, &c.inputs, &c.output_grads).unwrap_err().to_string();
    assert!(e.contains("l2_normalize") && e.contains("overwrites"), "{e}");
}
