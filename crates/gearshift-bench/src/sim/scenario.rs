//! Seeded random scenarios: an API (latency shape, capacity, failure
//! behaviour, noise), phases that step or drift, and a CPU stage; or two
//! APIs in series before the CPU stage.

use std::ops::Range;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Seeds a tuner's author may look at while developing.
pub const TRAINING: Range<u64> = 0..HELD_OUT_START;
/// Seeds from here on are run only to report, never to choose a rule.
pub const HELD_OUT_START: u64 = 10_000;

/// The kind of scenario a seed drew.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// Latency flat up to capacity, then a queue.
    Flat,
    /// Latency rises smoothly towards and past capacity.
    Queueing,
    /// Past capacity throughput falls (contention).
    Retrograde,
    /// Calls above capacity are dropped and time out; served latency stays flat.
    Drops,
    /// 5xx errors whose share rises with overload.
    Errors,
    /// A hard limit: calls above it get 429 with `Retry-After`.
    HardLimit,
    /// Latency and capacity drift slowly across phases (flat, queueing or
    /// retrograde latency).
    Drift,
    /// Latency and capacity change in steps between phases (flat, queueing
    /// or retrograde latency).
    Step,
    /// The CPU stage is the bottleneck.
    Cpu,
    /// Two APIs in series, each drawn like one of the single-phase API
    /// families, then the CPU stage.
    TwoApis,
}

impl Family {
    /// Every family.
    pub const ALL: [Family; 10] = [
        Family::Flat,
        Family::Queueing,
        Family::Retrograde,
        Family::Drops,
        Family::Errors,
        Family::HardLimit,
        Family::Drift,
        Family::Step,
        Family::Cpu,
        Family::TwoApis,
    ];

    /// The families of one API, in the order seeds draw them (two APIs are
    /// decided from a stream of their own, so adding them moved no other
    /// seed's draws).
    const ONE_API: [Family; 9] = [
        Family::Flat,
        Family::Queueing,
        Family::Retrograde,
        Family::Drops,
        Family::Errors,
        Family::HardLimit,
        Family::Drift,
        Family::Step,
        Family::Cpu,
    ];
}

/// How mean latency grows with calls in flight `n` against capacity `c`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    /// `base * max(1, n/c)`.
    Flat,
    /// `base * (1 + (n/c)^4)^(1/4)`: a smooth knee.
    Queueing,
    /// `base * max(1, n/c) * (1 + r * max(0, n-c)/c)`.
    Retrograde(f64),
}

/// What the API does with calls beyond its capacity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Failure {
    /// Nothing: they queue.
    None,
    /// A random share `1 - c/n` of calls is dropped and times out after the
    /// scenario's timeout.
    Drops,
    /// A share `min(0.95, floor + slope * max(0, n/c - 1))` answers 5xx.
    Errors {
        /// Share of errors with no overload.
        floor: f64,
        /// Added share per unit of overload.
        slope: f64,
    },
    /// Calls above capacity get 429 with this `Retry-After` (seconds).
    HardLimit {
        /// The `Retry-After` the API sends, in seconds.
        retry_after: f64,
    },
}

/// A stretch of time with its own API conditions; drifting phases move
/// linearly from `start` to `end`.
#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    /// Length in seconds.
    pub secs: f64,
    /// No-load latency (seconds) at the start and end of the phase.
    pub base: (f64, f64),
    /// Capacity (calls) at the start and end of the phase.
    pub capacity: (f64, f64),
}

impl Phase {
    fn fixed(secs: f64, base: f64, capacity: f64) -> Phase {
        Phase {
            secs,
            base: (base, base),
            capacity: (capacity, capacity),
        }
    }

    /// No-load latency and capacity at fraction `f` (0..=1) of the phase.
    pub fn at(&self, f: f64) -> (f64, f64) {
        let f = f.clamp(0.0, 1.0);
        (
            self.base.0 + (self.base.1 - self.base.0) * f,
            self.capacity.0 + (self.capacity.1 - self.capacity.0) * f,
        )
    }
}

