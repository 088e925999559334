//! CPU references of the element-wise kernels (`crate::ops::elementwise`): LeakyReLU and its backward,
//! crop / channel-slice copy and channel concatenation.

use crate::host::{HostTensor, Tensor64};

/// CPU reference of [`leaky_relu_backward`](crate::ops::elementwise::leaky_relu_backward) over whole tensors.
pub fn leaky_relu_backward_cpu(out: &HostTensor, grad: &HostTensor, slope: f32) -> HostTensor {
    let data = out.data.iter().zip(&grad.data).map(|(&y, &g)| if y > 0.0 { g } else { g * slope }).collect();
    HostTensor { shape: grad.shape, data }
}

/// CPU reference LeakyReLU.
pub fn leaky_relu_cpu(t: &HostTensor, slope: f32) -> HostTensor {
    let data = t.data.iter().map(|&v| if v > 0.0 { v } else { v * slope }).collect();
    HostTensor { shape: t.shape, data }
}

/// CPU reference crop: the `h` x `w` window of `src` at (y0, x0).
pub fn crop_cpu(src: &HostTensor, y0: usize, x0: usize, h: usize, w: usize) -> HostTensor {
    let [n, c, _, _] = src.shape;
    let mut out = HostTensor::zeros([n, c, h, w]);
    for b in 0..n {
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    let i = out.idx(b, ch, y, x);
                    out.data[i] = src.at(b, ch, y + y0, x + x0);
                }
            }
        }
    }
    out
}

/// CPU reference channel concatenation (all parts share N, H, W).
pub fn concat_cpu(parts: &[&HostTensor]) -> HostTensor {
    let [n, _, h, w] = parts[0].shape;
    let c: usize = parts.iter().map(|p| p.shape[1]).sum();
    let mut out = HostTensor::zeros([n, c, h, w]);
    let plane = h * w;
    for b in 0..n {
        let mut off = 0;
        for p in parts {
            let pc = p.shape[1];
            let src = &p.data[b * pc * plane..(b + 1) * pc * plane];
            out.data[(b * c + off) * plane..(b * c + off + pc) * plane].copy_from_slice(src);
            off += pc;
        }
    }
    out
}

/// The fused LeakyReLU in f64 (slope `None`: identity).
pub fn leaky_relu_f64(mut t: Tensor64, slope: Option<f32>) -> Tensor64 {
    if let Some(s) = slope {
        t.data.iter_mut().for_each(|v| {
            if *v < 0.0 {
                *v *= s as f64
            }
        });
    }
    t
}

/// LeakyReLU backward in f64 from the pre-activation: dz = dy where z > 0, slope dy elsewhere (PyTorch).
pub fn leaky_relu_backward_f64(z: &Tensor64, dy: &Tensor64, slope: f64) -> Tensor64 {
    let data = z.data.iter().zip(&dy.data).map(|(&zv, &g)| if zv > 0.0 { g } else { g * slope }).collect();
    Tensor64 { shape: dy.shape, data }
}
