//! `gearshift-bench cluster` for a small case against a real nats-server:
//! two worker processes (the real binary), one killed with SIGKILL
//! mid-run and restarted, and every item recorded exactly once.

use std::time::Duration;

use gearshift_bench::cluster::{Options, run_row};
use gearshift_nats::LocalServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_loses_and_duplicates_nothing() {
    // Skips (or fails under CI) without nats-server; the row starts its own.
    let Some(probe) = LocalServer::for_test() else {
        return;
    };
    drop(probe);
    let options = Options {
        processes: 2,
        items: 600,
        kill: true,
        // 8 calls at 20 ms: 400 items/s, so the kill lands mid-run.
        capacity: 8,
        base: Duration::from_millis(20),
        ack_wait: Duration::from_secs(1),
        broker_restart: false,
        deadline: Duration::from_secs(25),
        worker_exe: env!("CARGO_BIN_EXE_gearshift-bench").into(),
    };
    let row = run_row(&options).await.expect("run the row");
    println!("{row:?}");
    assert!(!row.timed_out, "{row:?}");
    assert_eq!(row.killed, 1, "{row:?}");
    assert_eq!(row.lost, 0, "{row:?}");
    assert_eq!(row.duplicated, 0, "{row:?}");
    assert_eq!(row.recorded, 600, "{row:?}");
    // The dead worker held items: they were taken again, within ack_wait
    // of the kill (and a second of slack for a loaded machine).
    assert!(row.redelivered > 0, "{row:?}");
    let redelivery = row.redelivery_s.expect("a redelivery time");
    assert!(redelivery <= 2.0, "{row:?}");
}

/// The duplicate count is not zero by construction: a second write to a
/// key shows, though the bucket keeps one value per key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_write_to_an_outcome_key_counts_as_a_duplicate() {
    use gearshift_bench::cluster::measure::bucket_writes;
    let Some(server) = LocalServer::for_test() else {
        return;
    };
    let js = async_nats::jetstream::new(async_nats::connect(server.url()).await.expect("connect"));
    let config = gearshift_nats::QueueConfig::new("dups");
    let bucket = config.outcome_bucket();
    gearshift_nats::WorkQueue::open(js.clone(), config)
        .await
        .expect("open the queue");
    let kv = gearshift_nats::key_value(&js, &bucket)
        .await
        .expect("bucket");
    kv.put("m.item-0", "a".into()).await.expect("put");
    kv.put("m.item-1", "b".into()).await.expect("put");
    let (keys, writes) = bucket_writes(&js, &bucket).await.expect("read");
    assert_eq!(writes - keys, 0);
    // What the queue never does: write a recorded item's outcome again.
    kv.put("m.item-0", "c".into()).await.expect("put");
    // A create that loses is refused and takes no sequence.
    assert!(kv.create("m.item-1", "d".into()).await.is_err());
    let (keys, writes) = bucket_writes(&js, &bucket).await.expect("read");
    assert_eq!((keys, writes), (2, 3));
}
