//! What a worker's tasks share: the items it holds, keyed by their
//! position in the source (the pipeline's `ItemId`), the room left, the
//! stop signals and the counters.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_nats::jetstream;
use gearshift::ItemId;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::config::QueueConfig;

/// A message this worker holds: fetched, not yet settled.
#[derive(Debug)]
pub(crate) struct Held {
    pub(crate) msg: jetstream::Message,
    /// The key its outcome is recorded under.
    pub(crate) key: String,
    /// Which delivery this is (1 on the first).
    pub(crate) delivery: u32,
    /// Its share of `max_held`, given back when it is settled.
    pub(crate) _room: OwnedSemaphorePermit,
}

/// The state a worker's fetcher, heartbeat, source and recorder share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: QueueConfig,
    held: Mutex<HashMap<ItemId, Held>>,
    /// One permit per item the worker may still hold.
    pub(crate) room: Arc<Semaphore>,
    /// Stops the fetcher: no new items.
    pub(crate) stop_taking: CancellationToken,
    /// Stops the heartbeat, at the very end.
    pub(crate) stop_heartbeat: CancellationToken,
    /// Set by `cancel_job`: `Cancelled` outcomes are recorded, not handed back.
    pub(crate) job_cancelled: AtomicBool,
    /// Outcomes handed to the recorder and not yet settled.
    pub(crate) settling: AtomicUsize,
    /// Notified when `settling` drops to 0 and when the source yields.
    pub(crate) progress: Notify,
    pub(crate) counters: Counters,
}

impl Shared {
    pub(crate) fn new(config: QueueConfig) -> Arc<Shared> {
        Arc::new(Shared {
            room: Arc::new(Semaphore::new(config.max_held)),
            config,
            held: Mutex::new(HashMap::new()),
            stop_taking: CancellationToken::new(),
            stop_heartbeat: CancellationToken::new(),
            job_cancelled: AtomicBool::new(false),
            settling: AtomicUsize::new(0),
            progress: Notify::new(),
            counters: Counters::default(),
        })
    }

    /// The held items. Never held across an `.await`.
    pub(crate) fn held(&self) -> MutexGuard<'_, HashMap<ItemId, Held>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the item at `position` out of the held set, to settle it.
    pub(crate) fn take(&self, position: ItemId) -> Option<Held> {
        self.held().remove(&position)
    }
}

/// Counts of what a worker did, as [`WorkerReport`] gives them.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) fetched: AtomicU64,
    pub(crate) yielded: AtomicU64,
    pub(crate) recorded_ok: AtomicU64,
    pub(crate) recorded_failed: AtomicU64,
    pub(crate) recorded_cancelled: AtomicU64,
    pub(crate) already_recorded: AtomicU64,
    pub(crate) skipped_done: AtomicU64,
    pub(crate) exhausted: AtomicU64,
    pub(crate) redelivered: AtomicU64,
    pub(crate) handed_back: AtomicU64,
    pub(crate) record_errors: AtomicU64,
    pub(crate) ack_errors: AtomicU64,
    pub(crate) heartbeats: AtomicU64,
    pub(crate) fetch_errors: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn report(&self) -> WorkerReport {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        WorkerReport {
            fetched: get(&self.fetched),
            yielded: get(&self.yielded),
            recorded_ok: get(&self.recorded_ok),
            recorded_failed: get(&self.recorded_failed),
            recorded_cancelled: get(&self.recorded_cancelled),
            already_recorded: get(&self.already_recorded),
            skipped_done: get(&self.skipped_done),
            exhausted: get(&self.exhausted),
            redelivered: get(&self.redelivered),
            handed_back: get(&self.handed_back),
            record_errors: get(&self.record_errors),
            ack_errors: get(&self.ack_errors),
            heartbeats: get(&self.heartbeats),
            fetch_errors: get(&self.fetch_errors),
        }
    }
}

/// What one worker did, from [`QueueSink::finish`](super::QueueSink::finish).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerReport {
    /// Messages fetched from the server (each delivery counts).
    pub fetched: u64,
    /// Items handed to the pipeline.
    pub yielded: u64,
    /// Outcomes this worker recorded as `ok` (it won the `create`).
    pub recorded_ok: u64,
    /// Outcomes this worker recorded as `failed`, exhausted items included.
    pub recorded_failed: u64,
    /// Outcomes this worker recorded as `cancelled` (job cancelled).
    pub recorded_cancelled: u64,
    /// Outcomes another worker had recorded first (the `create` lost):
    /// the item was acked and nothing more was written.
    pub already_recorded: u64,
    /// Redelivered items whose outcome existed: acked, not processed.
    pub skipped_done: u64,
    /// Items whose deliveries were used up: `Failed` recorded, terminated.
    pub exhausted: u64,
    /// Deliveries after the first (another worker died, or handed back).
    pub redelivered: u64,
    /// Held items nak'ed on shutdown, with nothing recorded.
    pub handed_back: u64,
    /// Outcomes that could not be written (the server unreachable); the
    /// item is redelivered after `ack_wait` and recorded then.
    pub record_errors: u64,
    /// Acks that got no confirmation; a redelivery is acked as done.
    pub ack_errors: u64,
    /// In-progress acks sent.
    pub heartbeats: u64,
    /// Fetches that failed or missed their deadline (retried).
    pub fetch_errors: u64,
}

impl WorkerReport {
    /// The outcomes this worker recorded, of any status.
    pub fn recorded(&self) -> u64 {
        self.recorded_ok + self.recorded_failed + self.recorded_cancelled
    }
}
