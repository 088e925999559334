// nn_top2: for every query row, its nearest and second-nearest database rows, by dot product (the rows are
// L2-normalised descriptors, so the largest dot product is the smallest distance), over the database rows
// x_begin .. x_end of one dispatch. The host runs one dispatch per tile of database rows, carrying the
// running state (best index, best dot, second dot) per query row in the output buffers, so nothing of size
// queries x database is ever stored: the memory is the inputs plus 12 bytes per query row.
// Order: a larger dot first; ties to the lower index (each invocation scans its rows in increasing order,
// and merges compare (dot, index) lexicographically).
// stage bit 0 (merge): combine with the state stored by the previous tile; bit 1 (final): write distances
//   d = sqrt(max(0, 2 - 2 dot)) instead of dot products (NO_DISTANCE = f32 max where there is no row).
// Each invocation owns 4 query rows and walks the tile 4 database rows at a time, a 4 x 4 block of dot
// products over dim4 vec4 loads of each side (8 vec4 loads per 64 FMAs).
//   q [rows_q, 4 dim4], x [rows_x, 4 dim4] as vec4s; best_index (u32), best_score, second_score [rows_q];
//   database index reported = row + index_offset (for databases split over several buffers).

struct Params {
    rows_q: u32, rows_x: u32, dim4: u32, x_begin: u32,
    x_end: u32, index_offset: u32, stage: u32, _pad0: u32,
}

const NO_INDEX: u32 = 0xffffffffu;
const NO_DISTANCE: f32 = 3.40282347e+38;
const NO_SCORE: f32 = -3.40282347e+38;

override WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> best_index: array<u32>;
@group(0) @binding(4) var<storage, read_write> best_score: array<f32>;
@group(0) @binding(5) var<storage, read_write> second_score: array<f32>;

fn to_distance(s: f32) -> f32 {
    return select(sqrt(max(2.0 - 2.0 * s, 0.0)), NO_DISTANCE, s == NO_SCORE);
}

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let tid = gid.x + gid.y * nwg.x * WG;
    let q0 = tid * 4u;
    if (q0 >= p.rows_q) {
        return;
    }
    // Query rows past the end repeat the last row (valid memory) and are not written.
    var qbase: vec4<u32>;
    for (var r = 0u; r < 4u; r++) {
        qbase[r] = min(q0 + r, p.rows_q - 1u) * p.dim4;
    }
    var b1 = vec4<f32>(NO_SCORE);
    var s2 = vec4<f32>(NO_SCORE);
    var i1 = vec4<u32>(NO_INDEX);
    for (var j0 = p.x_begin; j0 < p.x_end; j0 += 4u) {
        let last = p.x_end - 1u;
        let xb0 = min(j0, last) * p.dim4;
        let xb1 = min(j0 + 1u, last) * p.dim4;
        let xb2 = min(j0 + 2u, last) * p.dim4;
        let xb3 = min(j0 + 3u, last) * p.dim4;
        var acc0 = vec4<f32>(0.0);
        var acc1 = vec4<f32>(0.0);
        var acc2 = vec4<f32>(0.0);
        var acc3 = vec4<f32>(0.0);
        for (var k = 0u; k < p.dim4; k++) {
            let xm = mat4x4<f32>(x[xb0 + k], x[xb1 + k], x[xb2 + k], x[xb3 + k]);
            acc0 += q[qbase.x + k] * xm;
            acc1 += q[qbase.y + k] * xm;
            acc2 += q[qbase.z + k] * xm;
            acc3 += q[qbase.w + k] * xm;
        }
        let dots = mat4x4<f32>(acc0, acc1, acc2, acc3);
        for (var s = 0u; s < 4u; s++) {
            let j = j0 + s;
            if (j >= p.x_end) {
                break;
            }
            let v = vec4<f32>(dots[0][s], dots[1][s], dots[2][s], dots[3][s]);
            let better = v > b1;
            s2 = select(max(s2, v), b1, better);
            b1 = select(b1, v, better);
            i1 = select(i1, vec4<u32>(j + p.index_offset), better);
        }
    }
    for (var r = 0u; r < 4u; r++) {
        let row = q0 + r;
        if (row >= p.rows_q) {
            break;
        }
        var best = b1[r];
        var second = s2[r];
        var index = i1[r];
        if ((p.stage & 1u) == 1u) {
            let old_best = best_score[row];
            let old_index = best_index[row];
            let old_second = second_score[row];
            let old_wins = old_best > best || (old_best == best && old_index < index);
            second = max(max(second, old_second), select(old_best, best, old_wins));
            best = select(best, old_best, old_wins);
            index = select(index, old_index, old_wins);
        }
        if ((p.stage & 2u) == 2u) {
            best = to_distance(best);
            second = to_distance(second);
        }
        best_index[row] = index;
        best_score[row] = best;
        second_score[row] = second;
    }
}
