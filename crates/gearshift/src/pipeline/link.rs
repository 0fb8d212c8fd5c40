//! The channels between stages. A stage that takes items one at a time (an
//! IO stage, whose agents each take one) is fed by a bounded channel of
//! items. A stage that takes them in bulk (a CPU stage, the collector) is fed
//! by a channel of batches bounded in items: a producer hands over a whole
//! batch in one channel operation, and memory stays bounded by items, however
//! small the batches are. The outcome and dead-letter channels are bounded
//! channels too.
//!
//! Each is an unbounded queue, which allocates in small blocks as it fills
//! and frees them as it drains, behind a counter of free room
//! ([`Room`](crate::sync::room::Room): one atomic operation to take room,
//! one to give it back): a capacity of 2^24 costs nothing until items fill
//! it, where a preallocated ring of that size takes hundreds of MiB for a
//! run of a thousand items.
//!
//! Just over 400 lines with its tests (about 95 of them), which exercise
//! both sides of the link together.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_channel::{RecvError, SendError, TryRecvError, TrySendError};
use futures::Stream;

use crate::sync::room::{NoRoom, Room};

use super::item::Item;

/// Where a stage sends its results: decided by the stage that takes them.
pub(crate) enum Outlet<T> {
    /// One item per message, for an IO stage.
    Items(Sender<Item<T>>),
    /// Batches, for a CPU stage or the collector.
    Batches(BatchSender<T>),
}

/// Sends into a channel bounded by the room its messages take.
pub(crate) struct Sender<X> {
    tx: async_channel::Sender<X>,
    room: Arc<Room>,
    weigh: Weigh<X>,
}

/// Receives from a bounded channel; gives room back as it takes messages.
/// Clones share the channel.
pub(crate) struct Receiver<X> {
    rx: Pin<Box<async_channel::Receiver<X>>>,
    room: Arc<RoomOf>,
    weigh: Weigh<X>,
}

/// Sends batches into a channel bounded by the items it holds.
pub(crate) type BatchSender<T> = Sender<Vec<Item<T>>>;
/// Receives batches from a channel bounded by the items it holds.
pub(crate) type BatchReceiver<T> = Receiver<Vec<Item<T>>>;

/// The room a message takes: 1, or a batch's items.
struct Weigh<X> {
    of: fn(&X) -> usize,
    capacity: usize,
}

/// The room of a channel, as its receivers hold it: closed when the last
/// receiver is gone, so that senders waiting for room give up.
struct RoomOf {
    room: Arc<Room>,
    capacity: usize,
}

/// A channel of at most `capacity` messages.
pub(crate) fn bounded<X>(capacity: usize) -> (Sender<X>, Receiver<X>) {
    channel(capacity, |_| 1)
}

/// A channel of batches holding at most `capacity` items (a single batch
/// larger than that takes the whole channel).
pub(crate) fn batch_channel<T>(capacity: usize) -> (BatchSender<T>, BatchReceiver<T>) {
    channel(capacity, Vec::len)
}

fn channel<X>(capacity: usize, of: fn(&X) -> usize) -> (Sender<X>, Receiver<X>) {
    let capacity = capacity.max(1);
    let (tx, rx) = async_channel::unbounded();
    let room = Arc::new(Room::new(capacity));
    let weigh = Weigh { of, capacity };
    (
        Sender {
            tx,
            room: Arc::clone(&room),
            weigh,
        },
        Receiver {
            rx: Box::pin(rx),
            room: Arc::new(RoomOf { room, capacity }),
            weigh,
        },
    )
}

impl<X> Weigh<X> {
    fn of(&self, x: &X) -> usize {
        (self.of)(x).min(self.capacity)
    }
}

impl<X> Clone for Weigh<X> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<X> Copy for Weigh<X> {}

impl<X> Sender<X> {
    /// Sends if there is room now.
    pub(crate) fn try_send(&self, x: X) -> Result<(), TrySendError<X>> {
        match self.room.try_take(self.weigh.of(&x)) {
            Ok(()) => {}
            Err(NoRoom::Closed) => return Err(TrySendError::Closed(x)),
            Err(NoRoom::Full) => return Err(TrySendError::Full(x)),
        }
        self.push(x)
    }

    /// Waits for room, then sends. `Err` gives the message back if every
    /// receiver is gone.
    pub(crate) async fn send(&self, x: X) -> Result<(), SendError<X>> {
        if self.room.take(self.weigh.of(&x)).await.is_err() {
            return Err(SendError(x));
        }
        self.push(x).map_err(|e| SendError(e.into_inner()))
    }

