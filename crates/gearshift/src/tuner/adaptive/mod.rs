//! [`Adaptive`]: a tuner that finds the IO stage's concurrency from
//! throughput, latency and the queue into the CPU stage, and keeps finding
//! it as the workload shifts. The algorithm, its thresholds and its sources
//! are in `docs/tuner.md`.
//!
//! - `signals`: thin windows pooled, the latency estimates.
//! - `climb`: startup and the IO-bound hill climber.
//! - `cut`: multiplicative decreases on throttles and overload, the
//!   remembered ceiling, slow regrowth.
//! - `cpu`: the CPU-bound regime (Little's law, workers).
//! - `facts`: the numbers every decision's reason carries.
//! - this file: the settings, the state, and the order the rules run in.

mod climb;
mod cpu;
mod cut;
mod facts;
mod signals;

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use super::{Decision, Tuner, Window};
use climb::{Dir, Kept, Probe};
use cpu::is_full;
use facts::Facts;
use signals::{Latency, Pool};

/// The regime the tuner believes the pipeline is in; see
/// [`Adaptive::mode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Doubling the concurrency while throughput keeps growing (BBR's
    /// startup, TCP's slow start).
    Startup,
    /// IO-bound steady state: small probes up and down around the best
    /// setting, kept only when they pay, and a step down when latency rises
    /// past the no-load latency with no gain (the knee).
    IoBound,
    /// The CPU stage is the bottleneck: the IO stage is sized by Little's
    /// law to keep it fed, and the cores go to workers.
    CpuBound,
    /// The remote said stop (429/503, `Retry-After`): multiplicative
    /// decrease, then slow additive regrowth below the remembered ceiling.
    Throttled,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Startup => "startup",
            Mode::IoBound => "io-bound",
            Mode::CpuBound => "cpu-bound",
            Mode::Throttled => "throttled",
        })
    }
}

/// The adaptive tuner. Concurrency means agents and API permits together:
/// every decision sets both to the same number, so calls in flight never
/// exceed the concurrency it chose.
///
/// It is pure and deterministic: the same windows give the same decisions.
/// It starts from whatever agents the pipeline runs (read from the first
/// window) and keeps the concurrency within [`with_bounds`](Self::with_bounds).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use gearshift::tuner::{Adaptive, Mode, Tuner, Window};
///
/// let mut tuner = Adaptive::new(2).with_bounds(1, 256);
/// let window = Window {
///     elapsed: Duration::from_millis(500),
///     agents: 4,
///     io_completions: 100,
///     latency_p50: Some(Duration::from_millis(20)),
///     queue_capacity: 256,
///     ..Window::default()
/// };
/// let decision = tuner.decide(&window);
/// assert_eq!(decision.agents, Some(8)); // startup doubles
/// assert_eq!(decision.api_permits, Some(8)); // one call in flight per agent
/// assert_eq!(tuner.mode(), Mode::Startup);
/// assert!(decision.reason.contains("double"));
/// ```
#[derive(Debug, Clone)]
pub struct Adaptive {
    // Settings.
    cores: usize,
    min: usize,
    max: usize,
    headroom: f64,
    dead_band: f64,
    hysteresis: u32,
    decrease: f64,
    // State.
    mode: Mode,
    concurrency: usize,
    started: bool,
    pool: Pool,
    latency: Latency,
    /// What sizes the next window, from the last judged one: its median
    /// round trip, and its IO rate per unit of concurrency (to size the
    /// window for [`signals::MIN_ATTEMPTS`] at whatever concurrency comes
    /// next). `None` before the first judged window.
    pace: Option<(Duration, f64)>,
    /// Startup: the previous level and its rate; the best level so far.
    prev: Option<(usize, f64)>,
    tried: Vec<(usize, f64)>,
    /// IO-bound: the current level's recent rates, the best rate of the
    /// regime, the outstanding probe, the wait and backoff before the next.
    level: usize,
    rates: Vec<f64>,
    best_rate: f64,
    probe: Option<Probe>,
    next: Dir,
    wait: u32,
    backoff: u32,
    linear_ups: u32,
    /// The IO rate's relative spread per window at a steady level, squared
    /// (a moving average of the sample variance over the squared mean of
    /// the level's last windows): how many windows a probe's verdict needs.
    /// `None` until a level has had three windows.
    noise: Option<f64>,
    /// Probes kept in a row in one direction.
    trend: u32,
    /// The last kept probe, until it is checked once more.
    kept_from: Option<Kept>,
    /// Windows disagreeing with the current IO/CPU regime, in a row.
    streak: u32,
    /// The API got faster at this concurrency: the hill climber's first
    /// move is a probe down by half.
    halve: Option<String>,
    /// Judged windows since the last one with a timed-out call.
    since_timeout: u32,
    /// Calls have stalled since a probe up did not gain: the climb that
    /// found the level is over, and each step waits for the latency of
    /// several windows.
    stall_steady: bool,
    /// The share of attempts that time out when nothing is cut for it (a
    /// moving average): calls that stall whatever the concurrency, which
    /// are no overload. `None` until a window is judged.
    stall_share: Option<f64>,
    /// Throttled: windows of no growth left; the ceiling and its lifetime.
    cooldown: u32,
    ceiling: Option<usize>,
    ceiling_ttl: u32,
    /// The previous judged window ended in a multiplicative cut.
    just_cut: bool,
    /// The last overload cut: the level it cut to and the smoothed median
    /// before it, to see whether latency dropped with the cut.
    overload_cut: Option<(usize, Duration)>,
    /// Raw medians (and levels) of the last windows whose concurrency was
    /// sized by Little's law (a full channel) or a throttle, not by the
    /// API's latency: what a faster API is compared with.
    sized_rtts: VecDeque<(usize, Duration)>,
    /// Windows in a row whose agents differ from the chosen concurrency.
    mismatch: u32,
}

