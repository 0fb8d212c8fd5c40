//! [`GradientParams`]: the law's parameters, one table in `docs/tuner.md`.

use std::time::Duration;

use crate::config::MAX_CONCURRENCY;

/// The parameters of [`Gradient`](super::Gradient); `GradientParams::default()` is the law
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
    /// Failure share above its baseline (the median of recent windows)
    /// that counts as overload, before noise. By default, 0.02.
    pub failure_margin: f64,
    /// How long a level that brought pushback, failures or a loss of
    /// throughput bounds growth. By default, 30 s.
    pub ceiling_memory: Duration,
    /// Calls in flight over what the flow uses (Little's law) when the
    /// limit is not used; a limit counts as used when the flow carries
    /// more than halfway from `1 / headroom` to all of it. By default, 1.25.
    pub headroom: f64,
    /// A window lasts this many median latencies, within
    /// `min_window..=max_window`. By default, 4.
    pub latencies_per_window: f64,
    /// Shortest window after the doubling (slow signals such as timeouts
    /// need time to show; the doubling's windows may be as short as 20 ms).
    /// By default, 200 ms.
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

impl GradientParams {
    /// Out-of-range or non-finite values replaced by sane ones.
    pub(super) fn sane(mut self) -> Self {
        let fin =
            |x: f64, lo: f64, hi: f64, d: f64| if x.is_finite() { x.clamp(lo, hi) } else { d };
        let d = GradientParams::default();
        self.tolerance = fin(self.tolerance, 1.01, 100.0, d.tolerance);
        self.backoff = fin(self.backoff, 0.1, 0.99, d.backoff);
        self.failure_margin = fin(self.failure_margin, 0.0, 1.0, d.failure_margin);
        self.headroom = fin(self.headroom, 1.0, 100.0, d.headroom);
        self.latencies_per_window = fin(
            self.latencies_per_window,
            1.0,
            1000.0,
            d.latencies_per_window,
        );
        self.max_limit = self.max_limit.clamp(1, MAX_CONCURRENCY);
        self.min_limit = self.min_limit.clamp(1, self.max_limit);
        self.max_window = self.max_window.max(Duration::from_millis(10));
        self.min_window = self
            .min_window
            .clamp(Duration::from_millis(10), self.max_window);
        self
    }
}
