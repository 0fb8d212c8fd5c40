//! [`Gradient`]: the default control law of an API budget. The rules are
//! on the type's docs and, with their reasons, in `docs/tuner.md`; the
//! parameters in `params.rs`; a window's numbers and their noise in
//! `reading.rs`; rule 1 (pushback) in `pushback.rs`; rule 2 (failures,
//! their baseline and the verdict on a failure cut) in `failures.rs`; the
//! no-load latency in `noload.rs`; the drain of a start above the knee in
//! `drain.rs`; the ceiling's bisection in `ceiling.rs`; the verdict on a
//! series of latency cuts in `series.rs`. `decide` is long on
//! purpose: the rules in order, to be read top to bottom beside
//! `docs/tuner.md`.

use std::collections::VecDeque;
use std::time::Duration;

mod ceiling;
mod drain;
mod failures;
mod moves;
mod noload;
mod params;
mod probe;
mod pushback;
mod reading;
mod series;

use ceiling::Ceiling;
use noload::NoLoad;
pub use params::GradientParams;
use probe::Probe;
use reading::Reading;

use super::{Decision, Tuner, Window};

/// Standard error of the log median a window aims for: it sets how many
/// calls a window must see (more for a noisier API).
const PRECISION: f64 = 0.15;
/// Standard errors a difference must exceed to count.
const Z: f64 = 2.0;
/// The first window, before any latency is known: a few round trips of
/// an API at tens of milliseconds. Shorter, it reads the no-load latency
/// from a call or two; longer, the start costs more (at the seed's 4 calls
/// on an API that takes 32, 200 ms is an eighth of a 1.7 s job).
const FIRST_WINDOW: Duration = Duration::from_millis(100);
/// Shortest window while doubling.
const SHORTEST_DOUBLING: Duration = Duration::from_millis(20);
/// A window while doubling lasts this many mean latencies: one for most
/// calls started at the new level to end, half of one more to read them.
/// Shorter, the window after a raise reads mostly the calls begun before
/// it; longer, each doubling on a slow API costs whole seconds of a start
/// below the knee.
const DOUBLING_LATENCIES: f64 = 1.5;

/// The default control law of an API budget, in the family of TCP Vegas,
/// Netflix's Gradient2 and Vector's adaptive request concurrency.
///
/// One window at a time it reads what the budget's calls did and moves one
/// number, the limit on calls in flight (the agents follow it); the first
/// rule that fires decides:
///
/// 1. **Pushback** (a 429/503, a `Retry-After`): cut to `backoff` x what
///    the API took: the calls sent (the most in flight at once) and not
///    refused; without that peak, Little's law (completions per unpaused
///    second x mean latency) when it clearly says fewer;
///    Little's lower bound when no refusal was counted; halved when
///    neither gives one. That level is a ceiling for `ceiling_memory`.
/// 2. **Failures above their baseline** (timeouts, resets, 5xx; the
///    baseline is the median share of recent windows of enough calls not
///    counted as overload, 0 before any; a limit's windows are judged
///    against the baseline from before it, their failures pooled while
///    over the margin): cut to `backoff` x the share the API took.
///    Until the failures ending began after the cut (a timeout ends its
///    whole length after its call began), the law holds. Then a cut after
///    which the share does not fall is undone, and the share
///    becomes the baseline; one after which it clearly falls makes what
///    the API took a ceiling.
/// 3. **An unused limit** (the stage is fed less, or blocked by the CPU
///    stage or the next one): cut to the calls in flight x `headroom`, by
///    Little's law what the flow needs; the doubling goes on once it is
///    used again. Saturated workers grow to the pool.
/// 4. **Latency inflation**: a median over `tolerance` x its no-load value
///    by more than their noise cuts in proportion. Cuts after which the
///    latency does not fall are undone, and the no-load value moves: the
///    API got slower, and a ceiling learnt on it before goes.
/// 5. **Growth**, only when the limit is used and latency is near no-load:
///    doubling until the first signal, then from half the limit (at no-load)
///    down to `sqrt(limit)` (near the knee) a window, never past a ceiling
///    (a bisection: held there without a signal, it moves halfway to the
///    level that brought it, unless it came from pushback).
///    A step that loses throughput is undone, and halfway up it becomes a
///    ceiling (the knee lies between its start and its end). A first
///    doubling that barely raises the goodput shows a start above the
///    knee: the limit drains (halves while the goodput holds) down to it.
///
/// A window shorter than one turnover of its calls, whose calls still
/// running carry more than `1 - 1 / tolerance` of its time in flight,
/// judges nothing: the calls that ended in it, all its latency and goodput
/// count, are the fast ones.
///
/// Every comparison allows for the window's noise (two standard errors,
/// from the window's own latency spread), and one window never cuts by more
/// than half. Every decision says why, with its numbers.
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
    /// Whether the limit is still the one the budget started from, not
    /// yet known to be below the knee (drain.rs).
    blind: bool,
    /// No-load median latency.
    noload: Option<NoLoad>,
    /// Failure shares of recent windows not counted as overload; their
    /// median is the baseline (0 before any).
    failures: VecDeque<f64>,
    /// The run of failing windows at the current limit and the baseline it
    /// is judged against (failures.rs).
    level: failures::Level,
    /// A level growth may not pass (ceiling.rs).
    ceiling: Option<Ceiling>,
    /// The last move, judged by the next window.
    probe: Option<Probe>,
    clock: f64,
    /// Whether the last decision moved the limit: the window after it saw
    /// the agents ramp, so it does not say the limit is unused.
    moved: bool,
    window: Duration,
}