/// Agent time waiting for input past which the source is the limit.
const IDLE: f64 = 0.3;
/// Mean calls in flight below this fraction of the concurrency: the limit
/// is not binding.
const BINDING: f64 = 0.5;
/// Windows of disagreement before the tuner adopts the pipeline's agents.
const ADOPT_AFTER: u32 = 3;
/// Control window bounds.
const WINDOW_MIN: Duration = Duration::from_millis(100);
/// The tick before the first judged window, which ends as soon as every
/// agent has had a round trip (see [`Pool::push`]): with nothing to compare
/// it with, it only decides startup's first doubling, and a whole 100 ms at
/// the starting concurrency was a good part of a short job's startup loss.
const FIRST_TICK: Duration = Duration::from_millis(20);
const WINDOW_MAX: Duration = Duration::from_secs(1);

impl Default for Adaptive {
    /// [`Adaptive::new`] with the machine's logical cores.
    fn default() -> Self {
        Adaptive::new(num_cpus::get())
    }
}

impl Adaptive {
    /// A tuner for a pipeline on `cores` cores (0 is taken as 1). Until the
    /// first window says otherwise it assumes the seed's 2 agents per core;
    /// when the CPU stage is the bottleneck it raises workers to the pool's
    /// size, or to `cores` when the window does not give the pool's size.
    pub fn new(cores: usize) -> Self {
        let cores = cores.max(1);
        Adaptive {
            cores,
            min: 1,
            max: 4096,
            headroom: 1.5,
            dead_band: 0.05,
            hysteresis: 2,
            decrease: 0.7,
            mode: Mode::Startup,
            concurrency: (2 * cores).min(4096),
            started: false,
            pool: Pool::default(),
            latency: Latency::default(),
            pace: None,
            prev: None,
            tried: Vec::new(),
            level: 0,
            rates: Vec::new(),
            best_rate: 0.0,
            probe: None,
            next: Dir::Up,
            wait: 0,
            backoff: 1,
            linear_ups: 0,
            noise: None,
            trend: 0,
            kept_from: None,
            streak: 0,
            halve: None,
            since_timeout: u32::MAX,
            stall_steady: false,
            stall_share: None,
            cooldown: 0,
            ceiling: None,
            ceiling_ttl: 0,
            just_cut: false,
            overload_cut: None,
            sized_rtts: VecDeque::new(),
            mismatch: 0,
        }
    }

