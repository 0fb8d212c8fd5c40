//! The agent: a task that takes items and processes them until it retires
//! or its input is closed and drained, and that passes results on. A panic
//! that escapes it ends the items it holds as `Failed`, so a replacement
//! can start with nothing lost.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::FutureExt;
use tokio::time::Instant;

use super::IoCore;
use super::call::CallError;
use super::units::Unit;
use crate::control::settings::CachedCalls;
use crate::error::{ErrorKind, StageError};
use crate::outcome::ItemId;
use crate::pipeline::item::{Ended, Item, discard_after_panic, panic_message};
use crate::pipeline::link::{self, Outlet};
use crate::stats::counters::AgentStats;
use crate::sync::gate::Kept;

/// What an agent keeps to itself between items, so that the per-item path
/// touches nothing shared that it can put off: results waiting to be passed
/// on, call latencies and counts waiting to be recorded, the API permit of
/// its last call (while its next item is ready and permits are free), and
/// its last clock read. Everything is given back before the agent waits.
pub(crate) struct Held<U> {
    /// The stage's call settings, as of the agent's last item.
    pub(super) calls: CachedCalls,
    /// Items taken and not yet passed on or ended: failed if the agent panics.
    pub(super) in_hand: Vec<ItemId>,
    pub(super) outbox: Vec<Item<U>>,
    pub(super) latencies: Vec<Duration>,
    /// The agent's attempts and successful calls already added to its
    /// budget's stats; the rest are added with the latencies.
    pub(super) reported: Reported,
    pub(super) permit: Option<Kept>,
    /// The agent's last clock read, refreshed after anything that may wait:
    /// the end of one call starts the clock of the next item and call.
    pub(super) now: Instant,
}

/// Call latencies an agent records at once, at the latest.
pub(super) const LATENCIES_HELD: usize = 64;

/// Counts of an agent's calls (its own counters, which the stage reads)
/// as of its last record into its budget's stats.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Reported {
    attempts: u64,
    ok: u64,
}

impl<U> Held<U> {
    fn new() -> Self {
        Held {
            calls: CachedCalls::default(),
            in_hand: Vec::new(),
            outbox: Vec::new(),
            latencies: Vec::with_capacity(LATENCIES_HELD),
            reported: Reported::default(),
            permit: None,
            now: Instant::now(),
        }
    }
}

/// Why an agent stopped.
pub(super) enum Exit {
    Retired,
    InputClosed,
    /// It panicked; its items were failed, and a new agent takes its place.
    Panicked,
}

fn leave<T, U>(core: &IoCore<T, U>, stats: &AgentStats) -> Exit {
    core.roster.leave();
    core.stats.fold_agent(stats, false);
    Exit::InputClosed
}

fn retire<T, U>(core: &IoCore<T, U>, stats: &AgentStats, id: usize) -> Exit {
    stats.retired.store(true, Ordering::Relaxed);
    core.stats.fold_agent(stats, true);
    tracing::debug!(stage = %core.name, agent = id, "agent retired");
    Exit::Retired
}

/// The agent task: runs the agent's loop and catches a panic that escapes
/// it, failing the items the agent held and leaving its place in the roster
/// to a replacement.
pub(super) async fn agent<T, U, W>(core: Arc<IoCore<T, U>>, unit: Arc<W>, id: usize) -> Exit
where
    T: Clone + Send + 'static,
    U: Send + 'static,
    W: Unit<T, U>,
{
    let stats = core.stats.register_agent(id);
    tracing::debug!(stage = %core.name, agent = id, "agent started");
    let mut held = Held::new();
    let run = AssertUnwindSafe(run_agent(&core, &*unit, id, &stats, &mut held))
        .catch_unwind()
        .await;
    let panic = match run {
        Ok(exit) => return exit,
        Err(panic) => panic_message(&*panic),
    };
    // What the agent holds is intact (items are moved in and out whole):
    // end each of them, then make room for a replacement.
    let held_items = held.in_hand.len() + held.outbox.len();
    tracing::error!(stage = %core.name, agent = id, error = %panic, items = held_items, "agent panicked; its items end as failed and a new agent replaces it");
    held.permit = None;
    // The calls it made count, in the stage's stats and the budget's.
    core.record_latencies(&mut held, &stats);
    let error = StageError::msg(ErrorKind::Panic, format!("agent {panic}"));
    let outbox = held.outbox.drain(..).map(|item| {
        discard_after_panic(item.value);
        item.id
    });
    let ids: Vec<ItemId> = held.in_hand.drain(..).chain(outbox).collect();
    for id in ids {
        core.end(id, CallError::Failed(error.clone(), 1)).await;
    }
    core.roster.leave();
    core.stats.fold_agent(&stats, false);
    Exit::Panicked
}

