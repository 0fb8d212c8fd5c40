//! The IO stage: a supervisor that keeps `round(agents_per_core x cores)`
//! agents (tokio tasks) alive, and the agents, which take items from the
//! input channel, call the stage function under the API semaphore with a
//! timeout, retries with backoff and the stage-wide `Retry-After` pause, and
//! pass results on. Results bound for a stage that takes them in bulk wait
//! in the agent's outbox until it holds `items_per_batch`, the agent is about
//! to wait (for an item, or for a call that is not done at once), the next
//! stage has no room for them (then the agent waits before its next call, as
//! backpressure), or it stops: one channel operation per batch when calls are
//! instant, and no result held back behind a call or a wait that takes time.
//!
//! Every wait of a call (for a permit, the remote's pause, the rate limit, a
//! backoff) ends early on an abort and on the item's deadline. An agent that
//! panics anyway (a bug in gearshift, or a user's `Clone` or error
//! conversion that panics outside the stage function) ends every item it
//! holds as `Failed` and is replaced, so no item is lost with it.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::time::Duration;

use backon::BackoffBuilder;
use futures::FutureExt;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::Instrument;

use super::item::{Ended, EndedTx, Item, discard_after_panic, panic_message};
use super::link::{self, Outlet};
use crate::config::{Config, RetryPolicy};
use crate::error::{ErrorKind, StageError};
use crate::outcome::ItemId;
use crate::stats::counters::{AgentStats, StageStats};
use crate::sync::gate::{Gate, GateRef, Kept};
use crate::sync::pause::Pause;
use crate::sync::rate::RateLimit;
use crate::sync::roster::Roster;
use crate::sync::shutdown::Signal;

/// How an IO stage turns what agents take from the channel into calls.
pub(crate) trait Unit<T, U>: Send + Sync + 'static {
    /// Processes `first` (and, for batch calls, more items the agent takes),
    /// passing results on through what the agent holds.
    fn process<'a>(
        &'a self,
        core: &'a IoCore<T, U>,
        first: Item<T>,
        agent: &'a AgentStats,
        held: &'a mut Held<U>,
    ) -> impl Future<Output = ()> + Send + 'a;
}

/// What an agent keeps to itself between items, so that the per-item path
/// touches nothing shared that it can put off: results waiting to be passed
/// on, call latencies waiting to be recorded, the API permit of its last
/// call (while its next item is ready and permits are free), and its last
/// clock read. Everything is given back before the agent waits.
pub(crate) struct Held<U> {
    /// Items taken and not yet passed on or ended: failed if the agent panics.
    in_hand: Vec<ItemId>,
    outbox: Vec<Item<U>>,
    latencies: Vec<Duration>,
    permit: Option<Kept>,
    /// The agent's last clock read, refreshed after anything that may wait:
    /// the end of one call starts the clock of the next item and call.
    now: Instant,
}

/// Call latencies an agent records at once, at the latest.
const LATENCIES_HELD: usize = 64;

impl<U> Held<U> {
    fn new() -> Self {
        Held {
            in_hand: Vec::new(),
            outbox: Vec::new(),
            latencies: Vec::with_capacity(LATENCIES_HELD),
            permit: None,
            now: Instant::now(),
        }
    }
}

/// One call per item.
pub(crate) struct Single<F>(pub(crate) F);

/// One call per batch of up to `max` items.
pub(crate) struct Batched<F> {
    pub(crate) f: F,
    pub(crate) max: usize,
}

/// The API permit a call runs under.
enum CallPermit<'a> {
    Taken(GateRef<'a>),
    Kept(Kept),
}

impl CallPermit<'_> {
    /// Keeps the permit for the agent's next call, if that starves nobody.
    fn keep(self, gate: &Arc<Gate>) -> Option<Kept> {
        match self {
            CallPermit::Taken(permit) => permit.keep(gate),
            CallPermit::Kept(kept) => kept.keep(),
        }
    }
}

/// Why a call gave up.
pub(crate) enum CallError {
    Failed(StageError, u32),
    Cancelled,
}

/// What ended a wait before it was over.
enum Interrupted {
    Aborted,
    Deadline,
}

