//! [`WorkQueue`]: opens (creating if needed) a queue's stream, its shared
//! durable consumer and its outcome bucket, and starts workers.

use std::sync::Arc;

use async_nats::jetstream::{self, consumer, stream};
use futures::channel::mpsc;

use super::config::QueueConfig;
use super::fetch::Fetcher;
use super::heartbeat;
use super::producer::Producer;
use super::record::{Record, encode_id};
use super::sink::{QueueSink, record};
use super::source::QueueSource;
use super::state::Shared;
use crate::error::Error;

/// A JetStream work queue with one recorded outcome per item. Cheap to
/// clone; every process of a job opens it with the same [`QueueConfig`].
#[derive(Debug, Clone)]
pub struct WorkQueue {
    js: jetstream::Context,
    config: QueueConfig,
    kv: jetstream::kv::Store,
}

impl WorkQueue {
    /// Opens the queue `config.name()`, creating what is missing: the
    /// stream (work-queue retention: a message is gone once acked), the
    /// durable pull consumer all workers share (explicit acks, `ack_wait`,
    /// no `max_deliver`: attempts are counted here, so no item is dropped
    /// without an outcome) and the outcome bucket.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a setting out of range, [`Error::Nats`] if the
    /// server refuses or cannot be reached (a stream or consumer that
    /// exists with another configuration among them).
    pub async fn open(js: jetstream::Context, config: QueueConfig) -> Result<WorkQueue, Error> {
        config.validate()?;
        let stream = js
            .get_or_create_stream(stream::Config {
                name: config.name.clone(),
                subjects: vec![config.subject()],
                retention: stream::RetentionPolicy::WorkQueue,
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::nats(format!("create stream {}", config.name), e))?;
        let durable = config.consumer();
        stream
            .get_or_create_consumer::<consumer::pull::Config>(
                &durable,
                consumer::pull::Config {
                    durable_name: Some(durable.clone()),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: config.ack_wait,
                    max_deliver: -1,
                    max_ack_pending: config.max_ack_pending,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| Error::nats(format!("create consumer {durable}"), e))?;
        let kv = crate::kv::key_value(&js, &config.outcome_bucket()).await?;
        Ok(WorkQueue { js, config, kv })
    }

    /// Its configuration.
    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    /// A producer that publishes items into the queue.
    pub fn producer(&self) -> Producer {
        Producer::new(self.js.clone(), self.config.subject())
    }

    /// Starts a worker on this queue: its fetcher, heartbeat and recorder
    /// run on the current tokio runtime until [`QueueSink::finish`].
    /// Give the [`QueueSource`] to `Pipeline::from_stream` and
    /// [`QueueSink::recorder`] to `Pipeline::sink`.
    ///
    /// # Errors
    ///
    /// [`Error::Nats`] if the consumer cannot be read.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub async fn worker(&self) -> Result<(QueueSource, QueueSink), Error> {
        let durable = self.config.consumer();
        let consumer: consumer::PullConsumer = self
            .js
            .get_consumer_from_stream(&durable, &self.config.name)
            .await
            .map_err(|e| Error::nats(format!("get consumer {durable}"), e))?;
        let shared = Shared::new(self.config.clone());
        let (items_tx, items_rx) = gearshift::async_channel::unbounded();
        let (settle_tx, settle_rx) = mpsc::unbounded();
        let fetcher = Fetcher {
            shared: Arc::clone(&shared),
            consumer,
            kv: self.kv.clone(),
            tx: items_tx,
        };
        let fetcher = tokio::spawn(fetcher.run());
        let tasks = vec![
            tokio::spawn(heartbeat::run(Arc::clone(&shared))),
            tokio::spawn(record(Arc::clone(&shared), self.kv.clone(), settle_rx)),
        ];
        let source = QueueSource {
            rx: Box::pin(items_rx),
            shared: Arc::clone(&shared),
        };
        let sink = QueueSink {
            shared,
            kv: self.kv.clone(),
            client: self.js.client(),
            tx: settle_tx,
            tasks,
            fetcher: Some(fetcher),
        };
        Ok((source, sink))
    }

    /// The recorded outcome of the item published under `key`, if any.
    ///
    /// # Errors
    ///
    /// [`Error::Nats`] if the bucket cannot be read.
    pub async fn outcome(&self, key: &str) -> Result<Option<Record>, Error> {
        self.outcome_at(&encode_id(key)).await
    }

    /// The recorded outcome under an outcome key ([`QueueItem::key`](super::QueueItem::key)).
    ///
    /// # Errors
    ///
    /// [`Error::Nats`] if the bucket cannot be read.
    pub async fn outcome_at(&self, outcome_key: &str) -> Result<Option<Record>, Error> {
        let bytes = self
            .kv
            .get(outcome_key)
            .await
            .map_err(|e| Error::nats(format!("read outcome {outcome_key}"), e))?;
        Ok(bytes.and_then(|b| serde_json::from_slice(&b).ok()))
    }

    /// The items waiting in the queue or held by a worker (acked items are
    /// gone from a work queue).
    ///
    /// # Errors
    ///
    /// [`Error::Nats`] if the stream cannot be read.
    pub async fn remaining(&self) -> Result<u64, Error> {
        let mut stream = self
            .js
            .get_stream(&self.config.name)
            .await
            .map_err(|e| Error::nats(format!("get stream {}", self.config.name), e))?;
        let info = stream
            .info()
            .await
            .map_err(|e| Error::nats(format!("read stream {}", self.config.name), e))?;
        Ok(info.state.messages)
    }
}
