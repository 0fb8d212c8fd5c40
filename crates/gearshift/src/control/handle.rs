//! [`PipelineHandle`]: shift the ratio, look at stats, stop, and wait.

use std::sync::Arc;
use std::time::Duration;

use crate::config::{Agents, Config};
use crate::control::shared::{Shared, Source};
use crate::error::ConfigError;
use crate::preset::Preset;
use crate::stats::report::Report;

/// A cheap, clonable handle on a running pipeline. No method blocks.
///
/// A change is validated, then takes effect promptly: new agents start at
/// once, surplus agents finish their current call and retire, API permits
/// grow at once and shrink as calls return, and a new batch size applies to
/// the next batch. No item is lost or repeated by a change. Changes from
/// several threads at once each apply to the latest configuration: none
/// undoes another.
///
/// # Who wins: the handle, a schedule and a tuner
///
/// Three sources change the ratio (agents, API permits, workers, batch
/// size) while the pipeline runs: this handle, a [`Schedule`] and a
/// [`Tuner`]. The rule is: **the latest change wins, and a manual change
/// holds**.
///
/// - A ratio change through this handle ([`apply`](Self::apply) or a
///   `set_*` of agents, API permits, workers or batch size) pauses the
///   schedule and the tuner, so they do not undo it, until
///   [`resume_automatic`](Self::resume_automatic). The other setters (rate
///   limit, batch wait, `max_in_flight`) set values no automatic source
///   touches, and pause nothing.
/// - Between the schedule and the tuner, the latest change wins: a schedule
///   switch replaces the tuner's ratio with the preset's, and the tuner then
///   adjusts from there.
/// - Each time one source overrides another's ratio, an info event says so
///   (for example "manual change overrides the schedule and the tuner:
///   paused until resume_automatic()", "tuner overrides the ratio set by the
///   schedule").
///
/// Before the run, the builder's calls apply in order, with a preset kept on
/// top of a later [`Pipeline::config`](crate::Pipeline::config) (see
/// [`Pipeline`](crate::Pipeline)).
///
/// [`Schedule`]: crate::Schedule
/// [`Tuner`]: crate::Tuner
#[derive(Debug, Clone)]
pub struct PipelineHandle {
    shared: Arc<Shared>,
}

