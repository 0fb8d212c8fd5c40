//! A sim scenario end to end: a real gearshift pipeline (an IO stage
//! calling the mock API over HTTP, then a CPU stage) with the tuner on the
//! API's budget, against the same pipeline held at the sim oracle's setting
//! of each phase. It checks that what the simulator rewards also holds over
//! real sockets, timers and threads.
//!
//! A scenario is first [`fit`] to one small machine: each phase is cut to
//! [`EndToEndOptions::phase`], and capacities, latencies, cores and CPU cost
//! are capped (see [`EndToEndOptions`]). The oracle's settings are those of
//! the fitted scenario, so the reference is the sim's best for what runs.

mod measure;

use std::time::Duration;

use gearshift::tuner::Tuner;

use self::measure::{Capped, Control, measure};
use super::oracle::oracle;
use super::scenario::{Failure, Family, Scenario, Shape};
use crate::mock_api::{MockConfig, Overload};

/// How a scenario is cut down to run end to end.
#[derive(Debug, Clone, PartialEq)]
pub struct EndToEndOptions {
    /// Length each phase is cut to. By default, 3 s.
    pub phase: Duration,
    /// A drifting phase moves in steps this long. By default, 1 s.
    pub drift_step: Duration,
    /// Most cores (and workers) a pipeline plans for. By default, 2.
    pub max_cores: usize,
    /// Most capacity (calls served at once) of the API. By default, 64.
    pub max_capacity: usize,
    /// Shortest no-load latency. By default, 10 ms.
    pub min_base: Duration,
    /// Longest no-load latency. By default, 200 ms.
    pub max_base: Duration,
    /// Most calls per second the API serves at capacity (base latencies
    /// are raised to fit), and most items per second the CPU stage drains
    /// (CPU costs are raised to fit): loopback HTTP and SHA-256 share two
    /// cores. By default, 800.
    pub max_rate: f64,
    /// Longest client timeout. By default, 1 s.
    pub max_timeout: Duration,
    /// Most calls in flight a tuner may set, so sockets stay within the
    /// process's limit. By default, 256.
    pub max_limit: usize,
}

impl Default for EndToEndOptions {
    fn default() -> Self {
        EndToEndOptions {
            phase: Duration::from_secs(3),
            drift_step: Duration::from_secs(1),
            max_cores: 2,
            max_capacity: 64,
            min_base: Duration::from_millis(10),
            max_base: Duration::from_millis(200),
            max_rate: 800.0,
            max_timeout: Duration::from_secs(1),
            max_limit: 256,
        }
    }
}

/// One pipeline run over the scenario's phases.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Measured {
    /// Ok items per second, per phase.
    pub goodput: Vec<f64>,
    /// The limit (smaller of the agents and the budget's calls in flight)
    /// each time it changed: (seconds since the start, limit).
    pub limit: Vec<(f64, usize)>,
    /// Items the source handed out (the report's count).
    pub taken: u64,
    /// Outcomes seen on the stream: ok, failed, cancelled.
    pub ok: u64,
    /// Items that failed (retries exhausted).
    pub failed: u64,
    /// Items cancelled when the run ended.
    pub cancelled: u64,
}

impl Measured {
    /// Outcomes seen on the stream.
    pub fn outcomes(&self) -> u64 {
        self.ok + self.failed + self.cancelled
    }
}

/// A scenario run end to end by a tuner and by the oracle's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct EndToEnd {
    /// The scenario's seed.
    pub seed: u64,
    /// Its family.
    pub family: Family,
    /// The scenario as it ran ([`fit`]).
    pub scenario: Scenario,
    /// The tuner's name.
    pub tuner: String,
    /// The oracle's calls in flight, per phase.
    pub oracle_limits: Vec<usize>,
    /// The sim's goodput (items/s) at the oracle's settings, per phase: how
    /// far the mock API and the pipeline are from the model.
    pub sim_goodput: Vec<f64>,
    /// The tuner's run.
    pub tuned: Measured,
    /// The run at the oracle's settings.
    pub oracle: Measured,
    /// Per phase: the tuner's goodput over the oracle run's (1 where the
    /// oracle got nothing).
    pub fractions: Vec<f64>,
    /// The whole run's goodput over the oracle run's.
    pub fraction: f64,
}

/// The mock API for `s` at no-load latency `base` (seconds) and `capacity`.
///
/// - Shape: `Flat` queues. `Queueing` has no smooth knee in the mock: it
///   queues like `Flat` (latency `base` up to capacity, not the sim's
///   `1.19 * base` at it). `Retrograde(r)` sets the retrograde factor to
///   `r / capacity` (the mock's factor is per call beyond capacity, the
///   sim's per unit of overload).
/// - `sigma` is the lognormal sigma of the latency.
/// - Failure: `Drops` drops (held for twice the timeout, so the client
///   gives up first); `Errors` answers 500s; `HardLimit` answers 429 above
///   capacity with the scenario's `Retry-After`.
///
/// Values out of the mock's range are clamped into it, so the config always
/// validates.
pub fn mock_config(s: &Scenario, base: f64, capacity: f64) -> MockConfig {
    let cap = if capacity.is_finite() {
        capacity.round().clamp(1.0, 1e6) as usize
    } else {
        1
    };
    let mut c = MockConfig::with_latency(secs(base, 0.0, 3600.0), Some(cap));
    c.seed = s.seed;
    c.latency.lognormal_sigma = Some(clamp(s.sigma, 0.0, 5.0));
    if let Shape::Retrograde(r) = s.shape {
        c.latency.retrograde = clamp(r / cap as f64, 0.0, 1000.0);
    }
    match s.failure {
        Failure::None => {}
        Failure::Drops => {
            c.overload = Overload::Drop;
            c.stall_for = secs(2.0 * s.timeout, 0.001, 3600.0);
        }
        Failure::Errors { floor, slope } => {
            c.overload = Overload::Errors {
                floor: clamp(floor, 0.0, 1.0),
                slope: clamp(slope, 0.0, 1.0),
            };
        }
        Failure::HardLimit { retry_after } => {
            c.latency.hard_limit = Some(cap);
            c.retry_after = secs(retry_after, 1.0, 3600.0);
        }
    }
    c
}

