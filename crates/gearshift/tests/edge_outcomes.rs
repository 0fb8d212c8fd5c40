//! Every item ends as exactly one outcome at the edges: agents and workers
//! that panic outside the stage function, waits that outlast the item's
//! deadline, results held behind an agent's waits, a slow dead-letter sink,
//! and the report's own check of items taken against outcomes.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use gearshift::{
    Agents, Config, ErrorKind, Order, Outcome, Pipeline, Report, RetryPolicy, StageError,
};
use tokio::time::Instant;

/// An item whose `Clone` panics: a retry clones the item outside the stage
/// function, in the agent itself.
#[derive(Debug)]
struct CloneBomb(u64);

impl Clone for CloneBomb {
    fn clone(&self) -> Self {
        panic!("clone of item {} panicked", self.0)
    }
}

fn assert_one_outcome_each<T>(outcomes: &[Outcome<T>], items: u64, report: &Report) {
    let ids: HashSet<u64> = outcomes.iter().map(Outcome::id).collect();
    assert_eq!(outcomes.len() as u64, items, "one outcome per item");
    assert_eq!(ids.len() as u64, items, "no item twice");
    assert_eq!(report.taken, items);
    assert_eq!(report.outcomes(), items);
    assert_eq!(report.difference(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_panics_fails_its_items_and_is_replaced() {
    let items = 20u64;
    let calls = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&calls);
    let run = Pipeline::from_iter((0..items).map(CloneBomb))
        .io(move |item: CloneBomb| {
            counted.fetch_add(1, Ordering::Relaxed);
            async move { Ok::<_, StageError>(item.0) }
        })
        .config(Config {
            agents: Agents::Total(2),
            retry: RetryPolicy::attempts(3),
            ..Config::default()
        })
        .collect();
    let (outcomes, report) = tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("the run ends although every agent panics")
        .unwrap();
    assert_one_outcome_each(&outcomes, items, &report);
    for o in &outcomes {
        let Outcome::Failed(f) = o else {
            panic!("item {} should have failed: {o:?}", o.id())
        };
        assert_eq!(f.kind(), ErrorKind::Panic);
        assert!(
            f.error.to_string().contains("agent panicked"),
            "{}",
            f.error
        );
    }
    // The clone panics before any call: each item met a fresh agent.
    assert_eq!(calls.load(Ordering::Relaxed), 0);
}

/// An item whose `Drop` panics once armed.
struct DropBomb {
    armed: Arc<AtomicBool>,
}

impl Drop for DropBomb {
    fn drop(&mut self) {
        if self.armed.load(Ordering::Relaxed) && !std::thread::panicking() {
            panic!("drop panicked");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_panics_outside_the_stage_function_fails_its_batch() {
    let armed = Arc::new(AtomicBool::new(false));
    let items: Vec<DropBomb> = (0..10)
        .map(|_| DropBomb {
            armed: Arc::clone(&armed),
        })
        .collect();
    let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let go_rx = std::sync::Mutex::new(go_rx);
    let first = AtomicBool::new(true);
    let (handle, outcomes) = Pipeline::from_iter(items)
        .cpu(move |bomb: DropBomb| {
            // The stage consumes the item without dropping it.
            std::mem::forget(bomb);
            if first.swap(false, Ordering::Relaxed) {
                let _ = started_tx.send(());
                let _ = go_rx.lock().unwrap().recv_timeout(Duration::from_secs(10));
            }
            1u64
        })
        .config(Config {
            workers: 1,
            max_workers: Some(1),
            items_per_batch: 10,
            ..Config::default().with_cores(1)
        })
        .spawn_stream()
        .unwrap();
    tokio::task::spawn_blocking(move || started_rx.recv_timeout(Duration::from_secs(10)))
        .await
        .unwrap()
        .expect("the first item runs");
    // Items after the first are cancelled by the abort, and dropping them
    // panics inside the worker, outside the stage function.
    armed.store(true, Ordering::Relaxed);
    handle.abort();
    go_tx.send(()).unwrap();
    let outcomes: Vec<_> = tokio::time::timeout(Duration::from_secs(20), outcomes.collect())
        .await
        .expect("the run ends although a worker panicked");
    armed.store(false, Ordering::Relaxed);
    let report = handle.join().await;
    assert_one_outcome_each(&outcomes, 10, &report);
    let worker_panics = outcomes
        .iter()
        .filter(
            |o| matches!(o, Outcome::Failed(f) if f.error.to_string().contains("worker panicked")),
        )
        .count();
    assert!(worker_panics >= 1, "{outcomes:?}");
}

/// A stage function that answers 429 with `Retry-After` on the first
/// attempt of odd items, and succeeds otherwise.
fn throttle_odd_items(
    retry_after: Duration,
) -> impl Fn(u64) -> futures::future::Ready<Result<u64, StageError>> + Send + Sync + 'static {
    let tried = Arc::new(std::sync::Mutex::new(HashSet::new()));
    move |id: u64| {
        let first = tried.lock().unwrap().insert(id);
        futures::future::ready(if id % 2 == 1 && first {
            Err(StageError::rate_limited(Some(retry_after)))
        } else {
            Ok(id)
        })
    }
}

#[tokio::test(start_paused = true)]
async fn the_item_deadline_bounds_the_wait_for_a_retry_after_pause() {
    let deadline = Duration::from_millis(300);
    let started = Instant::now();
    let (handle, outcomes) = Pipeline::from_iter(0..40u64)
        .io(throttle_odd_items(Duration::from_secs(1)))
        .config(Config {
            agents: Agents::Total(4),
            item_deadline: Some(deadline),
            retry: RetryPolicy::attempts(5),
            ..Config::default()
        })
        .spawn_stream()
        .unwrap();
    let outcomes: Vec<_> = outcomes.collect().await;
    let report = handle.join().await;
    assert_one_outcome_each(&outcomes, 40, &report);
    // Every item is taken at once (4 agents, instant calls between pauses),
    // so none may end later than its deadline after the start.
    let took = started.elapsed();
    assert!(
        took <= deadline + Duration::from_millis(50),
        "the last outcome came {took:?} after the start, past the {deadline:?} deadline"
    );
    let timed_out = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Failed(f) if f.kind() == ErrorKind::Timeout))
        .count();
    assert!(timed_out > 0, "a 1 s pause cannot fit in a 300 ms deadline");
}

#[tokio::test(start_paused = true)]
async fn a_finished_result_is_not_held_behind_its_agents_pause_or_backoff() {
    for (what, error) in [
        (
            "a Retry-After pause",
            StageError::rate_limited(Some(Duration::from_secs(2))),
        ),
        (
            "a backoff",
            StageError::msg(ErrorKind::Server, "503 without Retry-After"),
        ),
    ] {
        let failed_once = Arc::new(AtomicBool::new(false));
        let (handle, mut outcomes) = Pipeline::from_iter(0..2u64)
            .io(move |id: u64| {
                let fail = id == 1 && !failed_once.swap(true, Ordering::Relaxed);
                let error = error.clone();
                async move { if fail { Err(error) } else { Ok(id) } }
            })
            .config(Config {
                agents: Agents::Total(1),
                items_per_batch: 10,
                retry: RetryPolicy::attempts(2)
                    .with_backoff(Duration::from_secs(2), Duration::from_secs(2)),
                ..Config::default()
            })
            .spawn_stream()
            .unwrap();
        let started = Instant::now();
        let first = outcomes.next().await.expect("an outcome");
        assert_eq!(first.id(), 0, "{what}");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "item 0 waited {:?} behind {what} of item 1",
            started.elapsed()
        );
        let rest: Vec<_> = outcomes.collect().await;
        assert!(rest.len() == 1 && rest[0].is_ok(), "{what}: {rest:?}");
        handle.join().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_dead_letter_sink_pushes_back_on_failing_stages() {
    let items = 4000u64;
    let delivered = Arc::new(AtomicU64::new(0));
    let seen = Arc::clone(&delivered);
    let handle = Pipeline::from_iter(0..items)
        .io(|id: u64| async move {
            Err::<u64, _>(StageError::msg(
                ErrorKind::Rejected,
                format!("{id} refused"),
            ))
        })
        .dead_letter(move |_failure| {
            std::thread::sleep(Duration::from_micros(200));
            seen.fetch_add(1, Ordering::Relaxed);
        })
        .spawn()
        .unwrap();
    // Failed items waiting for the sink are bounded by the ended-items
    // channel (1024) and the dead-letter channel (the channel capacity),
    // plus what agents and the collector hold.
    let bound = 1024 + Config::default().channel_capacity as u64 + 256;
    let mut most_waiting = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !handle.is_finished() {
        assert!(Instant::now() < deadline, "the run did not finish");
        let failed: u64 = handle.snapshot().stages.iter().map(|s| s.failed).sum();
        most_waiting = most_waiting.max(failed.saturating_sub(delivered.load(Ordering::Relaxed)));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let report = handle.join().await;
    assert_eq!(report.failed, items);
    assert_eq!(report.difference(), 0);
    assert!(
        most_waiting <= bound,
        "{most_waiting} failed items waited for the sink at once (bound {bound})"
    );
}

#[tokio::test]
async fn the_report_counts_items_taken_against_outcomes() {
    let (handle, outcomes) =
        Pipeline::from_try_stream(futures::stream::iter((0..30u64).map(|i| {
            if i % 10 == 0 {
                Err(StageError::msg(ErrorKind::Other, "bad"))
            } else {
                Ok(i)
            }
        })))
        .io(|x: u64| async move { Ok::<_, StageError>(x) })
        .config(Config {
            order: Order::Ordered { window: 8 },
            ..Config::default()
        })
        .spawn_stream()
        .unwrap();
    let outcomes: Vec<_> = outcomes.collect().await;
    let report = handle.join().await;
    assert_one_outcome_each(&outcomes, 30, &report);
    assert_eq!((report.ok, report.failed), (27, 3));
    assert!(!report.to_string().contains("ERROR"), "{report}");
}
