// conv_backward_weight_reduce: adds the per-split partial weight gradients into the gradient,
//   grad[i] += sum over s < splits of partial[s * len + i]
// Convention: += (parameter gradient). Used when conv_backward_weight split the pixel reduction over
// several workgroups (a GPU needs that parallelism when a layer has few weights but many pixels).
// 1-D over len (folded into 2-D past the per-dimension limit).

struct Params {
    len: u32, splits: u32, _pad0: u32, _pad1: u32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> partial: array<f32>;
@group(0) @binding(2) var<storage, read_write> grad: array<f32>;

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.len) {
        return;
    }
    var sum = 0.0;
    for (var s = 0u; s < p.splits; s++) {
        sum += partial[s * p.len + i];
    }
    grad[i] += sum;
}
