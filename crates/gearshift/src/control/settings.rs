//! Live settings: the pipeline-wide defaults (a [`Config`], which presets
//! and schedules set) and each stage's overrides, resolved per stage.
//!
//! A stage's value is its own setting if it has one (by hand: the builder
//! or a [`StageHandle`](crate::StageHandle)), else what its budget's
//! controller chose (agents and workers), else (for the call settings of an
//! IO stage) its API budget's, else the pipeline's default. A preset (by
//! hand or on a schedule) clears the controllers' choices, so the latest of
//! the two wins and the controller adjusts from the preset.
//! The whole set travels on one `watch` channel, so a stage sees a change of
//! the defaults and of its overrides alike, and every change is validated
//! against the latest set under one lock (see `Shared::update`).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::config::{
    Agents, Config, MAX_CAPACITY, MAX_WORKERS, RetryPolicy, check_count, check_duration, expected,
};
use crate::error::ConfigError;

/// One stage's overrides of the pipeline-wide defaults; `None` follows the
/// default. Set them in the builder right after the stage
/// ([`Pipeline::agents`](crate::Pipeline::agents) and its siblings) or live
/// through [`StageHandle`](crate::StageHandle).
#[derive(Debug, Clone, Default)]
pub struct StageSettings {
    /// Agents of an IO stage. Live.
    pub agents: Option<Agents>,
    /// Workers of a CPU stage (batches running at once), at most the
    /// pool's threads. Live.
    pub workers: Option<usize>,
    /// Items per batch: a CPU stage's batch, or the batch an IO stage hands
    /// to the stage after it. Live.
    pub items_per_batch: Option<usize>,
    /// How long a CPU stage's partial batch waits for more items. Live.
    pub batch_wait: Option<Duration>,
    /// An IO stage's retry policy (else its API's, else the default). Live.
    pub retry: Option<RetryPolicy>,
    /// An IO stage's timeout per attempt (else its API's, else the
    /// default). Live.
    pub api_timeout: Option<Duration>,
    /// An IO stage's deadline per item, retries and waits included (else
    /// its API's, else the default). Live.
    pub item_deadline: Option<Duration>,
    /// Capacity of the stage's input channel. Fixed at spawn.
    pub channel_capacity: Option<usize>,
}

/// What every stage reads: the defaults, the overrides by hand and the
/// controllers' choices, by stage index.
#[derive(Debug, Clone)]
pub(crate) struct Live {
    pub(crate) defaults: Config,
    pub(crate) stages: Vec<StageSettings>,
    pub(crate) tuned: Vec<TunedStage>,
}

/// What a budget's controller chose for a stage.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct TunedStage {
    pub(crate) agents: Option<usize>,
    pub(crate) workers: Option<usize>,
}

/// An IO stage's call settings, resolved.
#[derive(Debug, Clone)]
pub(crate) struct CallSettings {
    pub(crate) retry: RetryPolicy,
    pub(crate) api_timeout: Duration,
    pub(crate) item_deadline: Option<Duration>,
    pub(crate) max_pause: Duration,
}

impl StageSettings {
    /// Checks every override; the error names the stage and the field.
    pub(crate) fn validate(&self, stage: &str, pool_threads: usize) -> Result<(), ConfigError> {
        let check = || -> Result<(), ConfigError> {
            if let Some(agents) = self.agents {
                agents.validate()?;
            }
            if let Some(w) = self.workers {
                check_count!("workers", w, MAX_WORKERS)?;
                if w > pool_threads {
                    return Err(ConfigError::new(
                        "workers",
                        "at most the pool's threads (max_workers, fixed at spawn)",
                        w,
                    ));
                }
            }
            if let Some(n) = self.items_per_batch {
                check_count!("items_per_batch", n, MAX_CAPACITY)?;
            }
            if let Some(d) = self.batch_wait {
                check_duration("batch_wait", d, true)?;
            }
            if let Some(r) = &self.retry {
                r.validate()?;
            }
            if let Some(d) = self.api_timeout {
                check_duration("api_timeout", d, false)?;
            }
            if let Some(d) = self.item_deadline {
                check_duration("item_deadline", d, false)?;
            }
            if let Some(n) = self.channel_capacity {
                check_count!("channel_capacity", n, MAX_CAPACITY)?;
            }
            Ok(())
        };
        check().map_err(|e| e.within(format!("stage {stage}")))
    }
}

impl Live {
    pub(crate) fn new(defaults: Config, stages: Vec<StageSettings>) -> Self {
        let tuned = vec![TunedStage::default(); stages.len()];
        Live {
            defaults,
            stages,
            tuned,
        }
    }

    /// Agents of IO stage `i`: its own fixed setting, else its budget's
    /// controller's choice, else where it starts (its own `Auto` or the
    /// default).
    pub(crate) fn agents(&self, i: usize) -> usize {
        let own = self.stages[i].agents;
        match (own.filter(|a| !a.is_auto()), self.tuned[i].agents) {
            (Some(agents), _) => agents.total(self.defaults.cores),
            (None, Some(n)) => n,
            (None, None) => own
                .unwrap_or(self.defaults.agents)
                .total(self.defaults.cores),
        }
    }

    /// Whether IO stage `i`'s agents are left to a controller: neither the
    /// stage nor the defaults fix them.
    pub(crate) fn agents_auto(&self, i: usize) -> bool {
        self.stages[i]
            .agents
            .unwrap_or(self.defaults.agents)
            .is_auto()
    }

