//! Closed-loop simulation of tuners on seeded random scenarios: no clock,
//! no HTTP, pure arithmetic per window, so hundreds of scenarios run in
//! seconds and the same seed always gives the same run.
//!
//! - `scenario`: [`Scenario::generate`] draws a family (flat, queueing or
//!   retrograde latency; drops that time out; 5xx rising with overload; a
//!   hard limit with `Retry-After`; drifting or stepping phases; a CPU
//!   bottleneck; two APIs in series) and its parameters from a seed. Seeds
//!   in [`TRAINING`] may be looked at while developing a tuner; seeds from
//!   [`HELD_OUT_START`] on are for reports only.
//! - `model`: the expected rates at a setting (Little's law, capacity, the
//!   CPU stage, the failure behaviour, stages blocking on the next).
//! - `run`: [`simulate`] runs one [`Tuner`] per API budget window by
//!   window with seeded noise; [`Fixed`] keeps one setting.
//! - `running`: the part of a window's time in flight its ended calls do
//!   not account for (the first calls of new slots, still running).
//! - `oracle`: the [`oracle`], the best fixed setting per phase (per API)
//!   by a sweep.
//! - `score`: a run's [`Score`]: fraction of the oracle's goodput, settling
//!   time, runaway per API, calls inside `Retry-After`.
//! - `summary`: a tuner over a range of seeds ([`Summary`]): median, 5th
//!   percentile, per family, worst scenarios.
//! - [`end_to_end`]: a scenario run by a real pipeline against the mock
//!   API, beside the oracle's settings.

mod budget;
pub mod end_to_end;
mod model;
mod oracle;
mod run;
mod running;
mod scenario;
mod score;
mod summary;

use gearshift::tuner::Tuner;

pub use end_to_end::{EndToEnd, EndToEndOptions, Measured};
pub use model::{Flow, Rates};
pub use oracle::{Oracle, fixed_goodput, fixed_run, oracle};
pub use run::{Fixed, MAX_LIMIT, SimConfig, Step, Trajectory, simulate, simulate_with};
pub use scenario::{Failure, Family, HELD_OUT_START, Phase, Scenario, SecondApi, Shape, TRAINING};
pub use score::{PhaseScore, Score, per_second, phase_goodput, score};
pub use summary::{Outcome, Summary, quantile};

/// Runs fresh tuners from `make(cores)`, one per API, on the scenario of
/// `seed` from the seed's rule of thumb, and scores them against the
/// oracle.
pub fn evaluate(seed: u64, make: &dyn Fn(usize) -> Box<dyn Tuner>) -> (Scenario, Oracle, Score) {
    let s = Scenario::generate(seed);
    let o = oracle(&s);
    let run = simulate_with(&s, make, &SimConfig::for_scenario(&s));
    let sc = score(&s, &run, &o);
    (s, o, sc)
}
