//! The progress display of the training commands: a bar with the step, a message and the ETA on a terminal;
//! plain lines when stdout is not one (a log file, a pipe), where a hidden bar would drop its output.

use indicatif::{ProgressBar, ProgressStyle};

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
