//! The mock API against a real reqwest client on 127.0.0.1: payloads,
//! latency model, fault rates, determinism, 429/Retry-After and the
//! inside-window counter.

use std::time::{Duration, Instant};

use futures::StreamExt;
use gearshift::ErrorKind;
use gearshift_bench::client::{fetch, http_client};
use gearshift_bench::mock_api::{Fault, FaultRates, MockApi, MockConfig, payload};

fn api(config: MockConfig) -> MockApi {
    MockApi::start(config).expect("mock api starts")
}

/// Fetches ids `0..n` with `c` in flight; returns each id's result kind
/// (None for Ok) and how long it took.
async fn fetch_all(
    api: &MockApi,
    ids: impl Iterator<Item = u64>,
    c: usize,
    timeout: Duration,
) -> Vec<(u64, Option<ErrorKind>, Duration)> {
    let client = http_client().unwrap();
    futures::stream::iter(ids)
        .map(|id| {
            let client = client.clone();
            let url = api.item_url(id);
            async move {
                let t = Instant::now();
                let r = fetch(&client, &url, timeout).await;
                let kind = match r {
                    Ok(body) => {
                        assert_eq!(body, payload(id, 4096), "payload of {id}");
                        None
                    }
                    Err(e) => Some(e.kind()),
                };
                (id, kind, t.elapsed())
            }
        })
        .buffer_unordered(c)
        .collect()
        .await
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn below_capacity_latency_is_base() {
    let mut config = MockConfig::with_latency(Duration::from_millis(20), Some(8));
    config.latency.jitter = 0.0;
    let api = api(config);
    let got = fetch_all(&api, 0..64, 4, Duration::from_secs(5)).await;
    assert!(got.iter().all(|(_, k, _)| k.is_none()));
    let m = median(got.into_iter().map(|(_, _, d)| d).collect());
    // Tokio's timer rounds sleeps up to the next millisecond, loopback adds
    // little; a loaded 2-core machine adds more, hence the loose bound.
    assert!(
        m >= Duration::from_millis(20) && m < Duration::from_millis(35),
        "median {m:?}"
    );
    let s = api.stats();
    assert_eq!(s.requests, 64);
    assert_eq!(s.status(200), 64);
    assert!(s.max_in_flight <= 4, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_capacity_latency_grows_as_the_formula_says() {
    // base 10 ms, capacity 4, 36 in flight: the formula gives
    // 10 + (n - 4) * 2.5 ms, with n up to 35 at steady state: ~80-88 ms.
    let mut config = MockConfig::with_latency(Duration::from_millis(10), Some(4));
    config.latency.jitter = 0.0;
    let api = api(config);
    let got = fetch_all(&api, 0..360, 36, Duration::from_secs(5)).await;
    assert!(got.iter().all(|(_, k, _)| k.is_none()));
    let m = median(got.into_iter().map(|(_, _, d)| d).collect());
    assert!(
        m >= Duration::from_millis(50) && m < Duration::from_millis(140),
        "median {m:?}"
    );
    assert!(api.stats().max_in_flight >= 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrograde_multiplies_the_latency() {
    let mut config = MockConfig::with_latency(Duration::from_millis(5), Some(2));
    config.latency.jitter = 0.0;
    config.latency.retrograde = 0.1;
    let api = api(config);
    // 12 in flight: excess ~9, latency ~ (5 + 9 * 2.5) * (1 + 0.9) ~ 52 ms.
    let got = fetch_all(&api, 0..120, 12, Duration::from_secs(5)).await;
    let m = median(got.into_iter().map(|(_, _, d)| d).collect());
    assert!(
        m >= Duration::from_millis(30) && m < Duration::from_millis(90),
        "median {m:?}"
    );
}

fn faulty(seed: u64) -> MockConfig {
    let mut config = MockConfig::with_latency(Duration::from_millis(1), None);
    config.seed = seed;
    config.faults = FaultRates {
        server_error: 0.10,
        rate_limited: 0.05,
        stall: 0.02,
        reset: 0.05,
        truncated: 0.05,
    };
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_rates_are_within_statistical_bounds() {
    let api = api(faulty(11));
    let n = 2000u64;
    let got = fetch_all(&api, 0..n, 64, Duration::from_millis(300)).await;
    let count = |k: ErrorKind| got.iter().filter(|(_, g, _)| *g == Some(k)).count() as f64;
    // Bounds: expected +- 4.5 standard deviations of a binomial(2000, p).
    let within = |x: f64, p: f64| {
        let (mu, sd) = (n as f64 * p, (n as f64 * p * (1.0 - p)).sqrt());
        (x - mu).abs() <= 4.5 * sd
    };
    assert!(
        within(count(ErrorKind::Server), 0.10),
        "5xx {}",
        count(ErrorKind::Server)
    );
    assert!(within(count(ErrorKind::RateLimited), 0.05));
    assert!(
        within(count(ErrorKind::Timeout), 0.02),
        "timeouts {}",
        count(ErrorKind::Timeout)
    );
    assert!(
        within(count(ErrorKind::Reset), 0.05),
        "resets {}",
        count(ErrorKind::Reset)
    );
    assert!(
        within(count(ErrorKind::BadPayload), 0.05),
        "truncated {}",
        count(ErrorKind::BadPayload)
    );
    // What the client saw is what the server says it injected.
    let s = api.stats();
    assert_eq!(s.requests, n, "no request was retried behind our back");
    assert_eq!(s.fault(Fault::ServerError) as f64, count(ErrorKind::Server));
    assert_eq!(s.fault(Fault::Reset) as f64, count(ErrorKind::Reset));
    assert_eq!(
        s.fault(Fault::Truncated) as f64,
        count(ErrorKind::BadPayload)
    );
    assert_eq!(s.fault(Fault::Stall) as f64, count(ErrorKind::Timeout));
    assert_eq!(
        s.fault(Fault::RateLimited) as f64,
        count(ErrorKind::RateLimited)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_replay_with_the_seed_and_differ_across_seeds() {
    let run = |seed: u64| async move {
        let mut config = faulty(seed);
        config.faults.stall = 0.0;
        let api = api(config);
        // Two attempts per id: the second attempt draws its own fault.
        let ids = (0..300u64).chain(0..300u64);
        let mut got = fetch_all(&api, ids, 1, Duration::from_secs(2)).await;
        got.sort_by_key(|(id, _, _)| *id);
        let per_id = api.stats_per_id().per_id.unwrap();
        assert!(per_id.values().all(|&n| n == 2));
        got.into_iter()
            .map(|(id, k, _)| (id, k))
            .collect::<Vec<_>>()
    };
    let a = run(5).await;
    let b = run(5).await;
    let c = run(6).await;
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hard_limit_answers_429_with_retry_after_and_counts_the_window() {
    let mut config = MockConfig::with_latency(Duration::from_millis(200), Some(100));
    config.latency.hard_limit = Some(4);
    let api = api(config);
    let client = http_client().unwrap();
    // 8 at once: 4 get in, 4 are refused with Retry-After: 1.
    let got = fetch_all(&api, 0..8, 8, Duration::from_secs(5)).await;
    let limited = got
        .iter()
        .filter(|(_, k, _)| *k == Some(ErrorKind::RateLimited))
        .count();
    assert_eq!(limited, 4, "{got:?}");
    let resp = {
        // One more while the 4 are done and the window is open: it is
        // inside the window (the grace of 5 ms has passed), and it is served.
        let r = client.get(api.item_url(99)).send().await.unwrap();
        r.status()
    };
    assert_eq!(resp, 200);
    let s = api.stats();
    assert_eq!(s.fault(Fault::HardLimit), 4);
    assert_eq!(s.status(429), 4);
    assert_eq!(s.retry_after_windows, 1);
    assert_eq!(s.inside_retry_after, 1);
    // After the window has passed, requests are not counted.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = client.get(api.item_url(100)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(api.stats().inside_retry_after, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_header_and_stats_endpoint() {
    let mut config = MockConfig::with_latency(Duration::from_millis(1), None);
    config.faults.rate_limited = 1.0;
    config.retry_after = Duration::from_secs(2);
    let api = api(config);
    let client = http_client().unwrap();
    let r = client.get(api.item_url(1)).send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "2");
    let body = client
        .get(format!("{}/stats?per_id=true", api.base_url()))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let stats: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(stats["requests"], 1);
    assert_eq!(stats["by_status"]["429"], 1);
    assert_eq!(stats["faults"]["rate_limited"], 1);
    assert_eq!(stats["per_id"]["1"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_config_changes_the_latency_mid_run() {
    let mut config = MockConfig::with_latency(Duration::from_millis(5), None);
    config.latency.jitter = 0.0;
    let api = api(config.clone());
    let fast = fetch_all(&api, 0..10, 1, Duration::from_secs(5)).await;
    config.latency.base = Duration::from_millis(60);
    api.set_config(config.clone()).unwrap();
    let slow = fetch_all(&api, 10..15, 1, Duration::from_secs(5)).await;
    assert!(median(fast.into_iter().map(|x| x.2).collect()) < Duration::from_millis(30));
    assert!(median(slow.into_iter().map(|x| x.2).collect()) >= Duration::from_millis(60));
    config.faults.reset = 3.0;
    assert!(api.set_config(config).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_answers_the_length_received_under_the_same_model() {
    let api = api(MockConfig::with_latency(Duration::from_millis(1), None));
    let client = http_client().unwrap();
    let timeout = Duration::from_secs(5);
    let ack = gearshift_bench::client::upload(&client, &api.upload_url(7), vec![1u8; 32], timeout)
        .await
        .unwrap();
    assert_eq!(&ack[..], b"32");
    let s = api.stats_per_id();
    assert_eq!((s.requests, s.status(200)), (1, 1));
    assert_eq!(s.per_id.unwrap().get(&7), Some(&1));
    // Faults apply to uploads as to fetches.
    let mut config = MockConfig::with_latency(Duration::from_millis(1), None);
    config.faults.server_error = 1.0;
    api.set_config(config).unwrap();
    let err = gearshift_bench::client::upload(&client, &api.upload_url(7), "x", timeout)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Server);
    assert_eq!(api.stats_per_id().per_id.unwrap().get(&7), Some(&2));
}