    /// Workers of CPU stage `i`.
    pub(crate) fn workers(&self, i: usize) -> usize {
        let s = &self.stages[i];
        s.workers
            .or(self.tuned[i].workers)
            .unwrap_or(self.defaults.workers)
    }

    /// Drops the controllers' choices: a preset was applied.
    pub(crate) fn clear_tuned(&mut self) -> bool {
        let had = self.tuned.iter().any(|t| *t != TunedStage::default());
        self.tuned
            .iter_mut()
            .for_each(|t| *t = TunedStage::default());
        had
    }

    /// Items per batch of stage `i`.
    pub(crate) fn items_per_batch(&self, i: usize) -> usize {
        let s = &self.stages[i];
        s.items_per_batch.unwrap_or(self.defaults.items_per_batch)
    }

    /// Batch wait of CPU stage `i`.
    pub(crate) fn batch_wait(&self, i: usize) -> Duration {
        self.stages[i]
            .batch_wait
            .unwrap_or(self.defaults.batch_wait)
    }

    /// Input channel capacity of stage `i`.
    pub(crate) fn channel_capacity(&self, i: usize) -> usize {
        let s = &self.stages[i];
        s.channel_capacity.unwrap_or(self.defaults.channel_capacity)
    }

    /// Call settings of IO stage `i` drawing on an API with `api`'s
    /// settings: the stage's override, else the API's, else the default.
    pub(crate) fn calls(
        &self,
        i: usize,
        api: &crate::control::budget::ApiSettings,
    ) -> CallSettings {
        let s = &self.stages[i];
        let d = &self.defaults;
        CallSettings {
            retry: s
                .retry
                .clone()
                .or_else(|| api.retry.clone())
                .unwrap_or_else(|| d.retry.clone()),
            api_timeout: s.api_timeout.or(api.timeout).unwrap_or(d.api_timeout),
            item_deadline: s.item_deadline.or(api.item_deadline).or(d.item_deadline),
            max_pause: api.max_pause,
        }
    }

    /// Checks the defaults and every stage's overrides.
    pub(crate) fn validate(
        &self,
        names: &[std::sync::Arc<str>],
        pool: usize,
    ) -> Result<(), ConfigError> {
        self.defaults.validate()?;
        for (s, name) in self.stages.iter().zip(names) {
            s.validate(name, pool)?;
        }
        for (t, name) in self.tuned.iter().zip(names) {
            let tuned = StageSettings {
                agents: t.agents.map(Agents::Total),
                workers: t.workers,
                ..StageSettings::default()
            };
            tuned.validate(name, pool)?;
        }
        Ok(())
    }
}

/// An IO stage's call settings, published by its supervisor when they
/// change and copied by each agent when it sees a new version: the per-item
/// check is one relaxed load, never a lock or a shared reference count.
#[derive(Debug)]
pub(crate) struct CallCell {
    version: AtomicU64,
    current: Mutex<CallSettings>,
}

/// An agent's copy of its stage's call settings.
#[derive(Debug)]
pub(crate) struct CachedCalls {
    version: u64,
    pub(crate) settings: CallSettings,
}

impl Default for CachedCalls {
    fn default() -> Self {
        CachedCalls {
            // Never a published version: the first refresh copies.
            version: u64::MAX,
            settings: CallSettings {
                retry: RetryPolicy::default(),
                api_timeout: Duration::from_secs(30),
                item_deadline: None,
                max_pause: crate::config::DEFAULT_MAX_PAUSE,
            },
        }
    }
}

impl CallCell {
    pub(crate) fn new(settings: CallSettings) -> Self {
        CallCell {
            version: AtomicU64::new(0),
            current: Mutex::new(settings),
        }
    }

    /// Publishes new settings; agents pick them up at their next item.
    pub(crate) fn publish(&self, settings: CallSettings) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = settings;
        self.version.fetch_add(1, Ordering::Release);
    }

    /// Brings an agent's copy up to date.
    pub(crate) fn refresh(&self, cached: &mut CachedCalls) {
        let version = self.version.load(Ordering::Acquire);
        if version != cached.version {
            let current = self.current.lock().unwrap_or_else(|e| e.into_inner());
            cached.settings = current.clone();
            cached.version = version;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stage's own `Auto` follows its controller's choice, as the
    /// default `Auto` does; a fixed setting wins over it.
    #[test]
    fn agents_left_to_a_controller_follow_its_choice() {
        let defaults = Config {
            agents: Agents::PerCore(1.0),
            ..Config::default()
        }
        .with_cores(2);
        let stage = |agents| StageSettings {
            agents,
            ..StageSettings::default()
        };
        let mut live = Live::new(
            defaults,
            vec![
                stage(Some(Agents::Auto)),
                stage(None),
                stage(Some(Agents::Total(3))),
            ],
        );
        assert_eq!((live.agents(0), live.agents(1), live.agents(2)), (4, 2, 3));
        assert_eq!(
            (
                live.agents_auto(0),
                live.agents_auto(1),
                live.agents_auto(2)
            ),
            (true, false, false)
        );
        for t in &mut live.tuned {
            t.agents = Some(7);
        }
        assert_eq!((live.agents(0), live.agents(1), live.agents(2)), (7, 7, 3));
    }
}
