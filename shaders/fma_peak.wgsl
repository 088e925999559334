// fma_peak: the arithmetic peak of an adapter, measured with registers only. Every invocation runs
// `iterations` rounds of 16 independent multiply-add chains (four vec4 fma per round step, four steps per
// round: 64 scalar FMAs = 128 FLOP per round), enough independent chains to hide the FMA latency on CPU
// SIMD and GPU ALUs alike, and no memory traffic in the loop. The multiplier and addend come from the
// uniform buffer so nothing can be folded; the sum of all chains is written so nothing is dead.
//   FLOP per dispatch = 128 * iterations * invocations.

struct Params {
    iterations: u32, mul: f32, add: f32, _pad0: u32,
}

override WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    let s = f32(i % 1024u) * 1e-4;
    let m = vec4(p.mul);
    let c = vec4(p.add);
    var x0 = vec4(s, s + 0.1, s + 0.2, s + 0.3);
    var x1 = vec4(s + 0.4, s + 0.5, s + 0.6, s + 0.7);
    var x2 = vec4(s + 0.8, s + 0.9, s + 1.0, s + 1.1);
    var x3 = vec4(s + 1.2, s + 1.3, s + 1.4, s + 1.5);
    for (var k = 0u; k < p.iterations; k++) {
        x0 = fma(x0, m, c); x1 = fma(x1, m, c); x2 = fma(x2, m, c); x3 = fma(x3, m, c);
        x0 = fma(x0, m, c); x1 = fma(x1, m, c); x2 = fma(x2, m, c); x3 = fma(x3, m, c);
        x0 = fma(x0, m, c); x1 = fma(x1, m, c); x2 = fma(x2, m, c); x3 = fma(x3, m, c);
        x0 = fma(x0, m, c); x1 = fma(x1, m, c); x2 = fma(x2, m, c); x3 = fma(x3, m, c);
    }
    let r = x0 + x1 + x2 + x3;
    out[i] = r.x + r.y + r.z + r.w;
}