impl Gradient {
    /// The law with its default parameters. It starts from the limit the
    /// budget has (the seed's 2 agents per core, unless set).
    pub fn new() -> Self {
        Self::with_params(GradientParams::default())
    }

    /// The law with `params`; out-of-range values are clamped to sane ones.
    pub fn with_params(params: GradientParams) -> Self {
        let params = params.sane();
        Gradient {
            window: FIRST_WINDOW.min(params.min_window),
            params,
            limit: 0.0,
            started: false,
            slow_start: true,
            blind: true,
            noload: None,
            failures: VecDeque::new(),
            level: failures::Level::default(),
            ceiling: None,
            probe: None,
            clock: 0.0,
            moved: true,
        }
    }

    /// The parameters in use.
    pub fn params(&self) -> &GradientParams {
        &self.params
    }

    /// The calls in flight the law last set (0 before its first window).
    pub fn limit(&self) -> usize {
        self.limit.round() as usize
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
            self.moved = true;
            self.limit = self.clamp(actual);
            self.probe = None;
        }
        if self.ceiling.is_some_and(|c| self.clock >= c.until) {
            self.ceiling = None;
        }
        let r = Reading::of(w);
        if let Some(latency) = r.mean.or(r.p50) {
            // Long enough for a few latencies, and for enough calls to
            // read the median to `PRECISION` (its error is sigma x
            // sqrt(1.57 / calls)). Doubling needs no precision, it stops
            // at the first signal (as TCP's slow start doubles every
            // round trip).
            let latencies = if self.slow_start {
                DOUBLING_LATENCIES
            } else {
                let calls = 1.57 * (r.sigma / PRECISION).powi(2);
                self.params
                    .latencies_per_window
                    .max(calls / self.limit.max(1.0))
            };
            let next =
                Duration::try_from_secs_f64(latency * latencies).unwrap_or(self.params.max_window);
            // `min_window` gives slow signals (timeouts, drops) time to
            // show; the doubling stops at the first signal of any kind.
            let shortest = if self.slow_start {
                SHORTEST_DOUBLING.min(self.params.min_window)
            } else {
                self.params.min_window
            };
            self.window = next.clamp(shortest, self.params.max_window);
        } else {
            // No latency to size the window by: wait longer for one.
            self.window = self
                .window
                .saturating_mul(2)
                .clamp(self.params.min_window, self.params.max_window);
        }
        let workers = self.workers(w);
        if r.good == 0.0 && w.timeouts == 0 && w.errors == 0 && w.throttled == 0 {
            return self.hold(workers, "no call ended in the window".into());
        }
        if w.paused >= w.elapsed && w.throttled == 0 {
            // Calls ending inside a pause started before it; none started
            // at this limit.
            return self.hold(workers, "paused by a Retry-After throughout".into());
        }

        // 1. Pushback and 2. failures above their baseline.
        if w.throttled > 0 || w.retry_after.is_some() {
            return self.pushback(w, &r, workers);
        }
        let started = self.clock - w.elapsed.as_secs_f64();
        if let Some(decision) = self.failure_rule(&r, started, workers) {
            return decision;
        }

        // 3. An unused limit: the agents wait for input (the stage is fed
        // less than it could take) or on a full channel (the CPU stage or
        // the next one drains less). Only the share of the limit not
        // waiting carries the flow (Little's law); more is not used.
        let active = 1.0 - w.paused.as_secs_f64() / w.elapsed.as_secs_f64().max(1e-9);
        let waiting = ((w.agents_idle + w.agents_blocked) / active.max(1e-3)).clamp(0.0, 1.0);
        let needed = self.limit.round() * (1.0 - waiting);
        let headroom = self.params.headroom;
        if !self.moved && needed * headroom < self.limit.round() {
            // The doubling goes on once the limit is used again: a flow
            // that took less says nothing of where the knee is (as TCP's
            // window validation keeps an application-limited sender in
            // slow start).
            self.probe = None;
            let cap = needed * headroom;
            let reason = format!(
                "agents waited on the flow {:.0}% of the time: {needed:.1} of {:.0} calls carry it, \
                 {:.0} is enough (x{headroom})",
                waiting * 100.0,
                self.limit,
                self.clamp(cap).round()
            );
            return self.set(cap, workers, reason);
        }

