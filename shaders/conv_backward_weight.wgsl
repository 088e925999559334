// conv_backward_weight: the weight gradient of a conv2d or conv_transpose2d, an implicit GEMM whose
// reduction runs over the batch and the pixels:
//   G[ct, cp, ky, kx] (+)= sum over n, qy, qx of T[n, ct, qy S - pad + ky, qx S - pad + kx] * P[n, cp, qy, qx]
// with zero outside T. conv2d: T = x (ct = input channel), P = dy (cp = output channel), q = output pixels.
// conv_transpose2d: T = dy (ct = its output channel), P = x (cp = its input channel), q = input pixels.
// G is written into the packed weight layout of `ConvWeights` through the strides s_ct, s_cp, s_k (per tap
// ky * kw + kx), so the optimizer updates the packed weights element-wise.
//
// Convention: grad += (parameter gradient) when `partial` is 0. When the pixel reduction is split over
// workgroups (z), each split writes (=) its sum to partial[z * len + i] and conv_backward_weight_reduce
// adds them up.
//
// Each invocation owns 8 tapped channels (one tap) x 4 PQ plain channels, as 2 x PQ mat4x4 accumulators
// (column j = the 4 tapped channels against plain channel j). The workgroup shares the plain-channel block:
// per pixel, lane l loads the 4 plain channels of quad (l % PQ) and subgroupShuffle hands every lane all PQ
// quads (one load per lane instead of 4 PQ). PQ = 8 needs subgroups of 8 lanes and feeds twice the
// multiply-adds per loaded value of PQ = 4 (subgroups have at least 4 lanes). Lanes enumerate
// (tap, tapped-channel block), tap fastest.
// Dispatch: x = ceil(ceil(t_c / 8) kh kw / WG), y = ceil(p_c / (4 PQ)), z = splits of the N p_h pixel rows.

struct Params {
    batch: u32, t_c: u32, t_h: u32, t_w: u32,
    t_c_offset: u32, t_c_total: u32, p_c: u32, p_h: u32,
    p_w: u32, p_c_offset: u32, p_c_total: u32, kh: u32,
    kw: u32, stride: u32, pad: u32, rows_per_split: u32,
    s_ct: u32, s_cp: u32, s_k: u32, partial: u32,
    len: u32, _pad0: u32, _pad1: u32, _pad2: u32,
}

override WG: u32 = 64u;
// Plain-channel quads per workgroup (4 or 8, at most the subgroup size).
override PQ: u32 = 4u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> t: array<f32>;
@group(0) @binding(2) var<storage, read> pl: array<f32>;
@group(0) @binding(3) var<storage, read_write> grad: array<f32>;

