//! [`QueueSource`]: the items a worker fetched, as the stream a gearshift
//! pipeline reads (`Pipeline::from_stream`).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use gearshift::async_channel::Receiver;

use super::state::{Counters, Shared};

/// One work item, as the pipeline gets it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct QueueItem {
    /// The key its outcome is recorded under (from its `Nats-Msg-Id`, else
    /// its stream sequence): the same on every delivery, so a stage can use
    /// it as an idempotency key for its calls.
    pub key: String,
    /// What the producer published.
    pub payload: Bytes,
    /// Which delivery this is: 1 the first time, more after a worker died
    /// or handed the item back.
    pub delivery: u32,
}

/// The stream of a worker's items. Give it to `Pipeline::from_stream`
/// unchanged (mapping is fine; filtering or merging is not): the pipeline
/// numbers items by their position in this stream, and the [`QueueSink`]
/// finds each outcome's message by that number.
///
/// It ends when the worker stops taking items ([`QueueSink::stop_taking`],
/// or the queue stays idle for `stop_when_idle`) and it has handed out
/// what it fetched.
///
/// [`QueueSink`]: super::QueueSink
/// [`QueueSink::stop_taking`]: super::QueueSink::stop_taking
pub struct QueueSource {
    pub(crate) rx: Pin<Box<Receiver<QueueItem>>>,
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for QueueSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueSource")
            .field("ready", &self.rx.len())
            .finish_non_exhaustive()
    }
}

impl Stream for QueueSource {
    type Item = QueueItem;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<QueueItem>> {
        let next = self.rx.as_mut().poll_next(cx);
        if let Poll::Ready(Some(_)) = &next {
            Counters::add(&self.shared.counters.yielded);
            self.shared.progress.notify_waiters();
        }
        next
    }

    /// Unbounded: a pipeline that stops does not wait to drain it (the
    /// items it still holds are handed back by `QueueSink::finish`).
    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, None)
    }
}
