//! [`Api`]: one budget per remote API, shared by every stage that calls it.
//!
//! A budget holds what belongs to the API rather than to a stage: the limit
//! on calls in flight (a resizable gate), an optional rate limit, the
//! `Retry-After` pause (a 429 seen by one stage pauses every stage that
//! draws on the budget), the defaults of the call settings (timeout per
//! attempt, retry policy, deadline per item), and a slot for its own
//! controller (a [`Tuner`]: the user's, or the default one a pipeline
//! attaches when nothing fixes the budget's concurrency). Stages of one pipeline or of several pipelines
//! in one process share a budget by naming the same [`Api`].
//!
//! The budget is also the seam where a cluster-wide budget plugs in: a
//! remote lease only has to resize the local limit with
//! [`ApiHandle::set_max_in_flight`]; nothing else in gearshift changes.
//!
//! The budget keeps its own stats ([`ApiReport`]), recorded by every agent
//! of every stage drawing on it, in whichever pipeline: a budget shared by
//! two pipelines reports the calls of both.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::api_handle::ApiHandle;
use crate::config::{
    DEFAULT_MAX_PAUSE, MAX_CONCURRENCY, MAX_RATE_LIMIT, MIN_RATE_LIMIT, RetryPolicy, check_count,
    check_duration, expected,
};
use crate::error::ConfigError;
use crate::stats::api::{ApiGauge, ApiReport, ApiStats};
use crate::sync::gate::Gate;
use crate::sync::pause::Pause;
use crate::sync::rate::RateLimit;
use crate::tuner::Tuner;

mod slot;

pub(crate) use slot::{Attached, Runs};

/// A remote API's budget: limits, pause, call defaults and controller,
/// shared by every stage that names it with
/// [`Pipeline::api`](crate::Pipeline::api). Cheap to clone: clones are the
/// same budget.
///
/// A stage that names no API gets a budget of its own, named after the
/// stage, with no limit beyond the stage's agents.
///
/// # Examples
///
/// ```
/// use gearshift::{Api, Pipeline, RetryPolicy, StageError};
///
/// # #[tokio::main] async fn main() -> Result<(), gearshift::BuildError> {
/// let search = Api::new("search").max_in_flight(64).rate_limit(200.0);
/// let store = Api::new("store").max_in_flight(8).retry(RetryPolicy::attempts(5));
/// let report = Pipeline::from_iter(0..100u64)
///     .io(|id| async move { Ok::<_, StageError>(id) }).named("fetch").api(&search)
///     .cpu(|x| x * 2).named("parse")
///     .io(|x| async move { Ok::<_, StageError>(x + 1) }).named("enrich").api(&search)
///     .io(|x| async move { Ok::<_, StageError>(x) }).named("upload").api(&store)
///     .run()
///     .await?;
/// assert_eq!(report.ok, 100);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Api {
    pub(crate) budget: Arc<Budget>,
}

/// An API budget's settings. `None` call settings fall back to the
/// pipeline's defaults, and a stage's own override wins over both.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Most calls in flight at once, over every stage drawing on the
    /// budget, at most [`MAX_CONCURRENCY`]. Live. By default, no limit
    /// beyond the stages' agents.
    pub max_in_flight: Option<usize>,
    /// Most calls started per second, between [`MIN_RATE_LIMIT`] and
    /// [`MAX_RATE_LIMIT`]; a live change reaches calls already waiting for
    /// their turn. By default, no limit.
    pub rate_limit: Option<f64>,
    /// Calls that may start at once after a quiet spell, under the rate
    /// limit (at least 1, at most [`MAX_CONCURRENCY`]). Live. By default, 1:
    /// calls are evenly spaced.
    pub burst: u32,
    /// The longest pause a `Retry-After` may impose on the budget; longer
    /// ones are cut to it and logged. Live. By default, 5 minutes.
    pub max_pause: Duration,
    /// The retry policy of calls to this API. Live. By default, the
    /// pipeline's.
    pub retry: Option<RetryPolicy>,
    /// The timeout of one attempt. Live. By default, the pipeline's
    /// `api_timeout`.
    pub timeout: Option<Duration>,
    /// The deadline of an item at a stage, retries and waits included.
    /// Live. By default, the pipeline's `item_deadline`.
    pub item_deadline: Option<Duration>,
}

