//! The shutdown latch: `stop` (no new items; items inside may finish) and
//! `abort` (cancel whatever is still inside). `cancel()` trips stop at once
//! and abort after the drain timeout.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// The two stop signals of a pipeline.
#[derive(Debug, Default)]
pub(crate) struct Shutdown {
    pub(crate) stop: CancellationToken,
    pub(crate) abort: CancellationToken,
    drain_armed: AtomicBool,
}

impl Shutdown {
    /// Stops intake now and aborts after `drain`; later calls change nothing.
    pub(crate) fn cancel(&self, drain: Duration, rt: &tokio::runtime::Handle) {
        self.stop.cancel();
        if drain.is_zero() {
            self.abort.cancel();
        } else if !self.drain_armed.swap(true, Ordering::AcqRel) {
            let abort = self.abort.clone();
            rt.spawn(async move {
                tokio::time::sleep(drain).await;
                abort.cancel();
            });
        }
    }

    /// Stops intake and cancels everything inside, now.
    pub(crate) fn abort(&self) {
        self.stop.cancel();
        self.abort.cancel();
    }
}
