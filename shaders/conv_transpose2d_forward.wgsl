// conv_transpose2d_forward: out = LeakyReLU?(conv_transpose2d(x, w) + bias), PyTorch semantics.
//
// Written as a gather (each invocation owns its outputs, no atomics): output (oy, ox) receives
// x[ci, iy, ix] * w[ci, co, ky, kx] for every tap with oy = iy * stride - pad + ky, ox likewise, i.e.
// iy = (oy + pad - ky) / stride when that division is exact.
//
// Layouts as in conv2d_forward: x is a channel slice of [N, in_c_total, in_h, in_w]; w is packed from
// PyTorch's transposed layout [cin, cout, kh, kw] into [(ci * kh + ky) * kw + kx][cout4] of vec4; out is a
// channel slice of [N, out_c_total, out_h, out_w]. out_h/out_w may be smaller than the full transposed-conv
// size: the op then computes only the top-left out_h x out_w window, which is FlowNet's crop_like for free.

struct Params {
    batch: u32, cin: u32, in_h: u32, in_w: u32,
    in_c_offset: u32, in_c_total: u32, cout: u32, cout4: u32,
    out_h: u32, out_w: u32, out_c_offset: u32, out_c_total: u32,
    kh: u32, kw: u32, stride: u32, pad: u32,
    has_bias: u32, leaky: u32, slope: f32, _pad0: u32,
}

override WG_X: u32 = 16u;
override WG_Y: u32 = 4u;
const PX: u32 = 4u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

// x value feeding output column ox through tap kx, or 0 when no input column maps there.
fn tap(row: u32, ox: u32, kx: u32) -> f32 {
    let t = i32(ox + p.pad) - i32(kx);
    let s = i32(p.stride);
    let ix = t / s;
    let ok = t >= 0 && (t % s) == 0 && ix < i32(p.in_w);
    let v = x[row + u32(clamp(ix, 0, i32(p.in_w) - 1))];
    return select(0.0, v, ok);
}

@compute @workgroup_size(WG_X, WG_Y, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let groups_x = (p.out_w + PX - 1u) / PX;
    if (gid.x >= groups_x * p.out_h || gid.y >= p.cout4 || gid.z >= p.batch) {
        return;
    }
    let co4 = gid.y;
    let b = gid.z;
    let oy = gid.x / groups_x;
    let ox0 = (gid.x % groups_x) * PX;

    var acc: array<vec4<f32>, 4>;
    for (var j = 0u; j < PX; j++) {
        acc[j] = vec4<f32>(0.0);
    }
    for (var ky = 0u; ky < p.kh; ky++) {
        let ty = i32(oy + p.pad) - i32(ky);
        if (ty < 0 || (ty % i32(p.stride)) != 0) {
            continue;
        }
        let iy = u32(ty) / p.stride;
        if (iy >= p.in_h) {
            continue;
        }
        for (var ci = 0u; ci < p.cin; ci++) {
            let row = ((b * p.in_c_total + p.in_c_offset + ci) * p.in_h + iy) * p.in_w;
            let wrow = (ci * p.kh + ky) * p.kw * p.cout4 + co4;
            for (var kx = 0u; kx < p.kw; kx++) {
                let wv = w[wrow + kx * p.cout4];
                acc[0] += wv * tap(row, ox0, kx);
                acc[1] += wv * tap(row, ox0 + 1u, kx);
                acc[2] += wv * tap(row, ox0 + 2u, kx);
                acc[3] += wv * tap(row, ox0 + 3u, kx);
            }
        }
    }
    for (var k = 0u; k < 4u; k++) {
        let co = co4 * 4u + k;
        if (co >= p.cout) {
            break;
        }
        var bv = 0.0;
        if (p.has_bias != 0u) {
            bv = bias[co];
        }
        let base = ((b * p.out_c_total + p.out_c_offset + co) * p.out_h + oy) * p.out_w;
        for (var j = 0u; j < PX; j++) {
            let ox = ox0 + j;
            if (ox < p.out_w) {
                var v = acc[j][k] + bv;
                if (p.leaky != 0u && v < 0.0) {
                    v = v * p.slope;
                }
                out[base + ox] = v;
            }
        }
    }
}
