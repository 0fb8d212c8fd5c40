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

/// The sending side for ended items; never blocks (the channel is
/// unbounded, and holds ids and errors, not payloads).
pub(crate) type EndedTx = async_channel::Sender<Ended>;

/// Records that an item was cancelled.
pub(crate) fn send_cancelled(tx: &EndedTx, id: ItemId) {
    let _ = tx.try_send(Ended { id, failure: None });
}

/// Records that item `id` failed in `stage`.
pub(crate) fn send_failed(
    tx: &EndedTx,
    id: ItemId,
    stage: &Arc<str>,
    error: StageError,
    attempts: u32,
) {
    let failure = Failure {
        item: id,
        stage: Arc::clone(stage),
        error,
        attempts,
    };
    let _ = tx.try_send(Ended {
        id,
        failure: Some(failure),
    });
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
