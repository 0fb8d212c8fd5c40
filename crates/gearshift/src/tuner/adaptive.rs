//! [`Adaptive`]: a tuner that finds the IO stage's concurrency from
//! throughput, latency and queue depth, and keeps finding it as the
//! workload shifts. The algorithm and its sources are in `docs/tuner.md`.

use std::collections::VecDeque;
use std::time::Duration;

use super::{Decision, Tuner, Window};

/// The regime the tuner believes the pipeline is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Doubling concurrency while throughput keeps growing (BBR's startup).
    Startup,
    /// IO-bound steady state: hold at the best setting, probe now and then,
    /// back off when latency rises with no gain (the knee).
    Probe,
    /// The CPU stage is the bottleneck: the IO stage is sized by Little's
    /// law to keep it fed, and the cores go to workers.
    CpuBound,
    /// The remote said stop: multiplicative decrease, then slow regrowth up
    /// to the remembered ceiling.
    Throttled,
}

/// The adaptive tuner. Concurrency means agents and API permits together
/// (one call in flight per agent).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use gearshift::tuner::{Adaptive, Mode, Tuner, Window};
///
/// let mut tuner = Adaptive::new(4);
/// let w = Window {
///     elapsed: Duration::from_millis(500),
///     agents: 4,
///     io_completions: 100,
///     latency_p50: Some(Duration::from_millis(20)),
///     latency_min: Some(Duration::from_millis(19)),
///     queue_capacity: 256,
///     ..Window::default()
/// };
/// let d = tuner.decide(&w);
/// assert_eq!(d.agents, Some(8)); // startup doubles
/// assert_eq!(tuner.mode(), Mode::Startup);
/// ```
#[derive(Debug, Clone)]
pub struct Adaptive {
    min: usize,
    max: usize,
    headroom: f64,
    dead_band: f64,
    mode: Mode,
    concurrency: usize,
    /// Best throughput seen at the current regime, and where.
    best: Option<(f64, usize)>,
    /// Throughput of the previous window, and its concurrency.
    last: Option<(f64, usize)>,
    last_p50: Option<Duration>,
    /// Recent no-load latency samples (windowed minima).
    floor: VecDeque<Duration>,
    /// Windows to wait before the next upward probe.
    probe_wait: u32,
    probe_backoff: u32,
    /// Consecutive windows that looked CPU-bound (or not, when in CpuBound).
    streak: u32,
    ceiling: Option<usize>,
    window: Duration,
    /// Windows whose completions were too few to judge, pooled.
    pending: Option<Window>,
}

/// Fewest completions a window needs before the tuner judges it.
const MIN_COMPLETIONS: u64 = 10;
/// Windows of agreement needed to switch between IO- and CPU-bound.
const HYSTERESIS: u32 = 2;
/// Latency over no-load latency beyond which the API is queueing.
const KNEE: f64 = 1.2;
/// Windows of no-load latency remembered.
const FLOOR_WINDOWS: usize = 8;

impl Default for Adaptive {
    fn default() -> Self {
        Adaptive::new(num_cpus::get())
    }
}

impl Adaptive {
    /// A tuner starting at `start` concurrency (the seed's 2 x cores is a
    /// fine start: startup doubles from there).
    pub fn new(start: usize) -> Self {
        Adaptive {
            min: 1,
            max: 4096,
            headroom: 1.5,
            dead_band: 0.05,
            mode: Mode::Startup,
            concurrency: start.max(1),
            best: None,
            last: None,
            last_p50: None,
            floor: VecDeque::new(),
            probe_wait: 0,
            probe_backoff: 2,
            streak: 0,
            ceiling: None,
            window: Duration::from_millis(250),
            pending: None,
        }
    }

    /// Bounds the concurrency. By default, 1 to 4096.
    pub fn with_bounds(mut self, min: usize, max: usize) -> Self {
        self.min = min.max(1);
        self.max = max.max(self.min);
        self.concurrency = self.concurrency.clamp(self.min, self.max);
        self
    }

    /// Headroom over Little's law when CPU-bound. By default, 1.5.
    pub fn with_headroom(mut self, headroom: f64) -> Self {
        if headroom.is_finite() && headroom >= 1.0 {
            self.headroom = headroom;
        }
        self
    }

    /// Throughput changes smaller than this fraction are noise. By default, 0.05.
    pub fn with_dead_band(mut self, dead_band: f64) -> Self {
        if dead_band.is_finite() && (0.0..1.0).contains(&dead_band) {
            self.dead_band = dead_band;
        }
        self
    }

    /// The current regime.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The concurrency it last chose.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// The no-load latency estimate: the smallest recent windowed minimum.
    pub fn no_load_latency(&self) -> Option<Duration> {
        self.floor.iter().min().copied()
    }

