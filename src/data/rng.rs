//! xorshift64*: a small deterministic generator for weight initialisation, synthetic data and tests
//! (reproducible across platforms, no dependency).

use crate::runtime::HostTensor;

#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    /// A tensor of uniform values in [-1, 1).
    pub fn tensor(&mut self, shape: [usize; 4]) -> HostTensor {
        let n = shape.iter().product();
        HostTensor { shape, data: (0..n).map(|_| self.uniform()).collect() }
    }
}
