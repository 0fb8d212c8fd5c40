//! The work queue: many worker processes share one JetStream stream of
//! items, and every item gets exactly one recorded outcome.
//!
//! # What is guaranteed
//!
//! - **Calls at least once.** An item is processed until an outcome is
//!   recorded for it: a worker that dies, hangs or shuts down leaves its
//!   items to be redelivered to another. So a stage may be called more
//!   than once for an item; [`QueueItem::key`] is the same on every
//!   delivery, for use as an idempotency key.
//! - **Outcome recorded exactly once.** Each item key has one record in the
//!   outcome bucket (`<name>-outcomes`): `ok` (with the last stage's value
//!   as JSON), `failed` or `cancelled`.
//!
//! # Why each mechanism exists
//!
//! | mechanism | why |
//! |-----------|-----|
//! | work-queue retention, durable pull consumer, explicit acks | one shared stream; an item leaves it only when a worker acks it |
//! | fetch sized to free room, with an expiry | a prefetching subscription leaves messages waiting in the client's buffer, where `ack_wait` runs out and they are redelivered behind the worker's back |
//! | in-progress ack every `ack_wait / 3` | a slow item is not redelivered while its worker still has it; a dead worker's items are redelivered within `ack_wait` |
//! | a fetch that misses its deadline is retried | a lost pull request or a reconnect is transient, not an error |
//! | outcome written with a key-value `create` before the ack | the first writer wins and a second gets `AlreadyExists`, so two workers racing on one item write once; writing before acking means a crash in between leaves a recorded item, not a lost one |
//! | `double_ack` | a plain ack sent after `ack_wait` expired "succeeds" silently; the double ack waits for the server's word |
//! | a redelivered item whose outcome exists is acked | it is not processed again |
//! | delivery count checked here, `max_deliver` unlimited | the server's `max_deliver` drops an item without an outcome; here an item past `max_attempts` is recorded `failed` and terminated (`+TERM`) |
//! | items handed back with a delayed nak on shutdown, nothing recorded | a worker that stops is not the job failing: another worker takes them |
//! | `cancelled` recorded only after [`QueueSink::cancel_job`] | cancelling the job, unlike stopping a worker, is a final outcome |
//! | producer sets `Nats-Msg-Id` | a producer's retry inside the duplicate window is stored once |
//!
//! What is not guaranteed: that a stage runs once per item (see above);
//! that items are processed in order; that the outcome bucket survives the
//! loss of the server's store (run a replicated cluster for that).
//!
//! # Failure modes tested
//!
//! Against a real nats-server (`tests/queue_*.rs`): two workers share 300
//! items, one outcome each; a worker dies holding items, another gets them
//! within `ack_wait`; a stage three times slower than `ack_wait` keeps its
//! item (heartbeats); two workers race on a redelivered item, the first
//! writer's outcome stays; an item out of attempts is recorded `failed` and
//! terminated; a worker aborted with items hands them back and records
//! nothing; a cancelled job records `cancelled`; nats-server killed with
//! SIGKILL and restarted on its store loses no outcome. After such a kill,
//! nats-server 2.9 may deliver some items again as first deliveries (its
//! consumer state on disk lagged): they are processed again and their
//! outcome's `create` loses, so each is still recorded once. It may also
//! keep some acked items in the stream, below the consumer's ack floor,
//! where they are never delivered again: [`WorkQueue::remaining`] counts
//! them, but their outcomes are recorded.
//!
//! # Example
//!
//! ```no_run
//! use gearshift::{Pipeline, StageError};
//! use gearshift_nats::{QueueConfig, QueueItem, WorkQueue};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = async_nats::connect("nats://127.0.0.1:4222").await?;
//! let queue = WorkQueue::open(async_nats::jetstream::new(client), QueueConfig::new("jobs")).await?;
//! queue.producer().publish("item-1", "hello".into()).await?;
//!
//! let (items, sink) = queue.worker().await?;
//! let handle = Pipeline::from_stream(items)
//!     .io(|item: QueueItem| async move { Ok::<_, StageError>(item.payload.len()) })
//!     .sink(sink.recorder())
//!     .spawn()?;
//! // ... on SIGTERM: sink.stop_taking();
//! handle.join().await;
//! let report = sink.finish().await;
//! # Ok(()) }
//! ```

mod config;
mod fetch;
mod heartbeat;
mod producer;
mod record;
mod sink;
mod source;
mod state;
mod work_queue;

pub use config::{MAX_ATTEMPTS, MAX_HELD, MAX_WAIT, MIN_ACK_WAIT, QueueConfig};
pub use producer::{Producer, Published};
pub use record::{Record, Status};
pub use sink::QueueSink;
pub use source::{QueueItem, QueueSource};
pub use state::WorkerReport;
pub use work_queue::WorkQueue;
