//! CPU reference of the FlowNetC correlation layer (Caffe's CorrelationLayer semantics, the definition of
//! `shaders/correlation_forward_naive.wgsl`), forward and backward w.r.t. both inputs, in f64. The GPU
//! kernels are in `crate::ops::correlation`.

use crate::error::{Error, Result};
use crate::host::HostTensor;

/// Parameters of a correlation layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CorrelationSpec {
    pub pad: usize,
    /// Odd patch size (1 in FlowNetC).
    pub kernel_size: usize,
    pub max_displacement: usize,
    /// Step between output positions in the first input.
    pub stride1: usize,
    /// Step between displacements in the second input.
    pub stride2: usize,
}

impl CorrelationSpec {
    /// FlowNetC's layer: pad 20, kernel 1, max displacement 20, stride1 1, stride2 2 (441 channels).
    pub const FLOWNETC: CorrelationSpec =
        CorrelationSpec { pad: 20, kernel_size: 1, max_displacement: 20, stride1: 1, stride2: 2 };

    /// max_displacement / stride2.
    pub fn grid_radius(&self) -> usize {
        self.max_displacement / self.stride2.max(1)
    }
    pub fn grid_width(&self) -> usize {
        2 * self.grid_radius() + 1
    }
    /// Number of output channels, grid_width^2.
    pub fn displacements(&self) -> usize {
        self.grid_width() * self.grid_width()
    }

    /// Checks the parameters and returns (out_h, out_w) for an h x w input.
    pub fn output_size(&self, h: usize, w: usize) -> Result<(usize, usize)> {
        let op = "correlation";
        if self.kernel_size == 0 || self.kernel_size.is_multiple_of(2) {
            return Err(Error::InvalidParam {
                op,
                message: format!("kernel_size must be odd and >= 1, got {}", self.kernel_size),
            });
        }
        if self.stride1 == 0 || self.stride2 == 0 {
            return Err(Error::InvalidParam { op, message: "stride1 and stride2 must be >= 1".into() });
        }
        let border = self.max_displacement + (self.kernel_size - 1) / 2;
        let (ph, pw) = (h + 2 * self.pad, w + 2 * self.pad);
        if ph <= 2 * border || pw <= 2 * border {
            return Err(Error::InvalidParam {
                op,
                message: format!(
                    "input {h}x{w} with pad {} is too small for max_displacement {} and kernel_size {}: increase pad to at least {}",
                    self.pad, self.max_displacement, self.kernel_size, border
                ),
            });
        }
        Ok(((ph - 2 * border).div_ceil(self.stride1), (pw - 2 * border).div_ceil(self.stride1)))
    }
}

/// CPU reference correlation in f64 on flat NCHW data of shape `shape` (the definition of
/// `correlation_forward_naive.wgsl`); returns [N, D, out_h, out_w] flat.
pub fn correlation_cpu_f64(shape: [usize; 4], a: &[f64], b: &[f64], spec: CorrelationSpec) -> Result<Vec<f64>> {
    let [n, c, h, w] = shape;
    let (oh, ow) = spec.output_size(h, w)?;
    let numel = n * c * h * w;
    if a.len() != numel || b.len() != numel {
        return Err(Error::Shape {
            op: "correlation_cpu_f64",
            message: format!("shape {shape:?} holds {numel} values, got {} and {}", a.len(), b.len()),
        });
    }
    let d_count = spec.displacements();
    let mut out = vec![0.0; n * d_count * oh * ow];
    for_each_term(shape, spec, |bb, ch, ia, ib, d, oy, ox| {
        out[((bb * d_count + d) * oh + oy) * ow + ox] += a[idx(shape, bb, ch, ia)] * b[idx(shape, bb, ch, ib)];
    })?;
    let norm = (spec.kernel_size * spec.kernel_size * c) as f64;
    out.iter_mut().for_each(|v| *v /= norm);
    Ok(out)
}

