//! [`Outcomes`]: the pipeline's outputs as a `Stream`, or as a blocking
//! iterator for threads outside the runtime.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::{Stream, StreamExt};

use super::link;
use crate::outcome::Outcome;

/// Every item's outcome, as it is delivered (in input order if the pipeline
/// was configured with [`Order::Ordered`](crate::Order::Ordered)).
///
/// Dropping it is allowed: outcomes are then counted in the report and
/// discarded. The stream ends when every item has its outcome.
#[derive(Debug)]
pub struct Outcomes<T> {
    rx: link::Receiver<Outcome<T>>,
}

impl<T> Outcomes<T> {
    pub(crate) fn new(rx: link::Receiver<Outcome<T>>) -> Self {
        Outcomes { rx }
    }

    /// A blocking iterator over the outcomes, for a thread that is not a
    /// tokio worker.
    ///
    /// # Panics
    ///
    /// Blocking inside an async task stalls the runtime; call it from a
    /// plain thread (or `spawn_blocking`).
    pub fn into_blocking_iter(self) -> impl Iterator<Item = Outcome<T>> {
        std::iter::from_fn(move || self.rx.recv_blocking().ok())
    }
}

impl<T> Stream for Outcomes<T> {
    type Item = Outcome<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_next_unpin(cx)
    }
}
