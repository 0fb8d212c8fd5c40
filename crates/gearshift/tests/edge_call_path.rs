//! The agent's call path (issue 21): an agent paces itself (the remote's
//! `Retry-After` pause, the rate limit) before it takes an API permit, so no
//! permit sits idle in an agent that sleeps, and a pause that begins while
//! it waits for a permit still holds its call back.
//!
//! Tokio's paused time: the test task's sleeps advance the clock only when
//! every agent is parked, so each sample sees the agents settled.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use gearshift::{Agents, Api, Config, Pipeline, PipelineHandle, RetryPolicy, StageError};
use tokio::sync::Notify;
use tokio::time::Instant;

/// The calls a stage function saw: the item and when each started.
type Calls = Arc<Mutex<Vec<(u64, Instant)>>>;

/// Samples the stage's permits in use every 500 ms from now until `until`,
/// and returns the most seen.
async fn most_permits_in_use_until(handle: &PipelineHandle, until: Instant) -> usize {
    let mut most = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if Instant::now() >= until {
            return most;
        }
        most = most.max(handle.snapshot().stages[0].permits_in_use);
    }
}

/// One permit, two agents. The first call holds the permit until the test
/// lets it answer 429 with a 10 s `Retry-After`, while the other agent waits
/// for the permit. That agent gets the permit inside the pause: it must give
/// it back and wait the pause out without it (the old order slept on the
/// pause holding it), and no call may start inside the pause.
#[tokio::test(start_paused = true)]
async fn no_permit_is_held_while_waiting_out_a_pause_that_began_during_the_permit_wait() {
    let pause = Duration::from_secs(10);
    let release = Arc::new(Notify::new());
    let throttled_at = Arc::new(Mutex::new(None::<Instant>));
    let calls: Calls = Arc::default();
    let (seen, answer, throttled) = (
        Arc::clone(&calls),
        Arc::clone(&release),
        Arc::clone(&throttled_at),
    );
    let (handle, outcomes) = Pipeline::from_iter(0..2u64)
        .io(move |id: u64| {
            let first = {
                let mut calls = seen.lock().unwrap();
                calls.push((id, Instant::now()));
                calls.len() == 1
            };
            let (answer, throttled) = (Arc::clone(&answer), Arc::clone(&throttled));
            async move {
                if !first {
                    return Ok(id);
                }
                answer.notified().await;
                *throttled.lock().unwrap() = Some(Instant::now());
                Err(StageError::rate_limited(Some(pause)))
            }
        })
        .api(&Api::new("api").max_in_flight(1))
        .config(Config {
            agents: Agents::Total(2),
            retry: RetryPolicy::attempts(2)
                .with_backoff(Duration::from_millis(1), Duration::from_millis(1)),
            ..Config::default()
        })
        .spawn_stream()
        .unwrap();
    // Both agents settle: one in the first call, the other on the permit.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(calls.lock().unwrap().len(), 1, "one permit, one call");
    assert_eq!(handle.snapshot().stages[0].permits_in_use, 1);
    release.notify_one();
    tokio::time::sleep(Duration::from_millis(1)).await;
    let paused_at = throttled_at
        .lock()
        .unwrap()
        .expect("the first call answered 429");
    let resumes = paused_at + pause;
    let most = most_permits_in_use_until(&handle, resumes).await;
    assert_eq!(
        most, 0,
        "an agent held an API permit while it slept on the remote's pause"
    );
    let outcomes: Vec<_> = outcomes.collect().await;
    let report = handle.join().await;
    assert_eq!(outcomes.len(), 2);
    assert!(outcomes.iter().all(|o| o.is_ok()), "{outcomes:?}");
    assert_eq!(report.difference(), 0);
    // Two first calls and one retry; every call after the first starts
    // once the pause is over.
    let calls = calls.lock().unwrap();
    assert_eq!(calls.len(), 3, "{calls:?}");
    for (id, at) in &calls[1..] {
        assert!(
            *at >= resumes,
            "item {id} was called {:?} before the pause ended",
            resumes - *at
        );
    }
}

/// One agent at one call per 10 s: the second call waits for its turn
/// without a permit, whether the agent would take a fresh one (1 permit) or
/// keep its last one (2 permits: the old order kept it through the wait),
/// and the calls stay 10 s apart.
#[tokio::test(start_paused = true)]
async fn no_permit_is_held_while_waiting_for_the_rate_limit() {
    for permits in [1, 2] {
        let calls: Calls = Arc::default();
        let seen = Arc::clone(&calls);
        let (handle, outcomes) = Pipeline::from_iter(0..2u64)
            .io(move |id: u64| {
                seen.lock().unwrap().push((id, Instant::now()));
                async move { Ok::<_, StageError>(id) }
            })
            .api(&Api::new("api").max_in_flight(permits).rate_limit(0.1))
            .config(Config {
                agents: Agents::Total(1),
                ..Config::default()
            })
            .spawn_stream()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
        let first = calls.lock().unwrap().first().expect("the first call").1;
        let turn = first + Duration::from_secs(10);
        let most = most_permits_in_use_until(&handle, turn).await;
        assert_eq!(
            most, 0,
            "{permits} permits: the agent held one while it waited for its turn"
        );
        let outcomes: Vec<_> = outcomes.collect().await;
        handle.join().await;
        assert!(outcomes.iter().all(|o| o.is_ok()), "{outcomes:?}");
        let calls = calls.lock().unwrap();
        assert_eq!(calls.len(), 2, "{calls:?}");
        assert_eq!(calls[1].1 - calls[0].1, Duration::from_secs(10));
    }
}
