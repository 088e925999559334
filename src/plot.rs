//! Small line charts rendered straight into an RGB image (no font files, no plotting dependency): axes with
//! "nice" ticks, linear or logarithmic y, several series with a legend, text in a built-in 5x7 pixel font.
//! Enough for training curves that people look at rather than read.

use image::{Rgb, RgbImage};

/// One named series of (x, y) points, drawn as a polyline (points with non-finite y are skipped).
#[derive(Clone, Debug)]
pub struct Series {
    pub name: String,
    pub colour: [u8; 3],
    pub points: Vec<(f64, f64)>,
    /// Draw a small square at every point (for sparse series such as validations).
    pub markers: bool,
}

/// A chart's axes and series.
#[derive(Clone, Debug)]
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub log_y: bool,
    pub series: Vec<Series>,
}

const WHITE: [u8; 3] = [255, 255, 255];
const BLACK: [u8; 3] = [0, 0, 0];
const GRID: [u8; 3] = [225, 225, 225];

/// 5x7 glyphs, one row per byte (low 5 bits, MSB left). Lower-case letters are drawn as upper case.
fn glyph(c: char) -> [u8; 7] {
    let rows: [&str; 7] = match c.to_ascii_uppercase() {
        '0' => ["01110", "10001", "10011", "10101", "11001", "10001", "01110"],
        '1' => ["00100", "01100", "00100", "00100", "00100", "00100", "01110"],
        '2' => ["01110", "10001", "00001", "00010", "00100", "01000", "11111"],
        '3' => ["11111", "00010", "00100", "00010", "00001", "10001", "01110"],
        '4' => ["00010", "00110", "01010", "10010", "11111", "00010", "00010"],
        '5' => ["11111", "10000", "11110", "00001", "00001", "10001", "01110"],
        '6' => ["00110", "01000", "10000", "11110", "10001", "10001", "01110"],
        '7' => ["11111", "00001", "00010", "00100", "01000", "01000", "01000"],
        '8' => ["01110", "10001", "10001", "01110", "10001", "10001", "01110"],
        '9' => ["01110", "10001", "10001", "01111", "00001", "00010", "01100"],
        'A' => ["01110", "10001", "10001", "11111", "10001", "10001", "10001"],
        'B' => ["11110", "10001", "10001", "11110", "10001", "10001", "11110"],
        'C' => ["01110", "10001", "10000", "10000", "10000", "10001", "01110"],
        'D' => ["11100", "10010", "10001", "10001", "10001", "10010", "11100"],
        'E' => ["11111", "10000", "10000", "11110", "10000", "10000", "11111"],
        'F' => ["11111", "10000", "10000", "11110", "10000", "10000", "10000"],
        'G' => ["01110", "10001", "10000", "10111", "10001", "10001", "01111"],
        'H' => ["10001", "10001", "10001", "11111", "10001", "10001", "10001"],
        'I' => ["01110", "00100", "00100", "00100", "00100", "00100", "01110"],
        'J' => ["00111", "00010", "00010", "00010", "00010", "10010", "01100"],
        'K' => ["10001", "10010", "10100", "11000", "10100", "10010", "10001"],
        'L' => ["10000", "10000", "10000", "10000", "10000", "10000", "11111"],
        'M' => ["10001", "11011", "10101", "10101", "10001", "10001", "10001"],
        'N' => ["10001", "10001", "11001", "10101", "10011", "10001", "10001"],
        'O' => ["01110", "10001", "10001", "10001", "10001", "10001", "01110"],
        'P' => ["11110", "10001", "10001", "11110", "10000", "10000", "10000"],
        'Q' => ["01110", "10001", "10001", "10001", "10101", "10010", "01101"],
        'R' => ["11110", "10001", "10001", "11110", "10100", "10010", "10001"],
        'S' => ["01111", "10000", "10000", "01110", "00001", "00001", "11110"],
        'T' => ["11111", "00100", "00100", "00100", "00100", "00100", "00100"],
        'U' => ["10001", "10001", "10001", "10001", "10001", "10001", "01110"],
        'V' => ["10001", "10001", "10001", "10001", "10001", "01010", "00100"],
        'W' => ["10001", "10001", "10001", "10101", "10101", "10101", "01010"],
        'X' => ["10001", "10001", "01010", "00100", "01010", "10001", "10001"],
        'Y' => ["10001", "10001", "10001", "01010", "00100", "00100", "00100"],
        'Z' => ["11111", "00001", "00010", "00100", "01000", "10000", "11111"],
        '.' => ["00000", "00000", "00000", "00000", "00000", "01100", "01100"],
        '-' => ["00000", "00000", "00000", "11111", "00000", "00000", "00000"],
        '+' => ["00000", "00100", "00100", "11111", "00100", "00100", "00000"],
        ':' => ["00000", "01100", "01100", "00000", "01100", "01100", "00000"],
        '(' => ["00010", "00100", "01000", "01000", "01000", "00100", "00010"],
        ')' => ["01000", "00100", "00010", "00010", "00010", "00100", "01000"],
        '/' => ["00000", "00001", "00010", "00100", "01000", "10000", "00000"],
        '=' => ["00000", "00000", "11111", "00000", "11111", "00000", "00000"],
        '_' => ["00000", "00000", "00000", "00000", "00000", "00000", "11111"],
        ',' => ["00000", "00000", "00000", "00000", "01100", "00100", "01000"],
        '%' => ["11000", "11001", "00010", "00100", "01000", "10011", "00011"],
        _ => ["00000"; 7],
    };
    rows.map(|r| u8::from_str_radix(r, 2).unwrap_or(0))
}

