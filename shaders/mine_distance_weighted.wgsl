// mine_distance_weighted: distance-weighted negatives (Wu et al., "Sampling Matters in Deep Embedding
// Learning", ICCV 2017). On the unit sphere in `dim` dimensions pairwise distances have density
// q(d) ~ d^(dim-2) (1 - d^2/4)^((dim-3)/2); sampling negatives with weight 1/q(d) spreads them evenly
// over distances. In log space (dim = 128 overflows f32 otherwise), for anchor a = triplets[t].x:
//   lw(d) = -(dim - 2) log(dc) - (dim - 3)/2 log(max(1 - dc^2/4, 1e-8)),   dc = max(d, cutoff),
// over the eligible rows j of B (labels_b[j] != labels_a[a] and d(a,j) < nonzero_loss_cutoff, the paper's
// code's 1.4), weight exp(lw - max lw). With u = (hash(seed, t, 1) >> 8) * 2^-24, the first eligible j
// (index order) whose running weight sum exceeds u * total is taken (the last eligible one if rounding
// leaves none). Without eligible rows: a uniform negative, the (hash(seed, t, 2) % N_a)-th. Writes the
// negative cell (a, j), or (a, NO_INDEX) without any negative. One invocation per slot, three passes.
//   dist [rows, cols]; labels_a [rows]; labels_b [cols]; triplets [triplets].
// The seed is seed_buf[0], a one-value buffer (ops::metric::SeedBuffer), so that a recorded program
// replayed every training step draws anew when the caller writes a new seed.

struct Params {
    rows: u32, cols: u32, triplets: u32, dim: u32,
    cutoff: f32, nonzero_loss_cutoff: f32, _pad0: u32, _pad1: u32,
}

const NO_INDEX: u32 = 0xffffffffu;

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dist: array<f32>;
@group(0) @binding(2) var<storage, read> labels_a: array<u32>;
@group(0) @binding(3) var<storage, read> labels_b: array<u32>;
@group(0) @binding(4) var<storage, read_write> triplets: array<vec4<u32>>;
@group(0) @binding(5) var<storage, read> seed_buf: array<u32>;

fn log_weight(d: f32) -> f32 {
    let dc = max(d, p.cutoff);
    let dim = f32(p.dim);
    return -(dim - 2.0) * log(dc) - (dim - 3.0) * 0.5 * log(max(1.0 - 0.25 * dc * dc, 1e-8));
}

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
        let row = a * p.cols;
        var eligible = 0u;
        var negatives = 0u;
        var mx = -3.4e38;
        for (var j = 0u; j < p.cols; j++) {
            if (labels_b[j] != la) {
                negatives += 1u;
                let d = dist[row + j];
                if (d < p.nonzero_loss_cutoff) {
                    eligible += 1u;
                    mx = max(mx, log_weight(d));
                }
            }
        }
        if (eligible > 0u) {
            var total = 0.0;
            for (var j = 0u; j < p.cols; j++) {
                let d = dist[row + j];
                if (labels_b[j] != la && d < p.nonzero_loss_cutoff) {
                    total += exp(log_weight(d) - mx);
                }
            }
            let goal = f32(hash3(seed_buf[0], t, 1u) >> 8u) * (1.0 / 16777216.0) * total;
            var cum = 0.0;
            for (var j = 0u; j < p.cols; j++) {
                let d = dist[row + j];
                if (labels_b[j] != la && d < p.nonzero_loss_cutoff) {
                    cum += exp(log_weight(d) - mx);
                    chosen = j;
                    if (cum > goal) {
                        break;
                    }
                }
            }
        } else if (negatives > 0u) {
            var r = hash3(seed_buf[0], t, 2u) % negatives;
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
