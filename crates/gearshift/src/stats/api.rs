//! Per-API stats: what one API budget's calls did, over every stage that
//! draws on it. The budget owns one [`ApiStats`] and records into it; a
//! report reads it through [`ApiReport::build`] with the budget's gauges
//! given as plain values, so stats know nothing of how a budget works.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::counters::{Counter, KindCounts};
use super::latency::{Percentiles, ShardedLatency};
use super::window::{WindowedMax, millis_ceil};
use crate::error::ErrorKind;

/// How far back [`ApiReport::peak_in_flight`] looks.
pub const PEAK_SPAN: Duration = Duration::from_secs(60);

/// A counter split over cache lines, for figures every agent of every stage
/// adds to (at most once per call): each adds to its own line (`key`, e.g.
/// the agent number), a read sums them. Adds release and reads acquire,
/// like [`Counter`], so a reader that sees a later add sees the earlier
/// ones of the same agent (free on x86).
#[derive(Debug)]
pub(crate) struct Striped(Box<[Line]>);

#[derive(Debug, Default)]
#[repr(align(128))]
struct Line(AtomicU64);

impl Striped {
    /// One line per core (a power of two, at most 64).
    pub(crate) fn new(cores: usize) -> Self {
        let n = cores.clamp(1, 64).next_power_of_two();
        Striped((0..n).map(|_| Line::default()).collect())
    }

    pub(crate) fn add(&self, key: usize, n: u64) {
        self.0[key & (self.0.len() - 1)]
            .0
            .fetch_add(n, Ordering::Release);
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.iter().fold(0u64, |sum, l| {
            sum.saturating_add(l.0.load(Ordering::Acquire))
        })
    }
}

/// One API budget's counters: relaxed atomics and sharded histograms, bumped
/// by the agents of every stage that draws on the budget.
#[derive(Debug)]
pub(crate) struct ApiStats {
    pub(crate) name: Arc<str>,
    /// Calls answered successfully.
    pub(crate) calls_ok: Striped,
    /// Calls made, retries included.
    pub(crate) attempts: Striped,
    errors_by_kind: KindCounts,
    /// Latency of successful calls (record per agent, in batches).
    pub(crate) latency: ShardedLatency,
    /// Calls in flight, recorded by the budget's gate at each acquisition.
    pub(crate) peak_in_flight: Arc<WindowedMax>,
    /// Wall time the budget was paused by `Retry-After`.
    pub(crate) paused: Counter,
    /// Longest `Retry-After` (milliseconds) per time bucket.
    pub(crate) retry_after_ms: WindowedMax,
}

impl ApiStats {
    /// `peak_in_flight` is the windowed maximum the budget's gate records
    /// into.
    pub(crate) fn new(name: Arc<str>, cores: usize, peak_in_flight: Arc<WindowedMax>) -> Self {
        ApiStats {
            name,
            calls_ok: Striped::new(cores),
            attempts: Striped::new(cores),
            errors_by_kind: Default::default(),
            latency: ShardedLatency::new(cores),
            peak_in_flight,
            paused: Counter::default(),
            retry_after_ms: WindowedMax::default(),
        }
    }

    /// Counts a failed attempt.
    pub(crate) fn record_error(&self, kind: ErrorKind) {
        self.errors_by_kind.add(kind);
    }

    pub(crate) fn errors_of(&self, kind: ErrorKind) -> u64 {
        self.errors_by_kind.get(kind)
    }

    /// Records a `Retry-After` the remote asked for (after any cap), and by
    /// how much it pushed the pause's end out: zero when it fell inside a
    /// longer pause already under way, so the sum is wall time paused.
    pub(crate) fn note_pause(&self, retry_after: Duration, extended_by: Duration) {
        self.retry_after_ms.record(millis_ceil(retry_after));
        self.paused.add_time(extended_by);
    }
}

/// The values of an API budget's gauges at the moment of a report.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct ApiGauge {
    /// Calls in flight now.
    pub(crate) in_flight: usize,
    /// The budget's limit on calls in flight, if any.
    pub(crate) max_in_flight: Option<usize>,
    /// Calls per second allowed, if limited.
    pub(crate) rate_limit: Option<f64>,
    /// Time left in a `Retry-After` pause under way.
    pub(crate) pause_left: Option<Duration>,
}

