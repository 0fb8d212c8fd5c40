//! The source task: numbers items as they are pulled, admits them (in input
//! order mode, within the reorder window), and sends them into the first
//! channel. On a stop it pulls no new work; the remaining items of a channel
//! or of a finite source (a size hint of at most 2^24 items) are recorded as
//! cancelled, so every input item has its outcome. An unbounded source is
//! simply not read any further.

use std::sync::Arc;

use crate::control::gate::Gate;
use crate::control::shutdown::Signal;
use futures::stream::{BoxStream, StreamExt};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::item::{EndedTx, Item, send_cancelled, send_failed};
use crate::error::StageError;

/// Where items come from.
pub(crate) enum Source<T> {
    /// An iterator or stream; `Err` items become failures of stage "source".
    Stream(BoxStream<'static, Result<T, StageError>>),
    /// A channel the user keeps sending into.
    Channel(async_channel::Receiver<T>),
}

pub(crate) struct SourceTask<T> {
    pub(crate) source: Source<T>,
    pub(crate) tx: async_channel::Sender<Item<T>>,
    pub(crate) ended: EndedTx,
    pub(crate) stop: Signal,
    /// Reorder window (ordered output only): one permit per admitted item,
    /// given back by the collector when the item is emitted.
    pub(crate) window: Option<Arc<Semaphore>>,
    /// The `max_in_flight` window: one detached permit per admitted item,
    /// given back by the collector at the item's outcome.
    pub(crate) in_flight: Option<Arc<Gate>>,
}

impl<T: Send + 'static> SourceTask<T> {
    pub(crate) async fn run(self) {
        let mut next_id = 0u64;
        let (mut stream, channel) = match self.source {
            Source::Stream(s) => (s, None),
            Source::Channel(rx) => (rx.clone().map(Ok).boxed(), Some(rx)),
        };
        loop {
            if let Some(window) = &self.window {
                tokio::select! {
                    biased;
                    permit = window.acquire() => permit.expect("the window is never closed").forget(),
                    _ = self.stop.triggered() => break,
                }
            }
            if let Some(gate) = &self.in_flight {
                tokio::select! {
                    biased;
                    permit = gate.acquire() => permit.detach(),
                    _ = self.stop.triggered() => break,
                }
            }
            if self.stop.is_set() {
                break;
            }
            let next = tokio::select! {
                biased;
                next = stream.next() => next,
                _ = self.stop.triggered() => break,
            };
            let Some(next) = next else { return };
            let id = next_id;
            next_id += 1;
            let born = Instant::now();
            match next {
                Ok(value) => {
                    if self.tx.send(Item { id, born, value }).await.is_err() {
                        send_cancelled(&self.ended, id);
                    }
                }
                Err(error) => send_failed(&self.ended, id, &Arc::from("source"), error, 1),
            }
        }
        // Stopped: a channel is closed and drained; a finite source drained.
        if let Some(rx) = &channel {
            rx.close();
        }
        let finite = stream.size_hint().1.is_some_and(|n| n <= DRAIN_MAX);
        if channel.is_some() || finite {
            let drained = drain(&mut stream, &self.ended, next_id).await;
            tracing::debug!(
                drained,
                "source stopped; remaining items recorded as cancelled"
            );
        } else {
            tracing::debug!("source stopped; an unbounded source is not drained");
        }
    }
}

/// Sources of at most this many remaining items are drained on a stop.
const DRAIN_MAX: usize = 1 << 24;
/// The drain waits while more ended items than this await the collector,
/// so draining a large source keeps memory bounded.
const DRAIN_BACKLOG: usize = 4096;

async fn drain<T>(
    stream: &mut BoxStream<'static, Result<T, StageError>>,
    ended: &EndedTx,
    mut next_id: u64,
) -> u64 {
    let first = next_id;
    while let Some(_item) = stream.next().await {
        while ended.len() > DRAIN_BACKLOG {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        send_cancelled(ended, next_id);
        next_id += 1;
    }
    next_id - first
}
