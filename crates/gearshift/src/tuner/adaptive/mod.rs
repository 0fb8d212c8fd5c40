//! [`Adaptive`]: a tuner that finds the IO stage's concurrency from
//! throughput, latency and the queue into the CPU stage, and keeps finding
//! it as the workload shifts. The algorithm, its thresholds and its sources
//! are in `docs/tuner.md`.
//!
//! - `signals`: thin windows pooled, the latency estimates.
//! - `facts`: the numbers every decision's reason carries.
//! - this file: the modes and the rules.

mod facts;
mod signals;

use std::fmt;
use std::time::Duration;

use super::{Decision, Tuner, Window};
use facts::Facts;
use signals::{Latency, Pool, secs};

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
    window: Duration,
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
    /// Accepted probes down in a row: each doubles the next step (up to 8x).
    descent: u32,
    /// Windows disagreeing with the current IO/CPU regime, in a row.
    streak: u32,
    /// Throttled: windows of no growth left; the ceiling and its lifetime.
    cooldown: u32,
    ceiling: Option<usize>,
    ceiling_ttl: u32,
    /// The previous judged window ended in a multiplicative cut.
    just_cut: bool,
    /// Windows in a row whose agents differ from the chosen concurrency.
    mismatch: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    Up,
    Down,
}

#[derive(Debug, Clone, Copy)]
struct Probe {
    from: usize,
    reference: f64,
    dir: Dir,
}

