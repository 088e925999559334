// sample_descriptors: bilinear samples of a descriptor map at sub-pixel image points.
//   map    [batch, map_channels, map_h, map_w], computed at stride `stride`: cell j's centre is at image coordinate
//          stride * j + (stride - 1) / 2 (pixel centres at integers), so image coordinate v sits at grid
//          coordinate g = (v - (stride - 1) / 2) / stride; g is clamped to [0, size - 1] (border padding).
//   points [batch, points, 2]: (x, y) in image pixels, image n's point k at row n * points + k.
//   out    [batch * points, dim]: out[r, c] = bilinear(map[n, channel_offset + c], points[r]): the channels
//          channel_offset .. channel_offset + dim of the map (all of them: offset 0, dim = map_channels).
// One invocation per output value. Non-finite coordinates give unspecified (but in-bounds) reads.

struct Params {
    batch: u32, dim: u32, map_h: u32, map_w: u32,
    points: u32, stride: u32, accumulate: u32, channel_offset: u32,
    map_channels: u32, _pad0: u32, _pad1: u32, _pad2: u32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> map: array<f32>;
@group(0) @binding(2) var<storage, read> points: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

// (index0, index1, weight of index1) along an axis of n cells, for image coordinate v.
fn axis(v: f32, n: u32) -> vec3<f32> {
    let s = f32(p.stride);
    let g = clamp((v - (s - 1.0) * 0.5) / s, 0.0, f32(n - 1u));
    let i0 = min(u32(floor(g)), n - 1u);
    let i1 = min(i0 + 1u, n - 1u);
    return vec3<f32>(f32(i0), f32(i1), g - f32(i0));
}

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.batch * p.points * p.dim) {
        return;
    }
    let r = i / p.dim;
    let c = i % p.dim;
    let n = r / p.points;
    let ax = axis(points[2u * r], p.map_w);
    let ay = axis(points[2u * r + 1u], p.map_h);
    let base = (n * p.map_channels + p.channel_offset + c) * p.map_h * p.map_w;
    let r0 = base + u32(ay.x) * p.map_w;
    let r1 = base + u32(ay.y) * p.map_w;
    let x0 = u32(ax.x);
    let x1 = u32(ax.y);
    let top = mix(map[r0 + x0], map[r0 + x1], ax.z);
    let bot = mix(map[r1 + x0], map[r1 + x1], ax.z);
    out[i] = mix(top, bot, ay.z);
}
