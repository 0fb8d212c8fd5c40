//! [`Reading`]: what one window says, with its noise. Every comparison the
//! law makes allows for it, so a quiet API is read finely and a noisy one
//! coarsely.

use std::collections::VecDeque;
use std::time::Duration;

use super::Z;
use crate::tuner::Window;

/// What one window says, with its noise.
pub(super) struct Reading {
    /// Lognormal sigma of one call's latency, from p90 over p50.
    pub(super) sigma: f64,
    /// Mean latency of successful calls (seconds).
    pub(super) mean: Option<f64>,
    /// Successful calls.
    pub(super) good: f64,
    /// Successful calls per unpaused second, and its relative error.
    pub(super) rate: f64,
    pub(super) rate_se: f64,
    /// Median latency (seconds), and the error of its log.
    pub(super) p50: Option<f64>,
    pub(super) p50_se: f64,
    /// Calls the API served at once (Little's law: rate x mean latency).
    pub(super) served: f64,
    /// Calls that ended (successes and failures).
    pub(super) ended: f64,
    /// Mean calls in flight over the window.
    pub(super) in_flight: f64,
    /// Share of the window's time in flight spent by calls still running
    /// at its end, beyond what the calls that ended account for (0 when
    /// not measured): the latency statistics do not speak for it.
    pub(super) running: f64,
    /// How long the failed calls took, on average, at least (seconds, two
    /// standard errors below the estimate; `None` when none failed or the
    /// window does not say): a timeout fails its whole length after the
    /// call began.
    pub(super) failed_secs: Option<f64>,
    /// Share of ended calls that failed (timeouts, resets, 5xx), and its error.
    pub(super) failure_share: f64,
    pub(super) failure_se: f64,
}

impl Reading {
    pub(super) fn of(w: &Window) -> Reading {
        let good = w.io_completions as f64;
        let fails = w.timeouts as f64 + w.errors as f64;
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
            ended,
            in_flight: w.mean_in_flight,
            running: match w.mean_in_flight_ended {
                Some(ended) if w.mean_in_flight > 0.0 => {
                    (1.0 - ended / w.mean_in_flight).clamp(0.0, 1.0)
                }
                _ => 0.0,
            },
            failed_secs: match (w.mean_in_flight_ended, secs(w.latency_mean)) {
                (Some(load), mean) if fails > 0.0 => {
                    // The rest of the window's call time, less the
                    // successes' (whose spread is the noise: a few
                    // failures beside many slow successes say little).
                    let mean = mean.unwrap_or(0.0);
                    let good_time = good * mean;
                    let noise = mean * (good * ((sigma * sigma).exp() - 1.0)).sqrt();
                    let rest = load * w.elapsed.as_secs_f64() - good_time - Z * noise;
                    Some((rest / fails).max(0.0))
                }
                _ => None,
            },
            failure_share: share,
            failure_se: share_se(fails, ended),
        }
    }

    /// Whether the window's latency and goodput speak only for its fast
    /// calls. In a window shorter than one turnover of its calls (fewer
    /// ended than were in flight) where those still running carry more of
    /// it than the `tolerance` allows a queue (just after a start or a
    /// raise, on an API slower than the window), the ended ones are the
    /// fast ones: the median reads low and the goodput lags. (A longer
    /// window's share is only the noise of the calls' ages at its two
    /// ends.)
    pub(super) fn censored(&self, tolerance: f64) -> bool {
        self.ended < self.in_flight && self.running > 1.0 - 1.0 / tolerance
    }
}

/// The standard error of a share of `fails` in `ended` calls, by
/// Laplace's estimate: a share of 0 or 1 from a few calls is not certain.
pub(super) fn share_se(fails: f64, ended: f64) -> f64 {
    let p = (fails + 1.0) / (ended + 2.0);
    (p * (1.0 - p) / (ended + 2.0)).sqrt()
}

/// The median of `xs`; `None` when empty.
pub(super) fn median(xs: &VecDeque<f64>) -> Option<f64> {
    let mut v: Vec<f64> = xs.iter().copied().collect();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied()
}
