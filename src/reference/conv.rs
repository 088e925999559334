//! CPU references of conv2d and conv_transpose2d, forward and backward, in f64 (PyTorch layouts and
//! semantics: cross-correlation, zero padding, weights [cout, cin, kh, kw] for conv2d and
//! [cin, cout, kh, kw] for conv_transpose2d), with the fused LeakyReLU of the GPU kernels
//! (`crate::ops::conv`). The f32 wrappers ([`conv2d_cpu`], [`conv_transpose2d_cpu`]) round once at the end.

use crate::host::{HostTensor, Tensor64};

/// Geometry and epilogue of one convolution.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConvSpec {
    pub stride: usize,
    pub pad: usize,
    /// Fused LeakyReLU with this negative slope.
    pub leaky: Option<f32>,
}

impl ConvSpec {
    /// Output size of a conv2d along one axis: (n + 2 pad - k) / stride + 1.
    pub fn conv_out(&self, n: usize, k: usize) -> Option<usize> {
        (n + 2 * self.pad).checked_sub(k).map(|v| v / self.stride + 1)
    }
    /// Full output size of a conv_transpose2d along one axis: (n - 1) stride - 2 pad + k.
    pub fn transposed_out(&self, n: usize, k: usize) -> Option<usize> {
        ((n.max(1) - 1) * self.stride + k).checked_sub(2 * self.pad)
    }
}

/// Calls `f(oy, ox, iy, ix, ky, kx)` for every tap of a conv2d (out[oy] gathers in[oy s - pad + ky]) that
/// lands inside the input; the transposed conv uses the same pairs with input and output exchanged.
fn for_each_tap(
    out_hw: (usize, usize),
    in_hw: (usize, usize),
    k: (usize, usize),
    stride: usize,
    pad: usize,
    mut f: impl FnMut(usize, usize, usize, usize, usize, usize),
) {
    for oy in 0..out_hw.0 {
        for ky in 0..k.0 {
            let iy = (oy * stride + ky) as isize - pad as isize;
            if iy < 0 || iy >= in_hw.0 as isize {
                continue;
            }
            for ox in 0..out_hw.1 {
                for kx in 0..k.1 {
                    let ix = (ox * stride + kx) as isize - pad as isize;
                    if ix < 0 || ix >= in_hw.1 as isize {
                        continue;
                    }
                    f(oy, ox, iy as usize, ix as usize, ky, kx);
                }
            }
        }
    }
}

/// conv2d forward in f64: x [N, cin, H, W], w [cout, cin, kh, kw], no activation.
pub fn conv2d_f64(x: &Tensor64, w: &Tensor64, bias: Option<&[f64]>, stride: usize, pad: usize) -> Tensor64 {
    let [n, cin, h, wd] = x.shape;
    let [cout, _, kh, kw] = w.shape;
    let oh = (h + 2 * pad).saturating_sub(kh) / stride + 1;
    let ow = (wd + 2 * pad).saturating_sub(kw) / stride + 1;
    let mut y = Tensor64::zeros([n, cout, oh, ow]);
    for b in 0..n {
        for co in 0..cout {
            let bv = bias.map_or(0.0, |bb| bb[co]);
            for oy in 0..oh {
                for ox in 0..ow {
                    let i = y.idx(b, co, oy, ox);
                    y.data[i] = bv;
                }
            }
            for ci in 0..cin {
                for_each_tap((oh, ow), (h, wd), (kh, kw), stride, pad, |oy, ox, iy, ix, ky, kx| {
                    let i = y.idx(b, co, oy, ox);
                    y.data[i] += x.data[x.idx(b, ci, iy, ix)] * w.data[w.idx(co, ci, ky, kx)];
                });
            }
        }
    }
    y
}

/// Backward of [`conv2d_f64`]: (dx, dw, db) for the output gradient dy.
pub fn conv2d_backward_f64(
    x: &Tensor64,
    w: &Tensor64,
    dy: &Tensor64,
    stride: usize,
    pad: usize,
) -> (Tensor64, Tensor64, Vec<f64>) {
    let [n, cin, h, wd] = x.shape;
    let [cout, _, kh, kw] = w.shape;
    let [_, _, oh, ow] = dy.shape;
    let mut dx = Tensor64::zeros(x.shape);
    let mut dw = Tensor64::zeros(w.shape);
    let mut db = vec![0.0; cout];
    for b in 0..n {
        for (co, db) in db.iter_mut().enumerate() {
            let start = dy.idx(b, co, 0, 0);
            *db += dy.data[start..start + oh * ow].iter().sum::<f64>();
            for ci in 0..cin {
                for_each_tap((oh, ow), (h, wd), (kh, kw), stride, pad, |oy, ox, iy, ix, ky, kx| {
                    let g = dy.data[dy.idx(b, co, oy, ox)];
                    let (xi, wi) = (x.idx(b, ci, iy, ix), w.idx(co, ci, ky, kx));
                    dx.data[xi] += g * w.data[wi];
                    dw.data[wi] += g * x.data[xi];
                });
            }
        }
    }
    (dx, dw, db)
}

