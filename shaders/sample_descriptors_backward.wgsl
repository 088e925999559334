// sample_descriptors_backward: the gradient of sample_descriptors w.r.t. the map, as a gather: each
// invocation owns one map pixel (n, y, x) and all its `dim` channels, walks the points of image n, and adds
// w * dout[r, c] for every point r whose bilinear footprint covers the pixel (w its bilinear weight there;
// a border-clamped point may cover a pixel twice, and both weights are added). Work: batch * map_h * map_w *
// points footprint tests plus 4 * dim per point; no atomics.
// Gradient convention: `=` (dmap overwritten) when accumulate == 0, `+=` when accumulate == 1.
//   points [batch, points, 2], dout [batch * points, dim], dmap [batch, map_channels, map_h, map_w]: dout is
//   the gradient of the channels channel_offset .. channel_offset + dim; the others get none (overwritten
//   with 0, or left as they are when accumulating).

struct Params {
    batch: u32, dim: u32, map_h: u32, map_w: u32,
    points: u32, stride: u32, accumulate: u32, channel_offset: u32,
    map_channels: u32, _pad0: u32, _pad1: u32, _pad2: u32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> points: array<f32>;
@group(0) @binding(2) var<storage, read> dout: array<f32>;
@group(0) @binding(3) var<storage, read_write> dmap: array<f32>;

// (index0, index1, weight of index1) along an axis of n cells (as in sample_descriptors.wgsl).
fn axis(v: f32, n: u32) -> vec3<f32> {
    let s = f32(p.stride);
    let g = clamp((v - (s - 1.0) * 0.5) / s, 0.0, f32(n - 1u));
    let i0 = min(u32(floor(g)), n - 1u);
    let i1 = min(i0 + 1u, n - 1u);
    return vec3<f32>(f32(i0), f32(i1), g - f32(i0));
}

// The weight of cell `i` in the interpolation along one axis.
fn weight(a: vec3<f32>, i: u32) -> f32 {
    return select(0.0, 1.0 - a.z, u32(a.x) == i) + select(0.0, a.z, u32(a.y) == i);
}

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    let plane = p.map_h * p.map_w;
    if (i >= p.batch * plane) {
        return;
    }
    let n = i / plane;
    let pix = i % plane;
    let px = pix % p.map_w;
    let py = pix / p.map_w;
    let image = n * p.map_channels * plane + pix;
    if (p.accumulate == 0u) {
        for (var c = 0u; c < p.map_channels; c++) {
            dmap[image + c * plane] = 0.0;
        }
    }
    let base = image + p.channel_offset * plane;
    for (var k = 0u; k < p.points; k++) {
        let r = n * p.points + k;
        let ax = axis(points[2u * r], p.map_w);
        let ay = axis(points[2u * r + 1u], p.map_h);
        let w = weight(ax, px) * weight(ay, py);
        if (w != 0.0) {
            for (var c = 0u; c < p.dim; c++) {
                dmap[base + c * plane] = fma(w, dout[r * p.dim + c], dmap[base + c * plane]);
            }
        }
    }
}
