//! What the processes write to the key-value bucket, and how a member's
//! windows become one cluster window.
//!
//! Members publish running totals, not per-window deltas: the leader reads
//! at its own pace, and a difference of totals counts every call once
//! however the reads and writes interleave.

use std::collections::BTreeMap;
use std::time::Duration;

use gearshift::tuner::Window;
use serde::{Deserialize, Serialize};

/// A member's record, `<api>.member.<process id>`, put every renewal.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct MemberRecord {
    /// Changes when the process restarts under the same id, so the leader
    /// does not subtract totals of an earlier life.
    pub incarnation: u64,
    /// Calls in flight the member could use (`u64::MAX`: all it gets).
    pub demand: u64,
    /// Running totals since the member started.
    pub totals: Totals,
    /// Gauges of the member's latest window.
    pub gauges: Gauges,
    /// The term and control step of the grant the member holds its share
    /// from: the leader measures a new limit only once all hold it.
    #[serde(default)]
    pub applied: (u64, u64),
    /// Calls in flight the member's budget allows now.
    #[serde(default)]
    pub holding: u64,
    /// The record's revision in the bucket, as the leader read it.
    #[serde(skip)]
    pub revision: u64,
}

/// The leader's record, `<api>.leader`, renewed every renewal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LeaderRecord {
    /// The leading process.
    pub id: String,
}

/// The leader's grant, `<api>.grant`, written every renewal.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct GrantRecord {
    /// The term of the leader that wrote it: the leader key's revision
    /// when it won.
    pub term: u64,
    /// The cluster's limit on calls in flight.
    pub limit: u64,
    /// Control steps taken in this term.
    pub steps: u64,
    /// Each member's share, by process id.
    pub shares: BTreeMap<String, GrantShare>,
}

/// One member's part of a grant.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub(crate) struct GrantShare {
    /// The member's incarnation the leader saw: a grant naming this
    /// process's own was written after its first put.
    pub incarnation: u64,
    /// Calls in flight.
    pub calls: u64,
}

/// Running sums over a member's windows; differences of two readings give
/// what happened in between.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub(crate) struct Totals {
    pub elapsed_s: f64,
    pub completions: u64,
    pub throttled: u64,
    pub timeouts: u64,
    pub errors: u64,
    pub cpu_items: u64,
    /// Sum of mean latency x completions.
    pub latency_s: f64,
    /// Sum of median latency x completions.
    pub p50_s: f64,
    /// Sum of 90th percentile latency x completions.
    pub p90_s: f64,
    /// Calls in flight integrated over time (call-seconds).
    pub in_flight_s: f64,
    pub paused_s: f64,
    /// Agents integrated over time, and the parts idle and blocked.
    pub agent_s: f64,
    pub agent_idle_s: f64,
    pub agent_blocked_s: f64,
    /// Workers integrated over time, and the part idle.
    pub worker_s: f64,
    pub worker_idle_s: f64,
}

/// Values of a member's latest windows that do not add up over time.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub(crate) struct Gauges {
    pub cores: usize,
    pub workers: usize,
    pub max_workers: usize,
    pub queue_min: usize,
    pub queue_capacity: usize,
    /// Since the member's previous put.
    pub peak_in_flight: usize,
    pub latency_min_s: Option<f64>,
    pub retry_after_s: Option<f64>,
}