    /// Keeps the concurrency within `min..=max` (set it to the API's own
    /// limit when it has one). `min` below 1 is taken as 1, `max` below
    /// `min` as `min`. By default, 1 to 4096.
    pub fn with_bounds(mut self, min: usize, max: usize) -> Self {
        self.min = min.max(1);
        self.max = max.max(self.min);
        self.concurrency = self.concurrency.clamp(self.min, self.max);
        self
    }

    /// Headroom over Little's law when the CPU stage is the bottleneck:
    /// the IO stage keeps `cpu items/s x round trip x headroom` calls in
    /// flight, so the channel into the CPU stage stays fed. Values below 1
    /// (or not finite) are taken as 1. By default, 1.5.
    pub fn with_headroom(mut self, headroom: f64) -> Self {
        self.headroom = if headroom.is_finite() {
            headroom.max(1.0)
        } else {
            1.0
        };
        self
    }

    /// Throughput changes smaller than this fraction are noise: a probe
    /// must gain more to be kept, a step down may lose less. Clamped to
    /// 0.01..=0.5 (not finite: the default). By default, 0.05.
    pub fn with_dead_band(mut self, dead_band: f64) -> Self {
        self.dead_band = if dead_band.is_finite() {
            dead_band.clamp(0.01, 0.5)
        } else {
            0.05
        };
        self
    }

    /// Consecutive windows that must agree before the tuner switches between
    /// IO-bound and CPU-bound (0 is taken as 1). By default, 2.
    pub fn with_hysteresis(mut self, windows: u32) -> Self {
        self.hysteresis = windows.max(1);
        self
    }

    /// The factor a throttle (or overload) cut multiplies the concurrency
    /// by. Clamped to 0.3..=0.9 (not finite: the default). By default, 0.7.
    pub fn with_decrease(mut self, factor: f64) -> Self {
        self.decrease = if factor.is_finite() {
            factor.clamp(0.3, 0.9)
        } else {
            0.7
        };
        self
    }

    /// The regime the tuner is in now.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The concurrency (agents and API permits) it last chose.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// The no-load latency estimate: the smallest smoothed median latency
    /// of the last 20 judged windows; `None` until a window after the first
    /// (whose median is only its fastest calls) has a completion.
    pub fn no_load_latency(&self) -> Option<Duration> {
        self.latency.no_load()
    }

    /// The concurrency a throttle was seen at, while it is remembered: the
    /// tuner stays below it. `None` when no throttle is remembered.
    pub fn ceiling(&self) -> Option<usize> {
        self.ceiling
    }
}

impl Tuner for Adaptive {
    fn name(&self) -> &str {
        "adaptive"
    }

    /// About two round trips, and long enough for
    /// [`signals::MIN_ATTEMPTS`] completions at the current concurrency,
    /// within 100 ms ..= 1 s; a short tick until the first judged window.
    fn window(&self) -> Duration {
        let Some((rtt, per_call)) = self.pace else {
            return FIRST_TICK;
        };
        let rate = per_call * self.concurrency as f64;
        let fill = if rate > 0.0 {
            Duration::try_from_secs_f64(signals::MIN_ATTEMPTS as f64 / rate).unwrap_or(WINDOW_MAX)
        } else {
            WINDOW_MAX
        };
        signals::scale(rtt, 2.0)
            .max(fill)
            .clamp(WINDOW_MIN, WINDOW_MAX)
    }

