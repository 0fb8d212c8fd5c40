//! The cases of `property_surface`: the builder calls, outputs and handle
//! calls that carry extreme values (`values`), with what each case may
//! legitimately take (a rate limit of 0.001/s is slow by the user's choice,
//! not a hang). `run` runs one case, `watch` guards it, `guard` turns a
//! panic or a hang of a call into a failure.

pub mod guard;
pub mod run;
mod values;
pub mod watch;

use std::time::Duration;

use gearshift::{Config, OnError, Preset};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

pub use values::MARKER;
use values::{Fault, Field, Stage, count, duration, field, float, stage};

/// A builder call.
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

/// Where the items come from.
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

/// How the case runs the pipeline to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Run,
    Collect,
    RunBlockingInside,
    RunBlockingOutside,
    Spawn,
    SpawnStream,
}

/// A handle call, made after `spawn` (with a short wait between calls
/// when the case asks for one).
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

/// One case: a source, builder calls, outputs (a sink and a dead-letter
/// sink, set after the builder calls), how it runs, and handle calls.
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
    /// The configuration the builder calls leave, by the documented rule:
    /// `.configure` changes what came before, `.config` replaces it, and
    /// the last `.preset` stays on top of a later `.config`.
    pub fn mirror(&self) -> Config {
        let mut c = Config::default();
        let mut preset = None;
        for op in &self.build {
            match op {
                BuildOp::Set(f) => f.apply(&mut c),
                BuildOp::Config(base) => {
                    c = base.map_or_else(Config::default, Preset::config);
                    preset.inspect(|p: &Preset| p.apply_to(&mut c));
                }
                BuildOp::Preset(p) => {
                    p.apply_to(&mut c);
                    preset = Some(*p);
                }
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
        // The case's API keeps any rate it was given (a builder sets, never
        // lifts): slow if any was slow.
        let slow_rate = self.build.iter().any(
            |op| matches!(op, BuildOp::Set(Field::RateLimit(Some(r))) if r.is_nan() || *r < 1000.0),
        );
        slow_rate
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
        // A sink takes the outcomes: there is no stream to collect (the
        // type system refuses `sink(..).collect()`).
        let mode = match self.mode {
            Mode::Collect if self.sink => Mode::Run,
            Mode::SpawnStream if self.sink => Mode::Spawn,
            m => m,
        };
        match mode {
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
