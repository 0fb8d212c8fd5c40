//! The expected rates of a scenario's API and CPU stage at a setting: pure
//! arithmetic (Little's law), no noise.

use super::scenario::{Failure, Scenario, Shape};

/// Expected per-second rates at one setting.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rates {
    /// Calls at the API (after agents blocked on the CPU stage).
    pub in_flight: f64,
    /// Successful calls per second that the CPU stage also finishes.
    pub good: f64,
    /// Calls that timed out, per second.
    pub timeouts: f64,
    /// 5xx answers per second.
    pub errors: f64,
    /// Calls in flight above a hard limit (answered 429).
    pub over_limit: f64,
    /// Mean latency of a successful call (seconds).
    pub latency: f64,
    /// Fraction of agent time blocked on a full channel into the CPU stage.
    pub blocked: f64,
    /// Fraction of worker time idle.
    pub workers_idle: f64,
}

impl Scenario {
    fn mean_latency(&self, b: f64, c: f64, n: f64) -> f64 {
        let x = n / c;
        match self.shape {
            Shape::Flat => b * x.max(1.0),
            Shape::Queueing => b * (1.0 + x.powi(4)).powf(0.25),
            Shape::Retrograde(r) => b * x.max(1.0) * (1.0 + r * (x - 1.0).max(0.0)),
        }
    }

    /// The API alone with `n` calls in flight: (good/s, timeouts/s,
    /// errors/s, over limit, latency of served calls).
    fn api(&self, b: f64, c: f64, n: f64) -> (f64, f64, f64, f64, f64) {
        let n = n.max(1e-9);
        match self.failure {
            Failure::None => {
                let l = self.mean_latency(b, c, n);
                (n / l, 0.0, 0.0, 0.0, l)
            }
            Failure::Drops => {
                let p = (c / n).min(1.0);
                let rate = n / (p * b + (1.0 - p) * self.timeout);
                (p * rate, (1.0 - p) * rate, 0.0, 0.0, b)
            }
            Failure::Errors { floor, slope } => {
                let l = self.mean_latency(b, c, n);
                let e = (floor + slope * (n / c - 1.0).max(0.0)).min(0.95);
                (n / l * (1.0 - e), 0.0, n / l * e, 0.0, l)
            }
            Failure::HardLimit { .. } => {
                let served = n.min(c);
                (served / b, 0.0, 0.0, (n - c).max(0.0), b)
            }
        }
    }

    /// Items per second the CPU stage drains with `workers` workers.
    pub fn cpu_rate(&self, workers: usize) -> f64 {
        if self.cpu_ms <= 0.0 {
            f64::INFINITY
        } else {
            workers.max(1) as f64 / (self.cpu_ms / 1e3)
        }
    }

    /// Expected rates with `limit` calls allowed in flight and `workers`
    /// workers, at no-load latency `b` and capacity `c`. When the API would
    /// outrun the CPU stage, agents block on the full channel and the calls
    /// actually in flight fall to what the workers drain.
    pub fn rates(&self, b: f64, c: f64, limit: usize, workers: usize) -> Rates {
        let cpu = self.cpu_rate(workers);
        let mut n = limit.max(1) as f64;
        let mut api = self.api(b, c, n);
        let mut blocked = 0.0;
        if api.0 > cpu {
            // Bisection for the calls in flight whose successes match the CPU.
            let (mut lo, mut hi) = (0.0, n);
            for _ in 0..40 {
                let mid = 0.5 * (lo + hi);
                if self.api(b, c, mid).0 > cpu {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
            blocked = 1.0 - hi / n;
            n = hi;
            api = self.api(b, c, n);
        }
        let good = api.0.min(cpu);
        Rates {
            in_flight: n,
            good,
            timeouts: api.1,
            errors: api.2,
            over_limit: api.3,
            latency: api.4,
            blocked,
            workers_idle: if cpu.is_finite() {
                (1.0 - good / cpu).clamp(0.0, 1.0)
            } else {
                1.0
            },
        }
    }
}
