// winograd_output: Y = A^T m A, the inverse Winograd F(4x4, R x R) transform (A = R + 3 points) of the
// batched GEMM's products, with the convolution epilogue (bias, LeakyReLU, optional accumulation) and output bounds.
//
//   m    [comp][co][t] (the GEMM's output: comp = A i + j, t as in winograd_input.wgsl), rows of ld floats.
//   out  [N, out_c_total, out_h, out_w]; the op writes channels out_c_offset .. out_c_offset + cout, at
//        the grid_h x grid_w pixels (qy out_step + phase_y, qx out_step + phase_x) of one stride phase
//        (out_step = 1, phase 0: a plain convolution).
// Epilogue as conv2d_forward_tiled: v = y + bias; LeakyReLU(slope) when `leaky`; out = v or out += v.
// Grid: x * 64 >= nt (split over z past the per-dimension limit), y = co.

struct Params {
    cout: u32, nt: u32, tiles_h: u32, tiles_w: u32,
    out_h: u32, out_w: u32, out_c_offset: u32, out_c_total: u32,
    n0: u32, has_bias: u32, leaky: u32, slope: f32,
    accumulate: u32, grid_h: u32, grid_w: u32, out_step: u32,
    // cout4: read by winograd_grad_output, which shares this struct.
    phase_y: u32, phase_x: u32, ld: u32, cout4: u32,
}

override R: u32 = 3u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> m: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

// A^T over A values. R = 3: A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1];
// R = 2: A^T = [1 1 1 1 0; 0 1 -1 2 0; 0 1 1 4 0; 0 1 -1 8 1].
fn at4(r: array<f32, 6>) -> vec4<f32> {
    if (R == 2u) {
        let s12 = r[1] + r[2];
        let d12 = r[1] - r[2];
        return vec4<f32>(r[0] + s12 + r[3], d12 + 2.0 * r[3], s12 + 4.0 * r[3], d12 + 8.0 * r[3] + r[4]);
    }
    let s12 = r[1] + r[2];
    let d12 = r[1] - r[2];
    let s34 = r[3] + r[4];
    let d34 = r[3] - r[4];
    return vec4<f32>(r[0] + s12 + s34, d12 + 2.0 * d34, s12 + 4.0 * s34, d12 + 8.0 * d34 + r[5]);
}

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t_all = gid.z * nwg.x * 64u + gid.x;
    if (t_all >= p.nt) {
        return;
    }
    let co = gid.y;
    let per_image = p.tiles_h * p.tiles_w;
    let n = p.n0 + t_all / per_image;
    let t = t_all % per_image;
    let oy0 = (t / p.tiles_w) * 4u;
    let ox0 = (t % p.tiles_w) * 4u;
    let stride = p.cout * p.ld;
    let base = co * p.ld + t_all;
    let alpha = R + 3u;
    // A^T down each of the A columns: rows[j] holds the 4 output rows of column j.
    var rows: array<vec4<f32>, 6>;
    for (var j = 0u; j < alpha; j++) {
        var r: array<f32, 6>;
        for (var i = 0u; i < alpha; i++) {
            r[i] = m[(i * alpha + j) * stride + base];
        }
        rows[j] = at4(r);
    }
    var bv = 0.0;
    if (p.has_bias != 0u) {
        bv = bias[co];
    }
    let plane = (n * p.out_c_total + p.out_c_offset + co) * p.out_h;
    for (var i = 0u; i < 4u; i++) {
        let qy = oy0 + i;
        if (qy >= p.grid_h) {
            break;
        }
        let oy = qy * p.out_step + p.phase_y;
        let y = at4(array<f32, 6>(rows[0][i], rows[1][i], rows[2][i], rows[3][i], rows[4][i], rows[5][i]));
        for (var j = 0u; j < 4u; j++) {
            let qx = ox0 + j;
            let ox = qx * p.out_step + p.phase_x;
            if (qx < p.grid_w) {
                let idx = (plane + oy) * p.out_w + ox;
                var val = y[j] + bv;
                if (p.leaky != 0u && val < 0.0) {
                    val = val * p.slope;
                }
                if (p.accumulate != 0u) {
                    val += out[idx];
                }
                out[idx] = val;
            }
        }
    }
}
