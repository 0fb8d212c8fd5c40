//! gearshift: hybrid CPU/IO pipelines that keep every core busy while they
//! wait on remote APIs, and shift the IO/CPU ratio while items flow.
//!
//! A job that fetches from an API *and* computes on the answers is split
//! into stages joined by bounded channels:
//!
//! - **IO stages**: async *agents* (tokio tasks) call an API under its
//!   budget ([`Api`]: a resizable limit on calls in flight, a rate limit and
//!   a `Retry-After` pause, shared by every stage that calls the same API),
//!   with a timeout per attempt, retries with backoff and jitter.
//! - **Concurrency**: automatic by default. A budget whose concurrency
//!   nothing fixes runs the default controller ([`tuner::default_for`], a
//!   [`Gradient`] law): its stages start at 2 agents per core (the
//!   seed's rule of thumb) and the controller sets their agents and the
//!   budget's calls in flight from what it measures. A preset, a schedule,
//!   fixed agents ([`Agents::PerCore`], [`Agents::Total`]) or a budget's
//!   `max_in_flight` turn it off for that budget; a [`Tuner`] of your own
//!   replaces it. [`ApiReport::tuner`](stats::ApiReport::tuner) says which one runs.
//! - **CPU stages**: *workers* on a rayon pool run batches of up to
//!   `items_per_batch` items. A batch is queued for the pool at once while
//!   a worker has room and fills up only while every worker is busy;
//!   expensive items (over about 250 µs each) are not batched behind each
//!   other.
//! - **Latency**: `max_in_flight` bounds the items inside the pipeline end
//!   to end, as `buffer_unordered(n)` does; without it, the channels let the
//!   IO side run ahead of the CPU side (more throughput, more queueing).
//! - A [`PipelineHandle`] changes the defaults or a whole [`Preset`], one
//!   stage ([`StageHandle`]) or one API ([`ApiHandle`]) live, by hand, on a
//!   [`Schedule`], or through a [`Tuner`] per API; no item is lost or
//!   repeated by a change. A fixed setting made live holds the default
//!   controller of the budgets it fixes until
//!   [`ApiHandle::resume_controller`].
//!
//! Every input item ends as exactly one [`Outcome`]: `Ok` (with the IO
//! attempts it took), `Failed` (with the stage, the error and the attempts)
//! or `Cancelled`.
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
//! | know the item's id and attempt in the call   | [`Pipeline::io_with`] (the stage function takes a [`Call`]) |
//! | compute on each item                         | [`Pipeline::cpu`], [`Pipeline::try_cpu`]          |
//! | know the item's id in the computation        | [`Pipeline::cpu_with`]                           |
//! | know how many attempts an item took          | `attempts` of [`Outcome::Ok`] (and of [`Failure`]) |
//! | read the outputs as they come                | [`Pipeline::spawn_stream`] ([`Outcomes`] is a `Stream` and a blocking iterator) |
//! | hand the outputs to my own code              | [`Pipeline::sink`], [`Pipeline::dead_letter`]     |
//! | just run it and get the numbers              | [`Pipeline::run`], [`Pipeline::collect`], [`Pipeline::run_blocking`] |
//! | get outputs in input order                   | [`Order::Ordered`]                               |
//! | stop on the first failure                    | [`OnError::Cancel`]                              |
//! | let gearshift find the concurrency           | set nothing: the default controller runs ([`tuner::default_for`]) |
//! | pick a ratio for my workload                 | [`Preset`] (the quick decision guide is in its docs) |
//! | limit, pace and pause the calls to one API    | [`Api`] (a budget), [`Pipeline::api`]             |
//! | give one stage its own agents, workers, batch | [`Pipeline::agents`], [`Pipeline::workers`], [`StageSettings`] |
//! | change the ratio while it runs               | [`PipelineHandle`], [`StageHandle`], [`ApiHandle`], [`Schedule`], [`tuner`] |
//! | fetch over HTTP safely                       | [`http::HttpFetcher`] (feature `http`, on by default) |
//! | read settings from a TOML file and `GEARSHIFT_*` variables | [`config_file::ConfigFile`] (feature `config-file`, on by default) |
//! | a preset of my own                           | [`CustomPreset`] (in code, or `[presets.<name>]` in a file) |
//! | switch presets at wall-clock hours, DST included | [`Schedule::time_of_day_in`]                |
//!
//! # Optional features
//!
//! | feature  | what it adds |
//! |----------|--------------|
//! | `http` (default) | [`http::HttpFetcher`], on reqwest |
//! | `tls` (default)  | HTTPS for the fetcher (rustls) |
//! | `metrics` | every per-stage and per-budget figure published through the `metrics` facade, under Prometheus-style names: see `export` (documented when the feature is on). Off, nothing of it is compiled |
//! | `serde`  | `serde::Serialize` for [`Report`] and every snapshot in it ([`StageReport`](stats::StageReport), [`ApiReport`](stats::ApiReport), [`Percentiles`], ...), durations as seconds |
//!
//! The design is in `docs/architecture.md`; the promises and the tests that
//! hold them to account are in `docs/guarantees.md`.
#![warn(missing_docs)]

mod config;
#[cfg(feature = "config-file")]
pub mod config_file;
pub mod control;
mod error;
#[cfg(feature = "metrics")]
pub mod export;
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
    AUTO_AGENTS_PER_CORE, Agents, Config, DEFAULT_MAX_PAUSE, MAX_AGENTS, MAX_ATTEMPTS,
    MAX_CAPACITY, MAX_CONCURRENCY, MAX_DURATION, MAX_RATE_LIMIT, MAX_WORKERS, MIN_RATE_LIMIT,
    OnError, Order, RetryPolicy, duration_from_secs,
};
pub use control::{
    Api, ApiHandle, ApiSettings, MAX_UTC_OFFSET_MINUTES, PipelineHandle, Schedule, ScheduleError,
    StageHandle, StageSettings,
};
pub use error::{BuildError, ConfigError, ErrorKind, LookupError, StageError};
/// The date and time crate whose [`TimeZone`](jiff::tz::TimeZone)
/// [`Schedule::time_of_day_in_zone`] takes, re-exported so that its version
/// always matches.
pub use jiff;
pub use outcome::{Call, Failure, ItemId, Outcome};
pub use pipeline::{Outcomes, Pipeline, ToCaller, ToSink};
pub use preset::{CustomPreset, Preset, UnknownPreset};
pub use stats::{Percentiles, Report, StageKind};
pub use tuner::{Decision, Gradient, Tuner, Window};