        // Latency and throughput speak only for the calls that ended
        // (reading.rs).
        let tolerance = self.params.tolerance;
        if r.censored(tolerance) {
            return self.hold(
                workers,
                format!(
                    "calls still running carry {:.0}% of the window's time in flight: \
                     its latency reads only the fast calls",
                    r.running * 100.0
                ),
            );
        }

        // 4. Latency against its no-load value.
        let Some(p50) = r.p50 else {
            return self.hold(workers, "no successful call to read latency from".into());
        };
        // A series of latency cuts that did not lower the latency was not
        // about our queue (series.rs).
        if let Some(decision) = self.cut_series_verdict(p50, r.p50_se, workers) {
            return decision;
        }
        // Windows that agree within their noise are pooled (noload.rs).
        let estimate = match &mut self.noload {
            Some(n) => {
                n.update(p50, r.p50_se);
                *n
            }
            None => *self.noload.insert(NoLoad::read(p50, r.p50_se)),
        };
        let noload = estimate.secs();
        // Used: the flow carries more than halfway from `1 / headroom` (a
        // limit cut to the use x headroom, not to be grown) to all of it.
        let used = needed >= (1.0 + 1.0 / headroom) / 2.0 * self.limit.round();
        if let Some(decision) = self.drain_rule(&r, used, workers) {
            return decision;
        }
        let ratio = p50 / noload;
        // Over tolerance by more than the noise of the two (a few calls'
        // median against a few calls' estimate says little).
        let clearly = (ratio / tolerance).ln() > Z * r.p50_se.hypot(estimate.se());
        if clearly && self.limit.round() <= self.params.min_limit as f64 {
            // At the fewest calls there is no queue of ours to cut: the
            // estimate was read low (a window of a call or two).
            self.noload = Some(NoLoad::read(p50, r.p50_se));
            let reason = format!(
                "latency {:.1} ms is {ratio:.2}x its no-load {:.1} ms at the fewest calls, \
                 where no queue is ours: no-load latency re-based",
                p50 * 1e3,
                noload * 1e3
            );
            return self.hold(workers, reason);
        }
        if clearly {
            self.slow_start = false;
            let target = self.limit * (tolerance / ratio).max(0.5);
            self.probe = Some(match self.probe {
                Some(Probe::Down {
                    from, p50, p50_se, ..
                }) => Probe::Down {
                    from,
                    p50,
                    p50_se,
                    last_from: self.limit,
                },
                _ => Probe::Down {
                    from: self.limit,
                    p50,
                    p50_se: r.p50_se,
                    last_from: self.limit,
                },
            });
            let reason = format!(
                "latency {:.1} ms is {ratio:.2}x its no-load {:.1} ms (tolerance {tolerance})",
                p50 * 1e3,
                noload * 1e3
            );
            return self.set(target, workers, reason);
        }

        // 5. Growth, judged by throughput.
        if let Some(Probe::Up { from, rate, se }) = self.probe
            && r.rate < rate * (-Z * se.hypot(r.rate_se)).exp()
        {
            self.probe = None;
            self.slow_start = false;
            // The knee lies between `from` and the level that lost: bisect.
            let ceiling = (from + self.limit) / 2.0;
            self.ceiling = Some(self.ceiling_at(ceiling, self.limit));
            let reason = format!(
                "growth lost throughput ({:.0}/s -> {:.0}/s): back to {from:.0}, \
                 at most {:.0} for now",
                rate,
                r.rate,
                ceiling.round()
            );
            return self.set(from, workers, reason);
        }
        if !used {
            return self.hold(
                workers,
                format!(
                    "limit {:.0} not used: agents waited on the flow {:.0}% of the time",
                    self.limit,
                    waiting * 100.0
                ),
            );
        }
        if ratio > tolerance.sqrt() {
            return self.hold(workers, format!("latency {ratio:.2}x no-load: holding"));
        }
        // Far below the knee (latency at no-load) steps are large; near it
        // (at the square root of the tolerance), sqrt(limit).
        let room = ((tolerance.sqrt() - ratio) / (tolerance.sqrt() - 1.0)).clamp(0.0, 1.0);
        let step = if self.slow_start {
            self.limit
        } else {
            (self.limit * room / 2.0).max(self.limit.sqrt())
        }
        .max(1.0);
        let mut target = self.limit + step;
        if let Some(ceiling) = self.ceiling {
            // Held at the ceiling without a signal: the knee lies above
            // it, halfway to the level that was too high (a bisection).
            let ceiling = match ceiling.raised() {
                Some(raised) if self.limit.round() >= ceiling.level.round() => raised,
                _ => ceiling,
            };
            self.ceiling = Some(ceiling);
            target = target.min(ceiling.level.max(self.limit));
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
