//! State shared by the handle, the stages, the collector and the controller.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::Config;
use crate::error::{ConfigError, ErrorKind};
use crate::preset::ratio;
use crate::stats::counters::{Counter, StageStats};
use crate::stats::latency::LatencyRecorder;
use crate::stats::report::{Report, TunerDecision};
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
    pub(crate) by_kind: [Counter; ErrorKind::ALL.len()],
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: watch::Sender<Config>,
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
    pub(crate) fn new(config: Config, rt: tokio::runtime::Handle) -> Arc<Self> {
        Arc::new(Shared {
            pool_threads: config.pool_threads(),
            in_flight: config.max_in_flight.map(Gate::new),
            config: watch::Sender::new(config),
            shutdown: Shutdown::default(),
            rt,
            started: Instant::now(),
            stages: Mutex::new(Vec::new()),
            ledger: Ledger::default(),
            latency: LatencyRecorder::new(),
            decisions: Mutex::new(VecDeque::new()),
            report: watch::Sender::new(None),
            authority: Mutex::new(Authority::default()),
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
        change: impl FnOnce(&mut Config),
    ) -> Result<bool, ConfigError> {
        let mut authority = self.authority();
        if authority.held && matches!(source, Source::Schedule | Source::Tuner) {
            return Ok(false);
        }
        let before = self.config.borrow().clone();
        let mut next = before.clone();
        change(&mut next);
        next.validate()?;
        if next.workers > self.pool_threads {
            return Err(ConfigError::new(
                "workers",
                "at most the pool's threads (max_workers, fixed at spawn)",
                next.workers,
            ));
        }
        match (&self.in_flight, next.max_in_flight) {
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
        authority.note(source, ratio(&before) != ratio(&next));
        self.config.send_replace(next);
        Ok(true)
    }

    pub(crate) fn cancel(&self) {
        let drain = self.config.borrow().drain_timeout;
        self.shutdown.cancel(drain, &self.rt);
    }

    pub(crate) fn stages(&self) -> Vec<Arc<StageStats>> {
        self.stages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn record_decision(&self, decision: TunerDecision) {
        let mut d = self.decisions.lock().unwrap_or_else(|e| e.into_inner());
        if d.len() == DECISIONS_KEPT {
            d.pop_front();
        }
        d.push_back(decision);
    }
}
