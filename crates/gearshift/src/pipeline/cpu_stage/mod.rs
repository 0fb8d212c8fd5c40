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

mod start;
mod worker;

pub(crate) use self::start::start;
pub(crate) use self::worker::spawn_forwarder;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::sync::shutdown::Signal;
use tokio::sync::watch;
use tokio::time::Instant;

use super::item::{Ended, EndedTx, Item};
use super::link::{BatchReceiver, Outlet};
use crate::control::settings::Live;
use crate::error::StageError;
use crate::outcome::ItemId;
use crate::stats::counters::StageStats;
use crate::sync::gate::{Gate, GatePermit};

/// A batch's results on their way to the forwarder, with the batch's permit.
pub(crate) struct Done<U> {
    outs: Vec<Item<U>>,
    ended: Vec<Ended>,
    permit: GatePermit,
}

/// The stage function, boxed: one indirect call per item is noise next to
/// the work, and it keeps the stage's types simple. It takes the value and
/// the item's id (which only `Pipeline::cpu_with` hands on).
pub(crate) type CpuFn<T, U> = Box<dyn Fn(T, ItemId) -> Result<U, StageError> + Send + Sync>;

/// Everything the batcher and the batches share.
pub(crate) struct CpuCore<T, U> {
    /// The stage's index in the pipeline.
    pub(crate) index: usize,
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
        mut config: watch::Receiver<Live>,
    ) {
        self.set_workers(config.borrow_and_update().workers(self.index));
        // Items taken from the input and not yet queued for the pool: the
        // next batch, and what arrived beyond its size.
        let mut carry: Vec<Item<T>> = Vec::new();
        loop {
            let (most, wait) = {
                let live = config.borrow();
                (
                    live.items_per_batch(self.index),
                    live.batch_wait(self.index),
                )
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
                            self.set_workers(config.borrow_and_update().workers(self.index));
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
                self.set_workers(config.borrow_and_update().workers(self.index));
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
        self.stats.capacity.set(workers);
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