/// CPU reference backward in f64 (a scatter over the forward's terms, independent of the GPU gathers):
/// returns (grad_a, grad_b) for `g`, the gradient of the output [N, D, out_h, out_w] before any LeakyReLU.
pub fn correlation_backward_cpu_f64(
    shape: [usize; 4],
    a: &[f64],
    b: &[f64],
    g: &[f64],
    spec: CorrelationSpec,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let [n, c, h, w] = shape;
    let (oh, ow) = spec.output_size(h, w)?;
    let numel = n * c * h * w;
    let d_count = spec.displacements();
    if a.len() != numel || b.len() != numel || g.len() != n * d_count * oh * ow {
        return Err(Error::Shape {
            op: "correlation_backward_cpu_f64",
            message: format!("inputs do not match shape {shape:?} and its output"),
        });
    }
    let norm = (spec.kernel_size * spec.kernel_size * c) as f64;
    let mut ga = vec![0.0; numel];
    let mut gb = vec![0.0; numel];
    for_each_term(shape, spec, |bb, ch, ia, ib, d, oy, ox| {
        let gv = g[((bb * d_count + d) * oh + oy) * ow + ox] / norm;
        ga[idx(shape, bb, ch, ia)] += gv * b[idx(shape, bb, ch, ib)];
        gb[idx(shape, bb, ch, ib)] += gv * a[idx(shape, bb, ch, ia)];
    })?;
    Ok((ga, gb))
}

/// The f32 wrapper of [`correlation_backward_cpu_f64`]: (grad_a, grad_b) as host tensors.
pub fn correlation_backward_cpu(
    a: &HostTensor,
    b: &HostTensor,
    grad_out: &HostTensor,
    spec: CorrelationSpec,
) -> Result<(HostTensor, HostTensor)> {
    if a.shape != b.shape {
        return Err(Error::Shape {
            op: "correlation_backward_cpu",
            message: format!("inputs differ: {:?} vs {:?}", a.shape, b.shape),
        });
    }
    let f = |t: &HostTensor| t.data.iter().map(|&v| v as f64).collect::<Vec<f64>>();
    let (ga, gb) = correlation_backward_cpu_f64(a.shape, &f(a), &f(b), &f(grad_out), spec)?;
    let back = |v: Vec<f64>| HostTensor::new(a.shape, v.into_iter().map(|x| x as f32).collect());
    Ok((back(ga)?, back(gb)?))
}

fn idx(shape: [usize; 4], n: usize, c: usize, (y, x): (usize, usize)) -> usize {
    ((n * shape[1] + c) * shape[2] + y) * shape[3] + x
}

/// Calls `f(n, c, a_pixel, b_pixel, d, oy, ox)` for every product term of the correlation whose two pixels
/// are inside the image (terms reading the zero padding contribute nothing).
#[allow(clippy::type_complexity)]
fn for_each_term(
    shape: [usize; 4],
    spec: CorrelationSpec,
    mut f: impl FnMut(usize, usize, (usize, usize), (usize, usize), usize, usize, usize),
) -> Result<()> {
    let [n, c, h, w] = shape;
    let (oh, ow) = spec.output_size(h, w)?;
    let r = spec.grid_radius() as i64;
    let gw = spec.grid_width();
    let (s1, s2, ks) = (spec.stride1 as i64, spec.stride2 as i64, spec.kernel_size as i64);
    let origin = spec.max_displacement as i64 - spec.pad as i64;
    let inside = |y: i64, x: i64| y >= 0 && x >= 0 && y < h as i64 && x < w as i64;
    for bb in 0..n {
        for oy in 0..oh {
            for ox in 0..ow {
                let (y1, x1) = (oy as i64 * s1 + origin, ox as i64 * s1 + origin);
                for p in -r..=r {
                    for q in -r..=r {
                        let d = (p + r) as usize * gw + (q + r) as usize;
                        for j in 0..ks {
                            for i in 0..ks {
                                let (ya, xa) = (y1 + j, x1 + i);
                                let (yb, xb) = (ya + p * s2, xa + q * s2);
                                if !inside(ya, xa) || !inside(yb, xb) {
                                    continue;
                                }
                                let pa = (ya as usize, xa as usize);
                                let pb = (yb as usize, xb as usize);
                                for ch in 0..c {
                                    f(bb, ch, pa, pb, d, oy, ox);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// CPU reference correlation on f32 tensors: a, b [N, C, H, W] -> [N, D, out_h, out_w], computed in f64 by
/// [`correlation_cpu_f64`].
pub fn correlation_cpu(a: &HostTensor, b: &HostTensor, spec: CorrelationSpec) -> Result<HostTensor> {
    if a.shape != b.shape {
        return Err(Error::Shape {
            op: "correlation_cpu",
            message: format!("inputs differ: {:?} vs {:?}", a.shape, b.shape),
        });
    }
    let [n, _, h, w] = a.shape;
    let (oh, ow) = spec.output_size(h, w)?;
    let f64s = |t: &HostTensor| t.data.iter().map(|&v| v as f64).collect::<Vec<f64>>();
    let out = correlation_cpu_f64(a.shape, &f64s(a), &f64s(b), spec)?;
    HostTensor::new([n, spec.displacements(), oh, ow], out.into_iter().map(|v| v as f32).collect())
}
