//! Values at the edges (issue 20, defects 2, 9 and 12): a value that
//! validates works, one a machine cannot honour is refused before anything
//! starts, and a live rate change reaches the agents already waiting.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use gearshift::{BuildError, Config, Pipeline, PipelineHandle, Preset, Schedule, StageError};
use tokio::time::Instant;

/// A pipeline whose IO stage counts its calls.
fn counted(n: u64, config: Config) -> (Pipeline<u64>, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let pipeline = Pipeline::from_iter(0..n)
        .io(move |x| {
            counter.fetch_add(1, Ordering::Relaxed);
            async move { Ok::<_, StageError>(x) }
        })
        .cpu(|x| x + 1)
        .config(config);
    (pipeline, calls)
}

/// Waits until `cond` holds, failing the test after `within`.
async fn wait_until(within: Duration, what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Starts `n` items at the slowest rate that validates: the first call goes
/// at once, every other agent waits (11.6 days) for its turn.
async fn stuck_behind_the_slowest_rate(n: u64) -> (PipelineHandle, Arc<AtomicUsize>) {
    let config = Config {
        rate_limit: Some(1e-6),
        ..Config::default().with_cores(2)
    };
    let (pipeline, calls) = counted(n, config);
    let handle = pipeline.spawn().expect("a valid configuration");
    wait_until(Duration::from_secs(10), "the first call", || {
        calls.load(Ordering::Relaxed) >= 1
    })
    .await;
    // Let the other agents book their turns. Nothing is asserted on time:
    // without this, the test would pass before the fix only by luck.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(calls.load(Ordering::Relaxed), 1, "the limit holds");
    (handle, calls)
}

/// Defect 9: `set_rate_limit(None)` woke nobody; the waiters slept until
/// the turns they booked at the old rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifting_the_rate_limit_releases_the_agents_already_waiting() {
    let (handle, calls) = stuck_behind_the_slowest_rate(200).await;
    handle.set_rate_limit(None).unwrap();
    let report = tokio::time::timeout(Duration::from_secs(20), handle.join())
        .await
        .expect("the waiting agents were released");
    assert_eq!(report.ok, 200);
    assert_eq!(calls.load(Ordering::Relaxed), 200);
}

/// Defect 9: raising the rate applies to the waiters too (200 calls at
/// 1000/s take about 0.2 s, not 11.6 days each).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raising_the_rate_limit_applies_to_the_agents_already_waiting() {
    let (handle, _calls) = stuck_behind_the_slowest_rate(200).await;
    handle.set_rate_limit(Some(1000.0)).unwrap();
    let report = tokio::time::timeout(Duration::from_secs(20), handle.join())
        .await
        .expect("the waiting agents took turns at the new rate");
    assert_eq!(report.ok, 200);
}

/// Defect 2: a rate that validated panicked in the limiter.
#[tokio::test]
async fn a_rate_limit_the_limiter_cannot_pace_is_refused() {
    for rate in [f64::MIN_POSITIVE, 1e-300, 1e-7, 1e10] {
        let config = Config {
            rate_limit: Some(rate),
            ..Config::default().with_cores(2)
        };
        let err = config.validate().expect_err("refused");
        assert_eq!(err.field, "rate_limit", "{err}");
        let (pipeline, calls) = counted(10, config);
        assert!(matches!(pipeline.spawn(), Err(BuildError::Config(_))));
        assert_eq!(calls.load(Ordering::Relaxed), 0);
    }
    let (pipeline, _) = counted(10, Config::default().with_cores(2));
    let handle = pipeline.spawn().unwrap();
    let err = handle.set_rate_limit(Some(f64::MIN_POSITIVE)).unwrap_err();
    assert_eq!(err.field, "rate_limit");
    assert_eq!(handle.join().await.ok, 10);
}

/// Defect 12a: a million workers validated, and `spawn` then tried to start
/// a million threads. Refused up front, naming the field and the value.
#[tokio::test]
async fn counts_a_machine_cannot_honour_are_refused_before_anything_starts() {
    let n = 1usize << 20;
    let cases: [(&str, Config); 4] = [
        (
            "workers",
            Config {
                workers: n,
                ..Config::default().with_cores(2)
            },
        ),
        ("cores", Config::default().with_cores(n)),
        (
            "max_workers",
            Config {
                max_workers: Some(n),
                ..Config::default().with_cores(2)
            },
        ),
        (
            "agents",
            Config {
                agents: gearshift::Agents::Total(n),
                ..Config::default().with_cores(2)
            },
        ),
    ];
    for (field, config) in cases {
        let err = config.validate().expect_err(field);
        assert_eq!(err.field, field, "{err}");
        assert!(err.to_string().ends_with(&format!("got {n}")), "{err}");
        let started = Instant::now();
        let (pipeline, _) = counted(10, config);
        assert!(matches!(pipeline.spawn(), Err(BuildError::Config(_))));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "refused at once"
        );
    }
}

/// Defect 12c: `i32::MIN.abs()` overflowed (a panic in debug builds, the
/// offset accepted in release builds).
#[test]
fn a_schedule_offset_of_any_i32_is_refused_without_overflow() {
    for offset in [i32::MIN, i32::MAX, -841, 841] {
        let err = Schedule::time_of_day(offset, [(6, Preset::Morning)]).unwrap_err();
        assert!(err.to_string().contains(&offset.to_string()), "{err}");
    }
}

/// Defect 1 (the pause half): the longest pause a `Retry-After` may impose
/// is a setting, checked like every duration.
#[test]
fn max_pause_is_a_checked_setting() {
    assert_eq!(Config::default().max_pause, Duration::from_secs(300));
    for bad in [Duration::ZERO, Duration::MAX, Duration::from_secs(u64::MAX)] {
        let config = Config {
            max_pause: bad,
            ..Config::default()
        };
        assert_eq!(config.validate().unwrap_err().field, "max_pause");
    }
}

/// The process's peak resident memory, in KiB (Linux).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Defect 12b: a channel capacity of 2^24 validated and was allocated up
/// front (a ring of 2^24 slots per channel: 645 MiB and more for a run of a
/// thousand items). Channels now allocate as they fill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_channel_capacity_costs_nothing_until_it_is_used() {
    let Some(before) = peak_rss_kib() else {
        return; // no /proc: nothing to measure
    };
    let config = Config {
        channel_capacity: 1 << 24,
        items_per_batch: 1 << 24,
        ..Config::default().with_cores(2)
    };
    config.validate().expect("the largest capacity validates");
    let (pipeline, _) = counted(1000, config);
    let (outcomes, report) = tokio::time::timeout(Duration::from_secs(20), pipeline.collect())
        .await
        .expect("finished")
        .expect("started");
    assert_eq!((outcomes.len(), report.ok), (1000, 1000));
    let grown_mib = peak_rss_kib().unwrap_or(before).saturating_sub(before) / 1024;
    assert!(
        grown_mib < 100,
        "a run of 1000 items grew the peak memory by {grown_mib} MiB"
    );
}
