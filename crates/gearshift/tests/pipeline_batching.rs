//! How the CPU stage forms batches: a batch goes to a free worker at once,
//! and stays small when items are expensive.

use std::time::Duration;

use gearshift::{Agents, Config, Pipeline, StageKind};

fn cpu_batches(report: &gearshift::Report) -> u64 {
    report
        .stages
        .iter()
        .find(|s| s.kind == StageKind::Cpu)
        .expect("a CPU stage")
        .attempts
}

fn one_worker(items_per_batch: usize) -> Config {
    Config {
        agents: Agents::Total(1),
        workers: 1,
        items_per_batch,
        stats_interval: None,
        ..Config::default().with_cores(1)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_item_goes_to_a_free_worker_without_waiting_for_a_batch() {
    // A batch of 1000 that waited to fill would never come: the channel
    // stays open until the item's outcome is back.
    let (tx, rx) = async_channel::unbounded::<u64>();
    let (handle, mut outcomes) = Pipeline::from_channel(rx)
        .cpu(|i: u64| i + 1)
        .config(one_worker(1000))
        .spawn_stream()
        .unwrap();
    for i in 0..3 {
        tx.send(i).await.unwrap();
        let next = tokio::time::timeout(
            Duration::from_secs(30),
            futures::StreamExt::next(&mut outcomes),
        )
        .await
        .expect("the item was held back for a fuller batch");
        assert_eq!(next.and_then(|o| o.ok()), Some(i + 1));
    }
    drop(tx);
    assert_eq!(handle.join().await.ok, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expensive_items_are_not_batched_behind_each_other() {
    let n = 30u64;
    let report = Pipeline::from_iter(0..n)
        .cpu(|i: u64| {
            std::thread::sleep(Duration::from_millis(2));
            i
        })
        .config(one_worker(10))
        .run()
        .await
        .unwrap();
    assert_eq!(report.ok, n);
    // The first two batches (one running, one queued behind it on the one
    // worker) are sized before any cost is known, up to 10 items each; at
    // 2 ms an item, every later batch holds one.
    let batches = cpu_batches(&report);
    assert!(batches > n - 2 * 10, "{batches} batches for {n} items");
}
