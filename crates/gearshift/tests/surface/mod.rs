//! The cases of `property_surface`: extreme values, and the builder calls,
//! outputs and handle calls that carry them, with what each case may
//! legitimately take (a rate limit of 0.001/s is slow by the user's choice,
//! not a hang).

use std::time::Duration;

use gearshift::{
    Agents, Config, ErrorKind, OnError, Order, Pipeline, Preset, RetryPolicy, StageError,
};
use proptest::collection::vec;
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
fn count() -> impl Strategy<Value = usize> {
    prop_oneof![
        2 => prop_oneof![Just(1usize), Just(2), 3usize..64],
        1 => select(vec![MAX_CONCURRENCY, MAX_CAPACITY]),
        1 => select(vec![0, MAX_CONCURRENCY + 1, MAX_CAPACITY + 1, usize::MAX]),
    ]
}

fn float() -> impl Strategy<Value = f64> {
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

fn duration() -> impl Strategy<Value = Duration> {
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
            Field::ApiPermits(n) => c.api_permits = n,
            Field::RateLimit(r) => c.rate_limit = r,
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

fn field() -> impl Strategy<Value = Field> {
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

#[derive(Debug, Clone, Copy)]
pub enum Stage {
    Io(Behavior),
    IoBatch(usize, Behavior),
    /// Infallible: only its panics fail items.
    Cpu(Behavior),
    TryCpu(Behavior),
}

impl Stage {
    pub fn add_to(self, p: Pipeline<u64>) -> Pipeline<u64> {
        match self {
            Stage::Io(b) => p.io(move |x| b.io(x)),
            Stage::IoBatch(max, b) => p.io_batch(max, move |xs| b.io_batch(xs)),
            Stage::Cpu(b) => p.cpu(move |x| b.cpu(x).unwrap_or(x)),
            Stage::TryCpu(b) => p.try_cpu(move |x| b.cpu(x)),
        }
    }

    fn behavior(self) -> Behavior {
        match self {
            Stage::Io(b) | Stage::IoBatch(_, b) | Stage::Cpu(b) | Stage::TryCpu(b) => b,
        }
    }
}

fn stage() -> impl Strategy<Value = Stage> {
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

#[derive(Debug, Clone)]
pub enum BuildOp {
    Set(Field),
    /// `.config(..)`: `Config::default()`, or a preset's.
    Config(Option<Preset>),
    Preset(Preset),
    TimeOfDay(i32, Vec<(u8, Preset)>),
    After(Vec<(Duration, Preset)>),
    Stage(Stage),
    Named(String),
}

/// The name of a value's variant, from its `Debug`: `RateLimit(..)`.
fn variant(value: &impl std::fmt::Debug) -> String {
    let text = format!("{value:?}");
    let end = text.find(['(', ' ', '{']).unwrap_or(text.len());
    format!("{}(..)", &text[..end])
}

impl BuildOp {
    /// The builder call, without its values.
    pub fn label(&self) -> String {
        match self {
            BuildOp::Set(f) => format!("configure({})", variant(f)),
            BuildOp::Config(_) => "config(..)".into(),
            BuildOp::Preset(_) => "preset(..)".into(),
            BuildOp::TimeOfDay(..) => "Schedule::time_of_day(..)".into(),
            BuildOp::After(_) => "schedule(Schedule::after(..))".into(),
            BuildOp::Stage(s) => variant(s).to_lowercase(),
            BuildOp::Named(_) => "named(..)".into(),
        }
    }
}

fn preset() -> impl Strategy<Value = Preset> {
    select(Preset::ALL.to_vec())
}

fn build_op() -> impl Strategy<Value = BuildOp> {
    let offset = prop_oneof![-900i32..900, select(vec![i32::MIN, i32::MAX, -841, 841])];
    let hour = prop_oneof![0u8..24, select(vec![24u8, u8::MAX])];
    prop_oneof![
        4 => field().prop_map(BuildOp::Set),
        1 => proptest::option::of(preset()).prop_map(BuildOp::Config),
        1 => preset().prop_map(BuildOp::Preset),
        1 => (offset, vec((hour, preset()), 0..3)).prop_map(|(o, s)| BuildOp::TimeOfDay(o, s)),
        1 => vec((duration(), preset()), 0..3).prop_map(BuildOp::After),
        4 => stage().prop_map(BuildOp::Stage),
        1 => select(vec![String::new(), "a\u{0}b".into(), "é\n".repeat(100)]).prop_map(BuildOp::Named),
    ]
}

#[derive(Debug, Clone, Copy)]
pub enum Source {
    Iter(u64),
    /// A stream without a size hint: on a stop it is not read further.
    Unsized(u64),
    /// `from_try_stream`: every `every`-th item is an `Err`.
    Fallible(u64, u64),
    /// Items sent into a channel; closed before the run, or after the
    /// handle calls.
    Channel {
        n: u64,
        close_late: bool,
    },
}

impl Source {
    pub fn len(self) -> u64 {
        match self {
            Source::Iter(n) | Source::Unsized(n) | Source::Fallible(n, _) => n,
            Source::Channel { n, .. } => n,
        }
    }

    /// Whether a stop still takes every item (the rest of a finite
    /// iterator is drained as cancelled). A stop closes a channel, so later
    /// sends fail; a stream without a size hint is not read further.
    pub fn drained_on_stop(self) -> bool {
        matches!(self, Source::Iter(_) | Source::Fallible(..))
    }
}

fn source() -> impl Strategy<Value = Source> {
    let n = prop_oneof![Just(0u64), Just(1), 2u64..40];
    prop_oneof![
        2 => n.clone().prop_map(Source::Iter),
        1 => n.clone().prop_map(Source::Unsized),
        1 => (n.clone(), 1u64..5).prop_map(|(n, e)| Source::Fallible(n, e)),
        1 => (n, any::<bool>()).prop_map(|(n, close_late)| Source::Channel { n, close_late }),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Run,
    Collect,
    RunBlockingInside,
    RunBlockingOutside,
    Spawn,
    SpawnStream,
}

#[derive(Debug, Clone)]
pub enum HandleOp {
    AgentsPerCore(f64),
    Agents(usize),
    ApiPermits(usize),
    Workers(usize),
    ItemsPerBatch(usize),
    BatchWait(Duration),
    MaxInFlight(usize),
    RateLimit(Option<f64>),
    Apply(Preset),
    Cancel,
    Abort,
    Snapshot,
    WaitMs(u64),
}

impl HandleOp {
    /// The handle call, without its values.
    pub fn label(&self) -> String {
        variant(self)
    }
}

fn handle_op() -> impl Strategy<Value = HandleOp> {
    prop_oneof![
        float().prop_map(HandleOp::AgentsPerCore),
        count().prop_map(HandleOp::Agents),
        count().prop_map(HandleOp::ApiPermits),
        count().prop_map(HandleOp::Workers),
        count().prop_map(HandleOp::ItemsPerBatch),
        duration().prop_map(HandleOp::BatchWait),
        count().prop_map(HandleOp::MaxInFlight),
        proptest::option::of(float()).prop_map(HandleOp::RateLimit),
        preset().prop_map(HandleOp::Apply),
        Just(HandleOp::Cancel),
        Just(HandleOp::Abort),
        Just(HandleOp::Snapshot),
        (0u64..5).prop_map(HandleOp::WaitMs),
    ]
}

#[derive(Debug, Clone)]
pub struct Case {
    pub source: Source,
    pub build: Vec<BuildOp>,
    pub sink: bool,
    pub dead_letter: bool,
    mode: Mode,
    pub handle: Vec<HandleOp>,
}

pub fn case() -> impl Strategy<Value = Case> {
    let mode = select(vec![
        Mode::Run,
        Mode::Collect,
        Mode::RunBlockingInside,
        Mode::RunBlockingOutside,
        Mode::Spawn,
        Mode::SpawnStream,
    ]);
    (
        source(),
        vec(build_op(), 0..10),
        any::<bool>(),
        any::<bool>(),
        mode,
        vec(handle_op(), 0..8),
    )
        .prop_map(|(source, build, sink, dead_letter, mode, handle)| Case {
            source,
            build,
            sink,
            dead_letter,
            mode,
            handle,
        })
}

impl Case {
    /// The configuration the builder calls leave, as today's builder
    /// applies them (`.config` replaces, `.preset` sets the ratio knobs).
    pub fn mirror(&self) -> Config {
        let mut c = Config::default();
        for op in &self.build {
            match op {
                BuildOp::Set(f) => f.apply(&mut c),
                BuildOp::Config(p) => c = p.map_or_else(Config::default, Preset::config),
                BuildOp::Preset(p) => p.apply_to(&mut c),
                _ => {}
            }
        }
        c
    }

    /// Whether a valid run of this case may take long by the user's own
    /// choice: a slow rate, long backoffs, pauses or batch waits, a machine's
    /// worth of agents or threads. Such a case needs a handle, to abort it.
    fn may_take_long(&self) -> bool {
        let c = self.mirror();
        let stages = || {
            self.build.iter().filter_map(|op| match op {
                BuildOp::Stage(s) => Some(*s),
                _ => None,
            })
        };
        let paused = stages().any(|s| {
            matches!(s.behavior().fault, Fault::RateLimited(Some(d)) if d > Duration::from_millis(1))
        });
        // Retries wait only if something fails: a fault other than a panic
        // (any may be retried), or an IO call that can time out.
        let io = stages().any(|s| matches!(s, Stage::Io(_) | Stage::IoBatch(..)));
        let fails = stages()
            .any(|s| s.behavior().every > 0 && !matches!(s.behavior().fault, Fault::Panic))
            || (io && c.api_timeout < Duration::from_millis(10));
        let retries = c.retry.max_attempts.clamp(1, 1000) - 1;
        let backoff =
            fails && c.retry.max_backoff.saturating_mul(retries) > Duration::from_millis(50);
        !c.rate_limit.is_none_or(|r| r >= 1000.0)
            || c.batch_wait > Duration::from_millis(10)
            || backoff
            || paused
            || c.total_agents() > 4096
            || c.pool_threads() > 256
    }

    /// How the case ends: a case that may take long, or whose channel stays
    /// open until the handle calls are done, runs with a handle.
    pub fn mode(&self) -> Mode {
        let late = matches!(
            self.source,
            Source::Channel {
                close_late: true,
                ..
            }
        );
        match self.mode {
            Mode::Run | Mode::RunBlockingOutside if late || self.may_take_long() => Mode::Spawn,
            Mode::Collect if late || self.may_take_long() => Mode::SpawnStream,
            m => m,
        }
    }

    /// Whether the pipeline may stop itself before the source ends.
    pub fn cancels_on_error(&self) -> bool {
        self.mirror().on_error == OnError::Cancel
    }
}
