//! The training log: one CSV row every few steps (loss, learning rate, throughput, cumulative wall and CPU
//! time, and the model's validation columns on the rows where validation ran: FlowNet's EPEs, the
//! descriptor's recall and matching accuracy; [`LogSchema`]), and a PNG of the curves.
//!
//! A resumed run reopens its log, drops any rows written after the checkpoint it resumes from (they belong
//! to steps that will be trained again) and continues it; wall and CPU time keep accumulating across runs,
//! so the last row gives the total training cost.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::validate::ValidationReport;
use crate::plot::{stack, Chart, Series};
use crate::{Error, Result};

/// The real datasets that get their own columns in FlowNet's log.
pub const REAL_COLUMNS: [&str; 3] = ["middlebury", "sintel_clean", "sintel_final"];

/// The columns every log starts with.
const FIXED: &str = "step,wall_s,cpu_s,lr,loss,samples_per_s,gen_samples_per_s,data_wait_s";

/// A log's validation columns (after the fixed ones), which of them chooses the best checkpoint, and how the
/// curves are drawn: one log format for every model ([`LogSchema::flownet`], the descriptor's).
#[derive(Clone, Debug, PartialEq)]
pub struct LogSchema {
    /// Names of the validation columns, in order.
    pub columns: Vec<String>,
    /// The column that chooses the best checkpoint, and whether higher values are better.
    pub best: usize,
    pub higher_is_better: bool,
    /// Y label of the loss chart.
    pub loss_label: String,
    /// Title and y label of the validation chart.
    pub val_title: String,
    pub val_label: String,
    /// The columns drawn on the validation chart: (column, legend, colour).
    pub plotted: Vec<(usize, String, [u8; 3])>,
}

impl LogSchema {
    /// FlowNet's: the held-out synthetic EPE (chooses the best, lower is better), the real datasets' EPE and
    /// their zero-flow EPE.
    pub fn flownet() -> Self {
        let mut columns = vec!["val_synthetic".to_string()];
        columns.extend(REAL_COLUMNS.iter().map(|d| format!("val_{d}")));
        columns.extend(REAL_COLUMNS.iter().map(|d| format!("zero_{d}")));
        LogSchema {
            columns,
            best: 0,
            higher_is_better: false,
            loss_label: "MULTISCALE LOSS".into(),
            val_title: "VALIDATION EPE (FULL RESOLUTION)".into(),
            val_label: "EPE (PX)".into(),
            plotted: vec![
                (0, "synthetic (held out)".into(), [0, 0, 0]),
                (1, "middlebury".into(), [30, 90, 220]),
                (2, "sintel clean".into(), [20, 160, 60]),
                (3, "sintel final".into(), [230, 120, 20]),
            ],
        }
    }

    fn header(&self) -> String {
        let mut h = FIXED.to_string();
        for c in &self.columns {
            h.push(',');
            h.push_str(c);
        }
        h
    }

    /// Whether `a` is better than `b` on the best column.
    pub fn better(&self, a: f64, b: f64) -> bool {
        if self.higher_is_better {
            a > b
        } else {
            a < b
        }
    }
}

impl ValidationReport {
    /// The report as the values of [`LogSchema::flownet`]'s columns (NaN where a dataset is absent).
    pub fn columns(&self) -> Vec<f64> {
        let mut val = vec![f64::NAN; 1 + 2 * REAL_COLUMNS.len()];
        val[0] = self.synthetic_epe;
        for (d, epe, z, _) in &self.real {
            if let Some(i) = REAL_COLUMNS.iter().position(|c| c == d) {
                val[1 + i] = *epe;
                val[1 + REAL_COLUMNS.len() + i] = *z;
            }
        }
        val
    }
}

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
    /// The validation columns' values on a row where validation ran (NaN for a value not measured), else
    /// empty.
    pub validation: Vec<f64>,
}

/// A row as read back: the validation columns as numbers (NaN where empty).
#[derive(Clone, Debug, PartialEq)]
pub struct LoggedRow {
    pub step: u64,
    pub wall_s: f64,
    pub cpu_s: f64,
    pub loss: f64,
    /// Every validation column of the schema.
    pub val: Vec<f64>,
}

/// An open training log.
pub struct TrainLog {
    path: PathBuf,
    schema: LogSchema,
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
    fn to_csv(&self, schema: &LogSchema) -> String {
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
        cols.extend((0..schema.columns.len()).map(|i| field(self.validation.get(i).copied().unwrap_or(f64::NAN))));
        cols.join(",")
    }
}

fn parse_row(line: &str, path: &Path, n: usize, schema: &LogSchema) -> Result<LoggedRow> {
    let cols: Vec<&str> = line.split(',').collect();
    let bad = || Error::format(path, format!("line {n}: not a corrflow training log row: {line:?}"));
    if cols.len() != 8 + schema.columns.len() {
        return Err(bad());
    }
    let num = |s: &str| if s.is_empty() { Ok(f64::NAN) } else { s.parse::<f64>().map_err(|_| bad()) };
    Ok(LoggedRow {
        step: cols[0].parse().map_err(|_| bad())?,
        wall_s: num(cols[1])?,
        cpu_s: num(cols[2])?,
        loss: num(cols[4])?,
        val: cols[8..].iter().map(|c| num(c)).collect::<Result<_>>()?,
    })
}