    fn decide(&mut self, raw: &Window) -> Decision {
        self.adopt(raw);
        let first = self.pace.is_none();
        let Some(w) = self.pool.push(raw, first) else {
            let f = Facts::of(raw, self);
            return self.hold(
                &f,
                format!(
                    "{} attempts so far: pooling until {}",
                    raw.attempts(),
                    signals::MIN_ATTEMPTS
                ),
            );
        };
        let c = self.concurrency;
        let mut changed = false;
        let mut faster = false;
        // The first window ends once as many calls are back as agents run:
        // the fastest calls, on a heavy-tailed API a median of 6.4 ms
        // against its 12 ms. As the no-load latency it fired the knee rule
        // at 3 to 5 agents (a cold start in the bench's `tail` phase); it
        // only sizes the next window.
        if let Some(p50) = w.latency_p50.filter(|_| !first) {
            let before = self.latency.no_load();
            changed = self
                .latency
                .observe(c, p50, w.io_rate(), w.peak_in_flight > c);
            faster = before.is_some_and(|b| p50 < b);
        }
        if w.latency_p50.is_some() {
            self.set_pace(&w);
        }
        self.since_timeout = if w.timeouts > 0 {
            0
        } else {
            self.since_timeout.saturating_add(1)
        };
        self.stall_steady &= self.stalling();
        let f = Facts::of(&w, self);
        if changed {
            self.forget_regime(faster);
        }
        self.tick_ceiling();
        let was_cut = std::mem::take(&mut self.just_cut);
        if w.throttled > 0 || w.retry_after.is_some() {
            return self.on_throttle(&w, &f, was_cut);
        }
        if let Some(d) = self.slower_at_a_held_level(&w, &f, changed) {
            return d;
        }
        if let Some(d) = self.on_overload(&w, &f, was_cut) {
            return d;
        }
        self.learn_stall_share(&w);
        let full = is_full(&w);
        self.track_regime(full);
        self.faster_api(&w, full);
        match self.mode {
            Mode::CpuBound => self.cpu_bound(&w, &f),
            _ if full => {
                self.probe = None;
                self.prev = None;
                self.hold(
                    &f,
                    "the channel into the CPU stage is full: no growth".into(),
                )
            }
            Mode::Throttled => self.regrow(&w, &f),
            _ if w.io_completions == 0 => {
                self.hold(&f, "no completed call: nothing to judge".into())
            }
            Mode::Startup => self.startup(&w, &f, changed),
            Mode::IoBound => self.io_bound(&w, &f),
        }
    }
}

impl Adaptive {
    /// Takes the pipeline's agents on the first window, and later when they
    /// keep differing from the chosen concurrency (someone changed them by
    /// hand, or the engine refused a change).
    fn adopt(&mut self, w: &Window) {
        if w.agents == 0 {
            return;
        }
        let agents = w.agents.clamp(self.min, self.max);
        if !self.started {
            self.started = true;
            self.concurrency = agents;
            return;
        }
        if agents == self.concurrency {
            self.mismatch = 0;
            return;
        }
        self.mismatch += 1;
        if self.mismatch >= ADOPT_AFTER {
            self.mismatch = 0;
            self.concurrency = agents;
            self.probe = None;
            self.prev = None;
            self.rates.clear();
        }
    }

    /// Learns what sizes the next window (see [`Tuner::window`]): the
    /// round trip, and the rate per call, so the window holds
    /// [`signals::MIN_ATTEMPTS`] completions at the concurrency the decision
    /// sets, not the one just measured (after a doubling from 4 agents the
    /// window sized for 4 lasted 150 ms where 100 ms held 18 completions).
    fn set_pace(&mut self, w: &Window) {
        let rtt = self
            .latency
            .current(self.concurrency)
            .or(w.latency_p50)
            .unwrap_or_default();
        let per_call = w.io_rate() / self.concurrency.max(1) as f64;
        self.pace = Some((rtt, per_call));
    }

    /// The API changed speed at constant concurrency: what was learned
    /// about it is stale. Start over (a phase shift, not our own queueing).
    /// Slower: from startup. Faster: the concurrency may now sit far past
    /// the new knee, and the only latency seen of the new API was measured
    /// there (it may be all queue, so the knee rule is blind): probe down
    /// by half first (in CpuBound, once the channel is no longer full).
    fn forget_regime(&mut self, faster: bool) {
        self.forget_rates();
        self.stall_share = None;
        self.tried.clear();
        self.prev = None;
        self.probe = None;
        self.kept_from = None;
        self.linear_ups = 0;
        self.stall_steady = false;
        self.halve = faster.then(|| "the API got faster".to_string());
        match self.mode {
            Mode::IoBound | Mode::Throttled if faster => self.enter_io_bound(self.concurrency),
            Mode::IoBound => self.mode = Mode::Startup,
            _ => {}
        }
    }

