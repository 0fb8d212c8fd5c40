//! Stats: live counters on the hot path, cumulative latency histograms,
//! windowed maxima, and the [`Report`] built from them. Stats are read-only
//! views: what they know of a stage's or a budget's concurrency comes from
//! gauges the owner gives, and any number of readers can take windows of
//! them without disturbing each other.
//!
//! With the feature `serde`, [`Report`] and every type in it implement
//! `serde::Serialize` (behind a feature, as serde's derive is a build cost
//! not every user wants): durations are written as seconds (a float, under
//! the field's own name), [`StageKind`] as `"io"` or `"cpu"` and error kinds
//! by [`ErrorKind::as_str`](crate::ErrorKind::as_str), in maps as in values.
//! With the feature `metrics`, the same figures are published through the
//! `metrics` facade (see `gearshift::export`).

pub(crate) mod api;
pub(crate) mod counters;
pub(crate) mod latency;
pub(crate) mod report;
#[cfg(feature = "serde")]
mod secs;
mod table;
pub(crate) mod window;

pub use api::{ApiReport, PEAK_SPAN};

use std::time::Duration;

/// `x` rounded to `digits` decimals, for a `tracing` field a person reads:
/// `0.123` rather than `0.12345678901`.
pub(crate) fn rounded(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}

/// `d` in milliseconds with one decimal, for a `tracing` field.
pub(crate) fn ms(d: Duration) -> f64 {
    rounded(d.as_secs_f64() * 1e3, 1)
}
pub use counters::StageKind;
pub use latency::Percentiles;
pub use report::{AgentReport, Report, StageReport, TunerDecision};