impl TrainLog {
    /// Opens FlowNet's log at `path` ([`LogSchema::flownet`]; see [`TrainLog::open_with`]).
    pub fn open(path: &Path, resume_at: Option<u64>) -> Result<TrainLog> {
        Self::open_with(path, resume_at, LogSchema::flownet())
    }

    /// Opens the log at `path` with `schema`'s columns: a new one (replacing any file there) when
    /// `resume_at` is `None`, else the existing rows up to step `resume_at` (a missing file starts a new
    /// log; a file of another schema is refused).
    pub fn open_with(path: &Path, resume_at: Option<u64>, schema: LogSchema) -> Result<TrainLog> {
        let header = schema.header();
        let mut rows = Vec::new();
        if let (Some(at), true) = (resume_at, path.exists()) {
            let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
            let mut lines = text.lines();
            if lines.next() != Some(header.as_str()) {
                return Err(Error::format(
                    path,
                    "not a corrflow training log (unexpected header); move it away to start a new one",
                ));
            }
            for (n, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                let row = parse_row(line, path, n + 2, &schema)?;
                if row.step <= at {
                    rows.push((row, line.to_string()));
                }
            }
            let kept: Vec<String> = rows.iter().map(|(_, l)| l.clone()).collect();
            crate::io::write_atomic(
                path,
                format!("{header}\n{}", kept.iter().map(|l| format!("{l}\n")).collect::<String>()).as_bytes(),
            )?;
        } else {
            crate::io::write_atomic(path, format!("{header}\n").as_bytes())?;
        }
        Ok(TrainLog { path: path.to_path_buf(), schema, rows: rows.into_iter().map(|(r, _)| r).collect() })
    }

    /// Appends a row (to the file and the in-memory copy).
    pub fn append(&mut self, row: &TrainRow) -> Result<()> {
        let mut f = std::fs::OpenOptions::new().append(true).open(&self.path).map_err(|e| Error::io(&self.path, e))?;
        let line = row.to_csv(&self.schema);
        writeln!(f, "{line}").map_err(|e| Error::io(&self.path, e))?;
        self.rows.push(parse_row(&line, &self.path, self.rows.len() + 2, &self.schema)?);
        Ok(())
    }

    pub fn rows(&self) -> &[LoggedRow] {
        &self.rows
    }

    pub fn schema(&self) -> &LogSchema {
        &self.schema
    }

    /// The best value of the schema's best column logged so far (FlowNet: the lowest synthetic EPE).
    pub fn best(&self) -> Option<f64> {
        let values = self.rows.iter().filter_map(|r| r.val.get(self.schema.best).copied()).filter(|v| v.is_finite());
        values.reduce(|a, b| if self.schema.better(b, a) { b } else { a })
    }

    /// (wall, CPU) seconds of the last row: the cost of the run so far.
    pub fn totals(&self) -> (f64, f64) {
        self.rows.last().map_or((0.0, 0.0), |r| (r.wall_s.max(0.0), r.cpu_s.max(0.0)))
    }

    /// Writes the curves: training loss (log scale, raw and smoothed) and validation EPE against steps.
    pub fn plot(&self, path: &Path) -> Result<()> {
        let img = plot_rows(&self.rows, &self.schema);
        let mut png = Vec::new();
        image::DynamicImage::ImageRgb8(img)
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .map_err(|e| Error::Image { path: path.to_path_buf(), message: format!("cannot encode PNG: {e}") })?;
        crate::io::write_atomic(path, &png)
    }
}

/// The two charts of a log, stacked: the training loss (log scale, raw and smoothed) and the schema's
/// plotted validation columns against steps.
pub fn plot_rows(rows: &[LoggedRow], schema: &LogSchema) -> image::RgbImage {
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
        y_label: schema.loss_label.clone(),
        log_y: true,
        series: vec![
            Series { name: "per row".into(), colour: [190, 190, 190], points: loss, markers: false },
            Series { name: "smoothed".into(), colour: [20, 20, 20], points: smooth, markers: false },
        ],
    };
    let series = schema
        .plotted
        .iter()
        .map(|(i, name, colour)| Series {
            name: name.clone(),
            colour: *colour,
            points: rows
                .iter()
                .filter_map(|r| r.val.get(*i).filter(|v| v.is_finite()).map(|&v| (r.step as f64, v)))
                .collect(),
            markers: true,
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    let val_chart = Chart {
        title: schema.val_title.clone(),
        x_label: "STEP".into(),
        y_label: schema.val_label.clone(),
        log_y: false,
        series,
    };
    stack(&[loss_chart.render(900, 320), val_chart.render(900, 360)])
}
