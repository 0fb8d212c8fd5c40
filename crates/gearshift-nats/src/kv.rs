//! Opening a JetStream key-value bucket on any server from 2.9 on.
//!
//! Hand-written because async-nats' `create_key_value` reads the account
//! info with fields that nats-server 2.9 (Debian's) does not send, and so
//! fails there; creating the bucket's backing stream directly, with the
//! settings a KV bucket has, works on every version.

use std::time::Duration;

use async_nats::jetstream::{
    self,
    stream::{DiscardPolicy, StorageType},
};

use crate::Error;

/// Opens the key-value bucket `bucket`, creating its backing stream
/// (`KV_<bucket>`) when it does not exist.
///
/// # Errors
///
/// [`Error::JetStream`] when the stream can be neither read nor created, or
/// the bucket cannot be opened.
pub async fn key_value(
    js: &jetstream::Context,
    bucket: &str,
) -> Result<jetstream::kv::Store, Error> {
    let stream = format!("KV_{bucket}");
    if js.get_stream(&stream).await.is_err() {
        let config = jetstream::stream::Config {
            name: stream.clone(),
            subjects: vec![format!("$KV.{bucket}.>")],
            max_messages_per_subject: 1,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: DiscardPolicy::New,
            storage: StorageType::File,
            num_replicas: 1,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        };
        if let Err(e) = js.create_stream(config).await {
            // Another process may have created it meanwhile.
            js.get_stream(&stream).await.map_err(|_| Error::JetStream {
                what: "create key-value stream",
                source: e.into(),
            })?;
        }
    }
    js.get_key_value(bucket)
        .await
        .map_err(|e| Error::JetStream {
            what: "open key-value bucket",
            source: e.into(),
        })
}