/// The shared state behind an [`Api`].
pub(crate) struct Budget {
    pub(crate) name: Arc<str>,
    settings: watch::Sender<ApiSettings>,
    pub(crate) permits: Arc<Gate>,
    pub(crate) pause: Arc<Pause>,
    pub(crate) rate: Arc<RateLimit>,
    /// What the calls drawing on the budget did, over every stage of every
    /// pipeline: agents add to it in batches (see `io_stage::agent`).
    pub(crate) stats: ApiStats,
    /// The budget's controller; driven by one pipeline at a time.
    tuner: Mutex<Option<Attached>>,
    /// Whether the user set `max_in_flight` (the controller's own changes
    /// of the limit do not count): a fixed limit turns the default
    /// controller off.
    fixed_limit: AtomicBool,
    /// Whether a manual change holds the controller off.
    pub(super) held: AtomicBool,
    /// The pipeline that drives the controller (0: none).
    driver: AtomicU64,
    /// Whether the budget was made for a stage that named no API.
    pub(crate) implicit: bool,
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            max_in_flight: None,
            rate_limit: None,
            burst: 1,
            max_pause: DEFAULT_MAX_PAUSE,
            retry: None,
            timeout: None,
            item_deadline: None,
        }
    }
}

impl ApiSettings {
    /// Checks every field; the error names the API and the field.
    pub fn validate(&self, api: &str) -> Result<(), ConfigError> {
        let check = || -> Result<(), ConfigError> {
            if let Some(n) = self.max_in_flight {
                check_count!("max_in_flight", n, MAX_CONCURRENCY)?;
            }
            if let Some(r) = self.rate_limit
                && !(MIN_RATE_LIMIT..=MAX_RATE_LIMIT).contains(&r)
            {
                return Err(ConfigError::new(
                    "rate_limit",
                    expected!(
                        "a finite number of calls per second between {MIN_RATE_LIMIT:e} and {MAX_RATE_LIMIT:e}"
                    ),
                    r,
                ));
            }
            check_count!("burst", self.burst as usize, MAX_CONCURRENCY)?;
            check_duration("max_pause", self.max_pause, false)?;
            if let Some(r) = &self.retry {
                r.validate()?;
            }
            if let Some(d) = self.timeout {
                check_duration("timeout", d, false)?;
            }
            if let Some(d) = self.item_deadline {
                check_duration("item_deadline", d, false)?;
            }
            Ok(())
        };
        check().map_err(|e| e.within(format!("api {api}")))
    }

    /// The size of the gate: the limit, or no limit beyond the agents.
    fn gate_size(&self) -> usize {
        self.max_in_flight.unwrap_or(MAX_CONCURRENCY)
    }
}

impl Api {
    /// A budget named `name` (in reports, logs and
    /// [`PipelineHandle::api`](crate::PipelineHandle::api)), with no limit
    /// and the pipeline's call settings.
    pub fn new(name: impl Into<String>) -> Api {
        Api {
            budget: Budget::new(name.into(), false),
        }
    }

    /// Sets the most calls in flight at once, over every stage drawing on
    /// the budget. Checked when a pipeline using it spawns. A fixed limit
    /// turns the default controller off (a tuner given with
    /// [`tuner`](Self::tuner) still runs). By default, no limit beyond the
    /// stages' agents, and the default controller decides.
    pub fn max_in_flight(self, calls: usize) -> Self {
        self.budget.fix_limit(true);
        self.edit(|s| s.max_in_flight = Some(calls))
    }

    /// Sets the most calls started per second. By default, no limit.
    pub fn rate_limit(self, per_second: f64) -> Self {
        self.edit(|s| s.rate_limit = Some(per_second))
    }

    /// Sets how many calls may start at once after a quiet spell, under the
    /// rate limit. By default, 1.
    pub fn burst(self, calls: u32) -> Self {
        self.edit(|s| s.burst = calls)
    }

    /// Sets the longest pause a `Retry-After` may impose. By default, 5
    /// minutes.
    pub fn max_pause(self, pause: Duration) -> Self {
        self.edit(|s| s.max_pause = pause)
    }

    /// Sets the retry policy of calls to this API. By default, the
    /// pipeline's.
    pub fn retry(self, policy: RetryPolicy) -> Self {
        self.edit(|s| s.retry = Some(policy))
    }

    /// Sets the timeout of one attempt. By default, the pipeline's.
    pub fn timeout(self, timeout: Duration) -> Self {
        self.edit(|s| s.timeout = Some(timeout))
    }

