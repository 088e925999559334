// proxy_nca_loss: ProxyNCA (Movshovitz-Attias et al., "No Fuss Distance Metric Learning using Proxies",
// ICCV 2017) on the distances dist [rows, classes] from each embedding to every class proxy, and its
// gradient. With y = labels[i] and temperature T:
//   terms[i] = scale / rows * ( d_iy / T + log sum_{z != y} exp(-d_iz / T) )
//            = scale / rows * -log( exp(-d_iy/T) / sum_{z != y} exp(-d_iz/T) )
//   grad[i, y] = scale / (rows T);   grad[i, z] = -scale / (rows T) * softmax_{z != y}(-d_iz / T)
// (log-sum-exp with the row maximum subtracted). A row whose label is >= classes gets 0 (term and row).
// The loss is sum_i terms[i] (reduce_sum); the gradients to x and to the proxies follow through
// pairwise_distance_backward. Needs classes >= 2 (the host checks).
// Gradient convention: `=` (grad overwritten) when accumulate == 0, `+=` when accumulate == 1.
// One invocation per row: max, sum and write passes over the classes.

struct Params {
    rows: u32, classes: u32, temperature: f32, scale: f32,
    accumulate: u32, _pad0: u32, _pad1: u32, _pad2: u32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dist: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> terms: array<f32>;
@group(0) @binding(4) var<storage, read_write> grad: array<f32>;

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.rows) {
        return;
    }
    let y = labels[i];
    let base = i * p.classes;
    let s = p.scale / f32(p.rows);
    if (y >= p.classes) {
        terms[i] = 0.0;
        if (p.accumulate == 0u) {
            for (var z = 0u; z < p.classes; z++) {
                grad[base + z] = 0.0;
            }
        }
        return;
    }
    var mx = -3.4e38;
    for (var z = 0u; z < p.classes; z++) {
        if (z != y) {
            mx = max(mx, -dist[base + z] / p.temperature);
        }
    }
    var sum = 0.0;
    for (var z = 0u; z < p.classes; z++) {
        if (z != y) {
            sum += exp(-dist[base + z] / p.temperature - mx);
        }
    }
    terms[i] = s * (dist[base + y] / p.temperature + mx + log(sum));
    let g_neg = -s / p.temperature / sum;
    for (var z = 0u; z < p.classes; z++) {
        let g = select(g_neg * exp(-dist[base + z] / p.temperature - mx), s / p.temperature, z == y);
        grad[base + z] = select(g, grad[base + z] + g, p.accumulate == 1u);
    }
}
