//! State shared by the handle, the stages, the collector and the controller.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::Config;
use crate::control::gate::Gate;
use crate::control::shutdown::Shutdown;
use crate::error::{ConfigError, ErrorKind};
use crate::stats::counters::{Counter, StageStats};
use crate::stats::latency::LatencyRecorder;
use crate::stats::report::{Report, TunerDecision};

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
        })
    }

    /// Applies a change to the live configuration, if it validates.
    pub(crate) fn update(&self, change: impl FnOnce(&mut Config)) -> Result<(), ConfigError> {
        let mut next = self.config.borrow().clone();
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
        self.config.send_replace(next);
        Ok(())
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
