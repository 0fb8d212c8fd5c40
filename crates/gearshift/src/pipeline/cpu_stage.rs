//! The CPU stage: a batcher task groups items and queues each batch for the
//! rayon pool with a permit from the gate of batch slots (two per worker). A
//! batch is queued at once with what is there while a slot is free; it grows
//! (up to `items_per_batch`, and to about 250 µs of work at the measured
//! cost per item) only while every slot is taken. Up to `workers` jobs on
//! the pool drain the queue (a job ends when the queue is empty, so it never
//! waits on a channel). A job runs each batch and hands the results to a
//! forwarder thread over a crossbeam channel: rayon threads only ever run
//! work. The permit travels with the results and is released once they are
//! passed on, which bounds memory by 2 x `workers` batches. Failures and
//! cancellations travel the same way: sent at once while the ended-items
//! channel has room, else by the forwarder, so a slow dead-letter sink
//! pushes back without blocking a rayon thread.
//!
//! A job that panics outside the stage function (a bug in gearshift, or a
//! user's `Drop` that panics) ends the item it was running and the rest of
//! its batch as `Failed`, and goes on with the next batch.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::sync::shutdown::Signal;
use tokio::sync::watch;
use tokio::time::Instant;

use super::item::{Ended, EndedTx, Item, discard_after_panic, panic_message};
use super::link::{BatchReceiver, Outlet, Unsent};
use crate::config::Config;
use crate::error::{ErrorKind, StageError};
use crate::stats::counters::StageStats;
use crate::sync::gate::{Gate, GatePermit};

/// A batch's results on their way to the forwarder, with the batch's permit.
pub(crate) struct Done<U> {
    outs: Vec<Item<U>>,
    ended: Vec<Ended>,
    permit: GatePermit,
}

/// The stage function, boxed: one indirect call per item is noise next to
/// the work, and it keeps the stage's types simple.
pub(crate) type CpuFn<T, U> = Box<dyn Fn(T) -> Result<U, StageError> + Send + Sync>;

/// Everything the batcher and the batches share.
pub(crate) struct CpuCore<T, U> {
    pub(crate) name: Arc<str>,
    pub(crate) f: CpuFn<T, U>,
    pub(crate) input: BatchReceiver<T>,
    pub(crate) ended: EndedTx,
    pub(crate) stats: Arc<StageStats>,
    /// Batches allowed in the stage at once (queued for the pool, running or
    /// being forwarded): [`BATCHES_PER_WORKER`] per worker, so a worker that
    /// finishes a batch finds the next one queued instead of waiting for the
    /// batcher to wake.
    pub(crate) slots: Arc<Gate>,
    /// Workers: rayon jobs draining the queue at once.
    pub(crate) workers: Arc<AtomicUsize>,
    pub(crate) abort: Signal,
    pub(crate) pool: Arc<rayon::ThreadPool>,
    /// The next stage's input, for results that fit without waiting.
    pub(crate) output: Arc<Outlet<U>>,
    /// Batches with their permits, waiting for a rayon job.
    pub(crate) ready: (
        crossbeam_channel::Sender<Ready<T>>,
        crossbeam_channel::Receiver<Ready<T>>,
    ),
    /// Rayon jobs draining `ready`.
    pub(crate) active: AtomicUsize,
    /// Whether this is the first stage (see `IoCore::first`).
    pub(crate) first: bool,
    /// Moving average of the CPU time per item, ns (0 before the first
    /// batch): sizes batches.
    pub(crate) item_nanos: AtomicU64,
}

/// Batches per worker that may be queued or running.
pub(crate) const BATCHES_PER_WORKER: usize = 2;

/// The CPU time a batch aims at: enough to amortize the hand-off (a few
/// microseconds per batch), short enough not to hold items back.
const BATCH_TARGET: Duration = Duration::from_micros(250);

/// Items whose measured cost is below this are timed as a batch, not one by
/// one: two clock reads per item would cost more than a no-op's work.
const TIME_EACH_ITEM_FROM: Duration = Duration::from_micros(20);

/// A batch waiting for a worker, with the permit it holds.
pub(crate) type Ready<T> = (Vec<Item<T>>, GatePermit);