/// Draws `text` with its top-left corner at (x, y), `scale` pixels per font pixel.
pub fn draw_text(img: &mut RgbImage, x: i64, y: i64, text: &str, colour: [u8; 3], scale: i64) {
    for (i, c) in text.chars().enumerate() {
        let g = glyph(c);
        let x0 = x + i as i64 * 6 * scale;
        for (row, bits) in g.iter().enumerate() {
            for col in 0..5 {
                if bits & (1 << (4 - col)) != 0 {
                    for dy in 0..scale {
                        for dx in 0..scale {
                            put(img, x0 + col * scale + dx, y + row as i64 * scale + dy, colour);
                        }
                    }
                }
            }
        }
    }
}

/// Width of `text` in pixels at `scale`.
pub fn text_width(text: &str, scale: i64) -> i64 {
    text.chars().count() as i64 * 6 * scale
}

fn put(img: &mut RgbImage, x: i64, y: i64, c: [u8; 3]) {
    if x >= 0 && y >= 0 && (x as u32) < img.width() && (y as u32) < img.height() {
        img.put_pixel(x as u32, y as u32, Rgb(c));
    }
}

/// A line from (x0, y0) to (x1, y1), both ends drawn, `thick` pixels wide (Bresenham with a square pen),
/// clipped to the image.
pub fn line(img: &mut RgbImage, (x0, y0): (i64, i64), (x1, y1): (i64, i64), c: [u8; 3], thick: i64) {
    let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
    let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
    let (mut x, mut y, mut err) = (x0, y0, dx + dy);
    let half = thick / 2;
    loop {
        for ox in -half..thick - half {
            for oy in -half..thick - half {
                put(img, x + ox, y + oy, c);
            }
        }
        if x == x1 && y == y1 {
            break;
        }
        let e2 = 2 * err;
        if e2 >= dy {
            err += dy;
            x += sx;
        }
        if e2 <= dx {
            err += dx;
            y += sy;
        }
    }
}

/// About `n` round tick values covering [lo, hi] (steps of 1, 2 or 5 times a power of ten).
pub fn nice_ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo {
        return vec![lo];
    }
    let raw = (hi - lo) / n.max(1) as f64;
    let e = raw.log10().floor() as i32;
    let mag = 10f64.powi(e);
    let m = [1.0, 2.0, 5.0, 10.0].into_iter().find(|m| m * mag >= raw).unwrap_or(10.0);
    let step = m * mag;
    // k * m * 10^e, dividing by 10^-e for negative e so values such as 0.6 come out exact.
    let value = |k: f64| if e >= 0 { k * m * mag } else { k * m / 10f64.powi(-e) };
    let (first, last) = ((lo / step - 1e-9).ceil() as i64, (hi / step + 1e-9).floor() as i64);
    (first..=last).map(|k| value(k as f64)).collect()
}

/// A short label for a tick value.
fn tick_label(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        format!("{v:.0e}")
    } else if a >= 1000.0 {
        format!("{:.0}K", v / 1000.0).replace(".0K", "K")
    } else if a >= 10.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

