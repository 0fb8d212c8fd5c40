//! [`Gradient`]: the default control law of an API budget, in the family of
//! TCP Vegas and Netflix's Gradient2.
//!
//! One window at a time it reads what the budget's calls did and moves one
//! number, the limit on calls in flight (and the agents with it):
//!
//! 1. **Pushback** (a 429/503 or a `Retry-After`) and **failures above
//!    their baseline** (timeouts, resets, 5xx) cut the limit to `backoff` x
//!    the calls the API actually served (Little's law: completions per
//!    second x mean latency), and that level becomes a ceiling for
//!    `ceiling_memory`.
//! 2. **Latency inflation**: a median above `tolerance` x its no-load value
//!    cuts the limit in proportion (at most by half). A cut that does not
//!    lower the latency is undone and the no-load value moves: the API got
//!    slower, our calls did not queue.
//! 3. **The CPU stage**: while the channel into it stays full, the limit
//!    need not exceed what the workers drain x the latency (Little's law)
//!    x `headroom`; saturated workers grow to the pool.
//! 4. **Growth**, only when the limit is used and latency is near its
//!    no-load value: doubling until the first signal, then `sqrt(limit)`
//!    a window. A step that loses throughput is undone and becomes a
//!    ceiling.
//!
//! Every comparison allows for the window's noise (two standard errors,
//! estimated from the window's own latency spread), so a quiet API is
//! read finely and a noisy one coarsely. `docs/tuner.md` has the page.

use std::collections::VecDeque;
use std::f64::consts::SQRT_2;
use std::time::Duration;

use super::{Decision, Tuner, Window};
use crate::config::MAX_CONCURRENCY;

/// The parameters of [`Gradient`]; `GradientParams::default()` is the law
/// as documented in `docs/tuner.md`.
#[derive(Debug, Clone, PartialEq)]
pub struct GradientParams {
    /// Median latency over its no-load value above which calls count as
    /// queued and the limit is cut; growth stops at its square root. By
    /// default, 1.5.
    pub tolerance: f64,
    /// What an overload signal cuts the limit to, as a share of the calls
    /// the API served. By default, 0.9.
    pub backoff: f64,
    /// Failure share above its baseline (the lowest of recent windows)
    /// that counts as overload, before noise. By default, 0.02.
    pub failure_margin: f64,
    /// How long a level that brought pushback, failures or a loss of
    /// throughput bounds growth. By default, 30 s.
    pub ceiling_memory: Duration,
    /// Headroom over Little's law when the CPU stage is the bottleneck. By
    /// default, 1.25.
    pub headroom: f64,
    /// A window lasts this many median latencies, within
    /// `min_window..=max_window`. By default, 4.
    pub latencies_per_window: f64,
    /// Shortest window. By default, 200 ms.
    pub min_window: Duration,
    /// Longest window. By default, 5 s.
    pub max_window: Duration,
    /// Fewest calls in flight. By default, 1.
    pub min_limit: usize,
    /// Most calls in flight. By default, 4,096.
    pub max_limit: usize,
}

impl Default for GradientParams {
    fn default() -> Self {
        GradientParams {
            tolerance: 1.5,
            backoff: 0.9,
            failure_margin: 0.02,
            ceiling_memory: Duration::from_secs(30),
            headroom: 1.25,
            latencies_per_window: 4.0,
            min_window: Duration::from_millis(200),
            max_window: Duration::from_secs(5),
            min_limit: 1,
            max_limit: 4096,
        }
    }
}

/// Standard error of the log median a window aims for: it sets how many
/// calls a window must see (more for a noisier API).
const PRECISION: f64 = 0.15;
/// Standard errors a difference must exceed to count.
const Z: f64 = 2.0;
/// Windows whose median failure share is the baseline (a median, not the
/// lowest: the lowest of noisy shares would make noise look like overload).
const BASELINE_WINDOWS: usize = 8;
/// Share of the limit in use (over the unpaused time) that counts as used:
/// above `1 / headroom`, so a limit cut to the use x headroom is not grown.
const USED: f64 = 0.9;
/// Worker idle time below which the CPU stage counts as saturated.
const SATURATED: f64 = 0.1;

/// The default control law of an API budget; see the [module
/// docs](self) and `docs/tuner.md`.
///
/// # Examples
///
/// ```
/// use gearshift::{Api, tuner::Gradient};
///
/// let api = Api::new("search").tuner(Gradient::new());
/// # drop(api);
/// ```
#[derive(Debug, Clone)]
pub struct Gradient {
    params: GradientParams,
    limit: f64,
    started: bool,
    slow_start: bool,
    /// No-load median latency (seconds).
    noload: Option<f64>,
    /// Recent failure shares; the lowest is the baseline.
    failures: VecDeque<f64>,
    /// A level growth may not pass, and until when (seconds of the run).
    ceiling: Option<(f64, f64)>,
    /// The last move, judged by the next window.
    probe: Option<Probe>,
    clock: f64,
    window: Duration,
}

