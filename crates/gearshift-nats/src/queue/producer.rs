//! [`Producer`]: publishes items with their key as `Nats-Msg-Id` and waits
//! for the server's ack, so a retried publish inside the stream's
//! duplicate window (2 minutes by default) is stored once.

use async_nats::jetstream::{self, context::PublishAckFuture};
use bytes::Bytes;
use futures::StreamExt;

use super::record::MSG_ID;
use crate::error::Error;

/// The most publishes awaiting their ack in [`Producer::publish_all`].
const WINDOW: usize = 256;
/// The longest item key.
const MAX_KEY: usize = 1024;

/// Publishes items into a [`WorkQueue`](super::WorkQueue). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Producer {
    js: jetstream::Context,
    subject: String,
}

/// What the server said about a publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Published {
    /// The item's stream sequence.
    pub sequence: u64,
    /// Whether the server had it already (same key, inside the window).
    pub duplicate: bool,
}

impl Producer {
    pub(crate) fn new(js: jetstream::Context, subject: String) -> Producer {
        Producer { js, subject }
    }

    /// Publishes one item under `key` and waits for the server's ack.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidKey`] for an empty or over-long key, [`Error::Nats`]
    /// if the publish is not acked (then retry it: the key makes the retry
    /// harmless).
    pub async fn publish(&self, key: &str, payload: Bytes) -> Result<Published, Error> {
        let ack = self.send(key, payload).await?;
        settle(ack).await
    }

    /// Publishes many items, keeping up to 256 acks outstanding, and
    /// returns how many were new (not duplicates).
    ///
    /// # Errors
    ///
    /// As [`publish`](Self::publish), at the first item that fails (items
    /// before it may or may not be stored; publishing all again is safe).
    pub async fn publish_all<I>(&self, items: I) -> Result<u64, Error>
    where
        I: IntoIterator<Item = (String, Bytes)>,
    {
        let mut new = 0u64;
        let mut acks = futures::stream::iter(items)
            .map(|(key, payload)| async move { settle(self.send(&key, payload).await?).await })
            .buffered(WINDOW);
        while let Some(published) = acks.next().await {
            if !published?.duplicate {
                new += 1;
            }
        }
        Ok(new)
    }

    async fn send(&self, key: &str, payload: Bytes) -> Result<PublishAckFuture, Error> {
        if key.is_empty() || key.len() > MAX_KEY {
            return Err(Error::InvalidKey {
                key: key.chars().take(64).collect(),
                reason: "must be 1 to 1024 bytes",
            });
        }
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(MSG_ID, key);
        self.js
            .publish_with_headers(self.subject.clone(), headers, payload)
            .await
            .map_err(|e| Error::nats("publish", e))
    }
}

async fn settle(ack: PublishAckFuture) -> Result<Published, Error> {
    let ack = ack.await.map_err(|e| Error::nats("publish ack", e))?;
    Ok(Published {
        sequence: ack.sequence,
        duplicate: ack.duplicate,
    })
}
