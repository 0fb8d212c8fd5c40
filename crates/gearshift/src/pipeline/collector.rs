//! The collector: the one place every item's outcome arrives, from the last
//! channel (successes) and from the ended-items channel (failures and
//! cancellations). It keeps the ledger, restores input order when asked, and
//! delivers outcomes to the user's stream, sink or dead-letter sink.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::Semaphore;

use super::item::{Ended, Item};
use super::shared::Shared;
use crate::config::OnError;
use crate::outcome::{Failure, ItemId, Outcome};
use crate::stats::report::Report;

/// Where outcomes go.
pub(crate) struct Outputs<T> {
    pub(crate) outcomes: Option<async_channel::Sender<Outcome<T>>>,
    pub(crate) dead_letter: Option<async_channel::Sender<Failure>>,
    /// Threads running the user's sinks; joined before the report is final.
    pub(crate) threads: Vec<std::thread::JoinHandle<()>>,
}

pub(crate) struct Collector<T> {
    pub(crate) shared: Arc<Shared>,
    pub(crate) main: async_channel::Receiver<Item<T>>,
    pub(crate) ended: async_channel::Receiver<Ended>,
    pub(crate) outputs: Outputs<T>,
    pub(crate) window: Option<Arc<Semaphore>>,
    pub(crate) on_error: OnError,
    /// Kept alive until every stage has finished.
    pub(crate) pool: Option<Arc<rayon::ThreadPool>>,
}

impl<T: Send + 'static> Collector<T> {
    pub(crate) async fn run(mut self) {
        let mut pending: BTreeMap<ItemId, Outcome<T>> = BTreeMap::new();
        let mut next_in_order: ItemId = 0;
        let (mut main_open, mut ended_open) = (true, true);
        loop {
            // Take what is ready without waiting; wait only when nothing is.
            let outcome = if let Ok(e) = self.ended.try_recv() {
                self.record_ended(e)
            } else if let Ok(item) = self.main.try_recv() {
                self.record_ok(item)
            } else {
                tokio::select! {
                    biased;
                    e = self.ended.recv(), if ended_open => match e {
                        Ok(e) => self.record_ended(e),
                        Err(_) => { ended_open = false; continue; }
                    },
                    m = self.main.recv(), if main_open => match m {
                        Ok(item) => self.record_ok(item),
                        Err(_) => { main_open = false; continue; }
                    },
                    else => break,
                }
            };
            // Items drained as cancelled after a stop took no permit; the
            // extra permits are harmless, as nothing is admitted any more.
            if let Some(gate) = &self.shared.in_flight {
                gate.release();
            }
            match self.window.clone() {
                None => self.deliver(outcome).await,
                Some(window) => {
                    pending.insert(outcome.id(), outcome);
                    while let Some(o) = pending.remove(&next_in_order) {
                        window.add_permits(1);
                        next_in_order += 1;
                        self.deliver(o).await;
                    }
                }
            }
        }
        // Only reachable with a bug upstream; deliver rather than lose.
        for (_, o) in std::mem::take(&mut pending) {
            tracing::error!(
                item = o.id(),
                "outcome delivered out of order: an earlier item has no outcome"
            );
            self.deliver(o).await;
        }
        self.finish().await;
    }

    fn record_ok(&self, item: Item<T>) -> Outcome<T> {
        self.shared.ledger.ok.add(1);
        self.shared.latency.record(item.born.elapsed());
        Outcome::Ok {
            id: item.id,
            value: item.value,
        }
    }

    fn record_ended(&self, e: Ended) -> Outcome<T> {
        let ledger = &self.shared.ledger;
        match e.failure {
            None => {
                ledger.cancelled.add(1);
                Outcome::Cancelled { id: e.id }
            }
            Some(failure) => {
                ledger.failed.add(1);
                if let Some(i) = crate::error::ErrorKind::ALL
                    .iter()
                    .position(|k| *k == failure.kind())
                {
                    ledger.by_kind[i].add(1);
                }
                tracing::debug!(item = failure.item, stage = %failure.stage, attempts = failure.attempts, error = %failure.error, "item failed");
                if self.on_error == OnError::Cancel {
                    self.shared.cancel();
                }
                Outcome::Failed(failure)
            }
        }
    }

    async fn deliver(&mut self, outcome: Outcome<T>) {
        let outcome = match (outcome, &self.outputs.dead_letter) {
            (Outcome::Failed(f), Some(tx)) => {
                if tx.send(f).await.is_err() {
                    self.outputs.dead_letter = None;
                }
                return;
            }
            (o, _) => o,
        };
        if let Some(tx) = &self.outputs.outcomes
            && tx.send(outcome).await.is_err()
        {
            // The user dropped the stream: outcomes are still counted.
            self.outputs.outcomes = None;
        }
    }

    async fn finish(self) {
        let Collector {
            shared,
            outputs,
            pool,
            ..
        } = self;
        drop(outputs.outcomes);
        drop(outputs.dead_letter);
        let threads = outputs.threads;
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                if t.join().is_err() {
                    tracing::error!("a sink panicked");
                }
            }
            drop(pool);
        })
        .await;
        let report = Report::build(&shared, true);
        tracing::info!(
            ok = report.ok,
            failed = report.failed,
            cancelled = report.cancelled,
            items_per_s = report.items_per_s,
            "pipeline finished"
        );
        shared.shutdown.done.trigger();
        shared.report.send_replace(Some(Arc::new(report)));
    }
}
