// leaky_relu_backward: in place on a channel slice of a gradient tensor,
//   grad[i] *= (out[i] > 0 ? 1 : slope),
// where `out` is the forward output of the LeakyReLU (same layout as `grad`). For slope > 0 the output is
// positive exactly where the pre-activation is, so the forward output suffices (PyTorch's rule at 0: slope).
// Gradient convention: in place (the incoming gradient is replaced by the pre-activation gradient).
//   grad, out [N, c_total, h, w]; channels c_offset .. c_offset + channels.

struct Params {
    batch: u32, channels: u32, c_offset: u32, c_total: u32,
    plane: u32, slope: f32, _pad0: u32, _pad1: u32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> out: array<f32>;
@group(0) @binding(2) var<storage, read_write> grad: array<f32>;

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.batch * p.channels * p.plane) {
        return;
    }
    let pix = i % p.plane;
    let c = (i / p.plane) % p.channels;
    let n = i / (p.plane * p.channels);
    let j = (n * p.c_total + p.c_offset + c) * p.plane + pix;
    grad[j] = select(grad[j] * p.slope, grad[j], out[j] > 0.0);
}