#[derive(Debug, Clone, Copy)]
enum Probe {
    /// Grown from `from` when the goodput was `rate` (relative error `se`).
    Up { from: f64, rate: f64, se: f64 },
    /// A series of latency cuts began at `from`, when the median was `p50`.
    Down { from: f64, p50: f64 },
}

/// What one window says, with its noise.
struct Reading {
    sigma: f64,
    mean: Option<f64>,
    good: f64,
    rate: f64,
    rate_se: f64,
    p50: Option<f64>,
    p50_se: f64,
    served: f64,
    failure_share: f64,
    failure_se: f64,
}

impl Gradient {
    /// The law with its default parameters. It starts from the limit the
    /// budget has (the seed's 2 agents per core, unless set).
    pub fn new() -> Self {
        Self::with_params(GradientParams::default())
    }

    /// The law with `params`; out-of-range values are clamped to sane ones.
    pub fn with_params(mut params: GradientParams) -> Self {
        let fin =
            |x: f64, lo: f64, hi: f64, d: f64| if x.is_finite() { x.clamp(lo, hi) } else { d };
        let d = GradientParams::default();
        params.tolerance = fin(params.tolerance, 1.01, 100.0, d.tolerance);
        params.backoff = fin(params.backoff, 0.1, 0.99, d.backoff);
        params.failure_margin = fin(params.failure_margin, 0.0, 1.0, d.failure_margin);
        params.headroom = fin(params.headroom, 1.0, 100.0, d.headroom);
        params.latencies_per_window = fin(
            params.latencies_per_window,
            1.0,
            1000.0,
            d.latencies_per_window,
        );
        params.max_limit = params.max_limit.clamp(1, MAX_CONCURRENCY);
        params.min_limit = params.min_limit.clamp(1, params.max_limit);
        params.max_window = params.max_window.max(Duration::from_millis(10));
        params.min_window = params
            .min_window
            .clamp(Duration::from_millis(10), params.max_window);
        Gradient {
            window: params
                .min_window
                .max(Duration::from_millis(500))
                .min(params.max_window),
            params,
            limit: 0.0,
            started: false,
            slow_start: true,
            noload: None,
            failures: VecDeque::new(),
            ceiling: None,
            probe: None,
            clock: 0.0,
        }
    }

    /// The parameters in use.
    pub fn params(&self) -> &GradientParams {
        &self.params
    }

    fn read(&self, w: &Window) -> Reading {
        let good = w.io_completions as f64;
        let fails = (w.timeouts + w.errors) as f64;
        let secs = |d: Option<Duration>| d.map(|d| d.as_secs_f64()).filter(|s| *s > 0.0);
        let (p50, p90) = (secs(w.latency_p50), secs(w.latency_p90));
        // The spread of one call's latency, from the window itself
        // (lognormal: p90 = p50 x e^(1.28 sigma)).
        let sigma = match (p50, p90) {
            (Some(a), Some(b)) => ((b / a).ln() / 1.2816).clamp(0.05, 3.0),
            _ => 1.0,
        };
        let cv2 = ((sigma * sigma).exp() - 1.0).max(1.0);
        let ended = good + fails;
        let share = if ended > 0.0 { fails / ended } else { 0.0 };
        Reading {
            sigma,
            mean: secs(w.latency_mean),
            good,
            rate: w.active_io_rate(),
            rate_se: (cv2 / good.max(1.0)).sqrt(),
            p50,
            p50_se: sigma * (1.57 / good.max(1.0)).sqrt(),
            served: w.active_io_rate() * secs(w.latency_mean).or(p50).unwrap_or(0.0),
            failure_share: share,
            failure_se: (share.max(0.01) * (1.0 - share) / ended.max(1.0)).sqrt(),
        }
    }

    fn clamp(&self, limit: f64) -> f64 {
        limit.clamp(self.params.min_limit as f64, self.params.max_limit as f64)
    }

    fn set(&mut self, limit: f64, workers: Option<usize>, reason: String) -> Decision {
        let before = self.limit.round() as usize;
        self.limit = self.clamp(limit);
        let after = self.limit.round() as usize;
        let changed = (after != before).then_some(after);
        Decision {
            agents: changed,
            api_permits: changed,
            workers,
            reason,
        }
    }