/// `s` as [`run`] runs it: phases cut to `opts.phase`; cores, capacity,
/// base latency, CPU cost and timeout capped as [`EndToEndOptions`] says.
///
/// Capacities are scaled by one factor (so the largest is at most
/// `max_capacity`) and base latencies by another (so the fastest phase
/// serves at most `max_rate`), so phases keep their ratios to each other;
/// then each base latency is clamped into `min_base..=max_base`, and raised
/// where its phase would still serve more than `max_rate`. The client
/// timeout is the scenario's for `Drops` (the sim counts timeouts only
/// there), at most `max_timeout`; elsewhere at least 10 base latencies, so
/// a heavy tail does not time out where the sim has none.
pub fn fit(s: &Scenario, opts: &EndToEndOptions) -> Scenario {
    let mut f = s.clone();
    let rate = if opts.max_rate.is_finite() && opts.max_rate > 0.0 {
        opts.max_rate
    } else {
        EndToEndOptions::default().max_rate
    };
    let points = |f: &Scenario| -> Vec<(f64, f64)> {
        f.phases
            .iter()
            .flat_map(|p| [(p.base.0, p.capacity.0), (p.base.1, p.capacity.1)])
            .collect()
    };
    let most = points(s).iter().map(|p| p.1).fold(0.0, f64::max);
    let kc = clamp(opts.max_capacity as f64 / most, 0.0, 1.0);
    let cap = |c: f64| clamp((c * kc).round(), 1.0, opts.max_capacity.max(1) as f64);
    let fastest = points(s)
        .iter()
        .map(|&(b, c)| cap(c) / b)
        .fold(0.0, f64::max);
    let kb = clamp(fastest / rate, 1.0, 1e6);
    let (lo, hi) = (opts.min_base.as_secs_f64(), opts.max_base.as_secs_f64());
    let fit_point = |b: f64, c: f64| {
        let c = cap(c);
        (clamp(b * kb, lo, hi).max(c / rate), c)
    };
    for p in &mut f.phases {
        p.secs = opts.phase.as_secs_f64();
        let (b0, c0) = fit_point(p.base.0, p.capacity.0);
        let (b1, c1) = fit_point(p.base.1, p.capacity.1);
        (p.base, p.capacity) = ((b0, b1), (c0, c1));
    }
    f.cores = s.cores.clamp(1, opts.max_cores.max(1));
    if f.cpu_ms > 0.0 {
        f.cpu_ms = clamp(f.cpu_ms, 1e3 * f.cores as f64 / rate, 1e3);
    }
    let longest = points(&f).iter().map(|p| p.0).fold(0.0, f64::max);
    let most_timeout = opts.max_timeout.as_secs_f64();
    f.timeout = if f.failure == Failure::Drops {
        clamp(f.timeout, 2.0 * longest, most_timeout.max(2.0 * longest))
    } else {
        clamp(f.timeout, 10.0 * longest, most_timeout).max(10.0 * longest)
    };
    f
}

/// Runs scenario `seed` ([`fit`] to `opts`) end to end with the tuner
/// `make(cores)` on the API's budget, then with the sim oracle's fixed
/// setting per phase, and compares their goodput.
///
/// # Errors
///
/// If the mock API, the HTTP client or a pipeline cannot start, or a
/// setting is refused.
pub async fn run(
    seed: u64,
    make: &dyn Fn(usize) -> Box<dyn Tuner>,
    opts: &EndToEndOptions,
) -> anyhow::Result<EndToEnd> {
    let s = fit(&Scenario::generate(seed), opts);
    anyhow::ensure!(
        s.second.is_none(),
        "seed {seed}: two-API scenarios run in the simulator only"
    );
    let o = oracle(&s);
    let limits: Vec<usize> = o.limits.iter().map(|per_api| per_api[0]).collect();
    let tuner = Capped {
        inner: make(s.cores),
        max: opts.max_limit.max(1),
    };
    let name = tuner.inner.name().to_string();
    let tuned = measure(&s, Control::Tuner(tuner), opts).await?;
    let reference = measure(&s, Control::Fixed(limits.clone()), opts).await?;
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 1.0 };
    let fractions = tuned
        .goodput
        .iter()
        .zip(&reference.goodput)
        .map(|(&a, &b)| ratio(a, b))
        .collect();
    let fraction = ratio(tuned.goodput.iter().sum(), reference.goodput.iter().sum());
    Ok(EndToEnd {
        seed,
        family: s.family,
        tuner: name,
        oracle_limits: limits,
        sim_goodput: o.goodput,
        tuned,
        oracle: reference,
        fractions,
        fraction,
        scenario: s,
    })
}

/// `x` within `lo..=hi` (`lo` wins if they cross; NaN gives `lo`).
fn clamp(x: f64, lo: f64, hi: f64) -> f64 {
    if x.is_nan() { lo } else { x.min(hi).max(lo) }
}

/// `x` seconds, clamped into `lo..=hi` (NaN gives `lo`).
fn secs(x: f64, lo: f64, hi: f64) -> Duration {
    Duration::from_secs_f64(clamp(x, lo, hi))
}