/// Starts the forwarder thread and returns the sender rayon jobs use.
pub(crate) fn spawn_forwarder<U: Send + 'static>(
    name: &str,
    output: Arc<Outlet<U>>,
    ended: EndedTx,
    stats: Arc<StageStats>,
) -> std::io::Result<crossbeam_channel::Sender<Done<U>>> {
    let (tx, rx) = crossbeam_channel::unbounded::<Done<U>>();
    std::thread::Builder::new()
        .name(format!("gearshift-fwd-{name}"))
        .spawn(move || {
            for Done {
                outs,
                ended: gone,
                permit,
            } in rx
            {
                let n = outs.len();
                let blocked = std::time::Instant::now();
                // The output only closes if the collector is gone, which
                // happens only after every stage has finished.
                let unsent = output.send_all_blocking(outs).err().map_or(0, |u| u.len());
                gone.into_iter().for_each(|e| e.send_blocking(&ended));
                stats.blocked_put_nanos.add_time(blocked.elapsed());
                stats.items_out.add((n - unsent) as u64);
                drop(permit);
            }
        })?;
    Ok(tx)
}

impl<T, U> CpuCore<T, U>
where
    T: Send + 'static,
    U: Send + 'static,
{
    /// Forms batches and hands them to the pool until the input is closed
    /// and drained.
    pub(crate) async fn run(
        self: Arc<Self>,
        results: crossbeam_channel::Sender<Done<U>>,
        mut config: watch::Receiver<Config>,
    ) {
        self.set_workers(config.borrow_and_update().workers);
        // Items taken from the input and not yet queued for the pool: the
        // next batch, and what arrived beyond its size.
        let mut carry: Vec<Item<T>> = Vec::new();
        loop {
            let (most, wait) = {
                let c = config.borrow();
                (c.items_per_batch, c.batch_wait)
            };
            let size = self.batch_size(most);
            if carry.is_empty() {
                let Some(first) = self.next_first().await else {
                    return;
                };
                carry = first;
                self.fill(&mut carry, size, wait).await;
            } else {
                self.top_up(&mut carry, size);
            }
            // Wait for a batch slot, topping the batch up meanwhile: a batch
            // is queued at once while a slot is free and grows only while
            // none is.
            let mut open = true;
            let permit = loop {
                tokio::select! {
                    biased;
                    permit = self.slots.acquire() => break Some(permit),
                    changed = config.changed() => {
                        if changed.is_ok() {
                            self.set_workers(config.borrow_and_update().workers);
                        }
                    }
                    _ = self.abort.triggered() => break None,
                    more = self.input.recv(), if open && carry.len() < size => match more {
                        Ok(more) => {
                            absorb(&mut carry, more);
                            self.top_up(&mut carry, size);
                        }
                        Err(_) => open = false,
                    },
                }
            };
            let Some(permit) = permit else {
                self.stats.items_in.add(carry.len() as u64);
                for item in carry.drain(..) {
                    self.cancel(item.id).await;
                }
                continue;
            };
            // The cost per item may have become known while the batch
            // waited: the part beyond the size it has now waits for the next.
            let size = self.batch_size(most);
            let mut batch = if carry.len() > size {
                let rest = carry.split_off(size);
                std::mem::replace(&mut carry, rest)
            } else {
                std::mem::take(&mut carry)
            };
            self.stats.items_in.add(batch.len() as u64);
            self.stats.observe_queue(self.input.len());
            if self.first {
                let now = Instant::now();
                batch.iter_mut().for_each(|item| item.born = now);
            }
            if config.has_changed().unwrap_or(false) {
                self.set_workers(config.borrow_and_update().workers);
            }
            // The permit bounds the queue: at most `BATCHES_PER_WORKER x
            // workers` batches are queued, running, or waiting to be
            // forwarded.
            let _ = self.ready.0.send((batch, permit));
            self.ensure_job(&results);
        }
    }

    /// Sets the workers, and the batch slots that go with them.
    fn set_workers(&self, workers: usize) {
        self.workers.store(workers, Ordering::Relaxed);
        self.slots
            .resize(workers.saturating_mul(BATCHES_PER_WORKER));
    }

    /// Counts one more job draining the queue, unless `workers` already are.
    fn claim_job(&self) -> bool {
        self.active
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |a| {
                (a < self.workers.load(Ordering::Relaxed).max(1)).then_some(a + 1)
            })
            .is_ok()
    }

    /// Starts a rayon job unless enough are already draining the queue.
    fn ensure_job(self: &Arc<Self>, results: &crossbeam_channel::Sender<Done<U>>) {
        if self.claim_job() {
            let core = Arc::clone(self);
            let results = results.clone();
            self.pool.spawn(move || core.drain_ready(&results));
        }
    }

    /// A rayon job: runs queued batches until none is left, then ends (it
    /// never waits on a channel). A batch queued while it was ending is
    /// picked up by the re-check.
    fn drain_ready(self: &Arc<Self>, results: &crossbeam_channel::Sender<Done<U>>) {
        loop {
            while let Ok((batch, permit)) = self.ready.1.try_recv() {
                self.run_batch(batch, permit, results);
            }
            self.active.fetch_sub(1, Ordering::SeqCst);
            if self.ready.1.is_empty() || !self.claim_job() {
                return;
            }
        }
    }

    /// Waits for the first items of a batch; `None` once the input is
    /// closed and drained, or after an abort (which cancels the rest).
    async fn next_first(&self) -> Option<Vec<Item<T>>> {
        let waited = Instant::now();
        if self.abort.is_set() {
            self.cancel_rest().await;
            return None;
        }
        let first = match self.input.try_recv() {
            Ok(items) => Some(items),
            Err(async_channel::TryRecvError::Closed) => None,
            Err(async_channel::TryRecvError::Empty) => tokio::select! {
                biased;
                first = self.input.recv() => first.ok(),
                _ = self.abort.triggered() => {
                    self.cancel_rest().await;
                    None
                }
            },
        };
        self.stats.blocked_get_nanos.add_time(waited.elapsed());
        first
    }

    /// Items per batch now: at most `most`, and no more than fit in
    /// [`BATCH_TARGET`] at the measured cost per item. Batching amortizes a
    /// hand-off of microseconds; items of milliseconds gain nothing from it,
    /// and each would wait for the ones ahead of it in its batch.
    fn batch_size(&self, most: usize) -> usize {
        match self.item_nanos.load(Ordering::Relaxed) {
            0 => most,
            nanos => (BATCH_TARGET.as_nanos() as u64 / nanos).clamp(1, most as u64) as usize,
        }
    }

    /// Fills a batch: takes what is already queued, then, if `wait` is not
    /// zero, waits for more until the oldest item has waited `wait`.
    async fn fill(&self, batch: &mut Vec<Item<T>>, size: usize, wait: Duration) {
        let flush_at = Instant::now() + wait;
        self.top_up(batch, size);
        while batch.len() < size && !wait.is_zero() {
            match tokio::time::timeout_at(flush_at, self.input.recv()).await {
                Ok(Ok(more)) => {
                    absorb(batch, more);
                    self.top_up(batch, size);
                }
                _ => break,
            }
        }
    }

    /// Adds what is already queued, until the batch holds `size` items.
    fn top_up(&self, batch: &mut Vec<Item<T>>, size: usize) {
        while batch.len() < size {
            match self.input.try_recv() {
                Ok(more) => absorb(batch, more),
                Err(_) => break,
            }
        }
    }

    /// Runs on a rayon worker: every item of the batch, then the hand-off.
    fn run_batch(
        &self,
        batch: Vec<Item<T>>,
        permit: GatePermit,
        results: &crossbeam_channel::Sender<Done<U>>,
    ) {
        let started = std::time::Instant::now();
        let n = batch.len();
        let mut done = Done {
            outs: Vec::with_capacity(n),
            ended: Vec::new(),
            permit,
        };
        let mut rest = batch.into_iter();
        let mut running = None;
        let run = catch_unwind(AssertUnwindSafe(|| {
            self.run_items(&mut rest, &mut running, &mut done)
        }));
        if let Err(panic) = run {
            let panic = panic_message(&*panic);
            let rest = rest.map(|item| {
                discard_after_panic(item.value);
                item.id
            });
            let ids: Vec<_> = running.into_iter().chain(rest).collect();
            tracing::error!(stage = %self.name, error = %panic, items = ids.len(), "worker panicked outside the stage function; its items end as failed");
            let error = StageError::msg(ErrorKind::Panic, format!("worker {panic}"));
            for id in ids {
                self.stats.failed.add(1);
                done.ended
                    .push(Ended::failed(id, &self.name, error.clone(), 1));
            }
        }
        let busy = started.elapsed();
        self.stats.attempts.add(1);
        self.stats.busy_nanos.add_time(busy);
        self.observe_cost(busy, n);
        self.hand_off(done, results);
    }

    /// Runs the items of a batch, each into `done`. `running` names the
    /// item whose outcome is not yet in `done`, for a panic to fail it.
    fn run_items(
        &self,
        items: &mut std::vec::IntoIter<Item<T>>,
        running: &mut Option<u64>,
        done: &mut Done<U>,
    ) {
        let started = std::time::Instant::now();
        let n = items.len();
        // Items too cheap to time one by one share the batch's average.
        let time_each = match self.item_nanos.load(Ordering::Relaxed) {
            0 => true,
            nanos => nanos >= TIME_EACH_ITEM_FROM.as_nanos() as u64,
        };
        let mut times = Vec::with_capacity(if time_each { n } else { 0 });
        for Item { id, born, value } in items.by_ref() {
            *running = Some(id);
            if self.abort.is_set() {
                self.stats.cancelled.add(1);
                done.ended.push(Ended::cancelled(id));
                *running = None;
                drop(value);
                continue;
            }
            let t0 = time_each.then(std::time::Instant::now);
            let result = catch_unwind(AssertUnwindSafe(|| (self.f)(value)));
            if let Some(t0) = t0 {
                times.push(t0.elapsed());
            }
            let error = match result {
                Ok(Ok(value)) => {
                    done.outs.push(Item { id, born, value });
                    *running = None;
                    continue;
                }
                Ok(Err(e)) => e,
                Err(panic) => StageError::msg(ErrorKind::Panic, panic_message(&*panic)),
            };
            self.stats.record_error(error.kind());
            self.stats.failed.add(1);
            done.ended.push(Ended::failed(id, &self.name, error, 1));
            *running = None;
        }
        let worker = rayon::current_thread_index().unwrap_or(0);
        if time_each {
            self.stats.latency.record_all(worker, times);
        } else if n > 0 {
            let busy = started.elapsed();
            self.stats
                .latency
                .record_n(worker, busy / n as u32, n as u64);
        }
    }

    /// Passes results and ended items on directly while their channels have
    /// room, and hands the rest to the forwarder, which may block (rayon
    /// threads never do).
    fn hand_off(&self, mut done: Done<U>, results: &crossbeam_channel::Sender<Done<U>>) {
        let outs = std::mem::take(&mut done.outs);
        let n = outs.len();
        match self.output.try_send_all(outs) {
            Ok(()) => self.stats.items_out.add(n as u64),
            Err(Unsent::Full(rest) | Unsent::Closed(rest)) => {
                self.stats.items_out.add((n - rest.len()) as u64);
                done.outs = rest;
            }
        }
        let mut gone = std::mem::take(&mut done.ended).into_iter();
        for e in gone.by_ref() {
            if let Err(full) = self.ended.try_send(e) {
                done.ended.push(full.into_inner());
                break;
            }
        }
        done.ended.extend(gone);
        if !done.outs.is_empty() || !done.ended.is_empty() {
            // The forwarder outlives every job: it stops only once all
            // senders, including this job's, are gone.
            let _ = results.send(done);
        }
    }

    /// Folds a batch's cost per item into the moving average (1/8 weight)
    /// that sizes the next batches. Racing workers may lose an update,
    /// which only delays the average.
    fn observe_cost(&self, busy: Duration, items: usize) {
        if items == 0 {
            return;
        }
        let per_item = (busy.as_nanos() as u64 / items as u64).max(1);
        let old = self.item_nanos.load(Ordering::Relaxed);
        let new = if old == 0 {
            per_item
        } else {
            (old * 7 + per_item) / 8
        };
        self.item_nanos.store(new.max(1), Ordering::Relaxed);
    }

    /// After an abort: records every item still queued as cancelled.
    async fn cancel_rest(&self) {
        while let Ok(items) = self.input.recv().await {
            self.stats.items_in.add(items.len() as u64);
            for item in items {
                self.cancel(item.id).await;
            }
        }
    }

    async fn cancel(&self, id: u64) {
        self.stats.cancelled.add(1);
        Ended::cancelled(id).send(&self.ended).await;
    }
}

/// Appends `more` to `batch`, without a copy when the batch is empty.
fn absorb<T>(batch: &mut Vec<T>, mut more: Vec<T>) {
    if batch.is_empty() {
        *batch = more;
    } else {
        batch.append(&mut more);
    }
}