impl Chart {
    /// Renders the chart into a `width x height` image.
    pub fn render(&self, width: u32, height: u32) -> RgbImage {
        let mut img = RgbImage::from_pixel(width, height, Rgb(WHITE));
        let (w, h) = (width as i64, height as i64);
        let (left, right, top, bottom) = (70i64, 16i64, 42i64, 44i64);
        let (pw, ph) = (w - left - right, h - top - bottom);
        draw_text(&mut img, left, 8, &self.title, BLACK, 2);
        let pts: Vec<(f64, f64)> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .filter(|&(x, y)| x.is_finite() && y.is_finite() && (!self.log_y || y > 0.0))
            .collect();
        if pts.is_empty() || pw < 20 || ph < 20 {
            draw_text(&mut img, left, top + 20, "NO DATA YET", BLACK, 2);
            return img;
        }
        let tr = |y: f64| if self.log_y { y.log10() } else { y };
        let (x0, mut x1) = pts.iter().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
        let (mut y0, mut y1) = pts.iter().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(tr(p.1)), b.max(tr(p.1))));
        if !self.log_y {
            y0 = y0.min(0.0);
        }
        if x1 <= x0 {
            x1 = x0 + 1.0;
        }
        if y1 <= y0 {
            y1 = y0 + 1.0;
        }
        let pad = 0.05 * (y1 - y0);
        y1 += pad;
        if self.log_y {
            y0 -= pad;
        }
        let px = |x: f64| left + ((x - x0) / (x1 - x0) * pw as f64).round() as i64;
        let py = |y: f64| top + ph - ((tr(y) - y0) / (y1 - y0) * ph as f64).round() as i64;
        // Grid and ticks.
        for t in nice_ticks(x0, x1, 6) {
            let x = px(t);
            line(&mut img, (x, top), (x, top + ph), GRID, 1);
            let label = tick_label(t);
            draw_text(&mut img, x - text_width(&label, 1) / 2, top + ph + 6, &label, BLACK, 1);
        }
        let yticks: Vec<f64> = if self.log_y {
            let (lo, hi) = (y0.floor() as i32, y1.ceil() as i32);
            let mut v = Vec::new();
            for e in lo..=hi {
                for m in [1.0, 2.0, 5.0] {
                    let t = m * 10f64.powi(e);
                    if tr(t) >= y0 && tr(t) <= y1 {
                        v.push(t);
                    }
                }
            }
            if v.len() < 3 {
                // Less than a decade: round values in between instead.
                v = nice_ticks(10f64.powf(y0), 10f64.powf(y1), 4).into_iter().filter(|&t| t > 0.0).collect();
            }
            v
        } else {
            nice_ticks(y0, y1, 5)
        };
        for t in yticks {
            let y = py(t);
            line(&mut img, (left, y), (left + pw, y), GRID, 1);
            let label = tick_label(t);
            draw_text(&mut img, left - 6 - text_width(&label, 1), y - 3, &label, BLACK, 1);
        }
        line(&mut img, (left, top), (left, top + ph), BLACK, 1);
        line(&mut img, (left, top + ph), (left + pw, top + ph), BLACK, 1);
        draw_text(&mut img, left + pw / 2 - text_width(&self.x_label, 1) / 2, top + ph + 20, &self.x_label, BLACK, 1);
        draw_text(&mut img, 4, top - 14, &self.y_label, BLACK, 1);
        // Series, then the legend on a white box over them (top right), so no line hides it.
        for s in &self.series {
            let mut prev: Option<(i64, i64)> = None;
            for &(x, y) in &s.points {
                if !(x.is_finite() && y.is_finite()) || (self.log_y && y <= 0.0) {
                    prev = None;
                    continue;
                }
                let p = (px(x), py(y));
                if let Some(q) = prev {
                    line(&mut img, q, p, s.colour, 2);
                }
                if s.markers {
                    for dx in -2..=2 {
                        for dy in -2..=2 {
                            put(&mut img, p.0 + dx, p.1 + dy, s.colour);
                        }
                    }
                }
                prev = Some(p);
            }
        }
        let named: Vec<&Series> = self.series.iter().filter(|s| !s.name.is_empty()).collect();
        if !named.is_empty() {
            let text = named.iter().map(|s| text_width(&s.name, 1)).max().unwrap_or(0);
            let (bw, bh) = (text + 34, 12 * named.len() as i64 + 6);
            let (bx, by) = (left + pw - bw - 4, top + 4);
            for y in by..by + bh {
                for x in bx..bx + bw {
                    put(&mut img, x, y, WHITE);
                }
            }
            for (i, s) in named.iter().enumerate() {
                let ly = by + 4 + 12 * i as i64;
                line(&mut img, (bx + 4, ly + 3), (bx + 22, ly + 3), s.colour, 3);
                draw_text(&mut img, bx + 28, ly, &s.name, BLACK, 1);
            }
        }
        img
    }
}

/// Stacks images vertically on a white background.
pub fn stack(images: &[RgbImage]) -> RgbImage {
    let w = images.iter().map(|i| i.width()).max().unwrap_or(1);
    let h = images.iter().map(|i| i.height()).sum::<u32>().max(1);
    let mut out = RgbImage::from_pixel(w, h, Rgb(WHITE));
    let mut y = 0;
    for img in images {
        image::imageops::overlay(&mut out, img, 0, y as i64);
        y += img.height();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(nice_ticks(0.0, 10.0, 5), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(nice_ticks(0.0, 1000.0, 4), vec![0.0, 500.0, 1000.0]);
        let t = nice_ticks(0.13, 0.91, 4);
        assert_eq!(t, vec![0.2, 0.4, 0.6, 0.8]);
    }

    #[test]
    fn chart_draws_its_series_colour() {
        let chart = Chart {
            title: "loss".into(),
            x_label: "step".into(),
            y_label: "epe".into(),
            log_y: true,
            series: vec![Series {
                name: "train".into(),
                colour: [200, 0, 0],
                points: (1..50).map(|i| (i as f64, 10.0 / i as f64)).collect(),
                markers: false,
            }],
        };
        let img = chart.render(400, 240);
        let red = img.pixels().filter(|p| p.0 == [200, 0, 0]).count();
        assert!(red > 200, "only {red} pixels of the series colour");
        // Text was drawn in black (title, ticks).
        assert!(img.pixels().filter(|p| p.0 == BLACK).count() > 100);
    }
}
