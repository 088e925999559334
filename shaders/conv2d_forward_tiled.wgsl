// conv2d_forward_tiled: out = act(conv(x, w) + bias) as an implicit GEMM with register blocking.
//
// GEMM view (per image): M = output channels, N = output pixels, K = cin * KH * KW taps. Each invocation owns
// a block of 4 TM4 output channels x 4 NQ consecutive output columns of one row, held as TM4 x NQ mat4x4
// accumulators (column j = the 4 channels of one pixel). The workgroup shares one block of output channels.
//
// Written for what is expensive on every target, measured on llvmpipe (where one storage-buffer load costs
// about as much as 10 FMAs and is paid per lane, even when all lanes read the same address):
// * Weights: per tap, lane l loads the vec4 of channel quad (l % TM4); the TM4 quads reach every lane by
//   subgroupShuffle (register permutes), so one load per lane feeds 16 TM4 NQ FMAs. (wgpu guarantees
//   subgroups of at least 4 lanes; TM4 up to 4 runs anywhere, up to 8 where subgroups have 8 lanes, which
//   the host checks: ConvTile::supports.)
// * Inputs: taps tx, tx + S, tx + 2S, ... of one kernel row read the same columns shifted by one output
//   pixel, so an invocation keeps a sliding window of its 4 NQ inputs in registers and loads ONE new value
//   per tap: S (4 NQ - 1) + KW loads per kernel row instead of 4 NQ KW.
// * KH, KW, S are `override`s so the tap loops have constant trip counts (the driver unrolls them when the
//   body is small; with 16- and 32-channel blocks the tap loop stays a loop, see the channel loop below).
//
// The same kernel runs transposed convolutions without scatter and without wasted taps: the outputs
// (oy, ox) = (qy * out_step + out_phase_y, qx * out_step + out_phase_x) of one stride phase receive exactly
// KH x KW taps, a stride-1 convolution over the input with the sub-kernel taken from the full kernel at
// ky = w_ky0 + ty * w_kstep (w_kstep = -stride flips it); see `ops::conv_tiled`. A plain conv2d is
// out_step = 1, phase 0, w_ky0 = w_kx0 = 0, w_kstep = 1.
//
// Layouts:
//   x    [N, in_c_total, in_h, in_w]; the op reads channels in_c_offset .. in_c_offset + cin.
//   w    [(ci * w_kh + ky) * w_kw + kx][w_cout4] of vec4: four consecutive output channels (zero-padded).
//   out  [N, out_c_total, out_h, out_w]; the op writes channels out_c_offset .. out_c_offset + cout.
// Epilogue: v = acc + bias; LeakyReLU(slope) when `leaky`; out = v, or out += v when `accumulate` (an
// activation gradient with several consumers).
// Dispatch: x * z >= ceil(batch * grid_h * ceil(grid_w / (4 NQ)) / WG) (z > 1 only past the adapter's
// limit per dimension), y = comps * ceil(cout / (4 TM4)).
//
// Batched GEMMs (the Winograd path, `ops::conv_winograd`): `comps` independent convolutions that share
// every shape, component c reading x, w and out at c * x_comp_stride floats, c * w_comp_stride vec4 and
// c * out_comp_stride floats. The component comes from the workgroup's y index, so all lanes of a subgroup
// share it (the weight shuffles need that). comps = 1 with zero strides is a plain convolution.

struct Params {
    batch: u32, cin: u32, in_h: u32, in_w: u32,
    in_c_offset: u32, in_c_total: u32, cout: u32, w_cout4: u32,
    grid_h: u32, grid_w: u32, out_h: u32, out_w: u32,
    out_c_offset: u32, out_c_total: u32, out_step: u32, out_phase_y: u32,
    out_phase_x: u32, pad_y: i32, pad_x: i32, w_kh: u32,
    w_kw: u32, w_ky0: u32, w_kx0: u32, w_kstep: i32,
    has_bias: u32, leaky: u32, slope: f32, accumulate: u32,
    comps: u32, x_comp_stride: u32, out_comp_stride: u32, w_comp_stride: u32,
}

