//! [`PipelineHandle`]: shift the ratio, look at stats, stop, and wait.

use std::sync::Arc;
use std::time::Duration;

use super::api_handle::ApiHandle;
use super::stage_handle::StageHandle;
use crate::config::{Agents, Config, RetryPolicy};
use crate::control::shared::{Shared, Source};
use crate::error::{ConfigError, LookupError};
use crate::preset::{CustomPreset, Preset};
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
/// # Who wins: the handle, a schedule and the controllers
///
/// Settings resolve per stage, most specific first: a stage's own setting
/// (the builder's `.agents(..)` and siblings, or a [`StageHandle`]), then
/// what its API budget's controller chose (agents, workers), then its API's
/// call settings, then the pipeline-wide defaults (the [`Config`], which a
/// preset or a [`Schedule`] sets). Between sources of equal rank, **the
/// latest change wins, and a manual change holds**:
///
/// - A ratio change through this handle ([`apply`](Self::apply), or a
///   `set_*` of agents, workers or batch size) replaces the controllers'
///   choices and pauses the schedule and every controller, so they do not
///   undo it, until [`resume_automatic`](Self::resume_automatic). The other
///   setters (timeouts, retry policy, batch wait, `max_in_flight`) set
///   values no automatic source touches, and pause nothing.
/// - A manual change of one budget ([`ApiHandle`]) or of one stage's agents
///   or workers ([`StageHandle`]) holds that budget's controller off until
///   [`ApiHandle::resume_controller`]; a stage's own setting also wins over
///   every preset.
/// - The default controller (which a budget runs when nothing fixed its
///   concurrency at spawn) is turned off by anything that fixes it: a
///   preset (by hand or on a schedule) or agents set through this handle
///   hold it, on every budget with a stage that follows the default agents,
///   until [`ApiHandle::resume_controller`]; [`resume_automatic`](Self::resume_automatic)
///   does not lift that hold.
/// - Between a schedule and a controller, the latest change wins: a preset
///   replaces the controllers' choices, and they adjust from there.
/// - Each time one source overrides another, an info event says so (for
///   example "manual change overrides the schedule and the tuner: paused
///   until resume_automatic()", "preset replaces the ratio the controllers
///   chose; they adjust from it", "manual change overrides the controller:
///   held until resume_controller()").
///
/// Before the run, the builder's calls apply in order, with a preset kept on
/// top of a later [`Pipeline::config`](crate::Pipeline::config) (see
/// [`Pipeline`](crate::Pipeline)).
///
/// # What can change live
///
/// Agents, workers, batch size and wait (per stage or as defaults), the
/// retry policy, the timeout per attempt and the deadline per item (from an
/// agent's next item), an API's calls in flight, rate limit and longest
/// pause, `max_in_flight` (if set at spawn) and the drain timeout. Fixed at
/// spawn: channel capacities, cores, `max_workers` (the pool's threads),
/// output order and the error policy.
///
/// [`Schedule`]: crate::Schedule
/// [`ApiHandle`]: crate::ApiHandle
#[derive(Debug, Clone)]
pub struct PipelineHandle {
    pub(super) shared: Arc<Shared>,
}

