//! A CPU stage's worker side: a rayon job runs a batch (every item, then
//! the hand-off), catching panics outside the stage function so that the
//! items of a panicked batch end as `Failed`; the forwarder thread passes on
//! what did not fit at once, and may block where rayon threads never do.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{CpuCore, Done, TIME_EACH_ITEM_FROM};
use crate::error::{ErrorKind, StageError};
use crate::pipeline::item::{Ended, EndedTx, Item, discard_after_panic, panic_message};
use crate::pipeline::link::{Outlet, Unsent};
use crate::stats::counters::StageStats;
use crate::sync::gate::GatePermit;

/// Starts the forwarder thread and returns the sender rayon jobs use.
pub(crate) fn spawn_forwarder<U: Send + 'static>(
    name: &str,
    output: Arc<Outlet<U>>,
    ended: EndedTx,
    stats: Arc<StageStats>,
) -> std::io::Result<crossbeam_channel::Sender<Done<U>>> {
    let (tx, rx) = crossbeam_channel::unbounded::<Done<U>>();
    std::thread::Builder::new()
        // A stage's name is the user's: a NUL in it would make the thread
        // builder panic.
        .name(format!("gearshift-fwd-{}", name.replace('\0', "?")))
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
    /// Runs on a rayon worker: every item of the batch, then the hand-off.
    pub(super) fn run_batch(
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
        for Item {
            id,
            born,
            attempts,
            value,
        } in items.by_ref()
        {
            *running = Some(id);
            if self.abort.is_set() {
                self.stats.cancelled.add(1);
                done.ended.push(Ended::cancelled(id));
                *running = None;
                drop(value);
                continue;
            }
            let t0 = time_each.then(std::time::Instant::now);
            let result = catch_unwind(AssertUnwindSafe(|| (self.f)(value, id)));
            if let Some(t0) = t0 {
                times.push(t0.elapsed());
            }
            let error = match result {
                Ok(Ok(value)) => {
                    // CPU stages add no attempts (see `Outcome::Ok`).
                    done.outs.push(Item {
                        id,
                        born,
                        attempts,
                        value,
                    });
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
}
