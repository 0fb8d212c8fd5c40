//! Stats are views any number of readers can take (issue 21): two window
//! readers of one stage see the same calls, peaks and throttles, however
//! often either reads; and a stage's busy share counts the agents it had, so
//! a shrink never makes it read above 100%.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use gearshift::control::WindowReader;
use gearshift::{Agents, Api, Config, Pipeline, PipelineHandle, RetryPolicy, StageError, Window};

const CALL: Duration = Duration::from_millis(10);

/// An IO stage of `agents` agents whose calls take 10 ms; with `throttle`,
/// item 7's first call is answered 429 with a 1 s `Retry-After`.
fn spawn(items: u64, agents: usize, throttle: bool) -> PipelineHandle {
    let throttled = Arc::new(AtomicBool::new(!throttle));
    Pipeline::from_iter(0..items)
        .io(move |x: u64| {
            let throttle = x == 7 && !throttled.swap(true, Ordering::Relaxed);
            async move {
                tokio::time::sleep(CALL).await;
                if throttle {
                    Err(StageError::rate_limited(Some(Duration::from_secs(1))))
                } else {
                    Ok(x)
                }
            }
        })
        .api(&Api::new("api").max_in_flight(agents))
        .config(Config {
            agents: Agents::Total(agents),
            retry: RetryPolicy::attempts(3),
            stats_interval: None,
            ..Config::default()
        })
        .spawn()
        .unwrap()
}

fn summary(w: &Window) -> (u64, usize, u64, Option<Duration>) {
    (
        w.io_completions,
        w.peak_in_flight,
        w.throttled,
        w.retry_after,
    )
}

#[tokio::test(start_paused = true)]
async fn two_readers_see_the_same_window_of_one_stage() {
    let items = 200;
    let handle = spawn(items, 4, true);
    let (mut a, mut b) = (WindowReader::new(&handle), WindowReader::new(&handle));
    let report = handle.clone().join().await;
    assert_eq!(report.ok, items);
    let (wa, wb) = (a.read(), b.read());
    assert_eq!(
        summary(&wa),
        (items, 4, 1, Some(Duration::from_secs(1))),
        "every call, the peak, the 429 and its Retry-After: {wa:?}"
    );
    assert_eq!(
        summary(&wb),
        summary(&wa),
        "the second reader sees the same: {wb:?}"
    );
    assert_eq!(wa.latency_p50, wb.latency_p50);
    assert_eq!(wa.mean_in_flight, wb.mean_in_flight);
    // A window is what happened since the reader's previous read.
    assert_eq!(summary(&a.read()), (0, 0, 0, None));
}

#[tokio::test(start_paused = true)]
async fn a_reader_that_reads_often_takes_nothing_from_another() {
    let items = 400;
    let handle = spawn(items, 4, true);
    let (mut often, mut once) = (WindowReader::new(&handle), WindowReader::new(&handle));
    let mut windows = Vec::new();
    while !handle.is_finished() {
        tokio::time::sleep(Duration::from_millis(50)).await;
        windows.push(often.read());
    }
    assert_eq!(handle.clone().join().await.ok, items);
    windows.push(often.read());
    let whole = once.read();
    assert!(windows.len() > 10, "{} windows", windows.len());
    let completions: u64 = windows.iter().map(|w| w.io_completions).sum();
    let throttled: u64 = windows.iter().map(|w| w.throttled).sum();
    let peak = windows.iter().map(|w| w.peak_in_flight).max();
    let retry_after = windows.iter().filter_map(|w| w.retry_after).max();
    assert_eq!(
        (completions, peak, throttled, retry_after),
        (
            whole.io_completions,
            Some(whole.peak_in_flight),
            whole.throttled,
            whole.retry_after
        ),
        "the windows of one reader add up to the other's one window: {whole:?}"
    );
    assert_eq!(whole.io_completions, items);
    assert_eq!(
        windows.iter().filter(|w| w.retry_after.is_some()).count(),
        1,
        "a Retry-After is reported in one window only"
    );
}

/// 8 agents busy for 1 s, then 2: against the agents left it read about
/// 2 x 100% (busy 8 + 2 x t agent-seconds over 2 x (1 + t)).
#[tokio::test(start_paused = true)]
async fn busy_never_exceeds_the_capacity_the_stage_had_after_a_shrink() {
    let handle = spawn(1200, 8, false);
    tokio::time::sleep(Duration::from_secs(1)).await;
    handle.set_agents(2).unwrap();
    let report = handle.join().await;
    let stage = &report.stages[0];
    assert_eq!(stage.concurrency_target, 2);
    assert!(
        stage.busy_fraction <= 1.0 && stage.busy_fraction > 0.95,
        "busy {:.3} over {:?} of agent-time\n{report}",
        stage.busy_fraction,
        stage.capacity_provided
    );
    let text = report.to_string();
    let row = text.lines().find(|l| l.starts_with("io-0")).unwrap();
    let row: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        row[6], "2",
        "a finished report shows the agents asked for: {text}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_pause_is_counted_in_every_window_it_spans() {
    let handle = spawn(400, 4, true);
    let mut reader = WindowReader::new(&handle);
    let mut windows = Vec::new();
    while !handle.is_finished() {
        tokio::time::sleep(Duration::from_millis(50)).await;
        windows.push(reader.read());
    }
    assert_eq!(handle.clone().join().await.ok, 400);
    assert!(windows.iter().all(|w| w.paused <= w.elapsed), "{windows:?}");
    // The 1 s `Retry-After` spans about 20 windows of 50 ms: each of those
    // is paused throughout, not only the one the 429 came in.
    let total: Duration = windows.iter().map(|w| w.paused).sum();
    let whole = windows.iter().filter(|w| w.paused == w.elapsed).count();
    assert!(
        total >= Duration::from_millis(950) && total <= Duration::from_secs(1),
        "{total:?}"
    );
    assert!(whole >= 18, "{whole} windows paused throughout");
}

/// 4 agents whose calls take 1 s, read every 300 ms: each window is
/// 4 calls in flight throughout. Only the windows in which calls end see
/// them as the ended calls count it (a call's whole second, at its end).
#[tokio::test(start_paused = true)]
async fn calls_in_flight_count_while_they_run_not_only_when_they_end() {
    let handle = Pipeline::from_iter(0..8u64)
        .io(|x: u64| async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, StageError>(x)
        })
        .api(&Api::new("slow").max_in_flight(4))
        .config(Config {
            agents: Agents::Total(4),
            stats_interval: None,
            ..Config::default()
        })
        .spawn()
        .unwrap();
    let mut reader = WindowReader::new(&handle);
    let mut windows = Vec::new();
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        windows.push(reader.read());
    }
    assert_eq!(handle.join().await.ok, 8);
    for w in &windows {
        assert!(
            (w.mean_in_flight - 4.0).abs() < 0.1,
            "4 calls run throughout every window: {w:?}"
        );
    }
    let ended: Vec<f64> = windows
        .iter()
        .map(|w| w.mean_in_flight_ended.unwrap())
        .collect();
    // The first three windows end no call; the fourth ends four calls of
    // a second each: 4 s over its 300 ms.
    assert!(ended[..3].iter().all(|e| *e == 0.0), "{ended:?}");
    assert!((ended[3] - 4.0 / 0.3).abs() < 0.5, "{ended:?}");
}
