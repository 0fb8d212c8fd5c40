//! State shared by the handle, the stages, the collector and the controller.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::time::Instant;

use super::budget::Budget;
use super::settings::{Live, StageSettings};
use crate::config::Config;
use crate::error::ConfigError;
use crate::stats::counters::{Counter, KindCounts, StageStats};
use crate::stats::latency::LatencyRecorder;
use crate::stats::report::{Report, ReportInput, Tally, TunerDecision};
use crate::sync::gate::Gate;
use crate::sync::shutdown::Shutdown;

/// Decisions kept for snapshots.
const DECISIONS_KEPT: usize = 64;

/// Items taken from the source (counted by the source task) and outcome
/// counts (kept by the collector): at the end, every item taken has exactly
/// one outcome.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    pub(crate) taken: Arc<Counter>,
    pub(crate) ok: Counter,
    pub(crate) failed: Counter,
    pub(crate) cancelled: Counter,
    pub(crate) by_kind: KindCounts,
}

#[derive(Debug)]
pub(crate) struct Shared {
    /// A number for this pipeline, unique in the process: the driver of a
    /// budget's controller.
    pub(crate) id: u64,
    /// The live settings: defaults and per-stage overrides.
    pub(crate) settings: watch::Sender<Live>,
    /// Stage names, by index.
    pub(crate) names: Vec<Arc<str>>,
    /// The API budget of each stage, by index (`None` for CPU stages).
    pub(crate) stage_apis: Vec<Option<Arc<Budget>>>,
    pub(crate) pool_threads: usize,
    pub(crate) shutdown: Shutdown,
    pub(crate) rt: tokio::runtime::Handle,
    pub(crate) started: Instant,
    pub(crate) stages: Mutex<Vec<Arc<StageStats>>>,
    pub(crate) ledger: Ledger,
    /// End-to-end latency of finished items.
    pub(crate) latency: LatencyRecorder,
    pub(crate) decisions: Mutex<VecDeque<TunerDecision>>,
    /// The `max_in_flight` window: the source takes a permit per item, the
    /// collector gives it back at the item's outcome.
    pub(crate) in_flight: Option<Arc<Gate>>,
    pub(crate) report: watch::Sender<Option<Arc<Report>>>,
    /// Who changes the ratio now. Its lock is also the one lock around
    /// every change's read, validate and publish (see [`Shared::update`]).
    authority: Mutex<Authority>,
    /// Publishes the figures through the `metrics` facade.
    #[cfg(feature = "metrics")]
    pub(crate) export: crate::export::Exporter,
}

/// Who asks for a change to the live configuration: the precedence rule in
/// [`PipelineHandle`](crate::PipelineHandle)'s docs decides between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// The handle's ratio setters and `apply`: they pause the schedule and
    /// the tuner.
    Manual,
    /// The handle's other setters (rate limit, batch wait, max_in_flight):
    /// no automatic source sets these, so they override nothing.
    Setting,
    /// A schedule's preset switch.
    Schedule,
    /// A tuner's decision.
    Tuner,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Manual | Source::Setting => "manual change",
            Source::Schedule => "schedule",
            Source::Tuner => "tuner",
        }
    }
}

/// Which sources may change the ratio, which changed it last, and whether a
/// manual change holds the automatic ones off.
#[derive(Debug, Default)]
struct Authority {
    schedule: bool,
    tuner: bool,
    held: bool,
    last: Option<Source>,
}

impl Authority {
    /// The automatic sources this pipeline has, for log messages.
    fn automatic(&self) -> Option<&'static str> {
        match (self.schedule, self.tuner) {
            (true, true) => Some("the schedule and the tuner"),
            (true, false) => Some("the schedule"),
            (false, true) => Some("the tuner"),
            (false, false) => None,
        }
    }

    /// Records that `source` changed the ratio, and says so at info when it
    /// overrides another source's change.
    fn note(&mut self, source: Source, ratio_changed: bool) {
        if source == Source::Manual {
            if !self.held
                && let Some(paused) = self.automatic()
            {
                self.held = true;
                tracing::info!(
                    paused,
                    "manual change overrides {paused}: paused until resume_automatic()"
                );
            }
            self.last = Some(source);
            return;
        }
        if !ratio_changed {
            return;
        }
        if let Some(prev) = self.last
            && prev != source
        {
            tracing::info!(
                by = source.as_str(),
                over = prev.as_str(),
                "{} overrides the ratio set by the {}",
                source.as_str(),
                prev.as_str()
            );
        }
        self.last = Some(source);
    }
}

