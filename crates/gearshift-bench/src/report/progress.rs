//! Progress while a run goes: a bar per system, and one overall line (row k
//! of N, time left), drawn on stderr only when stdout is a terminal.

use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar of `len` items labelled `label`; hidden unless `visible`.
pub fn progress_bar(len: u64, label: &str, visible: bool) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(len),
        if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    if let Ok(style) = ProgressStyle::with_template("{msg:50} {bar:30} {pos}/{len} {per_sec}") {
        bar.set_style(style);
    }
    bar.set_message(label.to_owned());
    bar
}

/// The whole run's progress: which row of how many, and how long the rest
/// should take, with each system's own bar drawn under it.
///
/// Time left is the estimate of the rows still to run (each from its item
/// count and the rate its concurrency allows, see
/// [`Scenario::row_seconds`](crate::scenario::Scenario::row_seconds)),
/// scaled by how the rows so far compared with their own estimates.
#[derive(Debug)]
pub struct Overall {
    multi: MultiProgress,
    bar: ProgressBar,
    visible: bool,
    state: Mutex<Estimate>,
}

/// The running estimate behind [`Overall`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Estimate {
    /// Rows finished.
    pub done: u64,
    /// Rows in all.
    pub rows: u64,
    /// Estimated seconds of the rows not yet finished.
    pub estimated_left_s: f64,
    /// Estimated and measured seconds of the finished rows.
    pub estimated_done_s: f64,
    /// Measured seconds of the finished rows.
    pub measured_done_s: f64,
}

impl Estimate {
    /// `rows` rows expected to take `estimated_s` seconds in all.
    pub fn new(rows: u64, estimated_s: f64) -> Self {
        Estimate {
            rows,
            estimated_left_s: estimated_s,
            ..Estimate::default()
        }
    }

    /// A row estimated at `estimated_s` took `measured_s`.
    pub fn finish_row(&mut self, estimated_s: f64, measured_s: f64) {
        self.done += 1;
        self.estimated_left_s = (self.estimated_left_s - estimated_s).max(0.0);
        self.estimated_done_s += estimated_s;
        self.measured_done_s += measured_s;
    }

    /// Seconds left: the estimate of the rest, times measured over
    /// estimated so far (1 before any row has finished).
    pub fn left(&self) -> Duration {
        let scale = if self.estimated_done_s > 0.0 {
            (self.measured_done_s / self.estimated_done_s).clamp(0.2, 20.0)
        } else {
            1.0
        };
        Duration::from_secs_f64((self.estimated_left_s * scale).clamp(0.0, 1e6))
    }

    /// `row 5 of 165, about 3m 10s left`, or `all 165 rows done`.
    pub fn line(&self) -> String {
        if self.done >= self.rows {
            return format!("all {} rows done", self.rows);
        }
        format!(
            "row {} of {}, about {} left",
            self.done + 1,
            self.rows,
            minutes(self.left())
        )
    }
}

impl Overall {
    /// Progress over `rows` rows expected to take `estimated_s` seconds;
    /// drawn on stderr when `visible`.
    pub fn new(rows: u64, estimated_s: f64, visible: bool) -> Self {
        let multi = MultiProgress::with_draw_target(if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        let bar = multi.add(ProgressBar::new(rows));
        if let Ok(style) = ProgressStyle::with_template("{msg:50} {bar:30} {pos}/{len} rows") {
            bar.set_style(style);
        }
        let estimate = Estimate::new(rows, estimated_s);
        bar.set_message(estimate.line());
        Overall {
            multi,
            bar,
            visible,
            state: Mutex::new(estimate),
        }
    }

    /// Whether the bars are drawn.
    pub fn visible(&self) -> bool {
        self.visible
    }

    /// A bar for one system's run, drawn under the overall line.
    pub fn row_bar(&self, len: u64, label: &str) -> ProgressBar {
        self.multi.add(
            progress_bar(len, label, self.visible).with_finish(indicatif::ProgressFinish::AndClear),
        )
    }

    /// A row estimated at `estimated_s` took `measured_s`; returns the new
    /// overall line (`row k of N, about T left`).
    pub fn finish_row(&self, estimated_s: f64, measured_s: f64) -> String {
        let mut e = self.state.lock().unwrap_or_else(|e| e.into_inner());
        e.finish_row(estimated_s, measured_s);
        self.bar.set_position(e.done);
        let line = e.line();
        self.bar.set_message(line.clone());
        line
    }

    /// Runs `f` with the bars hidden (for a log line that must not tear
    /// them).
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.multi.suspend(f)
    }

    /// The overall line as it stands (`row k of N, about T left`).
    pub fn line(&self) -> String {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).line()
    }

    /// Removes the overall line.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// `42s`, `3m 05s`.
fn minutes(d: Duration) -> String {
    let s = d.as_secs_f64().round() as u64;
    if s < 60 {
        format!("{s}s")
    } else {
        format!("{}m {:02}s", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_left_scales_the_rest_by_how_rows_so_far_compared() {
        let mut e = Estimate::new(4, 40.0);
        assert_eq!(e.left(), Duration::from_secs(40));
        // The first row was estimated at 10 s and took 20: the other 30 s
        // of estimate become 60.
        e.finish_row(10.0, 20.0);
        assert_eq!(e.left(), Duration::from_secs(60));
        assert_eq!(e.line(), "row 2 of 4, about 1m 00s left");
    }
}
