//! The collector: the one place every item's outcome arrives, from the last
//! channel (successes) and from the ended-items channel (failures and
//! cancellations). It keeps the ledger, restores input order when asked, and
//! delivers outcomes to the user's stream, sink or dead-letter sink.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::item::{Ended, Item};
use super::link::{self, BatchReceiver};
use crate::config::OnError;
use crate::control::shared::Shared;
use crate::outcome::{Failure, ItemId, Outcome};

/// Where outcomes go.
pub(crate) struct Outputs<T> {
    pub(crate) outcomes: Option<link::Sender<Outcome<T>>>,
    pub(crate) dead_letter: Option<link::Sender<Failure>>,
    /// Threads running the user's sinks; joined before the report is final.
    pub(crate) threads: Vec<std::thread::JoinHandle<()>>,
}

pub(crate) struct Collector<T> {
    pub(crate) shared: Arc<Shared>,
    pub(crate) main: BatchReceiver<T>,
    pub(crate) ended: async_channel::Receiver<Ended>,
    pub(crate) outputs: Outputs<T>,
    pub(crate) window: Option<Arc<Semaphore>>,
    pub(crate) on_error: OnError,
    /// Kept alive until every stage has finished.
    pub(crate) pool: Option<Arc<rayon::ThreadPool>>,
}

/// What the collector takes next.
enum Arrival<T> {
    Ended(Ended),
    /// Successes from the last stage, in one batch.
    Ok(Vec<Item<T>>),
}

/// Outcomes held back until the ones before them are out (ordered output).
struct Reorder<T> {
    window: Arc<Semaphore>,
    pending: BTreeMap<ItemId, Outcome<T>>,
    next: ItemId,
}

impl<T: Send + 'static> Collector<T> {
    pub(crate) async fn run(mut self) {
        let mut reorder = self.window.clone().map(|window| Reorder {
            window,
            pending: BTreeMap::new(),
            next: 0,
        });
        let (mut main_open, mut ended_open) = (true, true);
        loop {
            // Take what is ready without waiting; wait only when nothing is.
            let arrival = if let Ok(e) = self.ended.try_recv() {
                Arrival::Ended(e)
            } else if let Ok(items) = self.main.try_recv() {
                Arrival::Ok(items)
            } else {
                tokio::select! {
                    biased;
                    e = self.ended.recv(), if ended_open => match e {
                        Ok(e) => Arrival::Ended(e),
                        Err(_) => { ended_open = false; continue; }
                    },
                    m = self.main.recv(), if main_open => match m {
                        Ok(items) => Arrival::Ok(items),
                        Err(_) => { main_open = false; continue; }
                    },
                    else => break,
                }
            };
            match arrival {
                Arrival::Ended(e) => {
                    self.release_in_flight(1);
                    let outcome = self.record_ended(e);
                    self.settle(outcome, &mut reorder).await;
                }
                Arrival::Ok(items) => {
                    self.release_in_flight(items.len());
                    self.record_ok(&items);
                    if reorder.is_none() && self.outputs.outcomes.is_none() {
                        continue; // counted, and nobody takes them
                    }
                    for Item {
                        id,
                        attempts,
                        value,
                        ..
                    } in items
                    {
                        let ok = Outcome::Ok {
                            id,
                            value,
                            attempts,
                        };
                        self.settle(ok, &mut reorder).await;
                    }
                }
            }
        }
        // Only reachable with a bug upstream; deliver rather than lose.
        for (_, o) in reorder.map(|r| r.pending).unwrap_or_default() {
            tracing::error!(
                item = o.id(),
                "outcome delivered out of order: an earlier item has no outcome"
            );
            self.deliver(o).await;
        }
        self.finish().await;
    }

    /// Items drained as cancelled after a stop took no permit; the extra
    /// permits are harmless, as nothing is admitted any more.
    fn release_in_flight(&self, n: usize) {
        if let Some(gate) = &self.shared.in_flight {
            gate.release(n);
        }
    }

    /// Delivers an outcome, or holds it until the ones before it are out.
    async fn settle(&mut self, outcome: Outcome<T>, reorder: &mut Option<Reorder<T>>) {
        let Some(r) = reorder else {
            return self.deliver(outcome).await;
        };
        r.pending.insert(outcome.id(), outcome);
        while let Some(o) = r.pending.remove(&r.next) {
            r.window.add_permits(1);
            r.next += 1;
            self.deliver(o).await;
        }
    }

    /// Counts a batch of successes, and their latencies with one clock read.
    fn record_ok(&self, items: &[Item<T>]) {
        self.shared.ledger.ok.add(items.len() as u64);
        let now = Instant::now();
        self.shared
            .latency
            .record_all(items.iter().map(|i| now.saturating_duration_since(i.born)));
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
                ledger.by_kind.add(failure.kind());
                // Taken by the user's code (a dead-letter sink, or the
                // outcomes it reads): theirs to report; the summary at the
                // end counts it. Taken by nobody: a warning, or it would
                // be known only as a count.
                if self.outputs.dead_letter.is_some() || self.outputs.outcomes.is_some() {
                    tracing::debug!(item = failure.item, stage = %failure.stage, attempts = failure.attempts, kind = failure.kind().as_str(), error = %failure.error, "item failed");
                } else {
                    tracing::warn!(item = failure.item, stage = %failure.stage, attempts = failure.attempts, kind = failure.kind().as_str(), error = %failure.error, "item failed");
                }
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
        let failures_to = match (&outputs.dead_letter, &outputs.outcomes) {
            (Some(_), _) => "the dead-letter sink",
            (None, Some(_)) => "the outcomes",
            (None, None) => "nobody (each logged as a warning)",
        };
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
        let report = shared.report(true);
        if report.difference() != 0 {
            tracing::error!(
                taken = report.taken,
                outcomes = report.outcomes(),
                "items taken and outcomes recorded differ: a bug in gearshift"
            );
        }
        tracing::info!(
            ok = report.ok,
            failed = report.failed,
            cancelled = report.cancelled,
            items_per_s = crate::stats::rounded(report.items_per_s, 1),
            "pipeline finished"
        );
        if report.failed > 0 {
            let by_kind: Vec<String> = report
                .failures_by_kind
                .iter()
                .map(|(kind, n)| format!("{} {n}", kind.as_str()))
                .collect();
            tracing::info!(
                failed = report.failed,
                by_kind = %by_kind.join(", "),
                to = failures_to,
                "items failed"
            );
        }
        shared.shutdown.done.trigger();
        // Once joined, the pipeline drives no budget's controller: a
        // pipeline spawned next may take them over at once.
        for budget in shared.budgets() {
            budget.release_driver(shared.id);
        }
        // Before `join` returns, so a scrape after it sees every item.
        #[cfg(feature = "metrics")]
        shared.export.publish_final(&shared, &report);
        shared.report.send_replace(Some(Arc::new(report)));
    }
}
