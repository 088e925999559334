// conv_backward_bias: the bias gradient of a conv or transposed conv,
//   db[c] += sum over n, y, x of dy[n, c_offset + c, y, x]
// Convention: += (parameter gradients accumulate over micro-batches; zero them before a step).
// One workgroup per channel: lanes stride over the pixels of every image, then a tree reduction in
// workgroup memory.
//   dy [N, c_total, h, w]; db [channels].

struct Params {
    batch: u32, channels: u32, c_offset: u32, c_total: u32,
    plane: u32, _pad0: u32, _pad1: u32, _pad2: u32,
}

// A power of two.
override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> db: array<f32>;

var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let c = wid.x;
    var sum = 0.0;
    for (var n = 0u; n < p.batch; n++) {
        let base = (n * p.c_total + p.c_offset + c) * p.plane;
        for (var i = lid.x; i < p.plane; i += WG) {
            sum += dy[base + i];
        }
    }
    partial[lid.x] = sum;
    workgroupBarrier();
    for (var half = WG / 2u; half > 0u; half /= 2u) {
        if (lid.x < half) {
            partial[lid.x] += partial[lid.x + half];
        }
        workgroupBarrier();
    }
    if (lid.x == 0u) {
        db[c] += partial[0];
    }
}