impl Totals {
    /// Adds one local window.
    pub fn add(&mut self, w: &Window) {
        let el = w.elapsed.as_secs_f64();
        let n = w.io_completions as f64;
        let secs = |d: Option<Duration>| d.map_or(0.0, |d| d.as_secs_f64());
        self.elapsed_s += el;
        self.completions = self.completions.saturating_add(w.io_completions);
        self.throttled = self.throttled.saturating_add(w.throttled);
        self.timeouts = self.timeouts.saturating_add(w.timeouts);
        self.errors = self.errors.saturating_add(w.errors);
        self.cpu_items = self.cpu_items.saturating_add(w.cpu_items);
        self.latency_s += secs(w.latency_mean) * n;
        self.p50_s += secs(w.latency_p50) * n;
        self.p90_s += secs(w.latency_p90) * n;
        self.in_flight_s += finite(w.mean_in_flight) * el;
        self.paused_s += w.paused.as_secs_f64().min(el);
        let agents = w.agents as f64 * el;
        self.agent_s += agents;
        self.agent_idle_s += fraction(w.agents_idle) * agents;
        self.agent_blocked_s += fraction(w.agents_blocked) * agents;
        let workers = w.workers as f64 * el;
        self.worker_s += workers;
        self.worker_idle_s += fraction(w.workers_idle) * workers;
    }

    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &Totals) -> Totals {
        let f = |a: f64, b: f64| (a - b).max(0.0);
        Totals {
            elapsed_s: f(self.elapsed_s, earlier.elapsed_s),
            completions: self.completions.saturating_sub(earlier.completions),
            throttled: self.throttled.saturating_sub(earlier.throttled),
            timeouts: self.timeouts.saturating_sub(earlier.timeouts),
            errors: self.errors.saturating_sub(earlier.errors),
            cpu_items: self.cpu_items.saturating_sub(earlier.cpu_items),
            latency_s: f(self.latency_s, earlier.latency_s),
            p50_s: f(self.p50_s, earlier.p50_s),
            p90_s: f(self.p90_s, earlier.p90_s),
            in_flight_s: f(self.in_flight_s, earlier.in_flight_s),
            paused_s: f(self.paused_s, earlier.paused_s),
            agent_s: f(self.agent_s, earlier.agent_s),
            agent_idle_s: f(self.agent_idle_s, earlier.agent_idle_s),
            agent_blocked_s: f(self.agent_blocked_s, earlier.agent_blocked_s),
            worker_s: f(self.worker_s, earlier.worker_s),
            worker_idle_s: f(self.worker_idle_s, earlier.worker_idle_s),
        }
    }

    /// Sums two members' differences.
    pub fn plus(&self, o: &Totals) -> Totals {
        Totals {
            elapsed_s: self.elapsed_s + o.elapsed_s,
            completions: self.completions.saturating_add(o.completions),
            throttled: self.throttled.saturating_add(o.throttled),
            timeouts: self.timeouts.saturating_add(o.timeouts),
            errors: self.errors.saturating_add(o.errors),
            cpu_items: self.cpu_items.saturating_add(o.cpu_items),
            latency_s: self.latency_s + o.latency_s,
            p50_s: self.p50_s + o.p50_s,
            p90_s: self.p90_s + o.p90_s,
            in_flight_s: self.in_flight_s + o.in_flight_s,
            paused_s: self.paused_s + o.paused_s,
            agent_s: self.agent_s + o.agent_s,
            agent_idle_s: self.agent_idle_s + o.agent_idle_s,
            agent_blocked_s: self.agent_blocked_s + o.agent_blocked_s,
            worker_s: self.worker_s + o.worker_s,
            worker_idle_s: self.worker_idle_s + o.worker_idle_s,
        }
    }
}

impl Gauges {
    /// Takes one local window's gauges, keeping the extremes since the
    /// last put.
    pub fn add(&mut self, w: &Window) {
        self.cores = w.cores;
        self.workers = w.workers;
        self.max_workers = w.max_workers;
        self.queue_min = w.queue_min;
        self.queue_capacity = w.queue_capacity;
        self.peak_in_flight = self.peak_in_flight.max(w.peak_in_flight);
        self.latency_min_s = extreme(self.latency_min_s, w.latency_min, f64::min);
        self.retry_after_s = extreme(self.retry_after_s, w.retry_after, f64::max);
    }

    /// Forgets the extremes once they are put.
    pub fn reset_extremes(&mut self) {
        self.peak_in_flight = 0;
        self.latency_min_s = None;
        self.retry_after_s = None;
    }
}

/// One cluster window from the members' differences and gauges, as if one
/// pipeline had made every member's calls.
///
/// Exact for counts, latency means, calls in flight and time fractions.
/// Approximate for percentiles (the completion-weighted mean of the
/// members' window medians, resp. 90th percentiles, not the percentile of
/// the union) and for the peak in flight (the sum of the members' peaks, an
/// upper bound). Agents are the limit, see below.
pub(crate) fn cluster_window(
    elapsed: Duration,
    limit: u64,
    sum: &Totals,
    gauges: &[Gauges],
) -> Window {
    let el = elapsed.as_secs_f64();
    let n = sum.completions as f64;
    let per_call = |s: f64| (n > 0.0).then(|| secs(s / n));
    let frac = |part: f64, whole: f64| if whole > 0.0 { part / whole } else { 0.0 };
    let g = |f: fn(&Gauges) -> usize| gauges.iter().map(f).sum::<usize>();
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let min_latency = gauges
        .iter()
        .filter_map(|g| g.latency_min_s)
        .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.min(x))));
    let retry_after = gauges
        .iter()
        .filter_map(|g| g.retry_after_s)
        .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
    Window {
        elapsed,
        cores: g(|g| g.cores),
        // Each member's agents follow its share, so the cluster's follow
        // the limit (a law reading fewer agents than permits would take
        // the members' lagging counts for a limit moved by someone else).
        agents: limit,
        api_permits: limit,
        workers: g(|g| g.workers),
        max_workers: g(|g| g.max_workers),
        io_completions: sum.completions,
        latency_p50: per_call(sum.p50_s),
        latency_p90: per_call(sum.p90_s),
        latency_min: min_latency.map(secs),
        latency_mean: per_call(sum.latency_s),
        mean_in_flight: if el > 0.0 { sum.in_flight_s / el } else { 0.0 },
        // The members' records do not carry it: the cluster's law reads
        // latency without the check for calls still running.
        mean_in_flight_ended: None,
        peak_in_flight: g(|g| g.peak_in_flight),
        cpu_items: sum.cpu_items,
        queue_min: g(|g| g.queue_min),
        queue_capacity: g(|g| g.queue_capacity),
        agents_blocked: frac(sum.agent_blocked_s, sum.agent_s),
        agents_idle: frac(sum.agent_idle_s, sum.agent_s),
        workers_idle: frac(sum.worker_idle_s, sum.worker_s),
        throttled: sum.throttled,
        timeouts: sum.timeouts,
        errors: sum.errors,
        retry_after: retry_after.map(secs),
        paused: elapsed.mul_f64(frac(sum.paused_s, sum.elapsed_s).clamp(0.0, 1.0)),
    }
}

