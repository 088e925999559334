// correlation_grad_pack: rearranges the gradient of the correlation output into the per-lane sweep order
// read by correlation_backward_a (frame = 0) and correlation_backward_b (frame = 1).
//
// With F(ya, xa, p, q) = norm * sum over patch offsets (j, i) < kernel_size of g[n, p GW + q, oy, ox] for
// the outputs (oy, ox) whose patch puts a-pixel (ya, xa) at offset (j, i), i.e. ya = oy stride1 + md - pad
// + j (and xa likewise), restricted to output rows o0 .. o1 of the current band:
//   frame a:  G[n, y, x, p, k] = F(y0 + y, x, p, q = k - l)
//   frame b:  G[n, y, x, p, k] = F(y0 + y - dy, x - dx, p, q = l + GW - 1 - k),  (dy, dx) = ((p - R), (q - R)) stride2
// where l = (x / stride2) % 8 is the subgroup lane that owns column x in the backward kernels, and G = 0
// when q falls outside 0 .. GW. Then for the lane owning column x the backward sums read G at uniform sweep
// positions k (see correlation_backward_a.wgsl). Layout: [N, rows, wp, GW, kp4] of vec4 over k.
//
//   g  [N, D, g_h, g_w]: the correlation output gradient (before any LeakyReLU); output row oy is tensor row
//      oy - o0 + g_row0.

struct Params {
    batch: u32, d_total: u32, g_h: u32, g_w: u32,
    g_row0: u32, o0: u32, o1: u32, rows: u32,
    wp: u32, kp4: u32, stride1: u32, stride2: u32,
    kernel_size: u32, grid_radius: u32, frame: u32, total: u32,
    y0: i32, origin: i32, norm: f32, _pad0: u32,
}

override GW: u32 = 21u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<vec4<f32>>;

// t / stride1 when stride1 divides t >= 0, else -1. Float division: integer division is scalarised per lane
// on CPU drivers, and |t| < 2^20 is exact in f32.
fn exact_div(t: i32) -> i32 {
    if (t < 0) {
        return -1;
    }
    let s1 = i32(p.stride1);
    let q = i32(floor((f32(t) + 0.5) / f32(s1)));
    return select(-1, q, q * s1 == t);
}

// F(ya, xa, pr, q) without the norm.
fn patch_sum(n: u32, ya: i32, xa: i32, pr: u32, q: u32) -> f32 {
    let d = pr * GW + q;
    var sum = 0.0;
    for (var j = 0; j < i32(p.kernel_size); j++) {
        let oy = exact_div(ya - j - p.origin);
        if (oy < i32(p.o0) || oy >= i32(p.o1)) {
            continue;
        }
        let row = ((n * p.d_total + d) * p.g_h + u32(oy) - p.o0 + p.g_row0) * p.g_w;
        for (var i = 0; i < i32(p.kernel_size); i++) {
            let ox = exact_div(xa - i - p.origin);
            if (ox < 0 || ox >= i32(p.g_w)) {
                continue;
            }
            sum += g[row + u32(ox)];
        }
    }
    return sum;
}

// Grid: x = column, y = row + rows * image, z = displacement row; each invocation writes the kp4 sweep quads.
@compute @workgroup_size(8, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let x = gid.x;
    if (x >= p.wp) {
        return;
    }
    let y = gid.y % p.rows;
    let n = gid.y / p.rows;
    let pr = gid.z;
    let lane = (x / p.stride2) % 8u;
    let r = i32(p.grid_radius);
    let s2 = i32(p.stride2);
    let base = (((n * p.rows + y) * p.wp + x) * GW + pr) * p.kp4;
    if (p.kernel_size == 1u) {
        // One patch offset (FlowNetC, PWC): each G value is a single g element; hoist what does not
        // depend on the sweep position.
        let plane = p.g_h * p.g_w;
        let dbase = (n * p.d_total + pr * GW) * plane;
        var ya = p.y0 + i32(y);
        if (p.frame == 1u) {
            ya = ya - (i32(pr) - r) * s2;
        }
        let oy = exact_div(ya - p.origin);
        let row_ok = oy >= i32(p.o0) && oy < i32(p.o1);
        let row = (u32(max(oy, 0)) - min(u32(max(oy, 0)), p.o0) + p.g_row0) * p.g_w;
        let ox_a = exact_div(i32(x) - p.origin);
        for (var k4 = 0u; k4 < p.kp4; k4++) {
            var v = vec4(0.0);
            if (row_ok) {
                for (var e = 0u; e < 4u; e++) {
                    let k = i32(4u * k4 + e);
                    var q = k - i32(lane);
                    var ox = ox_a;
                    if (p.frame == 1u) {
                        q = i32(lane) + i32(GW) - 1 - k;
                        ox = exact_div(i32(x) - (q - r) * s2 - p.origin);
                    }
                    if (q >= 0 && q < i32(GW) && ox >= 0 && ox < i32(p.g_w)) {
                        v[e] = g[dbase + u32(q) * plane + row + u32(ox)] * p.norm;
                    }
                }
            }
            out[base + k4] = v;
        }
        return;
    }
    for (var k4 = 0u; k4 < p.kp4; k4++) {
        var v = vec4(0.0);
        for (var e = 0u; e < 4u; e++) {
            let k = i32(4u * k4 + e);
            var q: i32;
            var ya = p.y0 + i32(y);
            var xa = i32(x);
            if (p.frame == 0u) {
                q = k - i32(lane);
            } else {
                q = i32(lane) + i32(GW) - 1 - k;
                ya = ya - (i32(pr) - r) * s2;
                xa = xa - (q - r) * s2;
            }
            if (q >= 0 && q < i32(GW)) {
                v[e] = patch_sum(n, ya, xa, pr, u32(q)) * p.norm;
            }
        }
        out[base + k4] = v;
    }
}