impl Shared {
    pub(crate) fn new(
        live: Live,
        names: Vec<Arc<str>>,
        stage_apis: Vec<Option<Arc<Budget>>>,
        rt: tokio::runtime::Handle,
    ) -> Arc<Self> {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Arc::new(Shared {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            pool_threads: live.defaults.pool_threads(),
            in_flight: live.defaults.max_in_flight.map(Gate::new),
            settings: watch::Sender::new(live),
            names,
            stage_apis,
            shutdown: Shutdown::default(),
            rt,
            started: Instant::now(),
            stages: Mutex::new(Vec::new()),
            ledger: Ledger::default(),
            latency: LatencyRecorder::new(),
            decisions: Mutex::new(VecDeque::new()),
            report: watch::Sender::new(None),
            authority: Mutex::new(Authority::default()),
            #[cfg(feature = "metrics")]
            export: Default::default(),
        })
    }

    /// Records which automatic sources (schedule, tuner) this pipeline has,
    /// before any change can arrive.
    pub(crate) fn set_automatic(&self, schedule: bool, tuner: bool) {
        let mut a = self.authority();
        (a.schedule, a.tuner) = (schedule, tuner);
    }

    /// Whether a manual change holds the schedule and the tuner off.
    pub(crate) fn automatic_held(&self) -> bool {
        self.authority().held
    }

