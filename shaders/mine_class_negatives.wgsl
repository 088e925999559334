// mine_class_negatives: negatives from the anchor's nearest classes (the negative side of hierarchical
// class-aware sampling, Ge et al. ECCV 2018). For anchor a = triplets[t].x of class ca = labels_a[a], the
// eligible rows j of B are those whose class is in row ca of the neighbour table ([classes,
// per_class] class ids from the host's class tree, NO_INDEX-padded) and is not ca; the
// (hash(seed, t, 1) % E)-th of the E eligible rows (index order) is taken. When none is in the batch (or
// ca >= classes): a uniform negative of any other class, the (hash(seed, t, 2) % N_a)-th. Writes the
// negative cell (a, j), or (a, NO_INDEX) without any negative. One invocation per slot.
//   labels_a [rows]; labels_b [cols]; neighbours [classes * per_class]; triplets [triplets].
// The seed is seed_buf[0], a one-value buffer (ops::metric::SeedBuffer), so that a recorded program
// replayed every training step draws anew when the caller writes a new seed.

struct Params {
    rows: u32, cols: u32, triplets: u32, classes: u32,
    per_class: u32, _pad0: u32, _pad1: u32, _pad2: u32,
}

const NO_INDEX: u32 = 0xffffffffu;

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> labels_a: array<u32>;
@group(0) @binding(2) var<storage, read> labels_b: array<u32>;
@group(0) @binding(3) var<storage, read> neighbours: array<u32>;
@group(0) @binding(4) var<storage, read_write> triplets: array<vec4<u32>>;
@group(0) @binding(5) var<storage, read> seed_buf: array<u32>;

// Whether class cb is one of class ca's listed neighbours (and not ca itself).
fn near(ca: u32, cb: u32) -> bool {
    if (ca >= p.classes || cb == ca) {
        return false;
    }
    for (var q = 0u; q < p.per_class; q++) {
        if (neighbours[ca * p.per_class + q] == cb) {
            return true;
        }
    }
    return false;
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
        let ca = labels_a[a];
        var eligible = 0u;
        var negatives = 0u;
        for (var j = 0u; j < p.cols; j++) {
            let cb = labels_b[j];
            eligible += select(0u, 1u, near(ca, cb));
            negatives += select(0u, 1u, cb != ca);
        }
        // The eligible rows when there are any, else every negative.
        let use_near = eligible > 0u;
        let n = select(negatives, eligible, use_near);
        if (n > 0u) {
            var r = hash3(seed_buf[0], t, select(2u, 1u, use_near)) % n;
            for (var j = 0u; j < p.cols; j++) {
                let cb = labels_b[j];
                if (select(cb != ca, near(ca, cb), use_near)) {
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
