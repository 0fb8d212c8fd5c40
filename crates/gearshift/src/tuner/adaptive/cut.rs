//! Multiplicative decreases: on throttles (429/503, `Retry-After`) with a
//! remembered ceiling and slow regrowth under it, and on overload (timeouts
//! while latency shows queueing).

use super::super::Window;
use super::climb::KNEE;
use super::facts::Facts;
use super::signals::secs;
use super::{Adaptive, Decision, Dir, Mode};

/// Fraction of attempts timing out (with inflated latency) that is overload.
const OVERLOAD_TIMEOUTS: f64 = 0.05;
/// Windows of no growth after a throttle cut.
const COOLDOWN: u32 = 2;
/// Windows a throttle ceiling is remembered after the last throttle.
const CEILING_TTL: u32 = 40;
/// Weight of a window in the moving average of the stall share.
const STALL_WEIGHT: f64 = 0.05;
/// Timeouts within this many standard deviations (Poisson) over what the
/// stall share predicts are no overload: at 2% stalls and 95 attempts a
/// window, 5 to 7 timeouts come by chance alone now and then.
const STALL_SIGMAS: f64 = 4.0;
/// After an overload cut, a median at the lower level above this fraction
/// of the median before the cut did not drop: the latency is not our queue.
const CUT_RELIEF: f64 = 0.9;

impl Adaptive {
    /// Counts down the ceiling's lifetime, one judged window at a time, and
    /// forgets the ceiling at zero.
    pub(super) fn tick_ceiling(&mut self) {
        if self.ceiling.is_some() {
            self.ceiling_ttl = self.ceiling_ttl.saturating_sub(1);
            if self.ceiling_ttl == 0 {
                self.ceiling = None;
            }
        }
    }

    /// 429/503 or `Retry-After`: cut by the decrease factor, remember the
    /// ceiling, cool down. The engine has already paused the stage.
    pub(super) fn on_throttle(&mut self, w: &Window, f: &Facts, was_cut: bool) -> Decision {
        let c = self.concurrency;
        self.mode = Mode::Throttled;
        self.halve = None;
        self.remember_sized(w);
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
    pub(super) fn on_overload(&mut self, w: &Window, f: &Facts, was_cut: bool) -> Option<Decision> {
        let attempts = w.attempts();
        let share = w.timeouts as f64 / attempts.max(1) as f64;
        let inflation = self.latency.inflation(self.concurrency);
        let queueing = w.latency_p50.is_none() || inflation > KNEE;
        if share < OVERLOAD_TIMEOUTS || !queueing || w.timeouts as f64 <= self.stalls(attempts) {
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
        // A knee step is out: a decrease already, and its verdict tells a
        // queue of ours from a stale no-load latency (an API that got
        // slower inflates the latency just the same). At the bench's
        // `tail` -> `timeouts`, a cut here on tail's 12 ms sent 19 calls to
        // 13 before the verdict could relearn it: 2 s of a 6 s phase lost.
        if self.knee_step_out() {
            tracing::debug!(
                concurrency = c,
                "overload? {why}: left to the knee step's verdict"
            );
            return None;
        }
        // The last overload cut brought us here, yet the median did not
        // drop with it: the "inflation" is not a queue of ours but a stale
        // no-load latency (the API got slower, by less than the 2x that
        // counts as a change of speed). Another cut would only idle the
        // API; relearn the no-load latency here instead, as the knee
        // probe's verdict does, and let the ordinary rules run.
        if let Some((level, before)) = self.overload_cut {
            let now = self.latency.current(c).filter(|_| level == c);
            match now {
                Some(now) if secs(now) >= CUT_RELIEF * secs(before) => {
                    let msg = format!(
                        "{why}, but the median did not drop after the cut to {c} ({:.1} -> {:.1} ms)",
                        secs(before) * 1e3,
                        secs(now) * 1e3
                    );
                    if was_cut {
                        // Calls sent before the cut ended in this window:
                        // judge the cut on the next one.
                        return Some(self.hold(f, format!("{msg}: judged on the next window")));
                    }
                    let relearned = self.relearn_no_load(c);
                    self.overload_cut = None;
                    self.probe = None;
                    self.prev = None;
                    if self.mode == Mode::Startup {
                        self.mode = Mode::IoBound;
                    }
                    self.next = Dir::Up;
                    self.wait = 0;
                    return Some(
                        self.hold(f, format!("{msg}: no queue of ours, {relearned}; no cut")),
                    );
                }
                Some(_) => {}
                None if level == c => {}
                None => self.overload_cut = None,
            }
        }
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
        // The climb back from the cut is a new one: its failed probes wait
        // from one window again (the backoff of a noisy top before, 5 s,
        // held the `timeouts` phase 25% under its best for that long).
        self.backoff = 1;
        self.stall_steady = false;
        let want = (c as f64 * self.decrease).floor() as usize;
        let before = self.latency.current(c).or(w.latency_p50);
        let d = self.set(
            want,
            None,
            f,
            format!("overload, {why}: x{} ({c} -> {want})", self.decrease),
        );
        self.overload_cut = before.map(|b| (self.concurrency, b));
        Some(d)
    }

    /// Timeouts the usual stall share explains among `attempts`, with
    /// [`STALL_SIGMAS`] of chance over the expected count. No more: after
    /// the `tail` phase's rare stalls (0.2%), one more let a single timeout
    /// of 17 pass as usual, and the check of an overload cut, which runs on
    /// the next overload, never came (1.7 s held at the cut's level).
    fn stalls(&self, attempts: u64) -> f64 {
        let expected = self.stall_share.unwrap_or(0.0) * attempts as f64;
        expected + STALL_SIGMAS * expected.sqrt()
    }

    /// Learns the stall share from a window that no overload rule acted on.
    pub(super) fn learn_stall_share(&mut self, w: &Window) {
        let attempts = w.attempts();
        if attempts == 0 {
            return;
        }
        let share = w.timeouts as f64 / attempts as f64;
        self.stall_share = Some(match self.stall_share {
            Some(old) => old + STALL_WEIGHT * (share - old),
            None => share,
        });
    }

    /// Throttled, no throttle this window: cool down, then grow by a
    /// twentieth per window up to just below the ceiling.
    pub(super) fn regrow(&mut self, w: &Window, f: &Facts) -> Decision {
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
}
