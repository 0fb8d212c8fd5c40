//! The closed loop: a tuner against a scenario, one window at a time, with
//! seeded noise and no clock.

use std::time::Duration;

use gearshift::tuner::{Decision, Tuner, Window};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::scenario::{Failure, Scenario};

/// The most calls in flight the simulator lets a tuner set.
pub const MAX_LIMIT: usize = 4096;
/// Slots of the channel into the CPU stage, as the window reports them.
const QUEUE: usize = 64;
/// Shortest and longest window the simulator runs, whatever a tuner asks.
const WINDOW: (f64, f64) = (0.01, 5.0);

/// How a run starts and what the pipeline around the tuner does.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Calls in flight (agents and permits) at the start.
    pub start: usize,
    /// Whether the budget pauses for a `Retry-After`, as gearshift's does.
    pub honor_retry_after: bool,
}

impl SimConfig {
    /// The seed's rule of thumb: 2 agents per core; `Retry-After` honoured.
    pub fn for_scenario(s: &Scenario) -> SimConfig {
        SimConfig {
            start: 2 * s.cores,
            honor_retry_after: true,
        }
    }
}

/// One window of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Start of the window (seconds).
    pub t: f64,
    /// Length of the window (seconds).
    pub secs: f64,
    /// Index of the phase the window is in (windows never cross phases).
    pub phase: usize,
    /// Calls in flight allowed during the window.
    pub limit: usize,
    /// CPU workers during the window.
    pub workers: usize,
    /// Successful items the window measured (noisy).
    pub good: u64,
    /// Successful items expected at this setting (what scores use, so luck
    /// in the noise neither helps nor hurts a score).
    pub expected: f64,
    /// Failed attempts: timeouts, 5xx and 429s.
    pub failures: u64,
    /// Seconds the budget was paused by `Retry-After`.
    pub paused: f64,
    /// Calls started while a `Retry-After` was in force.
    pub in_retry_after: f64,
}

/// A run's windows, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Trajectory {
    /// The tuner's name.
    pub tuner: String,
    /// Every window.
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

/// A standard normal draw (Box-Muller).
fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(1e-12);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
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

fn secs(x: f64) -> Option<Duration> {
    Duration::try_from_secs_f64(x).ok()
}

/// Runs `tuner` over the whole of `s` and returns every window. Same
/// scenario, tuner and config: same trajectory.
pub fn simulate(s: &Scenario, tuner: &mut dyn Tuner, cfg: &SimConfig) -> Trajectory {
    let mut rng = StdRng::seed_from_u64(s.seed ^ 0x5151_7ea1_0c0f_fee5);
    let starts = s.phase_starts();
    let total = s.secs();
    let cv2 = (s.sigma * s.sigma).exp() - 1.0;
    let (mut agents, mut permits) = (cfg.start.clamp(1, MAX_LIMIT), cfg.start.clamp(1, MAX_LIMIT));
    let mut workers = s.cores;
    let (mut paused_until, mut ra_until) = (0.0f64, f64::NEG_INFINITY);
    let mut steps = Vec::new();
    let (mut t, mut phase) = (0.0f64, 0usize);
    while t < total - 1e-9 {
        while phase + 1 < s.phases.len() && t >= starts[phase] + s.phases[phase].secs - 1e-9 {
            phase += 1;
        }
        let p = &s.phases[phase];
        let want = tuner.window().as_secs_f64();
        let want = if want.is_finite() {
            want.clamp(WINDOW.0, WINDOW.1)
        } else {
            WINDOW.1
        };
        let dt = want.min(starts[phase] + p.secs - t).max(1e-6);
        let (b, c) = p.at((t + dt / 2.0 - starts[phase]) / p.secs);
        let limit = agents.min(permits);
        let r = s.rates(b, c, limit, workers);
        let paused = if cfg.honor_retry_after {
            (paused_until - t).clamp(0.0, dt)
        } else {
            0.0
        };
        let mut active = dt - paused;
        let (mut throttled, mut retry_after, mut in_ra) = (0u64, None, 0.0);
        let attempts = r.good + r.timeouts + r.errors;
        if let Failure::HardLimit { retry_after: ra } = s.failure {
            if r.over_limit > 0.0 && active > 0.0 {
                retry_after = secs(ra);
                if cfg.honor_retry_after {
                    // One burst of 429s; the budget pauses once its answers arrive.
                    throttled = r.over_limit.ceil() as u64;
                    active = active.min(b);
                    paused_until = t + paused + active + ra;
                } else {
                    // 429s come back in about a millisecond, and calls go on.
                    throttled = (r.over_limit / 0.001 * active).round() as u64;
                    in_ra = (attempts + r.over_limit / 0.001) * active;
                    ra_until = t + dt + ra;
                }
            } else if !cfg.honor_retry_after {
                in_ra = attempts * (ra_until - t).clamp(0.0, dt);
            }
        }
        let expected = r.good * active;
        let good = count(&mut rng, expected, cv2);
        let failures = count(&mut rng, (r.timeouts + r.errors) * active, cv2);
        let (p50, p90, min, mean) = if good > 0 {
            let median = r.latency / (s.sigma * s.sigma / 2.0).exp();
            let p50 = median * (s.sigma * (1.57 / good as f64).sqrt() * normal(&mut rng)).exp();
            let tail = (2.0 * (good as f64 + 1.0).ln()).sqrt().min(3.5);
            (
                secs(p50),
                secs(p50 * (1.2816 * s.sigma).exp()),
                secs(p50 * (-s.sigma * tail).exp()),
                secs(p50 * (s.sigma * s.sigma / 2.0).exp()),
            )
        } else {
            (None, None, None, None)
        };
        let timeouts = if r.timeouts > 0.0 { failures } else { 0 };
        let errors = failures - timeouts;
        let busy = active / dt;
        let window = Window {
            elapsed: secs(dt).unwrap_or_default(),
            cores: s.cores,
            agents,
            api_permits: permits,
            workers,
            max_workers: s.cores,
            io_completions: good,
            latency_p50: p50,
            latency_p90: p90,
            latency_min: min,
            latency_mean: mean,
            mean_in_flight: r.in_flight * busy,
            peak_in_flight: if active > 0.0 { limit } else { 0 },
            cpu_items: good,
            queue_min: if r.blocked > 0.01 { QUEUE } else { 0 },
            queue_capacity: QUEUE,
            agents_blocked: r.blocked * busy,
            agents_idle: 0.0,
            workers_idle: 1.0 - (1.0 - r.workers_idle) * busy,
            throttled,
            timeouts,
            errors,
            retry_after,
            paused: secs(dt - active).unwrap_or_default(),
        };
        steps.push(Step {
            t,
            secs: dt,
            phase,
            limit,
            workers,
            good,
            expected,
            failures: failures + throttled,
            paused: dt - active,
            in_retry_after: in_ra,
        });
        let d = tuner.decide(&window);
        if let Some(a) = d.agents {
            agents = a.clamp(1, MAX_LIMIT);
        }
        if let Some(a) = d.api_permits {
            permits = a.clamp(1, MAX_LIMIT);
        }
        if let Some(w) = d.workers {
            workers = w.clamp(1, s.cores);
        }
        t += dt;
    }
    Trajectory {
        tuner: tuner.name().to_string(),
        steps,
    }
}
