// correlation_backward_a: gradient of the correlation w.r.t. its first input, as a gather (each lane owns
// its output gradient elements; no atomics).
//
// Convention: grad_a = ... (overwrite) for rows y >= accumulate_below, grad_a += ... for rows below it
// (the rows an earlier row band of the same backward pass has already written). The gradient g is taken
// w.r.t. the correlation output BEFORE any fused LeakyReLU.
//
// Math (Caffe correlation, see correlation_forward_naive.wgsl): out[d, oy, ox] = norm * sum_{c, j, i}
// a[c, ya + j, xa + i] * b[c, ya + j + dy, xa + i + dx] with (ya, xa) = (oy, ox) * stride1 + md - pad. The
// b-pixel index depends on (ya + j, xa + i) and d only, so
//   grad_a[c, y, x] = sum_{p, q} F(y, x, p, q) * b[c, y + dy_p, x + dx_q],
// F = norm * (sum of g over the outputs whose patch covers (y, x)), built by correlation_grad_pack
// (frame 0) in the sweep order below.
//
// Tiling: one subgroup of SG = 8 lanes handles one row y, the 8 * TA columns x = x0 + (8 t + l) stride2
// and CB = 8 channel quads. For displacement row p the b-pixel of (lane l, block t, displacement q) is
// sweep position s = 8 t + l + q: one column for all lanes. The loop runs over the sweep (four positions
// at a time, a runtime loop of any length); at each position lane l loads channel quad l of that one
// b-pixel, and subgroupShuffle hands every quad to every lane, which adds G[.., p, s - 8 t] (its own F value
// for that position, zero outside its GW displacements) times it to its CB quad accumulators. So every
// loaded b vector feeds 8 lanes x TA blocks, every loaded G vector 4 positions x 8 quads, and the
// accumulators are indexed by constants only (kept in registers). It is the forward kernel's sweep
// transposed: the forward reduces over channels with the sweep in registers, this reduces over the sweep
// with the channels in registers.
//
//   G  [N, rows, g_wp, GW, kp4] vec4 (correlation_grad_pack, frame 0); sweep4 = kp4 + 2 (TA - 1) quads.
//   f  [N, f_hp, f_wp, c4] vec4: b packed by correlation_pack with frame origin (y_first - f_row0 - R stride2,
//      -R stride2), so (y + dy_p, x0 + (s - R) stride2) is packed (f_row0 + y - y_first + p stride2,
//      x0 + s stride2). f_row0 > 0 when one packed copy serves several row bands.
//   out  grad_a [N, channels, grad_h, grad_w]

struct Params {
    batch: u32, c4: u32, channels: u32, grad_h: u32,
    grad_w: u32, y_first: u32, rows: u32, x_blocks: u32,
    cb_blocks: u32, sweep4: u32, stride2: u32, f_hp: u32,
    f_wp: u32, g_wp: u32, kp4: u32, accumulate_below: u32,
    f_row0: u32, _pad0: u32, _pad1: u32, _pad2: u32,
}

// Grid width 2R + 1.
override GW: u32 = 21u;
// Column blocks per lane (1 or 2).
override TA: u32 = 2u;

