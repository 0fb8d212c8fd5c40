//! [`ApiHandle`]: one API budget's limits and controller, live.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::budget::{ApiSettings, Budget};
use crate::config::RetryPolicy;
use crate::error::ConfigError;
use crate::stats::api::ApiReport;
use crate::tuner::Tuner;

/// Live control of one API budget, from
/// [`PipelineHandle::api`](crate::PipelineHandle::api) or [`Api::handle`](crate::Api::handle).
///
/// A manual change of the limits pauses the budget's controller (if it has
/// one, the default controller included) until
/// [`resume_controller`](Self::resume_controller), so the controller does
/// not undo it; the pause is logged at info. Which controller runs is in
/// [`snapshot`](Self::snapshot) (`tuner`, `default_tuner`).
#[derive(Clone)]
pub struct ApiHandle {
    budget: Arc<Budget>,
}

impl ApiHandle {
    pub(crate) fn new(budget: Arc<Budget>) -> Self {
        ApiHandle { budget }
    }

    /// The budget's name.
    pub fn name(&self) -> &str {
        &self.budget.name
    }

    /// The budget's settings now.
    pub fn settings(&self) -> ApiSettings {
        self.budget.settings()
    }

    /// Sets (or lifts, with `None`) the limit on calls in flight. Takes
    /// effect at once: growing admits waiting calls, shrinking lets calls
    /// in flight finish and holds the new limit from then on. Pauses the
    /// controller.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for 0 or more than [`MAX_CONCURRENCY`](crate::MAX_CONCURRENCY).
    pub fn set_max_in_flight(&self, calls: Option<usize>) -> Result<(), ConfigError> {
        self.manual(|s| s.max_in_flight = calls)?;
        // A pipeline spawned later runs no default controller on a budget
        // whose limit the user fixed.
        self.budget.fix_limit(calls.is_some());
        Ok(())
    }

    /// Sets (or lifts, with `None`) the rate limit; calls already waiting
    /// for their turn get one at the new rate. Pauses the controller.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for a rate outside [`MIN_RATE_LIMIT`](crate::MIN_RATE_LIMIT)..=[`MAX_RATE_LIMIT`](crate::MAX_RATE_LIMIT).
    pub fn set_rate_limit(&self, per_second: Option<f64>) -> Result<(), ConfigError> {
        self.manual(|s| s.rate_limit = per_second)
    }

    /// Sets how many calls may start at once after a quiet spell, under the
    /// rate limit; applies to the next turn booked.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for 0 or more than
    /// [`MAX_CONCURRENCY`](crate::MAX_CONCURRENCY).
    pub fn set_burst(&self, calls: u32) -> Result<(), ConfigError> {
        self.budget.update(|s| s.burst = calls)
    }

    /// Sets the longest pause a `Retry-After` may impose.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for zero or more than a year.
    pub fn set_max_pause(&self, pause: Duration) -> Result<(), ConfigError> {
        self.budget.update(|s| s.max_pause = pause)
    }

    /// Sets the retry policy of calls to this API (stages with their own
    /// keep theirs); applies to the next item an agent takes.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for a policy that does not validate.
    pub fn set_retry(&self, policy: RetryPolicy) -> Result<(), ConfigError> {
        self.budget.update(|s| s.retry = Some(policy))
    }

    /// Sets the timeout of one attempt; applies to the next item an agent
    /// takes.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for zero or more than a year.
    pub fn set_timeout(&self, timeout: Duration) -> Result<(), ConfigError> {
        self.budget.update(|s| s.timeout = Some(timeout))
    }

    /// Sets the deadline of an item at a stage drawing on this API;
    /// applies to the next item an agent takes.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for zero or more than a year.
    pub fn set_item_deadline(&self, deadline: Duration) -> Result<(), ConfigError> {
        self.budget.update(|s| s.item_deadline = Some(deadline))
    }

    /// Puts `tuner` in charge of the budget (replacing any controller), and
    /// lets it act at once.
    pub fn tune(&self, tuner: impl Tuner) {
        tracing::info!(api = %self.budget.name, tuner = tuner.name(), "controller set");
        self.budget.set_tuner(Box::new(tuner), false);
    }

    /// Removes the budget's controller: its limits stay as they are.
    pub fn stop_tuning(&self) {
        if self.budget.tuner().take().is_some() {
            tracing::info!(api = %self.budget.name, "controller removed");
        }
    }

    /// Lets the controller act again after a manual change held it off.
    pub fn resume_controller(&self) {
        if self.budget.held.swap(false, Ordering::AcqRel) {
            tracing::info!(api = %self.budget.name, "controller resumed");
        }
    }

    /// Whether a manual change holds the controller off.
    pub fn controller_held(&self) -> bool {
        self.budget.held.load(Ordering::Acquire)
    }

    /// The budget's figures now: calls, errors by kind, latency, calls in
    /// flight and their peak, the limits, the pause.
    ///
    /// They cover every stage that draws on the budget, in every pipeline
    /// (a budget shared by two pipelines counts the calls of both), since
    /// the budget was made. Agents add their calls in batches, at the
    /// latest before they wait (for an item, a permit, a pause or a call
    /// that is not done at once) and every 64 successful calls: a live
    /// figure may lag that much behind, a finished pipeline's are complete.
    pub fn snapshot(&self) -> ApiReport {
        self.budget.report()
    }

    fn manual(&self, change: impl FnOnce(&mut ApiSettings)) -> Result<(), ConfigError> {
        self.budget.update(change)?;
        self.budget.hold_controller("manual change");
        Ok(())
    }
}

impl fmt::Debug for ApiHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiHandle")
            .field("name", &self.budget.name)
            .finish_non_exhaustive()
    }
}
