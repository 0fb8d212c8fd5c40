//! The usual ways of writing "fetch, then compute" with tokio, each as
//! people write it: a sequential loop, and `buffer_unordered(C)` with the
//! CPU work inline, in `spawn_blocking`, or on rayon via a oneshot channel.
//!
//! They make one attempt per item (the scenarios inject no faults); a failed
//! call is a Failed outcome in the ledger.

use std::future::Future;

use bytes::Bytes;
use futures::StreamExt;
use gearshift::{ErrorKind, StageError};

use super::RunCtx;
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
    unordered(ctx, ledger, c, |work, body| async move { Ok(work(&body)) }).await
}

/// tokio + `buffer_unordered(c)`, CPU work in `spawn_blocking`.
pub async fn spawn_blocking(ctx: &RunCtx, ledger: &Ledger, c: usize) {
    unordered(ctx, ledger, c, |work, body| async move {
        tokio::task::spawn_blocking(move || work(&body))
            .await
            .map_err(|e| StageError::new(ErrorKind::Panic, e))
    })
    .await
}

/// tokio + `buffer_unordered(c)`, CPU work on the global rayon pool, the
/// digest sent back over a oneshot channel.
pub async fn rayon(ctx: &RunCtx, ledger: &Ledger, c: usize) {
    unordered(ctx, ledger, c, |work, body| async move {
        let (tx, rx) = tokio::sync::oneshot::channel();
        rayon::spawn(move || {
            let _ = tx.send(work(&body));
        });
        rx.await
            .map_err(|_| StageError::msg(ErrorKind::Panic, "rayon task dropped its result"))
    })
    .await
}

async fn unordered<F, Fut>(ctx: &RunCtx, ledger: &Ledger, c: usize, compute: F)
where
    F: Fn(super::WorkFn, Bytes) -> Fut,
    Fut: Future<Output = Result<[u8; 32], StageError>>,
{
    let compute = &compute;
    futures::stream::iter(0..ctx.items)
        .map(|id| async move {
            ledger.start_item(id);
            let r = match fetch(&ctx.client, &ctx.url(id), ctx.timeout).await {
                Ok(body) => compute(ctx.work.clone(), body).await.map(|d| {
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
