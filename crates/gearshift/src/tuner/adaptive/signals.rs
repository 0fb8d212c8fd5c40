//! What the adaptive tuner reads out of raw windows: thin windows pooled
//! until they hold enough attempts to judge, and the latency estimates (the
//! median at the current concurrency, smoothed, and the no-load latency).

use std::collections::VecDeque;
use std::time::Duration;

use super::super::Window;

/// Fewest attempts (completions and timeouts) a window needs to be judged.
pub(super) const MIN_ATTEMPTS: u64 = 10;
/// Thin windows are pooled for at most this long, then judged anyway.
const MAX_POOLED: Duration = Duration::from_secs(3);
/// Raw medians kept (for the test of a changed API).
const RECENT: usize = 5;
/// Raw medians smoothed into one.
const SMOOTH: usize = 3;
/// Smoothed medians whose minimum is the no-load latency.
const FLOOR_WINDOWS: usize = 20;
/// A median at a held level this much above the level's median on arrival
/// says the API itself got slower (see [`Latency::rose_at`]). The smoothed
/// median of a heavy-tailed API (lognormal, sigma 1) swings by about 8%.
const HELD_RISE: f64 = 1.25;

/// Pools windows with too few attempts into the next ones.
#[derive(Debug, Clone, Default)]
pub(super) struct Pool {
    pending: Option<Window>,
}

impl Pool {
    /// Adds `w` to what is pending; returns the pooled window once it holds
    /// [`MIN_ATTEMPTS`] attempts, a throttle, or [`MAX_POOLED`] of time.
    /// The very first window (`first`) needs only a completion per agent:
    /// with nothing to compare it with, it only has to show that every
    /// agent got a round trip, and pooling it would cost a whole window
    /// of a short run's startup.
    pub(super) fn push(&mut self, w: &Window, first: bool) -> Option<Window> {
        let merged = match self.pending.take() {
            Some(p) => merge(p, w),
            None => w.clone(),
        };
        let attempts = merged.attempts();
        let urgent = merged.throttled > 0 || merged.retry_after.is_some();
        let round = first && merged.agents > 0 && merged.io_completions >= merged.agents as u64;
        if attempts >= MIN_ATTEMPTS || round || urgent || merged.elapsed >= MAX_POOLED {
            Some(merged)
        } else {
            self.pending = Some(merged);
            None
        }
    }
}

/// One judged window's median, with what it was measured at.
#[derive(Debug, Clone, Copy)]
struct Sample {
    level: usize,
    p50: Duration,
    rate: f64,
    /// Calls sent under a higher concurrency were still in flight: the
    /// median is partly the old level's queue draining.
    draining: bool,
}

/// Latency history: raw medians (with the concurrency and the IO rate they
/// were measured at) and the smoothed medians the no-load estimate is the minimum of.
#[derive(Debug, Clone, Default)]
pub(super) struct Latency {
    recent: VecDeque<Sample>,
    floor: VecDeque<Duration>,
    /// The level held now and its smoothed median once it had [`SMOOTH`]
    /// windows: that level's latency on arrival.
    arrival: Option<(usize, Duration)>,
}

impl Latency {
    /// Records a window's median latency and IO rate measured at
    /// concurrency `level` (`draining`: with calls of a higher level still
    /// in flight). Returns true when the API itself changed speed:
    /// the last five windows were all at `level`, and in the last two the
    /// median is 2x above (below) the median of the three before them while
    /// the rate fell (rose) by a third, as Little's law says it must at a
    /// fixed concurrency. Noise in the median alone leaves the rate be.
    pub(super) fn observe(
        &mut self,
        level: usize,
        p50: Duration,
        rate: f64,
        draining: bool,
    ) -> bool {
        self.recent.push_back(Sample {
            level,
            p50,
            rate,
            draining,
        });
        if self.recent.len() > RECENT {
            self.recent.pop_front();
        }
        let last: Vec<Duration> = self
            .recent
            .iter()
            .rev()
            .take(SMOOTH)
            .map(|s| s.p50)
            .collect();
        self.floor.push_back(median(&last));
        if self.floor.len() > FLOOR_WINDOWS {
            self.floor.pop_front();
        }
        let held = self.samples_at(level);
        match held {
            n if n < SMOOTH => self.arrival = None,
            SMOOTH => self.arrival = self.current(level).map(|d| (level, d)),
            _ => {}
        }
        if held < RECENT {
            return false;
        }
        let before: Vec<Duration> = self.recent.iter().take(RECENT - 2).map(|s| s.p50).collect();
        let before = secs(median(&before)).max(1e-9);
        let mut rates: Vec<f64> = self
            .recent
            .iter()
            .take(RECENT - 2)
            .map(|s| s.rate)
            .collect();
        rates.sort_by(f64::total_cmp);
        let rate_before = rates[rates.len() / 2].max(1e-9);
        let moved = |i: usize, sign: f64| {
            let s = self.recent[i];
            let l = secs(s.p50) / before;
            let r = s.rate / rate_before;
            if sign > 0.0 {
                l >= 2.0 && r <= 0.67
            } else {
                l <= 0.5 && r >= 1.5
            }
        };
        let [b, c] = [RECENT - 2, RECENT - 1];
        let jumped = (moved(b, 1.0) && moved(c, 1.0)) || (moved(b, -1.0) && moved(c, -1.0));
        if jumped {
            // Relearn from the new regime only.
            self.recent.drain(..RECENT - 2);
            self.floor.clear();
            let now: Vec<Duration> = self.recent.iter().map(|s| s.p50).collect();
            self.floor.push_back(median(&now));
        }
        jumped
    }