/// Everything an IO stage's agents share.
pub(crate) struct IoCore<T, U> {
    pub(crate) name: Arc<str>,
    pub(crate) input: link::Receiver<Item<T>>,
    pub(crate) output: Outlet<U>,
    /// Results an agent keeps before passing them on in one batch (when the
    /// next stage takes batches): `items_per_batch`, live.
    pub(crate) out_batch: AtomicUsize,
    pub(crate) ended: EndedTx,
    pub(crate) stats: Arc<StageStats>,
    pub(crate) roster: Arc<Roster>,
    pub(crate) permits: Arc<Gate>,
    pub(crate) pause: Pause,
    pub(crate) rate: RateLimit,
    pub(crate) shrink: Notify,
    pub(crate) abort: Signal,
    pub(crate) retry: RetryPolicy,
    /// The longest pause a remote's `Retry-After` may impose.
    pub(crate) max_pause: Duration,
    pub(crate) api_timeout: Duration,
    pub(crate) item_deadline: Option<Duration>,
    /// Whether this is the first stage: it starts each item's clock when it
    /// takes the item, so time queued behind the source is not counted.
    pub(crate) first: bool,
}

/// Why an agent stopped.
enum Exit {
    Retired,
    InputClosed,
    /// It panicked; its items were failed, and a new agent takes its place.
    Panicked,
}

/// Runs the stage until its input is closed and drained: applies
/// configuration changes (agents, permits, rate) and spawns agents.
pub(crate) async fn supervise<T, U, W>(
    core: Arc<IoCore<T, U>>,
    unit: Arc<W>,
    mut config: watch::Receiver<Config>,
) where
    T: Clone + Send + 'static,
    U: Send + 'static,
    W: Unit<T, U>,
{
    let mut agents = JoinSet::new();
    let mut next_id = 0;
    let mut input_done = false;
    let mut watching = true;
    loop {
        if watching {
            let c = config.borrow_and_update();
            let target = c.total_agents();
            let shrinking = target < core.roster.target();
            core.roster.set_target(target);
            core.permits.resize(c.total_api_permits());
            core.rate.set(c.rate_limit);
            core.out_batch.store(c.items_per_batch, Ordering::Relaxed);
            if shrinking {
                core.shrink.notify_waiters();
            }
        }
        while !input_done && core.roster.try_enlist() {
            let span = tracing::debug_span!("agent", stage = %core.name, agent = next_id);
            agents.spawn(agent(Arc::clone(&core), Arc::clone(&unit), next_id).instrument(span));
            next_id += 1;
        }
        tokio::select! {
            changed = config.changed(), if watching => watching = changed.is_ok(),
            joined = agents.join_next() => match joined {
                Some(Ok(Exit::InputClosed)) => input_done = true,
                Some(Ok(Exit::Retired | Exit::Panicked)) => {}
                Some(Err(e)) => {
                    // Agents catch every panic, their own included: this is
                    // a task cancelled by the runtime shutting down.
                    tracing::error!(stage = %core.name, error = %e, "agent task failed");
                    core.roster.leave();
                }
                None => break,
            },
        }
        if input_done && agents.is_empty() {
            break;
        }
    }
}

fn leave<T, U>(core: &IoCore<T, U>, stats: &AgentStats) -> Exit {
    core.roster.leave();
    core.stats.fold_agent(stats, false);
    Exit::InputClosed
}

fn retire<T, U>(core: &IoCore<T, U>, stats: &AgentStats, id: usize) -> Exit {
    stats
        .retired
        .store(true, std::sync::atomic::Ordering::Relaxed);
    core.stats.fold_agent(stats, true);
    tracing::debug!(stage = %core.name, agent = id, "agent retired");
    Exit::Retired
}