const SG: u32 = 8u;
// Rows per visiting tile (see main). 1080p quarter, backward on llvmpipe, one run: TR = 1 (row-major)
// 4821 ms, 4: 4049, 8: 4014, 16: 4110; FlowNetC's 48 x 64 layer: no change.
override TR: u32 = 8u;
// Channel quads per subgroup: lane l loads quad l of each sweep pixel.
const CB: u32 = 8u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> gp: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> f: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(8, 1, 1)
fn main(@builtin(subgroup_invocation_id) l: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    // Channel blocks vary fastest, so the workgroups that read one column tile's G values run back to back
    // and find them in cache.
    let s2 = p.stride2;
    let cbk = wid.x % p.cb_blocks;
    // (row, column tile) pairs are visited in tiles of TR rows, down the rows first: the packed features a
    // row reads (GW displacement rows around it) are then still in cache for the next rows. Row-major order
    // streamed them from memory once per row on wide inputs (1080p quarter: 480 columns).
    let ncol = p.x_blocks * s2;
    let lin = wid.y * ncol + wid.x / p.cb_blocks;
    let tile = lin / (TR * ncol);
    let tile_rows = min(TR, p.rows - min(tile * TR, p.rows));
    let within = lin % (TR * ncol);
    let col = within / max(tile_rows, 1u);
    let blk = col / s2;
    let phase = col % s2;
    let y = tile * TR + within % max(tile_rows, 1u);
    let n = wid.z;
    if (blk >= p.x_blocks || y >= p.rows || n >= p.batch) {
        return;
    }
    let x0 = phase + blk * SG * TA * s2;
    let grow = (n * p.rows + y) * p.g_wp;
    let g0 = (grow + x0 + l * s2) * GW * p.kp4;
    let g1 = (grow + x0 + (SG + l) * s2) * GW * p.kp4;

    // acc0[q] / acc1[q]: gradient of channel quad cbk * CB + q at the lane's column in block 0 / 1.
    var acc0: array<vec4<f32>, CB>;
    var acc1: array<vec4<f32>, CB>;
    for (var q = 0u; q < CB; q++) {
        acc0[q] = vec4(0.0);
        acc1[q] = vec4(0.0);
    }
    for (var pr = 0u; pr < GW; pr++) {
        let frow = (n * p.f_hp + p.f_row0 + y + pr * s2) * p.f_wp;
        // Sweep positions 4 k4 .. 4 k4 + 3 (block 0 numbering; block 1 is 8 positions = 2 quads further).
        for (var k4 = 0u; k4 < p.sweep4; k4++) {
            var bv: array<vec4<f32>, 4>;
            for (var j = 0u; j < 4u; j++) {
                bv[j] = f[(frow + x0 + (4u * k4 + j) * s2) * p.c4 + cbk * CB + l];
            }
            var ga = vec4(0.0);
            if (k4 < p.kp4) {
                ga = gp[g0 + pr * p.kp4 + k4];
            }
            var gb = vec4(0.0);
            if (TA > 1u && k4 >= 2u && k4 - 2u < p.kp4) {
                gb = gp[g1 + pr * p.kp4 + k4 - 2u];
            }
            for (var q = 0u; q < CB; q++) {
                let b0 = subgroupShuffle(bv[0], q);
                let b1 = subgroupShuffle(bv[1], q);
                let b2 = subgroupShuffle(bv[2], q);
                let b3 = subgroupShuffle(bv[3], q);
                acc0[q] = fma(vec4(ga.x), b0, fma(vec4(ga.y), b1, fma(vec4(ga.z), b2, fma(vec4(ga.w), b3, acc0[q]))));
                if (TA > 1u) {
                    acc1[q] = fma(vec4(gb.x), b0, fma(vec4(gb.y), b1, fma(vec4(gb.z), b2, fma(vec4(gb.w), b3, acc1[q]))));
                }
            }
        }
    }

    let gy = p.y_first + y;
    let add = gy < p.accumulate_below;
    let plane = p.grad_h * p.grad_w;
    for (var t = 0u; t < TA; t++) {
        let x = x0 + (t * SG + l) * s2;
        if (x < p.grad_w) {
            for (var q = 0u; q < CB; q++) {
                var v = acc0[q];
                if (t == 1u) {
                    v = acc1[q];
                }
                for (var e = 0u; e < 4u; e++) {
                    let c = (cbk * CB + q) * 4u + e;
                    if (c < p.channels) {
                        let o = (n * p.channels + c) * plane + gy * p.grad_w + x;
                        if (add) {
                            out[o] = out[o] + v[e];
                        } else {
                            out[o] = v[e];
                        }
                    }
                }
            }
        }
    }
}