    /// Forgets the no-load latency and starts it again from the median of
    /// the last (up to [`SMOOTH`]) medians measured at `level` or below:
    /// `level` was shown to carry no queue, so neither do the levels under
    /// it. The latest ones only: older medians at `level` may be the old
    /// API's (the bench's `timeouts` phase relearned 18.5 ms from a mix of
    /// the `tail` phase's 13-17 ms and its own 20.6 ms, and free growth,
    /// which needs the median under 1.1x no-load, stayed shut at 1.11x).
    pub(super) fn rebase(&mut self, level: usize) {
        let at: Vec<Duration> = self
            .recent
            .iter()
            .rev()
            .filter(|s| s.level <= level)
            .take(SMOOTH)
            .map(|s| s.p50)
            .collect();
        self.floor.clear();
        if !at.is_empty() {
            self.floor.push_back(median(&at));
        }
        self.arrival = self.current(level).map(|d| (level, d));
    }

    /// The median at `level`, held since it had [`SMOOTH`] windows, rose by
    /// [`HELD_RISE`] or more since: the API itself got slower, as the same
    /// number of calls of ours cannot make a longer queue. Returns the
    /// median on arrival and now.
    pub(super) fn rose_at(&self, level: usize) -> Option<(Duration, Duration)> {
        let (held, then) = self.arrival?;
        let now = self.current(level)?;
        (held == level && secs(now) >= HELD_RISE * secs(then)).then_some((then, now))
    }

    /// The median latency at concurrency `level`: the median of the trailing
    /// raw medians measured there (up to [`SMOOTH`]), leaving out those
    /// measured while a higher level's calls drained unless there are no
    /// others (after startup's 32 -> 64 -> 33 on a 32-call API, two
    /// draining medians of 57 ms outvoted the level's own 39 ms and the
    /// knee rule cut a level with no queue).
    pub(super) fn current(&self, level: usize) -> Option<Duration> {
        let at: Vec<Sample> = self
            .recent
            .iter()
            .rev()
            .take(SMOOTH)
            .take_while(|s| s.level == level)
            .copied()
            .collect();
        let settled: Vec<Duration> = at.iter().filter(|s| !s.draining).map(|s| s.p50).collect();
        let all: Vec<Duration> = at.iter().map(|s| s.p50).collect();
        let pick = if settled.is_empty() { all } else { settled };
        (!pick.is_empty()).then(|| median(&pick))
    }

    /// How many trailing windows were measured at `level`.
    pub(super) fn samples_at(&self, level: usize) -> usize {
        self.recent
            .iter()
            .rev()
            .take_while(|s| s.level == level)
            .count()
    }

    /// The no-load latency: the smallest smoothed median of the last
    /// [`FLOOR_WINDOWS`] windows.
    pub(super) fn no_load(&self) -> Option<Duration> {
        self.floor.iter().min().copied()
    }

    /// `current / no_load` at `level`; 1 when either is unknown.
    pub(super) fn inflation(&self, level: usize) -> f64 {
        match (self.current(level), self.no_load()) {
            (Some(c), Some(n)) if !n.is_zero() => secs(c) / secs(n),
            _ => 1.0,
        }
    }
}

