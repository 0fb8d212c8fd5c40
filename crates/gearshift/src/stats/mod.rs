//! Stats: live counters on the hot path, latency histograms, and the
//! [`Report`] built from them.

pub(crate) mod counters;
pub(crate) mod latency;
pub(crate) mod report;

pub use counters::StageKind;
pub use latency::Percentiles;
pub use report::{AgentReport, Report, StageReport, TunerDecision};
