//! How results travel in batches: the CPU stage sends a batch to a free
//! worker at once and keeps batches small when items are expensive; an IO
//! agent passes on the results it holds before it waits.

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_passes_its_results_on_before_it_waits_on_a_call() {
    // One agent, batches of 1000: item 0's call is done at once, item 1's
    // waits until item 0 has come out of the CPU stage. An agent that held
    // item 0 in its outbox until the batch filled would never see item 1's
    // call finish.
    let (arrived_tx, arrived_rx) = async_channel::bounded::<()>(1);
    let (tx, rx) = async_channel::unbounded::<u64>();
    tx.send(0).await.unwrap();
    tx.send(1).await.unwrap();
    let (handle, mut outcomes) = Pipeline::from_channel(rx)
        .io(move |i: u64| {
            let arrived = arrived_rx.clone();
            async move {
                if i == 1 {
                    arrived.recv().await.expect("item 0 arrives");
                }
                Ok::<_, gearshift::StageError>(i)
            }
        })
        .cpu(move |i: u64| {
            if i == 0 {
                arrived_tx.try_send(()).expect("room for the signal");
            }
            i
        })
        .config(one_worker(1000))
        .spawn_stream()
        .unwrap();
    for expected in 0..2 {
        let next = tokio::time::timeout(
            Duration::from_secs(30),
            futures::StreamExt::next(&mut outcomes),
        )
        .await
        .expect("item 0 was held in the agent's outbox behind item 1's call");
        assert_eq!(next.and_then(|o| o.ok()), Some(expected));
    }
    drop(tx);
    assert_eq!(handle.join().await.ok, 2);
}
