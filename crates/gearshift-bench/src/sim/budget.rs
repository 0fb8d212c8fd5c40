//! One API budget in the closed loop: its setting, its `Retry-After`
//! state, and what its tuner's window has measured so far.

use std::time::Duration;

use gearshift::tuner::Window;
use rand::Rng;
use rand::rngs::StdRng;

use super::model::Rates;
use super::running::Running;

/// Slots of each channel between stages, as the window reports them.
const QUEUE: usize = 64;

/// A budget's state between decisions.
#[derive(Debug, Clone)]
pub(super) struct Budget {
    pub agents: usize,
    pub permits: usize,
    /// When its tuner decides next (seconds; infinite without a tuner).
    pub decide_at: f64,
    /// Paused by `Retry-After` until then (when honoured).
    pub paused_until: f64,
    /// A `Retry-After` is in force until then (when ignored).
    pub ra_until: f64,
    pub window: Measured,
    /// Its slots' first calls still running.
    pub running: Running,
}

/// Sums over the steps of the current window.
#[derive(Debug, Clone, Default)]
pub(super) struct Measured {
    elapsed: f64,
    completions: u64,
    chain_items: u64,
    timeouts: u64,
    errors: u64,
    pub throttled: u64,
    pub retry_after: Option<f64>,
    latency_weighted: f64,
    latency_weight: f64,
    in_flight: f64,
    peak: usize,
    queue_min: Option<usize>,
    blocked: f64,
    idle: f64,
    workers_busy: f64,
    paused: f64,
}

/// One step as one budget saw it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Seen {
    pub dt: f64,
    /// Time the whole chain ran.
    pub active: f64,
    /// Time this budget was paused by `Retry-After`.
    pub own_paused: f64,
    /// Whether items come to it from another API (it waits while that one
    /// is paused) or go from it to another (it blocks).
    pub upstream: bool,
    pub downstream: bool,
    pub limit: usize,
    pub workers_idle: f64,
    pub completions: u64,
    pub failures: u64,
}

impl Budget {
    pub fn new(n: usize, decide_at: f64) -> Budget {
        Budget {
            agents: n,
            permits: n,
            decide_at,
            paused_until: 0.0,
            ra_until: f64::NEG_INFINITY,
            window: Measured::default(),
            running: Running::new(n),
        }
    }

    /// Calls in flight allowed.
    pub fn limit(&self) -> usize {
        self.agents.min(self.permits)
    }
}

impl Measured {
    /// Adds one step at rates `r`.
    pub fn add(&mut self, r: &Rates, seen: Seen) {
        let Seen { dt, active, .. } = seen;
        // Time this budget was neither running nor paused: another API was.
        let stopped = (dt - active - seen.own_paused).max(0.0);
        self.elapsed += dt;
        self.completions += seen.completions;
        if r.timeouts > 0.0 {
            self.timeouts += seen.failures;
        } else {
            self.errors += seen.failures;
        }
        self.latency_weighted += r.latency * r.good * active;
        self.latency_weight += r.good * active;
        self.in_flight += r.in_flight * active;
        if active > 0.0 {
            self.peak = self.peak.max(seen.limit);
        }
        let full = if r.blocked > 0.01 { QUEUE } else { 0 };
        self.queue_min = Some(self.queue_min.map_or(full, |q| q.min(full)));
        self.blocked += r.blocked * active + if seen.downstream { stopped } else { 0.0 };
        self.idle += r.idle * active + if seen.upstream { stopped } else { 0.0 };
        self.workers_busy += (1.0 - seen.workers_idle) * active;
        self.paused += seen.own_paused;
    }

    /// Items the CPU stage finished in the step.
    pub fn add_chain_items(&mut self, n: u64) {
        self.chain_items += n;
    }

    /// The window a tuner sees, with noise on the latency statistics.
    pub fn window(
        &self,
        rng: &mut StdRng,
        b: &Budget,
        cores: usize,
        workers: usize,
        sigma: f64,
        running: &Running,
    ) -> Window {
        let good = self.completions;
        let (p50, p90, min, mean) = if good > 0 && self.latency_weight > 0.0 {
            let latency = self.latency_weighted / self.latency_weight;
            let median = latency / (sigma * sigma / 2.0).exp();
            let median = median * running.median_bias(good as f64, median, sigma);
            let p50 = median * (sigma * (1.57 / good as f64).sqrt() * normal(rng)).exp();
            let tail = (2.0 * (good as f64 + 1.0).ln()).sqrt().min(3.5);
            (
                secs(p50),
                secs(p50 * (1.2816 * sigma).exp()),
                secs(p50 * (-sigma * tail).exp()),
                secs(p50 * (sigma * sigma / 2.0).exp()),
            )
        } else {
            (None, None, None, None)
        };
        let share = |x: f64| {
            if self.elapsed > 0.0 {
                x / self.elapsed
            } else {
                0.0
            }
        };
        Window {
            elapsed: secs(self.elapsed).unwrap_or_default(),
            cores,
            agents: b.agents,
            api_permits: b.permits,
            workers,
            max_workers: cores,
            io_completions: good,
            latency_p50: p50,
            latency_p90: p90,
            latency_min: min,
            latency_mean: mean,
            mean_in_flight: share(self.in_flight),
            // Set by the loop, from its slots' first calls (running.rs).
            mean_in_flight_ended: None,
            peak_in_flight: self.peak,
            cpu_items: self.chain_items,
            queue_min: self.queue_min.unwrap_or(0),
            queue_capacity: QUEUE,
            agents_blocked: share(self.blocked),
            agents_idle: share(self.idle),
            workers_idle: 1.0 - share(self.workers_busy),
            throttled: self.throttled,
            timeouts: self.timeouts,
            errors: self.errors,
            retry_after: self.retry_after.and_then(secs),
            paused: secs(self.paused.min(self.elapsed)).unwrap_or_default(),
        }
    }
}

/// A standard normal draw (Box-Muller).
pub(super) fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(1e-12);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

pub(super) fn secs(x: f64) -> Option<Duration> {
    Duration::try_from_secs_f64(x).ok()
}
