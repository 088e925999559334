// mine_positives: the anchor and positive cells of triplet slots t < rows * per_anchor (see
// `ops::metric`): anchor i = t / per_anchor, positive a row j of B with labels_b[j] == labels_a[i] (and
// j != i when exclude_diagonal == 1), chosen as
//   choice 0: the farthest (batch-hard; ties to the lowest j),
//   choice 1: uniformly at random, the (hash(seed, t, 0) % P_i)-th positive in index order;
// NO_INDEX when i has none. Writes triplets[t] = (i, positive, i, NO_INDEX); a negative sampler fills the
// negative cell next. hash(seed, t, s) = pcg(pcg(pcg(seed) + t) + s), PCG hash of Jarzynski & Olano 2020
// (`reference::metric::mining::hash_u32`). One invocation per slot.
//   dist [rows, cols]; labels_a [rows]; labels_b [cols]; triplets [rows * per_anchor].
// The seed is seed_buf[0], a one-value buffer (ops::metric::SeedBuffer), so that a recorded program
// replayed every training step draws anew when the caller writes a new seed.

struct Params {
    rows: u32, cols: u32, per_anchor: u32, choice: u32,
    exclude_diagonal: u32, _pad0: u32, _pad1: u32, _pad2: u32,
}

const NO_INDEX: u32 = 0xffffffffu;

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dist: array<f32>;
@group(0) @binding(2) var<storage, read> labels_a: array<u32>;
@group(0) @binding(3) var<storage, read> labels_b: array<u32>;
@group(0) @binding(4) var<storage, read_write> triplets: array<vec4<u32>>;
@group(0) @binding(5) var<storage, read> seed_buf: array<u32>;

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = gid.x + gid.y * nwg.x * WG;
    if (t >= p.rows * p.per_anchor) {
        return;
    }
    let i = t / p.per_anchor;
    let la = labels_a[i];
    var chosen = NO_INDEX;
    if (p.choice == 0u) {
        var far = 0.0;
        for (var j = 0u; j < p.cols; j++) {
            if (labels_b[j] == la && !(p.exclude_diagonal == 1u && j == i)) {
                let d = dist[i * p.cols + j];
                if (chosen == NO_INDEX || d > far) {
                    chosen = j;
                    far = d;
                }
            }
        }
    } else {
        var count = 0u;
        for (var j = 0u; j < p.cols; j++) {
            count += select(0u, 1u, labels_b[j] == la && !(p.exclude_diagonal == 1u && j == i));
        }
        if (count > 0u) {
            var r = hash3(seed_buf[0], t, 0u) % count;
            for (var j = 0u; j < p.cols; j++) {
                if (labels_b[j] == la && !(p.exclude_diagonal == 1u && j == i)) {
                    if (r == 0u) {
                        chosen = j;
                        break;
                    }
                    r -= 1u;
                }
            }
        }
    }
    triplets[t] = vec4<u32>(i, chosen, i, NO_INDEX);
}
