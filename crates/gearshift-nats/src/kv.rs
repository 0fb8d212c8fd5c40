//! Opening a JetStream key-value bucket on any server this crate supports.
//!
//! Hand-written because `Context::create_key_value` of async-nats 0.52 reads
//! the account's limits first and fails to parse the account info of
//! nats-server 2.9 (Debian's), which lacks fields the client expects. A
//! bucket is only a stream with a fixed shape, so this creates that stream
//! itself (the shape `create_key_value` would give it) and then opens it
//! with `get_key_value`, which works on every version.

use async_nats::jetstream::{self, stream};

use crate::error::Error;

/// Opens the key-value bucket `bucket`, creating its backing stream
/// `KV_<bucket>` (subjects `$KV.<bucket>.>`, one message per subject, rollup
/// allowed, delete denied, direct get, discard new) if it does not exist.
/// Safe to call from many processes at once: creating a stream that exists
/// with the same configuration succeeds.
///
/// # Errors
///
/// [`Error::Nats`] if the stream cannot be read or created, or the bucket
/// opened (an invalid bucket name among them).
pub async fn key_value(
    js: &jetstream::Context,
    bucket: &str,
) -> Result<jetstream::kv::Store, Error> {
    let config = stream::Config {
        name: format!("KV_{bucket}"),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: stream::DiscardPolicy::New,
        storage: stream::StorageType::File,
        ..Default::default()
    };
    js.get_or_create_stream(config)
        .await
        .map_err(|e| Error::nats(format!("create key-value stream KV_{bucket}"), e))?;
    js.get_key_value(bucket)
        .await
        .map_err(|e| Error::nats(format!("open key-value bucket {bucket}"), e))
}