async fn agent<T, U, W>(core: Arc<IoCore<T, U>>, unit: Arc<W>, id: usize) -> Exit
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
    /// Calls `f` on `input` until it succeeds, attempts run out, the item's
    /// deadline passes, or the pipeline is aborted.
    pub(crate) async fn call<I, O, F, Fut, E>(
        &self,
        input: I,
        f: &F,
        agent: &AgentStats,
        held: &mut Held<U>,
    ) -> Result<O, CallError>
    where
        I: Clone,
        F: Fn(I) -> Fut,
        Fut: Future<Output = Result<O, E>>,
        E: Into<StageError>,
    {
        let mut input = Some(input);
        let mut backoff = None;
        // Validated at most a year, so this only fails on a clock near its end.
        let deadline = self.item_deadline.and_then(|d| held.now.checked_add(d));
        let mut attempt = 0;
        let mut last_error: Option<StageError> = None;
        loop {
            // Each wait polls the ready case first, so the abort signal is
            // only registered (which takes a lock) when the agent must wait.
            if self.abort.is_set() {
                return Err(CallError::Cancelled);
            }
            // Backpressure: no new call while the next stage has no room
            // for what the outbox holds.
            if let Outlet::Batches(tx) = &self.output
                && !held.outbox.is_empty()
                && !tx.has_room(held.outbox.len())
            {
                self.flush(held, agent).await;
            }
            let interrupted =
                |why, waiting_for| self.interrupted(why, waiting_for, attempt, last_error.as_ref());
            let permit = match held.permit.take() {
                Some(kept) if kept.still_ours() => CallPermit::Kept(kept),
                kept => {
                    drop(kept);
                    match self.permits.try_acquire_ref() {
                        Some(permit) => CallPermit::Taken(permit),
                        None => {
                            self.flush(held, agent).await;
                            let permit = self
                                .wait(self.permits.acquire_ref(), deadline)
                                .await
                                .map_err(|why| interrupted(why, "an API permit"))?;
                            held.now = Instant::now();
                            CallPermit::Taken(permit)
                        }
                    }
                }
            };
            // The pause is checked after the permit, right before the call:
            // a pause that began while this agent waited for a permit holds.
            if self.pause.is_on(held.now) || self.rate.is_limited() {
                if let (Some(until), Some(d)) = (self.pause.until(), deadline)
                    && until >= d
                {
                    return Err(interrupted(Interrupted::Deadline, "the remote's pause"));
                }
                self.flush(held, agent).await;
                let paced = async {
                    self.pause.wait().await;
                    self.rate.ready().await;
                    self.pause.wait().await;
                };
                self.wait(paced, deadline)
                    .await
                    .map_err(|why| interrupted(why, "the remote's pause or the rate limit"))?;
                held.now = Instant::now();
            }
            attempt += 1;
            let last = attempt >= self.retry.max_attempts;
            let started = held.now;
            let timeout = match deadline {
                Some(d) => self.api_timeout.min(d.saturating_duration_since(started)),
                None => self.api_timeout,
            };
            let arg = if last { input.take() } else { input.clone() }
                .expect("input is kept until the last attempt");
            let mut call = pin!(AssertUnwindSafe(f(arg)).catch_unwind());
            // A call done at once needs no timer. One that is not is the
            // moment to pass on what the outbox holds, while it runs. The
            // flush is never dropped halfway (it owns a batch): it sees an
            // abort itself, and the call ends with `None` on one.
            let (result, ended) = match futures::poll!(call.as_mut()) {
                Poll::Ready(result) => (Ok(result), Instant::now()),
                Poll::Pending => {
                    let timed = async {
                        tokio::select! {
                            biased;
                            result = tokio::time::timeout_at(started + timeout, call) => {
                                Some((result, Instant::now()))
                            }
                            _ = self.abort.triggered() => None,
                        }
                    };
                    match futures::join!(timed, self.flush(held, agent)).0 {
                        Some(done) => done,
                        None => return Err(CallError::Cancelled),
                    }
                }
            };
            // The call's own time, not a flush it waited for (a flush that
            // blocked has read the clock after it).
            let took = ended - started;
            held.now = held.now.max(ended);
            if matches!(result, Ok(Ok(Ok(_)))) {
                held.permit = permit.keep(&self.permits);
            } else {
                drop(permit);
            }
            agent.api_nanos.add_time(took);
            agent.attempts.add(1);
            let error = match result {
                Ok(Ok(Ok(out))) => {
                    held.latencies.push(took);
                    if held.latencies.len() >= LATENCIES_HELD {
                        self.record_latencies(held, agent);
                    }
                    agent.processed.add(1);
                    return Ok(out);
                }
                Ok(Ok(Err(e))) => e.into(),
                Ok(Err(panic)) => StageError::msg(ErrorKind::Panic, panic_message(&*panic)),
                Err(_) => StageError::msg(
                    ErrorKind::Timeout,
                    format!("attempt timed out after {timeout:?}"),
                ),
            };
            agent.errors.add(1);
            self.stats.record_error(error.kind());
            if let Some(asked) = error.retry_after() {
                self.pause_for(asked);
            }
            if last || !self.retry.should_retry(&error) {
                tracing::debug!(stage = %self.name, attempts = attempt, error = %error, "giving up on item");
                return Err(CallError::Failed(error, attempt));
            }
            let backoff = backoff.get_or_insert_with(|| self.backoff());
            let delay = backoff.next().unwrap_or(self.retry.max_backoff);
            // No retry that could not start before the deadline.
            let retry_at = Instant::now().checked_add(delay);
            if let Some(d) = deadline
                && retry_at.is_none_or(|at| at >= d)
            {
                tracing::debug!(stage = %self.name, attempts = attempt, error = %error, "giving up on item: no time left for a retry");
                return Err(CallError::Failed(error, attempt));
            }
            agent.retries.add(1);
            self.stats.retries.add(1);
            tracing::trace!(stage = %self.name, attempt, delay_ms = delay.as_millis() as u64, error = %error, "retrying");
            last_error = Some(error);
            self.flush(held, agent).await;
            let slept = match retry_at {
                Some(at) => self.wait(tokio::time::sleep_until(at), deadline).await,
                None => self.wait(std::future::pending::<()>(), deadline).await,
            };
            slept
                .map_err(|why| self.interrupted(why, "a backoff", attempt, last_error.as_ref()))?;
            held.now = Instant::now();
        }
    }

    /// Waits for `wait` unless the pipeline is aborted or the item's
    /// deadline passes first.
    async fn wait<R>(
        &self,
        wait: impl Future<Output = R>,
        deadline: Option<Instant>,
    ) -> Result<R, Interrupted> {
        let deadline = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = self.abort.triggered() => Err(Interrupted::Aborted),
            r = wait => Ok(r),
            _ = deadline => Err(Interrupted::Deadline),
        }
    }

    /// The outcome of a call whose wait was cut short: cancelled on an
    /// abort, failed as a timeout (naming the wait and the last error) when
    /// the item's deadline passed.
    fn interrupted(
        &self,
        why: Interrupted,
        waiting_for: &str,
        attempts: u32,
        last_error: Option<&StageError>,
    ) -> CallError {
        if let Interrupted::Aborted = why {
            return CallError::Cancelled;
        }
        let limit = self.item_deadline.unwrap_or_default();
        let mut msg = format!("item deadline of {limit:?} passed while waiting for {waiting_for}");
        if let Some(e) = last_error {
            msg.push_str(&format!(" (last error: {e})"));
        }
        tracing::debug!(stage = %self.name, attempts, error = %msg, "giving up on item");
        CallError::Failed(StageError::msg(ErrorKind::Timeout, msg), attempts)
    }

    /// Pauses every agent of the stage for what the remote asked, cut to
    /// `max_pause`: a header is outside input, and an absurd one must not
    /// stall the stage for ever.
    fn pause_for(&self, asked: Duration) {
        let pause = asked.min(self.max_pause);
        if pause < asked {
            tracing::info!(stage = %self.name, asked_s = asked.as_secs(), max_pause_s = pause.as_secs(), "remote asked for a pause longer than max_pause; cut to max_pause");
        }
        self.pause.extend(pause);
        let nanos = u64::try_from(pause.as_nanos()).unwrap_or(u64::MAX);
        self.stats
            .retry_after_max_nanos
            .fetch_max(nanos, std::sync::atomic::Ordering::Relaxed);
        tracing::info!(stage = %self.name, pause_ms = pause.as_millis() as u64, "remote asked to retry after; stage paused");
    }

    fn record_latencies(&self, held: &mut Held<U>, agent: &AgentStats) {
        if !held.latencies.is_empty() {
            self.stats
                .latency
                .record_all(agent.id, held.latencies.drain(..));
        }
    }

    /// The retry delays, built only once an attempt has failed.
    fn backoff(&self) -> backon::ExponentialBackoff {
        let backoff = backon::ExponentialBuilder::default()
            .with_min_delay(self.retry.initial_backoff)
            .with_max_delay(self.retry.max_backoff)
            .with_max_times(self.retry.max_attempts as usize);
        if self.retry.jitter {
            backoff.with_jitter().build()
        } else {
            backoff.build()
        }
    }

    /// Passes a result on: at once to a stage that takes items one by one,
    /// through the outbox to one that takes batches.
    pub(crate) async fn pass(&self, item: Item<U>, agent: &AgentStats, held: &mut Held<U>) {
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

    /// Before the agent waits: records the latencies it holds, and passes
    /// on what the outbox holds as one batch, waiting (and counting the
    /// wait) if the channel is full.
    pub(crate) async fn flush(&self, held: &mut Held<U>, agent: &AgentStats) {
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
        held.permit = None;
        let blocked = Instant::now();
        let sent = tokio::select! {
            biased;
            _ = self.abort.triggered() => false,
            sent = tx.send(batch) => sent.is_ok(),
        };
        held.now = Instant::now();
        agent.blocked_put_nanos.add_time(held.now - blocked);
        if sent {
            agent.passed.add(n);
        } else {
            for id in ids {
                self.end_cancelled(id).await;
            }
        }
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
        held.permit = None;
        let blocked = Instant::now();
        let sent = tokio::select! {
            biased;
            _ = self.abort.triggered() => false,
            sent = tx.send(item) => sent.is_ok(),
        };
        held.now = Instant::now();
        agent.blocked_put_nanos.add_time(held.now - blocked);
        if sent {
            agent.passed.add(1);
        } else {
            self.end_cancelled(id).await;
        }
    }

    pub(crate) async fn end(&self, id: u64, result: CallError) {
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

impl<T, U, F, Fut, E> Unit<T, U> for Single<F>
where
    T: Clone + Send + 'static,
    U: Send + 'static,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<U, E>> + Send + 'static,
    E: Into<StageError> + Send + 'static,
{
    async fn process(
        &self,
        core: &IoCore<T, U>,
        item: Item<T>,
        agent: &AgentStats,
        held: &mut Held<U>,
    ) {
        agent.taken.add(1);
        let (id, born) = (item.id, item.born);
        if core.abort.is_set() {
            return core.end(id, CallError::Cancelled).await;
        }
        held.in_hand.push(id);
        let result = core.call(item.value, &self.0, agent, held).await;
        held.in_hand.clear();
        match result {
            Ok(value) => core.pass(Item { id, born, value }, agent, held).await,
            Err(e) => core.end(id, e).await,
        }
    }
}

impl<T, U, F, Fut, E> Unit<T, U> for Batched<F>
where
    T: Clone + Send + Sync + 'static,
    U: Send + 'static,
    F: Fn(Vec<T>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<U>, E>> + Send + 'static,
    E: Into<StageError> + Send + 'static,
{
    async fn process(
        &self,
        core: &IoCore<T, U>,
        first: Item<T>,
        agent: &AgentStats,
        held: &mut Held<U>,
    ) {
        let mut keys = vec![(first.id, first.born)];
        let mut values = vec![first.value];
        while values.len() < self.max {
            let Ok(item) = core.input.try_recv() else {
                break;
            };
            keys.push((item.id, item.born));
            values.push(item.value);
        }
        agent.taken.add(keys.len() as u64);
        // Reversed, so each item's id is popped as the item is passed on or
        // ended, in order.
        held.in_hand.extend(keys.iter().rev().map(|(id, _)| *id));
        let result = if core.abort.is_set() {
            Err(CallError::Cancelled)
        } else {
            core.call(values, &self.f, agent, held).await
        };
        match result {
            Ok(outs) if outs.len() == keys.len() => {
                for ((id, born), value) in keys.into_iter().zip(outs) {
                    held.in_hand.pop();
                    core.pass(Item { id, born, value }, agent, held).await;
                }
            }
            Ok(outs) => {
                let msg = format!(
                    "batch call returned {} outputs for {} items",
                    outs.len(),
                    keys.len()
                );
                for (id, _) in keys {
                    held.in_hand.pop();
                    let error = StageError::msg(ErrorKind::BadPayload, msg.clone());
                    core.end(id, CallError::Failed(error, 1)).await;
                }
            }
            Err(e) => {
                for (id, _) in keys {
                    held.in_hand.pop();
                    let e = match &e {
                        CallError::Cancelled => CallError::Cancelled,
                        CallError::Failed(err, n) => CallError::Failed(err.clone(), *n),
                    };
                    core.end(id, e).await;
                }
            }
        }
    }
}
