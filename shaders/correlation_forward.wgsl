// correlation_forward: the FlowNetC correlation layer (Caffe semantics, exactly the definition in
// correlation_forward_naive.wgsl), tiled over subgroups. One subgroup of SG = 8 lanes computes, for one
// image n, one output row oy and one displacement row p, all displacement columns q of 8 * TA output columns.
//
// Inputs are the zero-padded channels-last copies made by correlation_pack (see there for why NHWC):
//   a  [N, a_hp, a_wp, c4] vec4, frame origin (o0 stride1 + md - pad, md - pad): packed (oy stride1 + j,
//      ox stride1 + i) is the a-pixel output (o0 + oy, ox) reads at patch offset (j, i).
//   b  [N, b_hp, b_wp, c4] vec4, the same origin moved up and left by R stride2 (R = grid radius): packed
//      (oy stride1 + j + p stride2, ox stride1 + i + q stride2) is the b-pixel of displacement
//      (dy, dx) = ((p - R) stride2, (q - R) stride2). Everything outside the images is zero in the copies,
//      so the loops below have no bounds tests.
//
// Tiling ("anti-diagonal" sweep). Lane l of block t owns output column ox = ox0 + (8 t + l) * m with
// m = stride2 / gcd(stride1, stride2), so neighbouring lanes are L = m * stride1 / stride2 sweep steps
// apart. The b-pixel of (lane l, block t, displacement q) is sweep position s = 8 t L + l L + q, i.e. the
// same b column for every lane at a given s. Per channel quad the 8 lanes load the b sweep cooperatively
// (each lane loads every 8th position: ceil((8 L (TA - 1) + 4 KW4) / 8) vec4 loads) and hand the values to
// each other with subgroupShuffle (a register broadcast on CPU drivers), while each lane loads its own TA
// a-pixels once. So every loaded a vector feeds 4 KW4 dot products and every loaded b vector feeds up to
// 8 * TA of them; on llvmpipe this is ~5x fewer loads per FMA than per-invocation register tiling, which was
// measured first (see benches/RESULTS.md). The price: a lane computes the whole sweep window 4 KW4 >= 7 L +
// GW and keeps the GW positions that belong to it (75% useful for FlowNetC), written at the end.
// Sweeps longer than one window (large grids) are split over k_windows workgroup rows.
//
// Layout and tiling were chosen by measurement on llvmpipe (FlowNetC layer, B = 1, C = 256, 48 x 64,
// 441 displacements; quiet 2-core machine; the one-invocation-per-output kernel takes 2.08 s):
//   NCHW, 12 displacements per invocation in registers, scalar loads            209 ms
//   NHWC vec4 (packed), 4 columns x 7 displacements per invocation in registers  106 ms
//   NHWC vec4, this subgroup sweep, TA = 1                                        45 ms
//   NHWC vec4, this subgroup sweep, TA = 2                                        36 ms
// llvmpipe scalarises every storage load per lane (~10 instructions per float), so the layout that allows
// vec4 loads for every geometry (NHWC) and the tiling that loads each value once per subgroup instead of
// once per lane win; FMAs are nearly free in comparison. Larger tiles stop paying off because the unrolled
// loop body must stay within the instruction cache and llvmpipe unrolls at most ~1300 FP operations.
//
// Output: out[n, out_c_offset + p * GW + q, out_row0 + oy, ox] = norm * sum (then LeakyReLU(slope) when
// `leaky`), norm = 1 / (kernel_size^2 C); other channels of the tensor are untouched.

struct Params {
    batch: u32, c4: u32, out_h: u32, out_w: u32,
    band_rows: u32, out_row0: u32, x_blocks: u32, k_windows: u32,
    stride1: u32, stride2: u32, kernel_size: u32, lane_step: u32,
    a_hp: u32, a_wp: u32, b_hp: u32, b_wp: u32,
    out_c_offset: u32, out_c_total: u32, leaky: u32, slope: f32,
    norm: f32, _pad0: u32, _pad1: u32, _pad2: u32,
}

// Grid width 2R + 1 (displacements per row).
override GW: u32 = 21u;
// Sweep window per k-window, in groups of four positions (4 * KW4 <= 32).
override KW4: u32 = 7u;
// Column blocks per lane (1 or 2).
override TA: u32 = 2u;
// Sweep steps between neighbouring lanes (L above).
override SL: u32 = 1u;
// kernel_size (a constant so the patch loops vanish for the usual 1).
override KS: u32 = 1u;