fn outer(a: vec4<f32>, b: vec4<f32>) -> mat4x4<f32> {
    return mat4x4<f32>(a * b.x, a * b.y, a * b.z, a * b.w);
}

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
    let taps = p.kh * p.kw;
    let g = wid.x * WG + lid.x;
    let tap = g % taps;
    let ct0 = (g / taps) * 8u;
    let ky = tap / p.kw;
    let kx = tap % p.kw;
    let cp0 = wid.y * 4u * PQ;
    let t_plane = p.t_h * p.t_w;
    let p_plane = p.p_h * p.p_w;
    // Clamped channels keep every load in bounds; their products are never written.
    let ct_last = p.t_c - 1u;
    let my_cp = cp0 + 4u * (lane % PQ);
    var cp_ok = vec4<bool>(my_cp < p.p_c, my_cp + 1u < p.p_c, my_cp + 2u < p.p_c, my_cp + 3u < p.p_c);
    let p_last = p.p_c - 1u;

    var a00 = mat4x4<f32>(); var a01 = mat4x4<f32>(); var a02 = mat4x4<f32>(); var a03 = mat4x4<f32>();
    var a10 = mat4x4<f32>(); var a11 = mat4x4<f32>(); var a12 = mat4x4<f32>(); var a13 = mat4x4<f32>();
    var a04 = mat4x4<f32>(); var a05 = mat4x4<f32>(); var a06 = mat4x4<f32>(); var a07 = mat4x4<f32>();
    var a14 = mat4x4<f32>(); var a15 = mat4x4<f32>(); var a16 = mat4x4<f32>(); var a17 = mat4x4<f32>();
    let r0 = wid.z * p.rows_per_split;
    let r1 = min(r0 + p.rows_per_split, p.batch * p.p_h);
    for (var r = r0; r < r1; r++) {
        let n = r / p.p_h;
        let qy = r % p.p_h;
        let iy = i32(qy * p.stride + ky) - i32(p.pad);
        let row_ok = iy >= 0 && iy < i32(p.t_h);
        let t_row = (n * p.t_c_total + p.t_c_offset) * t_plane + u32(clamp(iy, 0, i32(p.t_h) - 1)) * p.t_w;
        let tb0 = t_row + min(ct0, ct_last) * t_plane;
        let tb1 = t_row + min(ct0 + 1u, ct_last) * t_plane;
        let tb2 = t_row + min(ct0 + 2u, ct_last) * t_plane;
        let tb3 = t_row + min(ct0 + 3u, ct_last) * t_plane;
        let tb4 = t_row + min(ct0 + 4u, ct_last) * t_plane;
        let tb5 = t_row + min(ct0 + 5u, ct_last) * t_plane;
        let tb6 = t_row + min(ct0 + 6u, ct_last) * t_plane;
        let tb7 = t_row + min(ct0 + 7u, ct_last) * t_plane;
        let p_row = (n * p.p_c_total + p.p_c_offset) * p_plane + qy * p.p_w;
        let pb0 = p_row + min(my_cp, p_last) * p_plane;
        let pb1 = p_row + min(my_cp + 1u, p_last) * p_plane;
        let pb2 = p_row + min(my_cp + 2u, p_last) * p_plane;
        let pb3 = p_row + min(my_cp + 3u, p_last) * p_plane;
        // Two pixels per iteration: the driver blends loop-carried accumulators once per iteration.
        for (var qx = 0u; qx < p.p_w; qx += 2u) {
            let z = vec4<f32>(0.0);
            let ix = i32(qx * p.stride + kx) - i32(p.pad);
            let ok = row_ok && ix >= 0 && ix < i32(p.t_w);
            let c = u32(clamp(ix, 0, i32(p.t_w) - 1));
            let ta0 = select(z, vec4<f32>(t[tb0 + c], t[tb1 + c], t[tb2 + c], t[tb3 + c]), ok);
            let ta1 = select(z, vec4<f32>(t[tb4 + c], t[tb5 + c], t[tb6 + c], t[tb7 + c]), ok);
            let ma = select(z, vec4<f32>(pl[pb0 + qx], pl[pb1 + qx], pl[pb2 + qx], pl[pb3 + qx]), cp_ok);
            // The second pixel, zero past the end of the row.
            let qx2 = min(qx + 1u, p.p_w - 1u);
            let ix2 = ix + i32(p.stride);
            let ok2 = row_ok && qx + 1u < p.p_w && ix2 >= 0 && ix2 < i32(p.t_w);
            let c2 = u32(clamp(ix2, 0, i32(p.t_w) - 1));
            let tb0_ = select(z, vec4<f32>(t[tb0 + c2], t[tb1 + c2], t[tb2 + c2], t[tb3 + c2]), ok2);
            let tb1_ = select(z, vec4<f32>(t[tb4 + c2], t[tb5 + c2], t[tb6 + c2], t[tb7 + c2]), ok2);
            let mb = select(z, vec4<f32>(pl[pb0 + qx2], pl[pb1 + qx2], pl[pb2 + qx2], pl[pb3 + qx2]), cp_ok);
            let qa0 = subgroupShuffle(ma, 0u);
            let qb0 = subgroupShuffle(mb, 0u);
            a00 += outer(ta0, qa0) + outer(tb0_, qb0);
            a10 += outer(ta1, qa0) + outer(tb1_, qb0);
            let qa1 = subgroupShuffle(ma, 1u);
            let qb1 = subgroupShuffle(mb, 1u);
            a01 += outer(ta0, qa1) + outer(tb0_, qb1);
            a11 += outer(ta1, qa1) + outer(tb1_, qb1);
            let qa2 = subgroupShuffle(ma, 2u);
            let qb2 = subgroupShuffle(mb, 2u);
            a02 += outer(ta0, qa2) + outer(tb0_, qb2);
            a12 += outer(ta1, qa2) + outer(tb1_, qb2);
            let qa3 = subgroupShuffle(ma, 3u);
            let qb3 = subgroupShuffle(mb, 3u);
            a03 += outer(ta0, qa3) + outer(tb0_, qb3);
            a13 += outer(ta1, qa3) + outer(tb1_, qb3);
            if (PQ > 4u) {
                let qa4 = subgroupShuffle(ma, 4u);
                let qb4 = subgroupShuffle(mb, 4u);
                a04 += outer(ta0, qa4) + outer(tb0_, qb4);
                a14 += outer(ta1, qa4) + outer(tb1_, qb4);
            }
            if (PQ > 5u) {
                let qa5 = subgroupShuffle(ma, 5u);
                let qb5 = subgroupShuffle(mb, 5u);
                a05 += outer(ta0, qa5) + outer(tb0_, qb5);
                a15 += outer(ta1, qa5) + outer(tb1_, qb5);
            }
            if (PQ > 6u) {
                let qa6 = subgroupShuffle(ma, 6u);
                let qb6 = subgroupShuffle(mb, 6u);
                a06 += outer(ta0, qa6) + outer(tb0_, qb6);
                a16 += outer(ta1, qa6) + outer(tb1_, qb6);
            }
            if (PQ > 7u) {
                let qa7 = subgroupShuffle(ma, 7u);
                let qb7 = subgroupShuffle(mb, 7u);
                a07 += outer(ta0, qa7) + outer(tb0_, qb7);
                a17 += outer(ta1, qa7) + outer(tb1_, qb7);
            }
        }
    }
    if (ct0 >= p.t_c) {
        return;
    }
    store(a00, ct0, cp0 + 0u, tap, wid.z);
    store(a10, ct0 + 4u, cp0 + 0u, tap, wid.z);
    store(a01, ct0, cp0 + 4u, tap, wid.z);
    store(a11, ct0 + 4u, cp0 + 4u, tap, wid.z);
    store(a02, ct0, cp0 + 8u, tap, wid.z);
    store(a12, ct0 + 4u, cp0 + 8u, tap, wid.z);
    store(a03, ct0, cp0 + 12u, tap, wid.z);
    store(a13, ct0 + 4u, cp0 + 12u, tap, wid.z);
    if (PQ > 4u) {
        store(a04, ct0, cp0 + 16u, tap, wid.z);
        store(a14, ct0 + 4u, cp0 + 16u, tap, wid.z);
    }
    if (PQ > 5u) {
        store(a05, ct0, cp0 + 20u, tap, wid.z);
        store(a15, ct0 + 4u, cp0 + 20u, tap, wid.z);
    }
    if (PQ > 6u) {
        store(a06, ct0, cp0 + 24u, tap, wid.z);
        store(a16, ct0 + 4u, cp0 + 24u, tap, wid.z);
    }
    if (PQ > 7u) {
        store(a07, ct0, cp0 + 28u, tap, wid.z);
        store(a17, ct0 + 4u, cp0 + 28u, tap, wid.z);
    }
}

// Writes the 4 tapped x 4 plain channels of one accumulator (column j = plain channel cp + j).
fn store(a: mat4x4<f32>, ct: u32, cp: u32, tap: u32, split: u32) {
    for (var j = 0u; j < 4u; j++) {
        for (var i = 0u; i < 4u; i++) {
            if (ct + i < p.t_c && cp + j < p.p_c) {
                let idx = (ct + i) * p.s_ct + (cp + j) * p.s_cp + tap * p.s_k;
                if (p.partial != 0u) {
                    grad[split * p.len + idx] = a[j][i];
                } else {
                    grad[idx] += a[j][i];
                }
            }
        }
    }
}
