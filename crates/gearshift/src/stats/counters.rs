//! Live counters of stages and agents: relaxed atomics bumped on the hot
//! path, read by snapshots and by any number of window readers. What a
//! stage's concurrency is comes in through read-only gauges the stage gives
//! ([`ConcurrencyGauge`], [`QueueLen`]): stats know nothing of how it is
//! controlled.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::latency::ShardedLatency;
use super::window::{WindowedMax, WindowedMin, millis_ceil};
use crate::error::ErrorKind;

/// Which kind of stage.
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "lowercase")
)]
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

/// Counts by error kind: of failed attempts (a stage's, an API's) or of
/// failed items (the ledger's).
#[derive(Debug, Default)]
pub(crate) struct KindCounts([Counter; ErrorKind::ALL.len()]);

impl KindCounts {
    pub(crate) fn add(&self, kind: ErrorKind) {
        self.0[kind.index()].add(1);
    }

    pub(crate) fn get(&self, kind: ErrorKind) -> u64 {
        self.0[kind.index()].get()
    }

    /// The kinds counted at least once, with their counts.
    pub(crate) fn nonzero(&self) -> std::collections::BTreeMap<ErrorKind, u64> {
        ErrorKind::ALL
            .iter()
            .map(|k| (*k, self.get(*k)))
            .filter(|(_, n)| *n > 0)
            .collect()
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
    /// Time of the calls that ended, whole, credited when each ends.
    pub(crate) api_nanos: Counter,
    /// When the call under way began: with `api_nanos`, the time calls
    /// have been in flight up to any instant, not only to their ends.
    pub(crate) running: RunningCall,
    pub(crate) blocked_put_nanos: Counter,
    pub(crate) idle_nanos: Counter,
    pub(crate) retired: AtomicBool,
}

/// The start of an agent's call under way, if any. A mutex, not an atomic:
/// an `Instant` has no portable integer form, it is taken twice a call (an
/// API call, milliseconds long), and by no one else but window readers.
#[derive(Debug, Default)]
pub(crate) struct RunningCall(Mutex<Option<Instant>>);

impl RunningCall {
    /// A call began at `at`; it counts as running until the guard drops.
    pub(crate) fn start(&self, at: Instant) -> RunningGuard<'_> {
        *self.lock() = Some(at);
        RunningGuard(self)
    }

    /// How long the call under way has run by `now` (zero when none).
    fn age(&self, now: Instant) -> Duration {
        self.lock()
            .map_or(Duration::ZERO, |at| now.saturating_duration_since(at))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Ends a [`RunningCall`] on drop, so an aborted call ends too.
#[derive(Debug)]
pub(crate) struct RunningGuard<'a>(&'a RunningCall);

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        *self.0.lock() = None;
    }
}

/// A stage's concurrency at one instant, as its gauge reads it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Concurrency {
    /// Agents alive (IO) or workers (CPU).
    pub(crate) alive: usize,
    /// Agents (or workers) asked for.
    pub(crate) target: usize,
    /// API permits (IO) or batch slots (CPU).
    pub(crate) permits: usize,
    /// Permits (or slots) in use.
    pub(crate) in_use: usize,
}

/// Reads a stage's [`Concurrency`] now; given by the stage, which owns the
/// roster and the gates.
pub(crate) struct ConcurrencyGauge(pub(crate) Box<dyn Fn() -> Concurrency + Send + Sync>);

impl ConcurrencyGauge {
    pub(crate) fn get(&self) -> Concurrency {
        (self.0)()
    }
}

impl std::fmt::Debug for ConcurrencyGauge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ConcurrencyGauge({:?})", self.get())
    }
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

/// What a stage shows of itself to its stats, read-only.
#[derive(Debug)]
pub(crate) struct StageGauges {
    pub(crate) concurrency: ConcurrencyGauge,
    pub(crate) queue: QueueLen,
    pub(crate) queue_capacity: usize,
    /// Permits in use, recorded by the stage's gate at each acquisition.
    pub(crate) peak_in_use: Arc<WindowedMax>,
}

/// The integral of a stage's concurrency over time (agent- or
/// worker-nanoseconds provided), so that busy time divides by the capacity
/// the stage really had, across resizes. Changed only when agents start or
/// stop and when workers are resized: never on the per-call path.
#[derive(Debug)]
pub(crate) struct CapacityClock(Mutex<Clock>);

#[derive(Debug)]
struct Clock {
    units: usize,
    since: Instant,
    nanos: u128,
}

impl CapacityClock {
    pub(crate) fn new(units: usize) -> Self {
        CapacityClock(Mutex::new(Clock {
            units,
            since: Instant::now(),
            nanos: 0,
        }))
    }