/// A measured number, 0 when not finite: JSON has no NaN, and a record
/// that does not parse would cost its member its share.
fn finite(x: f64) -> f64 {
    if x.is_finite() { x.max(0.0) } else { 0.0 }
}

/// A measured fraction within 0..=1.
fn fraction(x: f64) -> f64 {
    finite(x).min(1.0)
}

/// The smaller (or larger) of a kept value and a window's, either may be
/// missing.
fn extreme(kept: Option<f64>, new: Option<Duration>, pick: fn(f64, f64) -> f64) -> Option<f64> {
    match (kept, new.map(|d| d.as_secs_f64())) {
        (Some(a), Some(b)) => Some(pick(a, b)),
        (a, b) => a.or(b),
    }
}

/// Seconds to a duration, capped at an hour (records come from other
/// processes and may hold anything).
fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s.clamp(0.0, 3600.0)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(completions: u64, p50_ms: u64, in_flight: f64, idle: f64) -> Window {
        let ms = |m| Some(Duration::from_millis(m));
        Window {
            elapsed: Duration::from_secs(1),
            cores: 2,
            agents: 4,
            io_completions: completions,
            latency_p50: ms(p50_ms),
            latency_p90: ms(p50_ms * 2),
            latency_mean: ms(p50_ms),
            latency_min: ms(p50_ms / 2),
            mean_in_flight: in_flight,
            peak_in_flight: in_flight.ceil() as usize,
            agents_idle: idle,
            throttled: 1,
            ..Window::default()
        }
    }

    #[test]
    fn members_merge_as_one_pipeline() {
        let (mut a, mut b) = (Totals::default(), Totals::default());
        let (mut ga, mut gb) = (Gauges::default(), Gauges::default());
        a.add(&window(300, 10, 3.0, 0.0));
        ga.add(&window(300, 10, 3.0, 0.0));
        b.add(&window(100, 50, 5.0, 0.5));
        gb.add(&window(100, 50, 5.0, 0.5));
        let sum = a.since(&Totals::default()).plus(&b);
        let w = cluster_window(Duration::from_secs(1), 12, &sum, &[ga, gb]);
        assert_eq!(w.io_completions, 400);
        assert_eq!(w.throttled, 2);
        assert_eq!(w.cores, 4);
        assert_eq!((w.agents, w.api_permits), (12, 12));
        // Weighted by completions: (300 x 10 + 100 x 50) / 400 = 20 ms.
        assert_eq!(w.latency_p50, Some(Duration::from_millis(20)));
        assert_eq!(w.latency_min, Some(Duration::from_millis(5)));
        assert!((w.mean_in_flight - 8.0).abs() < 1e-9);
        assert_eq!(w.peak_in_flight, 8);
        // Half of b's agent time out of all: 0.5 x 4 / 8.
        assert!((w.agents_idle - 0.25).abs() < 1e-9);
    }

    #[test]
    fn differences_count_each_call_once() {
        let mut t = Totals::default();
        t.add(&window(10, 10, 1.0, 0.0));
        let first = t;
        t.add(&window(5, 10, 1.0, 0.0));
        assert_eq!(t.since(&first).completions, 5);
        // A member restarted under the same id reads as nothing, not as
        // a negative count.
        assert_eq!(first.since(&t).completions, 0);
    }

    #[test]
    fn numbers_that_json_cannot_hold_become_zero() {
        let mut t = Totals::default();
        t.add(&window(10, 10, f64::NAN, f64::INFINITY));
        let json = serde_json::to_vec(&t).unwrap();
        let back: Totals = serde_json::from_slice(&json).unwrap();
        assert_eq!(back.in_flight_s, 0.0);
        assert_eq!(back.agent_idle_s, 0.0);
    }
}
