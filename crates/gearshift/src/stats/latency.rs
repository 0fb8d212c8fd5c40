//! Latency histograms: cumulative only, so any number of readers can take
//! windows of them. A reader keeps its previous copy and subtracts it
//! ([`LatencyDelta`]); nothing is drained or reset.

use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Percentiles of a latency distribution.
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Percentiles {
    /// Samples recorded.
    pub count: u64,
    /// Smallest sample.
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::stats::secs::secs"))]
    pub min: Duration,
    /// Mean.
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::stats::secs::secs"))]
    pub mean: Duration,
    /// Median.
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::stats::secs::secs"))]
    pub p50: Duration,
    /// 90th percentile.
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::stats::secs::secs"))]
    pub p90: Duration,
    /// 99th percentile.
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::stats::secs::secs"))]
    pub p99: Duration,
    /// Largest sample.
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::stats::secs::secs"))]
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
            mean: Duration::try_from_secs_f64(h.mean() / 1e6).unwrap_or_default(),
            p50: us(h.value_at_quantile(0.5)),
            p90: us(h.value_at_quantile(0.9)),
            p99: us(h.value_at_quantile(0.99)),
            max: us(h.max()),
        }
    }
}

/// Records durations at microsecond resolution, cumulatively.
#[derive(Debug)]
pub(crate) struct LatencyRecorder {
    hist: Mutex<Histogram<u64>>,
}

impl LatencyRecorder {
    pub(crate) fn new() -> Self {
        LatencyRecorder {
            hist: Mutex::new(new_histogram()),
        }
    }

    /// Records `n` samples of the same duration.
    pub(crate) fn record_n(&self, d: Duration, n: u64) {
        self.lock().saturating_record_n(micros(d), n);
    }

    /// Records many samples under one lock.
    pub(crate) fn record_all(&self, ds: impl IntoIterator<Item = Duration>) {
        let mut h = self.lock();
        for d in ds {
            h.saturating_record(micros(d));
        }
    }

    pub(crate) fn total(&self) -> Percentiles {
        Percentiles::of(&self.lock())
    }

    /// Adds every sample so far to `into`.
    pub(crate) fn add_to(&self, into: &mut Histogram<u64>) {
        let _ = into.add(&*self.lock());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Histogram<u64>> {
        self.hist.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
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
        self.add_to(&mut all);
        Percentiles::of(&all)
    }

    /// Adds every sample so far, over all shards, to `into`.
    pub(crate) fn add_to(&self, into: &mut Histogram<u64>) {
        for s in &self.shards {
            s.add_to(into);
        }
    }
}

/// One reader's window over a cumulative [`ShardedLatency`]: the samples
/// since its previous read, as the difference of two cumulative copies.
/// The three histograms are reused, so a read allocates nothing.
#[derive(Debug)]
pub(crate) struct LatencyDelta {
    prev: Histogram<u64>,
    now: Histogram<u64>,
    delta: Histogram<u64>,
}

impl LatencyDelta {
    /// A reader whose first window starts with the samples so far.
    pub(crate) fn new(source: &ShardedLatency) -> Self {
        Self::new_with(|h| source.add_to(h))
    }

    /// A reader of any cumulative source: `fill` adds every sample so far.
    pub(crate) fn new_with(fill: impl FnOnce(&mut Histogram<u64>)) -> Self {
        let mut prev = new_histogram();
        fill(&mut prev);
        LatencyDelta {
            prev,
            now: new_histogram(),
            delta: new_histogram(),
        }
    }

    /// The samples recorded since the previous read.
    pub(crate) fn read(&mut self, source: &ShardedLatency) -> &Histogram<u64> {
        self.read_with(|h| source.add_to(h))
    }

    /// [`read`](Self::read) of any cumulative source, as given to
    /// [`new_with`](Self::new_with).
    pub(crate) fn read_with(&mut self, fill: impl FnOnce(&mut Histogram<u64>)) -> &Histogram<u64> {
        self.now.reset();
        fill(&mut self.now);
        self.delta.reset();
        let _ = self.delta.add(&self.now);
        // Every shard only grows, so the new copy holds the old one.
        if self.delta.subtract(&self.prev).is_err() {
            tracing::warn!("latency histogram shrank between two reads; window reset");
            self.delta.reset();
        }
        std::mem::swap(&mut self.prev, &mut self.now);
        &self.delta
    }
}

/// Microseconds from 1 us to 1 h, at 2 significant digits (1% precision):
/// about 25 KiB a histogram.
pub(crate) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("static histogram bounds are valid")
}
