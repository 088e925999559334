//! The training log: one CSV row every few steps (loss, learning rate, throughput, cumulative wall and CPU
//! time, and the validation EPEs on the rows where validation ran), and a PNG of the curves.
//!
//! A resumed run reopens its log, drops any rows written after the checkpoint it resumes from (they belong
//! to steps that will be trained again) and continues it; wall and CPU time keep accumulating across runs,
//! so the last row gives the total training cost.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::validate::ValidationReport;
use crate::plot::{stack, Chart, Series};
use crate::{Error, Result};

/// The real datasets that get their own columns.
pub const REAL_COLUMNS: [&str; 3] = ["middlebury", "sintel_clean", "sintel_final"];

const HEADER: &str = "step,wall_s,cpu_s,lr,loss,samples_per_s,gen_samples_per_s,data_wait_s,val_synthetic,val_middlebury,val_sintel_clean,val_sintel_final,zero_middlebury,zero_sintel_clean,zero_sintel_final";

/// One row.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainRow {
    pub step: u64,
    /// Cumulative training wall time, seconds.
    pub wall_s: f64,
    /// Cumulative CPU time of the training processes (all threads), seconds.
    pub cpu_s: f64,
    pub lr: f64,
    /// Mean loss over the steps since the previous row.
    pub loss: f64,
    /// Training samples per second since the previous row.
    pub samples_per_s: f64,
    /// The data generator's samples per second of its own busy time.
    pub gen_samples_per_s: f64,
    /// Total time the trainer waited for data, seconds.
    pub data_wait_s: f64,
    pub validation: Option<ValidationReport>,
}

/// A row as read back: the validation columns as numbers (NaN where empty).
#[derive(Clone, Debug, PartialEq)]
pub struct LoggedRow {
    pub step: u64,
    pub wall_s: f64,
    pub cpu_s: f64,
    pub loss: f64,
    /// val_synthetic, val_middlebury, val_sintel_clean, val_sintel_final.
    pub val: [f64; 4],
}

/// An open training log.
pub struct TrainLog {
    path: PathBuf,
    rows: Vec<LoggedRow>,
}

fn field(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.6}")
    } else {
        String::new()
    }
}

impl TrainRow {
    fn to_csv(&self) -> String {
        let mut val = [f64::NAN; 4];
        let mut zero = [f64::NAN; 3];
        if let Some(v) = &self.validation {
            val[0] = v.synthetic_epe;
            for (d, epe, z, _) in &v.real {
                if let Some(i) = REAL_COLUMNS.iter().position(|c| c == d) {
                    val[1 + i] = *epe;
                    zero[i] = *z;
                }
            }
        }
        let mut cols = vec![
            self.step.to_string(),
            format!("{:.1}", self.wall_s),
            format!("{:.1}", self.cpu_s),
            format!("{:.3e}", self.lr),
            field(self.loss),
            format!("{:.3}", self.samples_per_s),
            format!("{:.3}", self.gen_samples_per_s),
            format!("{:.1}", self.data_wait_s),
        ];
        cols.extend(val.iter().map(|&v| field(v)));
        cols.extend(zero.iter().map(|&v| field(v)));
        cols.join(",")
    }

    fn logged(&self) -> Result<LoggedRow> {
        parse_row(&self.to_csv(), Path::new("(row)"), 0)
    }
}

fn parse_row(line: &str, path: &Path, n: usize) -> Result<LoggedRow> {
    let cols: Vec<&str> = line.split(',').collect();
    let bad = || Error::format(path, format!("line {n}: not a corrflow training log row: {line:?}"));
    if cols.len() < 12 {
        return Err(bad());
    }
    let num = |s: &str| if s.is_empty() { Ok(f64::NAN) } else { s.parse::<f64>().map_err(|_| bad()) };
    Ok(LoggedRow {
        step: cols[0].parse().map_err(|_| bad())?,
        wall_s: num(cols[1])?,
        cpu_s: num(cols[2])?,
        loss: num(cols[4])?,
        val: [num(cols[8])?, num(cols[9])?, num(cols[10])?, num(cols[11])?],
    })
}