    /// IO-bound, holding a level, no call timing out: when its median rose
    /// past the knee and by a quarter over its median on arrival, the API
    /// itself got slower (by less than the 2x a detected change of speed
    /// needs), as the same calls of ours cannot make a longer queue.
    /// Relearn the no-load latency here and forget the old API's rates and
    /// the backoff earned on them.
    /// Else the knee rule and the overload cut read the stale no-load
    /// latency as a queue of ours: at the bench's `tail` -> `timeouts`
    /// (12 ms -> 20 ms) they cut 20 calls to 14 once calls began to time
    /// out, and the climb to the best 44 took another 1.5 s. Not while
    /// calls time out: then the calls the API serves drift with those that
    /// stall, and their queue with them.
    fn slower_at_a_held_level(&mut self, w: &Window, f: &Facts, changed: bool) -> Option<Decision> {
        let c = self.concurrency;
        let moving = self.mode != Mode::IoBound || self.probe.is_some() || changed;
        if moving || is_full(w) || self.stalling() || self.latency.inflation(c) <= climb::KNEE {
            return None;
        }
        let (then, now) = self.latency.rose_at(c)?;
        let relearned = self.relearn_no_load(c);
        self.forget_rates();
        Some(self.hold(
            f,
            format!(
                "the median at {c} rose from {:.1} to {:.1} ms while held: the API got slower, \
                 {relearned}",
                signals::ms(Some(then)),
                signals::ms(Some(now)),
            ),
        ))
    }

    /// Relearns the no-load latency at `level`, shown to carry no queue;
    /// says which stale estimate it replaced, for the reason.
    fn relearn_no_load(&mut self, level: usize) -> String {
        let stale = self.latency.no_load();
        self.latency.rebase(level);
        format!(
            "no-load latency {:.1} ms was stale, relearned",
            signals::ms(stale)
        )
    }

    /// Why more concurrency would not help, if it would not: agents wait
    /// for input, or calls in flight stay well under the limit.
    fn not_binding(&self, w: &Window) -> Option<String> {
        if w.agents_idle > IDLE {
            return Some(format!(
                "agents idle {:.0}% (the source is the limit)",
                w.agents_idle * 100.0
            ));
        }
        // The mean counts a call in the window it ends in, so a short window
        // right after a growth reads low; calls in flight at the limit at
        // some point show it binds.
        let c = self.concurrency as f64;
        let reached = w.peak_in_flight >= self.concurrency;
        if !reached && w.mean_in_flight > 0.0 && w.mean_in_flight < BINDING * c {
            return Some(format!(
                "{:.1} calls in flight on average of {c} (the limit is not binding)",
                w.mean_in_flight
            ));
        }
        None
    }

    /// The most concurrency allowed now: the upper bound, or just below a
    /// remembered throttle ceiling.
    fn cap(&self) -> usize {
        match self.ceiling {
            Some(t) => t.saturating_sub(1).clamp(self.min, self.max),
            None => self.max,
        }
    }

    /// Moves to `want`, at most doubling or halving, within the bounds and
    /// under the ceiling; sets API permits to the same number.
    fn set(&mut self, want: usize, workers: Option<usize>, f: &Facts, rule: String) -> Decision {
        let c = self.concurrency;
        let lo = (c / 2).max(1);
        let hi = c.saturating_mul(2).max(1);
        let next = want.clamp(lo, hi).clamp(self.min, self.cap());
        self.concurrency = next;
        let workers = workers.filter(|&n| n != f.workers);
        let reason = self.reason(f, &rule, Some(next));
        if next == c && workers.is_none() {
            return Decision::hold(reason);
        }
        Decision {
            agents: (next != c).then_some(next),
            api_permits: (next != c).then_some(next),
            workers,
            reason,
        }
    }

    fn hold(&self, f: &Facts, rule: String) -> Decision {
        Decision::hold(self.reason(f, &rule, None))
    }

    fn reason(&self, f: &Facts, rule: &str, next: Option<usize>) -> String {
        let f = f.clone().with_no_load(self.latency.no_load());
        match next {
            Some(n) if n != f.concurrency => {
                format!("{}: {rule} => {} -> {n} [{f}]", self.mode, f.concurrency)
            }
            _ => format!("{}: {rule} => hold [{f}]", self.mode),
        }
    }
}
