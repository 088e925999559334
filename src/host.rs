//! Tensors on the CPU, with no GPU in sight: [`HostTensor`] (f32, what is uploaded and downloaded) and
//! [`Tensor64`] (f64, the precision of the CPU references in [`crate::reference`] and of finite-difference
//! gradient checks). Both are 4-D, NCHW, row-major.

use crate::error::{Error, Result};

/// A 4-D f32 tensor on the CPU, NCHW, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    pub shape: [usize; 4],
    pub data: Vec<f32>,
}

impl HostTensor {
    pub fn zeros(shape: [usize; 4]) -> Self {
        HostTensor { shape, data: vec![0.0; shape.iter().product()] }
    }
    pub fn new(shape: [usize; 4], data: Vec<f32>) -> Result<Self> {
        let n: usize = shape.iter().product();
        if data.len() != n {
            return Err(Error::Shape {
                op: "HostTensor::new",
                message: format!("shape {shape:?} holds {n} values, got {}", data.len()),
            });
        }
        Ok(HostTensor { shape, data })
    }
    pub fn numel(&self) -> usize {
        self.data.len()
    }
    /// Flat index of (n, c, y, x).
    #[inline]
    pub fn idx(&self, n: usize, c: usize, y: usize, x: usize) -> usize {
        ((n * self.shape[1] + c) * self.shape[2] + y) * self.shape[3] + x
    }
    #[inline]
    pub fn at(&self, n: usize, c: usize, y: usize, x: usize) -> f32 {
        self.data[self.idx(n, c, y, x)]
    }
}

/// A 4-D f64 tensor on the CPU, NCHW: the precision of the references and finite-difference checks.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor64 {
    pub shape: [usize; 4],
    pub data: Vec<f64>,
}

impl Tensor64 {
    pub fn zeros(shape: [usize; 4]) -> Self {
        Tensor64 { shape, data: vec![0.0; shape.iter().product()] }
    }
    pub fn new(shape: [usize; 4], data: Vec<f64>) -> Result<Self> {
        let n: usize = shape.iter().product();
        if data.len() != n {
            return Err(Error::Shape {
                op: "Tensor64::new",
                message: format!("shape {shape:?} holds {n} values, got {}", data.len()),
            });
        }
        Ok(Tensor64 { shape, data })
    }
    pub fn numel(&self) -> usize {
        self.data.len()
    }
    #[inline]
    pub fn idx(&self, n: usize, c: usize, y: usize, x: usize) -> usize {
        ((n * self.shape[1] + c) * self.shape[2] + y) * self.shape[3] + x
    }
    pub fn from_f32(t: &HostTensor) -> Self {
        Tensor64 { shape: t.shape, data: t.data.iter().map(|&v| v as f64).collect() }
    }
    pub fn to_f32(&self) -> HostTensor {
        HostTensor { shape: self.shape, data: self.data.iter().map(|&v| v as f32).collect() }
    }
    /// Channels `c0 .. c0 + channels` (a copy).
    pub fn channels(&self, c0: usize, channels: usize) -> Tensor64 {
        let [n, c, h, w] = self.shape;
        let plane = h * w;
        let mut out = Tensor64::zeros([n, channels, h, w]);
        for b in 0..n {
            let src = &self.data[(b * c + c0) * plane..(b * c + c0 + channels) * plane];
            out.data[b * channels * plane..(b + 1) * channels * plane].copy_from_slice(src);
        }
        out
    }
    /// Adds `other` element-wise (same shape).
    pub fn add_assign(&mut self, other: &Tensor64) -> Result<()> {
        if self.shape != other.shape {
            return Err(Error::Shape {
                op: "Tensor64::add_assign",
                message: format!("{:?} += {:?}", self.shape, other.shape),
            });
        }
        self.data.iter_mut().zip(&other.data).for_each(|(a, b)| *a += b);
        Ok(())
    }
}