    /// Lets the schedule and the tuner change the ratio again; returns
    /// which were held off, for the log.
    pub(crate) fn resume_automatic(&self) -> Option<&'static str> {
        let mut a = self.authority();
        std::mem::take(&mut a.held).then(|| a.automatic()).flatten()
    }

    fn authority(&self) -> std::sync::MutexGuard<'_, Authority> {
        self.authority.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies a change by `source` to the live configuration, if it
    /// validates; `Ok(false)` when a manual change holds `source` off.
    ///
    /// Reading, changing, validating and publishing happen under one lock,
    /// so each change applies to the latest configuration: two concurrent
    /// changes to different fields both hold, and the `max_in_flight` gate
    /// is resized in the same order as the configurations are published.
    pub(crate) fn update(
        &self,
        source: Source,
        change: impl FnOnce(&mut Live),
    ) -> Result<bool, ConfigError> {
        let mut authority = self.authority();
        if authority.held && matches!(source, Source::Schedule | Source::Tuner) {
            return Ok(false);
        }
        let before = self.settings.borrow().clone();
        let mut next = before.clone();
        change(&mut next);
        next.validate(&self.names, self.pool_threads)?;
        let workers = next.defaults.workers;
        if workers > self.pool_threads {
            return Err(ConfigError::new(
                "workers",
                "at most the pool's threads (max_workers, fixed at spawn)",
                workers,
            ));
        }
        match (&self.in_flight, next.defaults.max_in_flight) {
            (Some(gate), Some(n)) => gate.resize(n),
            (None, None) => {}
            (_, n) => {
                return Err(ConfigError::new(
                    "max_in_flight",
                    "set (or left unset) as it was when the pipeline was spawned",
                    n,
                ));
            }
        }
        // A tuner may have been given to a budget since the spawn.
        authority.tuner = self.budgets().iter().any(|b| b.tuner().is_some());
        authority.note(source, ratio(&before) != ratio(&next));
        self.settings.send_replace(next);
        Ok(true)
    }

    /// [`update`](Self::update) of the pipeline-wide defaults.
    pub(crate) fn update_defaults(
        &self,
        source: Source,
        change: impl FnOnce(&mut Config),
    ) -> Result<bool, ConfigError> {
        self.update(source, |live| change(&mut live.defaults))
    }

    /// Applies a preset to the defaults, and drops the controllers' choices
    /// (saying so), so the preset takes effect and they adjust from it.
    pub(crate) fn apply_preset(
        &self,
        source: Source,
        preset: crate::preset::Preset,
    ) -> Result<bool, ConfigError> {
        self.apply_ratio(source, preset.as_str(), |c| preset.apply_to(c))
    }

    /// [`apply_preset`](Self::apply_preset) for any preset: `apply` sets
    /// the ratio knobs of the defaults, `preset` names it in logs.
    pub(crate) fn apply_ratio(
        &self,
        source: Source,
        preset: &str,
        apply: impl FnOnce(&mut Config),
    ) -> Result<bool, ConfigError> {
        let applied = self.update(source, |live| {
            apply(&mut live.defaults);
            if live.clear_tuned() {
                tracing::info!(%preset, by = source.as_str(), "preset replaces the ratio the controllers chose; they adjust from it");
            }
        })?;
        if applied {
            self.hold_default_controllers("a preset");
        }
        Ok(applied)
    }

    /// Holds the default controller of every budget drawn on by a stage
    /// that follows the default agents: `why` just fixed them.
    pub(crate) fn hold_default_controllers(&self, why: &str) {
        let follow: Vec<bool> = {
            let live = self.settings.borrow();
            live.stages.iter().map(|s| s.agents.is_none()).collect()
        };
        for (budget, follows) in self.stage_apis.iter().zip(follow) {
            if let Some(budget) = budget
                && follows
            {
                budget.hold_default_controller(why);
            }
        }
    }

    /// [`update`](Self::update) of stage `index`'s overrides.
    pub(crate) fn update_stage(
        &self,
        source: Source,
        index: usize,
        change: impl FnOnce(&mut StageSettings),
    ) -> Result<bool, ConfigError> {
        self.update(source, |live| change(&mut live.stages[index]))
    }

    /// The pipeline-wide defaults now.
    pub(crate) fn defaults(&self) -> Config {
        self.settings.borrow().defaults.clone()
    }

    /// The index of the stage named `name`.
    pub(crate) fn stage_index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| &**n == name)
    }

    /// The distinct budgets of this pipeline's IO stages, in stage order.
    pub(crate) fn budgets(&self) -> Vec<Arc<Budget>> {
        let mut seen: Vec<Arc<Budget>> = Vec::new();
        for b in self.stage_apis.iter().flatten() {
            if !seen.iter().any(|s| Arc::ptr_eq(s, b)) {
                seen.push(Arc::clone(b));
            }
        }
        seen
    }

    pub(crate) fn cancel(&self) {
        let drain = self.settings.borrow().defaults.drain_timeout;
        self.shutdown.cancel(drain, &self.rt);
    }

    pub(crate) fn stages(&self) -> Vec<Arc<StageStats>> {
        self.stages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reads everything into a [`Report`]: the stats know nothing of
    /// `Shared`, so this gathers their inputs.
    pub(crate) fn report(&self, finished: bool) -> Report {
        let l = &self.ledger;
        // Outcomes first: every item is taken before it has an outcome, so
        // a live report never shows more outcomes than items taken.
        let (ok, failed, cancelled) = (l.ok.get(), l.failed.get(), l.cancelled.get());
        let failures_by_kind = l.by_kind.nonzero();
        let tally = Tally {
            taken: l.taken.get(),
            ok,
            failed,
            cancelled,
            failures_by_kind,
        };
        let decisions = self.decisions.lock().unwrap_or_else(|e| e.into_inner());
        Report::build(ReportInput {
            finished,
            elapsed: self.started.elapsed(),
            tally,
            latency: self.latency.total(),
            stages: &self.stages(),
            // Each budget's own figures: a budget shared with another
            // pipeline counts that pipeline's calls too.
            apis: self.budgets().iter().map(|b| b.report()).collect(),
            decisions: decisions.iter().cloned().collect(),
        })
    }

    pub(crate) fn record_decision(&self, decision: TunerDecision) {
        let mut d = self.decisions.lock().unwrap_or_else(|e| e.into_inner());
        if d.len() == DECISIONS_KEPT {
            d.pop_front();
        }
        d.push_back(decision);
    }
}

/// The knobs a preset, a tuner and the handle contend for (agents, workers,
/// batch sizes of every stage), as the numbers in force.
fn ratio(live: &Live) -> Vec<usize> {
    (0..live.stages.len())
        .flat_map(|i| [live.agents(i), live.workers(i), live.items_per_batch(i)])
        .collect()
}
