//! Stats: live counters on the hot path, cumulative latency histograms,
//! windowed maxima, and the [`Report`] built from them. Stats are read-only
//! views: what they know of a stage's or a budget's concurrency comes from
//! gauges the owner gives, and any number of readers can take windows of
//! them without disturbing each other.

pub(crate) mod api;
pub(crate) mod counters;
pub(crate) mod latency;
pub(crate) mod report;
mod table;
pub(crate) mod window;

pub use api::{ApiReport, PEAK_SPAN};
pub use counters::StageKind;
pub use latency::Percentiles;
pub use report::{AgentReport, Report, StageReport, TunerDecision};
