// conv2d_forward: out = LeakyReLU?(conv2d(x, w) + bias), PyTorch semantics (cross-correlation, zero padding).
//
// Layouts:
//   x    [N, in_c_total, in_h, in_w]; the op reads channels in_c_offset .. in_c_offset + cin (a channel slice,
//        so a layer can read one part of a concatenation buffer without a copy).
//   w    packed once at load time from PyTorch's [cout, cin, kh, kw] into [(ci * kh + ky) * kw + kx][cout4]
//        of vec4 (four consecutive output channels, zero-padded), so one vec4 load feeds 4 output channels.
//   out  [N, out_c_total, out_h, out_w]; the op writes channels out_c_offset .. out_c_offset + cout
//        (concatenation by writing into a slice).
// Each invocation computes 4 output channels x PX consecutive output pixels of one row (register blocking:
// one weight vec4 is reused for PX pixels, one input value for 4 channels).

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

fn load_x(row: u32, ix: i32) -> f32 {
    let inside = ix >= 0 && ix < i32(p.in_w);
    let v = x[row + u32(clamp(ix, 0, i32(p.in_w) - 1))];
    return select(0.0, v, inside);
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
    let iy0 = i32(oy * p.stride) - i32(p.pad);
    let ix0 = i32(ox0 * p.stride) - i32(p.pad);
    let s = i32(p.stride);

    var acc: array<vec4<f32>, 4>;
    for (var j = 0u; j < PX; j++) {
        acc[j] = vec4<f32>(0.0);
    }
    for (var ci = 0u; ci < p.cin; ci++) {
        let plane = (b * p.in_c_total + p.in_c_offset + ci) * p.in_h;
        for (var ky = 0u; ky < p.kh; ky++) {
            let iy = iy0 + i32(ky);
            if (iy < 0 || iy >= i32(p.in_h)) {
                continue;
            }
            let row = (plane + u32(iy)) * p.in_w;
            let wrow = (ci * p.kh + ky) * p.kw * p.cout4 + co4;
            for (var kx = 0u; kx < p.kw; kx++) {
                let wv = w[wrow + kx * p.cout4];
                let ix = ix0 + i32(kx);
                acc[0] += wv * load_x(row, ix);
                acc[1] += wv * load_x(row, ix + s);
                acc[2] += wv * load_x(row, ix + 2 * s);
                acc[3] += wv * load_x(row, ix + 3 * s);
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