/// The second API of a two-API scenario (the first is the scenario's own
/// fields): one phase, so its no-load latency and capacity are fixed.
#[derive(Debug, Clone, PartialEq)]
pub struct SecondApi {
    /// Latency shape.
    pub shape: Shape,
    /// Behaviour past capacity.
    pub failure: Failure,
    /// Lognormal sigma of a single call's latency.
    pub sigma: f64,
    /// Timeout of a call (seconds).
    pub timeout: f64,
    /// No-load latency (seconds).
    pub base: f64,
    /// Capacity (calls).
    pub capacity: f64,
}

/// One simulated workload: an API (or two in series) and a CPU stage.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// The seed it was generated from (also seeds the run's noise).
    pub seed: u64,
    /// The family drawn.
    pub family: Family,
    /// Latency shape.
    pub shape: Shape,
    /// Behaviour past capacity.
    pub failure: Failure,
    /// Lognormal sigma of a single call's latency.
    pub sigma: f64,
    /// Timeout of a call (seconds).
    pub timeout: f64,
    /// CPU cost per item (milliseconds) on one worker.
    pub cpu_ms: f64,
    /// Cores, and the most CPU workers.
    pub cores: usize,
    /// The phases, in order.
    pub phases: Vec<Phase>,
    /// The API after the first one, for [`Family::TwoApis`].
    pub second: Option<SecondApi>,
}

/// Share of seeds that draw [`Family::TwoApis`].
const TWO_APIS_SHARE: f64 = 0.1;
/// Mixed into the seed for the draw of the two-API family and its
/// parameters, a stream apart from the one-API draws.
const TWO_APIS_STREAM: u64 = 0x7a0a_7150_2a91_0b5e;
/// Mixed into the seed for the draw of a retrograde shape in drifting and
/// stepping scenarios.
const RETROGRADE_STREAM: u64 = 0x3d5c_e1a7_90b4_26f3;
/// The single-phase API families a two-API scenario draws each API from.
const ONE_PHASE_API: [Family; 6] = [
    Family::Flat,
    Family::Queueing,
    Family::Retrograde,
    Family::Drops,
    Family::Errors,
    Family::HardLimit,
];

/// The latency shape, failure behaviour and timeout of a single-phase API
/// family (other families: a flat API that never fails).
fn api_behaviour(rng: &mut StdRng, family: Family) -> (Shape, Failure, f64) {
    match family {
        Family::Queueing => (Shape::Queueing, Failure::None, 1.0),
        Family::Retrograde => (
            Shape::Retrograde(rng.random_range(0.2..1.0)),
            Failure::None,
            1.0,
        ),
        Family::Drops => (Shape::Flat, Failure::Drops, rng.random_range(0.5..2.0)),
        Family::Errors => (
            Shape::Queueing,
            Failure::Errors {
                floor: rng.random_range(0.0..0.05),
                slope: rng.random_range(0.2..1.0),
            },
            1.0,
        ),
        Family::HardLimit => (
            Shape::Flat,
            Failure::HardLimit {
                retry_after: rng.random_range(1..=2) as f64,
            },
            1.0,
        ),
        _ => (Shape::Flat, Failure::None, 1.0),
    }
}

fn log_uniform(rng: &mut StdRng, lo: f64, hi: f64) -> f64 {
    (rng.random_range(lo.ln()..hi.ln())).exp()
}

fn capacity(rng: &mut StdRng) -> f64 {
    log_uniform(rng, 4.0, 512.0).round()
}

fn base(rng: &mut StdRng) -> f64 {
    log_uniform(rng, 0.005, 0.5)
}

