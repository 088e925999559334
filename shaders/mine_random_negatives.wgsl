// mine_random_negatives: a uniformly random negative for every triplet slot: for anchor a = triplets[t].x,
// the (hash(seed, t, 1) % N_a)-th row j of B (index order) with labels_b[j] != labels_a[a], N_a their
// number; writes the negative cell (a, j), or (a, NO_INDEX) when a is out of range or has no negative.
// hash(seed, t, s) = pcg(pcg(pcg(seed) + t) + s) (`reference::metric::mining::hash_u32`); `% N` has a bias
// below N / 2^32. One invocation per slot; the positive cell is left as it is.
//   labels_a [rows]; labels_b [cols]; triplets [triplets] of (pos_row, pos_col, neg_row, neg_col).
// The seed is seed_buf[0], a one-value buffer (ops::metric::SeedBuffer), so that a recorded program
// replayed every training step draws anew when the caller writes a new seed.

struct Params {
    rows: u32, cols: u32, triplets: u32, _pad0: u32,
}

const NO_INDEX: u32 = 0xffffffffu;

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> labels_a: array<u32>;
@group(0) @binding(2) var<storage, read> labels_b: array<u32>;
@group(0) @binding(3) var<storage, read_write> triplets: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read> seed_buf: array<u32>;

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = gid.x + gid.y * nwg.x * WG;
    if (t >= p.triplets) {
        return;
    }
    let a = triplets[t].x;
    var chosen = NO_INDEX;
    if (a < p.rows) {
        let la = labels_a[a];
        var count = 0u;
        for (var j = 0u; j < p.cols; j++) {
            count += select(0u, 1u, labels_b[j] != la);
        }
        if (count > 0u) {
            var r = hash3(seed_buf[0], t, 1u) % count;
            for (var j = 0u; j < p.cols; j++) {
                if (labels_b[j] != la) {
                    if (r == 0u) {
                        chosen = j;
                        break;
                    }
                    r -= 1u;
                }
            }
        }
    }
    triplets[t].z = a;
    triplets[t].w = chosen;
}
