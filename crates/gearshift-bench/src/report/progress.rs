//! Progress bars, hidden when the output is not a terminal.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

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