    /// Sets the deadline of an item at a stage drawing on this API. By
    /// default, the pipeline's.
    pub fn item_deadline(self, deadline: Duration) -> Self {
        self.edit(|s| s.item_deadline = Some(deadline))
    }

    /// Lets `tuner` control this budget's limit (and the agents of the
    /// stages that draw on it) while items flow, whatever else is set. By
    /// default, the default controller
    /// ([`tuner::default_for`](crate::tuner::default_for)) if nothing fixes
    /// the budget's concurrency, else none.
    pub fn tuner(self, tuner: impl Tuner) -> Self {
        self.budget.set_tuner(Box::new(tuner), false);
        self
    }

    /// The budget's name.
    pub fn name(&self) -> &str {
        &self.budget.name
    }

    /// The budget's settings now.
    pub fn settings(&self) -> ApiSettings {
        self.budget.settings()
    }

    /// Live control of the budget, without a pipeline handle.
    pub fn handle(&self) -> ApiHandle {
        ApiHandle::new(Arc::clone(&self.budget))
    }

    fn edit(self, change: impl FnOnce(&mut ApiSettings)) -> Self {
        self.budget.settings.send_modify(change);
        self
    }
}

impl Budget {
    pub(crate) fn new(name: String, implicit: bool) -> Arc<Budget> {
        let settings = ApiSettings::default();
        let name: Arc<str> = Arc::from(name);
        let permits = Gate::new(settings.gate_size());
        // Striped by the cores of the machine: a budget may outlive, and
        // serve, pipelines of different `cores` settings.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let stats = ApiStats::new(Arc::clone(&name), cores, Arc::clone(permits.peaks()));
        Arc::new(Budget {
            name,
            permits,
            stats,
            pause: Arc::new(Pause::new()),
            rate: Arc::new(RateLimit::new(settings.rate_limit)),
            settings: watch::Sender::new(settings),
            tuner: Mutex::new(None),
            fixed_limit: AtomicBool::new(false),
            held: AtomicBool::new(false),
            driver: AtomicU64::new(0),
            implicit,
        })
    }

    pub(crate) fn settings(&self) -> ApiSettings {
        self.settings.borrow().clone()
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<ApiSettings> {
        self.settings.subscribe()
    }

    /// Pauses every stage drawing on the budget for `pause` (already cut to
    /// `max_pause`) from now, and counts the wall time it added.
    pub(crate) fn pause_for(&self, pause: Duration) {
        let extended_by = self.pause.extend(pause);
        self.stats.note_pause(pause, extended_by);
    }

    /// The budget's figures now: its stats, and its gauges read at once.
    pub(crate) fn report(&self) -> ApiReport {
        let (max_in_flight, rate_limit) = {
            let s = self.settings.borrow();
            (s.max_in_flight, s.rate_limit)
        };
        let gauge = ApiGauge {
            in_flight: self.permits.in_use(),
            max_in_flight,
            rate_limit,
            pause_left: self
                .pause
                .until()
                .map(|u| u.saturating_duration_since(Instant::now())),
        };
        let mut report = ApiReport::build(&self.stats, gauge);
        if let Some(a) = self.tuner().as_ref() {
            report.tuner = Some(a.tuner.name().to_owned());
            report.default_tuner = a.by_default;
        }
        report
    }

    /// Checks the settings and applies the limits: when a pipeline using
    /// the budget spawns.
    pub(crate) fn activate(&self) -> Result<(), ConfigError> {
        self.update(|_| {})
    }

    /// Applies a change if it validates: one lock (the watch's) around
    /// read, change, check and publish, then the limits follow.
    pub(crate) fn update(&self, change: impl FnOnce(&mut ApiSettings)) -> Result<(), ConfigError> {
        let mut result = Ok(());
        self.settings.send_if_modified(|s| {
            let mut next = s.clone();
            change(&mut next);
            result = next.validate(&self.name);
            if result.is_ok() {
                self.permits.resize(next.gate_size());
                self.rate.set_burst(next.burst);
                self.rate.set(next.rate_limit);
                *s = next;
            }
            result.is_ok()
        });
        result
    }
}

impl fmt::Debug for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Api")
            .field("name", &self.budget.name)
            .field("settings", &self.budget.settings())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Budget")
            .field("name", &self.name)
            .field("implicit", &self.implicit)
            .finish_non_exhaustive()
    }
}