/// One API budget's figures, over every stage that draws on it, in every
/// pipeline: a budget shared by several pipelines counts the calls of all
/// of them, since the budget was made. Counts of calls are added by agents
/// in batches (at the latest before an agent waits), so a live report may
/// lag a little behind; a finished pipeline's are complete.
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiReport {
    /// The budget's name.
    pub name: String,
    /// Calls answered successfully.
    pub calls_ok: u64,
    /// Calls made, retries included.
    pub attempts: u64,
    /// Failed attempts by reason.
    pub errors_by_kind: BTreeMap<ErrorKind, u64>,
    /// Failed attempts the remote throttled (429 or 503: [`ErrorKind::RateLimited`]).
    pub throttled: u64,
    /// Attempts that timed out ([`ErrorKind::Timeout`]).
    pub timeouts: u64,
    /// Latency of successful calls.
    pub latency: Percentiles,
    /// Calls in flight now.
    pub in_flight: usize,
    /// Most calls in flight at once over the last [`PEAK_SPAN`].
    pub peak_in_flight: usize,
    /// The limit on calls in flight; `None`: no limit beyond the agents of
    /// the stages drawing on the budget.
    pub max_in_flight: Option<usize>,
    /// Calls per second allowed, if limited.
    pub rate_limit: Option<f64>,
    /// Wall time paused by `Retry-After` over the run.
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::stats::secs::secs"))]
    pub paused: Duration,
    /// Time left in a pause under way.
    #[cfg_attr(
        feature = "serde",
        serde(serialize_with = "crate::stats::secs::opt_secs")
    )]
    pub pause_left: Option<Duration>,
    /// The name of the [`Tuner`](crate::Tuner) that controls the budget's
    /// concurrency (held off or not); `None`: it is fixed.
    pub tuner: Option<String>,
    /// Whether that tuner is the default controller
    /// ([`tuner::default_for`](crate::tuner::default_for)), which a budget
    /// runs when nothing fixes its concurrency, rather than one the user gave.
    pub default_tuner: bool,
}

impl ApiReport {
    /// Reads `stats`, with the budget's gauges as read by the budget.
    pub(crate) fn build(stats: &ApiStats, gauge: ApiGauge) -> ApiReport {
        let now = Instant::now();
        let since = now.checked_sub(PEAK_SPAN).unwrap_or(now);
        let peak = stats.peak_in_flight.max_since(since, now).unwrap_or(0) as usize;
        ApiReport {
            name: stats.name.to_string(),
            // Attempts after outcomes, so a live report never shows more
            // calls answered than made.
            calls_ok: stats.calls_ok.get(),
            errors_by_kind: stats.errors_by_kind.nonzero(),
            throttled: stats.errors_of(ErrorKind::RateLimited),
            timeouts: stats.errors_of(ErrorKind::Timeout),
            attempts: stats.attempts.get(),
            latency: stats.latency.total(),
            in_flight: gauge.in_flight,
            peak_in_flight: peak.max(gauge.in_flight),
            max_in_flight: gauge.max_in_flight,
            rate_limit: gauge.rate_limit,
            paused: Duration::from_nanos(stats.paused.get()),
            pause_left: gauge.pause_left.filter(|d| !d.is_zero()),
            // The budget fills these in: stats know nothing of controllers.
            tuner: None,
            default_tuner: false,
        }
    }

    /// Failed attempts of every kind.
    pub fn errors(&self) -> u64 {
        self.errors_by_kind.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_reads_every_counter_of_the_budget() {
        let peaks = Arc::new(WindowedMax::default());
        let stats = ApiStats::new("search".into(), 4, Arc::clone(&peaks));
        for agent in 0..6 {
            stats.attempts.add(agent, 2);
            stats.calls_ok.add(agent, 1);
        }
        stats.record_error(ErrorKind::RateLimited);
        stats.record_error(ErrorKind::RateLimited);
        stats.record_error(ErrorKind::Timeout);
        stats.record_error(ErrorKind::Server);
        stats
            .latency
            .record_all(3, [10, 20, 30].map(Duration::from_millis));
        peaks.record(5);
        peaks.record(3);
        stats.note_pause(Duration::from_secs(2), Duration::from_secs(2));
        stats.note_pause(Duration::from_secs(1), Duration::ZERO);
        let gauge = ApiGauge {
            in_flight: 2,
            max_in_flight: Some(8),
            rate_limit: Some(50.0),
            pause_left: Some(Duration::ZERO),
        };
        let r = ApiReport::build(&stats, gauge);
        assert_eq!(r.name, "search");
        assert_eq!((r.calls_ok, r.attempts), (6, 12));
        assert_eq!((r.throttled, r.timeouts, r.errors()), (2, 1, 4));
        assert_eq!(r.errors_by_kind.get(&ErrorKind::Server), Some(&1));
        assert_eq!(r.latency.count, 3);
        // Histograms keep 2 significant digits.
        let p50 = r.latency.p50.as_secs_f64();
        assert!((p50 - 0.020).abs() < 0.0005, "{p50}");
        assert_eq!(
            (r.in_flight, r.peak_in_flight, r.max_in_flight),
            (2, 5, Some(8))
        );
        assert_eq!(r.rate_limit, Some(50.0));
        assert_eq!(
            r.paused,
            Duration::from_secs(2),
            "wall time, not the sum asked"
        );
        assert_eq!(r.pause_left, None, "a pause with nothing left is over");
        let at = Instant::now();
        assert_eq!(stats.retry_after_ms.max_since(at, at), Some(2000));
    }

    #[test]
    fn the_peak_is_at_least_what_is_in_flight_now() {
        let stats = ApiStats::new("store".into(), 1, Arc::default());
        let gauge = ApiGauge {
            in_flight: 3,
            max_in_flight: Some(4),
            ..ApiGauge::default()
        };
        let r = ApiReport::build(&stats, gauge);
        assert_eq!((r.peak_in_flight, r.calls_ok, r.errors()), (3, 0, 0));
    }
}
