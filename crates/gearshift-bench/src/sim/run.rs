//! The closed loop: tuners against a scenario, one window at a time, with
//! seeded noise and no clock. Each API's budget has its own tuner, which
//! sees only its own stage's measurements.

use std::time::Duration;

use gearshift::tuner::{Decision, Tuner, Window};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::budget::{Budget, Measured, Seen, normal};
use super::scenario::{Failure, Scenario};

/// The most calls in flight the simulator lets a tuner set.
pub const MAX_LIMIT: usize = 4096;
/// Shortest and longest window the simulator runs, whatever a tuner asks.
const WINDOW: (f64, f64) = (0.01, 5.0);

/// How a run starts and what the pipeline around the tuners does.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Calls in flight (agents and permits) at the start, per API; an API
    /// without an entry starts at the seed's rule of thumb.
    pub start: Vec<usize>,
    /// Whether a budget pauses for a `Retry-After`, as gearshift's does.
    pub honor_retry_after: bool,
}

impl SimConfig {
    /// The seed's rule of thumb: 2 agents per core; `Retry-After` honoured.
    pub fn for_scenario(s: &Scenario) -> SimConfig {
        SimConfig {
            start: vec![2 * s.cores; s.apis()],
            honor_retry_after: true,
        }
    }

    /// Every API starting at `n` calls in flight, as a fixed setting does.
    pub fn starting_at(s: &Scenario, n: &[usize]) -> SimConfig {
        SimConfig {
            start: n.to_vec(),
            ..SimConfig::for_scenario(s)
        }
    }
}

/// One stretch of a run: ends where a tuner decides or a phase ends.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Start (seconds).
    pub t: f64,
    /// Length (seconds).
    pub secs: f64,
    /// Index of the phase the step is in (steps never cross phases).
    pub phase: usize,
    /// Calls in flight allowed at each API.
    pub limits: Vec<usize>,
    /// CPU workers.
    pub workers: usize,
    /// Items through every stage that the step measured (noisy).
    pub good: u64,
    /// Items through every stage expected at this setting (what scores
    /// use, so luck in the noise neither helps nor hurts a score).
    pub expected: f64,
    /// Failed attempts at every API: timeouts, 5xx and 429s.
    pub failures: u64,
    /// Seconds the chain was stopped by a `Retry-After`.
    pub paused: f64,
    /// Calls started while a `Retry-After` was in force.
    pub in_retry_after: f64,
}

/// A run's steps, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Trajectory {
    /// The tuners' names, `+` between different ones.
    pub tuner: String,
    /// Every step.
    pub steps: Vec<Step>,
}

/// A tuner that keeps `n` calls in flight: the oracle's sweep, and a
/// baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fixed(pub usize);

impl Tuner for Fixed {
    fn name(&self) -> &str {
        "fixed"
    }

