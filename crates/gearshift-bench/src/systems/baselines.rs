//! The usual ways of writing "fetch, then compute" with tokio, each as
//! people write it: a sequential loop, and `buffer_unordered(C)` with the
//! CPU work inline, in `spawn_blocking`, or on rayon via a oneshot channel.
//!
//! They make one attempt per item (the scenarios inject no faults); a failed
//! call is a Failed outcome in the ledger.

use bytes::Bytes;
use futures::StreamExt;
use gearshift::{ErrorKind, StageError};

use super::{RunCtx, WorkFn};
use crate::client::fetch;
use crate::ledger::Ledger;

/// One request at a time, CPU work inline.
pub async fn sequential(ctx: &RunCtx, ledger: &Ledger) {
    for id in 0..ctx.items {
        ledger.start_item(id);
        let r = fetch(&ctx.client, &ctx.url(id), ctx.timeout).await;
        let r = r.map(|body| {
            std::hint::black_box((ctx.work)(&body));
        });
        ledger.record(id, r.map_err(|e| e.kind()));
    }
}

/// tokio + `buffer_unordered(c)`, CPU work inline in the async task (it
/// blocks a runtime worker while it runs).
pub async fn tokio_inline(ctx: &RunCtx, ledger: &Ledger, c: usize) {
    unordered(ctx, ledger, c, Compute::Inline).await
}

/// tokio + `buffer_unordered(c)`, CPU work in `spawn_blocking`.
pub async fn spawn_blocking(ctx: &RunCtx, ledger: &Ledger, c: usize) {
    unordered(ctx, ledger, c, Compute::SpawnBlocking).await
}

/// tokio + `buffer_unordered(c)`, CPU work on the global rayon pool, the
/// digest sent back over a oneshot channel.
pub async fn rayon(ctx: &RunCtx, ledger: &Ledger, c: usize) {
    unordered(ctx, ledger, c, Compute::Rayon).await
}

/// Where a `buffer_unordered` baseline runs the CPU work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compute {
    /// Inline in the async task: it blocks a runtime worker while it runs.
    Inline,
    /// In `tokio::task::spawn_blocking`.
    SpawnBlocking,
    /// On the global rayon pool, the digest sent back over a oneshot channel.
    Rayon,
}

impl Compute {
    /// The baseline's name without its concurrency, e.g. `tokio+rayon`.
    pub fn label(self) -> &'static str {
        match self {
            Compute::Inline => "tokio inline",
            Compute::SpawnBlocking => "tokio+spawn_blocking",
            Compute::Rayon => "tokio+rayon",
        }
    }

    /// Runs `work` on `body` where this baseline runs it.
    pub(crate) async fn run(self, work: WorkFn, body: Bytes) -> Result<[u8; 32], StageError> {
        match self {
            Compute::Inline => Ok(work(&body)),
            Compute::SpawnBlocking => tokio::task::spawn_blocking(move || work(&body))
                .await
                .map_err(|e| StageError::new(ErrorKind::Panic, e)),
            Compute::Rayon => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                rayon::spawn(move || {
                    let _ = tx.send(work(&body));
                });
                rx.await
                    .map_err(|_| StageError::msg(ErrorKind::Panic, "rayon task dropped its result"))
            }
        }
    }
}

async fn unordered(ctx: &RunCtx, ledger: &Ledger, c: usize, compute: Compute) {
    futures::stream::iter(0..ctx.items)
        .map(|id| async move {
            ledger.start_item(id);
            let r = match fetch(&ctx.client, &ctx.url(id), ctx.timeout).await {
                Ok(body) => compute.run(ctx.work.clone(), body).await.map(|d| {
                    std::hint::black_box(d);
                }),
                Err(e) => Err(e),
            };
            ledger.record(id, r.map_err(|e| e.kind()));
        })
        .buffer_unordered(c.max(1))
        .collect::<()>()
        .await;
}
