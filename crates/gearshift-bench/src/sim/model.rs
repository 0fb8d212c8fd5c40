//! The expected rates of a scenario's APIs and CPU stage at a setting: pure
//! arithmetic (Little's law), no noise.
//!
//! Items flow from an unlimited source through the APIs in order, then the
//! CPU stage. A stage whose successes would outrun the next one blocks
//! (its agents wait on a full channel, so fewer calls are in flight); a
//! stage fed less than it could take waits for input (idle agents).

use super::scenario::{Failure, Scenario, Shape};

/// Expected per-second rates of one API at one setting.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rates {
    /// Calls at the API (after agents blocked or idle).
    pub in_flight: f64,
    /// Successful calls per second that the next stage takes (for the last
    /// API, that the CPU stage also finishes).
    pub good: f64,
    /// Calls that timed out, per second.
    pub timeouts: f64,
    /// 5xx answers per second.
    pub errors: f64,
    /// Calls in flight above a hard limit (answered 429).
    pub over_limit: f64,
    /// Mean latency of a successful call (seconds).
    pub latency: f64,
    /// Fraction of agent time blocked on a full channel into the next stage.
    pub blocked: f64,
    /// Fraction of agent time waiting for input from the stage before.
    pub idle: f64,
}

impl Rates {
    /// Calls that ended per second: successes, timeouts and 5xx (429s are
    /// answered at once and counted apart).
    pub fn attempts(&self) -> f64 {
        self.good + self.timeouts + self.errors
    }
}

/// Expected rates of the whole chain at one setting.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Flow {
    /// Per API, in the order items pass them.
    pub apis: Vec<Rates>,
    /// Items per second through every stage (goodput).
    pub good: f64,
    /// Fraction of worker time idle.
    pub workers_idle: f64,
}

/// What one API does: the part of a scenario the families vary.
#[derive(Debug, Clone, Copy)]
struct Api {
    shape: Shape,
    failure: Failure,
    timeout: f64,
    base: f64,
    capacity: f64,
}

impl Api {
    fn mean_latency(&self, n: f64) -> f64 {
        let (b, x) = (self.base, n / self.capacity);
        match self.shape {
            Shape::Flat => b * x.max(1.0),
            Shape::Queueing => b * (1.0 + x.powi(4)).powf(0.25),
            Shape::Retrograde(r) => b * x.max(1.0) * (1.0 + r * (x - 1.0).max(0.0)),
        }
    }

    /// The API alone with `n` calls in flight.
    fn rates(&self, n: f64) -> Rates {
        let (b, c) = (self.base, self.capacity);
        let n = n.max(1e-9);
        let (good, timeouts, errors, over_limit, latency) = match self.failure {
            Failure::None => {
                let l = self.mean_latency(n);
                (n / l, 0.0, 0.0, 0.0, l)
            }
            Failure::Drops => {
                let p = (c / n).min(1.0);
                let rate = n / (p * b + (1.0 - p) * self.timeout);
                (p * rate, (1.0 - p) * rate, 0.0, 0.0, b)
            }
            Failure::Errors { floor, slope } => {
                let l = self.mean_latency(n);
                let e = (floor + slope * (n / c - 1.0).max(0.0)).min(0.95);
                (n / l * (1.0 - e), 0.0, n / l * e, 0.0, l)
            }
            Failure::HardLimit { .. } => {
                let served = n.min(c);
                (served / b, 0.0, 0.0, (n - c).max(0.0), b)
            }
        };
        Rates {
            in_flight: n,
            good,
            timeouts,
            errors,
            over_limit,
            latency,
            ..Rates::default()
        }
    }
}

