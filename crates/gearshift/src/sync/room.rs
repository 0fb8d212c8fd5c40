//! [`Room`]: the free room of a bounded channel, as a counter that senders
//! take from and receivers give back to.
//!
//! Written by hand rather than with tokio's `Semaphore` because this is the
//! hot path between stages: a receiver gives room back once per message,
//! and `Semaphore::add_permits` takes the semaphore's lock every time. Here
//! taking and giving are one atomic operation each, and the lock of the
//! waiters' list (an `event_listener::Event`) is only touched when a sender
//! is actually waiting for room.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use event_listener::{Event, listener};

/// Why room could not be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoRoom {
    /// Not enough room now.
    Full,
    /// The channel's receivers are gone.
    Closed,
}

/// Free room, in messages or items.
#[derive(Debug)]
pub(crate) struct Room {
    free: AtomicUsize,
    closed: AtomicBool,
    /// Senders waiting for room.
    freed: Event,
}

impl Room {
    pub(crate) fn new(capacity: usize) -> Self {
        Room {
            free: AtomicUsize::new(capacity),
            closed: AtomicBool::new(false),
            freed: Event::new(),
        }
    }

    /// Takes `n` if there is that much room now.
    pub(crate) fn try_take(&self, n: usize) -> Result<(), NoRoom> {
        if self.closed.load(Ordering::Acquire) {
            return Err(NoRoom::Closed);
        }
        self.free
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |free| {
                free.checked_sub(n)
            })
            .map(drop)
            .map_err(|_| NoRoom::Full)
    }

    /// Waits until `n` can be taken, then takes it; `Err` once closed.
    pub(crate) async fn take(&self, n: usize) -> Result<(), NoRoom> {
        loop {
            match self.try_take(n) {
                Err(NoRoom::Full) => {}
                done => return done,
            }
            // Register, then check again: room given back in between is
            // seen by the check or wakes the listener.
            listener!(self.freed => freed);
            match self.try_take(n) {
                Err(NoRoom::Full) => freed.await,
                done => return done,
            }
        }
    }

    /// Gives `n` back, waking the senders waiting for room.
    pub(crate) fn give(&self, n: usize) {
        self.free.fetch_add(n, Ordering::AcqRel);
        // A notification with nobody listening is one atomic load.
        self.freed.notify(usize::MAX);
    }

    /// Room free now.
    pub(crate) fn free(&self) -> usize {
        self.free.load(Ordering::Acquire)
    }

    /// Refuses every take from now on and wakes the waiting senders.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.freed.notify(usize::MAX);
    }
}

#[cfg(all(test, not(gearshift_loom)))]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn takes_what_is_free_and_no_more() {
        let room = Room::new(3);
        assert_eq!(room.try_take(2), Ok(()));
        assert_eq!(room.try_take(2), Err(NoRoom::Full));
        room.give(1);
        assert_eq!(room.try_take(2), Ok(()));
        assert_eq!(room.free(), 0);
        room.close();
        room.give(3);
        assert_eq!(room.try_take(1), Err(NoRoom::Closed));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_waiting_sender_gets_the_room_given_back() {
        let room = Arc::new(Room::new(1));
        room.try_take(1).unwrap();
        let waiter = tokio::spawn({
            let room = Arc::clone(&room);
            async move { room.take(1).await }
        });
        tokio::task::yield_now().await;
        room.give(1);
        let taken = tokio::time::timeout(Duration::from_secs(10), waiter).await;
        assert_eq!(taken.expect("woken").unwrap(), Ok(()));
        assert_eq!(room.free(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn closing_releases_a_waiting_sender() {
        let room = Arc::new(Room::new(0));
        let waiter = tokio::spawn({
            let room = Arc::clone(&room);
            async move { room.take(1).await }
        });
        tokio::task::yield_now().await;
        room.close();
        let taken = tokio::time::timeout(Duration::from_secs(10), waiter).await;
        assert_eq!(taken.expect("woken").unwrap(), Err(NoRoom::Closed));
    }
}
