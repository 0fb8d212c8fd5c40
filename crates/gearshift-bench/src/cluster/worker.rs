//! One worker process of `gearshift-bench cluster` (the hidden
//! `cluster-worker` subcommand): a gearshift pipeline from the shared
//! queue, through the mock API under the cluster budget, to the outcome
//! bucket. SIGTERM stops it taking items; it finishes what it holds and
//! prints its report as one JSON line.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream;
use bytes::Bytes;
use clap::Args;
use gearshift::http::HttpFetcher;
use gearshift::{Config, Pipeline, StageError};
use gearshift_nats::{ClusterBudget, ClusterConfig, QueueConfig, QueueItem, WorkQueue};
use serde::{Deserialize, Serialize};
use tokio::signal::unix::{SignalKind, signal};

/// The API's name in the cluster budget.
pub const API_NAME: &str = "mock";

/// `gearshift-bench cluster-worker` (started by `cluster`, not by hand).
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// nats-server's URL.
    #[arg(long)]
    pub nats: String,
    /// The mock API's base URL.
    #[arg(long)]
    pub api: String,
    /// The queue's name.
    #[arg(long)]
    pub queue: String,
    /// This worker's number (a restarted worker keeps it).
    #[arg(long)]
    pub id: u32,
    /// The API's capacity: the cluster budget's limit.
    #[arg(long)]
    pub capacity: usize,
    /// The queue's ack_wait, ms.
    #[arg(long)]
    pub ack_wait_ms: u64,
}

/// What a worker stores as an item's value: which worker took it and when,
/// which the parent reads back to time redeliveries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Done {
    /// The worker's number.
    pub worker: u32,
    /// When the worker took the item (before the API call), ms since the
    /// Unix epoch.
    pub taken_ms: u64,
    /// A checksum of the API's answer (the CPU stage's work).
    pub sum: u64,
}

/// The queue's settings, the same in the parent and every worker.
pub fn queue_config(name: &str, ack_wait: Duration, capacity: usize) -> QueueConfig {
    QueueConfig::new(name)
        .ack_wait(ack_wait)
        .max_held(capacity.clamp(1, gearshift_nats::queue::MAX_HELD))
        .max_batch(capacity.clamp(1, 64))
}

/// Milliseconds since the Unix epoch (0 before it).
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Runs the worker until SIGTERM (or its items end) and returns its report
/// as one JSON line.
///
/// # Errors
///
/// The server or the API cannot be reached at the start.
pub async fn run(args: WorkerArgs) -> anyhow::Result<String> {
    let ack_wait = Duration::from_millis(args.ack_wait_ms);
    let client = async_nats::connect(&args.nats).await?;
    let queue = WorkQueue::open(
        jetstream::new(client.clone()),
        queue_config(&args.queue, ack_wait, args.capacity),
    )
    .await?;
    let budget_config = ClusterConfig {
        bucket: format!("{}-budget", args.queue),
        process_id: format!("w{}-{}", args.id, std::process::id()),
        initial_limit: args.capacity,
        max_limit: args.capacity,
        ..ClusterConfig::default()
    };
    let cluster = ClusterBudget::connect(client, API_NAME, budget_config).await?;
    let budget = cluster.api();
    let (items, sink) = queue.worker().await?;
    let fetcher = HttpFetcher::builder().build()?;
    let (base, worker) = (args.api.trim_end_matches('/').to_owned(), args.id);
    let handle = Pipeline::from_stream(items)
        .io(move |item: QueueItem| {
            let fetcher = fetcher.clone();
            let url = format!("{base}/item/{}", String::from_utf8_lossy(&item.payload));
            async move {
                let taken_ms = unix_ms();
                let body = fetcher.get(&url).await?;
                Ok::<_, StageError>((taken_ms, body))
            }
        })
        .api(&budget)
        .cpu(move |(taken_ms, body): (u64, Bytes)| Done {
            worker,
            taken_ms,
            sum: checksum(&body),
        })
        .config(Config::default().with_cores(num_cpus::get().max(1)))
        .sink(sink.recorder())
        .spawn()?;
    let mut term = signal(SignalKind::terminate())?;
    let join = handle.join();
    tokio::pin!(join);
    tokio::select! {
        _ = &mut join => {}
        _ = term.recv() => {
            tracing::info!(worker, "SIGTERM: no more items taken; finishing the held ones");
            sink.stop_taking();
            join.await;
        }
    }
    let report = sink.finish().await;
    cluster.leave().await;
    Ok(format!(
        "{}\n",
        serde_json::json!({
            "worker": worker,
            "recorded": report.recorded(),
            "already_recorded": report.already_recorded,
            "skipped_done": report.skipped_done,
            "redelivered": report.redelivered,
            "handed_back": report.handed_back,
            "record_errors": report.record_errors,
        })
    ))
}

/// FNV-1a over the body: a light CPU stage.
fn checksum(body: &[u8]) -> u64 {
    body.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
