// winograd_weights: U = G g G^T, the Winograd F(4x4, R x R) transform of every R x R (virtual) kernel of a
// convolution (R = 3 or 2, A = R + 3 points), in the layout the batched GEMM of `conv2d_forward_tiled`
// reads as weights.
//
// The virtual 3x3 convolution (see `ops::conv_winograd`): with input stride s, virtual input channel
// c' = (ci * s + p) * s + q holds the phase (p, q) of channel ci, and its tap (a, b) is the original tap
// (ty, tx) = (s a + p, s b + q) when that is inside the kernel's taps_h x taps_w, else zero. Tap t of the
// gather convolution reads kernel index k0 + kstep * t (kstep = -1 flips it: the input gradient).
//
//   w  packed weights [(ci * w_kh + ky) * w_kw + kx][w_cout4 * 4] (floats).
//   u  [(comp * kprime + c') * w_cout4 * 4 + co], comp = A i + j: row i, column j of the A x A transform.
// One invocation per (c', co).

struct Params {
    kprime: u32, cout: u32, w_cout4: u32, s: u32,
    w_kh: u32, w_kw: u32, taps_h: u32, taps_w: u32,
    ky0: u32, kx0: u32, kstep: i32, total: u32,
    // The row length of winograd_grad_weights, which shares this struct; unused here.
    ld: u32, _pad0: u32, _pad1: u32, _pad2: u32,
}

override R: u32 = 3u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> u: array<f32>;

// The R kernel taps of one row or column mapped to the A Winograd points (g2 unused when R = 2).
// R = 3: G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1].
// R = 2: G = [1/2 0; -1/2 -1/2; -1/6 1/6; 1/6 1/3; 0 1].
fn g6(g0: f32, g1: f32, g2: f32) -> array<f32, 6> {
    if (R == 2u) {
        return array<f32, 6>(0.5 * g0, -0.5 * (g0 + g1), (g1 - g0) / 6.0, (g0 + 2.0 * g1) / 6.0, g1, 0.0);
    }
    return array<f32, 6>(
        0.25 * g0,
        -(g0 + g1 + g2) / 6.0,
        -(g0 - g1 + g2) / 6.0,
        g0 / 24.0 + g1 / 12.0 + g2 / 6.0,
        g0 / 24.0 - g1 / 12.0 + g2 / 6.0,
        g2,
    );
}

fn tap(ci: u32, co: u32, t_y: u32, t_x: u32) -> f32 {
    if (t_y >= p.taps_h || t_x >= p.taps_w) {
        return 0.0;
    }
    let ky = u32(i32(p.ky0) + p.kstep * i32(t_y));
    let kx = u32(i32(p.kx0) + p.kstep * i32(t_x));
    return w[((ci * p.w_kh + ky) * p.w_kw + kx) * p.w_cout4 * 4u + co];
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
    let alpha = R + 3u;
    // Rows of G g: for each kernel column b, the A transformed rows.
    var gg: array<array<f32, 3>, 6>;
    for (var b = 0u; b < R; b++) {
        let tx = p.s * b + px;
        let col = g6(tap(ci, co, py, tx), tap(ci, co, p.s + py, tx), tap(ci, co, 2u * p.s + py, tx));
        for (var i = 0u; i < alpha; i++) {
            gg[i][b] = col[i];
        }
    }
    let stride = p.kprime * p.w_cout4 * 4u;
    let base = cp * p.w_cout4 * 4u + co;
    for (var i = 0u; i < alpha; i++) {
        let row = g6(gg[i][0], gg[i][1], gg[i][2]);
        for (var j = 0u; j < alpha; j++) {
            u[(i * alpha + j) * stride + base] = row[j];
        }
    }
}
