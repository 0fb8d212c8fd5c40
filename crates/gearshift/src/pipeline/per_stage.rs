//! The builder's per-stage settings: each applies to the stage added last
//! and wins over the pipeline-wide defaults (which presets set). A setting
//! that cannot apply (before any stage, or to a stage of the other kind) is
//! a [`BuildError::StageSetting`] from `spawn`, never silently dropped.

use std::time::Duration;

use super::{Pipeline, StagePlan};
use crate::config::{Agents, RetryPolicy};
use crate::control::budget::Api;
use crate::control::settings::StageSettings;
use crate::error::BuildError;
use crate::stats::counters::StageKind;

impl<T, O> Pipeline<T, O> {
    /// Names the last stage added (in stats, logs, failures and
    /// [`PipelineHandle::stage`](crate::PipelineHandle::stage)). By default,
    /// stages are named `io-N` and `cpu-N` by position.
    pub fn named(self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.last_stage("named", None, |s| s.name = name)
    }

    /// Makes the last IO stage draw its calls from `api`'s budget: its limit
    /// on calls in flight, rate limit and `Retry-After` pause are shared
    /// with every other stage that names the same API. By default, a stage
    /// has a budget of its own, named after it, with no limit beyond its
    /// agents.
    pub fn api(self, api: &Api) -> Self {
        let api = api.clone();
        self.last_stage("api", Some(StageKind::Io), |s| s.api = Some(api))
    }

    /// Sets the last IO stage's agents (tokio tasks calling the API). A
    /// fixed number ([`Agents::PerCore`], [`Agents::Total`]) turns off the
    /// default controller of the stage's budget; [`Agents::Auto`] leaves
    /// the number to it even when the pipeline's agents are fixed. By
    /// default, the pipeline's `agents` (see [`Config::agents`](crate::Config::agents)).
    pub fn agents(self, agents: Agents) -> Self {
        self.setting("agents", Some(StageKind::Io), |s| s.agents = Some(agents))
    }

    /// Sets the last CPU stage's workers. By default, the pipeline's.
    pub fn workers(self, workers: usize) -> Self {
        self.setting("workers", Some(StageKind::Cpu), |s| {
            s.workers = Some(workers)
        })
    }

    /// Sets the last stage's items per batch (a CPU stage's batches, or the
    /// batches an IO stage hands on). By default, the pipeline's.
    pub fn items_per_batch(self, items: usize) -> Self {
        self.setting("items_per_batch", None, |s| s.items_per_batch = Some(items))
    }

    /// Sets how long the last CPU stage's partial batch waits for more
    /// items. By default, the pipeline's.
    pub fn batch_wait(self, wait: Duration) -> Self {
        self.setting("batch_wait", Some(StageKind::Cpu), |s| {
            s.batch_wait = Some(wait)
        })
    }

    /// Sets the last IO stage's retry policy. By default, its API's, else
    /// the pipeline's.
    pub fn retry(self, retry: RetryPolicy) -> Self {
        self.setting("retry", Some(StageKind::Io), |s| s.retry = Some(retry))
    }

    /// Sets the last IO stage's timeout per attempt. By default, its API's,
    /// else the pipeline's.
    pub fn api_timeout(self, timeout: Duration) -> Self {
        self.setting("api_timeout", Some(StageKind::Io), |s| {
            s.api_timeout = Some(timeout)
        })
    }

    /// Sets the last IO stage's deadline per item, retries and waits
    /// included. By default, its API's, else the pipeline's.
    pub fn item_deadline(self, deadline: Duration) -> Self {
        self.setting("item_deadline", Some(StageKind::Io), |s| {
            s.item_deadline = Some(deadline)
        })
    }

    /// Sets the capacity of the last stage's input channel. By default, the
    /// pipeline's `channel_capacity`.
    pub fn channel_capacity(self, items: usize) -> Self {
        self.setting("channel_capacity", None, |s| {
            s.channel_capacity = Some(items)
        })
    }

    /// Sets every override `settings` holds on the last stage, as the
    /// setters above do one by one (each `None` is left alone): for
    /// settings kept apart from the code, such as a config file's
    /// `[stages.<name>]` ([`ConfigFile::stage`](crate::config_file::ConfigFile::stage)).
    /// A setting of the other kind of stage (workers on an IO stage, agents
    /// on a CPU stage) is a [`BuildError::StageSetting`] from `spawn`.
    pub fn stage_settings(mut self, settings: StageSettings) -> Self {
        let StageSettings {
            agents,
            workers,
            items_per_batch,
            batch_wait,
            retry,
            api_timeout,
            item_deadline,
            channel_capacity,
        } = settings;
        if let Some(v) = agents {
            self = self.agents(v);
        }
        if let Some(v) = workers {
            self = self.workers(v);
        }
        if let Some(v) = items_per_batch {
            self = self.items_per_batch(v);
        }
        if let Some(v) = batch_wait {
            self = self.batch_wait(v);
        }
        if let Some(v) = retry {
            self = self.retry(v);
        }
        if let Some(v) = api_timeout {
            self = self.api_timeout(v);
        }
        if let Some(v) = item_deadline {
            self = self.item_deadline(v);
        }
        if let Some(v) = channel_capacity {
            self = self.channel_capacity(v);
        }
        self
    }

    fn setting(
        self,
        setting: &'static str,
        kind: Option<StageKind>,
        change: impl FnOnce(&mut StageSettings),
    ) -> Self {
        self.last_stage(setting, kind, |s| change(&mut s.settings))
    }

    /// Changes the last stage, if there is one of the right kind; else
    /// records the misuse for `spawn` to report.
    fn last_stage(
        mut self,
        setting: &'static str,
        kind: Option<StageKind>,
        change: impl FnOnce(&mut StagePlan),
    ) -> Self {
        let problem = match self.stages.last_mut() {
            None => Some("was called before any stage: call it right after the stage it sets"),
            Some(last) if kind.is_some_and(|k| k != last.kind) => Some(match kind {
                Some(StageKind::Io) => "applies to IO stages, and the last stage is a CPU stage",
                _ => "applies to CPU stages, and the last stage is an IO stage",
            }),
            Some(last) => {
                change(last);
                None
            }
        };
        if let Some(problem) = problem
            && self.misuse.is_none()
        {
            self.misuse = Some(BuildError::StageSetting { setting, problem });
        }
        self
    }
}