/// The agent's loop: takes items and processes them until it retires or
/// its input is closed and drained.
async fn run_agent<T, U, W>(
    core: &IoCore<T, U>,
    unit: &W,
    id: usize,
    stats: &AgentStats,
    held: &mut Held<U>,
) -> Exit
where
    T: Clone + Send + 'static,
    U: Send + 'static,
    W: Unit<T, U>,
{
    loop {
        if core.roster.try_retire() {
            core.flush(held, stats).await;
            return retire(core, stats, id);
        }
        let item = match core.input.try_recv() {
            Ok(item) => item,
            Err(async_channel::TryRecvError::Closed) => {
                core.flush(held, stats).await;
                return leave(core, stats);
            }
            Err(async_channel::TryRecvError::Empty) => {
                // Nothing queued: give back the permit, pass on what the
                // outbox holds, then wait for an item, or for a shrink that
                // may retire this agent.
                held.permit = None;
                core.flush(held, stats).await;
                let waited = Instant::now();
                let notified = core.shrink.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if core.roster.try_retire() {
                    return retire(core, stats, id);
                }
                let next = tokio::select! {
                    biased;
                    next = core.input.recv() => next,
                    _ = &mut notified => continue,
                };
                held.now = Instant::now();
                stats.idle_nanos.add_time(held.now - waited);
                let Ok(item) = next else {
                    return leave(core, stats);
                };
                item
            }
        };
        let mut item = item;
        if core.first {
            item.born = held.now;
        }
        unit.process(core, item, stats, held).await;
    }
}

