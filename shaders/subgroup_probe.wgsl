// subgroup_probe: checks, once per device, what the subgroup-tiled kernels (correlation_forward,
// correlation_backward_a/_b) assume: a workgroup of 8 invocations is one subgroup of at least 8 lanes with
// ids 0..7, and subgroupShuffle(v, k) returns lane k's v. Each invocation writes
// (subgroup_size, subgroup_invocation_id, subgroupShuffle(100 * id + 7, (id + 3) % 8)).

struct Params {
    salt: u32, _pad0: u32, _pad1: u32, _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;

@compute @workgroup_size(8, 1, 1)
fn main(@builtin(local_invocation_index) li: u32, @builtin(subgroup_size) size: u32, @builtin(subgroup_invocation_id) id: u32) {
    let v = subgroupShuffle(100u * id + p.salt, (id + 3u) % 8u);
    out[3u * li] = size;
    out[3u * li + 1u] = id;
    out[3u * li + 2u] = v;
}
