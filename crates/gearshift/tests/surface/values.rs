//! Extreme values, and the config fields and stages that carry them.

use std::time::Duration;

use gearshift::{Agents, Config, ErrorKind, OnError, Order, Pipeline, RetryPolicy, StageError};
use proptest::prelude::*;
use proptest::sample::select;

/// The limits quoted in error messages ("1048576"): not exported.
pub const MAX_CONCURRENCY: usize = 1 << 20;
pub const MAX_CAPACITY: usize = 1 << 24;
const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);
/// Carried by every panic the stage functions throw on purpose.
pub const MARKER: &str = "surface-injected panic";

/// Counts: half small (so runs do something), a quarter absurd but
/// accepted by `validate` today, a quarter refused.
pub fn count() -> impl Strategy<Value = usize> {
    prop_oneof![
        2 => prop_oneof![Just(1usize), Just(2), 3usize..64],
        1 => select(vec![MAX_CONCURRENCY, MAX_CAPACITY]),
        1 => select(vec![0, MAX_CONCURRENCY + 1, MAX_CAPACITY + 1, usize::MAX]),
    ]
}

pub fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        2 => prop_oneof![Just(1.0), Just(2.0), 0.1f64..8.0],
        1 => select(vec![
            f64::MIN_POSITIVE, 5e-324, 1e-300, f64::EPSILON, 1e-3, 1e9, 1_048_576.0,
        ]),
        1 => select(vec![
            0.0, -0.0, -1.0, 1.5e9, 1_048_577.0, f64::MAX, f64::MIN, f64::NAN,
            f64::INFINITY, f64::NEG_INFINITY,
        ]),
    ]
}

pub fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        2 => prop_oneof![
            Just(Duration::ZERO),
            Just(Duration::from_nanos(1)),
            (0u64..20).prop_map(Duration::from_millis),
        ],
        1 => select(vec![Duration::from_secs(1), Duration::from_secs(3600), YEAR]),
        1 => select(vec![
            YEAR + Duration::from_nanos(1),
            YEAR * 100,
            Duration::from_secs(u64::MAX),
            Duration::MAX,
        ]),
    ]
}

/// One field of `Config`, set through `configure`.
#[derive(Debug, Clone)]
pub enum Field {
    AgentsPerCore(f64),
    AgentsTotal(usize),
    Cores(usize),
    WithCores(usize),
    Workers(usize),
    MaxWorkers(Option<usize>),
    ItemsPerBatch(usize),
    BatchWait(Duration),
    ApiTimeout(Duration),
    ApiPermits(Option<usize>),
    RateLimit(Option<f64>),
    ItemDeadline(Option<Duration>),
    ChannelCapacity(usize),
    MaxInFlight(Option<usize>),
    Retry {
        attempts: u32,
        initial: Duration,
        max: Duration,
        jitter: bool,
        retry_if: Option<bool>,
    },
    /// `Some(window)`: ordered output.
    Order(Option<usize>),
    OnErrorCancel(bool),
    DrainTimeout(Duration),
    StatsInterval(Option<Duration>),
}

impl Field {
    pub fn apply(&self, c: &mut Config) {
        match self.clone() {
            Field::AgentsPerCore(k) => c.agents = Agents::PerCore(k),
            Field::AgentsTotal(n) => c.agents = Agents::Total(n),
            Field::Cores(n) => c.cores = n,
            Field::WithCores(n) => *c = c.clone().with_cores(n),
            Field::Workers(n) => c.workers = n,
            Field::MaxWorkers(n) => c.max_workers = n,
            Field::ItemsPerBatch(n) => c.items_per_batch = n,
            Field::BatchWait(d) => c.batch_wait = d,
            Field::ApiTimeout(d) => c.api_timeout = d,
            // An API budget's settings: applied to the case's `Api` (see
            // `run::build`), not to the pipeline's defaults.
            Field::ApiPermits(_) | Field::RateLimit(_) => {}
            Field::ItemDeadline(d) => c.item_deadline = d,
            Field::ChannelCapacity(n) => c.channel_capacity = n,
            Field::MaxInFlight(n) => c.max_in_flight = n,
            Field::Retry {
                attempts,
                initial,
                max,
                jitter,
                retry_if,
            } => {
                let mut p = RetryPolicy::attempts(attempts).with_backoff(initial, max);
                p.jitter = jitter;
                if let Some(all) = retry_if {
                    p = p.retry_if(move |_| all);
                }
                c.retry = p;
            }
            Field::Order(w) => {
                c.order = w.map_or(Order::Unordered, |window| Order::Ordered { window })
            }
            Field::OnErrorCancel(b) => {
                c.on_error = if b {
                    OnError::Cancel
                } else {
                    OnError::Continue
                }
            }
            Field::DrainTimeout(d) => c.drain_timeout = d,
            Field::StatsInterval(d) => c.stats_interval = d,
        }
    }
}

