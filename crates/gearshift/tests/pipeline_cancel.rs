//! Cancellation and bounded memory: every item accounted for, nothing hangs.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use gearshift::{Config, Outcome, Pipeline, StageError};
use support::check_ledger;

fn slow_pipeline(n: u64, drain: Duration) -> Pipeline<u64> {
    Pipeline::from_iter(0..n)
        .io(|id| async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok::<_, StageError>(id)
        })
        .cpu(|x| {
            std::thread::sleep(Duration::from_micros(200));
            x
        })
        .config(Config {
            drain_timeout: drain,
            channel_capacity: 32,
            ..Config::default().with_cores(2)
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_mid_run_accounts_for_every_item() {
    let n = 5000;
    let (handle, outcomes) = slow_pipeline(n, Duration::from_millis(300))
        .spawn_stream()
        .unwrap();
    // Mid-run: some items are done, most are not.
    support::wait_until(Duration::from_secs(10), "the first items are done", || {
        handle.snapshot().ok > 0
    })
    .await;
    handle.cancel();
    let started = std::time::Instant::now();
    let outcomes: Vec<_> = futures::StreamExt::collect(outcomes).await;
    let report = handle.join().await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "join returned within the drain timeout"
    );
    let (ok, failed, cancelled) = check_ledger(n, &outcomes, &report);
    assert_eq!(failed, 0);
    assert!(ok > 0 && cancelled > 0, "ok {ok}, cancelled {cancelled}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_cancel_lets_items_inside_finish() {
    let n = 2000;
    let (handle, outcomes) = slow_pipeline(n, Duration::from_secs(10))
        .spawn_stream()
        .unwrap();
    support::wait_until(Duration::from_secs(10), "the first items are done", || {
        handle.snapshot().ok > 0
    })
    .await;
    let before = handle.snapshot();
    handle.cancel();
    let outcomes: Vec<_> = futures::StreamExt::collect(outcomes).await;
    let report = handle.join().await;
    check_ledger(n, &outcomes, &report);
    // Items that were inside the pipeline at the stop finished, so more
    // succeeded than had at the moment of the stop.
    assert!(report.ok > before.ok);
    assert!(
        outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Cancelled { .. }))
            .count() as u64
            == report.cancelled
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_before_anything_runs() {
    let (handle, outcomes) = slow_pipeline(1000, Duration::from_secs(10))
        .spawn_stream()
        .unwrap();
    handle.abort();
    let outcomes: Vec<_> = futures::StreamExt::collect(outcomes).await;
    let report = handle.join().await;
    let (_, failed, cancelled) = check_ledger(1000, &outcomes, &report);
    assert_eq!(failed, 0);
    assert!(cancelled > 900);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_sources_cancel_what_is_left_in_the_channel() {
    let (tx, rx) = async_channel::bounded(1000);
    for i in 0..1000u64 {
        tx.try_send(i).unwrap();
    }
    let (handle, outcomes) = Pipeline::from_channel(rx)
        .io(|id| async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            Ok::<_, StageError>(id)
        })
        .configure(|c| c.drain_timeout = Duration::from_millis(50))
        .spawn_stream()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    handle.cancel();
    let outcomes: Vec<_> = futures::StreamExt::collect(outcomes).await;
    let report = handle.join().await;
    check_ledger(1000, &outcomes, &report);
    assert!(tx.is_closed(), "the source channel is closed on cancel");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_items_through_channels_of_eight() {
    let n = 100_000u64;
    let peak = Arc::new(AtomicUsize::new(0));
    let inside = Arc::new(AtomicUsize::new(0));
    let (i1, p1) = (Arc::clone(&inside), Arc::clone(&peak));
    let i2 = Arc::clone(&inside);
    let config = Config {
        channel_capacity: 8,
        items_per_batch: 4,
        ..Config::default().with_cores(2)
    };
    let (handle, outcomes) = Pipeline::from_iter(0..n)
        .io(move |id| {
            let now = i1.fetch_add(1, Ordering::SeqCst) + 1;
            p1.fetch_max(now, Ordering::SeqCst);
            async move { Ok::<_, StageError>(id) }
        })
        .cpu(|x| x ^ 1)
        .config(config.clone())
        .spawn_stream()
        .unwrap();
    let mut count = 0u64;
    let mut outcomes = outcomes;
    while let Some(o) = futures::StreamExt::next(&mut outcomes).await {
        i2.fetch_sub(1, Ordering::SeqCst);
        assert!(o.is_ok());
        count += 1;
    }
    let report = handle.join().await;
    assert_eq!((count, report.ok), (n, n));
    // Items between the IO call and the consumer: up to the collector, then
    // the outcome stream's buffer and the one being read.
    let bound = support::held_from_io_to_collector(&config) + config.channel_capacity + 1;
    let peak = peak.load(Ordering::SeqCst);
    assert!(peak <= bound, "peak {peak} items held, bound {bound}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_handle_lets_the_run_finish() {
    let done = Arc::new(AtomicUsize::new(0));
    let d = Arc::clone(&done);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let mut tx = Some(tx);
    let handle = Pipeline::from_iter(0..100u64)
        .cpu(|x| x)
        .sink(move |_| {
            if d.fetch_add(1, Ordering::SeqCst) + 1 == 100 {
                let _ = tx.take().unwrap().send(());
            }
        })
        .spawn()
        .unwrap();
    drop(handle);
    tokio::time::timeout(Duration::from_secs(5), rx)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.load(Ordering::SeqCst), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_outcome_stream_does_not_stall_the_run() {
    let (handle, outcomes) = Pipeline::from_iter(0..10_000u64)
        .cpu(|x| x)
        .spawn_stream()
        .unwrap();
    drop(outcomes);
    let report = tokio::time::timeout(Duration::from_secs(10), handle.join())
        .await
        .unwrap();
    assert_eq!(report.ok, 10_000);
}
