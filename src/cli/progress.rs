//! The progress display of the training commands: a bar with the step, a message and the ETA on a terminal;
//! plain lines when stdout is not one (a log file, a pipe), where a hidden bar would drop its output; and the
//! clock of their log rows.

use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use super::cpu_seconds;

pub(crate) struct Progress {
    bar: ProgressBar,
    on_terminal: bool,
}

impl Progress {
    /// A bar to step `total`, starting at `position` (a resumed run's step).
    pub(crate) fn new(total: u64, position: u64) -> Self {
        let bar = ProgressBar::new(total);
        bar.set_position(position);
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} ETA {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let on_terminal = !bar.is_hidden();
        Progress { bar, on_terminal }
    }

    /// A line that is always shown: above the bar on a terminal, a plain line otherwise.
    pub(crate) fn note(&self, text: impl std::fmt::Display) {
        if self.on_terminal {
            self.bar.println(text.to_string());
        } else {
            say!("{text}");
        }
    }

    /// A line only for logs (the bar shows the same on a terminal).
    pub(crate) fn log(&self, text: impl std::fmt::Display) {
        if !self.on_terminal {
            say!("{text}");
        }
    }

    /// Moves the bar to `step` with `message` beside it.
    pub(crate) fn update(&self, step: u64, message: String) {
        self.bar.set_position(step);
        self.bar.set_message(message);
    }

    pub(crate) fn finish(&self) {
        self.bar.finish();
    }
}

/// The bookkeeping of a training loop's log rows: the losses since the last row (their mean goes in the row),
/// the rate since it (training only: [`RowClock::restart`] after a validation), and the run's cumulative wall
/// and CPU seconds, continuing a resumed log's totals.
pub(crate) struct RowClock {
    recent: Vec<f32>,
    row_time: Instant,
    row_step: u64,
    start: Instant,
    cpu_start: Option<f64>,
    totals: (f64, f64),
}

impl RowClock {
    /// Starts at `step` with the log's `(wall, cpu)` totals so far.
    pub(crate) fn new(step: u64, totals: (f64, f64)) -> Self {
        let now = Instant::now();
        RowClock { recent: Vec::new(), row_time: now, row_step: step, start: now, cpu_start: cpu_seconds(), totals }
    }

    /// One step's loss.
    pub(crate) fn push(&mut self, loss: f32) {
        self.recent.push(loss);
    }

    /// A row at `step`: the mean loss of the steps since the last row and their rate, in `per_step` items
    /// (samples, pairs) per second; the next row counts from here.
    pub(crate) fn row(&mut self, step: u64, per_step: usize) -> (f32, f64) {
        let rate = (step - self.row_step) as f64 * per_step as f64 / self.row_time.elapsed().as_secs_f64().max(1e-9);
        let loss = self.recent.iter().sum::<f32>() / self.recent.len().max(1) as f32;
        self.recent.clear();
        (self.row_time, self.row_step) = (Instant::now(), step);
        (loss, rate)
    }

    /// Restarts the rate's clock (after a validation, so the next row's rate counts training only).
    pub(crate) fn restart(&mut self) {
        self.row_time = Instant::now();
    }

    /// Wall seconds of this invocation.
    pub(crate) fn elapsed(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// CPU seconds of this process since the clock started (0 where /proc cannot tell).
    pub(crate) fn cpu(&self) -> f64 {
        cpu_seconds().zip(self.cpu_start).map_or(0.0, |(now, s)| now - s)
    }

    /// The run's cumulative (wall, CPU) seconds, the log's totals included.
    pub(crate) fn totals(&self) -> (f64, f64) {
        (self.totals.0 + self.elapsed(), self.totals.1 + self.cpu())
    }
}
