// mine_hardest_negatives: the hardest negative in the batch (HardNet, Mishchuk et al. 2017) for every
// triplet slot with anchor a = triplets[t].x and positive p = triplets[t].y:
//   row: the nearest row j of B with labels_b[j] != labels_a[a] -> negative cell (a, j);
//   symmetric == 1 (and p valid): also the nearest row r of A with labels_a[r] != labels_b[p], i.e. the
//   hardest negative of the positive within its column -> cell (r, p), taken when strictly nearer than
//   the row one (HardNet's min(min over the row, min over the column)).
// Ties go to the lowest index. (a, NO_INDEX) when there is no candidate. One invocation per slot.
//   dist [rows, cols]; labels_a [rows]; labels_b [cols]; triplets [triplets].

struct Params {
    rows: u32, cols: u32, triplets: u32, symmetric: u32,
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
    var cell = vec2<u32>(a, NO_INDEX);
    if (a < p.rows) {
        let la = labels_a[a];
        var best = 0.0;
        for (var j = 0u; j < p.cols; j++) {
            let d = dist[a * p.cols + j];
            if (labels_b[j] != la && (cell.y == NO_INDEX || d < best)) {
                cell.y = j;
                best = d;
            }
        }
        if (p.symmetric == 1u && pos < p.cols) {
            let lp = labels_b[pos];
            var col_best = NO_INDEX;
            var col_d = 0.0;
            for (var r = 0u; r < p.rows; r++) {
                let d = dist[r * p.cols + pos];
                if (labels_a[r] != lp && (col_best == NO_INDEX || d < col_d)) {
                    col_best = r;
                    col_d = d;
                }
            }
            if (col_best != NO_INDEX && (cell.y == NO_INDEX || col_d < best)) {
                cell = vec2<u32>(col_best, pos);
            }
        }
    }
    triplets[t].z = cell.x;
    triplets[t].w = cell.y;
}
