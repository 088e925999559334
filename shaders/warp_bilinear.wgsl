// warp_bilinear: backward warp of an image by a flow field,
//   dst[n, c, y, x] = src[n, c] sampled bilinearly at (x + scale_u * u, y + scale_v * v),
//   (u, v) = flow[n, 0..2, y, x],
// with replicate padding (a sample past the border takes the nearest edge pixel). scale_u, scale_v convert
// the flow's units to this grid's pixels (a flow computed on another grid). One invocation per pixel, all
// channels.
//   src, dst [N, C, H, W]; flow [N, 2, H, W].

struct Params {
    batch: u32, channels: u32, height: u32, width: u32,
    scale_u: f32, scale_v: f32, _pad0: u32, _pad1: u32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> flow: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    let plane = p.height * p.width;
    if (i >= p.batch * plane) {
        return;
    }
    let n = i / plane;
    let yx = i % plane;
    let y = yx / p.width;
    let x = yx % p.width;
    let f = n * 2u * plane + yx;
    // Clamped to [-1, size] first, which changes no sample (every tap beyond is the edge pixel anyway) and
    // keeps the integer conversion in range for any flow.
    let wf = f32(p.width);
    let hf = f32(p.height);
    let sx = clamp(f32(x) + p.scale_u * flow[f], -1.0, wf);
    let sy = clamp(f32(y) + p.scale_v * flow[f + plane], -1.0, hf);
    let fx0 = floor(sx);
    let fy0 = floor(sy);
    let ax = sx - fx0;
    let ay = sy - fy0;
    let last_x = i32(p.width) - 1;
    let last_y = i32(p.height) - 1;
    let x0 = u32(clamp(i32(fx0), 0, last_x));
    let x1 = u32(clamp(i32(fx0) + 1, 0, last_x));
    let y0 = u32(clamp(i32(fy0), 0, last_y));
    let y1 = u32(clamp(i32(fy0) + 1, 0, last_y));
    for (var c = 0u; c < p.channels; c++) {
        let base = (n * p.channels + c) * plane;
        let top = mix(src[base + y0 * p.width + x0], src[base + y0 * p.width + x1], ax);
        let bot = mix(src[base + y1 * p.width + x0], src[base + y1 * p.width + x1], ax);
        dst[base + yx] = mix(top, bot, ay);
    }
}
