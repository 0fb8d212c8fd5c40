//! The fetcher: pulls only what the worker has room for, with an expiry,
//! and sorts each delivery: done before (ack it), out of attempts (record
//! `Failed`, terminate it) or to process (hold it, hand it to the source).
//!
//! Hand-written rather than async-nats' `Consumer::messages()` stream,
//! which keeps a long-lived pull open and prefetches: messages that wait in
//! the client's buffer age past `ack_wait` without a heartbeat and are
//! redelivered behind the worker's back. Each fetch here asks for the free
//! room only, and every message is held (and heartbeated) from arrival.
//!
//! The server's idle heartbeats are not asked for: async-nats' `Batch`
//! swallows them without waking the task again. A fetch that outlives its
//! expiry by a second counts as a missed heartbeat instead, and is retried.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::kv::{CreateErrorKind, Store};
use async_nats::jetstream::{self, AckKind};
use futures::StreamExt;
use gearshift::async_channel::Sender;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::QueueItem;
use super::record::{Record, key_of};
use super::state::{Counters, Held, Shared};

/// Beyond its expiry, how long a fetch may stay silent before it counts as
/// a missed heartbeat (the server or the connection lost it) and is retried.
const FETCH_GRACE: Duration = Duration::from_secs(1);
/// The pause after a failed fetch, doubled per failure up to `MAX_BACKOFF`.
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

pub(crate) struct Fetcher {
    pub(crate) shared: Arc<Shared>,
    pub(crate) consumer: PullConsumer,
    pub(crate) kv: Store,
    pub(crate) tx: Sender<QueueItem>,
}

impl Fetcher {
    pub(crate) async fn run(self) {
        let mut next_position = 0u64;
        let mut backoff = MIN_BACKOFF;
        let mut last_item = Instant::now();
        let config = self.shared.config.clone();
        'fetch: loop {
            if self.shared.stop_taking.is_cancelled() || self.tx.is_closed() {
                break;
            }
            if let Some(idle) = config.stop_when_idle
                && last_item.elapsed() >= idle
                && self.shared.held().is_empty()
            {
                tracing::info!(?idle, "queue idle; this worker takes no more items");
                break;
            }
            // Fetch only when the source has less than a batch ready for
            // the pipeline, and only as many as there is room for.
            while self.tx.len() >= config.max_batch {
                tokio::select! {
                    _ = self.shared.progress.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                    _ = self.shared.stop_taking.cancelled() => break 'fetch,
                }
            }
            let Some(mut room) = self.room(config.max_batch).await else {
                break;
            };
            let want = room.num_permits();
            let batch = self
                .consumer
                .batch()
                .max_messages(want)
                .expires(config.fetch_expiry)
                .messages()
                .await;
            let mut batch = match batch {
                Ok(batch) => batch,
                Err(e) => {
                    self.transient(&format!("fetch failed: {e}"), &mut backoff)
                        .await;
                    continue;
                }
            };
            let deadline = config.fetch_expiry + FETCH_GRACE;
            loop {
                match tokio::time::timeout(deadline, batch.next()).await {
                    Err(_) => {
                        // A fetch that neither delivers nor ends: treated as a
                        // missed heartbeat, transient.
                        self.transient("fetch missed its deadline", &mut backoff)
                            .await;
                        break;
                    }
                    Ok(None) => break,
                    Ok(Some(Err(e))) => {
                        self.transient(&format!("fetch ended with: {e}"), &mut backoff)
                            .await;
                        break;
                    }
                    Ok(Some(Ok(msg))) => {
                        backoff = MIN_BACKOFF;
                        last_item = Instant::now();
                        let Some(share) = room.split(1) else {
                            // The server sent more than asked: hand it back.
                            let _ = msg.ack_with(AckKind::Nak(None)).await;
                            continue;
                        };
                        self.sort(msg, share, &mut next_position).await;
                    }
                }
            }
        }
        // No more items: the source's stream ends once it has handed out
        // what it has.
        self.tx.close();
    }

    /// Waits for room for at least one item and takes up to `most`.
    async fn room(&self, most: usize) -> Option<OwnedSemaphorePermit> {
        let room = Arc::clone(&self.shared.room);
        let mut permit = tokio::select! {
            p = room.clone().acquire_owned() => p.ok()?,
            _ = self.shared.stop_taking.cancelled() => return None,
        };
        while permit.num_permits() < most {
            match room.clone().try_acquire_owned() {
                Ok(p) => permit.merge(p),
                Err(_) => break,
            }
        }
        Some(permit)
    }

    /// Acks a delivery that is done, records and terminates one whose
    /// deliveries are used up, and holds and hands on the rest.
    async fn sort(&self, msg: jetstream::Message, room: OwnedSemaphorePermit, next: &mut u64) {
        let counters = &self.shared.counters;
        Counters::add(&counters.fetched);
        let (delivered, sequence) = match msg.info() {
            Ok(info) => (info.delivered, info.stream_sequence),
            Err(e) => {
                tracing::warn!(error = %e, "a message without JetStream info; left to redelivery");
                return;
            }
        };
        let delivery = u32::try_from(delivered.max(1)).unwrap_or(u32::MAX);
        let key = key_of(&msg, sequence);
        let max_attempts = self.shared.config.max_attempts;
        if delivery > 1 {
            Counters::add(&counters.redelivered);
        }
        if delivery > max_attempts {
            let record = Record::exhausted(delivery, max_attempts);
            match self.kv.create(&key, record.to_bytes()).await {
                Ok(_) => {
                    Counters::add(&counters.exhausted);
                    Counters::add(&counters.recorded_failed);
                }
                Err(e) if e.kind() == CreateErrorKind::AlreadyExists => {
                    Counters::add(&counters.already_recorded);
                }
                Err(e) => {
                    tracing::warn!(%key, error = %e, "cannot record an exhausted item; left to redelivery");
                    Counters::add(&counters.record_errors);
                    return;
                }
            }
            tracing::info!(%key, delivery, "deliveries used up: recorded failed, terminated");
            if let Err(e) = msg.double_ack_with(AckKind::Term).await {
                tracing::debug!(%key, error = %e, "terminate not confirmed");
                Counters::add(&counters.ack_errors);
            }
            return;
        }
        // A redelivery may come after another worker recorded the outcome
        // and died before its ack: ack it, do not process it again.
        if delivery > 1 {
            match self.kv.get(key.clone()).await {
                Ok(Some(_)) => {
                    Counters::add(&counters.skipped_done);
                    if let Err(e) = msg.double_ack().await {
                        tracing::debug!(%key, error = %e, "ack of a done item not confirmed");
                        Counters::add(&counters.ack_errors);
                    }
                    return;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(%key, error = %e, "cannot read the outcome; processing (the create decides)");
                }
            }
        }
        let item = QueueItem {
            key: key.clone(),
            payload: msg.payload.clone(),
            delivery,
        };
        let position = *next;
        *next += 1;
        self.shared.held().insert(
            position,
            Held {
                msg,
                key,
                delivery,
                _room: room,
            },
        );
        // If the source is gone the item stays held: `finish` hands it back.
        let _ = self.tx.send(item).await;
    }

    /// Logs a transient failure and pauses, longer each time.
    async fn transient(&self, what: &str, backoff: &mut Duration) {
        Counters::add(&self.shared.counters.fetch_errors);
        tracing::debug!(pause = ?*backoff, "{what}; retrying");
        tokio::select! {
            _ = tokio::time::sleep(*backoff) => {}
            _ = self.shared.stop_taking.cancelled() => {}
        }
        *backoff = (*backoff * 2).min(MAX_BACKOFF);
    }
}