    fn window(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn decide(&mut self, w: &Window) -> Decision {
        if w.agents == self.0 && w.api_permits == self.0 {
            return Decision::hold(format!("fixed at {}", self.0));
        }
        Decision {
            agents: Some(self.0),
            api_permits: Some(self.0),
            workers: None,
            reason: format!("fixed at {}", self.0),
        }
    }
}

/// Runs the scenario with `tuners[i]` driving API `i`'s budget and returns
/// every step. An API without a tuner keeps its starting setting; extra
/// tuners are not used. The CPU workers follow the last API's tuner (the
/// stage that feeds them). Same scenario, tuners and config: same
/// trajectory.
pub fn simulate(s: &Scenario, tuners: &mut [&mut dyn Tuner], cfg: &SimConfig) -> Trajectory {
    let mut rng = StdRng::seed_from_u64(s.seed ^ 0x5151_7ea1_0c0f_fee5);
    // Its own stream, so the other draws stay as they were without it.
    let mut running_rng = StdRng::seed_from_u64(s.seed ^ 0x2c3a_9d1e_77b0_4f15);
    let starts = s.phase_starts();
    let total = s.secs();
    let k = s.apis();
    let apis: Vec<ApiParams> = (0..k).map(|i| ApiParams::of(s, i)).collect();
    let mut budgets: Vec<Budget> = (0..k)
        .map(|i| {
            let n = cfg.start.get(i).copied().unwrap_or(2 * s.cores);
            let at = tuners.get(i).map_or(f64::INFINITY, |t| window_secs(&**t));
            Budget::new(n.clamp(1, MAX_LIMIT), at)
        })
        .collect();
    let mut workers = s.cores;
    let mut steps = Vec::new();
    let (mut t, mut phase) = (0.0f64, 0usize);
    while t < total - 1e-9 {
        while phase + 1 < s.phases.len() && t >= starts[phase] + s.phases[phase].secs - 1e-9 {
            phase += 1;
        }
        let p = &s.phases[phase];
        let phase_end = starts[phase] + p.secs;
        let next = budgets
            .iter()
            .map(|b| b.decide_at)
            .fold(phase_end, f64::min);
        let dt = (next - t).max(1e-6);
        let (b, c) = p.at((t + dt / 2.0 - starts[phase]) / p.secs);
        let limits: Vec<usize> = budgets.iter().map(Budget::limit).collect();
        let flow = s.flow(b, c, &limits, workers);
        // Each budget's own pause, then the chain runs only while none is.
        let mut own_paused: Vec<f64> = budgets
            .iter()
            .map(|bu| {
                if cfg.honor_retry_after {
                    (bu.paused_until - t).clamp(0.0, dt)
                } else {
                    0.0
                }
            })
            .collect();
        let paused = own_paused.iter().copied().fold(0.0, f64::max);
        let mut active = dt - paused;
        let over = |i: usize| flow.apis[i].over_limit > 0.0;
        let bursts: Vec<bool> = (0..k)
            .map(|i| cfg.honor_retry_after && apis[i].retry_after.is_some() && over(i))
            .collect();
        if active > 0.0 {
            for i in (0..k).filter(|&i| bursts[i]) {
                // One burst of 429s; the budget pauses once its answers arrive.
                active = active.min(if i == 0 { b } else { apis[i].base });
            }
        }
        let mut in_ra = 0.0;
        let mut throttled = 0;
        for (i, bu) in budgets.iter_mut().enumerate() {
            let (Some(ra), r) = (apis[i].retry_after, &flow.apis[i]) else {
                continue;
            };
            let n = if bursts[i] && active > 0.0 {
                bu.paused_until = t + paused + active + ra;
                own_paused[i] = dt - active;
                r.over_limit.ceil() as u64
            } else if over(i) && !cfg.honor_retry_after {
                // 429s come back in about a millisecond, and calls go on.
                in_ra += (r.attempts() + r.over_limit / 0.001) * active;
                bu.ra_until = t + dt + ra;
                (r.over_limit / 0.001 * active).round() as u64
            } else {
                if !cfg.honor_retry_after {
                    in_ra += r.attempts() * (bu.ra_until - t).clamp(0.0, dt);
                }
                0
            };
            if n > 0 {
                bu.window.throttled += n;
                bu.window.retry_after = Some(bu.window.retry_after.unwrap_or(0.0).max(ra));
            }
            throttled += n;
        }
        let mut good = 0;
        let mut failures = throttled;
        for (i, bu) in budgets.iter_mut().enumerate() {
            let r = &flow.apis[i];
            let cv2 = (apis[i].sigma * apis[i].sigma).exp() - 1.0;
            // The calls that end follow the latency's spread; each of them
            // fails on its own (a fault, a drop) with the failing share, so
            // a window in which few calls ended has few failures too.
            let failing = r.timeouts + r.errors;
            let ended = count(&mut rng, (r.good + failing) * active, cv2);
            let failed = thinned(&mut rng, ended, failing / (failing + r.good).max(1e-12));
            let completions = ended - failed;
            let seen = Seen {
                dt,
                active,
                own_paused: own_paused[i],
                upstream: i > 0,
                downstream: i + 1 < k,
                limit: limits[i],
                workers_idle: flow.workers_idle,
                completions,
                failures: failed,
            };
            bu.window.add(r, seen);
            let busy = r.in_flight / limits[i].max(1) as f64;
            bu.running.add(t, active, busy, r.latency, apis[i].sigma);
            failures += failed;
            good = completions;
        }
        steps.push(Step {
            t,
            secs: dt,
            phase,
            limits,
            workers,
            good,
            expected: flow.good * active,
            failures,
            paused: dt - active,
            in_retry_after: in_ra,
        });
        t += dt;
        let phase_over = t >= phase_end - 1e-9;
        for (i, bu) in budgets.iter_mut().enumerate() {
            bu.window.add_chain_items(good);
            if !(phase_over || t >= bu.decide_at - 1e-9) {
                continue;
            }
            let Some(tuner) = tuners.get_mut(i) else {
                continue;
            };
            let mut w =
                bu.window
                    .window(&mut rng, bu, s.cores, workers, apis[i].sigma, &bu.running);
            let secs = w.elapsed.as_secs_f64();
            let mean = w.latency_mean.map_or(0.0, |m| m.as_secs_f64());
            let credited =
                bu.running
                    .credited(&mut running_rng, w.mean_in_flight * secs, secs, mean);
            w.mean_in_flight_ended = Some(if secs > 0.0 { credited / secs } else { 0.0 });
            let d = tuner.decide(&w);
            let before = bu.limit();
            if let Some(a) = d.agents {
                bu.agents = a.clamp(1, MAX_LIMIT);
            }
            if let Some(a) = d.api_permits {
                bu.permits = a.clamp(1, MAX_LIMIT);
            }
            bu.running.resize(t, before, bu.limit());
            if let (Some(w), true) = (d.workers, i + 1 == k) {
                workers = w.clamp(1, s.cores);
            }
            bu.window = Measured::default();
            bu.decide_at = t + window_secs(&**tuner);
        }
    }
    let mut names: Vec<&str> = tuners.iter().take(k).map(|t| t.name()).collect();
    names.dedup();
    Trajectory {
        tuner: names.join("+"),
        steps,
    }
}

/// What the loop needs of API `i` beyond its rates.
struct ApiParams {
    sigma: f64,
    base: f64,
    retry_after: Option<f64>,
}

impl ApiParams {
    fn of(s: &Scenario, i: usize) -> ApiParams {
        let (sigma, base, failure) = match (&s.second, i) {
            (Some(a), 1) => (a.sigma, a.base, a.failure),
            _ => (s.sigma, f64::NAN, s.failure),
        };
        ApiParams {
            sigma,
            base,
            retry_after: match failure {
                Failure::HardLimit { retry_after } => Some(retry_after),
                _ => None,
            },
        }
    }
}

/// A tuner's next window in seconds, within what the simulator runs.
fn window_secs(t: &dyn Tuner) -> f64 {
    let want = t.window().as_secs_f64();
    if want.is_finite() {
        want.clamp(WINDOW.0, WINDOW.1)
    } else {
        WINDOW.1
    }
}

/// How many of `n` calls fail, each with probability `p` (a binomial, by
/// its normal approximation).
fn thinned(rng: &mut StdRng, n: u64, p: f64) -> u64 {
    let (n, p) = (n as f64, p.clamp(0.0, 1.0));
    (n * p + (n * p * (1.0 - p)).sqrt() * normal(rng))
        .round()
        .clamp(0.0, n) as u64
}

/// A count with mean `x` and the spread of a renewal process whose
/// intervals have squared coefficient of variation `cv2`.
fn count(rng: &mut StdRng, x: f64, cv2: f64) -> u64 {
    if x <= 0.0 {
        return 0;
    }
    (x + (x * cv2.max(1.0)).sqrt() * normal(rng))
        .round()
        .max(0.0) as u64
}

/// Runs a fresh tuner from `make(cores)` on each API of `s` (see
/// [`simulate`]).
pub fn simulate_with(
    s: &Scenario,
    make: &dyn Fn(usize) -> Box<dyn Tuner>,
    cfg: &SimConfig,
) -> Trajectory {
    let mut tuners: Vec<Box<dyn Tuner>> = (0..s.apis()).map(|_| make(s.cores)).collect();
    let mut refs: Vec<&mut dyn Tuner> = tuners.iter_mut().map(|t| t.as_mut()).collect();
    simulate(s, &mut refs, cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Failed calls are a share of the calls that ended: never more than
    /// them, and a 3% floor fails about 3 in 100 with a binomial's spread,
    /// not the latency's.
    #[test]
    fn failures_thin_the_calls_that_ended() {
        let mut rng = StdRng::seed_from_u64(7);
        assert_eq!(thinned(&mut rng, 0, 0.5), 0);
        assert_eq!(thinned(&mut rng, 10, 1.0), 10);
        assert_eq!(thinned(&mut rng, 10, 0.0), 0);
        let draws: Vec<u64> = (0..10_000).map(|_| thinned(&mut rng, 100, 0.03)).collect();
        assert!(draws.iter().all(|&f| f <= 100));
        let mean = draws.iter().sum::<u64>() as f64 / draws.len() as f64;
        assert!((mean - 3.0).abs() < 0.2, "mean {mean}");
        let var = draws
            .iter()
            .map(|&f| (f as f64 - mean).powi(2))
            .sum::<f64>()
            / draws.len() as f64;
        assert!(var < 2.0 * 100.0 * 0.03 * 0.97, "variance {var}");
    }
}
