// lib/hash: the random draws of the mining kernels, put in front of each kernel that names it in the
// registry (`src/runtime/kernels.rs`, at compile time). PCG hash of Jarzynski & Olano 2020 (JCGT 9(3)):
//   hash3(seed, index, stream) = pcg(pcg(pcg(seed) + index) + stream)
// with wrapping u32 arithmetic; the CPU twin is `reference::metric::mining::hash_u32`.

fn pcg(v: u32) -> u32 {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

fn hash3(seed: u32, index: u32, stream: u32) -> u32 {
    return pcg(pcg(pcg(seed) + index) + stream);
}

