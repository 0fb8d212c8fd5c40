//! [`Config`]: the seed's `AgentConfig`, every knob of a pipeline with its
//! default, and the checks that refuse impossible values with a typed error.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{ConfigError, StageError};

/// Upper bound on agents, workers and permits: beyond it a value is a typo.
pub const MAX_CONCURRENCY: usize = 1 << 20;
/// Upper bound on batch sizes and channel capacities.
pub const MAX_CAPACITY: usize = 1 << 24;
/// Upper bound on every duration setting (one year).
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// How many agents (tokio tasks) an IO stage runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Agents {
    /// `round(per_core x cores)`, at least 1: the seed's rule of thumb.
    /// Any positive number: the presets use 1 to 4, but an API that takes 32
    /// calls at once on 2 cores wants 16.
    PerCore(f64),
    /// An absolute number of agents.
    Total(usize),
}

impl Agents {
    /// The number of agents this means on `cores` cores.
    pub fn total(self, cores: usize) -> usize {
        match self {
            Agents::PerCore(k) => ((k * cores as f64).round() as usize).max(1),
            Agents::Total(n) => n,
        }
    }

    fn validate(self) -> Result<(), ConfigError> {
        match self {
            Agents::PerCore(k) if !(k.is_finite() && k > 0.0 && k <= MAX_CONCURRENCY as f64) => {
                Err(ConfigError::new(
                    "agents_per_core",
                    "a finite number > 0 and <= 1048576",
                    k,
                ))
            }
            Agents::Total(n) if n == 0 || n > MAX_CONCURRENCY => {
                Err(ConfigError::new("agents", "between 1 and 1048576", n))
            }
            _ => Ok(()),
        }
    }
}

/// Where the outputs come out, relative to the input order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// As soon as each item is done: the fastest.
    #[default]
    Unordered,
    /// In input order. At most `window` items are admitted past the oldest
    /// unfinished one, which bounds the reorder buffer.
    Ordered {
        /// Reorder buffer size, in items.
        window: usize,
    },
}

/// What a failure does to the rest of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    /// Record the failure and go on (the default).
    #[default]
    Continue,
    /// Record the failure and cancel the pipeline.
    Cancel,
}

/// A user's choice of which errors to retry.
type RetryPredicate = Arc<dyn Fn(&StageError) -> bool + Send + Sync>;

/// Which errors an IO stage retries, and how long it waits between attempts.
#[derive(Clone)]
pub struct RetryPolicy {
    /// Attempts per item and stage, including the first. By default, 3.
    pub max_attempts: u32,
    /// The first backoff; each next one doubles. By default, 50 ms.
    pub initial_backoff: Duration,
    /// The longest backoff. By default, 5 s.
    pub max_backoff: Duration,
    /// Randomise each backoff (full jitter). By default, on.
    pub jitter: bool,
    retry_if: Option<RetryPredicate>,
}

impl RetryPolicy {
    /// Up to `max_attempts` attempts per item (including the first), with
    /// the default backoff.
    pub fn attempts(max_attempts: u32) -> Self {
        RetryPolicy {
            max_attempts,
            ..Self::default()
        }
    }

    /// Sets the first and the longest backoff.
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max;
        self
    }

    /// No retries: one attempt per item.
    pub fn never() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// Retry only errors for which `pred` is true. By default, every error
    /// whose kind [is transient](crate::ErrorKind::is_transient).
    pub fn retry_if(mut self, pred: impl Fn(&StageError) -> bool + Send + Sync + 'static) -> Self {
        self.retry_if = Some(Arc::new(pred));
        self
    }

    /// Whether `err` should be retried (attempts permitting).
    pub fn should_retry(&self, err: &StageError) -> bool {
        match &self.retry_if {
            Some(pred) => pred(err),
            None => err.kind().is_transient(),
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.max_attempts == 0 || self.max_attempts > 1000 {
            return Err(ConfigError::new(
                "retry.max_attempts",
                "between 1 and 1000",
                self.max_attempts,
            ));
        }
        check_duration("retry.initial_backoff", self.initial_backoff, false)?;
        check_duration("retry.max_backoff", self.max_backoff, false)?;
        if self.max_backoff < self.initial_backoff {
            return Err(ConfigError::new(
                "retry.max_backoff",
                ">= retry.initial_backoff",
                self.max_backoff,
            ));
        }
        Ok(())
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(5),
            jitter: true,
            retry_if: None,
        }
    }
}

