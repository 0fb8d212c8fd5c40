//! The shutdown latch: `stop` (no new items; items inside may finish) and
//! `abort` (cancel whatever is still inside). `cancel()` trips stop at once
//! and abort after the drain timeout.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// A cancellation token whose state can also be read with one atomic load:
/// the hot path asks "aborted?" per item, and the token's own check takes a
/// lock.
#[derive(Debug, Clone, Default)]
pub(crate) struct Signal {
    token: CancellationToken,
    set: Arc<AtomicBool>,
}

impl Signal {
    pub(crate) fn trigger(&self) {
        self.set.store(true, Ordering::Release);
        self.token.cancel();
    }

    pub(crate) fn is_set(&self) -> bool {
        self.set.load(Ordering::Acquire)
    }

    /// Completes when triggered. Poll it only where a task would otherwise
    /// wait: registering takes a lock.
    pub(crate) async fn triggered(&self) {
        self.token.cancelled().await;
    }
}

/// The two stop signals of a pipeline.
#[derive(Debug, Default)]
pub(crate) struct Shutdown {
    pub(crate) stop: Signal,
    pub(crate) abort: Signal,
    /// Every item has its outcome: the drain timer has nothing left to do.
    pub(crate) done: Signal,
    drain_armed: AtomicBool,
}

impl Shutdown {
    /// Stops intake now and aborts after `drain`; later calls change nothing.
    pub(crate) fn cancel(&self, drain: Duration, rt: &tokio::runtime::Handle) {
        self.stop.trigger();
        if drain.is_zero() {
            self.abort.trigger();
        } else if !self.drain_armed.swap(true, Ordering::AcqRel) {
            let (abort, done) = (self.abort.clone(), self.done.clone());
            rt.spawn(async move {
                tokio::select! {
                    _ = tokio::time::sleep(drain) => abort.trigger(),
                    _ = done.triggered() => {}
                }
            });
        }
    }

    /// Stops intake and cancels everything inside, now.
    pub(crate) fn abort(&self) {
        self.stop.trigger();
        self.abort.trigger();
    }
}
