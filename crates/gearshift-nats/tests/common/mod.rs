//! Helpers of the work-queue tests: a queue on a fresh local server,
//! publishing, waiting on conditions with deadlines.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use async_nats::jetstream;
use gearshift_nats::{LocalServer, QueueConfig, WorkQueue};
use tokio::time::Instant;

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// A JetStream context on `server`.
pub async fn connect(server: &LocalServer) -> jetstream::Context {
    let client = async_nats::connect(server.url()).await.expect("connect");
    jetstream::new(client)
}

/// Opens `config` on `server` with a connection of its own (one per worker,
/// as one per process).
pub async fn open(server: &LocalServer, config: QueueConfig) -> WorkQueue {
    WorkQueue::open(connect(server).await, config)
        .await
        .expect("open queue")
}

/// Publishes `n` items keyed `<prefix>-<i>` and returns the keys.
pub async fn publish(queue: &WorkQueue, prefix: &str, n: usize) -> Vec<String> {
    let keys: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
    let new = queue
        .producer()
        .publish_all(keys.iter().map(|k| (k.clone(), k.clone().into())))
        .await
        .expect("publish");
    assert_eq!(new, n as u64, "every item is new");
    keys
}

/// Waits until `cond` holds, polling every 20 ms, or panics after `limit`
/// naming `what`.
pub async fn wait_until<F, Fut>(limit: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !cond().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How many of `keys` have a recorded outcome.
pub async fn recorded(queue: &WorkQueue, keys: &[String]) -> usize {
    let mut n = 0;
    for key in keys {
        if queue.outcome(key).await.expect("read outcome").is_some() {
            n += 1;
        }
    }
    n
}