    fn hold(&self, workers: Option<usize>, reason: String) -> Decision {
        Decision {
            workers,
            ..Decision::hold(reason)
        }
    }

    /// Overload: cut to `backoff` x the calls the API took, and remember
    /// that level as a ceiling.
    /// Without an estimate (`None`), the ceiling is the cut level: the
    /// limit itself is known to be too high.
    fn overload(&mut self, took: Option<f64>, why: String, workers: Option<usize>) -> Decision {
        // One window never more than halves the limit: one noisy reading
        // must not throw away what many others found.
        let took = took.map(|t| self.clamp(t.min(self.limit - 1.0).max(self.limit / 2.0)));
        let target = self.params.backoff * took.unwrap_or(self.limit);
        let ceiling = took.unwrap_or(target);
        self.ceiling = Some((
            ceiling,
            self.clock + self.params.ceiling_memory.as_secs_f64(),
        ));
        let took = took.map_or("an unknown number of".into(), |t| format!("{t:.1}"));
        self.slow_start = false;
        self.probe = None;
        let reason = format!(
            "{why}: the API took {took} calls, limit {:.0} -> {:.0}",
            self.limit,
            self.clamp(target).round()
        );
        self.set(target, workers, reason)
    }
}

impl Tuner for Gradient {
    fn name(&self) -> &str {
        "gradient"
    }

    fn window(&self) -> Duration {
        self.window
    }