// Output channels per invocation: 4 TM4, TM4 in 1..8 (at most the subgroup size: lane l loads quad l % TM4).
override TM4: u32 = 2u;
// Output columns per invocation: 4 NQ, NQ in 1..4.
override NQ: u32 = 1u;
override WG: u32 = 64u;
// Vector input loads: each lane reads its 4 NQ columns as NQ vec4 (1x1 kernels, stride 1, no padding,
// rows and column blocks 4-aligned; the host checks: the Winograd GEMMs). A vec4 load costs llvmpipe
// about as much as two scalar ones.
override VX: bool = false;
override KH: u32 = 3u;
override KW: u32 = 3u;
override S: u32 = 1u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
// The same buffer as `x`, for the vector loads of VX.
@group(0) @binding(5) var<storage, read> x4: array<vec4<f32>>;

// Input value at column ix of the row starting at `row`, zero outside the row or when the row is padding.
fn xin(row: u32, ix: i32, row_ok: bool) -> f32 {
    let ok = row_ok && ix >= 0 && ix < i32(p.in_w);
    return select(0.0, x[row + u32(clamp(ix, 0, i32(p.in_w) - 1))], ok);
}

// acc += outer(w, xs): column j of the result is the 4 channels of pixel j.
fn outer(wq: vec4<f32>, xs: vec4<f32>) -> mat4x4<f32> {
    return mat4x4<f32>(wq * xs.x, wq * xs.y, wq * xs.z, wq * xs.w);
}

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
    let tn = 4u * NQ;
    let col_blocks = (p.grid_w + tn - 1u) / tn;
    // The pixel blocks of all images form one index (x + z workgroups), so layers with few pixels per image
    // (FlowNet's 6x8 and 12x16 levels) still fill whole workgroups when the batch is larger than one.
    let g = (wid.z * nwg.x + wid.x) * WG + lid.x;
    let rows = p.batch * p.grid_h;
    let r_raw = g / col_blocks;
    let row_valid = r_raw < rows;
    let row_index = min(r_raw, rows - 1u);
    let b = row_index / p.grid_h;
    let qy = row_index % p.grid_h;
    let qx0 = (g % col_blocks) * tn;
    let co_blocks = (p.cout + 4u * TM4 - 1u) / (4u * TM4);
    let comp = wid.y / co_blocks;
    let co4_0 = (wid.y % co_blocks) * TM4;
    let x_base = comp * p.x_comp_stride;
    let w_base = comp * p.w_comp_stride;
    let o_base = comp * p.out_comp_stride;
    let iy0 = i32(qy * S) - p.pad_y;
    let ix0 = i32(qx0 * S) - p.pad_x;
    let s = i32(S);
    // This lane fetches channel quad (lane % TM4) of the workgroup's block; the others get it by shuffle.
    let my_quad = min(co4_0 + lane % TM4, p.w_cout4 - 1u) + w_base;

    var a00 = mat4x4<f32>(); var a01 = mat4x4<f32>(); var a02 = mat4x4<f32>(); var a03 = mat4x4<f32>();
    var a10 = mat4x4<f32>(); var a11 = mat4x4<f32>(); var a12 = mat4x4<f32>(); var a13 = mat4x4<f32>();
    var a20 = mat4x4<f32>(); var a21 = mat4x4<f32>(); var a22 = mat4x4<f32>(); var a23 = mat4x4<f32>();
    var a30 = mat4x4<f32>(); var a31 = mat4x4<f32>(); var a32 = mat4x4<f32>(); var a33 = mat4x4<f32>();
    var a40 = mat4x4<f32>(); var a41 = mat4x4<f32>(); var a42 = mat4x4<f32>(); var a43 = mat4x4<f32>();
    var a50 = mat4x4<f32>(); var a51 = mat4x4<f32>(); var a52 = mat4x4<f32>(); var a53 = mat4x4<f32>();
    var a60 = mat4x4<f32>(); var a61 = mat4x4<f32>(); var a62 = mat4x4<f32>(); var a63 = mat4x4<f32>();
    var a70 = mat4x4<f32>(); var a71 = mat4x4<f32>(); var a72 = mat4x4<f32>(); var a73 = mat4x4<f32>();
    // Two input channels per iteration (the second one's weights are zero past the last channel): every
    // accumulator then takes two outer products per load / blend / store. On llvmpipe each loop-carried
    // accumulator is spilled and blended with the loop's execution mask once per iteration, which cost
    // more than the multiply-adds themselves with one channel per iteration. Three channels per iteration
    // measured 10-40 % slower than two on most FlowNet layers (a loop body past what stays fast).
    for (var ci = 0u; ci < p.cin; ci += 2u) {
        let ci_b = min(ci + 1u, p.cin - 1u);
        let has_b = ci + 1u < p.cin;
        let plane = (b * p.in_c_total + p.in_c_offset + ci) * p.in_h;
        let plane_b = (b * p.in_c_total + p.in_c_offset + ci_b) * p.in_h;
        for (var ty = 0u; ty < KH; ty++) {
            let iy = iy0 + i32(ty);
            let row_ok = iy >= 0 && iy < i32(p.in_h);
            let iyc = u32(clamp(iy, 0, i32(p.in_h) - 1));
            let row = (plane + iyc) * p.in_w + x_base;
            let row_b = (plane_b + iyc) * p.in_w + x_base;
            let ky = u32(i32(p.w_ky0) + i32(ty) * p.w_kstep);
            let wrow = (ci * p.w_kh + ky) * p.w_kw;
            let wrow_b = (ci_b * p.w_kh + ky) * p.w_kw;
            // Taps tx = r, r + S, r + 2S, ... read the columns c + S j, shifted by one pixel per tap: keep
            // the window of the 4 NQ inputs (w* for channel ci, v* for ci + 1) and load one new value per
            // tap and channel.
            for (var r = 0u; r < min(S, KW); r++) {
                let c = ix0 + i32(r);
                var w0 = vec4<f32>(0.0); var w1 = vec4<f32>(0.0); var w2 = vec4<f32>(0.0); var w3 = vec4<f32>(0.0);
                var v0 = vec4<f32>(0.0); var v1 = vec4<f32>(0.0); var v2 = vec4<f32>(0.0); var v3 = vec4<f32>(0.0);
                if (VX) {
                    let q = (row + u32(c)) / 4u;
                    let q_b = (row_b + u32(c)) / 4u;
                    w0 = x4[q]; v0 = x4[q_b];
                    if (NQ > 1u) { w1 = x4[q + 1u]; v1 = x4[q_b + 1u]; }
                    if (NQ > 2u) { w2 = x4[q + 2u]; v2 = x4[q_b + 2u]; }
                    if (NQ > 3u) { w3 = x4[q + 3u]; v3 = x4[q_b + 3u]; }
                } else {
                    w0 = vec4<f32>(xin(row, c, row_ok), xin(row, c + s, row_ok), xin(row, c + 2 * s, row_ok), xin(row, c + 3 * s, row_ok));
                    if (NQ > 1u) { w1 = vec4<f32>(xin(row, c + 4 * s, row_ok), xin(row, c + 5 * s, row_ok), xin(row, c + 6 * s, row_ok), xin(row, c + 7 * s, row_ok)); }
                    if (NQ > 2u) { w2 = vec4<f32>(xin(row, c + 8 * s, row_ok), xin(row, c + 9 * s, row_ok), xin(row, c + 10 * s, row_ok), xin(row, c + 11 * s, row_ok)); }
                    if (NQ > 3u) { w3 = vec4<f32>(xin(row, c + 12 * s, row_ok), xin(row, c + 13 * s, row_ok), xin(row, c + 14 * s, row_ok), xin(row, c + 15 * s, row_ok)); }
                    v0 = vec4<f32>(xin(row_b, c, row_ok), xin(row_b, c + s, row_ok), xin(row_b, c + 2 * s, row_ok), xin(row_b, c + 3 * s, row_ok));
                    if (NQ > 1u) { v1 = vec4<f32>(xin(row_b, c + 4 * s, row_ok), xin(row_b, c + 5 * s, row_ok), xin(row_b, c + 6 * s, row_ok), xin(row_b, c + 7 * s, row_ok)); }
                    if (NQ > 2u) { v2 = vec4<f32>(xin(row_b, c + 8 * s, row_ok), xin(row_b, c + 9 * s, row_ok), xin(row_b, c + 10 * s, row_ok), xin(row_b, c + 11 * s, row_ok)); }
                    if (NQ > 3u) { v3 = vec4<f32>(xin(row_b, c + 12 * s, row_ok), xin(row_b, c + 13 * s, row_ok), xin(row_b, c + 14 * s, row_ok), xin(row_b, c + 15 * s, row_ok)); }
                }
                var next = c + i32(tn) * s;
                for (var tx = r; tx < KW; tx += S) {
                    let kx = u32(i32(p.w_kx0) + i32(tx) * p.w_kstep);
                    let wmine = w[(wrow + kx) * p.w_cout4 + my_quad];
                    let wmine_b = select(vec4<f32>(0.0), w[(wrow_b + kx) * p.w_cout4 + my_quad], has_b);
                    let q0 = subgroupShuffle(wmine, 0u);
                    let r0 = subgroupShuffle(wmine_b, 0u);
                    a00 += outer(q0, w0) + outer(r0, v0);
                    if (NQ > 1u) { a01 += outer(q0, w1) + outer(r0, v1); }
                    if (NQ > 2u) { a02 += outer(q0, w2) + outer(r0, v2); }
                    if (NQ > 3u) { a03 += outer(q0, w3) + outer(r0, v3); }
                    if (TM4 > 1u) {
                        let q1 = subgroupShuffle(wmine, 1u);
                        let r1 = subgroupShuffle(wmine_b, 1u);
                        a10 += outer(q1, w0) + outer(r1, v0);
                        if (NQ > 1u) { a11 += outer(q1, w1) + outer(r1, v1); }
                        if (NQ > 2u) { a12 += outer(q1, w2) + outer(r1, v2); }
                        if (NQ > 3u) { a13 += outer(q1, w3) + outer(r1, v3); }
                    }
                    if (TM4 > 2u) {
                        let q2 = subgroupShuffle(wmine, 2u);
                        let r2 = subgroupShuffle(wmine_b, 2u);
                        a20 += outer(q2, w0) + outer(r2, v0);
                        if (NQ > 1u) { a21 += outer(q2, w1) + outer(r2, v1); }
                        if (NQ > 2u) { a22 += outer(q2, w2) + outer(r2, v2); }
                        if (NQ > 3u) { a23 += outer(q2, w3) + outer(r2, v3); }
                    }
                    if (TM4 > 3u) {
                        let q3 = subgroupShuffle(wmine, 3u);
                        let r3 = subgroupShuffle(wmine_b, 3u);
                        a30 += outer(q3, w0) + outer(r3, v0);
                        if (NQ > 1u) { a31 += outer(q3, w1) + outer(r3, v1); }
                        if (NQ > 2u) { a32 += outer(q3, w2) + outer(r3, v2); }
                        if (NQ > 3u) { a33 += outer(q3, w3) + outer(r3, v3); }
                    }
                    if (TM4 > 4u) {
                        let q4 = subgroupShuffle(wmine, 4u);
                        let r4 = subgroupShuffle(wmine_b, 4u);
                        a40 += outer(q4, w0) + outer(r4, v0);
                        if (NQ > 1u) { a41 += outer(q4, w1) + outer(r4, v1); }
                        if (NQ > 2u) { a42 += outer(q4, w2) + outer(r4, v2); }
                        if (NQ > 3u) { a43 += outer(q4, w3) + outer(r4, v3); }
                    }
                    if (TM4 > 5u) {
                        let q5 = subgroupShuffle(wmine, 5u);
                        let r5 = subgroupShuffle(wmine_b, 5u);
                        a50 += outer(q5, w0) + outer(r5, v0);
                        if (NQ > 1u) { a51 += outer(q5, w1) + outer(r5, v1); }
                        if (NQ > 2u) { a52 += outer(q5, w2) + outer(r5, v2); }
                        if (NQ > 3u) { a53 += outer(q5, w3) + outer(r5, v3); }
                    }
                    if (TM4 > 6u) {
                        let q6 = subgroupShuffle(wmine, 6u);
                        let r6 = subgroupShuffle(wmine_b, 6u);
                        a60 += outer(q6, w0) + outer(r6, v0);
                        if (NQ > 1u) { a61 += outer(q6, w1) + outer(r6, v1); }
                        if (NQ > 2u) { a62 += outer(q6, w2) + outer(r6, v2); }
                        if (NQ > 3u) { a63 += outer(q6, w3) + outer(r6, v3); }
                    }
                    if (TM4 > 7u) {
                        let q7 = subgroupShuffle(wmine, 7u);
                        let r7 = subgroupShuffle(wmine_b, 7u);
                        a70 += outer(q7, w0) + outer(r7, v0);
                        if (NQ > 1u) { a71 += outer(q7, w1) + outer(r7, v1); }
                        if (NQ > 2u) { a72 += outer(q7, w2) + outer(r7, v2); }
                        if (NQ > 3u) { a73 += outer(q7, w3) + outer(r7, v3); }
                    }
                    // Slide the windows one pixel to the right (never needed when each r has one tap: 1x1).
                    if (KW > S) {
                        let fresh = xin(row, next, row_ok);
                        let fresh_b = xin(row_b, next, row_ok);
                        next += s;
                        if (NQ == 1u) {
                            w0 = vec4<f32>(w0.yzw, fresh);
                        } else if (NQ == 2u) {
                            w0 = vec4<f32>(w0.yzw, w1.x); w1 = vec4<f32>(w1.yzw, fresh);
                        } else if (NQ == 3u) {
                            w0 = vec4<f32>(w0.yzw, w1.x); w1 = vec4<f32>(w1.yzw, w2.x); w2 = vec4<f32>(w2.yzw, fresh);
                        } else {
                            w0 = vec4<f32>(w0.yzw, w1.x); w1 = vec4<f32>(w1.yzw, w2.x); w2 = vec4<f32>(w2.yzw, w3.x); w3 = vec4<f32>(w3.yzw, fresh);
                        }
                        if (NQ == 1u) {
                            v0 = vec4<f32>(v0.yzw, fresh_b);
                        } else if (NQ == 2u) {
                            v0 = vec4<f32>(v0.yzw, v1.x); v1 = vec4<f32>(v1.yzw, fresh_b);
                        } else if (NQ == 3u) {
                            v0 = vec4<f32>(v0.yzw, v1.x); v1 = vec4<f32>(v1.yzw, v2.x); v2 = vec4<f32>(v2.yzw, fresh_b);
                        } else {
                            v0 = vec4<f32>(v0.yzw, v1.x); v1 = vec4<f32>(v1.yzw, v2.x); v2 = vec4<f32>(v2.yzw, v3.x); v3 = vec4<f32>(v3.yzw, fresh_b);
                        }
                    }
                }
            }
        }
    }
    if (!row_valid) {
        return;
    }
    store_block(a00, co4_0, 0u, b, qy, qx0, o_base);
    if (NQ > 1u) { store_block(a01, co4_0, 1u, b, qy, qx0, o_base); }
    if (NQ > 2u) { store_block(a02, co4_0, 2u, b, qy, qx0, o_base); }
    if (NQ > 3u) { store_block(a03, co4_0, 3u, b, qy, qx0, o_base); }
    if (TM4 > 1u) {
        store_block(a10, co4_0 + 1u, 0u, b, qy, qx0, o_base);
        if (NQ > 1u) { store_block(a11, co4_0 + 1u, 1u, b, qy, qx0, o_base); }
        if (NQ > 2u) { store_block(a12, co4_0 + 1u, 2u, b, qy, qx0, o_base); }
        if (NQ > 3u) { store_block(a13, co4_0 + 1u, 3u, b, qy, qx0, o_base); }
    }
    if (TM4 > 2u) {
        store_block(a20, co4_0 + 2u, 0u, b, qy, qx0, o_base);
        if (NQ > 1u) { store_block(a21, co4_0 + 2u, 1u, b, qy, qx0, o_base); }
        if (NQ > 2u) { store_block(a22, co4_0 + 2u, 2u, b, qy, qx0, o_base); }
        if (NQ > 3u) { store_block(a23, co4_0 + 2u, 3u, b, qy, qx0, o_base); }
    }
    if (TM4 > 3u) {
        store_block(a30, co4_0 + 3u, 0u, b, qy, qx0, o_base);
        if (NQ > 1u) { store_block(a31, co4_0 + 3u, 1u, b, qy, qx0, o_base); }
        if (NQ > 2u) { store_block(a32, co4_0 + 3u, 2u, b, qy, qx0, o_base); }
        if (NQ > 3u) { store_block(a33, co4_0 + 3u, 3u, b, qy, qx0, o_base); }
    }
    if (TM4 > 4u) {
        store_block(a40, co4_0 + 4u, 0u, b, qy, qx0, o_base);
        if (NQ > 1u) { store_block(a41, co4_0 + 4u, 1u, b, qy, qx0, o_base); }
        if (NQ > 2u) { store_block(a42, co4_0 + 4u, 2u, b, qy, qx0, o_base); }
        if (NQ > 3u) { store_block(a43, co4_0 + 4u, 3u, b, qy, qx0, o_base); }
    }
    if (TM4 > 5u) {
        store_block(a50, co4_0 + 5u, 0u, b, qy, qx0, o_base);
        if (NQ > 1u) { store_block(a51, co4_0 + 5u, 1u, b, qy, qx0, o_base); }
        if (NQ > 2u) { store_block(a52, co4_0 + 5u, 2u, b, qy, qx0, o_base); }
        if (NQ > 3u) { store_block(a53, co4_0 + 5u, 3u, b, qy, qx0, o_base); }
    }
    if (TM4 > 6u) {
        store_block(a60, co4_0 + 6u, 0u, b, qy, qx0, o_base);
        if (NQ > 1u) { store_block(a61, co4_0 + 6u, 1u, b, qy, qx0, o_base); }
        if (NQ > 2u) { store_block(a62, co4_0 + 6u, 2u, b, qy, qx0, o_base); }
        if (NQ > 3u) { store_block(a63, co4_0 + 6u, 3u, b, qy, qx0, o_base); }
    }
    if (TM4 > 7u) {
        store_block(a70, co4_0 + 7u, 0u, b, qy, qx0, o_base);
        if (NQ > 1u) { store_block(a71, co4_0 + 7u, 1u, b, qy, qx0, o_base); }
        if (NQ > 2u) { store_block(a72, co4_0 + 7u, 2u, b, qy, qx0, o_base); }
        if (NQ > 3u) { store_block(a73, co4_0 + 7u, 3u, b, qy, qx0, o_base); }
    }
}

// Epilogue for one 4-channel x 4-pixel block: bias, LeakyReLU, optional accumulation, bounds.
fn store_block(a: mat4x4<f32>, co4: u32, quad: u32, b: u32, qy: u32, qx0: u32, o_base: u32) {
    let oy = qy * p.out_step + p.out_phase_y;
    for (var k = 0u; k < 4u; k++) {
        let co = co4 * 4u + k;
        if (co >= p.cout) {
            return;
        }
        var bv = 0.0;
        if (p.has_bias != 0u) {
            bv = bias[co];
        }
        let base = ((b * p.out_c_total + p.out_c_offset + co) * p.out_h + oy) * p.out_w + o_base;
        for (var j = 0u; j < 4u; j++) {
            let qx = qx0 + quad * 4u + j;
            if (qx < p.grid_w) {
                let idx = base + qx * p.out_step + p.out_phase_x;
                var v = a[j][k] + bv;
                if (p.leaky != 0u && v < 0.0) {
                    v = v * p.slope;
                }
                if (p.accumulate != 0u) {
                    v += out[idx];
                }
                out[idx] = v;
            }
        }
    }
}