impl Scenario {
    /// The scenario of `seed`: a family and its parameters, deterministically.
    pub fn generate(seed: u64) -> Scenario {
        let mut side = StdRng::seed_from_u64(seed ^ TWO_APIS_STREAM);
        if side.random_bool(TWO_APIS_SHARE) {
            return Scenario::two_apis(seed, &mut side);
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let family = Family::ONE_API[rng.random_range(0..Family::ONE_API.len())];
        let mut s = Scenario {
            seed,
            family,
            shape: Shape::Flat,
            failure: Failure::None,
            sigma: rng.random_range(0.2..1.5),
            timeout: 1.0,
            cpu_ms: if rng.random_bool(0.3) {
                rng.random_range(0.0..5.0)
            } else {
                0.0
            },
            cores: rng.random_range(1..=8),
            phases: vec![Phase::fixed(20.0, base(&mut rng), capacity(&mut rng))],
            second: None,
        };
        match family {
            Family::Flat
            | Family::Queueing
            | Family::Retrograde
            | Family::Drops
            | Family::Errors
            | Family::HardLimit
            | Family::TwoApis => {
                (s.shape, s.failure, s.timeout) = api_behaviour(&mut rng, family);
            }
            Family::Drift | Family::Step => {
                if rng.random_bool(0.5) {
                    s.shape = Shape::Queueing;
                }
                // A third of them retrograde (past the knee throughput
                // falls, so a limit left there when the API changes costs
                // goodput), from a stream of their own so the other draws
                // stay as they were.
                let mut side = StdRng::seed_from_u64(seed ^ RETROGRADE_STREAM);
                if side.random_bool(1.0 / 3.0) {
                    s.shape = Shape::Retrograde(side.random_range(0.2..1.0));
                }
                let (mut b, mut c) = s.phases[0].at(0.0);
                s.phases.clear();
                for _ in 0..3 {
                    let secs = rng.random_range(10.0..15.0);
                    let nb = (b * log_uniform(&mut rng, 0.4, 2.5)).clamp(0.005, 0.5);
                    let nc = (c * log_uniform(&mut rng, 0.4, 2.5))
                        .round()
                        .clamp(4.0, 512.0);
                    s.phases.push(if family == Family::Drift {
                        Phase {
                            secs,
                            base: (b, nb),
                            capacity: (c, nc),
                        }
                    } else {
                        Phase::fixed(secs, nb, nc)
                    });
                    (b, c) = (nb, nc);
                }
            }
            Family::Cpu => {
                s.cores = rng.random_range(1..=4);
                s.cpu_ms = rng.random_range(0.5..5.0);
                // The API can do at least 1.5x what the workers drain.
                let cpu_rate = s.cores as f64 / (s.cpu_ms / 1e3);
                let p = &mut s.phases[0];
                let need = (1.5 * cpu_rate * p.base.0).ceil().clamp(4.0, 512.0);
                let c = p.capacity.0.max(need);
                p.capacity = (c, c);
                p.base = (p.base.0.min(c / (1.5 * cpu_rate)).max(0.001), p.base.1);
                p.base.1 = p.base.0;
            }
        }
        s
    }

    /// Two APIs, each drawn like a single-phase API family, then the CPU
    /// stage.
    fn two_apis(seed: u64, rng: &mut StdRng) -> Scenario {
        let mut api = || {
            let kind = ONE_PHASE_API[rng.random_range(0..ONE_PHASE_API.len())];
            let (shape, failure, timeout) = api_behaviour(rng, kind);
            SecondApi {
                shape,
                failure,
                sigma: rng.random_range(0.2..1.5),
                timeout,
                base: base(rng),
                capacity: capacity(rng),
            }
        };
        let (first, second) = (api(), api());
        Scenario {
            seed,
            family: Family::TwoApis,
            shape: first.shape,
            failure: first.failure,
            sigma: first.sigma,
            timeout: first.timeout,
            cpu_ms: if rng.random_bool(0.3) {
                rng.random_range(0.0..5.0)
            } else {
                0.0
            },
            cores: rng.random_range(1..=8),
            phases: vec![Phase::fixed(20.0, first.base, first.capacity)],
            second: Some(second),
        }
    }

    /// How many APIs the items pass through (1 or 2).
    pub fn apis(&self) -> usize {
        1 + usize::from(self.second.is_some())
    }

    /// Total length in seconds.
    pub fn secs(&self) -> f64 {
        self.phases.iter().map(|p| p.secs).sum()
    }

    /// Start time of each phase, in seconds.
    pub fn phase_starts(&self) -> Vec<f64> {
        let mut t = 0.0;
        self.phases
            .iter()
            .map(|p| {
                let s = t;
                t += p.secs;
                s
            })
            .collect()
    }
}
