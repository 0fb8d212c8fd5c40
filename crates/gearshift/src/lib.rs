//! gearshift: hybrid CPU/IO pipelines that keep every core busy while they
//! wait on remote APIs, and shift the IO/CPU ratio while items flow.
//!
//! A job that fetches from an API *and* computes on the answers is split
//! into stages joined by bounded channels:
//!
//! - **IO stages**: async *agents* (tokio tasks), `round(agents_per_core x
//!   cores)` of them, call the API under one resizable semaphore (the single
//!   authority on calls in flight), with a timeout per attempt, retries with
//!   backoff and jitter, and a pause shared by the stage when the remote
//!   answers `Retry-After`.
//! - **CPU stages**: *workers* on a rayon pool run batches of up to
//!   `items_per_batch` items. A batch is queued for the pool at once while
//!   a worker has room and fills up only while every worker is busy;
//!   expensive items (over about 250 µs each) are not batched behind each
//!   other.
//! - **Latency**: `max_in_flight` bounds the items inside the pipeline end
//!   to end, as `buffer_unordered(n)` does; without it, the channels let the
//!   IO side run ahead of the CPU side (more throughput, more queueing).
//! - A [`PipelineHandle`] changes agents, permits, workers, batch size or a
//!   whole [`Preset`] live, by hand, on a [`Schedule`], or through a
//!   [`Tuner`]; no item is lost or repeated by a change.
//!
//! Every input item ends as exactly one [`Outcome`]: `Ok`, `Failed` (with
//! the stage, the error and the attempts) or `Cancelled`.
//!
//! # Hello, pipeline
//!
//! ```
//! use gearshift::{Pipeline, Preset, StageError};
//!
//! # #[tokio::main] async fn main() -> Result<(), gearshift::BuildError> {
//! let handle = Pipeline::from_iter(1..=1000u64)
//!     .io(|id| async move {
//!         // Fetch from an API here (see `gearshift::http::HttpFetcher`).
//!         Ok::<_, StageError>(id.to_string())
//!     })
//!     .cpu(|body: String| body.len())    // parse, score, compress...
//!     .preset(Preset::Morning)          // API-heavy: 3 agents per core
//!     .spawn()?;
//! handle.apply(Preset::Evening).unwrap(); // CPU-heavy from now on
//! let report = handle.join().await;
//! assert_eq!(report.ok, 1000);
//! println!("{report}");
//! # Ok(()) }
//! ```
//!
//! # Which one do I use?
//!
//! | I want to...                                 | use                                              |
//! |----------------------------------------------|--------------------------------------------------|
//! | feed items from a `Vec`, range or iterator   | [`Pipeline::from_iter`]                          |
//! | feed items from a `Stream` (or a fallible one)| [`Pipeline::from_stream`], [`Pipeline::from_try_stream`] |
//! | keep feeding items while it runs             | [`Pipeline::from_channel`]                       |
//! | call an API per item / per batch of items    | [`Pipeline::io`], [`Pipeline::io_batch`]          |
//! | compute on each item                         | [`Pipeline::cpu`], [`Pipeline::try_cpu`]          |
//! | read the outputs as they come                | [`Pipeline::spawn_stream`] ([`Outcomes`] is a `Stream` and a blocking iterator) |
//! | hand the outputs to my own code              | [`Pipeline::sink`], [`Pipeline::dead_letter`]     |
//! | just run it and get the numbers              | [`Pipeline::run`], [`Pipeline::collect`], [`Pipeline::run_blocking`] |
//! | get outputs in input order                   | [`Order::Ordered`]                               |
//! | stop on the first failure                    | [`OnError::Cancel`]                              |
//! | pick a ratio for my workload                 | [`Preset`] (the quick decision guide is in its docs) |
//! | change the ratio while it runs               | [`PipelineHandle`], [`Schedule`], [`tuner`]       |
//! | fetch over HTTP safely                       | [`http::HttpFetcher`] (feature `http`, on by default) |
//!
//! The design is in `docs/architecture.md`; the promises and the tests that
//! hold them to account are in `docs/guarantees.md`.
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
pub(crate) mod sync;
pub mod tuner;

/// The channel [`Pipeline::from_channel`] reads from, re-exported so that
/// its version always matches: `gearshift::async_channel::bounded(n)`.
pub use async_channel;
pub use config::{
    Agents, Config, DEFAULT_MAX_PAUSE, MAX_AGENTS, MAX_ATTEMPTS, MAX_CAPACITY, MAX_CONCURRENCY,
    MAX_DURATION, MAX_RATE_LIMIT, MAX_WORKERS, MIN_RATE_LIMIT, OnError, Order, RetryPolicy,
    duration_from_secs,
};
pub use control::{MAX_UTC_OFFSET_MINUTES, PipelineHandle, Schedule, ScheduleError};
pub use error::{BuildError, ConfigError, ErrorKind, StageError};
pub use outcome::{Failure, ItemId, Outcome};
pub use pipeline::{Outcomes, Pipeline, ToCaller, ToSink};
pub use preset::{Preset, UnknownPreset};
pub use stats::{Percentiles, Report, StageKind};
pub use tuner::{Adaptive, Decision, Tuner, Window};
