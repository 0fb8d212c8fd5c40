//! Every input item ends as exactly one outcome: with failures, panics,
//! ordering, dead letters, batch calls and the cancel-on-error policy.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use gearshift::{Config, ErrorKind, OnError, Order, Outcome, Pipeline, RetryPolicy, StageError};
use proptest::prelude::*;
use support::check_ledger;

/// The stage functions below panic on purpose with "io panic on {id}" or
/// "cpu panic on {id}"; only those are kept out of the output.
fn quiet_panics() {
    support::quiet_panics_marked(" panic on ");
}

fn fast_retry(attempts: u32) -> RetryPolicy {
    RetryPolicy::attempts(attempts)
        .with_backoff(Duration::from_micros(100), Duration::from_millis(1))
}

/// What an item's fate is, from its id and the attempt: a fixed hash so a
/// failure replays.
fn fate(seed: u64, id: u64, salt: u64) -> u64 {
    let mut x =
        seed ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    x ^= x >> 33;
    x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    x ^= x >> 33;
    x % 100
}

fn run_with_faults(
    seed: u64,
    n: u64,
    io_fail: u64,
    io_panic: u64,
    cpu_fail: u64,
    cpu_panic: u64,
    attempts: u32,
) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let tries = Arc::new(Mutex::new(vec![0u32; n as usize]));
        let t = Arc::clone(&tries);
        let (outcomes, report) = Pipeline::from_iter(0..n)
            .io(move |id| {
                let attempt = {
                    let mut t = t.lock().unwrap();
                    t[id as usize] += 1;
                    t[id as usize]
                };
                async move {
                    let roll = fate(seed, id, u64::from(attempt));
                    if roll < io_panic {
                        panic!("io panic on {id}");
                    }
                    if roll < io_panic + io_fail {
                        return Err(StageError::msg(ErrorKind::Server, "injected 500"));
                    }
                    Ok(id)
                }
            })
            .try_cpu(move |id: u64| {
                let roll = fate(seed, id, 1000);
                if roll < cpu_panic {
                    panic!("cpu panic on {id}");
                }
                if roll < cpu_panic + cpu_fail {
                    return Err(StageError::msg(
                        ErrorKind::BadPayload,
                        "injected parse error",
                    ));
                }
                Ok(id)
            })
            .config(Config {
                retry: fast_retry(attempts),
                stats_interval: None,
                ..Config::default().with_cores(2)
            })
            .collect()
            .await
            .unwrap();
        check_ledger(n, &outcomes, &report);
        let tries = tries.lock().unwrap();
        for o in &outcomes {
            match o {
                Outcome::Ok {
                    id,
                    value,
                    attempts,
                } => {
                    assert_eq!(id, value);
                    assert_eq!(
                        *attempts, tries[*id as usize],
                        "the IO stage's attempts; the CPU stage adds none"
                    );
                }
                Outcome::Failed(f) => {
                    let id = f.item;
                    match f.kind() {
                        ErrorKind::Panic if f.stage.starts_with("io") => {
                            assert!(
                                f.error.to_string().contains(&format!("io panic on {id}")),
                                "{}",
                                f.error
                            );
                            assert_eq!(f.attempts, tries[id as usize], "panics are not retried");
                        }
                        ErrorKind::Panic => {
                            assert!(f.error.to_string().contains(&format!("cpu panic on {id}")))
                        }
                        ErrorKind::Server => assert_eq!(
                            f.attempts, attempts,
                            "5xx are retried until attempts run out"
                        ),
                        ErrorKind::BadPayload => assert_eq!(&*f.stage, "cpu-1"),
                        other => panic!("unexpected failure kind {other}"),
                    }
                }
                Outcome::Cancelled { id } => panic!("nothing was cancelled, but {id} was"),
            }
        }
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn exactly_one_outcome_per_item_with_random_failures_and_panics(
        seed in any::<u64>(),
        n in 1u64..600,
        io_fail in 0u64..40,
        io_panic in 0u64..5,
        cpu_fail in 0u64..20,
        cpu_panic in 0u64..5,
        attempts in 1u32..4,
    ) {
        quiet_panics();
        run_with_faults(seed, n, io_fail, io_panic, cpu_fail, cpu_panic, attempts);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_output_follows_input_order() {
    let (outcomes, report) = Pipeline::from_iter(0..2000u64)
        .io(|id| async move {
            // Later items finish first within a group.
            tokio::time::sleep(Duration::from_micros(50 * (id % 7))).await;
            Ok::<_, StageError>(id)
        })
        .cpu(|id| id)
        .configure(|c| c.order = Order::Ordered { window: 64 })
        .collect()
        .await
        .unwrap();
    check_ledger(2000, &outcomes, &report);
    let ids: Vec<u64> = outcomes.iter().map(Outcome::id).collect();
    assert_eq!(ids, (0..2000).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_go_to_the_dead_letter_sink() {
    let dead = Arc::new(Mutex::new(Vec::new()));
    let d = Arc::clone(&dead);
    let oks = Arc::new(Mutex::new(Vec::new()));
    let o = Arc::clone(&oks);
    let report = Pipeline::from_iter(0..100u64)
        .try_cpu(|id| {
            if id % 10 == 3 {
                Err(StageError::msg(ErrorKind::BadPayload, "bad"))
            } else {
                Ok(id)
            }
        })
        .sink(move |outcome| o.lock().unwrap().push(outcome))
        .dead_letter(move |failure| d.lock().unwrap().push(failure.item))
        .run()
        .await
        .unwrap();
    assert_eq!((report.ok, report.failed), (90, 10));
    let mut dead = dead.lock().unwrap().clone();
    dead.sort();
    assert_eq!(dead, (0..10).map(|i| i * 10 + 3).collect::<Vec<_>>());
    let oks = oks.lock().unwrap();
    assert_eq!(oks.len(), 90);
    assert!(
        oks.iter().all(Outcome::is_ok),
        "failures must not reach the main sink"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_on_error_stops_the_run_and_accounts_for_everything() {
    let n = 5000u64;
    let (outcomes, report) = Pipeline::from_iter(0..n)
        .io(|id| async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            if id == 100 {
                Err(StageError::msg(ErrorKind::Rejected, "no"))
            } else {
                Ok(id)
            }
        })
        .config(Config {
            on_error: OnError::Cancel,
            drain_timeout: Duration::from_millis(200),
            ..Config::default().with_cores(2)
        })
        .collect()
        .await
        .unwrap();
    let (ok, failed, cancelled) = check_ledger(n, &outcomes, &report);
    assert_eq!(failed, 1);
    assert!(cancelled > 0, "the run stopped early");
    assert!(ok < n - 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_calls_take_several_items_each() {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let c = Arc::clone(&calls);
    let (outcomes, report) = Pipeline::from_iter(0..500u64)
        .io_batch(16, move |ids: Vec<u64>| {
            c.lock().unwrap().push(ids.len());
            async move {
                tokio::time::sleep(Duration::from_millis(2)).await;
                Ok::<_, StageError>(ids.into_iter().map(|id| id + 1).collect::<Vec<_>>())
            }
        })
        .collect()
        .await
        .unwrap();
    check_ledger(500, &outcomes, &report);
    assert!(outcomes.into_iter().all(|o| {
        let id = o.id();
        o.ok() == Some(id + 1)
    }));
    let calls = calls.lock().unwrap();
    assert!(calls.iter().all(|n| (1..=16).contains(n)));
    assert!(
        calls.len() < 500,
        "calls should batch items, made {}",
        calls.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_call_with_the_wrong_output_count_fails_its_items() {
    let (outcomes, report) = Pipeline::from_iter(0..50u64)
        .io_batch(8, |ids: Vec<u64>| async move {
            Ok::<_, StageError>(vec![0u64; ids.len() - 1])
        })
        .collect()
        .await
        .unwrap();
    check_ledger(50, &outcomes, &report);
    assert_eq!(
        report.failures_by_kind.get(&ErrorKind::BadPayload),
        Some(&50)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_and_item_deadlines_fail_items() {
    let (outcomes, report) = Pipeline::from_iter(0..20u64)
        .io(|id| async move {
            if id % 2 == 0 {
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
            Ok::<_, StageError>(id)
        })
        .config(Config {
            api_timeout: Duration::from_millis(50),
            item_deadline: Some(Duration::from_millis(120)),
            retry: fast_retry(10),
            ..Config::default()
        })
        .collect()
        .await
        .unwrap();
    check_ledger(20, &outcomes, &report);
    assert_eq!(report.ok, 10);
    for o in outcomes {
        if let Outcome::Failed(f) = o {
            assert_eq!(f.kind(), ErrorKind::Timeout);
            // 120 ms hold at most 3 attempts of 50 ms; on a loaded machine
            // fewer may fit (no retry starts that could not before the
            // deadline), never more.
            assert!(
                (1..=3).contains(&f.attempts),
                "the deadline bounds retries, got {}",
                f.attempts
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_if_chooses_what_is_retried() {
    let (outcomes, report) = Pipeline::from_iter(0..10u64)
        .io(|_| async move { Err::<u64, _>(StageError::msg(ErrorKind::Server, "500")) })
        .config(Config {
            retry: fast_retry(3).retry_if(|e| e.kind() != ErrorKind::Server),
            ..Config::default()
        })
        .collect()
        .await
        .unwrap();
    check_ledger(10, &outcomes, &report);
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Outcome::Failed(f) if f.attempts == 1))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallible_sources_record_their_errors() {
    let items = futures::stream::iter((0..10u64).map(|i| {
        if i == 4 {
            Err(std::io::Error::other("disk"))
        } else {
            Ok(i)
        }
    }));
    let (outcomes, report) = Pipeline::from_try_stream(items)
        .cpu(|x| x)
        .collect()
        .await
        .unwrap();
    check_ledger(10, &outcomes, &report);
    assert!(
        matches!(&outcomes.iter().find(|o| o.id() == 4), Some(Outcome::Failed(f)) if &*f.stage == "source")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_and_single_item_sources_finish() {
    let (outcomes, report) = Pipeline::from_iter(Vec::<u64>::new())
        .cpu(|x| x)
        .collect()
        .await
        .unwrap();
    assert!(outcomes.is_empty() && report.finished && report.outcomes() == 0);
    let (outcomes, report) = Pipeline::from_iter([7u64])
        .io(|x| async move { Ok::<_, StageError>(x) })
        .collect()
        .await
        .unwrap();
    check_ledger(1, &outcomes, &report);
}
