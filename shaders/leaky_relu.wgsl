// leaky_relu: in place, data[i] = data[i] if data[i] > 0 else slope * data[i].
// 1-D over `len` elements; the grid may be folded into 2-D when it exceeds the per-dimension limit.

struct Params {
    len: u32, slope: f32, _pad0: u32, _pad1: u32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> data: array<f32>;

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.len) {
        return;
    }
    let v = data[i];
    data[i] = select(v * p.slope, v, v > 0.0);
}
