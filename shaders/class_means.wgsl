// class_means: the mean embedding of every class (for the class tree of hierarchical sampling, Ge et al.
// ECCV 2018), as a gather over rows per class: invocation (c, e) walks all rows and averages channel e of
// those labelled c:
//   means[c, e] = sum_{labels[i] == c} x[i, e] / count_c   (0 for a class without rows)
//   counts[c]   = count_c  (written by the e == 0 invocation)
// Labels >= classes are ignored. Work: classes * dim * rows label tests (a few hundred classes x a batch).
//   x [rows, dim]; labels [rows]; means [classes, dim]; counts [classes].

struct Params {
    rows: u32, dim: u32, classes: u32, _pad0: u32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> means: array<f32>;
@group(0) @binding(4) var<storage, read_write> counts: array<u32>;

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.classes * p.dim) {
        return;
    }
    let c = i / p.dim;
    let e = i % p.dim;
    var sum = 0.0;
    var count = 0u;
    for (var r = 0u; r < p.rows; r++) {
        if (labels[r] == c) {
            sum += x[r * p.dim + e];
            count += 1u;
        }
    }
    means[i] = select(0.0, sum / f32(count), count > 0u);
    if (e == 0u) {
        counts[c] = count;
    }
}
