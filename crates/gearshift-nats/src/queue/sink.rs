//! [`QueueSink`]: records each outcome once, then acks its message; and the
//! worker's controls (stop taking items, cancel the job, finish).
//!
//! The order is the guarantee: the outcome is written first, with a
//! key-value `create` that only the first writer wins, and the message is
//! acked after. A worker that dies between the two leaves a recorded item
//! that is redelivered, found done and acked; two workers that both
//! processed a redelivered item write once between them. The ack is a
//! `double_ack`, which waits for the server's confirmation: a plain ack
//! sent after `ack_wait` expired "succeeds" without effect.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::jetstream::AckKind;
use async_nats::jetstream::kv::{CreateErrorKind, Store};
use futures::StreamExt;
use futures::channel::mpsc;
use gearshift::{ItemId, Outcome};
use serde::Serialize;
use tokio::task::JoinHandle;

use super::record::{Record, Status};
use super::state::{Counters, Held, Shared, WorkerReport};

/// How many outcomes are written at once.
const RECORDING: usize = 64;
/// How long `finish` waits for outcomes handed over to be written.
const FINISH_DEADLINE: Duration = Duration::from_secs(30);

/// What to do with an item's message once the pipeline is done with it.
#[derive(Debug)]
pub(crate) enum Settle {
    /// Write this outcome (its delivery filled in), then ack.
    Record(ItemId, Record),
    /// This worker is shutting down: nak it with a delay, write nothing.
    HandBack(ItemId),
}

/// Where a worker's outcomes go, and its controls. Give
/// [`recorder`](Self::recorder) to `Pipeline::sink`; when the pipeline
/// has joined, call [`finish`](Self::finish).
pub struct QueueSink {
    pub(crate) shared: Arc<Shared>,
    pub(crate) kv: Store,
    /// Flushed at `finish`, so the naks leave before the process does.
    pub(crate) client: async_nats::Client,
    pub(crate) tx: mpsc::UnboundedSender<Settle>,
    pub(crate) tasks: Vec<JoinHandle<()>>,
    pub(crate) fetcher: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for QueueSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueSink")
            .field("held", &self.shared.held().len())
            .finish_non_exhaustive()
    }
}