impl TrainLog {
    /// Opens the log at `path`: a new one (replacing any file there) when `resume_at` is `None`, else the
    /// existing rows up to step `resume_at` (a missing file starts a new log).
    pub fn open(path: &Path, resume_at: Option<u64>) -> Result<TrainLog> {
        let mut rows = Vec::new();
        if let (Some(at), true) = (resume_at, path.exists()) {
            let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
            let mut lines = text.lines();
            if lines.next() != Some(HEADER) {
                return Err(Error::format(
                    path,
                    "not a corrflow training log (unexpected header); move it away to start a new one",
                ));
            }
            for (n, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                let row = parse_row(line, path, n + 2)?;
                if row.step <= at {
                    rows.push((row, line.to_string()));
                }
            }
            let kept: Vec<String> = rows.iter().map(|(_, l)| l.clone()).collect();
            crate::io::write_atomic(
                path,
                format!("{HEADER}\n{}", kept.iter().map(|l| format!("{l}\n")).collect::<String>()).as_bytes(),
            )?;
        } else {
            crate::io::write_atomic(path, format!("{HEADER}\n").as_bytes())?;
        }
        Ok(TrainLog { path: path.to_path_buf(), rows: rows.into_iter().map(|(r, _)| r).collect() })
    }

    /// Appends a row (to the file and the in-memory copy).
    pub fn append(&mut self, row: &TrainRow) -> Result<()> {
        let mut f = std::fs::OpenOptions::new().append(true).open(&self.path).map_err(|e| Error::io(&self.path, e))?;
        writeln!(f, "{}", row.to_csv()).map_err(|e| Error::io(&self.path, e))?;
        self.rows.push(row.logged()?);
        Ok(())
    }

    pub fn rows(&self) -> &[LoggedRow] {
        &self.rows
    }

    /// The lowest synthetic validation EPE logged so far.
    pub fn best_synthetic(&self) -> Option<f64> {
        self.rows.iter().map(|r| r.val[0]).filter(|v| v.is_finite()).min_by(f64::total_cmp)
    }

    /// (wall, CPU) seconds of the last row: the cost of the run so far.
    pub fn totals(&self) -> (f64, f64) {
        self.rows.last().map_or((0.0, 0.0), |r| (r.wall_s.max(0.0), r.cpu_s.max(0.0)))
    }

    /// Writes the curves: training loss (log scale, raw and smoothed) and validation EPE against steps.
    pub fn plot(&self, path: &Path) -> Result<()> {
        let img = plot_rows(&self.rows);
        let mut png = Vec::new();
        image::DynamicImage::ImageRgb8(img)
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .map_err(|e| Error::Image { path: path.to_path_buf(), message: format!("cannot encode PNG: {e}") })?;
        crate::io::write_atomic(path, &png)
    }
}

/// The two charts of a log, stacked.
pub fn plot_rows(rows: &[LoggedRow]) -> image::RgbImage {
    let loss: Vec<(f64, f64)> = rows.iter().map(|r| (r.step as f64, r.loss)).collect();
    let mut smooth = Vec::new();
    let mut ema: Option<f64> = None;
    for &(x, y) in &loss {
        if y.is_finite() {
            let e = ema.map_or(y, |e| 0.9 * e + 0.1 * y);
            ema = Some(e);
            smooth.push((x, e));
        }
    }
    let loss_chart = Chart {
        title: "TRAINING LOSS".into(),
        x_label: "STEP".into(),
        y_label: "MULTISCALE LOSS".into(),
        log_y: true,
        series: vec![
            Series { name: "per row".into(), colour: [190, 190, 190], points: loss, markers: false },
            Series { name: "smoothed".into(), colour: [20, 20, 20], points: smooth, markers: false },
        ],
    };
    let names = ["synthetic (held out)", "middlebury", "sintel clean", "sintel final"];
    let colours = [[0, 0, 0], [30, 90, 220], [20, 160, 60], [230, 120, 20]];
    let series = (0..4)
        .map(|i| Series {
            name: names[i].into(),
            colour: colours[i],
            points: rows.iter().filter(|r| r.val[i].is_finite()).map(|r| (r.step as f64, r.val[i])).collect(),
            markers: true,
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    let val_chart = Chart {
        title: "VALIDATION EPE (FULL RESOLUTION)".into(),
        x_label: "STEP".into(),
        y_label: "EPE (PX)".into(),
        log_y: false,
        series,
    };
    stack(&[loss_chart.render(900, 320), val_chart.render(900, 360)])
}