/// Startup keeps doubling while a doubling gains at least this fraction.
const STARTUP_GAIN: f64 = 0.25;
/// Startup stops when the median latency passes this multiple of no-load.
const STARTUP_INFLATION: f64 = 2.0;
/// Median latency over no-load latency past which the API is queueing.
const KNEE: f64 = 1.5;
/// Windows of wait after a failed probe: doubles per failure up to this.
const MAX_BACKOFF: u32 = 16;
/// Accepted probes down in a row double the step, at most this many times.
const MAX_DESCENT: u32 = 3;
/// Rates kept per level for the probe reference.
const LEVEL_WINDOWS: usize = 4;
/// The best rate decays by this factor per window, so it cannot go stale.
const BEST_DECAY: f64 = 0.99;
/// Fraction of attempts timing out (with inflated latency) that is overload.
const OVERLOAD_TIMEOUTS: f64 = 0.05;
/// Channel occupancy (of capacity) that counts as full.
const FULL: f64 = 0.8;
/// Fraction of agent time blocked on the full channel that counts as full.
const BLOCKED: f64 = 0.2;
/// Agent time waiting for input past which the source is the limit.
const IDLE: f64 = 0.3;
/// Mean calls in flight below this fraction of the concurrency: the limit
/// is not binding.
const BINDING: f64 = 0.5;
/// Worker idle time below which the CPU stage counts as saturated.
const WORKERS_BUSY: f64 = 0.1;
/// Windows of no growth after a throttle cut.
const COOLDOWN: u32 = 2;
/// Windows a throttle ceiling is remembered after the last throttle.
const CEILING_TTL: u32 = 40;
/// Windows of disagreement before the tuner adopts the pipeline's agents.
const ADOPT_AFTER: u32 = 3;
/// Control window bounds.
const WINDOW_MIN: Duration = Duration::from_millis(100);
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
            window: Duration::from_millis(250),
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
            descent: 0,
            streak: 0,
            cooldown: 0,
            ceiling: None,
            ceiling_ttl: 0,
            just_cut: false,
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
    /// of the last 20 judged windows; `None` before the first completion.
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

    fn window(&self) -> Duration {
        self.window
    }

    fn decide(&mut self, raw: &Window) -> Decision {
        self.adopt(raw);
        let Some(w) = self.pool.push(raw) else {
            let f = Facts::of(raw, self);
            return self.hold(
                &f,
                format!(
                    "{} attempts so far: pooling until {}",
                    raw.io_completions.saturating_add(raw.timeouts),
                    signals::MIN_ATTEMPTS
                ),
            );
        };
        let c = self.concurrency;
        let mut changed = false;
        if let Some(p50) = w.latency_p50 {
            changed = self.latency.observe(c, p50, w.io_rate());
            self.set_window(&w);
        }
        let f = Facts::of(&w, self);
        if changed {
            self.forget_regime();
        }
        self.tick_ceiling();
        let was_cut = std::mem::take(&mut self.just_cut);
        if w.throttled > 0 || w.retry_after.is_some() {
            return self.on_throttle(&w, &f, was_cut);
        }
        if let Some(d) = self.on_overload(&w, &f, was_cut) {
            return d;
        }
        let full = is_full(&w);
        self.track_regime(full);
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

    /// About two median round trips, and long enough for
    /// [`signals::MIN_ATTEMPTS`] completions, within 100 ms ..= 1 s.
    fn set_window(&mut self, w: &Window) {
        let rtt = self
            .latency
            .current(self.concurrency)
            .or(w.latency_p50)
            .unwrap_or_default();
        let rate = w.io_rate();
        let fill = if rate > 0.0 {
            signals::MIN_ATTEMPTS as f64 / rate
        } else {
            0.0
        };
        let want =
            signals::scale(rtt, 2.0).max(Duration::try_from_secs_f64(fill).unwrap_or(WINDOW_MAX));
        self.window = want.clamp(WINDOW_MIN, WINDOW_MAX);
    }

    /// The API changed speed at constant concurrency: what was learned
    /// about it is stale. Start over (a phase shift, not our own queueing).
    fn forget_regime(&mut self) {
        self.best_rate = 0.0;
        self.tried.clear();
        self.prev = None;
        self.probe = None;
        self.rates.clear();
        self.wait = 0;
        self.backoff = 1;
        self.linear_ups = 0;
        if self.mode == Mode::IoBound {
            self.mode = Mode::Startup;
        }
    }

    fn tick_ceiling(&mut self) {
        if self.ceiling.is_some() {
            self.ceiling_ttl = self.ceiling_ttl.saturating_sub(1);
            if self.ceiling_ttl == 0 {
                self.ceiling = None;
            }
        }
    }

    /// 429/503 or `Retry-After`: cut by the decrease factor, remember the
    /// ceiling, cool down. The engine has already paused the stage.
    fn on_throttle(&mut self, w: &Window, f: &Facts, was_cut: bool) -> Decision {
        let c = self.concurrency;
        self.mode = Mode::Throttled;
        self.cooldown = COOLDOWN;
        self.ceiling_ttl = CEILING_TTL;
        self.probe = None;
        self.prev = None;
        self.best_rate = 0.0;
        let why = format!("{} throttled, retry-after {:?}", w.throttled, w.retry_after);
        if was_cut && w.peak_in_flight > c {
            return self.hold(
                f,
                format!(
                    "{why}: calls sent before the last cut were still in flight (peak {}): no second cut",
                    w.peak_in_flight
                ),
            );
        }
        let ceiling = self.ceiling.map_or(c, |old| old.min(c));
        self.ceiling = Some(ceiling);
        self.just_cut = true;
        let want = (c as f64 * self.decrease).floor() as usize;
        self.set(
            want,
            None,
            f,
            format!(
                "{why}: x{} ({c} -> {want}), ceiling {ceiling} for {CEILING_TTL} windows",
                self.decrease
            ),
        )
    }

    /// Timeouts on a queueing API: the same cut as a throttle, no ceiling.
    fn on_overload(&mut self, w: &Window, f: &Facts, was_cut: bool) -> Option<Decision> {
        let attempts = w.io_completions.saturating_add(w.timeouts);
        let share = w.timeouts as f64 / attempts.max(1) as f64;
        let inflation = self.latency.inflation(self.concurrency);
        let queueing = w.latency_p50.is_none() || inflation > KNEE;
        if share < OVERLOAD_TIMEOUTS || !queueing {
            return None;
        }
        if self.mode == Mode::CpuBound {
            return None;
        }
        let c = self.concurrency;
        let why = format!(
            "{} of {attempts} attempts timed out ({:.0}%), latency {inflation:.2}x no-load",
            w.timeouts,
            share * 100.0
        );
        self.probe = None;
        self.prev = None;
        self.rates.clear();
        if self.mode == Mode::Startup {
            self.mode = Mode::IoBound;
        }
        if was_cut && w.peak_in_flight > c {
            return Some(self.hold(f, format!("{why}: already cut last window")));
        }
        self.just_cut = true;
        self.next = Dir::Up;
        self.wait = self.backoff;
        let want = (c as f64 * self.decrease).floor() as usize;
        Some(self.set(
            want,
            None,
            f,
            format!("overload, {why}: x{} ({c} -> {want})", self.decrease),
        ))
    }

    /// Counts windows disagreeing with the current regime and switches
    /// after `hysteresis` of them in a row.
    fn track_regime(&mut self, full: bool) {
        if (self.mode == Mode::CpuBound) == full {
            self.streak = 0;
            return;
        }
        self.streak += 1;
        if self.streak < self.hysteresis {
            return;
        }
        self.streak = 0;
        self.mode = if full { Mode::CpuBound } else { Mode::IoBound };
        self.probe = None;
        self.prev = None;
        self.rates.clear();
        self.best_rate = 0.0;
        self.next = Dir::Up;
        self.wait = 0;
        self.backoff = 1;
    }

    /// CPU-bound: never grow; shrink to Little's law with headroom; give
    /// the CPU stage all the pool's threads when its workers are busy.
    fn cpu_bound(&mut self, w: &Window, f: &Facts) -> Decision {
        let rtt = self.latency.current(self.concurrency).or(w.latency_p50);
        let (Some(rtt), true) = (rtt, w.cpu_items > 0) else {
            return self.hold(
                f,
                "no CPU items or no round trip measured: cannot size".into(),
            );
        };
        let pool = if w.max_workers > 0 {
            w.max_workers
        } else {
            self.cores
        };
        let workers = (w.workers < pool && w.workers_idle < WORKERS_BUSY).then_some(pool);
        // With more workers the CPU stage will take more: size for that.
        let scale = match workers {
            Some(p) if w.workers > 0 => p as f64 / w.workers as f64,
            _ => 1.0,
        };
        let cpu_rate = w.cpu_rate() * scale;
        let little = (cpu_rate * secs(rtt) * self.headroom).ceil();
        let little = if little.is_finite() {
            little as usize
        } else {
            usize::MAX
        };
        let want = little.min(self.concurrency);
        let rule = format!(
            "little's law: cpu {cpu_rate:.1}/s x rtt {:.1} ms x headroom {} = {little}{}",
            secs(rtt) * 1e3,
            self.headroom,
            match workers {
                Some(p) => format!(
                    "; workers busy ({:.0}% idle): {} -> {p}",
                    w.workers_idle * 100.0,
                    w.workers
                ),
                None => String::new(),
            }
        );
        self.set(want, workers, f, rule)
    }

    /// Throttled, no throttle this window: cool down, then grow by a
    /// twentieth per window up to just below the ceiling.
    fn regrow(&mut self, w: &Window, f: &Facts) -> Decision {
        let c = self.concurrency;
        if self.cooldown > 0 {
            self.cooldown -= 1;
            return self.hold(
                f,
                format!(
                    "cooling down after a throttle, {} more windows",
                    self.cooldown
                ),
            );
        }
        if let Some(why) = self.not_binding(w) {
            return self.hold(f, format!("{why}: no regrowth"));
        }
        let cap = self.cap();
        if c >= cap {
            self.enter_io_bound(c);
            return self.hold(
                f,
                format!(
                    "regrown to {c}, just below the throttle ceiling {:?}: hill climbing resumes",
                    self.ceiling
                ),
            );
        }
        let step = ((c as f64 * self.dead_band).ceil() as usize).max(1);
        let want = (c + step).min(cap);
        self.set(
            want,
            None,
            f,
            format!("slow regrowth after a throttle: +{step} (cap {cap})"),
        )
    }

    /// Startup: double while a doubling gains at least 25% and latency
    /// stays under 2x no-load; then settle at the best level seen.
    fn startup(&mut self, w: &Window, f: &Facts, changed: bool) -> Decision {
        if let Some(why) = self.not_binding(w) {
            self.prev = None;
            return self.hold(f, format!("{why}: no doubling"));
        }
        let c = self.concurrency;
        let rate = w.io_rate();
        if self.prev.is_none() {
            self.tried.clear();
        }
        self.tried.push((c, rate));
        let inflation = self.latency.inflation(c);
        let grew = match self.prev {
            Some((pc, pr)) if pc < c => Some(rate >= pr * (1.0 + STARTUP_GAIN)),
            Some(_) => Some(false),
            None => None,
        };
        let room = c < self.cap();
        if grew != Some(false) && room && inflation < STARTUP_INFLATION {
            self.prev = Some((c, rate));
            let why = match (grew, changed) {
                (_, true) => "the API changed speed".to_string(),
                (None, _) => "first window".to_string(),
                (Some(_), _) => "a doubling gained >= 25%".to_string(),
            };
            return self.set(c.saturating_mul(2), None, f, format!("{why}: double {c}"));
        }
        let (best, best_rate) = self.best_tried();
        // BBR's drain: the calls in flight that rate needs without queueing
        // (rate x no-load latency), between the level below and the best.
        let below = self.tried.iter().map(|t| t.0).filter(|&l| l < best).max();
        let no_load = self.latency.no_load().map_or(0.0, secs);
        let bdp = (best_rate * no_load * (1.0 + self.dead_band)).ceil();
        let target = match below {
            Some(b) if bdp.is_finite() => (bdp as usize).clamp(b, best),
            _ => best,
        };
        self.tried.clear();
        self.enter_io_bound(target);
        self.wait = 1;
        let why = if !room {
            "at the upper bound".to_string()
        } else if inflation >= STARTUP_INFLATION {
            format!("latency {inflation:.2}x no-load")
        } else {
            let before = self.prev.map_or(0.0, |p| p.1);
            format!("a doubling gained < 25% ({before:.1} -> {rate:.1}/s)")
        };
        self.prev = None;
        self.set(
            target,
            None,
            f,
            format!(
                "{why}: startup ends; best level {best} ({best_rate:.1}/s), \
                 rate x no-load latency {bdp:.0}: {target}"
            ),
        )
    }

    /// IO-bound: judge the last probe, or wait, or probe a small step up or
    /// down (down when latency says the API is queueing with no gain).
    fn io_bound(&mut self, w: &Window, f: &Facts) -> Decision {
        let c = self.concurrency;
        let rate = w.io_rate();
        let db = self.dead_band;
        if let Some(p) = self.probe.take() {
            return self.judge(p, w, f);
        }
        if self.level != c {
            self.level = c;
            self.rates.clear();
        }
        self.rates.push(rate);
        if self.rates.len() > LEVEL_WINDOWS {
            self.rates.remove(0);
        }
        let mean = self.level_rate();
        self.best_rate = (self.best_rate * BEST_DECAY).max(mean);
        let inflation = self.latency.inflation(c);
        let knee = inflation > KNEE
            && self.latency.samples_at(c) >= 2
            && mean <= self.best_rate * (1.0 + db);
        let strong = knee && inflation > 2.0 * KNEE;
        if self.wait > 0 && !strong {
            self.wait -= 1;
            return self.hold(
                f,
                format!(
                    "holding at {c} ({mean:.1}/s); next probe in {} windows",
                    self.wait + 1
                ),
            );
        }
        let dir = if knee { Dir::Down } else { self.next };
        let step = self.step(c);
        if dir == Dir::Down && c <= self.min {
            self.next = Dir::Up;
            if knee {
                return self.hold(
                    f,
                    format!("the knee (latency {inflation:.2}x no-load), at the minimum"),
                );
            }
        }
        match dir {
            Dir::Down if c > self.min => {
                self.probe = Some(Probe {
                    from: c,
                    reference: mean,
                    dir,
                });
                let why = if knee {
                    format!("the knee: latency {inflation:.2}x no-load with no gain")
                } else {
                    "probe down".to_string()
                };
                self.set(c - step, None, f, format!("{why}: -{step}"))
            }
            _ => {
                if let Some(why) = self.not_binding(w) {
                    return self.hold(f, format!("{why}: no probe up"));
                }
                if c >= self.cap() {
                    self.next = Dir::Down;
                    return self.hold(f, format!("at the cap {}: no probe up", self.cap()));
                }
                self.probe = Some(Probe {
                    from: c,
                    reference: mean,
                    dir: Dir::Up,
                });
                self.set(c + step, None, f, format!("probe up: +{step}"))
            }
        }
    }

    /// Keeps a probe that paid (and takes the next step in its direction at
    /// once), or reverts one that did not and backs off.
    fn judge(&mut self, p: Probe, w: &Window, f: &Facts) -> Decision {
        let c = self.concurrency;
        let rate = w.io_rate();
        let db = self.dead_band;
        let r = p.reference;
        let paid = match p.dir {
            Dir::Up => rate > r * (1.0 + db),
            Dir::Down => rate >= r * (1.0 - db) && rate >= self.best_rate * (1.0 - db),
        };
        let moved = format!("{} -> {c} ({r:.1} -> {rate:.1}/s)", p.from);
        if !paid {
            self.next = match p.dir {
                Dir::Up => Dir::Down,
                Dir::Down => Dir::Up,
            };
            self.wait = self.backoff;
            self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
            self.linear_ups = 0;
            self.descent = 0;
            self.level = p.from;
            let kind = if p.dir == Dir::Up {
                "gain"
            } else {
                "hold the rate"
            };
            return self.set(
                p.from,
                None,
                f,
                format!(
                    "probe {moved} did not {kind}: back, wait {} windows",
                    self.wait
                ),
            );
        }
        self.level = c;
        self.rates = vec![rate];
        self.best_rate = self.best_rate.max(rate);
        self.next = p.dir;
        self.wait = 0;
        self.backoff = 1;
        if p.dir == Dir::Down {
            self.descent = (self.descent + 1).min(MAX_DESCENT);
            let step = self.step(c) << self.descent;
            if c <= self.min {
                return self.hold(
                    f,
                    format!("probe {moved} held the rate: kept, at the minimum"),
                );
            }
            self.probe = Some(Probe {
                from: c,
                reference: rate,
                dir: Dir::Down,
            });
            return self.set(
                c.saturating_sub(step),
                None,
                f,
                format!("probe {moved} held the rate: kept; down again -{step}"),
            );
        }
        self.descent = 0;
        let step = self.step(c);
        // Near-linear gains twice in a row: the API has much more room.
        let linear = rate >= r * (1.0 + 0.75 * (c as f64 / p.from.max(1) as f64 - 1.0));
        self.linear_ups = if linear { self.linear_ups + 1 } else { 0 };
        if self.linear_ups >= 2 {
            self.linear_ups = 0;
            self.mode = Mode::Startup;
            self.prev = Some((c, rate));
            self.tried = vec![(c, rate)];
            return self.set(
                c.saturating_mul(2),
                None,
                f,
                format!("probe {moved} scaled near-linearly twice: startup again, double {c}"),
            );
        }
        if let Some(why) = self.not_binding(w) {
            return self.hold(f, format!("probe {moved} paid: kept; {why}"));
        }
        if c >= self.cap() {
            return self.hold(f, format!("probe {moved} paid: kept, at the cap"));
        }
        self.probe = Some(Probe {
            from: c,
            reference: rate,
            dir: Dir::Up,
        });
        self.set(
            c + step,
            None,
            f,
            format!("probe {moved} paid: kept; up again +{step}"),
        )
    }

    /// The smallest level startup tried whose rate is within the dead band
    /// of the best rate it saw.
    fn best_tried(&self) -> (usize, f64) {
        let top = self.tried.iter().map(|t| t.1).fold(0.0, f64::max);
        self.tried
            .iter()
            .filter(|t| t.1 >= top * (1.0 - self.dead_band))
            .min_by_key(|t| t.0)
            .copied()
            .unwrap_or((self.concurrency, 0.0))
    }

    fn enter_io_bound(&mut self, level: usize) {
        self.mode = Mode::IoBound;
        self.level = level;
        self.rates.clear();
        self.probe = None;
        self.next = Dir::Up;
        self.wait = 0;
        self.backoff = 1;
        self.linear_ups = 0;
        self.descent = 0;
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
        let c = self.concurrency as f64;
        if w.mean_in_flight > 0.0 && w.mean_in_flight < BINDING * c {
            return Some(format!(
                "{:.1} calls in flight on average of {c} (the limit is not binding)",
                w.mean_in_flight
            ));
        }
        None
    }

    /// A probe step: twice the dead band of the concurrency, at least one.
    fn step(&self, c: usize) -> usize {
        ((c as f64 * 2.0 * self.dead_band).ceil() as usize).max(1)
    }

    fn level_rate(&self) -> f64 {
        if self.rates.is_empty() {
            0.0
        } else {
            self.rates.iter().sum::<f64>() / self.rates.len() as f64
        }
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

/// The channel into the CPU stage stayed nearly full, or agents spent a
/// fifth of their time blocked on it.
fn is_full(w: &Window) -> bool {
    let queue_full = w.queue_capacity > 0 && w.queue_min as f64 >= FULL * w.queue_capacity as f64;
    queue_full || w.agents_blocked > BLOCKED
}
