// crop: copy a window of a source tensor into a channel slice of a destination tensor.
//   src [N, src_c_total, src_h, src_w]: channels src_c_offset .. + channels, rows y0 .. y0 + out_h,
//   columns x0 .. x0 + out_w (FlowNet's crop_like is y0 = x0 = 0);
//   dst [N, dst_c_total, out_h, out_w] at channels dst_c_offset .. + channels.
// With the full window this is also channel concatenation (one call per part).

struct Params {
    batch: u32, channels: u32, src_c_offset: u32, src_c_total: u32,
    src_h: u32, src_w: u32, y0: u32, x0: u32,
    out_h: u32, out_w: u32, dst_c_offset: u32, dst_c_total: u32,
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
    let c = (i / plane) % p.channels;
    let b = i / (plane * p.channels);
    let s = ((b * p.src_c_total + p.src_c_offset + c) * p.src_h + yo + p.y0) * p.src_w + xo + p.x0;
    let d = ((b * p.dst_c_total + p.dst_c_offset + c) * p.out_h + yo) * p.out_w + xo;
    dst[d] = src[s];
}
