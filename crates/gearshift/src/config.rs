//! [`Config`]: the seed's `AgentConfig`, every knob of a pipeline with its
//! default, and the checks that refuse impossible values with a typed error.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{ConfigError, StageError};

/// The `expected` text of a [`ConfigError`], formatted once from the
/// constants it quotes (so a message never drifts from its limit).
macro_rules! expected {
    ($($fmt:tt)*) => {{
        static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        TEXT.get_or_init(|| format!($($fmt)*)).as_str()
    }};
}

/// Checks that a count is between 1 and the limit `$max` (a constant).
macro_rules! check_count {
    ($field:expr, $n:expr, $max:ident) => {
        check_count($field, $n, $max, expected!("between 1 and {}", $max))
    };
}

/// Upper bound on CPU workers, rayon pool threads and `cores`. Each worker
/// is an OS thread with its own stack, and a CPU stage gains nothing from
/// more threads than cores: 4096 is above the largest machines' hardware
/// threads, and below the thread limits (`ulimit -u`, `threads-max`) a
/// spawn would otherwise run into after minutes of trying.
pub const MAX_WORKERS: usize = 4096;
/// Upper bound on agents per IO stage. Each agent is a tokio task that holds
/// its call's future (a few KiB) and usually a connection: 65,536 of them
/// take a few hundred MiB and as many sockets as a process is allowed.
pub const MAX_AGENTS: usize = 1 << 16;
/// Upper bound on API permits and other counts of calls in flight: a
/// permit is a counter, not a task, so this is only a typo guard.
pub const MAX_CONCURRENCY: usize = 1 << 20;
/// Upper bound on batch sizes and channel capacities. Channels allocate as
/// they fill, so a large capacity costs nothing until it is used.
pub const MAX_CAPACITY: usize = 1 << 24;
/// Upper bound on every duration setting (one year).
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);
/// The slowest rate limit, in calls per second (one call per 11.6 days):
/// the spacing `1 / rate` stays a duration far below [`MAX_DURATION`].
pub const MIN_RATE_LIMIT: f64 = 1e-6;
/// The fastest rate limit, in calls per second: the spacing `1 / rate` is
/// then 1 ns, the resolution of a `Duration`.
pub const MAX_RATE_LIMIT: f64 = 1e9;
/// Upper bound on [`RetryPolicy::max_attempts`].
pub const MAX_ATTEMPTS: u32 = 1000;
/// The default [`Config::max_pause`].
pub const DEFAULT_MAX_PAUSE: Duration = Duration::from_secs(5 * 60);

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
            Agents::PerCore(k) if !(k.is_finite() && k > 0.0 && k <= MAX_AGENTS as f64) => {
                Err(ConfigError::new(
                    "agents_per_core",
                    expected!("a finite number > 0 and <= {MAX_AGENTS}"),
                    k,
                ))
            }
            Agents::Total(n) => check_count!("agents", n, MAX_AGENTS),
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
        if self.max_attempts == 0 || self.max_attempts > MAX_ATTEMPTS {
            return Err(ConfigError::new(
                "retry.max_attempts",
                expected!("between 1 and {MAX_ATTEMPTS}"),
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
    /// Agents per IO stage, at most [`MAX_AGENTS`]. By default, `PerCore(2.0)`.
    pub agents: Agents,
    /// The core count used by `Agents::PerCore` and the default `workers`,
    /// at most [`MAX_WORKERS`]. By default, `num_cpus::get()`.
    pub cores: usize,
    /// CPU workers running batches at once, at most [`MAX_WORKERS`]. By
    /// default, one per core.
    pub workers: usize,
    /// Threads in the rayon pool: the most `workers` can grow to at run time,
    /// at most [`MAX_WORKERS`]. By default, `max(workers, cores)`.
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
    /// Most API calls started per second per IO stage, between
    /// [`MIN_RATE_LIMIT`] and [`MAX_RATE_LIMIT`]. A live change applies to
    /// the agents already waiting for their turn too. By default, no limit.
    pub rate_limit: Option<f64>,
    /// Deadline per item and IO stage, retries included. By default, none.
    pub item_deadline: Option<Duration>,
    /// The longest pause a remote's `Retry-After` can impose on an IO stage:
    /// a longer one (a hostile or broken header may ask for centuries) is
    /// cut to it and logged. By default, 5 minutes.
    pub max_pause: Duration,
    /// Capacity of each channel between stages, in items. Enough to keep the
    /// workers fed without letting the IO stage run far ahead (items waiting
    /// in a channel are latency): by default, `max(64, 2 x workers x
    /// items_per_batch)` at construction (64 on 2 cores, 1280 on 64). A
    /// channel allocates as it fills, not its whole capacity up front.
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
        let cores = num_cpus::get().clamp(1, MAX_WORKERS);
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
            max_pause: DEFAULT_MAX_PAUSE,
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
        check_count!("cores", self.cores, MAX_WORKERS)?;
        self.agents.validate()?;
        check_count!("agents", self.total_agents(), MAX_AGENTS)?;
        check_count!("workers", self.workers, MAX_WORKERS)?;
        if let Some(max) = self.max_workers {
            check_count!("max_workers", max, MAX_WORKERS)?;
            if max < self.workers {
                return Err(ConfigError::new("max_workers", ">= workers", max));
            }
        }
        check_count!("items_per_batch", self.items_per_batch, MAX_CAPACITY)?;
        check_duration("batch_wait", self.batch_wait, true)?;
        check_duration("api_timeout", self.api_timeout, false)?;
        if let Some(p) = self.api_permits {
            check_count!("api_permits", p, MAX_CONCURRENCY)?;
        }
        if let Some(r) = self.rate_limit
            && !(r.is_finite() && (MIN_RATE_LIMIT..=MAX_RATE_LIMIT).contains(&r))
        {
            return Err(ConfigError::new(
                "rate_limit",
                expected!(
                    "a finite number of calls per second between {MIN_RATE_LIMIT:e} and {MAX_RATE_LIMIT:e}"
                ),
                r,
            ));
        }
        if let Some(d) = self.item_deadline {
            check_duration("item_deadline", d, false)?;
        }
        check_duration("max_pause", self.max_pause, false)?;
        check_count!("channel_capacity", self.channel_capacity, MAX_CAPACITY)?;
        if let Some(n) = self.max_in_flight {
            check_count!("max_in_flight", n, MAX_CAPACITY)?;
        }
        self.retry.validate()?;
        if let Order::Ordered { window } = self.order {
            check_count!("order.window", window, MAX_CAPACITY)?;
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
    match Duration::try_from_secs_f64(secs) {
        Ok(d) if d <= MAX_DURATION => Ok(d),
        _ => Err(ConfigError::new(
            field,
            "a finite number of seconds >= 0 and at most a year",
            secs,
        )),
    }
}

fn check_count(
    field: &'static str,
    n: usize,
    max: usize,
    expected: &'static str,
) -> Result<(), ConfigError> {
    if n == 0 || n > max {
        return Err(ConfigError::new(field, expected, n));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(change: impl FnOnce(&mut Config)) -> String {
        let mut c = Config::default().with_cores(2);
        change(&mut c);
        c.validate().unwrap_err().to_string()
    }

    /// Defect 2 of issue 20: `f64::MIN_POSITIVE` validated, then panicked
    /// in the limiter.
    #[test]
    fn rate_limits_the_limiter_cannot_honour_are_refused() {
        let range = format!("between {MIN_RATE_LIMIT:e} and {MAX_RATE_LIMIT:e}");
        for r in [f64::MIN_POSITIVE, 1e-300, MIN_RATE_LIMIT / 2.0, 2e9, 0.0] {
            let msg = refused(|c| c.rate_limit = Some(r));
            assert!(msg.starts_with("rate_limit must be "), "{msg}");
            assert!(
                msg.contains(&range) && msg.ends_with(&format!("got {r:?}")),
                "{msg}"
            );
        }
        for r in [MIN_RATE_LIMIT, 1.0, MAX_RATE_LIMIT] {
            let c = Config {
                rate_limit: Some(r),
                ..Config::default()
            };
            assert!(c.validate().is_ok(), "{r}");
        }
    }

    /// Defect 12 of issue 20: a million workers validated, then `spawn`
    /// tried to start a million threads.
    #[test]
    fn counts_a_machine_cannot_honour_are_refused_with_their_limit() {
        let n = 1usize << 20;
        assert_eq!(
            refused(|c| c.workers = n),
            format!("workers must be between 1 and {MAX_WORKERS}, got {n}")
        );
        assert_eq!(
            refused(|c| c.max_workers = Some(MAX_WORKERS + 1)),
            format!(
                "max_workers must be between 1 and {MAX_WORKERS}, got {}",
                MAX_WORKERS + 1
            )
        );
        // Without max_workers, the pool is sized by the cores: bounded too.
        assert!(refused(|c| c.cores = n).starts_with("cores must be between 1 and "));
        assert_eq!(
            refused(|c| c.agents = Agents::Total(MAX_AGENTS + 1)),
            format!(
                "agents must be between 1 and {MAX_AGENTS}, got {}",
                MAX_AGENTS + 1
            )
        );
        assert!(
            refused(|c| c.agents = Agents::PerCore(MAX_AGENTS as f64))
                .starts_with(&format!("agents must be between 1 and {MAX_AGENTS}"))
        );
        assert_eq!(
            refused(|c| c.agents = Agents::PerCore(f64::NAN)),
            format!("agents_per_core must be a finite number > 0 and <= {MAX_AGENTS}, got NaN")
        );
        assert!(
            refused(|c| c.api_permits = Some(MAX_CONCURRENCY + 1))
                .contains(&format!("between 1 and {MAX_CONCURRENCY}"))
        );
        assert!(
            refused(|c| c.channel_capacity = MAX_CAPACITY + 1)
                .contains(&format!("between 1 and {MAX_CAPACITY}"))
        );
        assert!(
            refused(|c| c.retry.max_attempts = MAX_ATTEMPTS + 1)
                .contains(&format!("between 1 and {MAX_ATTEMPTS}"))
        );
        let most = Config {
            workers: MAX_WORKERS,
            max_workers: Some(MAX_WORKERS),
            agents: Agents::Total(MAX_AGENTS),
            ..Config::default().with_cores(MAX_WORKERS)
        };
        assert!(most.validate().is_ok());
        assert_eq!(most.pool_threads(), MAX_WORKERS);
    }

    #[test]
    fn max_pause_is_positive_and_at_most_the_duration_cap() {
        assert_eq!(Config::default().max_pause, DEFAULT_MAX_PAUSE);
        assert!(refused(|c| c.max_pause = Duration::ZERO).starts_with("max_pause "));
        assert!(refused(|c| c.max_pause = Duration::MAX).starts_with("max_pause "));
        let c = Config {
            max_pause: MAX_DURATION,
            ..Config::default()
        };
        assert!(c.validate().is_ok());
    }

    #[test]
    fn durations_from_seconds_are_checked() {
        for bad in [
            f64::NAN,
            -1.0,
            f64::INFINITY,
            1e300,
            MAX_DURATION.as_secs_f64() * 2.0,
        ] {
            assert!(duration_from_secs("batch_wait", bad).is_err(), "{bad}");
        }
        assert_eq!(
            duration_from_secs("batch_wait", 0.25),
            Ok(Duration::from_millis(250))
        );
    }
}
