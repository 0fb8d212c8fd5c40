//! The report: a table on the terminal, JSON rows for machines, SVG plots,
//! and progress bars while it runs.

mod json;
mod plot;
mod progress;
mod table;

pub use json::{JsonRow, json_rows, write_json};
pub use plot::{Series, SweepPlot, plot_summary, plot_sweep, plot_timeline, plot_two_panels};
pub use progress::{Estimate, Overall, progress_bar};
pub use table::{COLUMNS, CONTENDED_MARK, REFERENCE_MARK, legend, table};

/// `x` rounded to `digits` decimals, for a `tracing` field a person reads.
pub fn rounded(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}
