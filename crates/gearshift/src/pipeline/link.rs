//! The channels between stages. A stage that takes items one at a time (an
//! IO stage, whose agents each take one) is fed by a bounded channel of
//! items. A stage that takes them in bulk (a CPU stage, the collector) is fed
//! by a channel of batches bounded in items: a producer hands over a whole
//! batch in one channel operation, and memory stays bounded by items, however
//! small the batches are.

use std::sync::Arc;

use async_channel::{RecvError, TryRecvError, TrySendError};
use tokio::sync::Semaphore;

use super::item::Item;

/// Where a stage sends its results: decided by the stage that takes them.
pub(crate) enum Outlet<T> {
    /// One item per message, for an IO stage.
    Items(async_channel::Sender<Item<T>>),
    /// Batches, for a CPU stage or the collector.
    Batches(BatchSender<T>),
}

/// Sends batches into a channel bounded by the items it holds.
pub(crate) struct BatchSender<T> {
    tx: async_channel::Sender<Vec<Item<T>>>,
    room: Arc<Semaphore>,
    capacity: usize,
}

/// Receives batches; gives their room back as it takes them.
pub(crate) struct BatchReceiver<T> {
    rx: async_channel::Receiver<Vec<Item<T>>>,
    room: QueueWatch,
}

/// A channel of batches holding at most `capacity` items (a single batch
/// larger than that takes the whole channel).
pub(crate) fn batch_channel<T>(capacity: usize) -> (BatchSender<T>, BatchReceiver<T>) {
    let capacity = capacity.clamp(1, Semaphore::MAX_PERMITS);
    let (tx, rx) = async_channel::unbounded();
    let room = Arc::new(Semaphore::new(capacity));
    (
        BatchSender {
            tx,
            room: Arc::clone(&room),
            capacity,
        },
        BatchReceiver {
            rx,
            room: QueueWatch { room, capacity },
        },
    )
}

/// The room a batch of `len` items takes in a channel of `capacity`.
fn weight(len: usize, capacity: usize) -> u32 {
    len.min(capacity) as u32
}

impl<T> BatchSender<T> {
    /// Sends if there is room now.
    pub(crate) fn try_send(&self, batch: Vec<Item<T>>) -> Result<(), TrySendError<Vec<Item<T>>>> {
        match self
            .room
            .try_acquire_many(weight(batch.len(), self.capacity))
        {
            Ok(room) => room.forget(),
            Err(tokio::sync::TryAcquireError::Closed) => return Err(TrySendError::Closed(batch)),
            Err(tokio::sync::TryAcquireError::NoPermits) => return Err(TrySendError::Full(batch)),
        }
        self.push(batch)
    }

    /// Waits for room, then sends. `Err` gives the batch back if every
    /// receiver is gone.
    pub(crate) async fn send(&self, batch: Vec<Item<T>>) -> Result<(), Vec<Item<T>>> {
        match self
            .room
            .acquire_many(weight(batch.len(), self.capacity))
            .await
        {
            Ok(room) => room.forget(),
            Err(_) => return Err(batch),
        }
        self.push(batch).map_err(TrySendError::into_inner)
    }

    /// Whether a batch of `len` items would be sent without waiting now.
    pub(crate) fn has_room(&self, len: usize) -> bool {
        self.room.available_permits() >= weight(len, self.capacity) as usize
    }

    fn push(&self, batch: Vec<Item<T>>) -> Result<(), TrySendError<Vec<Item<T>>>> {
        let w = weight(batch.len(), self.capacity);
        self.tx.try_send(batch).inspect_err(|_| {
            self.room.add_permits(w as usize);
        })
    }
}

impl<T> BatchReceiver<T> {
    pub(crate) async fn recv(&self) -> Result<Vec<Item<T>>, RecvError> {
        let batch = self.rx.recv().await?;
        Ok(self.took(batch))
    }

    pub(crate) fn try_recv(&self) -> Result<Vec<Item<T>>, TryRecvError> {
        self.rx.try_recv().map(|b| self.took(b))
    }

    fn took(&self, batch: Vec<Item<T>>) -> Vec<Item<T>> {
        let QueueWatch { room, capacity } = &self.room;
        room.add_permits(weight(batch.len(), *capacity) as usize);
        batch
    }

    /// Items queued.
    pub(crate) fn len(&self) -> usize {
        self.room.len()
    }

    /// A second handle on the same channel, for reading its length.
    pub(crate) fn watcher(&self) -> QueueWatch {
        QueueWatch {
            room: Arc::clone(&self.room.room),
            capacity: self.room.capacity,
        }
    }
}

impl<T> Drop for BatchReceiver<T> {
    /// With the last receiver gone, senders waiting for room give up.
    fn drop(&mut self) {
        if self.rx.receiver_count() == 1 {
            self.room.room.close();
        }
    }
}

/// Reads how many items a batch channel holds, without keeping it open.
pub(crate) struct QueueWatch {
    room: Arc<Semaphore>,
    capacity: usize,
}

impl QueueWatch {
    /// Items queued (counting a batch whose room is taken but which is not
    /// sent yet).
    pub(crate) fn len(&self) -> usize {
        self.capacity.saturating_sub(self.room.available_permits())
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
            Outlet::Batches(tx) => tx.send(items).await,
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
    use tokio::time::Instant;

    fn items(ids: std::ops::Range<u64>) -> Vec<Item<u64>> {
        let born = Instant::now();
        ids.map(|id| Item {
            id,
            born,
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
        let waiting = tokio::spawn(async move { tx.send(items(1..2)).await.map_err(|b| b.len()) });
        tokio::task::yield_now().await;
        drop(rx);
        assert_eq!(waiting.await.unwrap(), Err(1));
    }
}
