//! Tuners: control laws that set an API budget's concurrency from what the
//! pipeline measures.
//!
//! Every control window the pipeline hands the budget's tuner a [`Window`]
//! of measurements and applies the [`Decision`] it returns through the same
//! path as a [`PipelineHandle`](crate::PipelineHandle) change, so no item is
//! lost.
//!
//! | tuner            | use it when                                                  |
//! |------------------|--------------------------------------------------------------|
//! | set nothing      | the default: a budget whose concurrency nothing fixes runs [`Gradient`] |
//! | [`Gradient`]     | explicitly, or with your own [`GradientParams`] (`docs/tuner.md` has the law on one page) |
//! | [`SeedRule`]     | you want the design note's rule: latency > 1 s adds an agent per core, < 0.1 s removes one (a baseline) |
//! | your own         | implement [`Tuner`]: one method, [`Tuner::decide`]            |
//!
//! A tuner controls one API budget. A budget whose concurrency nothing
//! fixes (no preset or schedule, no fixed [`Agents`](crate::Agents) on a
//! stage drawing on it, no [`Api::max_in_flight`](crate::Api::max_in_flight),
//! no [`Api::tuner`](crate::Api::tuner)) runs [`default_for`], starting from
//! the seed's 2 agents per core. Give another with
//! [`Api::tuner`](crate::Api::tuner) or, live,
//! [`ApiHandle::tune`](crate::ApiHandle::tune). A fixed setting made live
//! holds the controller until
//! [`ApiHandle::resume_controller`](crate::ApiHandle::resume_controller);
//! [`ApiReport::tuner`](crate::stats::ApiReport::tuner) says which one runs. Its
//! decisions set the budget's calls in flight, the agents of every stage
//! drawing on the budget, and the workers of the CPU stage after the first
//! of them.
//!
//! # Examples
//!
//! A control law of your own: hold 8 calls in flight unless the API
//! throttles, then 4.
//!
//! ```
//! use gearshift::tuner::{Decision, Tuner, Window};
//!
//! struct TwoLevels;
//!
//! impl Tuner for TwoLevels {
//!     fn name(&self) -> &str {
//!         "two-levels"
//!     }
//!
//!     fn decide(&mut self, w: &Window) -> Decision {
//!         let want = if w.throttled > 0 { 4 } else { 8 };
//!         if want == w.api_permits {
//!             return Decision::hold("unchanged");
//!         }
//!         Decision {
//!             agents: Some(want),
//!             api_permits: Some(want),
//!             workers: None,
//!             reason: format!("{} throttled", w.throttled),
//!         }
//!     }
//! }
//!
//! let api = gearshift::Api::new("search").tuner(TwoLevels);
//! # drop(api);
//! ```

mod gradient;
mod seed_rule;

use std::time::Duration;

pub use gradient::{Gradient, GradientParams};
pub use seed_rule::SeedRule;

/// Decides the IO stage's concurrency and the CPU stage's workers, one
/// control window at a time.
pub trait Tuner: Send + 'static {
    /// A short name for logs and reports.
    fn name(&self) -> &str;

    /// How long the next control window should be. By default, 500 ms.
    fn window(&self) -> Duration {
        Duration::from_millis(500)
    }

    /// What to change, given the last window's measurements.
    fn decide(&mut self, window: &Window) -> Decision;
}