    fn set(&mut self, c: usize, workers: Option<usize>, reason: String) -> Decision {
        let cap = self.ceiling.unwrap_or(self.max).clamp(self.min, self.max);
        let c = c.clamp(self.min, cap.max(self.min));
        let changed = c != self.concurrency;
        self.concurrency = c;
        let reason = format!("{:?}: {reason}", self.mode);
        if !changed && workers.is_none() {
            return Decision::hold(reason);
        }
        Decision {
            agents: Some(c),
            api_permits: Some(c),
            workers,
            reason,
        }
    }

    fn hold(&self, reason: String) -> Decision {
        Decision::hold(format!("{:?}: {reason}", self.mode))
    }

    /// Pools a thin window with the next, so decisions rest on at least
    /// `MIN_COMPLETIONS` completions.
    fn pool(&mut self, w: &Window) -> Option<Window> {
        let mut w = w.clone();
        if let Some(p) = self.pending.take() {
            w.elapsed += p.elapsed;
            w.io_completions += p.io_completions;
            w.cpu_items += p.cpu_items;
            w.throttled += p.throttled;
            w.timeouts += p.timeouts;
            w.queue_min = w.queue_min.min(p.queue_min);
            w.latency_min = match (w.latency_min, p.latency_min) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            w.latency_p50 = w.latency_p50.or(p.latency_p50);
            w.retry_after = w.retry_after.max(p.retry_after);
        }
        if w.io_completions < MIN_COMPLETIONS
            && w.throttled == 0
            && w.elapsed < Duration::from_secs(2)
        {
            self.pending = Some(w);
            return None;
        }
        Some(w)
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
        if raw.agents > 0 && self.last.is_none() {
            self.concurrency = raw.agents.clamp(self.min, self.max);
        }
        // Throttling overrides everything, and is never pooled away.
        if raw.throttled > 0 || raw.retry_after.is_some() {
            self.pending = None;
            let before = self.concurrency;
            self.ceiling = Some(before.saturating_sub(1).max(self.min));
            self.mode = Mode::Throttled;
            self.best = None;
            self.probe_wait = 3;
            let c = ((before as f64) * 0.7).floor() as usize;
            return self.set(
                c,
                None,
                format!(
                    "{} throttled (retry-after {:?}): {before} -> x0.7, ceiling {}",
                    raw.throttled,
                    raw.retry_after,
                    before.saturating_sub(1)
                ),
            );
        }
        let Some(w) = self.pool(raw) else {
            return self.hold(format!(
                "{} completions so far: waiting for {MIN_COMPLETIONS}",
                raw.io_completions
            ));
        };
        let rate = w.io_rate();
        let p50 = w.latency_p50.unwrap_or_default();
        let c = self.concurrency;
        let last = self.last.replace((rate, c));
        let last_p50 = self.last_p50.replace(p50);
        // The API itself got slower or faster (latency moved 2x at the same
        // concurrency): the no-load latency and the best rate are stale.
        if let (Some((_, lc)), Some(lp)) = (last, last_p50)
            && lc == c
            && !lp.is_zero()
            && (p50 > lp * 2 || p50 * 2 < lp)
        {
            self.floor.clear();
            self.best = None;
            self.probe_wait = 0;
        }
        if let Some(m) = w.latency_min {
            self.floor.push_back(m);
            if self.floor.len() > FLOOR_WINDOWS {
                self.floor.pop_front();
            }
        }
        // Window: about two round trips, 100 ms to 1 s.
        self.window = (p50 * 2).clamp(Duration::from_millis(100), Duration::from_secs(1));
        let floor = self
            .no_load_latency()
            .unwrap_or(p50)
            .max(Duration::from_micros(1));
        let inflation = p50.as_secs_f64() / floor.as_secs_f64();

        // CPU-bound: the channel into the CPU stage stays full, or agents
        // wait on it. Enter and leave only after HYSTERESIS windows; never
        // grow while it looks so.
        let full = w.queue_capacity > 0 && w.queue_min * 5 >= w.queue_capacity * 4;
        let cpu_bound = full || w.agents_blocked > 0.2;
        if (self.mode == Mode::CpuBound) != cpu_bound {
            self.streak += 1;
        } else {
            self.streak = 0;
        }
        if self.streak >= HYSTERESIS {
            self.streak = 0;
            self.mode = if cpu_bound {
                Mode::CpuBound
            } else {
                Mode::Probe
            };
            self.best = None;
            self.probe_wait = 0;
        }
        if self.mode == Mode::CpuBound {
            let cpu_rate = w.cpu_rate();
            let little = (cpu_rate * p50.as_secs_f64() * self.headroom).ceil() as usize;
            let target = little.max(self.min).min(c);
            let workers =
                (w.workers < w.max_workers && w.workers_idle < 0.1).then_some(w.max_workers);
            return self.set(target, workers, format!(
                "queue_min {}/{} blocked {:.0}%: cpu {cpu_rate:.0}/s x rtt {:.1} ms x {:.1} = {little}",
                w.queue_min, w.queue_capacity, w.agents_blocked * 100.0, p50.as_secs_f64() * 1e3, self.headroom
            ));
        }
        if cpu_bound {
            return self.hold(format!(
                "channel looks full (queue_min {}/{}, blocked {:.0}%): no growth",
                w.queue_min,
                w.queue_capacity,
                w.agents_blocked * 100.0
            ));
        }
        // Source-limited: agents wait for input, so more would idle too.
        if w.agents_idle > 0.3 {
            return self.hold(format!(
                "agents idle {:.0}%: the source is the limit",
                w.agents_idle * 100.0
            ));
        }
        let best = self.best.get_or_insert((rate, c));
        if rate > best.0 {
            *best = (rate, c);
        }
        let (best_rate, best_c) = *best;
        let gained = |r: f64, base: f64| r > base * (1.0 + self.dead_band);
        let lost = |r: f64, base: f64| r < base * (1.0 - self.dead_band);
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        match self.mode {
            Mode::Startup => {
                let grew = match last {
                    Some((r, lc)) if lc < c => gained(rate, r),
                    _ => true,
                };
                if grew && inflation < 3.0 {
                    return self.set(
                        c * 2,
                        None,
                        format!("{rate:.0}/s still growing: double {c}"),
                    );
                }
                self.mode = Mode::Probe;
                self.probe_wait = 2;
                self.set(best_c, None, format!("{rate:.0}/s stopped growing: settle at the best, {best_c} ({best_rate:.0}/s)"))
            }
            Mode::Throttled => {
                if self.probe_wait > 0 {
                    self.probe_wait -= 1;
                    return self.hold(format!(
                        "cooling down after a throttle, {} windows left",
                        self.probe_wait
                    ));
                }
                // Slow regrowth toward (not past) the ceiling, which then lifts.
                if self.ceiling.is_some_and(|cap| c >= cap) {
                    self.ceiling = None;
                    self.mode = Mode::Probe;
                    self.best = None;
                    return self.hold(format!("back at the throttle ceiling {c}: lifting it"));
                }
                self.probe_wait = 1;
                self.set(
                    c + 1,
                    None,
                    format!("regrowing after a throttle: {c} -> {}", c + 1),
                )
            }
            _ => {
                match last {
                    // Just probed up: keep it if it paid, else go back.
                    Some((r, lc)) if lc < c => {
                        if gained(rate, r) {
                            self.probe_backoff = 2;
                            if rate > r * 1.2 {
                                self.mode = Mode::Startup;
                                return self.set(c * 2, None, format!("probe {lc} -> {c} paid {r:.0} -> {rate:.0}/s: startup again"));
                            }
                            return self
                                .hold(format!("probe {lc} -> {c} paid: {r:.0} -> {rate:.0}/s"));
                        }
                        self.probe_backoff = (self.probe_backoff * 2).min(16);
                        self.probe_wait = self.probe_backoff;
                        return self.set(
                            lc,
                            None,
                            format!("probe {lc} -> {c} did not pay ({r:.0} -> {rate:.0}/s): back"),
                        );
                    }
                    // Just stepped down: if that cost throughput, the knee is
                    // one step up; stay there.
                    Some((r, lc)) if lc > c && lost(rate, r) => {
                        self.probe_wait = self.probe_backoff;
                        return self.set(
                            lc,
                            None,
                            format!(
                                "step {lc} -> {c} cost {r:.0} -> {rate:.0}/s: the knee is at {lc}"
                            ),
                        );
                    }
                    _ => {}
                }
                // Past the knee: latency above no-load with no gain to show.
                if inflation > KNEE && !gained(rate, best_rate) {
                    let step = (c / 10).max(1).min(c - 1);
                    if step > 0 {
                        self.best = None;
                        return self.set(c - step, None, format!(
                            "p50 {:.1} ms is {inflation:.2}x no-load {:.1} ms at {rate:.0}/s: -{step}",
                            ms(p50), ms(floor)
                        ));
                    }
                }
                if self.probe_wait > 0 {
                    self.probe_wait -= 1;
                    return self.hold(format!("{rate:.0}/s at {c}, p50 {:.1} ms ({inflation:.2}x no-load); next probe in {} windows", ms(p50), self.probe_wait + 1));
                }
                let step = ((c as f64).sqrt().ceil() as usize).max(1);
                self.set(
                    c + step,
                    None,
                    format!("probing {c} -> {} ({rate:.0}/s)", c + step),
                )
            }
        }
    }
}
