// mutual_matches: mutual nearest neighbours passing Lowe's ratio test, from the two nn_top2 results
// (final stage: distances). Row i of A matches row j = a_best[i] of B when b_best[j] == i (mutual) and
// d1 < ratio * d2 (d1, d2 the distances from i to its nearest and second-nearest B rows). Writes
// match_index[i] = j or NO_INDEX, and match_ratio[i] = d1 / d2 for every row (1 when d2 == 0), the
// score to rank matches by (smaller is more distinctive). One invocation per row of A.

struct Params {
    rows_a: u32, rows_b: u32, ratio: f32, _pad0: u32,
}

const NO_INDEX: u32 = 0xffffffffu;

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a_best: array<u32>;
@group(0) @binding(2) var<storage, read> a_best_dist: array<f32>;
@group(0) @binding(3) var<storage, read> a_second_dist: array<f32>;
@group(0) @binding(4) var<storage, read> b_best: array<u32>;
@group(0) @binding(5) var<storage, read_write> match_index: array<u32>;
@group(0) @binding(6) var<storage, read_write> match_ratio: array<f32>;

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.rows_a) {
        return;
    }
    let j = a_best[i];
    let d1 = a_best_dist[i];
    let d2 = a_second_dist[i];
    let mutual = j < p.rows_b && b_best[min(j, p.rows_b - 1u)] == i;
    match_index[i] = select(NO_INDEX, j, mutual && d1 < p.ratio * d2);
    match_ratio[i] = select(1.0, d1 / d2, d2 > 0.0);
}