/// conv_transpose2d forward in f64: x [N, cin, H, W], w [cin, cout, kh, kw]; the output is the top-left
/// `out_hw` window of the full (H - 1) stride - 2 pad + k size (FlowNet's crop).
pub fn conv_transpose2d_f64(
    x: &Tensor64,
    w: &Tensor64,
    bias: Option<&[f64]>,
    stride: usize,
    pad: usize,
    out_hw: (usize, usize),
) -> Tensor64 {
    let [n, cin, h, wd] = x.shape;
    let [_, cout, kh, kw] = w.shape;
    let mut y = Tensor64::zeros([n, cout, out_hw.0, out_hw.1]);
    for b in 0..n {
        for co in 0..cout {
            let bv = bias.map_or(0.0, |bb| bb[co]);
            let start = y.idx(b, co, 0, 0);
            for v in &mut y.data[start..start + out_hw.0 * out_hw.1] {
                *v = bv;
            }
            for ci in 0..cin {
                // y[iy s - pad + ky] += x[iy] w: the conv2d tap relation with y as the gathered-from side.
                for_each_tap((h, wd), out_hw, (kh, kw), stride, pad, |iy, ix, oy, ox, ky, kx| {
                    let i = y.idx(b, co, oy, ox);
                    y.data[i] += x.data[x.idx(b, ci, iy, ix)] * w.data[w.idx(ci, co, ky, kx)];
                });
            }
        }
    }
    y
}

/// Backward of [`conv_transpose2d_f64`]: (dx, dw, db) for the (cropped) output gradient dy.
pub fn conv_transpose2d_backward_f64(
    x: &Tensor64,
    w: &Tensor64,
    dy: &Tensor64,
    stride: usize,
    pad: usize,
) -> (Tensor64, Tensor64, Vec<f64>) {
    let [n, cin, h, wd] = x.shape;
    let [_, cout, kh, kw] = w.shape;
    let [_, _, oh, ow] = dy.shape;
    let mut dx = Tensor64::zeros(x.shape);
    let mut dw = Tensor64::zeros(w.shape);
    let mut db = vec![0.0; cout];
    for b in 0..n {
        for (co, db) in db.iter_mut().enumerate() {
            let start = dy.idx(b, co, 0, 0);
            *db += dy.data[start..start + oh * ow].iter().sum::<f64>();
            for ci in 0..cin {
                for_each_tap((h, wd), (oh, ow), (kh, kw), stride, pad, |iy, ix, oy, ox, ky, kx| {
                    let g = dy.data[dy.idx(b, co, oy, ox)];
                    let (xi, wi) = (x.idx(b, ci, iy, ix), w.idx(ci, co, ky, kx));
                    dx.data[xi] += g * w.data[wi];
                    dw.data[wi] += g * x.data[xi];
                });
            }
        }
    }
    (dx, dw, db)
}

/// CPU reference conv2d on f32 tensors: x [N, cin, H, W], w [cout, cin, kh, kw]; computed in f64 by
/// [`conv2d_f64`], then rounded, with the fused LeakyReLU applied as the kernels do.
pub fn conv2d_cpu(x: &HostTensor, w: &HostTensor, bias: Option<&[f32]>, spec: ConvSpec) -> HostTensor {
    let bias64: Option<Vec<f64>> = bias.map(|b| b.iter().map(|&v| v as f64).collect());
    let y = conv2d_f64(&Tensor64::from_f32(x), &Tensor64::from_f32(w), bias64.as_deref(), spec.stride, spec.pad);
    apply_leaky(y.to_f32(), spec.leaky)
}

/// CPU reference conv_transpose2d on f32 tensors: x [N, cin, H, W], w [cin, cout, kh, kw]; output cropped
/// to `out_hw` (top-left) when given, else the full (H - 1) stride - 2 pad + k size. Computed in f64 by
/// [`conv_transpose2d_f64`].
pub fn conv_transpose2d_cpu(
    x: &HostTensor,
    w: &HostTensor,
    bias: Option<&[f32]>,
    spec: ConvSpec,
    out_hw: Option<(usize, usize)>,
) -> HostTensor {
    let [_, _, h, wd] = x.shape;
    let [_, _, kh, kw] = w.shape;
    let full = (spec.transposed_out(h, kh).unwrap_or(0), spec.transposed_out(wd, kw).unwrap_or(0));
    let bias64: Option<Vec<f64>> = bias.map(|b| b.iter().map(|&v| v as f64).collect());
    let y = conv_transpose2d_f64(
        &Tensor64::from_f32(x),
        &Tensor64::from_f32(w),
        bias64.as_deref(),
        spec.stride,
        spec.pad,
        out_hw.unwrap_or(full),
    );
    apply_leaky(y.to_f32(), spec.leaky)
}

fn apply_leaky(mut t: HostTensor, slope: Option<f32>) -> HostTensor {
    t.data.iter_mut().for_each(|v| *v = leaky(*v, slope));
    t
}

fn leaky(v: f32, slope: Option<f32>) -> f32 {
    match slope {
        Some(s) if v < 0.0 => v * s,
        _ => v,
    }
}
