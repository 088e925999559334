// winograd_grad_weights: dg = G^T dU G, the gradient of every virtual R x R kernel (R = 3 or 2) from the
// gradient dU of its Winograd transform (the adjoint of winograd_weights' G g G^T, A = R + 3 points), added into the packed weight
// gradient at the original taps (virtual channel c' = (ci s + p) s + q, tap (a, b) -> (s a + p, s b + q),
// kernel index k0 + kstep * tap; taps past the kernel are dropped).
//
//   du    [comp][co][c'] (the weight gradient's batched GEMM output), rows of ld floats.
//   grad  packed [(ci * w_kh + ky) * w_kw + kx][w_cout4 * 4] (floats), += .
// One invocation per (c', co).

struct Params {
    kprime: u32, cout: u32, w_cout4: u32, s: u32,
    w_kh: u32, w_kw: u32, taps_h: u32, taps_w: u32,
    ky0: u32, kx0: u32, kstep: i32, total: u32,
    ld: u32, _pad0: u32, _pad1: u32, _pad2: u32,
}

override R: u32 = 3u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> du: array<f32>;
@group(0) @binding(2) var<storage, read_write> grad: array<f32>;

// G^T v for A values: the R kernel taps (the third is 0 when R = 2).
fn gt3(v: array<f32, 6>) -> vec3<f32> {
    if (R == 2u) {
        return vec3<f32>(0.5 * (v[0] - v[1]) + (v[3] - v[2]) / 6.0, -0.5 * v[1] + v[2] / 6.0 + v[3] / 3.0 + v[4], 0.0);
    }
    return vec3<f32>(
        0.25 * v[0] - (v[1] + v[2]) / 6.0 + (v[3] + v[4]) / 24.0,
        (v[2] - v[1]) / 6.0 + (v[3] - v[4]) / 12.0,
        (v[3] + v[4] - v[1] - v[2]) / 6.0 + v[5],
    );
}

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = gid.y * nwg.x * 64u + gid.x;
    if (idx >= p.total) {
        return;
    }
    let co = idx % p.cout;
    let cp = idx / p.cout;
    let ci = cp / (p.s * p.s);
    let ph = cp % (p.s * p.s);
    let py = ph / p.s;
    let px = ph % p.s;
    let stride = p.cout * p.ld;
    let base = co * p.ld + cp;
    let alpha = R + 3u;
    // G^T along each of the A rows: r[a] = the R columns b.
    var r: array<vec3<f32>, 6>;
    for (var a = 0u; a < alpha; a++) {
        var v: array<f32, 6>;
        for (var b = 0u; b < alpha; b++) {
            v[b] = du[(a * alpha + b) * stride + base];
        }
        r[a] = gt3(v);
    }
    for (var b = 0u; b < R; b++) {
        let tx = p.s * b + px;
        if (tx >= p.taps_w) {
            continue;
        }
        let col = gt3(array<f32, 6>(r[0][b], r[1][b], r[2][b], r[3][b], r[4][b], r[5][b]));
        for (var a = 0u; a < R; a++) {
            let ty = p.s * a + py;
            if (ty < p.taps_h) {
                let ky = u32(i32(p.ky0) + p.kstep * i32(ty));
                let kx = u32(i32(p.kx0) + p.kstep * i32(tx));
                let i = ((ci * p.w_kh + ky) * p.w_kw + kx) * p.w_cout4 * 4u + co;
                grad[i] += col[a];
            }
        }
    }
}
