// winograd_input: V = B^T d B, the Winograd F(4x4, R x R) transform of every A x A input patch (A = R + 3:
// 6 for 3x3 kernels, 5 for 2x2) of every output tile, for the batched GEMM of `conv2d_forward_tiled` (see
// `ops::conv_winograd`).
//
// Virtual input channel c' = (ci * s + p) * s + q is the phase (p, q) of channel ci (s = the input stride;
// s = 1: c' = ci): S[c'](Y, X) = x[n, ci, s Y + p - pad_y, s X + q - pad_x], zero outside. Output tile
// (ty, tx) covers output rows 4 ty .. 4 ty + 3 and reads S rows 4 ty .. 4 ty + A - 1 (and columns likewise).
//
//   x  [N, in_c_total, in_h, in_w]; channels in_c_offset .. in_c_offset + cin.
//   v  [comp][c'][t] with t = (n - n0) * tiles_h * tiles_w + ty * tiles_w + tx over images n0 .. n0 + nt / T
//      (the forward GEMM's input), or [comp][t][c'] when `transposed` (the weight gradient's); rows of
//      ld >= nt (or >= kprime) floats, padded so that the GEMM may load them as vec4.
// Grid: x * 64 >= nt (split over z past the per-dimension limit), y = c'.

struct Params {
    cin: u32, in_c_offset: u32, in_c_total: u32, in_h: u32,
    in_w: u32, s: u32, pad_y: i32, pad_x: i32,
    kprime: u32, tiles_h: u32, tiles_w: u32, nt: u32,
    n0: u32, transposed: u32, ld: u32, _pad2: u32,
}

// Kernel taps per dimension of the virtual convolution: 3 (F(4x4, 3x3)) or 2 (F(4x4, 2x2)).
override R: u32 = 3u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> v: array<f32>;

// B^T d for one column (or row) of A values (the first A entries are used).
// R = 3: B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1].
// R = 2: B^T = [2 -1 -2 1 0; 0 -2 -1 1 0; 0 2 -3 1 0; 0 -1 0 1 0; 0 2 -1 -2 1].
fn bt(d: array<f32, 6>) -> array<f32, 6> {
    if (R == 2u) {
        return array<f32, 6>(
            2.0 * (d[0] - d[2]) - d[1] + d[3],
            -2.0 * d[1] - d[2] + d[3],
            2.0 * d[1] - 3.0 * d[2] + d[3],
            d[3] - d[1],
            2.0 * (d[1] - d[3]) - d[2] + d[4],
            0.0,
        );
    }
    return array<f32, 6>(
        4.0 * d[0] - 5.0 * d[2] + d[4],
        -4.0 * (d[1] + d[2]) + d[3] + d[4],
        4.0 * (d[1] - d[2]) - d[3] + d[4],
        2.0 * (d[3] - d[1]) - d[2] + d[4],
        2.0 * (d[1] - d[3]) - d[2] + d[4],
        4.0 * d[1] - 5.0 * d[3] + d[5],
    );
}

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t_all = gid.z * nwg.x * 64u + gid.x;
    if (t_all >= p.nt) {
        return;
    }
    let cp = gid.y;
    let per_image = p.tiles_h * p.tiles_w;
    let n = p.n0 + t_all / per_image;
    let t = t_all % per_image;
    let ty = t / p.tiles_w;
    let tx = t % p.tiles_w;
    let ci = cp / (p.s * p.s);
    let ph = cp % (p.s * p.s);
    let y0 = i32(p.s * 4u * ty + ph / p.s) - p.pad_y;
    let x0 = i32(p.s * 4u * tx + ph % p.s) - p.pad_x;
    let plane = (n * p.in_c_total + p.in_c_offset + ci) * p.in_h;
    let step = i32(p.s);
    let alpha = R + 3u;
    // Columns first: for each of the A patch columns, B^T over its A rows.
    var cols: array<array<f32, 6>, 6>;
    for (var j = 0; j < i32(alpha); j++) {
        let ix = x0 + step * j;
        let col_ok = ix >= 0 && ix < i32(p.in_w);
        let ixc = u32(clamp(ix, 0, i32(p.in_w) - 1));
        var d: array<f32, 6>;
        for (var i = 0; i < i32(alpha); i++) {
            let iy = y0 + step * i;
            let ok = col_ok && iy >= 0 && iy < i32(p.in_h);
            let iyc = u32(clamp(iy, 0, i32(p.in_h) - 1));
            d[i] = select(0.0, x[(plane + iyc) * p.in_w + ixc], ok);
        }
        cols[j] = bt(d);
    }
    let stride = select(p.kprime, p.nt, p.transposed != 0u) * p.ld;
    let base = select(cp * p.ld + t_all, t_all * p.ld + cp, p.transposed != 0u);
    for (var i = 0u; i < alpha; i++) {
        let row = bt(array<f32, 6>(cols[0][i], cols[1][i], cols[2][i], cols[3][i], cols[4][i], cols[5][i]));
        for (var j = 0u; j < alpha; j++) {
            v[(i * alpha + j) * stride + base] = row[j];
        }
    }
}
