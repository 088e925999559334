// correlation_backward_b_naive: gradient of the correlation w.r.t. its second input, one invocation per
// gradient element (a gather: no atomics). The portable baseline for adapters without subgroup operations
// and the reference the tiled correlation_backward_b is measured against.
//
// Convention: grad_b = ... (overwrite). g is the gradient w.r.t. the correlation output BEFORE any fused
// LeakyReLU. With the definition in correlation_forward_naive.wgsl, b-pixel (y, x) meets a-pixel
// (ya, xa) = (y - dy, x - dx) for displacement d = p GW + q:
//   grad_b[n, c, y, x] = norm * sum_{p, q} sum_{j, i} g[n, d, oy, ox] * a[n, c, y - dy, x - dx]
// over the outputs (oy, ox) with oy stride1 + md - pad + j = y - dy and ox stride1 + md - pad + i = x - dx;
// norm = 1 / (kernel_size^2 C).
//
//   g  [N, GW^2, out_h, out_w], a  [N, C, H, W], out  [N, C, H, W].

struct Params {
    batch: u32, channels: u32, in_h: u32, in_w: u32,
    out_h: u32, out_w: u32, pad: u32, kernel_size: u32,
    max_displacement: u32, stride1: u32, stride2: u32, grid_radius: u32,
    out_c_offset: u32, out_c_total: u32, leaky: u32, slope: f32,
}

override WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = gid.x + gid.y * nwg.x * WG;
    if (idx >= p.batch * p.channels * p.in_h * p.in_w) {
        return;
    }
    let x = i32(idx % p.in_w);
    let y = i32((idx / p.in_w) % p.in_h);
    let c = (idx / (p.in_w * p.in_h)) % p.channels;
    let n = idx / (p.in_w * p.in_h * p.channels);
    let gw = 2u * p.grid_radius + 1u;
    let r = i32(p.grid_radius);
    let s1 = i32(p.stride1);
    let s2 = i32(p.stride2);
    let origin = i32(p.max_displacement) - i32(p.pad);
    var sum = 0.0;
    for (var pr = 0; pr < i32(gw); pr++) {
        let ya = y - (pr - r) * s2;
        if (ya < 0 || ya >= i32(p.in_h)) {
            continue;
        }
        for (var q = 0; q < i32(gw); q++) {
            let xa = x - (q - r) * s2;
            if (xa < 0 || xa >= i32(p.in_w)) {
                continue;
            }
            let av = a[((n * p.channels + c) * p.in_h + u32(ya)) * p.in_w + u32(xa)];
            let d = u32(pr) * gw + u32(q);
            for (var j = 0; j < i32(p.kernel_size); j++) {
                let ty = ya - j - origin;
                if (ty < 0 || ty % s1 != 0 || ty / s1 >= i32(p.out_h)) {
                    continue;
                }
                for (var i = 0; i < i32(p.kernel_size); i++) {
                    let tx = xa - i - origin;
                    if (tx < 0 || tx % s1 != 0 || tx / s1 >= i32(p.out_w)) {
                        continue;
                    }
                    sum += av * g[((n * p.out_c_total + d) * p.out_h + u32(ty / s1)) * p.out_w + u32(tx / s1)];
                }
            }
        }
    }
    out[idx] = sum / f32(p.kernel_size * p.kernel_size * p.channels);
}
