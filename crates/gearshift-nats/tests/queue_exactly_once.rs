//! Every item gets exactly one outcome, with two workers sharing a queue,
//! and with two workers racing on one redelivered item.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use gearshift::{Pipeline, StageError};
use gearshift_nats::{LocalServer, QueueConfig, QueueItem, Status};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_item_gets_exactly_one_outcome() {
    init_tracing();
    let Some(server) = LocalServer::for_test() else {
        return;
    };
    let config = QueueConfig::new("once")
        .max_held(16)
        .max_batch(8)
        .fetch_expiry(Duration::from_millis(200))
        .stop_when_idle(Some(Duration::from_millis(800)));
    let queue = open(&server, config.clone()).await;
    let keys = publish(&queue, "item", 300).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for w in 0..2 {
        let queue = open(&server, config.clone()).await;
        let calls = Arc::clone(&calls);
        workers.push(tokio::spawn(async move {
            let (items, sink) = queue.worker().await.expect("worker");
            let handle = Pipeline::from_stream(items)
                .io(move |item: QueueItem| {
                    let calls = Arc::clone(&calls);
                    async move {
                        calls.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        Ok::<_, StageError>(format!("w{w}:{}", item.key))
                    }
                })
                .sink(sink.recorder())
                .spawn()
                .expect("spawn");
            let report = handle.join().await;
            (report.ok, sink.finish().await)
        }));
    }
    let mut recorded_total = 0;
    for w in workers {
        let (ok, report) = w.await.expect("worker task");
        println!("worker: {ok} ok, {report:?}");
        assert_eq!(
            report.recorded(),
            ok,
            "each outcome this worker had was recorded"
        );
        assert_eq!(report.record_errors, 0);
        recorded_total += report.recorded();
    }
    assert_eq!(
        recorded_total, 300,
        "one outcome per item between the workers"
    );
    assert_eq!(recorded(&queue, &keys).await, 300);
    for key in &keys[..5] {
        let record = queue.outcome(key).await.unwrap().unwrap();
        assert_eq!(record.status, Status::Ok);
        assert!(
            record
                .value
                .unwrap()
                .as_str()
                .unwrap()
                .ends_with(&format!("m.{key}"))
        );
    }
    assert_eq!(queue.remaining().await.unwrap(), 0, "every item acked");
    assert_eq!(
        calls.load(Ordering::Relaxed),
        300,
        "no redelivery without a fault"
    );
}

/// Worker A takes the item and stalls past `ack_wait` (its heartbeat is
/// set for a 30 s `ack_wait`, the server's is 1 s); B gets the redelivery
/// and records first; A's outcome loses the `create` and only acks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_racing_on_a_redelivered_item_record_one_outcome() {
    init_tracing();
    let Some(server) = LocalServer::for_test() else {
        return;
    };
    let fast = QueueConfig::new("race")
        .ack_wait(Duration::from_secs(1))
        .fetch_expiry(Duration::from_millis(200));
    let queue_b = open(&server, fast.clone()).await;
    let keys = publish(&queue_b, "race", 1).await;
    // A's heartbeat runs every 10 s: it stalls, as a paused process would.
    let queue_a = open(&server, fast.clone().ack_wait(Duration::from_secs(30))).await;

    let (a_items, a_sink) = queue_a.worker().await.unwrap();
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    let slot = Arc::new(std::sync::Mutex::new(Some((started_tx, release_rx))));
    let a = Pipeline::from_stream(a_items)
        .io(move |_item: QueueItem| {
            let slot = slot.lock().unwrap().take();
            async move {
                if let Some((started, release)) = slot {
                    let _ = started.send(());
                    let _ = release.await;
                }
                Ok::<_, StageError>("A")
            }
        })
        .sink(a_sink.recorder())
        .spawn()
        .unwrap();
    started_rx.await.expect("A took the item");
    a_sink.stop_taking();

    let (b_items, b_sink) = queue_b.worker().await.unwrap();
    let b = Pipeline::from_stream(b_items)
        .io(|_item: QueueItem| async move { Ok::<_, StageError>("B") })
        .sink(b_sink.recorder())
        .spawn()
        .unwrap();
    wait_until(
        Duration::from_secs(10),
        "B records the redelivered item",
        || async { recorded(&queue_b, &keys).await == 1 },
    )
    .await;
    release_tx.send(()).unwrap();
    a.join().await;
    let a_report = a_sink.finish().await;
    b_sink.stop_taking();
    b.join().await;
    let b_report = b_sink.finish().await;

    let record = queue_b.outcome(&keys[0]).await.unwrap().unwrap();
    assert_eq!(
        record.value,
        Some(serde_json::json!("B")),
        "the first writer's outcome stays"
    );
    assert_eq!(record.delivery, 2);
    assert_eq!(b_report.recorded_ok, 1);
    assert_eq!(a_report.recorded(), 0, "A lost the create: {a_report:?}");
    assert_eq!(a_report.already_recorded, 1);
    assert_eq!(queue_b.remaining().await.unwrap(), 0);
}
