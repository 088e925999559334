// correlation_forward_naive: the FlowNetC correlation layer (Caffe's CorrelationLayer semantics), one
// invocation per output element. Kept as the correctness-first baseline that the tiled kernel is measured
// against.
//
// Inputs a, b [N, C, H, W]; conceptually zero-padded by `pad` on every side. With
// kernel_radius = (kernel_size - 1) / 2, border = max_displacement + kernel_radius, grid_radius =
// max_displacement / stride2, grid_width = 2 * grid_radius + 1:
//   out_h = ceil((H + 2 pad - 2 border) / stride1) (out_w likewise), D = grid_width^2 channels,
//   channel (p + R) * grid_width + (q + R) holds displacement (dy, dx) = (p stride2, q stride2), dy outer;
//   out[n, d, y, x] = sum_{c, j, i < kernel_size} a[c, y1 + j, x1 + i] * b[c, y1 + j + dy, x1 + i + dx]
//                     / (kernel_size^2 C),
//   with (y1, x1) = (y stride1 + max_displacement - pad, x stride1 + max_displacement - pad) in unpadded
//   coordinates; reads outside the image are 0. Written into channels out_c_offset .. of an
//   out_c_total-channel tensor (FlowNetC concatenates it after conv_redir), LeakyReLU optionally fused.

struct Params {
    batch: u32, channels: u32, in_h: u32, in_w: u32,
    out_h: u32, out_w: u32, pad: u32, kernel_size: u32,
    max_displacement: u32, stride1: u32, stride2: u32, grid_radius: u32,
    out_c_offset: u32, out_c_total: u32, leaky: u32, slope: f32,
}

override WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn fetch(buf_is_a: bool, n: u32, c: u32, y: i32, x: i32) -> f32 {
    if (y < 0 || x < 0 || y >= i32(p.in_h) || x >= i32(p.in_w)) {
        return 0.0;
    }
    let i = ((n * p.channels + c) * p.in_h + u32(y)) * p.in_w + u32(x);
    if (buf_is_a) {
        return a[i];
    }
    return b[i];
}

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    let gw = 2u * p.grid_radius + 1u;
    let d_count = gw * gw;
    let plane = p.out_h * p.out_w;
    if (i >= p.batch * d_count * plane) {
        return;
    }
    let x = i % p.out_w;
    let y = (i / p.out_w) % p.out_h;
    let d = (i / plane) % d_count;
    let n = i / (plane * d_count);
    let dy = (i32(d / gw) - i32(p.grid_radius)) * i32(p.stride2);
    let dx = (i32(d % gw) - i32(p.grid_radius)) * i32(p.stride2);
    let y1 = i32(y * p.stride1 + p.max_displacement) - i32(p.pad);
    let x1 = i32(x * p.stride1 + p.max_displacement) - i32(p.pad);
    var sum = 0.0;
    for (var c = 0u; c < p.channels; c++) {
        for (var j = 0u; j < p.kernel_size; j++) {
            for (var k = 0u; k < p.kernel_size; k++) {
                let ya = y1 + i32(j);
                let xa = x1 + i32(k);
                sum += fetch(true, n, c, ya, xa) * fetch(false, n, c, ya + dy, xa + dx);
            }
        }
    }
    var v = sum / f32(p.kernel_size * p.kernel_size * p.channels);
    if (p.leaky != 0u && v < 0.0) {
        v = v * p.slope;
    }
    out[((n * p.out_c_total + p.out_c_offset + d) * p.out_h + y) * p.out_w + x] = v;
}
