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
pub use counters::StageKind;
pub use latency::Percentiles;
pub use report::{AgentReport, Report, StageReport, TunerDecision};
