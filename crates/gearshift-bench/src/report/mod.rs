//! The report: a table on the terminal, JSON rows for machines, SVG plots,
//! and progress bars while it runs.

mod json;
mod plot;
mod progress;
mod table;

pub use json::{JsonRow, json_rows, write_json};
pub use plot::{Series, plot_sweep, plot_timeline, plot_two_panels};
pub use progress::progress_bar;
pub use table::table;
