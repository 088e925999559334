// conv_weights_swap: the packed conv weights with the two channel roles exchanged, as the input-gradient
// passes read them (the gradient of a conv2d is a transposed conv over the output gradient and vice versa,
// and both take their "input" channel from the packed rows and their "output" channel from the vec4 lanes).
//   src  [(a * kh + ky) * kw + kx][b4 * 4]   a in 0..na (packed rows), b in 0..nb (padded to b4 * 4)
//   dst  [(b * kh + ky) * kw + kx][a4 * 4]   zero for a >= na
// Convention: dst is overwritten (=). Rebuilt at every backward pass, after the optimizer moved `src`.
// 1-D over dst's nb * kh * kw * a4 * 4 elements (folded into 2-D past the per-dimension limit).

struct Params {
    na: u32, nb: u32, taps: u32, a4: u32,
    b4: u32, _pad0: u32, _pad1: u32, _pad2: u32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    let row_len = p.a4 * 4u;
    if (i >= p.nb * p.taps * row_len) {
        return;
    }
    let a = i % row_len;
    let r = i / row_len;
    let tap = r % p.taps;
    let b = r / p.taps;
    var v = 0.0;
    if (a < p.na) {
        v = src[(a * p.taps + tap) * p.b4 * 4u + b];
    }
    dst[i] = v;
}
