//! Live counters of stages and agents: relaxed atomics bumped on the hot
//! path, read by snapshots and the controller.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::latency::ShardedLatency;
use crate::error::ErrorKind;
use crate::sync::gate::Gate;
use crate::sync::roster::Roster;

/// Which kind of stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageKind {
    /// Async agents on tokio.
    Io,
    /// Workers on the rayon pool.
    Cpu,
}

/// A counter. Increments release and reads acquire, so a reader that sees
/// an item counted out also sees it counted in (free on x86).
#[derive(Debug, Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    pub(crate) fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Release);
    }
    pub(crate) fn add_time(&self, d: Duration) {
        self.add(d.as_nanos() as u64);
    }
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

/// One agent's counters: the seed's `agent_stats`, and more. The per-item
/// counters live here rather than on the stage, so agents on different cores
/// do not write to one cache line.
#[derive(Debug, Default)]
pub(crate) struct AgentStats {
    pub(crate) id: usize,
    /// Items taken from the input channel.
    pub(crate) taken: Counter,
    /// Items passed on.
    pub(crate) passed: Counter,
    /// Calls made, retries included.
    pub(crate) attempts: Counter,
    /// Successful calls.
    pub(crate) processed: Counter,
    pub(crate) errors: Counter,
    pub(crate) retries: Counter,
    pub(crate) api_nanos: Counter,
    pub(crate) blocked_put_nanos: Counter,
    pub(crate) idle_nanos: Counter,
    pub(crate) retired: AtomicBool,
}

/// What a stage's counters need to know about its concurrency.
#[derive(Debug)]
pub(crate) enum Capacity {
    /// An IO stage: its roster and API semaphore.
    Io {
        roster: Arc<Roster>,
        permits: Arc<Gate>,
    },
    /// A CPU stage: its workers, and the gate of batch slots in front of
    /// the pool.
    Cpu {
        slots: Arc<Gate>,
        workers: Arc<std::sync::atomic::AtomicUsize>,
    },
}

/// Reads the current length of a stage's input channel.
pub(crate) struct QueueLen(pub(crate) Box<dyn Fn() -> usize + Send + Sync>);

impl QueueLen {
    pub(crate) fn get(&self) -> usize {
        (self.0)()
    }
}

impl std::fmt::Debug for QueueLen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "QueueLen({})", self.get())
    }
}

/// One stage's counters.
#[derive(Debug)]
pub(crate) struct StageStats {
    pub(crate) name: Arc<str>,
    pub(crate) kind: StageKind,
    pub(crate) items_in: Counter,
    pub(crate) items_out: Counter,
    pub(crate) failed: Counter,
    pub(crate) cancelled: Counter,
    pub(crate) attempts: Counter,
    pub(crate) retries: Counter,
    pub(crate) errors_by_kind: [Counter; ErrorKind::ALL.len()],
    pub(crate) blocked_put_nanos: Counter,
    pub(crate) blocked_get_nanos: Counter,
    pub(crate) busy_nanos: Counter,
    /// Smallest input queue length seen since the controller last looked.
    pub(crate) queue_min: AtomicUsize,
    /// Per-attempt latency (IO, sharded by agent) or per-item run time (CPU).
    pub(crate) latency: ShardedLatency,
    /// Live agents; a retiring agent's counters are folded into the stage's.
    pub(crate) agents: Mutex<Vec<Arc<AgentStats>>>,
    pub(crate) agents_retired: Counter,
    pub(crate) capacity: Capacity,
    pub(crate) queue: QueueLen,
    pub(crate) queue_capacity: usize,
    pub(crate) retry_after_max_nanos: AtomicU64,
}

impl StageStats {
    pub(crate) fn new(
        name: Arc<str>,
        kind: StageKind,
        capacity: Capacity,
        queue: QueueLen,
        queue_capacity: usize,
        cores: usize,
    ) -> Self {
        StageStats {
            name,
            kind,
            items_in: Counter::default(),
            items_out: Counter::default(),
            failed: Counter::default(),
            cancelled: Counter::default(),
            attempts: Counter::default(),
            retries: Counter::default(),
            errors_by_kind: Default::default(),
            blocked_put_nanos: Counter::default(),
            blocked_get_nanos: Counter::default(),
            busy_nanos: Counter::default(),
            queue_min: AtomicUsize::new(usize::MAX),
            latency: ShardedLatency::new(cores),
            agents: Mutex::new(Vec::new()),
            agents_retired: Counter::default(),
            capacity,
            queue,
            queue_capacity,
            retry_after_max_nanos: AtomicU64::new(0),
        }
    }

    pub(crate) fn record_error(&self, kind: ErrorKind) {
        let i = ErrorKind::ALL
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(ErrorKind::ALL.len() - 1);
        self.errors_by_kind[i].add(1);
    }

    pub(crate) fn errors_of(&self, kind: ErrorKind) -> u64 {
        ErrorKind::ALL
            .iter()
            .position(|k| *k == kind)
            .map_or(0, |i| self.errors_by_kind[i].get())
    }

    pub(crate) fn observe_queue(&self, len: usize) {
        self.queue_min.fetch_min(len, Ordering::Relaxed);
    }

    /// Removes an agent that stopped, folding its counters into the stage's.
    /// Done under the agents' lock, which [`total`](Self::total) also
    /// takes, so a reader sees the agent's figures exactly once.
    pub(crate) fn fold_agent(&self, agent: &AgentStats, retired: bool) {
        let mut agents = self.agents.lock().unwrap_or_else(|e| e.into_inner());
        agents.retain(|a| a.id != agent.id);
        self.items_in.add(agent.taken.get());
        self.items_out.add(agent.passed.get());
        self.attempts.add(agent.attempts.get());
        self.busy_nanos.add(agent.api_nanos.get());
        self.blocked_put_nanos.add(agent.blocked_put_nanos.get());
        self.blocked_get_nanos.add(agent.idle_nanos.get());
        if retired {
            self.agents_retired.add(1);
        }
        drop(agents);
    }

    /// A stage-level counter plus the same figure over the live agents.
    pub(crate) fn total(&self, stage: &Counter, agent: impl Fn(&AgentStats) -> &Counter) -> u64 {
        let agents = self.agents.lock().unwrap_or_else(|e| e.into_inner());
        stage.get() + agents.iter().map(|a| agent(a).get()).sum::<u64>()
    }

    pub(crate) fn register_agent(&self, id: usize) -> Arc<AgentStats> {
        let stats = Arc::new(AgentStats {
            id,
            ..AgentStats::default()
        });
        self.agents
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::clone(&stats));
        stats
    }
}