/// The calls in flight in `0..=n` at which `f` (rising there) reaches
/// `target`, by bisection; `f(n)` must exceed it.
fn solve(f: impl Fn(f64) -> f64, target: f64, n: f64) -> f64 {
    let (mut lo, mut hi) = (0.0, n);
    for _ in 0..40 {
        let mid = 0.5 * (lo + hi);
        if f(mid) > target {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}

impl Scenario {
    /// Items per second the CPU stage drains with `workers` workers.
    pub fn cpu_rate(&self, workers: usize) -> f64 {
        if self.cpu_ms <= 0.0 {
            f64::INFINITY
        } else {
            workers.max(1) as f64 / (self.cpu_ms / 1e3)
        }
    }

    /// The APIs in order; the first at no-load latency `b` and capacity `c`
    /// (its phase's values at that moment).
    fn api_models(&self, b: f64, c: f64) -> Vec<Api> {
        let mut apis = vec![Api {
            shape: self.shape,
            failure: self.failure,
            timeout: self.timeout,
            base: b,
            capacity: c,
        }];
        if let Some(a) = &self.second {
            apis.push(Api {
                shape: a.shape,
                failure: a.failure,
                timeout: a.timeout,
                base: a.base,
                capacity: a.capacity,
            });
        }
        apis
    }

    /// Expected rates with `limits[i]` calls allowed in flight at API `i`
    /// (an API without an entry: 1) and `workers` workers, the first API at
    /// no-load latency `b` and capacity `c`.
    pub fn flow(&self, b: f64, c: f64, limits: &[usize], workers: usize) -> Flow {
        let models = self.api_models(b, c);
        let cpu = self.cpu_rate(workers);
        let limit = |i: usize| limits.get(i).copied().unwrap_or(1).max(1) as f64;
        let mut n: Vec<f64> = (0..models.len()).map(limit).collect();
        let mut blocked = vec![false; models.len()];
        waiting(&models, &mut n, &blocked);
        // From the CPU back: each stage blocks down to what the next takes.
        let mut takes = cpu;
        for (i, m) in models.iter().enumerate().rev() {
            if m.rates(n[i]).good > takes {
                n[i] = solve(|x| m.rates(x).good, takes, n[i]);
                blocked[i] = true;
            }
            takes = m.rates(n[i]).attempts();
        }
        waiting(&models, &mut n, &blocked);
        let mut apis: Vec<Rates> = models
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let spare = 1.0 - n[i] / limit(i);
                Rates {
                    blocked: if blocked[i] { spare } else { 0.0 },
                    idle: if blocked[i] { 0.0 } else { spare.max(0.0) },
                    ..m.rates(n[i])
                }
            })
            .collect();
        let good = apis.last().map_or(0.0, |r| r.good).min(cpu);
        if let Some(last) = apis.last_mut() {
            last.good = good;
        }
        Flow {
            apis,
            good,
            workers_idle: if cpu.is_finite() {
                (1.0 - good / cpu).clamp(0.0, 1.0)
            } else {
                1.0
            },
        }
    }
}

/// From the source on: a stage fed less than it could take runs only the
/// calls that take what it is fed (the fewest that do: from idle, calls in
/// flight grow until they keep up), its other agents waiting for input.
/// A stage whose feeder blocks on it (`blocked[i - 1]`) has a full channel:
/// every one of its agents has work, though on a retrograde API fewer calls
/// would take as much.
fn waiting(models: &[Api], n: &mut [f64], blocked: &[bool]) {
    let mut gives = f64::INFINITY;
    for (i, (m, n)) in models.iter().zip(n.iter_mut()).enumerate() {
        let fed_in_full = i > 0 && blocked[i - 1];
        if !fed_in_full && let Some(x) = first_reaching(|x| m.rates(x).attempts(), gives, *n) {
            *n = x;
        }
        gives = m.rates(*n).good;
    }
}

/// The fewest calls in flight in `0..=n` at which `f` reaches `target`
/// (`f` may rise and fall): a scan, then bisection. `None` if it never does.
fn first_reaching(f: impl Fn(f64) -> f64, target: f64, n: f64) -> Option<f64> {
    if !target.is_finite() {
        return None;
    }
    const SCAN: usize = 32;
    let mut lo = 0.0;
    for j in 1..=SCAN {
        let x = n * (j as f64 / SCAN as f64).powi(2);
        if f(x) >= target {
            let mut hi = x;
            for _ in 0..40 {
                let mid = 0.5 * (lo + hi);
                if f(mid) >= target {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
            return Some(hi);
        }
        lo = x;
    }
    None
}
