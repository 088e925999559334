// nearest_classes: the neighbour table of hierarchical class-aware sampling computed on the GPU: for every
// class c, the `per_class` classes nearest to it by the distance matrix between class means (row c of
// dist [classes, classes]), nearest first, ties to the lower class id, leaving out c itself and classes
// without rows (counts[o] == 0); NO_INDEX-padded when fewer exist. A class without rows gets an all-NO_INDEX
// row. What `ClassTree::neighbour_table` computes on the host, without the download, so that a recorded
// training step can rebuild it from each batch's embeddings (mine_class_negatives reads it).
//   dist [classes * classes]; counts [classes]; neighbours [classes * per_class]. One invocation per class.

struct Params {
    classes: u32, per_class: u32, _pad0: u32, _pad1: u32,
}

const NO_INDEX: u32 = 0xffffffffu;
// Largest per_class the host accepts (ops::metric::MAX_NEIGHBOURS).
const MAX_K: u32 = 32u;

override WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dist: array<f32>;
@group(0) @binding(2) var<storage, read> counts: array<u32>;
@group(0) @binding(3) var<storage, read_write> neighbours: array<u32>;

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let c = gid.x + gid.y * nwg.x * WG;
    if (c >= p.classes) {
        return;
    }
    var best_d: array<f32, MAX_K>;
    var best_i: array<u32, MAX_K>;
    var n = 0u;
    if (counts[c] > 0u) {
        for (var o = 0u; o < p.classes; o++) {
            if (o == c || counts[o] == 0u) {
                continue;
            }
            let d = dist[c * p.classes + o];
            // Classes arrive in increasing id: an equal distance never displaces an earlier class.
            if (n == p.per_class && !(d < best_d[n - 1u])) {
                continue;
            }
            var q = select(n, n - 1u, n == p.per_class);
            while (q > 0u && d < best_d[q - 1u]) {
                best_d[q] = best_d[q - 1u];
                best_i[q] = best_i[q - 1u];
                q--;
            }
            best_d[q] = d;
            best_i[q] = o;
            n = min(n + 1u, p.per_class);
        }
    }
    for (var q = 0u; q < p.per_class; q++) {
        neighbours[c * p.per_class + q] = select(NO_INDEX, best_i[q], q < n);
    }
}
