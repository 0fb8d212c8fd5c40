//! What travels between stages: live items on the bounded channels, and
//! ended items (failed or cancelled) straight to the collector.

use tokio::time::Instant;

use std::sync::Arc;

use crate::error::StageError;
use crate::outcome::{Failure, ItemId};

/// A live item: its identity, when it entered the pipeline, and its value.
#[derive(Debug)]
pub(crate) struct Item<T> {
    pub(crate) id: ItemId,
    pub(crate) born: Instant,
    pub(crate) value: T,
}

/// An item that will not go on: recorded by the stage that stopped it.
#[derive(Debug)]
pub(crate) struct Ended {
    pub(crate) id: ItemId,
    /// `None` means cancelled.
    pub(crate) failure: Option<Failure>,
}

/// The sending side for ended items. The channel is bounded like every
/// other path an item takes: a slow dead-letter sink pushes back on the
/// stages that fail items, as a slow output sink does on those that pass
/// them on.
pub(crate) type EndedTx = async_channel::Sender<Ended>;

/// Ended items the channel holds before senders wait: they are ids and
/// errors, not payloads, so a fixed size serves every pipeline.
pub(crate) const ENDED_CAPACITY: usize = 1024;

/// The ended-items channel.
pub(crate) fn ended_channel() -> (EndedTx, async_channel::Receiver<Ended>) {
    async_channel::bounded(ENDED_CAPACITY)
}

impl Ended {
    /// An item that was cancelled.
    pub(crate) fn cancelled(id: ItemId) -> Self {
        Ended { id, failure: None }
    }

    /// Item `id` failed in `stage`.
    pub(crate) fn failed(id: ItemId, stage: &Arc<str>, error: StageError, attempts: u32) -> Self {
        let failure = Failure {
            item: id,
            stage: Arc::clone(stage),
            error,
            attempts,
        };
        Ended {
            id,
            failure: Some(failure),
        }
    }

    /// Records the item, waiting for room. The collector holds the
    /// receiver until every sender is gone, so a send only fails if the
    /// collector itself is gone (then nobody is left to count it).
    pub(crate) async fn send(self, tx: &EndedTx) {
        if let Err(e) = tx.send(self).await {
            tracing::error!(
                item = e.0.id,
                "ended item not recorded: the collector is gone"
            );
        }
    }

    /// As [`send`](Self::send), for a plain thread (never a rayon worker).
    pub(crate) fn send_blocking(self, tx: &EndedTx) {
        if let Err(e) = tx.send_blocking(self) {
            tracing::error!(
                item = e.0.id,
                "ended item not recorded: the collector is gone"
            );
        }
    }
}

/// Drops a user's value after a panic, catching a second panic from its
/// `Drop`: the clean-up that ends a panicked agent's or worker's items must
/// not panic itself.
pub(crate) fn discard_after_panic<T>(value: T) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(value))).is_err() {
        tracing::error!("an item's value panicked when dropped after a panic");
    }
}

/// Turns a caught panic payload into a message.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        format!("panicked: {s}")
    } else if let Some(s) = payload.downcast_ref::<String>() {
        format!("panicked: {s}")
    } else {
        "panicked".to_owned()
    }
}
