//! Small image filters shared by the data generators and the raw-patch descriptor: a separable Gaussian blur
//! and a bilinear sample, on `f32` planes.

/// Separable Gaussian blur (kernel truncated at 3 sigma, normalised), edges clamped, of one `w x h` plane stored
/// with `step` values between neighbouring pixels (1 for a planar channel, 3 for a channel of interleaved RGB:
/// pass the slice starting at that channel). Does nothing for `sigma <= 0`.
pub fn gaussian_blur(buf: &mut [f32], w: usize, h: usize, step: usize, sigma: f64) {
    if sigma <= 0.0 || w == 0 || h == 0 || step == 0 {
        return;
    }
    let radius = (3.0 * sigma).ceil() as isize;
    let kernel: Vec<f32> = (-radius..=radius).map(|i| (-(i * i) as f64 / (2.0 * sigma * sigma)).exp() as f32).collect();
    let norm: f32 = kernel.iter().sum();
    let kernel: Vec<f32> = kernel.iter().map(|k| k / norm).collect();
    let at = |x: usize, y: usize| step * (y * w + x);
    let mut tmp = vec![0.0f32; w * h];
    for y in 0..h {
        for x in 0..w {
            tmp[y * w + x] = kernel
                .iter()
                .enumerate()
                .map(|(k, &kv)| kv * buf[at((x as isize + k as isize - radius).clamp(0, w as isize - 1) as usize, y)])
                .sum();
        }
    }
    for y in 0..h {
        for x in 0..w {
            buf[at(x, y)] = kernel
                .iter()
                .enumerate()
                .map(|(k, &kv)| kv * tmp[(y as isize + k as isize - radius).clamp(0, h as isize - 1) as usize * w + x])
                .sum();
        }
    }
}

/// Bilinear sample of a `w x h` plane (row-major, `w, h >= 1`) at `(x, y)`, the border extended.
pub fn bilinear(plane: &[f32], w: usize, h: usize, x: f64, y: f64) -> f32 {
    let x = x.clamp(0.0, (w - 1) as f64);
    let y = y.clamp(0.0, (h - 1) as f64);
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (fx, fy) = ((x - x0 as f64) as f32, (y - y0 as f64) as f32);
    let top = plane[y0 * w + x0] * (1.0 - fx) + plane[y0 * w + x1] * fx;
    let bottom = plane[y1 * w + x0] * (1.0 - fx) + plane[y1 * w + x1] * fx;
    top * (1.0 - fy) + bottom * fy
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A blur keeps a constant plane constant and the sum of an impulse away from the borders; the strided
    /// form blurs one channel of interleaved data and leaves the others alone.
    #[test]
    fn blur_preserves_mass_and_respects_the_stride() {
        let (w, h) = (21, 15);
        let mut impulse = vec![0.0f32; w * h];
        impulse[7 * w + 10] = 1.0;
        gaussian_blur(&mut impulse, w, h, 1, 1.3);
        assert!((impulse.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert!(impulse[7 * w + 10] < 0.2 && impulse[7 * w + 11] > 0.05);
        let mut rgb: Vec<f32> = (0..3 * w * h).map(|i| if i % 3 == 1 { 0.5 } else { (i % 7) as f32 }).collect();
        let before = rgb.clone();
        gaussian_blur(&mut rgb[1..], w, h, 3, 2.0);
        for (i, (a, b)) in rgb.iter().zip(&before).enumerate() {
            if i % 3 == 1 {
                assert!((a - 0.5).abs() < 1e-6, "a constant channel changed at {i}");
            } else {
                assert_eq!(a, b, "channel {} was touched at {i}", i % 3);
            }
        }
    }

    #[test]
    fn bilinear_interpolates_and_extends_the_border() {
        let plane = [0.0, 1.0, 2.0, 3.0]; // 2 x 2
        assert_eq!(bilinear(&plane, 2, 2, 0.5, 0.5), 1.5);
        assert_eq!(bilinear(&plane, 2, 2, -3.0, 0.0), 0.0);
        assert_eq!(bilinear(&plane, 2, 2, 1.0, 9.0), 3.0);
    }
}
