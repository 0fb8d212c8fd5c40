//! Latency histograms: a cumulative one for reports and a windowed one that
//! the controller drains each control window for the tuner.

use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Percentiles of a latency distribution.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Percentiles {
    /// Samples recorded.
    pub count: u64,
    /// Smallest sample.
    pub min: Duration,
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Largest sample.
    pub max: Duration,
}

impl Percentiles {
    pub(crate) fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Percentiles::default();
        }
        let us = Duration::from_micros;
        Percentiles {
            count: h.len(),
            min: us(h.min()),
            p50: us(h.value_at_quantile(0.5)),
            p90: us(h.value_at_quantile(0.9)),
            p99: us(h.value_at_quantile(0.99)),
            max: us(h.max()),
        }
    }
}

/// Records durations at microsecond resolution (3 significant digits).
#[derive(Debug)]
pub(crate) struct LatencyRecorder {
    hists: Mutex<Pair>,
}

#[derive(Debug)]
struct Pair {
    total: Histogram<u64>,
    window: Histogram<u64>,
}

impl LatencyRecorder {
    pub(crate) fn new() -> Self {
        LatencyRecorder {
            hists: Mutex::new(Pair {
                total: new_histogram(),
                window: new_histogram(),
            }),
        }
    }

    /// Records `n` samples of the same duration.
    pub(crate) fn record_n(&self, d: Duration, n: u64) {
        let us = (d.as_micros() as u64).max(1);
        let mut h = self.lock();
        h.total.saturating_record_n(us, n);
        h.window.saturating_record_n(us, n);
    }

    /// Records many samples under one lock.
    pub(crate) fn record_all(&self, ds: impl IntoIterator<Item = Duration>) {
        let mut h = self.lock();
        for d in ds {
            let us = (d.as_micros() as u64).max(1);
            h.total.saturating_record(us);
            h.window.saturating_record(us);
        }
    }

    pub(crate) fn total(&self) -> Percentiles {
        Percentiles::of(&self.lock().total)
    }

    /// Adds the samples since the last call to `into`, and forgets them.
    pub(crate) fn drain_window(&self, into: &mut Histogram<u64>) {
        let mut h = self.lock();
        let _ = into.add(&h.window);
        h.window.reset();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pair> {
        self.hists.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Latency histograms spread over shards, so that agents on many cores do
/// not all take one lock: an agent records into shard `agent % shards`.
#[derive(Debug)]
pub(crate) struct ShardedLatency {
    shards: Vec<LatencyRecorder>,
}

impl ShardedLatency {
    /// One shard per core (a power of two, at most 64).
    pub(crate) fn new(cores: usize) -> Self {
        let n = cores.clamp(1, 64).next_power_of_two();
        ShardedLatency {
            shards: (0..n).map(|_| LatencyRecorder::new()).collect(),
        }
    }

    pub(crate) fn record_n(&self, key: usize, d: Duration, n: u64) {
        self.shards[key & (self.shards.len() - 1)].record_n(d, n);
    }

    pub(crate) fn record_all(&self, key: usize, ds: impl IntoIterator<Item = Duration>) {
        self.shards[key & (self.shards.len() - 1)].record_all(ds);
    }

    pub(crate) fn total(&self) -> Percentiles {
        let mut all = new_histogram();
        for s in &self.shards {
            let _ = all.add(&s.lock().total);
        }
        Percentiles::of(&all)
    }

    pub(crate) fn drain_window(&self, into: &mut Histogram<u64>) {
        for s in &self.shards {
            s.drain_window(into);
        }
    }
}

/// Microseconds from 1 us to 1 h, at 2 significant digits (1% precision):
/// about 25 KiB a histogram.
pub(crate) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("static histogram bounds are valid")
}
