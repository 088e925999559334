// winograd_grad_output: dM = A dY A^T, the gradient of the Winograd products M from the gradient dY of one
// output tile (the adjoint of winograd_output's A^T M A, F(4x4, R x R), A = R + 3 points), for the weight
// gradient's batched GEMM.
//
//   dy  [N, out_c_total, out_h, out_w]: the layer output's gradient (before any activation), channels
//       out_c_offset .. out_c_offset + cout, read at the grid_h x grid_w pixels
//       (qy out_step + phase_y, qx out_step + phase_x) of one stride phase; tile t covers qy = 4 ty .. 4 ty + 3.
//   dm  [comp][t][cout4 * 4] (the GEMM's per-component weights; lanes past cout are not written).
// Grid: x * 64 >= nt (split over z past the per-dimension limit), y = co.

// winograd_output's parameters (the epilogue fields and ld are not read here).
struct Params {
    cout: u32, nt: u32, tiles_h: u32, tiles_w: u32,
    out_h: u32, out_w: u32, out_c_offset: u32, out_c_total: u32,
    n0: u32, has_bias: u32, leaky: u32, slope: f32,
    accumulate: u32, grid_h: u32, grid_w: u32, out_step: u32,
    phase_y: u32, phase_x: u32, ld: u32, cout4: u32,
}

override R: u32 = 3u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dm: array<f32>;

// A r for 4 values (A = the transpose of winograd_output's A^T): the A points.
fn a6(r: vec4<f32>) -> array<f32, 6> {
    if (R == 2u) {
        return array<f32, 6>(
            r.x,
            r.x + r.y + r.z + r.w,
            r.x - r.y + r.z - r.w,
            r.x + 2.0 * r.y + 4.0 * r.z + 8.0 * r.w,
            r.w,
            0.0,
        );
    }
    return array<f32, 6>(
        r.x,
        r.x + r.y + r.z + r.w,
        r.x - r.y + r.z - r.w,
        r.x + 2.0 * r.y + 4.0 * r.z + 8.0 * r.w,
        r.x - 2.0 * r.y + 4.0 * r.z - 8.0 * r.w,
        r.w,
    );
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
    let qy0 = (t / p.tiles_w) * 4u;
    let qx0 = (t % p.tiles_w) * 4u;
    let plane = (n * p.out_c_total + p.out_c_offset + co) * p.out_h;
    // A over each of the 4 tile rows: rows[i] holds the 6 points of row i.
    var rows: array<array<f32, 6>, 4>;
    for (var i = 0u; i < 4u; i++) {
        let qy = qy0 + i;
        var r = vec4<f32>(0.0);
        if (qy < p.grid_h) {
            let row = (plane + qy * p.out_step + p.phase_y) * p.out_w;
            for (var j = 0u; j < 4u; j++) {
                let qx = qx0 + j;
                if (qx < p.grid_w) {
                    r[j] = dy[row + qx * p.out_step + p.phase_x];
                }
            }
        }
        rows[i] = a6(r);
    }
    let stride = p.nt * p.cout4 * 4u;
    let base = t_all * p.cout4 * 4u + co;
    let alpha = R + 3u;
    for (var b = 0u; b < alpha; b++) {
        let col = a6(vec4<f32>(rows[0][b], rows[1][b], rows[2][b], rows[3][b]));
        for (var a = 0u; a < alpha; a++) {
            dm[(a * alpha + b) * stride + base] = col[a];
        }
    }
}