    fn push(&self, x: X) -> Result<(), TrySendError<X>> {
        let w = self.weigh.of(&x);
        self.tx.try_send(x).inspect_err(|_| self.room.give(w))
    }
}

impl<X> Clone for Sender<X> {
    fn clone(&self) -> Self {
        Sender {
            tx: self.tx.clone(),
            room: Arc::clone(&self.room),
            weigh: self.weigh,
        }
    }
}

impl<T> BatchSender<T> {
    /// Whether a batch of `len` items would be sent without waiting now.
    pub(crate) fn has_room(&self, len: usize) -> bool {
        self.room.free() >= len.min(self.weigh.capacity)
    }
}

impl<X> Receiver<X> {
    /// Waits for a message; `Err` once the channel is empty and every
    /// sender is gone.
    pub(crate) async fn recv(&self) -> Result<X, RecvError> {
        let x = self.rx.recv().await?;
        Ok(self.took(x))
    }

    pub(crate) fn try_recv(&self) -> Result<X, TryRecvError> {
        self.rx.try_recv().map(|x| self.took(x))
    }

    /// As [`recv`](Self::recv), from a thread that is not the runtime's.
    pub(crate) fn recv_blocking(&self) -> Result<X, RecvError> {
        self.rx.recv_blocking().map(|x| self.took(x))
    }

    /// Room queued: messages, or items for a channel of batches.
    pub(crate) fn len(&self) -> usize {
        self.watcher().len()
    }

    /// A handle that reads the channel's length without keeping it open.
    pub(crate) fn watcher(&self) -> QueueWatch {
        QueueWatch {
            room: Arc::clone(&self.room.room),
            capacity: self.room.capacity,
        }
    }

    fn took(&self, x: X) -> X {
        self.room.room.give(self.weigh.of(&x));
        x
    }
}

impl<X> std::fmt::Debug for Receiver<X> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("len", &self.len())
            .field("capacity", &self.room.capacity)
            .finish()
    }
}

impl<X> Clone for Receiver<X> {
    fn clone(&self) -> Self {
        Receiver {
            rx: Box::pin((*self.rx).clone()),
            room: Arc::clone(&self.room),
            weigh: self.weigh,
        }
    }
}

impl<X> Stream for Receiver<X> {
    type Item = X;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<X>> {
        let polled = self.rx.as_mut().poll_next(cx);
        match polled {
            Poll::Ready(Some(x)) => Poll::Ready(Some(self.took(x))),
            other => other,
        }
    }
}

impl Drop for RoomOf {
    fn drop(&mut self) {
        self.room.close();
    }
}

/// Reads how much a channel holds, without keeping it open.
pub(crate) struct QueueWatch {
    room: Arc<Room>,
    capacity: usize,
}

impl QueueWatch {
    /// Room taken: counting a message whose room is taken but which is not
    /// sent yet.
    pub(crate) fn len(&self) -> usize {
        self.capacity.saturating_sub(self.room.free())
    }
}

impl<T> Outlet<T> {
    /// Sends a batch without waiting; on a full channel, gives back what
    /// was not sent (an item channel may take part of it).
    pub(crate) fn try_send_all(&self, items: Vec<Item<T>>) -> Result<(), Unsent<T>> {
        if items.is_empty() {
            return Ok(());
        }
        match self {
            Outlet::Batches(tx) => tx.try_send(items).map_err(|e| match e {
                TrySendError::Full(b) => Unsent::Full(b),
                TrySendError::Closed(b) => Unsent::Closed(b),
            }),
            Outlet::Items(tx) => {
                let mut items = items.into_iter();
                while let Some(item) = items.next() {
                    match tx.try_send(item) {
                        Ok(()) => {}
                        Err(e) => {
                            let full = e.is_full();
                            let rest = std::iter::once(e.into_inner()).chain(items).collect();
                            return Err(if full {
                                Unsent::Full(rest)
                            } else {
                                Unsent::Closed(rest)
                            });
                        }
                    }
                }
                Ok(())
            }
        }
    }

