// sample_descriptors_backward_points: the gradient of sample_descriptors w.r.t. the point coordinates,
//   dpoints[r] = sum_c dout[r, c] * d(bilinear(map[n, c], (x, y))) / d(x, y),
// with d(grid coordinate)/d(image coordinate) = 1 / stride strictly inside the grid and 0 where the
// coordinate is clamped to the border (at an exact grid line, the derivative of the cell to its right or
// below). One invocation per point. Gradient convention: `=` (dpoints overwritten).
//   map [batch, map_channels, map_h, map_w], points and dpoints [batch, points, 2], dout [batch * points, dim]
//   (the gradient of the map's channels channel_offset .. channel_offset + dim).

struct Params {
    batch: u32, dim: u32, map_h: u32, map_w: u32,
    points: u32, stride: u32, accumulate: u32, channel_offset: u32,
    map_channels: u32, _pad0: u32, _pad1: u32, _pad2: u32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> map: array<f32>;
@group(0) @binding(2) var<storage, read> points: array<f32>;
@group(0) @binding(3) var<storage, read> dout: array<f32>;
@group(0) @binding(4) var<storage, read_write> dpoints: array<f32>;

// (index0, index1, weight of index1, d weight / d v) along an axis of n cells.
fn axis(v: f32, n: u32) -> vec4<f32> {
    let s = f32(p.stride);
    let g = (v - (s - 1.0) * 0.5) / s;
    let hi = f32(n - 1u);
    let inside = g > 0.0 && g < hi;
    let gc = clamp(g, 0.0, hi);
    let i0 = min(u32(floor(gc)), n - 1u);
    let i1 = min(i0 + 1u, n - 1u);
    return vec4<f32>(f32(i0), f32(i1), gc - f32(i0), select(0.0, 1.0 / s, inside));
}

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = gid.x + gid.y * nwg.x * WG;
    if (r >= p.batch * p.points) {
        return;
    }
    let n = r / p.points;
    let ax = axis(points[2u * r], p.map_w);
    let ay = axis(points[2u * r + 1u], p.map_h);
    let x0 = u32(ax.x);
    let x1 = u32(ax.y);
    var gx = 0.0;
    var gy = 0.0;
    for (var c = 0u; c < p.dim; c++) {
        let base = (n * p.map_channels + p.channel_offset + c) * p.map_h * p.map_w;
        let r0 = base + u32(ay.x) * p.map_w;
        let r1 = base + u32(ay.y) * p.map_w;
        let v00 = map[r0 + x0];
        let v01 = map[r0 + x1];
        let v10 = map[r1 + x0];
        let v11 = map[r1 + x1];
        let g = dout[r * p.dim + c];
        gx = fma(g, mix(v01 - v00, v11 - v10, ay.z), gx);
        gy = fma(g, mix(v10, v11, ax.z) - mix(v00, v01, ax.z), gy);
    }
    dpoints[2u * r] = gx * ax.w;
    dpoints[2u * r + 1u] = gy * ay.w;
}
