// adaptive_avg_pool: out = value_scale * mean of the source window of each output cell, PyTorch's
// F.adaptive_avg_pool2d (= F.interpolate(mode="area")): rows floor(i H / h) .. ceil((i + 1) H / h),
// columns likewise. FlowNet's multiscale loss pools the ground truth / 20 to each prediction's size.
//   src [N, C, in_h, in_w] -> dst [N, C, out_h, out_w].

struct Params {
    batch: u32, channels: u32, in_h: u32, in_w: u32,
    out_h: u32, out_w: u32, value_scale: f32, _pad0: u32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    let plane = p.out_h * p.out_w;
    if (i >= p.batch * p.channels * plane) {
        return;
    }
    let xo = i % p.out_w;
    let yo = (i / p.out_w) % p.out_h;
    let nc = i / plane;
    let y0 = (yo * p.in_h) / p.out_h;
    let y1 = ((yo + 1u) * p.in_h + p.out_h - 1u) / p.out_h;
    let x0 = (xo * p.in_w) / p.out_w;
    let x1 = ((xo + 1u) * p.in_w + p.out_w - 1u) / p.out_w;
    var sum = 0.0;
    for (var y = y0; y < y1; y++) {
        let row = (nc * p.in_h + y) * p.in_w;
        for (var x = x0; x < x1; x++) {
            sum += src[row + x];
        }
    }
    dst[i] = p.value_scale * sum / f32((y1 - y0) * (x1 - x0));
}