    /// Sends a batch, waiting for room; gives back what could not be sent
    /// because the next stage is gone.
    pub(crate) async fn send_all(&self, items: Vec<Item<T>>) -> Result<(), Vec<Item<T>>> {
        if items.is_empty() {
            return Ok(());
        }
        match self {
            Outlet::Batches(tx) => tx.send(items).await.map_err(SendError::into_inner),
            Outlet::Items(tx) => {
                let mut items = items.into_iter();
                while let Some(item) = items.next() {
                    if let Err(e) = tx.send(item).await {
                        return Err(std::iter::once(e.into_inner()).chain(items).collect());
                    }
                }
                Ok(())
            }
        }
    }

    /// As [`send_all`](Self::send_all), from a thread that is not the
    /// runtime's.
    pub(crate) fn send_all_blocking(&self, items: Vec<Item<T>>) -> Result<(), Vec<Item<T>>> {
        futures::executor::block_on(self.send_all(items))
    }
}

/// What a send without waiting gave back.
pub(crate) enum Unsent<T> {
    Full(Vec<Item<T>>),
    Closed(Vec<Item<T>>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use tokio::time::Instant;

    fn items(ids: std::ops::Range<u64>) -> Vec<Item<u64>> {
        let born = Instant::now();
        ids.map(|id| Item {
            id,
            born,
            attempts: 0,
            value: id,
        })
        .collect()
    }

    #[tokio::test]
    async fn the_bound_is_in_items_not_batches() {
        let (tx, rx) = batch_channel::<u64>(5);
        tx.try_send(items(0..3)).expect("room for 3");
        assert!(matches!(
            tx.try_send(items(3..6)),
            Err(TrySendError::Full(_))
        ));
        tx.try_send(items(3..5)).expect("room for 2 more");
        assert_eq!(rx.len(), 5);
        assert_eq!(rx.recv().await.unwrap().len(), 3);
        assert_eq!(rx.len(), 2);
        tx.try_send(items(5..8)).expect("the room came back");
    }

    #[tokio::test]
    async fn a_batch_larger_than_the_channel_takes_all_of_it() {
        let (tx, rx) = batch_channel::<u64>(2);
        tx.send(items(0..10)).await.expect("sent alone");
        assert!(matches!(
            tx.try_send(items(10..11)),
            Err(TrySendError::Full(_))
        ));
        assert_eq!(rx.recv().await.unwrap().len(), 10);
        assert_eq!(rx.len(), 0);
    }

    #[tokio::test]
    async fn a_waiting_sender_gives_up_when_the_receiver_is_gone() {
        let (tx, rx) = batch_channel::<u64>(1);
        tx.try_send(items(0..1)).expect("room");
        let waiting =
            tokio::spawn(async move { tx.send(items(1..2)).await.map_err(|b| b.0.len()) });
        tokio::task::yield_now().await;
        drop(rx);
        assert_eq!(waiting.await.unwrap(), Err(1));
    }

    #[tokio::test]
    async fn an_item_channel_is_bounded_in_messages_and_ends_after_its_senders() {
        let (tx, rx) = bounded::<u64>(2);
        tx.try_send(1).expect("room");
        tx.send(2).await.expect("room");
        assert!(matches!(tx.try_send(3), Err(TrySendError::Full(3))));
        assert_eq!(rx.len(), 2);
        let rx2 = rx.clone();
        assert_eq!(rx.try_recv(), Ok(1));
        tx.try_send(3).expect("the room came back");
        drop(rx);
        drop(tx);
        let rest: Vec<u64> = rx2.collect().await;
        assert_eq!(rest, [2, 3]);
    }

    #[tokio::test]
    async fn an_item_sender_waiting_for_room_gets_it_or_gives_up() {
        let (tx, rx) = bounded::<u64>(1);
        tx.try_send(0).expect("room");
        let tx2 = tx.clone();
        let waiting = tokio::spawn(async move { tx2.send(1).await });
        tokio::task::yield_now().await;
        assert_eq!(rx.recv().await, Ok(0));
        waiting.await.unwrap().expect("room came back");
        let waiting = tokio::spawn(async move { tx.send(2).await.map_err(|e| e.0) });
        tokio::task::yield_now().await;
        drop(rx);
        assert_eq!(waiting.await.unwrap(), Err(2));
    }

    /// Defect 12 of issue 20: a capacity is a bound, not an allocation (a
    /// preallocated ring of 2^24 slots of 1 KiB would take 16 GiB).
    #[tokio::test]
    async fn a_huge_capacity_allocates_nothing_up_front() {
        let (tx, rx) = bounded::<[u8; 1024]>(1 << 24);
        tx.send([7; 1024]).await.expect("room");
        assert_eq!(rx.recv().await.map(|x| x[0]), Ok(7));
    }
}
