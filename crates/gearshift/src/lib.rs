//! gearshift: hybrid CPU/IO pipelines.
#![warn(missing_docs)]

mod config;
pub mod control;
mod error;
#[cfg(feature = "http")]
pub mod http;
mod loom;
mod outcome;
mod pipeline;
mod preset;
pub mod stats;
pub mod tuner;

pub use config::{Agents, Config, OnError, Order, RetryPolicy, duration_from_secs};
pub use control::{PipelineHandle, Schedule};
pub use error::{BuildError, ConfigError, ErrorKind, StageError};
pub use outcome::{Failure, ItemId, Outcome};
pub use pipeline::{Outcomes, Pipeline};
pub use preset::{Preset, UnknownPreset};
pub use stats::{Percentiles, Report, StageKind};
pub use tuner::{Decision, Tuner, Window};