impl PipelineHandle {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        PipelineHandle { shared }
    }

    /// Switches to a preset's ratio (agents, permits, workers, batch size).
    /// Like every ratio change by hand, it pauses a schedule and a tuner
    /// until [`resume_automatic`](Self::resume_automatic).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] if the result does not validate (it always does for
    /// a valid configuration).
    pub fn apply(&self, preset: Preset) -> Result<(), ConfigError> {
        self.shared.update(Source::Manual, |c| preset.apply_to(c))?;
        tracing::info!(%preset, "preset applied");
        Ok(())
    }

    /// Lets the schedule and the tuner change the ratio again after a manual
    /// change paused them: the schedule applies its current preset at its
    /// next check (within 250 ms), the tuner decides again from its next
    /// window. Does nothing if they were not paused.
    pub fn resume_automatic(&self) {
        if let Some(resumed) = self.shared.resume_automatic() {
            tracing::info!(resumed, "{resumed} may change the ratio again");
        }
    }

    /// Sets agents per core (any positive number).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for zero, negative, NaN, infinite or absurd values.
    pub fn set_agents_per_core(&self, per_core: f64) -> Result<(), ConfigError> {
        self.manual(|c| {
            c.agents = Agents::PerCore(per_core);
            c.api_permits = None;
        })
    }

    /// Sets an absolute number of agents per IO stage (API permits follow at
    /// 2 per agent unless set with [`set_api_permits`](Self::set_api_permits)).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for 0 or absurd values.
    pub fn set_agents(&self, agents: usize) -> Result<(), ConfigError> {
        self.manual(|c| c.agents = Agents::Total(agents))
    }

    /// Sets the API calls in flight per IO stage.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for 0 or absurd values.
    pub fn set_api_permits(&self, permits: usize) -> Result<(), ConfigError> {
        self.manual(|c| c.api_permits = Some(permits))
    }

    /// Sets the CPU workers (batches running at once).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for 0, or more than the pool's threads (`max_workers`).
    pub fn set_workers(&self, workers: usize) -> Result<(), ConfigError> {
        self.manual(|c| c.workers = workers)
    }

    /// Sets the items per CPU batch.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for 0 or absurd values.
    pub fn set_items_per_batch(&self, items: usize) -> Result<(), ConfigError> {
        self.manual(|c| c.items_per_batch = items)
    }

    /// Sets how long a partial batch waits for more items.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for over a year.
    pub fn set_batch_wait(&self, wait: Duration) -> Result<(), ConfigError> {
        self.setting(|c| c.batch_wait = wait)
    }

    /// Sets the most items inside the pipeline at once (see
    /// [`Config::max_in_flight`]). Growing admits more items at once;
    /// shrinking admits none until enough have finished.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for 0 or absurd values, or if the pipeline was
    /// spawned without `max_in_flight`.
    pub fn set_max_in_flight(&self, items: usize) -> Result<(), ConfigError> {
        self.setting(|c| c.max_in_flight = Some(items))
    }

    /// Sets (or lifts, with `None`) the limit on calls started per second.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for zero, negative, NaN or infinite rates.
    pub fn set_rate_limit(&self, per_second: Option<f64>) -> Result<(), ConfigError> {
        self.setting(|c| c.rate_limit = per_second)
    }

    /// A ratio change by hand: it pauses the schedule and the tuner.
    fn manual(&self, change: impl FnOnce(&mut Config)) -> Result<(), ConfigError> {
        self.shared.update(Source::Manual, change).map(drop)
    }

    /// A change to a setting only the handle sets.
    fn setting(&self, change: impl FnOnce(&mut Config)) -> Result<(), ConfigError> {
        self.shared.update(Source::Setting, change).map(drop)
    }

    /// The configuration in force now.
    pub fn config(&self) -> Config {
        self.shared.config.borrow().clone()
    }

    /// Live stats: counts so far, per stage and per agent, and the tuner's
    /// decisions.
    pub fn snapshot(&self) -> Report {
        match self.shared.report.borrow().as_ref() {
            Some(done) => (**done).clone(),
            None => Report::build(&self.shared, false),
        }
    }

    /// Stops gracefully: no new items are taken, items inside may finish
    /// until `drain_timeout`, after which the rest end as `Cancelled`.
    pub fn cancel(&self) {
        tracing::info!("pipeline cancel requested");
        self.shared.cancel();
    }

    /// Stops now: every item not yet finished ends as `Cancelled`.
    pub fn abort(&self) {
        tracing::info!("pipeline abort requested");
        self.shared.shutdown.abort();
    }

    /// Whether every item has its outcome.
    pub fn is_finished(&self) -> bool {
        self.shared.report.borrow().is_some()
    }

    /// Waits until every item has its outcome and returns the final report.
    /// Any clone may join; all get the same report.
    ///
    /// # Panics
    ///
    /// In debug builds only, if the report's items taken and outcomes
    /// differ ([`Report::difference`]): that is a bug in gearshift, and
    /// release builds log it as an error instead.
    pub async fn join(self) -> Report {
        let mut rx = self.shared.report.subscribe();
        let report = rx
            .wait_for(|r| r.is_some())
            .await
            .map(|r| r.clone())
            .ok()
            .flatten();
        let report = match report {
            Some(r) => (*r).clone(),
            // The sender lives in `shared`, which we hold: unreachable.
            None => Report::build(&self.shared, false),
        };
        // Every item taken has exactly one outcome. A difference is a bug in
        // gearshift: logged as an error in every build, and fatal in debug
        // builds so that every test that runs a pipeline checks it.
        debug_assert_eq!(
            report.difference(),
            0,
            "items taken and outcomes differ: {} taken, {} outcomes",
            report.taken,
            report.outcomes()
        );
        report
    }
}