    fn change(&self, f: impl FnOnce(usize) -> usize) {
        let mut c = self.lock();
        let now = Instant::now();
        c.nanos += c.units as u128 * (now - c.since).as_nanos();
        (c.since, c.units) = (now, f(c.units));
    }

    /// The capacity is now `units`.
    pub(crate) fn set(&self, units: usize) {
        self.change(|_| units);
    }

    pub(crate) fn add(&self) {
        self.change(|u| u.saturating_add(1));
    }

    pub(crate) fn remove(&self) {
        self.change(|u| u.saturating_sub(1));
    }

    /// Unit-time provided so far.
    pub(crate) fn provided(&self) -> Duration {
        let c = self.lock();
        let nanos = c.nanos + c.units as u128 * c.since.elapsed().as_nanos();
        let secs = u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX);
        Duration::new(secs, (nanos % 1_000_000_000) as u32)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Clock> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
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
    pub(crate) errors_by_kind: KindCounts,
    pub(crate) blocked_put_nanos: Counter,
    pub(crate) blocked_get_nanos: Counter,
    pub(crate) busy_nanos: Counter,
    /// Agent- (IO) or worker-time (CPU) provided: what `busy_nanos` is a
    /// fraction of.
    pub(crate) capacity: CapacityClock,
    /// Input queue lengths seen by the batcher (CPU), per time bucket.
    pub(crate) queue_min: WindowedMin,
    /// Per-attempt latency (IO, sharded by agent) or per-item run time (CPU).
    pub(crate) latency: ShardedLatency,
    /// Live agents; a retiring agent's counters are folded into the stage's.
    pub(crate) agents: Mutex<Vec<Arc<AgentStats>>>,
    pub(crate) agents_retired: Counter,
    pub(crate) gauges: StageGauges,
    /// Longest `Retry-After` pause (milliseconds) per time bucket.
    pub(crate) retry_after_ms: WindowedMax,
}

impl StageStats {
    pub(crate) fn new(name: Arc<str>, kind: StageKind, gauges: StageGauges, cores: usize) -> Self {
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
            capacity: CapacityClock::new(0),
            queue_min: WindowedMin::default(),
            latency: ShardedLatency::new(cores),
            agents: Mutex::new(Vec::new()),
            agents_retired: Counter::default(),
            gauges,
            retry_after_ms: WindowedMax::default(),
        }
    }

    pub(crate) fn record_error(&self, kind: ErrorKind) {
        self.errors_by_kind.add(kind);
    }

    pub(crate) fn errors_of(&self, kind: ErrorKind) -> u64 {
        self.errors_by_kind.get(kind)
    }

    pub(crate) fn observe_queue(&self, len: usize) {
        self.queue_min.record(len as u64);
    }

    /// Records a `Retry-After` pause the stage took.
    pub(crate) fn note_retry_after(&self, pause: Duration) {
        self.retry_after_ms.record(millis_ceil(pause));
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
        self.capacity.remove();
        drop(agents);
    }

    /// Time the stage's calls have spent in flight by `now` (nanoseconds):
    /// the calls that ended, whole, plus the part run so far of those under
    /// way. Its growth over a window is the window's integral of calls in
    /// flight. A call ending while this reads may count twice or not at
    /// all for that one read; the next read is right again.
    pub(crate) fn call_time(&self, now: Instant) -> u64 {
        let agents = self.agents.lock().unwrap_or_else(|e| e.into_inner());
        let running: u128 = agents.iter().map(|a| a.running.age(now).as_nanos()).sum();
        let ended = self.busy_nanos.get() + agents.iter().map(|a| a.api_nanos.get()).sum::<u64>();
        ended.saturating_add(u64::try_from(running).unwrap_or(u64::MAX))
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
        let mut agents = self.agents.lock().unwrap_or_else(|e| e.into_inner());
        agents.push(Arc::clone(&stats));
        self.capacity.add();
        stats
    }
}

#[cfg(all(test, not(gearshift_loom)))]
mod kind_tests {
    use super::*;

    #[test]
    fn each_kind_counts_in_its_own_place() {
        let counts = KindCounts::default();
        for (i, kind) in ErrorKind::ALL.iter().enumerate() {
            assert_eq!(kind.index(), i, "ALL lists the kinds in declaration order");
            counts.add(*kind);
        }
        counts.add(ErrorKind::Timeout);
        assert_eq!(counts.get(ErrorKind::Timeout), 2);
        assert_eq!(counts.get(ErrorKind::Panic), 1);
        assert_eq!(counts.nonzero().len(), ErrorKind::ALL.len());
    }
}
