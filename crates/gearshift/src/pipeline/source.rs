//! The source task: numbers items as they are pulled, admits them (in input
//! order mode, within the reorder window), and sends them into the first
//! channel (to a stage that takes batches, in batches of what the source
//! has ready). On a stop it pulls no new work; the remaining items of a channel
//! or of a finite source (a size hint of at most 2^24 items) are recorded as
//! cancelled, so every input item has its outcome. An unbounded source is
//! simply not read any further. Every item numbered is counted as taken in
//! the ledger, so the collector can check that each one has its outcome.

use std::sync::Arc;

use crate::sync::gate::Gate;
use crate::sync::shutdown::Signal;
use futures::FutureExt;
use futures::stream::{BoxStream, StreamExt};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::item::{Ended, EndedTx, Item};
use super::link::Outlet;
use crate::error::StageError;
use crate::stats::counters::Counter;

/// Where items come from.
pub(crate) enum Source<T> {
    /// An iterator or stream; `Err` items become failures of stage "source".
    Stream(BoxStream<'static, Result<T, StageError>>),
    /// A channel the user keeps sending into.
    Channel(async_channel::Receiver<T>),
}

pub(crate) struct SourceTask<T> {
    pub(crate) source: Source<T>,
    pub(crate) tx: Outlet<T>,
    /// The most items sent in one batch.
    pub(crate) batch: usize,
    pub(crate) ended: EndedTx,
    pub(crate) stop: Signal,
    /// Reorder window (ordered output only): one permit per admitted item,
    /// given back by the collector when the item is emitted.
    pub(crate) window: Option<Arc<Semaphore>>,
    /// The `max_in_flight` window: one detached permit per admitted item,
    /// given back by the collector at the item's outcome.
    pub(crate) in_flight: Option<Arc<Gate>>,
    /// Items numbered so far: the ledger's `taken`.
    pub(crate) taken: Arc<Counter>,
}

impl<T: Send + 'static> SourceTask<T> {
    pub(crate) async fn run(mut self) {
        let mut next_id = 0u64;
        // The first stage starts each item's clock when it takes the item.
        let born = Instant::now();
        let source = std::mem::replace(
            &mut self.source,
            Source::Stream(futures::stream::empty().boxed()),
        );
        let (mut stream, channel) = match source {
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
            let Some(item) = admit(&self.ended, &self.taken, next, &mut next_id, born).await else {
                continue;
            };
            let batches = match &self.tx {
                Outlet::Items(tx) => {
                    if let Err(e) = tx.send(item).await {
                        Ended::cancelled(e.into_inner().id).send(&self.ended).await;
                    }
                    continue;
                }
                Outlet::Batches(tx) => tx,
            };
            // Without admission windows, a batch takes what is ready now.
            let mut batch = vec![item];
            let mut ended = false;
            if self.window.is_none() && self.in_flight.is_none() {
                while batch.len() < self.batch && !self.stop.is_set() {
                    match stream.next().now_or_never() {
                        Some(Some(next)) => batch.extend(
                            admit(&self.ended, &self.taken, next, &mut next_id, born).await,
                        ),
                        Some(None) => {
                            ended = true;
                            break;
                        }
                        None => break,
                    }
                }
            }
            if let Err(unsent) = batches.send(batch).await {
                for item in unsent.0 {
                    Ended::cancelled(item.id).send(&self.ended).await;
                }
            }
            if ended {
                return;
            }
        }
        // Stopped: a channel is closed and drained; a finite source drained.
        if let Some(rx) = &channel {
            rx.close();
        }
        let finite = stream.size_hint().1.is_some_and(|n| n <= DRAIN_MAX);
        if channel.is_some() || finite {
            let drained = drain(&self.ended, &self.taken, &mut stream, next_id).await;
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

/// Numbers an item and counts it as taken; records it at once if it is a
/// failure.
async fn admit<T>(
    ended: &EndedTx,
    taken: &Counter,
    next: Result<T, StageError>,
    next_id: &mut u64,
    born: Instant,
) -> Option<Item<T>> {
    let id = *next_id;
    *next_id += 1;
    taken.add(1);
    match next {
        Ok(value) => Some(Item { id, born, value }),
        Err(error) => {
            Ended::failed(id, &Arc::from("source"), error, 1)
                .send(ended)
                .await;
            None
        }
    }
}

/// Records every remaining item as cancelled. The ended-items channel is
/// bounded, so a large source drains at the pace the collector takes them.
async fn drain<T>(
    ended: &EndedTx,
    taken: &Counter,
    stream: &mut BoxStream<'static, Result<T, StageError>>,
    mut next_id: u64,
) -> u64 {
    let first = next_id;
    while let Some(_item) = stream.next().await {
        taken.add(1);
        Ended::cancelled(next_id).send(ended).await;
        next_id += 1;
    }
    next_id - first
}
