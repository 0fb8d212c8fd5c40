//! The fault-injection suite: against the mock API on 127.0.0.1, every item
//! ends as exactly one outcome, checked on a ledger kept outside the
//! pipeline and keyed by item id. Faults are a hash of (seed, id, attempt),
//! so a failing run replays with the same seed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use gearshift::http::HttpFetcher;
use gearshift::{Agents, Config, ErrorKind, Outcome, Pipeline, Preset, RetryPolicy, StageError};
use gearshift_bench::mock_api::{Fault, FaultRates, MockApi, MockConfig, drawn_fault as fault};
use rand::{Rng, SeedableRng};

mod support;

const SEED: u64 = 42;

/// The ledger: outcomes keyed by id; lost, duplicated and unexpected ids
/// must all be zero.
struct Ledger<T> {
    by_id: BTreeMap<u64, Outcome<T>>,
}

impl<T: std::fmt::Debug> Ledger<T> {
    fn new(n: u64, outcomes: Vec<Outcome<T>>) -> Self {
        let mut by_id = BTreeMap::new();
        let mut duplicated = Vec::new();
        for o in outcomes {
            let id = o.id();
            if by_id.insert(id, o).is_some() {
                duplicated.push(id);
            }
        }
        let lost: Vec<u64> = (0..n)
            .filter(|id| !by_id.contains_key(id))
            .take(10)
            .collect();
        let unexpected: Vec<u64> = by_id
            .keys()
            .filter(|id| **id >= n)
            .copied()
            .take(10)
            .collect();
        assert!(duplicated.is_empty(), "duplicated: {duplicated:?}");
        assert!(lost.is_empty(), "lost: {lost:?}");
        assert!(unexpected.is_empty(), "unexpected: {unexpected:?}");
        Ledger { by_id }
    }

    fn kinds(&self) -> BTreeMap<&'static str, u64> {
        let mut h = BTreeMap::new();
        for o in self.by_id.values() {
            let k = match o {
                Outcome::Ok { .. } => "ok",
                Outcome::Failed(f) => f.kind().as_str(),
                Outcome::Cancelled { .. } => "cancelled",
            };
            *h.entry(k).or_default() += 1;
        }
        h
    }
}

fn fast_mock(faults: FaultRates) -> MockApi {
    let mut c = MockConfig::with_latency(Duration::from_millis(1), None);
    c.latency.jitter = 0.0;
    c.faults = faults;
    c.seed = SEED;
    c.payload_bytes = 256;
    c.stall_for = Duration::from_secs(5);
    MockApi::start_with_threads(c, 2).unwrap()
}

/// The HTTP fetcher a user's IO stage would use, GETting `/item/{id}`.
fn fetch_stage(
    api: &MockApi,
    timeout: Duration,
) -> impl Fn(u64) -> futures::future::BoxFuture<'static, Result<bytes::Bytes, StageError>>
+ Send
+ Sync
+ 'static {
    let base = api.base_url();
    let fetcher = HttpFetcher::builder().timeout(timeout).build().unwrap();
    move |id| {
        let (f, url) = (fetcher.clone(), format!("{base}/item/{id}"));
        Box::pin(async move { f.get(&url).await })
    }
}

/// Silences the panics this suite injects ("io panic for {id}", "cpu panic
/// for {id}"), and only those: a failing assertion elsewhere still prints
/// its message. Installed once, so tests running at once do not race on
/// the process-wide hook.
fn quiet_injected_panics() {
    support::quiet_panics_marked(" panic for ");
}

/// What the mock API's own fault draw says each attempt of `id` gets.
fn expected(rates: &FaultRates, id: u64, attempts: u32) -> Result<u32, (Fault, u32)> {
    let mut last = None;
    for attempt in 0..attempts {
        match fault(rates, SEED, id, attempt) {
            None => return Ok(attempt + 1),
            Some(f) => last = Some(f),
        }
    }
    Err((last.expect("attempts > 0"), attempts))
}