impl QueueSink {
    /// The function to give `Pipeline::sink`: it hands each outcome to the
    /// recorder task, which writes it (the value as JSON) and acks the
    /// message. A `Cancelled` outcome is handed back instead (nak'ed, not
    /// recorded) unless [`cancel_job`](Self::cancel_job) was called.
    ///
    /// Every outcome must reach it: with `Pipeline::dead_letter`, failures
    /// go elsewhere, their items stay held until `finish` hands them back,
    /// and they come round again until their attempts are used up.
    pub fn recorder<T: Serialize>(&self) -> impl FnMut(Outcome<T>) + Send + 'static {
        let shared = Arc::clone(&self.shared);
        let tx = self.tx.clone();
        move |outcome: Outcome<T>| {
            let id = outcome.id();
            let settle = match &outcome {
                Outcome::Cancelled { .. } if !shared.job_cancelled.load(Ordering::Acquire) => {
                    Settle::HandBack(id)
                }
                _ => Settle::Record(id, Record::of(&outcome, 0)),
            };
            shared.settling.fetch_add(1, Ordering::AcqRel);
            if tx.unbounded_send(settle).is_err() {
                // Finished already: the message goes back to the queue after
                // `ack_wait`, unrecorded.
                tracing::warn!(item = id, "outcome after finish; not recorded");
                shared.settling.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }

    /// Stops taking items: the source ends once it has handed out what it
    /// fetched, so the pipeline finishes the items it has and ends. The
    /// graceful way to stop a worker.
    pub fn stop_taking(&self) {
        self.shared.stop_taking.cancel();
    }

    /// Marks the whole job as cancelled: from now on `Cancelled` outcomes
    /// (of a pipeline cancelled after this call) are recorded as such, and
    /// so are the items [`finish`](Self::finish) finds still held.
    /// Without it, a cancelled pipeline is one worker shutting down, and
    /// its items are handed back to the others.
    pub fn cancel_job(&self) {
        self.shared.job_cancelled.store(true, Ordering::Release);
    }

    /// How many items this worker holds now (fetched, not yet settled).
    pub fn held(&self) -> usize {
        self.shared.held().len()
    }

    /// The counts so far.
    pub fn report(&self) -> WorkerReport {
        self.shared.counters.report()
    }

    /// Ends the worker, after the pipeline has joined: stops fetching,
    /// waits (up to 30 s) until the outcomes handed over are written, then
    /// naks every item still held with `nak_delay`, recording nothing
    /// (after [`cancel_job`](Self::cancel_job): records them `Cancelled`),
    /// and stops the heartbeat. Returns what the worker did.
    pub async fn finish(mut self) -> WorkerReport {
        self.shared.stop_taking.cancel();
        if let Some(fetcher) = self.fetcher.take() {
            let _ = fetcher.await;
        }
        let settled = tokio::time::timeout(FINISH_DEADLINE, async {
            loop {
                let notified = self.shared.progress.notified();
                if self.shared.settling.load(Ordering::Acquire) == 0 {
                    break;
                }
                notified.await;
            }
        })
        .await;
        if settled.is_err() {
            tracing::warn!("outcomes still being written at finish; their items are redelivered");
        }
        // Fetched but never handed to the pipeline (or its outcome lost):
        // handed back, or recorded `Cancelled` if the job is cancelled.
        let held: Vec<_> = self.shared.held().drain().map(|(_, h)| h).collect();
        let delay = self.shared.config.nak_delay;
        for h in held {
            if self.shared.job_cancelled.load(Ordering::Acquire) {
                let record = Record::of(&Outcome::<()>::Cancelled { id: 0 }, 0);
                write(&self.shared, &self.kv, h, record).await;
            } else {
                hand_back(&self.shared, &h.msg, &h.key, delay).await;
            }
        }
        self.tx.close_channel();
        self.shared.stop_heartbeat.cancel();
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        if let Err(e) = self.client.flush().await {
            tracing::debug!(error = %e, "flush at finish failed; unsent naks expire after ack_wait");
        }
        self.shared.counters.report()
    }
}

impl Drop for QueueSink {
    fn drop(&mut self) {
        // Dropped without `finish`: stop the tasks; held items go back to
        // the queue after `ack_wait`, as if this worker had died.
        self.shared.stop_taking.cancel();
        self.shared.stop_heartbeat.cancel();
        self.tx.close_channel();
    }
}

/// The recorder task: settles outcomes, several at once.
pub(crate) async fn record(shared: Arc<Shared>, kv: Store, rx: mpsc::UnboundedReceiver<Settle>) {
    rx.for_each_concurrent(RECORDING, |settle| {
        let shared = Arc::clone(&shared);
        let kv = kv.clone();
        async move {
            settle_one(&shared, &kv, settle).await;
            if shared.settling.fetch_sub(1, Ordering::AcqRel) == 1 {
                shared.progress.notify_waiters();
            }
        }
    })
    .await;
}

async fn settle_one(shared: &Shared, kv: &Store, settle: Settle) {
    let (id, record) = match settle {
        Settle::Record(id, record) => (id, Some(record)),
        Settle::HandBack(id) => (id, None),
    };
    let Some(held) = shared.take(id) else {
        tracing::warn!(
            item = id,
            "an outcome for an item this worker does not hold"
        );
        return;
    };
    match record {
        Some(record) => write(shared, kv, held, record).await,
        None => hand_back(shared, &held.msg, &held.key, shared.config.nak_delay).await,
    }
}

/// Records `record` for a held item (first writer wins), then acks it.
async fn write(shared: &Shared, kv: &Store, held: Held, mut record: Record) {
    let counters = &shared.counters;
    record.delivery = held.delivery;
    let key = &held.key;
    match kv.create(key, record.to_bytes()).await {
        Ok(_) => Counters::add(match record.status {
            Status::Ok => &counters.recorded_ok,
            Status::Failed => &counters.recorded_failed,
            Status::Cancelled => &counters.recorded_cancelled,
        }),
        Err(e) if e.kind() == CreateErrorKind::AlreadyExists => {
            tracing::debug!(%key, "outcome recorded by another worker first");
            Counters::add(&counters.already_recorded);
        }
        Err(e) => {
            // Not recorded, so not acked: the server redelivers it after
            // `ack_wait` (the heartbeat no longer covers it).
            tracing::warn!(%key, error = %e, "cannot record the outcome; the item will be redelivered");
            Counters::add(&counters.record_errors);
            return;
        }
    }
    if let Err(e) = held.msg.double_ack().await {
        // Recorded: a redelivery is found done and acked.
        tracing::debug!(%key, error = %e, "ack not confirmed");
        Counters::add(&counters.ack_errors);
    }
}

/// Naks a held item with `delay`, recording nothing.
async fn hand_back(
    shared: &Shared,
    msg: &async_nats::jetstream::Message,
    key: &str,
    delay: Duration,
) {
    Counters::add(&shared.counters.handed_back);
    if let Err(e) = msg.ack_with(AckKind::Nak(Some(delay))).await {
        tracing::debug!(%key, error = %e, "nak not sent; redelivered after ack_wait");
    }
}
