// mine_semihard_negatives: semi-hard negatives (FaceNet, Schroff et al. 2015) for every triplet slot with
// anchor a = triplets[t].x and positive p = triplets[t].y: among the rows j of B with
// labels_b[j] != labels_a[a] and d(a,p) < d(a,j) < d(a,p) + margin (the upper end computed in f32), the
// nearest; when there is none, or p is out of range, the hardest negative (the nearest of another class).
// Ties go to the lowest index. Writes the negative cell (a, j), or (a, NO_INDEX) without any negative.
// One invocation per slot.
//   dist [rows, cols]; labels_a [rows]; labels_b [cols]; triplets [triplets].

struct Params {
    rows: u32, cols: u32, triplets: u32, margin: f32,
}

const NO_INDEX: u32 = 0xffffffffu;

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dist: array<f32>;
@group(0) @binding(2) var<storage, read> labels_a: array<u32>;
@group(0) @binding(3) var<storage, read> labels_b: array<u32>;
@group(0) @binding(4) var<storage, read_write> triplets: array<vec4<u32>>;

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = gid.x + gid.y * nwg.x * WG;
    if (t >= p.triplets) {
        return;
    }
    let a = triplets[t].x;
    let pos = triplets[t].y;
    var semi = NO_INDEX;
    var hard = NO_INDEX;
    if (a < p.rows) {
        let la = labels_a[a];
        let has_pos = pos < p.cols;
        let d_ap = select(0.0, dist[a * p.cols + min(pos, p.cols - 1u)], has_pos);
        let hi = d_ap + p.margin;
        var semi_d = 0.0;
        var hard_d = 0.0;
        for (var j = 0u; j < p.cols; j++) {
            if (labels_b[j] == la) {
                continue;
            }
            let d = dist[a * p.cols + j];
            if (hard == NO_INDEX || d < hard_d) {
                hard = j;
                hard_d = d;
            }
            if (has_pos && d > d_ap && d < hi && (semi == NO_INDEX || d < semi_d)) {
                semi = j;
                semi_d = d;
            }
        }
    }
    triplets[t].z = a;
    triplets[t].w = select(semi, hard, semi == NO_INDEX);
}
