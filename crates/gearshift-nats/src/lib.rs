//! gearshift-nats: run one gearshift job on many machines over NATS
//! JetStream.
//!
//! # Which one do I use?
//!
//! | I want to...                                        | use |
//! |-----------------------------------------------------|-----|
//! | share a stream of work items between processes      | [`WorkQueue`], its [`Producer`] and workers ([`WorkQueue::worker`]) |
//! | feed a pipeline from the queue                      | [`QueueSource`] into `Pipeline::from_stream` |
//! | record each item's outcome exactly once, then ack   | [`QueueSink::recorder`] into `Pipeline::sink` |
//! | stop a worker without losing its items              | [`QueueSink::stop_taking`], then [`QueueSink::finish`] |
//! | open a key-value bucket on nats-server 2.9 too      | [`key_value`] |
//! | share one API's limit between processes             | [`ClusterBudget`]: its [`api`](ClusterBudget::api) into `.api(..)` of the stages calling it |
//! | a throwaway nats-server in a test or benchmark      | [`LocalServer`] |
//!
//! The guarantees (calls at least once, outcome recorded exactly once) and
//! why each mechanism exists are in the [`queue`] module; the budget's
//! lease protocol in the [`budget`] module and `docs/cluster.md`.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod budget;
mod error;
mod kv;
pub mod queue;
mod server;

pub use budget::{ClusterBudget, ClusterConfig};
pub use error::Error;
pub use kv::key_value;
pub use queue::{
    Producer, Published, QueueConfig, QueueItem, QueueSink, QueueSource, Record, Status, WorkQueue,
    WorkerReport,
};
pub use server::LocalServer;