impl PipelineHandle {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        PipelineHandle { shared }
    }

    /// Switches to a preset's ratio (agents, permits, workers, batch size).
    /// Like every ratio change by hand, it pauses a schedule and a tuner
    /// until [`resume_automatic`](Self::resume_automatic); it also holds the
    /// default controllers it fixes until
    /// [`ApiHandle::resume_controller`].
    ///
    /// # Errors
    ///
    /// [`ConfigError`] if the result does not validate (it always does for
    /// a valid configuration).
    pub fn apply(&self, preset: Preset) -> Result<(), ConfigError> {
        self.shared.apply_preset(Source::Manual, preset)?;
        tracing::info!(%preset, "preset applied");
        Ok(())
    }

    /// Switches to a [`CustomPreset`]'s ratio, as [`apply`](Self::apply)
    /// does for a built-in one (and with the same effect on a schedule, a
    /// tuner and the default controllers).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] if the result does not validate: the preset's
    /// workers above the pool's threads, for one.
    pub fn apply_custom(&self, preset: &CustomPreset) -> Result<(), ConfigError> {
        self.shared
            .apply_ratio(Source::Manual, &preset.name, |c| preset.apply_to(c))?;
        tracing::info!(preset = %preset.name, "custom preset applied");
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

    /// Sets the default agents per core of every IO stage (stages with
    /// their own setting keep it). Holds the default controllers it fixes,
    /// as [`apply`](Self::apply) does.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for zero, negative, NaN, infinite or absurd values.
    pub fn set_agents_per_core(&self, per_core: f64) -> Result<(), ConfigError> {
        self.manual(|c| c.agents = Agents::PerCore(per_core))?;
        self.shared
            .hold_default_controllers("the pipeline's agents were set");
        Ok(())
    }

    /// Sets the default number of agents of every IO stage (stages with
    /// their own setting keep it; see [`stage`](Self::stage)). Holds the
    /// default controllers it fixes, as [`apply`](Self::apply) does.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for 0 or absurd values.
    pub fn set_agents(&self, agents: usize) -> Result<(), ConfigError> {
        self.manual(|c| c.agents = Agents::Total(agents))?;
        self.shared
            .hold_default_controllers("the pipeline's agents were set");
        Ok(())
    }

    /// Sets the default CPU workers (batches running at once) of every CPU
    /// stage.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for 0, or more than the pool's threads (`max_workers`).
    pub fn set_workers(&self, workers: usize) -> Result<(), ConfigError> {
        self.manual(|c| c.workers = workers)
    }

    /// Sets the default items per batch.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for 0 or absurd values.
    pub fn set_items_per_batch(&self, items: usize) -> Result<(), ConfigError> {
        self.manual(|c| c.items_per_batch = items)
    }

    /// Sets how long a partial batch waits for more items, by default.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for over a year.
    pub fn set_batch_wait(&self, wait: Duration) -> Result<(), ConfigError> {
        self.setting(|c| c.batch_wait = wait)
    }

    /// Sets the default timeout of one attempt (an API's or a stage's own
    /// setting wins); applies to the next item an agent takes.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for zero or over a year.
    pub fn set_api_timeout(&self, timeout: Duration) -> Result<(), ConfigError> {
        self.setting(|c| c.api_timeout = timeout)
    }

    /// Sets (or lifts, with `None`) the default deadline per item and IO
    /// stage; applies to the next item an agent takes.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for zero or over a year.
    pub fn set_item_deadline(&self, deadline: Option<Duration>) -> Result<(), ConfigError> {
        self.setting(|c| c.item_deadline = deadline)
    }

    /// Sets the default retry policy; applies to the next item an agent
    /// takes.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for a policy that does not validate.
    pub fn set_retry(&self, retry: RetryPolicy) -> Result<(), ConfigError> {
        self.setting(|c| c.retry = retry)
    }

    /// Sets how long [`cancel`](Self::cancel) lets items inside finish.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for over a year.
    pub fn set_drain_timeout(&self, timeout: Duration) -> Result<(), ConfigError> {
        self.setting(|c| c.drain_timeout = timeout)
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

    /// One stage, by name, to change its own settings live.
    ///
    /// # Errors
    ///
    /// [`LookupError`] if no stage has that name.
    pub fn stage(&self, name: &str) -> Result<StageHandle, LookupError> {
        match self.shared.stage_index(name) {
            Some(index) => Ok(StageHandle::new(Arc::clone(&self.shared), index)),
            None => Err(LookupError::new("stage", name, &self.shared.names)),
        }
    }

    /// One API budget, by name, to change its limits live or give it a
    /// controller. A stage that named no API has a budget of its own,
    /// named after the stage.
    ///
    /// # Errors
    ///
    /// [`LookupError`] if no stage of this pipeline draws on such a budget.
    pub fn api(&self, name: &str) -> Result<ApiHandle, LookupError> {
        let budgets = self.shared.budgets();
        match budgets.iter().find(|b| &*b.name == name) {
            Some(b) => Ok(ApiHandle::new(Arc::clone(b))),
            None => {
                let names: Vec<Arc<str>> = budgets.iter().map(|b| Arc::clone(&b.name)).collect();
                Err(LookupError::new("api", name, &names))
            }
        }
    }

    /// A ratio change by hand: it pauses the schedule and the tuners, and
    /// replaces what the tuners chose, so it takes effect wherever a stage
    /// has no setting of its own.
    fn manual(&self, change: impl FnOnce(&mut Config)) -> Result<(), ConfigError> {
        self.shared
            .update(Source::Manual, |live| {
                change(&mut live.defaults);
                live.clear_tuned();
            })
            .map(drop)
    }

    /// A change to a setting only the handle sets.
    fn setting(&self, change: impl FnOnce(&mut Config)) -> Result<(), ConfigError> {
        self.shared
            .update_defaults(Source::Setting, change)
            .map(drop)
    }

    /// The pipeline-wide defaults in force now.
    pub fn config(&self) -> Config {
        self.shared.defaults()
    }

    /// Live stats: counts so far, per stage and per agent, per API budget
    /// (each budget's own figures, over every pipeline drawing on it: see
    /// [`ApiHandle::snapshot`]), and the tuner's decisions.
    pub fn snapshot(&self) -> Report {
        match self.shared.report.borrow().as_ref() {
            Some(done) => (**done).clone(),
            None => self.shared.report(false),
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
            None => self.shared.report(false),
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
