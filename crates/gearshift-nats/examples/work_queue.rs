//! A work queue shared by workers: publish items, run two workers (two
//! pipelines, as two processes would), each item recorded once.
//!
//! ```sh
//! cargo run -p gearshift-nats --example work_queue            # starts nats-server from PATH
//! NATS_URL=nats://127.0.0.1:4222 cargo run -p gearshift-nats --example work_queue
//! cargo run -p gearshift-nats --example work_queue -- 5000 0   # items, stage ms
//! ```

use std::time::{Duration, Instant};

use gearshift::{Pipeline, StageError};
use gearshift_nats::{LocalServer, QueueConfig, QueueItem, WorkQueue};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,gearshift_nats=info".into()),
        )
        .init();
    // A throwaway server unless NATS_URL names one.
    let (url, _server) = match std::env::var("NATS_URL") {
        Ok(url) => (url, None),
        Err(_) => {
            let server = LocalServer::start()?;
            (server.url(), Some(server))
        }
    };
    let config = QueueConfig::new("example")
        .ack_wait(Duration::from_secs(5))
        .max_held(32)
        .stop_when_idle(Some(Duration::from_secs(1)));
    let client = async_nats::connect(&url).await?;
    let queue = WorkQueue::open(async_nats::jetstream::new(client), config.clone()).await?;
    let mut args = std::env::args().skip(1);
    let items: u64 = args.next().map_or(Ok(1_000), |a| a.parse())?;
    let stage_ms: u64 = args.next().map_or(Ok(5), |a| a.parse())?;
    let stage = Duration::from_millis(stage_ms.min(60_000));
    let started = Instant::now();
    let new = queue
        .producer()
        .publish_all((0..items).map(|i| (format!("item-{i}"), format!("payload {i}").into())))
        .await?;
    println!("published {new} items in {:?}", started.elapsed());

    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..2 {
        // One connection per worker, as one per process.
        let client = async_nats::connect(&url).await?;
        let queue = WorkQueue::open(async_nats::jetstream::new(client), config.clone()).await?;
        workers.push(tokio::spawn(async move {
            let (items, sink) = queue.worker().await?;
            let handle = Pipeline::from_stream(items)
                .io(move |item: QueueItem| async move {
                    // An API call, usually; `item.key` is its idempotency key.
                    tokio::time::sleep(stage).await;
                    Ok::<_, StageError>(item.payload.len())
                })
                .cpu(|len| len * 2)
                .sink(sink.recorder())
                .spawn()?;
            handle.join().await;
            anyhow::Ok((w, sink.finish().await))
        }));
    }
    for worker in workers {
        let (w, report) = worker.await??;
        println!(
            "worker {w}: recorded {}, lost races {}, redelivered {}",
            report.recorded(),
            report.already_recorded,
            report.redelivered
        );
    }
    let elapsed = started.elapsed();
    println!(
        "{items} items in {elapsed:?} ({:.0} items/s); item-7: {:?}; left in the queue: {}",
        items as f64 / elapsed.as_secs_f64(),
        queue.outcome("item-7").await?,
        queue.remaining().await?
    );
    Ok(())
}
