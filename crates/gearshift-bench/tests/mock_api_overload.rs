//! The mock API's overload behaviours against a real reqwest client on
//! 127.0.0.1: calls beyond capacity dropped (held until the client gives
//! up) or answered 500 with a share that rises with overload.

mod support;

use std::time::{Duration, Instant};

use futures::StreamExt;
use gearshift::ErrorKind;
use gearshift_bench::client::{fetch, http_client};
use gearshift_bench::mock_api::{MockApi, MockConfig, Overload};

/// Fetches ids `0..n` with `c` in flight; returns each call's error kind
/// (None for Ok) and how long it took.
async fn fetch_all(
    api: &MockApi,
    n: u64,
    c: usize,
    timeout: Duration,
) -> Vec<(Option<ErrorKind>, Duration)> {
    let client = http_client().unwrap();
    futures::stream::iter(0..n)
        .map(|id| {
            let (client, url) = (client.clone(), api.item_url(id));
            async move {
                let t = Instant::now();
                let kind = fetch(&client, &url, timeout).await.err().map(|e| e.kind());
                (kind, t.elapsed())
            }
        })
        .buffer_unordered(c)
        .collect()
        .await
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn dropping(capacity: usize) -> MockConfig {
    let mut config = MockConfig::with_latency(Duration::from_millis(20), Some(capacity));
    config.latency.jitter = 0.0;
    config.overload = Overload::Drop;
    config.stall_for = Duration::from_secs(10);
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drops_time_out_above_capacity_and_served_calls_keep_the_base_latency() {
    let timeout = Duration::from_millis(300);
    let api = MockApi::start(dropping(4)).unwrap();

    // At capacity: nothing is dropped, every call answers at base latency.
    let below = fetch_all(&api, 40, 4, timeout).await;
    assert!(below.iter().all(|(k, _)| k.is_none()), "{below:?}");
    let m = median(below.iter().map(|(_, d)| *d).collect());
    assert!(m < Duration::from_millis(60), "median at capacity {m:?}");
    assert_eq!(api.stats().dropped, 0);

    // At four times capacity, about three calls in four are held until the
    // client's timeout; the ones served still answer at base latency (in
    // queue mode they would take 20 + 12 * 5 = 80 ms).
    api.reset_stats();
    let above = fetch_all(&api, 96, 16, timeout).await;
    let timed_out: Vec<_> = above
        .iter()
        .filter(|(k, _)| *k == Some(ErrorKind::Timeout))
        .collect();
    let ok: Vec<Duration> = above
        .iter()
        .filter(|(k, _)| k.is_none())
        .map(|(_, d)| *d)
        .collect();
    assert_eq!(
        timed_out.len() + ok.len(),
        96,
        "only timeouts and Ok: {above:?}"
    );
    let share = timed_out.len() as f64 / 96.0;
    assert!((0.3..=0.95).contains(&share), "dropped share {share}");
    assert!(timed_out.iter().all(|(_, d)| *d >= timeout));
    let m = median(ok);
    assert!(m < Duration::from_millis(60), "median served {m:?}");
    let s = api.stats();
    assert_eq!(s.dropped, timed_out.len() as u64, "{s:?}");
    assert_eq!(s.status(200), 96 - s.dropped);
    // The client gave up: the server lets go of what it held.
    support::wait_until(Duration::from_secs(5), "no call is held", || {
        api.stats().held == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_rise_with_overload_from_their_floor() {
    let mut config = MockConfig::with_latency(Duration::from_millis(5), Some(4));
    config.latency.jitter = 0.0;
    config.overload = Overload::Errors {
        floor: 0.1,
        slope: 0.2,
    };
    let api = MockApi::start(config).unwrap();
    let timeout = Duration::from_secs(5);
    let share = |got: &[(Option<ErrorKind>, Duration)]| {
        assert!(
            got.iter()
                .all(|(k, _)| k.is_none() || *k == Some(ErrorKind::Server))
        );
        got.iter().filter(|(k, _)| k.is_some()).count() as f64 / got.len() as f64
    };

    // Two in flight: below capacity, the floor alone (0.1).
    let below = fetch_all(&api, 300, 2, timeout).await;
    let low = share(&below);
    assert!((0.03..=0.2).contains(&low), "share below capacity {low}");

    // Twelve in flight: about 11 on arrival, 0.1 + 0.2 * (11/4 - 1) = 0.45.
    let above = fetch_all(&api, 600, 12, timeout).await;
    let high = share(&above);
    assert!((0.25..=0.7).contains(&high), "share at 3x capacity {high}");
    let s = api.stats();
    assert_eq!(s.overload_errors, s.status(500));
    assert_eq!(s.status(500) as f64, (low * 300.0 + high * 600.0).round());
}

#[test]
fn bad_overload_settings_are_refused_with_the_field_and_value() {
    for (floor, slope, field) in [
        (f64::NAN, 0.5, "overload.floor"),
        (-0.1, 0.5, "overload.floor"),
        (0.1, 1.5, "overload.slope"),
        (0.1, f64::INFINITY, "overload.slope"),
    ] {
        let config = MockConfig {
            overload: Overload::Errors { floor, slope },
            ..MockConfig::default()
        };
        let err = config.validate().unwrap_err();
        assert_eq!(err.field, field, "{err}");
        assert!(MockApi::start(config).is_err());
    }
    let ok = MockConfig {
        overload: Overload::Errors {
            floor: 0.0,
            slope: 1.0,
        },
        ..MockConfig::default()
    };
    assert!(ok.validate().is_ok());
    assert_eq!(MockConfig::default().overload, Overload::Queue);
}
