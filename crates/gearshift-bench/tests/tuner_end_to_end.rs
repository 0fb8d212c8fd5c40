//! The default controller against the mock API on 127.0.0.1, at a tiny
//! size, with nothing set: it finds an API's capacity far above the rule of
//! thumb, and every item is accounted for.

use std::time::{Duration, Instant};

use gearshift::http::HttpFetcher;
use gearshift::{Config, Pipeline};
use gearshift_bench::mock_api::{MockApi, MockConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finds_the_apis_capacity_from_a_small_start() {
    let mut mock = MockConfig::with_latency(Duration::from_millis(10), Some(24));
    mock.latency.retrograde = 0.05;
    let api = MockApi::start_with_threads(mock, 2).unwrap();
    let fetcher = HttpFetcher::builder().build().unwrap();
    let base = api.base_url();
    let (handle, outcomes) = Pipeline::from_iter(0..u64::MAX)
        .io(move |id| {
            let (f, url) = (fetcher.clone(), format!("{base}/item/{id}"));
            async move { f.get(&url).await }
        })
        .named("mock-api")
        .cpu(|body| body.len())
        .config(Config::default().with_cores(2))
        .spawn_stream()
        .unwrap();
    let counter = tokio::spawn(async move {
        let mut ids = Vec::new();
        let mut outcomes = outcomes;
        while let Some(o) = futures::StreamExt::next(&mut outcomes).await {
            ids.push(o.id());
        }
        ids
    });
    // Settled: the target stays in range for two seconds, twenty of the
    // tuner's windows (startup's doublings pass through the range in less).
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut in_range_since: Option<Instant> = None;
    let snap = loop {
        let snap = handle.snapshot();
        let agents = snap.stages[0].concurrency_target;
        if (12..=48).contains(&agents) {
            let since = *in_range_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= Duration::from_secs(2) {
                break snap;
            }
        } else {
            in_range_since = None;
        }
        assert!(
            Instant::now() < deadline,
            "not settled within 40 s: {agents} agents for an API of capacity 24: {:?}",
            snap.decisions
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    handle.abort();
    let report = handle.join().await;
    let mut ids = counter.await.unwrap();
    ids.sort_unstable();
    let n = ids.len() as u64;
    assert!(
        ids.iter().copied().eq(0..n),
        "every item pulled has exactly one outcome"
    );
    assert_eq!(report.outcomes(), n);
    let agents = snap.stages[0].concurrency_target;
    assert!(
        (12..=48).contains(&agents),
        "settled at {agents} agents for an API of capacity 24: {:?}",
        snap.decisions
    );
    assert!(
        !snap.decisions.is_empty()
            && snap
                .decisions
                .iter()
                .all(|d| d.tuner == "gradient" && d.api == "mock-api")
    );
    // Startup doubles past the knee once before settling.
    let peak = api.stats().max_in_flight;
    assert!(peak <= 64, "startup overshoot: {peak} in flight at once");
}
