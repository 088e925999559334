// nn_top2_subgroup: nn_top2.wgsl (the same contract, parameters and results) for adapters with subgroups
// of at least 8 lanes. On llvmpipe a storage load costs about 10 FMAs per lane even when every lane reads
// the same address, and in nn_top2 every lane loads the same database rows. Here the database rows are
// walked 8 at a time: lane l loads the vec4 of row j0 + l % 8 and the 8 rows reach every lane by
// subgroupShuffle, so per vec4 step a lane makes 4 query loads + 1 database load for 128 FMAs
// (nn_top2: 8 loads for 64). Each invocation owns 4 query rows (clamped past the end, never written);
// control flow stays uniform up to the shuffles (no early return).

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
fn main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let tid = gid.x + gid.y * nwg.x * WG;
    let q0 = tid * 4u;
    var qbase: vec4<u32>;
    for (var r = 0u; r < 4u; r++) {
        qbase[r] = min(q0 + r, p.rows_q - 1u) * p.dim4;
    }
    var b1 = vec4<f32>(NO_SCORE);
    var s2 = vec4<f32>(NO_SCORE);
    var i1 = vec4<u32>(NO_INDEX);
    let last = p.x_end - 1u;
    for (var j0 = p.x_begin; j0 < p.x_end; j0 += 8u) {
        let xb = min(j0 + lane % 8u, last) * p.dim4;
        var acc: array<vec4<f32>, 8>;
        for (var k = 0u; k < p.dim4; k++) {
            let qm = mat4x4<f32>(q[qbase.x + k], q[qbase.y + k], q[qbase.z + k], q[qbase.w + k]);
            let mine = x[xb + k];
            for (var s = 0u; s < 8u; s++) {
                acc[s] += subgroupShuffle(mine, s) * qm;
            }
        }
        for (var s = 0u; s < 8u; s++) {
            let j = j0 + s;
            if (j < p.x_end) {
                let v = acc[s];
                let better = v > b1;
                s2 = select(max(s2, v), b1, better);
                b1 = select(b1, v, better);
                i1 = select(i1, vec4<u32>(j + p.index_offset), better);
            }
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