impl fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("max_attempts", &self.max_attempts)
            .field("initial_backoff", &self.initial_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("jitter", &self.jitter)
            .field("retry_if", &self.retry_if.as_ref().map(|_| "custom"))
            .finish()
    }
}

/// Every setting of a pipeline: the seed's `AgentConfig`, and more.
///
/// `Config::default()` is the seed's starting configuration (2 agents per
/// core, batches of 10, a 30 s API timeout). [`Preset`](crate::Preset)s are
/// `Config` values too, which a user can still adjust.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use gearshift::{Agents, Config};
///
/// let config = Config {
///     agents: Agents::PerCore(3.0),
///     items_per_batch: 20,
///     api_timeout: Duration::from_secs(5),
///     ..Config::default()
/// };
/// assert!(config.validate().is_ok());
/// assert_eq!(config.with_cores(4).total_agents(), 12);
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    /// Agents per IO stage. By default, `PerCore(2.0)`.
    pub agents: Agents,
    /// The core count used by `Agents::PerCore` and the default `workers`.
    /// By default, `num_cpus::get()`.
    pub cores: usize,
    /// CPU workers running batches at once. By default, one per core.
    pub workers: usize,
    /// Threads in the rayon pool: the most `workers` can grow to at run time.
    /// By default, `max(workers, cores)`.
    pub max_workers: Option<usize>,
    /// Items per CPU batch. By default, 10.
    pub items_per_batch: usize,
    /// How long a partial batch waits for more items while a worker has
    /// room for it. By default, zero: a batch is queued for the pool at once,
    /// and fills up only while every worker is busy (when it could not run
    /// anyway).
    pub batch_wait: Duration,
    /// Timeout of one attempt of an IO call. By default, 30 s.
    pub api_timeout: Duration,
    /// API calls in flight per IO stage (the seed's `api_semaphore`).
    /// By default, 2 x the stage's agents.
    pub api_permits: Option<usize>,
    /// Most API calls started per second per IO stage. By default, no limit.
    pub rate_limit: Option<f64>,
    /// Deadline per item and IO stage, retries included. By default, none.
    pub item_deadline: Option<Duration>,
    /// Capacity of each channel between stages, in items. Enough to keep the
    /// workers fed without letting the IO stage run far ahead (items waiting
    /// in a channel are latency): by default, `max(64, 2 x workers x
    /// items_per_batch)` at construction (64 on 2 cores, 1280 on 64).
    pub channel_capacity: usize,
    /// Most items inside the pipeline at once, from the source to their
    /// outcome. It bounds item latency (Little's law: latency = items in
    /// flight / throughput) the way `buffer_unordered(n)` does; without it
    /// only the agents and the channels bound it. By default, none. Live
    /// changes need it set when the pipeline is spawned.
    pub max_in_flight: Option<usize>,
    /// Which errors are retried, and how. By default, 3 attempts.
    pub retry: RetryPolicy,
    /// Output order. By default, unordered.
    pub order: Order,
    /// What a failure does. By default, continue.
    pub on_error: OnError,
    /// How long `cancel` lets items in flight finish before cancelling them.
    /// By default, 10 s.
    pub drain_timeout: Duration,
    /// How often stats are logged as `tracing` events. By default, 10 s.
    pub stats_interval: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        let cores = num_cpus::get().max(1);
        Config {
            agents: Agents::PerCore(2.0),
            cores,
            workers: cores,
            max_workers: None,
            items_per_batch: 10,
            batch_wait: Duration::ZERO,
            api_timeout: Duration::from_secs(30),
            api_permits: None,
            rate_limit: None,
            item_deadline: None,
            channel_capacity: (2 * cores * 10).max(64),
            max_in_flight: None,
            retry: RetryPolicy::default(),
            order: Order::Unordered,
            on_error: OnError::Continue,
            drain_timeout: Duration::from_secs(10),
            stats_interval: Some(Duration::from_secs(10)),
        }
    }
}