pub fn field() -> impl Strategy<Value = Field> {
    let attempts = select(vec![0u32, 1, 2, 3, 1000, 1001, u32::MAX]);
    prop_oneof![
        float().prop_map(Field::AgentsPerCore),
        count().prop_map(Field::AgentsTotal),
        count().prop_map(Field::Cores),
        count().prop_map(Field::WithCores),
        count().prop_map(Field::Workers),
        proptest::option::of(count()).prop_map(Field::MaxWorkers),
        count().prop_map(Field::ItemsPerBatch),
        duration().prop_map(Field::BatchWait),
        duration().prop_map(Field::ApiTimeout),
        proptest::option::of(count()).prop_map(Field::ApiPermits),
        proptest::option::of(float()).prop_map(Field::RateLimit),
        proptest::option::of(duration()).prop_map(Field::ItemDeadline),
        count().prop_map(Field::ChannelCapacity),
        proptest::option::of(count()).prop_map(Field::MaxInFlight),
        (
            attempts,
            duration(),
            duration(),
            any::<bool>(),
            proptest::option::of(any::<bool>())
        )
            .prop_map(|(attempts, initial, max, jitter, retry_if)| Field::Retry {
                attempts,
                initial,
                max,
                jitter,
                retry_if
            }),
        proptest::option::of(count()).prop_map(Field::Order),
        any::<bool>().prop_map(Field::OnErrorCancel),
        duration().prop_map(Field::DrainTimeout),
        proptest::option::of(duration()).prop_map(Field::StatsInterval),
    ]
}

/// What a stage function does to the items it hits (`id % every == 0`).
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    Server,
    Rejected,
    RateLimited(Option<Duration>),
    Panic,
    /// A batch call returns one output too few.
    WrongCount,
}

/// A stage function: which items it hits, with what, and how fast.
#[derive(Debug, Clone, Copy)]
pub struct Behavior {
    /// 0: no item is hit.
    pub every: u64,
    pub fault: Fault,
    /// Takes a little time per call, so changes land while items are inside.
    pub slow: bool,
}

impl Behavior {
    fn hits(&self, x: u64) -> bool {
        self.every > 0 && x % self.every == 0
    }

    fn error(&self, x: u64) -> Result<u64, StageError> {
        match self.fault {
            Fault::Server => Err(StageError::msg(ErrorKind::Server, "injected 500")),
            Fault::Rejected => Err(StageError::msg(ErrorKind::Rejected, "injected 400")),
            Fault::RateLimited(d) => Err(StageError::rate_limited(d)),
            Fault::Panic => panic!("{MARKER} on item {x}"),
            Fault::WrongCount => Ok(x),
        }
    }

    async fn io(self, x: u64) -> Result<u64, StageError> {
        if self.slow {
            tokio::time::sleep(Duration::from_millis(x % 3)).await;
        }
        if self.hits(x) { self.error(x) } else { Ok(x) }
    }

    async fn io_batch(self, xs: Vec<u64>) -> Result<Vec<u64>, StageError> {
        if self.slow {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        match xs.iter().find(|x| self.hits(**x)) {
            Some(_) if matches!(self.fault, Fault::WrongCount) => {
                Ok(xs.into_iter().skip(1).collect())
            }
            Some(x) => self.error(*x).map(|_| xs),
            None => Ok(xs),
        }
    }

    fn cpu(self, x: u64) -> Result<u64, StageError> {
        if self.slow {
            std::thread::sleep(Duration::from_micros(300));
        }
        if self.hits(x) { self.error(x) } else { Ok(x) }
    }
}

/// A stage, every one from `u64` to `u64` so they chain in any order.
#[derive(Debug, Clone, Copy)]
pub enum Stage {
    Io(Behavior),
    IoBatch(usize, Behavior),
    /// Infallible: only its panics fail items.
    Cpu(Behavior),
    TryCpu(Behavior),
}

impl Stage {
    /// Adds the stage; an IO stage draws on `api`.
    pub fn add_to(self, p: Pipeline<u64>, api: &gearshift::Api) -> Pipeline<u64> {
        match self {
            Stage::Io(b) => p.io(move |x| b.io(x)).api(api),
            Stage::IoBatch(max, b) => p.io_batch(max, move |xs| b.io_batch(xs)).api(api),
            Stage::Cpu(b) => p.cpu(move |x| b.cpu(x).unwrap_or(x)),
            Stage::TryCpu(b) => p.try_cpu(move |x| b.cpu(x)),
        }
    }

    pub fn behavior(self) -> Behavior {
        match self {
            Stage::Io(b) | Stage::IoBatch(_, b) | Stage::Cpu(b) | Stage::TryCpu(b) => b,
        }
    }
}

pub fn stage() -> impl Strategy<Value = Stage> {
    let fault = prop_oneof![
        Just(Fault::Server),
        Just(Fault::Rejected),
        proptest::option::of(duration()).prop_map(Fault::RateLimited),
        Just(Fault::Panic),
        Just(Fault::WrongCount),
    ];
    let behavior = (prop_oneof![Just(0u64), 1u64..6], fault, any::<bool>())
        .prop_map(|(every, fault, slow)| Behavior { every, fault, slow });
    prop_oneof![
        3 => behavior.clone().prop_map(Stage::Io),
        1 => (count(), behavior.clone()).prop_map(|(n, b)| Stage::IoBatch(n, b)),
        2 => behavior.clone().prop_map(Stage::Cpu),
        1 => behavior.prop_map(Stage::TryCpu),
    ]
}