fn kind_of(f: Fault) -> ErrorKind {
    match f {
        Fault::ServerError => ErrorKind::Server,
        Fault::RateLimited | Fault::HardLimit => ErrorKind::RateLimited,
        Fault::Stall => ErrorKind::Timeout,
        Fault::Reset => ErrorKind::Reset,
        Fault::Truncated => ErrorKind::BadPayload,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_faults_every_item_ok_or_failed_with_the_right_error() {
    let rates = FaultRates {
        server_error: 0.20,
        stall: 0.05,
        reset: 0.02,
        truncated: 0.01,
        ..FaultRates::default()
    };
    let api = fast_mock(rates.clone());
    let n = 10_000u64;
    // Long enough that only the injected stalls time out, even on a loaded
    // 2-core machine.
    let timeout = Duration::from_millis(600);
    let config = Config {
        agents: Agents::Total(64),
        api_timeout: timeout,
        retry: RetryPolicy::attempts(3)
            .with_backoff(Duration::from_millis(1), Duration::from_millis(5)),
        ..Config::default().with_cores(2)
    };
    let (outcomes, report) = Pipeline::from_iter(0..n)
        .io(fetch_stage(&api, timeout))
        .cpu(|body| body.len())
        .config(config)
        .collect()
        .await
        .unwrap();
    let ledger = Ledger::new(n, outcomes);
    let mut want: BTreeMap<&'static str, u64> = BTreeMap::new();
    for (id, o) in &ledger.by_id {
        match (expected(&rates, *id, 3), o) {
            (Ok(_), Outcome::Ok { value, .. }) => assert_eq!(*value, 256),
            (Err((f, attempts)), Outcome::Failed(failure)) => {
                assert_eq!(failure.kind(), kind_of(f), "item {id}: {failure}");
                assert_eq!(failure.attempts, attempts, "item {id}");
            }
            (want, got) => panic!("item {id}: expected {want:?}, got {got:?}"),
        }
        let k = match expected(&rates, *id, 3) {
            Ok(_) => "ok",
            Err((f, _)) => kind_of(f).as_str(),
        };
        *want.entry(k).or_default() += 1;
    }
    assert_eq!(
        ledger.kinds(),
        want,
        "the reason histogram matches what was injected"
    );
    assert_eq!(report.ok + report.failed, n);
    let stats = api.stats();
    assert!(stats.fault(Fault::ServerError) > 1000, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_sends_nothing_inside_retry_after_windows() {
    let rates = FaultRates {
        rate_limited: 0.08,
        ..FaultRates::default()
    };
    let mut c = MockConfig::with_latency(Duration::from_millis(2), None);
    c.faults = rates;
    c.seed = SEED;
    c.retry_after = Duration::from_secs(1);
    // Requests the client sent before a 429 reached it are on the wire, not
    // inside the window: on a loaded 2-core machine the 429 can take a few
    // milliseconds to be parsed and to pause the stage.
    c.retry_after_grace = Duration::from_millis(25);
    let api = MockApi::start_with_threads(c, 2).unwrap();
    let n = 80u64; // each 429 pauses the stage for a whole second
    let (outcomes, report) = Pipeline::from_iter(0..n)
        .io(fetch_stage(&api, Duration::from_secs(30)))
        .config(Config {
            agents: Agents::Total(8),
            retry: RetryPolicy::attempts(10)
                .with_backoff(Duration::from_millis(1), Duration::from_millis(10)),
            ..Config::default().with_cores(2)
        })
        .collect()
        .await
        .unwrap();
    let ledger = Ledger::new(n, outcomes);
    assert_eq!(
        ledger.kinds().get("ok"),
        Some(&n),
        "every item eventually succeeds"
    );
    let stats = api.stats();
    assert!(
        stats.retry_after_windows >= 1,
        "the storm opened windows: {stats:?}"
    );
    assert_eq!(
        stats.inside_retry_after, 0,
        "requests inside a Retry-After window: {stats:?}"
    );
    assert!(
        report.stages[0].retries >= stats.status(429),
        "each 429 was retried"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panics_in_io_and_cpu_are_failed_outcomes_and_the_run_goes_on() {
    quiet_injected_panics();
    let api = fast_mock(FaultRates::default());
    let n = 3000u64;
    let fetch = fetch_stage(&api, Duration::from_secs(30));
    let panics_io = |id: u64| id % 97 == 5; // about 1%
    let panics_cpu = |id: u64| id % 101 == 7; // about 1%
    let (outcomes, _) = Pipeline::from_iter(0..n)
        .io(move |id: u64| {
            let call = fetch(id);
            async move {
                if panics_io(id) {
                    panic!("io panic for {id}");
                }
                Ok::<_, StageError>((id, call.await?))
            }
        })
        .cpu(move |(id, body): (u64, bytes::Bytes)| {
            if panics_cpu(id) {
                panic!("cpu panic for {id}");
            }
            body.len()
        })
        .config(Config {
            agents: Agents::Total(16),
            ..Config::default().with_cores(2)
        })
        .collect()
        .await
        .unwrap();
    let ledger = Ledger::new(n, outcomes);
    for (id, o) in &ledger.by_id {
        let want_panic = if panics_io(*id) {
            Some(format!("io panic for {id}"))
        } else if panics_cpu(*id) {
            Some(format!("cpu panic for {id}"))
        } else {
            None
        };
        match (want_panic, o) {
            (None, Outcome::Ok { .. }) => {}
            (Some(msg), Outcome::Failed(f)) => {
                assert_eq!(f.kind(), ErrorKind::Panic);
                assert_eq!(f.attempts, 1, "panics are not retried");
                assert!(f.error.to_string().contains(&msg), "{f}");
            }
            (want, got) => panic!("item {id}: expected panic {want:?}, got {got:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resize_storm_over_http_loses_and_repeats_nothing() {
    let rates = FaultRates {
        server_error: 0.05,
        ..FaultRates::default()
    };
    let api = fast_mock(rates.clone());
    let n = 6000u64;
    let fetch = fetch_stage(&api, Duration::from_secs(30));
    let (handle, outcomes) = Pipeline::from_iter(0..n)
        .io(fetch)
        .cpu(|body| body.len())
        .config(Config {
            max_workers: Some(4),
            retry: RetryPolicy::attempts(3)
                .with_backoff(Duration::from_micros(200), Duration::from_millis(2)),
            ..Config::default().with_cores(2)
        })
        .spawn_stream()
        .unwrap();
    let control = handle.clone();
    let storm = tokio::spawn(async move {
        let mut rng = rand::rngs::StdRng::seed_from_u64(SEED);
        for i in 0..1000 {
            match rng.random_range(0..4) {
                0 => control.set_agents(rng.random_range(1..48)).unwrap(),
                1 => control.set_workers(rng.random_range(1..=4)).unwrap(),
                2 => control
                    .set_items_per_batch(rng.random_range(1..64))
                    .unwrap(),
                _ => control.apply(Preset::ALL[i % Preset::ALL.len()]).unwrap(),
            }
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
    });
    let outcomes: Vec<_> = futures::StreamExt::collect(outcomes).await;
    storm.await.unwrap();
    handle.join().await;
    let ledger = Ledger::new(n, outcomes);
    for (id, o) in &ledger.by_id {
        assert_eq!(
            expected(&rates, *id, 3).is_ok(),
            o.is_ok(),
            "item {id}: {o:?}"
        );
    }
    // At-least-once toward the API: each id was requested once per attempt.
    let per_id = api.stats_per_id().per_id.unwrap();
    for id in 0..n {
        let want = match expected(&rates, id, 3) {
            Ok(attempts) => attempts,
            Err((_, attempts)) => attempts,
        };
        assert_eq!(
            per_id.get(&id).copied(),
            Some(want),
            "requests for item {id}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_with_a_deadline_cancels_what_is_unfinished() {
    let mut c = MockConfig::with_latency(Duration::from_millis(200), Some(16));
    c.seed = SEED;
    let api = MockApi::start_with_threads(c, 2).unwrap();
    let n = 5000u64;
    let (handle, outcomes) = Pipeline::from_iter(0..n)
        .io(fetch_stage(&api, Duration::from_secs(30)))
        .cpu(|body| body.len())
        .config(Config {
            agents: Agents::Total(16),
            drain_timeout: Duration::from_secs(2),
            ..Config::default().with_cores(2)
        })
        .spawn_stream()
        .unwrap();
    // Mid-run: calls are in flight (each takes 200 ms).
    support::wait_until(Duration::from_secs(10), "calls are in flight", || {
        handle.snapshot().stages[0].permits_in_use > 0
    })
    .await;
    let before = handle.snapshot();
    let stopped = Instant::now();
    handle.cancel();
    let outcomes: Vec<_> = futures::StreamExt::collect(outcomes).await;
    let report = handle.join().await;
    let waited = stopped.elapsed();
    assert!(
        waited < Duration::from_millis(2600),
        "join took {waited:?} after a 2 s drain deadline"
    );
    let ledger = Ledger::new(n, outcomes);
    let kinds = ledger.kinds();
    assert!(
        kinds.get("cancelled").copied().unwrap_or(0) > 4000,
        "{kinds:?}"
    );
    assert!(
        kinds.get("ok").copied().unwrap_or(0) > before.ok,
        "items inside finished during the drain: {kinds:?}, {} ok before",
        before.ok
    );
    assert_eq!(report.failed, 0);
}

/// Threads of this process, from /proc (Linux).
fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn cancellation_at_twenty_random_points_accounts_for_every_item() {
    let api = fast_mock(FaultRates::default());
    let mut rng = rand::rngs::StdRng::seed_from_u64(SEED);
    let threads_before = thread_count();
    for round in 0..20u64 {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let delay_us = match round % 4 {
            0 => 0,                              // before start
            1 => rng.random_range(100..3000),    // mid-fetch
            2 => rng.random_range(3000..20_000), // mid-batch
            _ => rng.random_range(1000..10_000), // with a slow consumer: channels full
        };
        let abort = round % 2 == 1;
        let n = 2000u64;
        let fetch = fetch_stage(&api, Duration::from_secs(30));
        let alive_tasks = rt.block_on(async {
            let (handle, mut outcomes) = Pipeline::from_iter(0..n)
                .io(fetch)
                .cpu(|body| {
                    std::thread::sleep(Duration::from_micros(50));
                    body.len()
                })
                .config(Config {
                    channel_capacity: 8,
                    items_per_batch: 16,
                    drain_timeout: Duration::from_millis(200),
                    ..Config::default().with_cores(2)
                })
                .spawn_stream()
                .unwrap();
            let control = handle.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_micros(delay_us)).await;
                if abort {
                    control.abort()
                } else {
                    control.cancel()
                }
            });
            let mut got = Vec::new();
            while let Some(o) = futures::StreamExt::next(&mut outcomes).await {
                if round % 4 == 3 {
                    // A slow consumer (busy, not sleeping: the timer's
                    // granularity is a millisecond).
                    let t = Instant::now();
                    while t.elapsed() < Duration::from_micros(20) {
                        std::hint::spin_loop();
                    }
                }
                got.push(o);
            }
            let report = tokio::time::timeout(Duration::from_secs(3), handle.join())
                .await
                .expect("join within the drain timeout");
            Ledger::new(n, got);
            assert_eq!(report.outcomes(), n);
            // Tasks still winding down end soon; one left running never does.
            let metrics = rt.handle().metrics();
            support::wait_until(
                Duration::from_secs(5),
                &format!("round {round}: no task is left running"),
                || metrics.num_alive_tasks() == 0,
            )
            .await;
            metrics.num_alive_tasks()
        });
        assert_eq!(alive_tasks, 0, "round {round}: tasks left running");
        rt.shutdown_timeout(Duration::from_secs(1));
    }
    // Rayon pools and forwarders end with their pipelines.
    support::wait_until_blocking(
        Duration::from_secs(10),
        &format!("the threads end (threads before {threads_before})"),
        || thread_count() <= threads_before + 1,
    );
}
