//! What a stage function sees: `io_with` hands it each item's id and the
//! attempt number, `cpu_with` the item's id; and `Outcome::Ok::attempts`
//! counts the IO attempts an item took, summed over the IO stages (CPU
//! stages add none).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gearshift::{Call, ErrorKind, ItemId, Outcome, Pipeline, Report, RetryPolicy, StageError};

/// Every call a stage function saw, per item: the attempt numbers in order.
type Seen = Arc<Mutex<BTreeMap<ItemId, Vec<u32>>>>;

fn fast_retry(attempts: u32) -> RetryPolicy {
    RetryPolicy::attempts(attempts)
        .with_backoff(Duration::from_micros(100), Duration::from_millis(1))
        .retry_if(|e| e.kind() == ErrorKind::Server)
}

/// A stage function for `io_with` that records each call, checks that the
/// call is for the item it got (values are their ids here), and fails the
/// first `fails(id)` attempts of item `id` with a retryable error.
fn flaky(
    seen: &Seen,
    fails: fn(ItemId) -> u32,
) -> impl Fn(u64, Call) -> std::pin::Pin<Box<dyn Future<Output = Result<u64, StageError>> + Send>>
+ Send
+ Sync
+ 'static {
    let seen = Arc::clone(seen);
    move |value: u64, call: Call| {
        seen.lock()
            .unwrap()
            .entry(call.item)
            .or_default()
            .push(call.attempt);
        Box::pin(async move {
            assert_eq!(call.item, value, "the call names the item it carries");
            if call.attempt <= fails(call.item) {
                return Err(StageError::msg(ErrorKind::Server, "injected 503"));
            }
            Ok(value)
        })
    }
}

async fn within<T>(run: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the pipeline finished within 60 s")
}

/// The `attempts` of each `Ok` outcome, by item; every outcome must be `Ok`.
fn attempts_by_item(n: u64, outcomes: Vec<Outcome<u64>>, report: &Report) -> BTreeMap<u64, u32> {
    assert_eq!(report.ok, n, "{report}");
    assert_eq!(outcomes.len() as u64, n);
    outcomes
        .into_iter()
        .map(|o| match o {
            Outcome::Ok {
                id,
                value,
                attempts,
            } => {
                assert_eq!(id, value);
                (id, attempts)
            }
            other => panic!("every item succeeds, got {other:?}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn io_with_sees_each_items_id_and_attempts_and_ok_counts_them() {
    const N: u64 = 60;
    // Every third item fails its first two attempts.
    fn fails(id: ItemId) -> u32 {
        if id % 3 == 0 { 2 } else { 0 }
    }
    let seen: Seen = Arc::default();
    let (outcomes, report) = within(
        Pipeline::from_iter(0..N)
            .io_with(flaky(&seen, fails))
            .retry(fast_retry(3))
            .collect(),
    )
    .await
    .expect("the pipeline builds");
    let attempts = attempts_by_item(N, outcomes, &report);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len() as u64, N, "every item was called");
    for id in 0..N {
        let expected = fails(id) + 1;
        let numbers: Vec<u32> = (1..=expected).collect();
        assert_eq!(seen[&id], numbers, "item {id}'s calls saw attempts 1..=n");
        assert_eq!(attempts[&id], expected, "item {id}'s Outcome::Ok attempts");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_add_up_over_io_stages_and_cpu_stages_add_none() {
    const N: u64 = 90;
    fn first_fails(id: ItemId) -> u32 {
        if id % 3 == 0 { 2 } else { 0 }
    }
    fn second_fails(id: ItemId) -> u32 {
        if id % 2 == 0 { 1 } else { 0 }
    }
    let (first, second): (Seen, Seen) = (Arc::default(), Arc::default());
    let (outcomes, report) = within(
        Pipeline::from_iter(0..N)
            .io_with(flaky(&first, first_fails))
            .named("fetch")
            .retry(fast_retry(3))
            // Through a CPU stage, batched both ways: the count travels with
            // the item, and the stage function sees the item's id.
            .cpu_with(|value: u64, id: ItemId| {
                assert_eq!(id, value, "cpu_with hands on the item's id");
                value
            })
            .io_with(flaky(&second, second_fails))
            .named("upload")
            .retry(fast_retry(2))
            .collect(),
    )
    .await
    .expect("the pipeline builds");
    let attempts = attempts_by_item(N, outcomes, &report);
    let (first, second) = (first.lock().unwrap(), second.lock().unwrap());
    for id in 0..N {
        let (a, b) = (first_fails(id) + 1, second_fails(id) + 1);
        assert_eq!(
            first[&id],
            (1..=a).collect::<Vec<_>>(),
            "item {id} at fetch"
        );
        assert_eq!(
            second[&id],
            (1..=b).collect::<Vec<_>>(),
            "item {id} at upload"
        );
        assert_eq!(
            attempts[&id],
            a + b,
            "item {id}: fetch's attempts plus upload's"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_calls_attempts_count_for_each_of_its_items() {
    const N: u64 = 40;
    let calls = Arc::new(Mutex::new(0u32));
    let count = Arc::clone(&calls);
    let (outcomes, report) = within(
        Pipeline::from_iter(0..N)
            .io_batch(8, move |batch: Vec<u64>| {
                // Every batch's first attempt fails: odd calls, as batches
                // are retried right after their failure by the same agent.
                let call = {
                    let mut c = count.lock().unwrap();
                    *c += 1;
                    *c
                };
                async move {
                    if call % 2 == 1 {
                        return Err(StageError::msg(ErrorKind::Server, "injected 503"));
                    }
                    Ok(batch)
                }
            })
            .agents(gearshift::Agents::Total(1))
            .retry(fast_retry(3))
            .collect(),
    )
    .await
    .expect("the pipeline builds");
    let attempts = attempts_by_item(N, outcomes, &report);
    assert!(
        attempts.values().all(|&a| a == 2),
        "each item's batch took two attempts: {attempts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_of_cpu_stages_only_reports_no_attempts() {
    const N: u64 = 50;
    let (outcomes, report) = within(
        Pipeline::from_iter(0..N)
            .cpu(|x: u64| x)
            .cpu_with(|x, _id| x)
            .collect(),
    )
    .await
    .expect("the pipeline builds");
    let attempts = attempts_by_item(N, outcomes, &report);
    assert!(attempts.values().all(|&a| a == 0), "{attempts:?}");
}