/// What the pipeline measured over one control window (the first IO stage
/// and the CPU stage after it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Window {
    /// How long the window lasted.
    pub elapsed: Duration,
    /// Cores the pipeline was configured with.
    pub cores: usize,
    /// Agents at the end of the window.
    pub agents: usize,
    /// The budget's calls in flight allowed at the end of the window.
    pub api_permits: usize,
    /// CPU workers at the end of the window.
    pub workers: usize,
    /// Most CPU workers the pool can run.
    pub max_workers: usize,
    /// Successful IO attempts completed in the window.
    pub io_completions: u64,
    /// Per-attempt latency of successful calls: median.
    pub latency_p50: Option<Duration>,
    /// Per-attempt latency of successful calls: 90th percentile.
    pub latency_p90: Option<Duration>,
    /// Per-attempt latency of successful calls: minimum.
    pub latency_min: Option<Duration>,
    /// Per-attempt latency of successful calls: mean (with the completions,
    /// Little's law gives the calls the API actually served).
    pub latency_mean: Option<Duration>,
    /// Mean API calls in flight over the window: the time calls spent in
    /// flight within it (those still running included) over its length.
    pub mean_in_flight: f64,
    /// The same as counted from the calls that ended in the window alone,
    /// each whole (all of its time, also before the window): the time the
    /// latency statistics speak for. Clearly below `mean_in_flight`, those
    /// statistics miss calls still running: just after a start or a raise,
    /// on an API slower than the window, they see only the fast calls.
    /// `None` where the source does not measure it.
    pub mean_in_flight_ended: Option<f64>,
    /// Most API calls in flight at once.
    pub peak_in_flight: usize,
    /// Items the CPU stage finished in the window.
    pub cpu_items: u64,
    /// Smallest occupancy of the channel into the CPU stage seen in the window.
    pub queue_min: usize,
    /// Capacity of that channel.
    pub queue_capacity: usize,
    /// Fraction of agent time spent blocked on a full output channel (0..=1).
    pub agents_blocked: f64,
    /// Fraction of agent time spent waiting for input (0..=1).
    pub agents_idle: f64,
    /// Fraction of worker time not running a batch (0..=1).
    pub workers_idle: f64,
    /// Attempts answered 429 or 503.
    pub throttled: u64,
    /// Attempts that timed out.
    pub timeouts: u64,
    /// Other failed attempts.
    pub errors: u64,
    /// The longest `Retry-After` the remote asked for in the window.
    pub retry_after: Option<Duration>,
    /// Time of the window the budget spent paused by `Retry-After` (a pause
    /// is counted in every window it spans, its part in each; at most
    /// `elapsed`).
    pub paused: Duration,
}

impl Window {
    /// Calls that ended in the window: completions and timeouts.
    pub fn attempts(&self) -> u64 {
        self.io_completions.saturating_add(self.timeouts)
    }

    /// IO completions per second.
    pub fn io_rate(&self) -> f64 {
        per_second(self.io_completions, self.elapsed)
    }

    /// IO completions per second of the time the budget was not paused.
    pub fn active_io_rate(&self) -> f64 {
        per_second(
            self.io_completions,
            self.elapsed.saturating_sub(self.paused),
        )
    }

    /// CPU items per second.
    pub fn cpu_rate(&self) -> f64 {
        per_second(self.cpu_items, self.elapsed)
    }
}

/// What a tuner wants changed; `None` leaves a knob alone.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decision {
    /// New number of agents of each stage drawing on the budget.
    pub agents: Option<usize>,
    /// New limit on the budget's calls in flight.
    pub api_permits: Option<usize>,
    /// New number of CPU workers.
    pub workers: Option<usize>,
    /// Why: logged as a `tracing` event and kept in the stats snapshot.
    pub reason: String,
}

impl Decision {
    /// Change nothing, and say why.
    pub fn hold(reason: impl Into<String>) -> Self {
        Decision {
            reason: reason.into(),
            ..Decision::default()
        }
    }

    /// Whether the decision changes anything.
    pub fn changes_anything(&self) -> bool {
        self.agents.is_some() || self.api_permits.is_some() || self.workers.is_some()
    }
}

/// The controller a budget runs when nothing fixes its concurrency:
/// [`Gradient`] with its default parameters. gearshift calls it at spawn,
/// once per such budget (`cores` is the pipeline's); users rarely need it.
pub fn default_for(cores: usize) -> Box<dyn Tuner> {
    // The law starts from the budget's limit (2 agents per core), so it
    // needs no core count of its own.
    let _ = cores;
    Box::new(Gradient::new())
}

fn per_second(n: u64, d: Duration) -> f64 {
    if d.is_zero() {
        0.0
    } else {
        n as f64 / d.as_secs_f64()
    }
}
