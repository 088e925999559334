// resize_bilinear: out (+)= scale * bilinear_resize(src), align_corners = false (PyTorch's
// F.interpolate(mode="bilinear")): source coordinate = (dst + 0.5) * in / out - 0.5, clamped below at 0,
// neighbours clamped to the last row/column. No antialiasing when shrinking (as PyTorch's default).
// scale is value_scale on even channels and value_scale_odd on odd ones (a flow's u and v, each converted
// to the new grid's pixels); accumulate != 0 adds to what dst holds (a refinement pass's flow onto the
// total).
//   src [N, C, in_h, in_w] -> dst [N, C, out_h, out_w].

struct Params {
    batch: u32, channels: u32, in_h: u32, in_w: u32,
    out_h: u32, out_w: u32, value_scale: f32, value_scale_odd: f32,
    accumulate: u32, _pad0: u32, _pad1: u32, _pad2: u32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

// Returns (index0, index1, weight of index1) along one axis.
fn axis(o: u32, n_in: u32, n_out: u32) -> vec3<f32> {
    let scale = f32(n_in) / f32(n_out);
    let s = max((f32(o) + 0.5) * scale - 0.5, 0.0);
    let i0 = min(u32(floor(s)), n_in - 1u);
    let i1 = min(i0 + 1u, n_in - 1u);
    return vec3<f32>(f32(i0), f32(i1), s - f32(i0));
}

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
    let ax = axis(xo, p.in_w, p.out_w);
    let ay = axis(yo, p.in_h, p.out_h);
    let base = nc * p.in_h * p.in_w;
    let r0 = base + u32(ay.x) * p.in_w;
    let r1 = base + u32(ay.y) * p.in_w;
    let x0 = u32(ax.x);
    let x1 = u32(ax.y);
    let top = mix(src[r0 + x0], src[r0 + x1], ax.z);
    let bot = mix(src[r1 + x0], src[r1 + x1], ax.z);
    let scale = select(p.value_scale, p.value_scale_odd, (nc % p.channels) % 2u == 1u);
    let v = scale * mix(top, bot, ay.z);
    if (p.accumulate != 0u) {
        dst[i] += v;
    } else {
        dst[i] = v;
    }
}