impl Config {
    /// Sets the core count (and one worker per core): to plan for a bigger
    /// machine, or to make a test independent of this one.
    pub fn with_cores(mut self, cores: usize) -> Self {
        self.cores = cores;
        self.workers = cores;
        self
    }

    /// Agents per IO stage, from `agents` and `cores`.
    pub fn total_agents(&self) -> usize {
        self.agents.total(self.cores)
    }

    /// API calls in flight per IO stage: `api_permits`, or 2 x agents.
    pub fn total_api_permits(&self) -> usize {
        self.api_permits
            .unwrap_or_else(|| self.total_agents().saturating_mul(2))
    }

    /// Threads in the rayon pool.
    pub fn pool_threads(&self) -> usize {
        self.max_workers.unwrap_or(self.workers.max(self.cores))
    }

    /// Checks every field; the error names the first bad field and its value.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] for a zero, negative, NaN, infinite or absurdly
    /// large value, or for fields that contradict each other.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_count("cores", self.cores, MAX_CONCURRENCY)?;
        self.agents.validate()?;
        check_count("agents", self.total_agents(), MAX_CONCURRENCY)?;
        check_count("workers", self.workers, MAX_CONCURRENCY)?;
        if let Some(max) = self.max_workers {
            check_count("max_workers", max, MAX_CONCURRENCY)?;
            if max < self.workers {
                return Err(ConfigError::new("max_workers", ">= workers", max));
            }
        }
        check_count("items_per_batch", self.items_per_batch, MAX_CAPACITY)?;
        check_duration("batch_wait", self.batch_wait, true)?;
        check_duration("api_timeout", self.api_timeout, false)?;
        if let Some(p) = self.api_permits {
            check_count("api_permits", p, MAX_CONCURRENCY)?;
        }
        if let Some(r) = self.rate_limit
            && !(r.is_finite() && r > 0.0 && r <= 1e9)
        {
            return Err(ConfigError::new(
                "rate_limit",
                "a finite number of calls per second > 0",
                r,
            ));
        }
        if let Some(d) = self.item_deadline {
            check_duration("item_deadline", d, false)?;
        }
        check_count("channel_capacity", self.channel_capacity, MAX_CAPACITY)?;
        if let Some(n) = self.max_in_flight {
            check_count("max_in_flight", n, MAX_CAPACITY)?;
        }
        self.retry.validate()?;
        if let Order::Ordered { window } = self.order {
            check_count("order.window", window, MAX_CAPACITY)?;
        }
        check_duration("drain_timeout", self.drain_timeout, true)?;
        if let Some(d) = self.stats_interval {
            check_duration("stats_interval", d, false)?;
        }
        Ok(())
    }
}

/// A duration from seconds given as a float, refused if negative, NaN,
/// infinite or over a year: for CLIs and config files.
///
/// # Errors
///
/// A [`ConfigError`] naming `field` and the value.
pub fn duration_from_secs(field: &'static str, secs: f64) -> Result<Duration, ConfigError> {
    if !(secs.is_finite() && secs >= 0.0 && secs <= MAX_DURATION.as_secs_f64()) {
        return Err(ConfigError::new(
            field,
            "a finite number of seconds >= 0",
            secs,
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn check_count(field: &'static str, n: usize, max: usize) -> Result<(), ConfigError> {
    if n == 0 || n > max {
        return Err(ConfigError::new(field, "> 0 and not absurdly large", n));
    }
    Ok(())
}

fn check_duration(field: &'static str, d: Duration, zero_ok: bool) -> Result<(), ConfigError> {
    if (!zero_ok && d.is_zero()) || d > MAX_DURATION {
        let expected = if zero_ok {
            "at most a year"
        } else {
            "> 0 and at most a year"
        };
        return Err(ConfigError::new(field, expected, d));
    }
    Ok(())
}
