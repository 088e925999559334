//! A synthetic demo pair with exact ground truth, generated at run time (no dataset is embedded): a
//! textured scene of smooth blobs and stripes, and the same scene after a known smooth motion (a small
//! rotation and zoom about the centre plus a translation). Used by `corrflow flow` when no frames are given.

use crate::flow::Flow;

/// Procedural texture, defined everywhere on the plane, so frame B can be sampled exactly.
fn texture(x: f64, y: f64) -> [f64; 3] {
    // Sums of oriented sinusoids at several scales and a few Gaussian blobs: rich gradients at every
    // scale, which is what block- and learning-based flow needs to lock on.
    let s1 = (0.071 * x + 0.043 * y).sin() * (0.052 * y - 0.031 * x).cos();
    let s2 = (0.19 * x - 0.11 * y).sin();
    let s3 = (0.013 * x * 0.9 + 0.017 * y).cos();
    let blob = |cx: f64, cy: f64, r: f64| (-((x - cx).powi(2) + (y - cy).powi(2)) / (2.0 * r * r)).exp();
    let b = blob(70.0, 60.0, 18.0) - blob(180.0, 120.0, 25.0) + 0.7 * blob(120.0, 40.0, 10.0);
    let r = 0.5 + 0.22 * s1 + 0.12 * s2 + 0.15 * b;
    let g = 0.5 + 0.2 * s3 - 0.1 * s2 + 0.2 * blob(200.0, 50.0, 20.0);
    let bl = 0.5 + 0.18 * s1 * s3 + 0.12 * (0.09 * (x + y)).sin() - 0.15 * b;
    [r, g, bl].map(|v| v.clamp(0.0, 1.0))
}

fn to_rgb(width: u32, height: u32, f: impl Fn(f64, f64) -> [f64; 3]) -> image::RgbImage {
    image::RgbImage::from_fn(width, height, |x, y| {
        let c = f(x as f64, y as f64);
        image::Rgb(c.map(|v| (v * 255.0).round() as u8))
    })
}

/// The demo pair (256 x 192) and its exact forward flow (frame A pixel p moves to p + flow(p) in B).
pub fn demo_pair() -> (image::RgbImage, image::RgbImage, Flow) {
    let (w, h) = (256u32, 192u32);
    let (cx, cy) = (w as f64 / 2.0, h as f64 / 2.0);
    let (angle, zoom, tx, ty) = (0.03f64, 1.03f64, 3.5f64, -2.0f64);
    let (c, s) = (angle.cos() * zoom, angle.sin() * zoom);
    // Forward motion M(p) = R*zoom*(p - centre) + centre + t.
    let forward = |x: f64, y: f64| (c * (x - cx) - s * (y - cy) + cx + tx, s * (x - cx) + c * (y - cy) + cy + ty);
    // Frame B at q shows the scene point M^{-1}(q).
    let det = c * c + s * s;
    let inverse = |x: f64, y: f64| {
        let (dx, dy) = (x - cx - tx, y - cy - ty);
        ((c * dx + s * dy) / det + cx, (-s * dx + c * dy) / det + cy)
    };
    let a = to_rgb(w, h, texture);
    let b = to_rgb(w, h, |x, y| {
        let (sx, sy) = inverse(x, y);
        texture(sx, sy)
    });
    let mut flow = Flow::zeros(w as usize, h as usize);
    for y in 0..h as usize {
        for x in 0..w as usize {
            let (mx, my) = forward(x as f64, y as f64);
            flow.set(x, y, (mx - x as f64) as f32, (my - y as f64) as f32);
        }
    }
    (a, b, flow)
}
