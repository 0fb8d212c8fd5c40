//! [`StageHandle`]: one stage's own settings, live.

use std::sync::Arc;
use std::time::Duration;

use super::settings::StageSettings;
use super::shared::{Shared, Source};
use crate::config::{Agents, RetryPolicy};
use crate::error::ConfigError;

/// Live control of one stage, from [`PipelineHandle::stage`](crate::PipelineHandle::stage). Its settings
/// override the pipeline's defaults (and, for call settings, its API's).
///
/// Changing a stage's agents or workers by hand holds off the controller of
/// the budgets whose tuner would change them, until
/// [`ApiHandle::resume_controller`](crate::ApiHandle::resume_controller); the schedule changes only the
/// defaults, so it never undoes a stage's own setting.
#[derive(Debug, Clone)]
pub struct StageHandle {
    shared: Arc<Shared>,
    index: usize,
}

impl StageHandle {
    pub(crate) fn new(shared: Arc<Shared>, index: usize) -> Self {
        StageHandle { shared, index }
    }

    /// The stage's name.
    pub fn name(&self) -> &str {
        &self.shared.names[self.index]
    }

    /// The stage's own settings now (`None`: it follows the default).
    pub fn settings(&self) -> StageSettings {
        self.shared.settings.borrow().stages[self.index].clone()
    }

    /// Sets an IO stage's agents.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for 0 or more than [`MAX_AGENTS`](crate::MAX_AGENTS),
    /// or on a CPU stage.
    pub fn set_agents(&self, agents: usize) -> Result<(), ConfigError> {
        self.of_kind(true, "agents", agents)?;
        self.ratio(|s| s.agents = Some(Agents::Total(agents)))
    }

    /// Sets a CPU stage's workers.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for 0 or more than the pool's threads, or on an IO
    /// stage.
    pub fn set_workers(&self, workers: usize) -> Result<(), ConfigError> {
        self.of_kind(false, "workers", workers)?;
        self.ratio(|s| s.workers = Some(workers))
    }

    /// Refuses a setting of one kind of stage on the other.
    fn of_kind(&self, io: bool, field: &'static str, got: usize) -> Result<(), ConfigError> {
        let is_io = self.shared.stage_apis[self.index].is_some();
        if is_io == io {
            return Ok(());
        }
        let expected = if io {
            "set on an IO stage (this is a CPU stage)"
        } else {
            "set on a CPU stage (this is an IO stage)"
        };
        Err(ConfigError::new(field, expected, got).within(format!("stage {}", self.name())))
    }

    /// Sets the stage's items per batch.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for 0 or absurd values.
    pub fn set_items_per_batch(&self, items: usize) -> Result<(), ConfigError> {
        self.change(|s| s.items_per_batch = Some(items))
    }

    /// Sets how long a CPU stage's partial batch waits for more items.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for over a year.
    pub fn set_batch_wait(&self, wait: Duration) -> Result<(), ConfigError> {
        self.change(|s| s.batch_wait = Some(wait))
    }

    /// Sets an IO stage's retry policy; applies to the next item an agent
    /// takes.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for a policy that does not validate.
    pub fn set_retry(&self, retry: RetryPolicy) -> Result<(), ConfigError> {
        self.change(|s| s.retry = Some(retry))
    }

    /// Sets an IO stage's timeout per attempt; applies to the next item an
    /// agent takes.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for zero or over a year.
    pub fn set_api_timeout(&self, timeout: Duration) -> Result<(), ConfigError> {
        self.change(|s| s.api_timeout = Some(timeout))
    }

    /// Sets an IO stage's deadline per item; applies to the next item an
    /// agent takes.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for zero or over a year.
    pub fn set_item_deadline(&self, deadline: Duration) -> Result<(), ConfigError> {
        self.change(|s| s.item_deadline = Some(deadline))
    }

    /// Drops the stage's own settings (the channel capacity, fixed at
    /// spawn, stays): it follows the defaults again.
    pub fn follow_defaults(&self) {
        let _ = self.change(|s| {
            *s = StageSettings {
                channel_capacity: s.channel_capacity,
                ..StageSettings::default()
            }
        });
    }

    fn change(&self, change: impl FnOnce(&mut StageSettings)) -> Result<(), ConfigError> {
        self.shared
            .update_stage(Source::Setting, self.index, change)
            .map(drop)
    }

    /// Agents or workers by hand: the controllers that would change them
    /// hold off.
    fn ratio(&self, change: impl FnOnce(&mut StageSettings)) -> Result<(), ConfigError> {
        self.change(change)?;
        let held = match &self.shared.stage_apis[self.index] {
            Some(budget) => vec![Arc::clone(budget)],
            None => self.shared.budgets(),
        };
        for budget in held {
            budget.hold_controller("manual change of a stage");
        }
        Ok(())
    }
}
