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
