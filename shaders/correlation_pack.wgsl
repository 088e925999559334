// correlation_pack: copies a window of a feature tensor into the zero-padded channels-last layout that the
// tiled correlation kernels read (`correlation_forward`, `correlation_backward_a`, `correlation_backward_b`).
//
//   src  [N, C, H, W] f32 (NCHW, the crate's tensor layout)
//   out  [N, hp, wp, c4] vec4: out[n, y, x, k] = (src[n, 4k + e, y + row0, x + col0] for e in 0..4),
//        0 where the source row/column is outside the image or 4k + e >= C.
//
// Why channels-last: on llvmpipe every storage-buffer load is scalarised per lane (a bounds check and an
// insert per component) and costs ~10 instructions per float, while one vec4 load of four consecutive
// floats costs about as much as a scalar one (measured: 8 scalar loads 55 ms, 2 vec4 loads 17 ms for the
// same floats). NCHW only allows vec4 loads along x, which needs W % 4 == 0, aligned columns and
// stride2 == 1; channels-last makes every load four channels of one pixel for any size, stride and patch,
// and the zero padding removes every bounds test from the inner loops. The copy is one pass over the
// inputs, a few percent of the correlation (see benches/RESULTS.md).

struct Params {
    batch: u32, channels: u32, in_h: u32, in_w: u32,
    c4: u32, hp: u32, wp: u32, total: u32,
    row0: i32, col0: i32, _pad0: u32, _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<vec4<f32>>;

fn channel(n: u32, c: u32, y: i32, x: i32) -> f32 {
    if (c >= p.channels) {
        return 0.0;
    }
    return src[((n * p.channels + c) * p.in_h + u32(y)) * p.in_w + u32(x)];
}

// Grid: x = channel quad, y = packed column, z = packed row + hp * image (no per-invocation division:
// integer division is scalarised per lane on CPU drivers).
@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let k = gid.x;
    let x = gid.y;
    if (k >= p.c4 || x >= p.wp) {
        return;
    }
    let y = gid.z % p.hp;
    let n = gid.z / p.hp;
    let sy = i32(y) + p.row0;
    let sx = i32(x) + p.col0;
    var v = vec4(0.0);
    if (sy >= 0 && sy < i32(p.in_h) && sx >= 0 && sx < i32(p.in_w)) {
        let c = 4u * k;
        v = vec4(channel(n, c, sy, sx), channel(n, c + 1u, sy, sx), channel(n, c + 2u, sy, sx), channel(n, c + 3u, sy, sx));
    }
    out[((n * p.hp + y) * p.wp + x) * p.c4 + k] = v;
}