impl<T, U> IoCore<T, U>
where
    T: Send + 'static,
    U: Send + 'static,
{
    /// Passes a result on: at once to a stage that takes items one by one,
    /// through the outbox to one that takes batches.
    pub(super) async fn pass(&self, item: Item<U>, agent: &AgentStats, held: &mut Held<U>) {
        match &self.output {
            Outlet::Items(tx) => self.forward(tx, item, agent, held).await,
            Outlet::Batches(_) => {
                held.outbox.push(item);
                if held.outbox.len() >= self.out_batch.load(Ordering::Relaxed) {
                    self.flush(held, agent).await;
                }
            }
        }
    }

    /// Backpressure: no new call while the next stage has no room for what
    /// the outbox holds, so the agent waits for room before it calls.
    pub(super) async fn make_room(&self, held: &mut Held<U>, agent: &AgentStats) {
        if let Outlet::Batches(tx) = &self.output
            && !held.outbox.is_empty()
            && !tx.has_room(held.outbox.len())
        {
            self.flush(held, agent).await;
        }
    }

    /// Before the agent waits: records the latencies it holds, and passes
    /// on what the outbox holds as one batch, waiting (and counting the
    /// wait) if the channel is full.
    pub(super) async fn flush(&self, held: &mut Held<U>, agent: &AgentStats) {
        self.record_latencies(held, agent);
        let Outlet::Batches(tx) = &self.output else {
            return; // item outlets are sent to one by one
        };
        if held.outbox.is_empty() {
            return;
        }
        // Sized by use, not by `items_per_batch` (which may be 2^24).
        let used = held.outbox.len();
        let batch = std::mem::replace(&mut held.outbox, Vec::with_capacity(used));
        let n = batch.len() as u64;
        let batch = match tx.try_send(batch) {
            Ok(()) => return agent.passed.add(n),
            Err(async_channel::TrySendError::Full(batch)) => batch,
            Err(async_channel::TrySendError::Closed(batch)) => {
                for item in batch {
                    self.end_cancelled(item.id).await;
                }
                return;
            }
        };
        // The send owns the batch: keep the ids, to cancel them on an abort.
        let ids: Vec<u64> = batch.iter().map(|i| i.id).collect();
        if self.wait_to_send(tx, batch, agent, held).await {
            agent.passed.add(n);
        } else {
            for id in ids {
                self.end_cancelled(id).await;
            }
        }
    }

    /// Waits for room and sends, counting the wait as blocked; gives back
    /// the permit first (an agent blocked on the next stage holds none).
    /// `false` on an abort or if the next stage is gone.
    async fn wait_to_send<X>(
        &self,
        tx: &link::Sender<X>,
        x: X,
        agent: &AgentStats,
        held: &mut Held<U>,
    ) -> bool {
        held.permit = None;
        let blocked = Instant::now();
        let sent = tokio::select! {
            biased;
            _ = self.abort.triggered() => false,
            sent = tx.send(x) => sent.is_ok(),
        };
        held.now = Instant::now();
        agent.blocked_put_nanos.add_time(held.now - blocked);
        sent
    }

    /// Passes an item on, waiting (and counting the wait) if the channel is full.
    async fn forward(
        &self,
        tx: &link::Sender<Item<U>>,
        item: Item<U>,
        agent: &AgentStats,
        held: &mut Held<U>,
    ) {
        let id = item.id;
        let item = match tx.try_send(item) {
            Ok(()) => return agent.passed.add(1),
            Err(async_channel::TrySendError::Full(item)) => item,
            Err(async_channel::TrySendError::Closed(_)) => return self.end_cancelled(id).await,
        };
        if self.wait_to_send(tx, item, agent, held).await {
            agent.passed.add(1);
        } else {
            self.end_cancelled(id).await;
        }
    }

    /// Records what the agent holds for the stats, in one go: its call
    /// latencies (into the stage's stats and its budget's), and the
    /// attempts and successful calls it made since its last record (into
    /// the budget's; the stage reads the agent's own counters). So the
    /// budget, shared by every agent of every stage drawing on it, is
    /// written once per batch, not once per call.
    pub(super) fn record_latencies(&self, held: &mut Held<U>, agent: &AgentStats) {
        self.record_calls(held, agent);
        if !held.latencies.is_empty() {
            let api = &self.budget.stats;
            api.latency
                .record_all(agent.id, held.latencies.iter().copied());
            self.stats
                .latency
                .record_all(agent.id, held.latencies.drain(..));
        }
    }

    /// Adds the agent's attempts and successful calls since its last record
    /// to its budget's stats: attempts first, as a reader reads them last,
    /// so it never sees more calls answered than made.
    fn record_calls(&self, held: &mut Held<U>, agent: &AgentStats) {
        let api = &self.budget.stats;
        let (attempts, ok) = (agent.attempts.get(), agent.processed.get());
        let was = held.reported;
        if attempts > was.attempts {
            api.attempts.add(agent.id, attempts - was.attempts);
        }
        if ok > was.ok {
            api.calls_ok.add(agent.id, ok - was.ok);
        }
        held.reported = Reported { attempts, ok };
    }

    /// Counts a failed attempt in the budget's stats, after the attempts
    /// the agent holds, so a reader never sees more errors than attempts.
    pub(super) fn record_api_error(&self, kind: ErrorKind, held: &mut Held<U>, agent: &AgentStats) {
        self.record_calls(held, agent);
        self.budget.stats.record_error(kind);
    }

    /// Ends an item that gave up: failed (counted, with its error and
    /// attempts) or cancelled.
    pub(super) async fn end(&self, id: u64, result: CallError) {
        match result {
            CallError::Cancelled => self.end_cancelled(id).await,
            CallError::Failed(error, attempts) => {
                self.stats.failed.add(1);
                Ended::failed(id, &self.name, error, attempts)
                    .send(&self.ended)
                    .await;
            }
        }
    }

    async fn end_cancelled(&self, id: u64) {
        self.stats.cancelled.add(1);
        Ended::cancelled(id).send(&self.ended).await;
    }
}
