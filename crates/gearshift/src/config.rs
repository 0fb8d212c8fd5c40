//! [`Config`]: the seed's `AgentConfig`, every knob of a pipeline with its
//! default, and the checks that refuse impossible values with a typed error.

use std::time::Duration;

use crate::error::ConfigError;

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
        $crate::config::count_in_range($field, $n, $max, expected!("between 1 and {}", $max))
    };
}
pub(crate) use {check_count, expected};

mod retry;
#[cfg(test)]
mod tests;

pub use retry::RetryPolicy;

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
/// The default [`ApiSettings::max_pause`](crate::ApiSettings::max_pause).
pub const DEFAULT_MAX_PAUSE: Duration = Duration::from_secs(5 * 60);

/// How many agents (tokio tasks) an IO stage runs.
///
/// `Auto` (the default) leaves the number to the stage's API budget's
/// controller; `PerCore` and `Total` fix it, and a budget with a stage of
/// fixed agents runs no controller unless one is given
/// ([`Api::tuner`](crate::Api::tuner)).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Agents {
    /// Not set: the stage starts at [`AUTO_AGENTS_PER_CORE`] agents per core
    /// (the seed's rule of thumb), then its budget's default controller
    /// ([`tuner::default_for`](crate::tuner::default_for)) decides.
    Auto,
    /// `round(per_core x cores)`, at least 1: the seed's rule of thumb.
    /// Any positive number: the presets use 1 to 4, but an API that takes 32
    /// calls at once on 2 cores wants 16.
    PerCore(f64),
    /// An absolute number of agents.
    Total(usize),
}

/// Agents per core an [`Agents::Auto`] stage starts with: the seed's rule
/// of thumb (2-4 per core), at its low end.
pub const AUTO_AGENTS_PER_CORE: f64 = 2.0;

impl Agents {
    /// The number of agents this means on `cores` cores (for `Auto`, the
    /// number it starts with).
    pub fn total(self, cores: usize) -> usize {
        match self {
            Agents::Auto => Agents::PerCore(AUTO_AGENTS_PER_CORE).total(cores),
            Agents::PerCore(k) => ((k * cores as f64).round() as usize).max(1),
            Agents::Total(n) => n,
        }
    }

    /// Whether the number is left to a controller.
    pub fn is_auto(self) -> bool {
        self == Agents::Auto
    }

    pub(crate) fn validate(self) -> Result<(), ConfigError> {
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

/// A pipeline's settings: the seed's `AgentConfig`, and more. The stage
/// settings here (agents, workers, batches, call settings, channel
/// capacity) are the defaults of every stage: a stage's own setting
/// ([`Pipeline::agents`](crate::Pipeline::agents) and its siblings) and,
/// for call settings, its [`Api`](crate::Api)'s win over them.
///
/// `Config::default()` is the seed's starting configuration (2 agents per
/// core, batches of 10, a 30 s API timeout), with the agents left to each
/// API budget's default controller ([`Agents::Auto`]). [`Preset`](crate::Preset)s are
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
    /// Agents of each IO stage, at most [`MAX_AGENTS`]. By default,
    /// [`Agents::Auto`]: 2 per core to start, then each API budget's default
    /// controller decides (a preset, or any other value here, fixes them).
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
    /// Timeout of one attempt of an IO call (an API's or a stage's own
    /// setting wins). By default, 30 s.
    pub api_timeout: Duration,
    /// Deadline per item and IO stage, retries and waits included (an API's
    /// or a stage's own setting wins). By default, none.
    pub item_deadline: Option<Duration>,
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
    /// Which errors are retried, and how (an API's or a stage's own policy
    /// wins). By default, 3 attempts.
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
            agents: Agents::Auto,
            cores,
            workers: cores,
            max_workers: None,
            items_per_batch: 10,
            batch_wait: Duration::ZERO,
            api_timeout: Duration::from_secs(30),
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
        if let Some(d) = self.item_deadline {
            check_duration("item_deadline", d, false)?;
        }
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

pub(crate) fn count_in_range(
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

pub(crate) fn check_duration(
    field: &'static str,
    d: Duration,
    zero_ok: bool,
) -> Result<(), ConfigError> {
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
