// contrastive_loss: the contrastive loss (Hadsell et al. 2006) on a distance matrix, and its gradient.
// Per anchor row i of A (labels la) against the rows j of B (labels lb): positives lb[j] == la[i] (the
// diagonal j == i left out when exclude_diagonal == 1), negatives lb[j] != la[i]; with P_i positives and
// N_i negatives,
//   terms[i] = scale / rows * ( 1/P_i sum_pos d_ij^2 + 1/N_i sum_neg max(0, margin - d_ij)^2 )
//   grad[i, j] = scale / rows * ( 2 d_ij / P_i  |  -2 max(0, margin - d_ij) / N_i  |  0 (excluded) )
// (an empty set contributes 0). The loss is sum_i terms[i] (reduce_sum).
// Gradient convention: `=` (grad overwritten) when accumulate == 0, `+=` when accumulate == 1.
// One invocation per row: a counting pass, then a pass writing the row's gradient.
//   dist, grad [rows, cols]; labels_a [rows]; labels_b [cols]; terms [rows].

struct Params {
    rows: u32, cols: u32, margin: f32, scale: f32,
    exclude_diagonal: u32, accumulate: u32, _pad0: u32, _pad1: u32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dist: array<f32>;
@group(0) @binding(2) var<storage, read> labels_a: array<u32>;
@group(0) @binding(3) var<storage, read> labels_b: array<u32>;
@group(0) @binding(4) var<storage, read_write> terms: array<f32>;
@group(0) @binding(5) var<storage, read_write> grad: array<f32>;

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.rows) {
        return;
    }
    let la = labels_a[i];
    var n_pos = 0u;
    var n_neg = 0u;
    for (var j = 0u; j < p.cols; j++) {
        let same = labels_b[j] == la;
        n_pos += select(0u, 1u, same && !(p.exclude_diagonal == 1u && i == j));
        n_neg += select(0u, 1u, !same);
    }
    let s = p.scale / f32(p.rows);
    let s_pos = s / f32(max(n_pos, 1u));
    let s_neg = s / f32(max(n_neg, 1u));
    var term_pos = 0.0;
    var term_neg = 0.0;
    for (var j = 0u; j < p.cols; j++) {
        let e = i * p.cols + j;
        let d = dist[e];
        let same = labels_b[j] == la;
        var g = 0.0;
        if (same) {
            if (!(p.exclude_diagonal == 1u && i == j)) {
                term_pos = fma(d, d, term_pos);
                g = 2.0 * s_pos * d;
            }
        } else {
            let h = max(p.margin - d, 0.0);
            term_neg = fma(h, h, term_neg);
            g = -2.0 * s_neg * h;
        }
        grad[e] = select(g, grad[e] + g, p.accumulate == 1u);
    }
    terms[i] = s_pos * term_pos + s_neg * term_neg;
}