    fn decide(&mut self, w: &Window) -> Decision {
        self.clock += w.elapsed.as_secs_f64();
        let actual = w.agents.min(w.api_permits).max(1) as f64;
        if !self.started || (actual - self.limit.round()).abs() >= 1.0 {
            // First window, or someone else moved the limit: start from it.
            self.started = true;
            self.limit = self.clamp(actual);
            self.probe = None;
        }
        if self.ceiling.is_some_and(|(_, until)| self.clock >= until) {
            self.ceiling = None;
        }
        let r = self.read(w);
        if let Some(latency) = r.mean.or(r.p50) {
            // Long enough for a few latencies, and for enough calls to
            // read the median to `PRECISION` (its error is sigma x
            // sqrt(1.57 / calls)).
            // (Doubling needs no precision: it stops at the first signal.)
            let calls = if self.slow_start {
                0.0
            } else {
                1.57 * (r.sigma / PRECISION).powi(2)
            };
            let latencies = self
                .params
                .latencies_per_window
                .max(calls / self.limit.max(1.0));
            let next =
                Duration::try_from_secs_f64(latency * latencies).unwrap_or(self.params.max_window);
            self.window = next.clamp(self.params.min_window, self.params.max_window);
        }
        let workers = self.workers(w);
        if r.good == 0.0 && w.timeouts + w.errors + w.throttled == 0 {
            return self.hold(workers, "no call ended in the window".into());
        }

        // 1. Pushback and failures above their baseline.
        if w.throttled > 0 || w.retry_after.is_some() {
            // Refused calls return at once and hold no slot: the calls the
            // API took are what it served (Little's law).
            let why = format!(
                "{} throttled, Retry-After {:?}, served {:.1} calls (Little's law)",
                w.throttled, w.retry_after, r.served
            );
            // Probing past a hard limit again costs another pause: take
            // the estimate's lower bound, and none from too few calls.
            let took = (r.rate_se < 0.5).then(|| r.served * (-Z * r.rate_se).exp());
            return self.overload(took, why, workers);
        }
        let baseline = median(&self.failures);
        self.failures.push_back(r.failure_share);
        if self.failures.len() > BASELINE_WINDOWS {
            self.failures.pop_front();
        }
        if let Some(baseline) = baseline
            && r.failure_share > baseline + self.params.failure_margin + Z * r.failure_se
        {
            // Failed calls held their slots (a timeout for its whole
            // length): the API took the share that did not fail beyond
            // the baseline.
            let took = self.limit * (1.0 - (r.failure_share - baseline)).max(0.0);
            let why = format!(
                "failures {:.1}% over a baseline of {:.1}%",
                r.failure_share * 100.0,
                baseline * 100.0
            );
            return self.overload(Some(took), why, workers);
        }

        // 3. An unused limit: the stage is fed less than it could take,
        // or blocked by the CPU stage or the next one. By Little's law the
        // calls in flight are what the flow needs; more is not used.
        let active = 1.0 - w.paused.as_secs_f64() / w.elapsed.as_secs_f64().max(1e-9);
        let in_flight = w.mean_in_flight / active.max(1e-3);
        let headroom = self.params.headroom;
        if in_flight * headroom < self.limit.round() {
            self.probe = None;
            self.slow_start = false;
            let cap = in_flight * headroom;
            let reason = format!(
                "limit {:.0} used by {in_flight:.1} calls on average: {:.0} is enough (x{headroom})",
                self.limit,
                self.clamp(cap).round()
            );
            return self.set(cap, workers, reason);
        }

        // 2. Latency against its no-load value.
        let Some(p50) = r.p50 else {
            return self.hold(workers, "no successful call to read latency from".into());
        };
        // Latency cuts are judged as a series, from the first: cuts that
        // do not take the latency at least halfway (in log terms) to where
        // queueing would have taken it were not about our queue: the API
        // got slower. Until the series is large enough to tell from the
        // noise, it goes on.
        if let Some(Probe::Down { from, p50: before }) = self.probe {
            let k = self.limit.round() / from.round().max(1.0);
            let expect = (before * k).max(self.noload.unwrap_or(0.0));
            let span = (before / expect.max(1e-9)).ln();
            if span >= Z * SQRT_2 * r.p50_se {
                self.probe = None;
                if (before / p50).ln() < 0.5 * span {
                    self.noload = Some(p50);
                    let reason = format!(
                        "latency {:.1} ms did not fall with the cuts ({:.1} ms at {from:.0} calls): \
                         the API is slower, not queued; no-load latency re-based",
                        p50 * 1e3,
                        before * 1e3
                    );
                    return self.set(from, workers, reason);
                }
            }
        }
        // One standard error up: the lowest of many noisy medians would
        // sit below the true no-load value.
        let candidate = p50 * r.p50_se.exp();
        let noload = self.noload.map_or(candidate, |n| n.min(candidate));
        self.noload = Some(noload);
        let ratio = p50 / noload;
        let tolerance = self.params.tolerance;
        if ratio > tolerance {
            self.slow_start = false;
            let target = self.limit * (tolerance / ratio).max(0.5);
            if !matches!(self.probe, Some(Probe::Down { .. })) {
                self.probe = Some(Probe::Down {
                    from: self.limit,
                    p50,
                });
            }
            let reason = format!(
                "latency {:.1} ms is {ratio:.2}x its no-load {:.1} ms (tolerance {tolerance})",
                p50 * 1e3,
                noload * 1e3
            );
            return self.set(target, workers, reason);
        }

        // 4. Growth, judged by throughput.
        if let Some(Probe::Up { from, rate, se }) = self.probe
            && r.rate < rate * (-Z * (se * se + r.rate_se * r.rate_se).sqrt()).exp()
        {
            self.probe = None;
            self.slow_start = false;
            self.ceiling = Some((from, self.clock + self.params.ceiling_memory.as_secs_f64()));
            let reason = format!(
                "growth lost throughput ({:.0}/s -> {:.0}/s): back to {from:.0}",
                rate, r.rate
            );
            return self.set(from, workers, reason);
        }
        if in_flight < USED * self.limit.round() {
            return self.hold(
                workers,
                format!(
                    "limit {:.0} not used ({:.1} calls in flight on average)",
                    self.limit, w.mean_in_flight
                ),
            );
        }
        if ratio > tolerance.sqrt() {
            return self.hold(workers, format!("latency {ratio:.2}x no-load: holding"));
        }
        let step = if self.slow_start {
            self.limit
        } else {
            self.limit.sqrt()
        }
        .max(1.0);
        let mut target = self.limit + step;
        if let Some((ceiling, _)) = self.ceiling {
            target = target.min(ceiling.max(self.limit));
        }
        if target.round() <= self.limit.round() {
            return self.hold(workers, format!("at the ceiling {:.0}", self.limit));
        }
        self.probe = Some(Probe::Up {
            from: self.limit,
            rate: r.rate,
            se: r.rate_se,
        });
        let reason = format!(
            "limit used, latency {ratio:.2}x no-load: {} {:.0} -> {:.0}",
            if self.slow_start {
                "doubling"
            } else {
                "growing"
            },
            self.limit,
            self.clamp(target).round()
        );
        self.set(target, workers, reason)
    }
}

impl Default for Gradient {
    fn default() -> Self {
        Self::new()
    }
}

impl Gradient {
    /// Saturated workers grow to the pool (by half, at least one).
    fn workers(&self, w: &Window) -> Option<usize> {
        let grow = w.cpu_items > 0 && w.workers_idle < SATURATED && w.workers < w.max_workers;
        grow.then(|| (w.workers + (w.workers / 2).max(1)).min(w.max_workers))
    }
}

/// The median of `xs`; `None` when empty.
fn median(xs: &VecDeque<f64>) -> Option<f64> {
    let mut v: Vec<f64> = xs.iter().copied().collect();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied()
}