const SG: u32 = 8u;
const MAXU: u32 = 12u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

// Sweep value s (0-based inside the window), held by lane s % SG in round s / SG.
fn sweep(bt: ptr<function, array<vec4<f32>, MAXU>>, s: u32) -> vec4<f32> {
    return subgroupShuffle((*bt)[s / SG], s % SG);
}

// Four consecutive sweep positions against one a vector: r[e] += dot(v, b_e).
fn step4(r0: vec4<f32>, v: vec4<f32>, b0: vec4<f32>, b1: vec4<f32>, b2: vec4<f32>, b3: vec4<f32>) -> vec4<f32> {
    var r = r0;
    r = fma(vec4(v.x), vec4(b0.x, b1.x, b2.x, b3.x), r);
    r = fma(vec4(v.y), vec4(b0.y, b1.y, b2.y, b3.y), r);
    r = fma(vec4(v.z), vec4(b0.z, b1.z, b2.z, b3.z), r);
    r = fma(vec4(v.w), vec4(b0.w, b1.w, b2.w, b3.w), r);
    return r;
}

@compute @workgroup_size(8, 1, 1)
fn main(@builtin(subgroup_invocation_id) l: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let m = p.lane_step;
    let blk = wid.x / m;
    let phase = wid.x % m;
    let kw = wid.y % p.k_windows;
    let rest = wid.y / p.k_windows;
    let oy = rest / GW;
    let pr = rest % GW;
    let n = wid.z;
    if (blk >= p.x_blocks || oy >= p.band_rows || n >= p.batch) {
        return;
    }
    let ox0 = phase + blk * SG * TA * m;
    let kwin = 4u * KW4;
    let k0 = kw * kwin;
    let rounds = (SG * SL * (TA - 1u) + kwin + SG - 1u) / SG;
    let s1 = p.stride1;
    let s2 = p.stride2;
    let c4 = p.c4;

    var acc: array<vec4<f32>, 16>;
    for (var i = 0u; i < TA * KW4; i++) {
        acc[i] = vec4(0.0);
    }
    for (var j = 0u; j < KS; j++) {
        let ra = (n * p.a_hp + oy * s1 + j) * p.a_wp;
        let rb = (n * p.b_hp + oy * s1 + j + pr * s2) * p.b_wp;
        for (var i = 0u; i < KS; i++) {
            let a0 = (ra + (ox0 + l * m) * s1 + i) * c4;
            let a1 = (ra + (ox0 + (SG + l) * m) * s1 + i) * c4;
            let b0 = (rb + ox0 * s1 + i + (k0 + l) * s2) * c4;
            let bstep = SG * s2 * c4;
            for (var c = 0u; c < c4; c++) {
                var bt: array<vec4<f32>, MAXU>;
                for (var u = 0u; u < rounds; u++) {
                    bt[u] = b[b0 + u * bstep + c];
                }
                let v0 = a[a0 + c];
                for (var k4 = 0u; k4 < KW4; k4++) {
                    let s = 4u * k4;
                    acc[k4] = step4(acc[k4], v0, sweep(&bt, s), sweep(&bt, s + 1u), sweep(&bt, s + 2u), sweep(&bt, s + 3u));
                }
                if (TA > 1u) {
                    let v1 = a[a1 + c];
                    for (var k4 = 0u; k4 < KW4; k4++) {
                        let s = SG * SL + 4u * k4;
                        acc[KW4 + k4] = step4(acc[KW4 + k4], v1, sweep(&bt, s), sweep(&bt, s + 1u), sweep(&bt, s + 2u), sweep(&bt, s + 3u));
                    }
                }
            }
        }
    }

    let plane = p.out_h * p.out_w;
    let row = p.out_row0 + oy;
    for (var t = 0u; t < TA; t++) {
        let ox = ox0 + (t * SG + l) * m;
        if (ox < p.out_w) {
            let base = ((n * p.out_c_total + p.out_c_offset + pr * GW) * p.out_h + row) * p.out_w + ox;
            for (var kk = 0u; kk < kwin; kk++) {
                let q = i32(k0 + kk) - i32(l * SL);
                if (q >= 0 && q < i32(GW)) {
                    var v = acc[t * KW4 + kk / 4u][kk % 4u] * p.norm;
                    if (p.leaky != 0u && v < 0.0) {
                        v = v * p.slope;
                    }
                    out[base + u32(q) * plane] = v;
                }
            }
        }
    }
}