/// Seconds as `f64`.
pub(super) fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Milliseconds as `f64`, for reasons.
pub(super) fn ms(d: Option<Duration>) -> f64 {
    d.map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
}

/// `d * k`, saturating, for any finite or infinite `k` (NaN counts as 0).
pub(super) fn scale(d: Duration, k: f64) -> Duration {
    let s = secs(d) * k;
    if s.is_nan() || s <= 0.0 {
        Duration::ZERO
    } else {
        Duration::try_from_secs_f64(s).unwrap_or(Duration::MAX)
    }
}

/// The median of a few durations (the mean of the middle two for an even
/// count); zero for none.
pub(super) fn median(xs: &[Duration]) -> Duration {
    let mut v = xs.to_vec();
    v.sort_unstable();
    match v.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => v[n / 2],
        n => v[n / 2 - 1] / 2 + v[n / 2] / 2,
    }
}

/// Two consecutive windows as one: counts add, fractions are weighted by
/// time, medians by completions (an approximation), minima and peaks keep
/// the extreme, settings come from the newer window.
fn merge(old: Window, new: &Window) -> Window {
    let (to, tn) = (secs(old.elapsed), secs(new.elapsed));
    let total = to + tn;
    let by_time = |a: f64, b: f64| {
        if total > 0.0 {
            (a * to + b * tn) / total
        } else {
            b
        }
    };
    let (co, cn) = (old.io_completions as f64, new.io_completions as f64);
    let by_count = |a: Option<Duration>, b: Option<Duration>| match (a, b) {
        (Some(a), Some(b)) if co + cn > 0.0 => {
            Some(scale(a, co / (co + cn)).saturating_add(scale(b, cn / (co + cn))))
        }
        (a, b) => b.or(a),
    };
    Window {
        elapsed: old.elapsed.saturating_add(new.elapsed),
        io_completions: old.io_completions.saturating_add(new.io_completions),
        latency_p50: by_count(old.latency_p50, new.latency_p50),
        latency_p90: by_count(old.latency_p90, new.latency_p90),
        latency_min: match (old.latency_min, new.latency_min) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => b.or(a),
        },
        mean_in_flight: by_time(old.mean_in_flight, new.mean_in_flight),
        peak_in_flight: old.peak_in_flight.max(new.peak_in_flight),
        cpu_items: old.cpu_items.saturating_add(new.cpu_items),
        queue_min: old.queue_min.min(new.queue_min),
        agents_blocked: by_time(old.agents_blocked, new.agents_blocked),
        agents_idle: by_time(old.agents_idle, new.agents_idle),
        workers_idle: by_time(old.workers_idle, new.workers_idle),
        throttled: old.throttled.saturating_add(new.throttled),
        timeouts: old.timeouts.saturating_add(new.timeouts),
        errors: old.errors.saturating_add(new.errors),
        retry_after: old.retry_after.max(new.retry_after),
        ..new.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(x: f64) -> Duration {
        Duration::from_secs_f64(x / 1e3)
    }

    #[test]
    fn a_stale_no_load_is_relearned_from_the_latest_medians_only() {
        // tail -> timeouts at one level: 12 ms medians, then 20.6 ms. From
        // all five medians kept, the no-load latency would be the old
        // API's 12 ms again; from the latest three, it is the new one's.
        let mut latency = Latency::default();
        for p50 in [12.0, 12.0, 12.0, 20.6, 20.6] {
            latency.observe(22, ms(p50), 1000.0, false);
        }
        latency.rebase(22);
        assert_eq!(latency.no_load(), Some(ms(20.6)));
    }

    #[test]
    fn a_rise_is_measured_against_the_level_s_median_on_arrival() {
        let mut latency = Latency::default();
        for p50 in [12.0, 12.0, 12.0, 14.0, 14.0] {
            latency.observe(22, ms(p50), 1000.0, false);
        }
        assert_eq!(latency.rose_at(22), None, "1.17x is noise");
        latency.observe(22, ms(16.0), 1000.0, false);
        latency.observe(22, ms(16.0), 1000.0, false);
        assert_eq!(latency.rose_at(22), Some((ms(12.0), ms(16.0))));
        // A new level starts over: no rise until it has its own median.
        latency.observe(25, ms(30.0), 1000.0, false);
        assert_eq!(latency.rose_at(25), None);
    }
}
