//! gearshift: hybrid CPU/IO pipelines.
#![warn(missing_docs)]

mod config;
mod error;
#[cfg(feature = "http")]
pub mod http;
mod outcome;
mod preset;
pub mod tuner;

pub use config::{Agents, Config, OnError, Order, RetryPolicy, duration_from_secs};
pub use error::{BuildError, ConfigError, ErrorKind, StageError};
pub use outcome::{Failure, ItemId, Outcome};
pub use preset::{Preset, UnknownPreset};
pub use tuner::{Decision, Tuner, Window};
