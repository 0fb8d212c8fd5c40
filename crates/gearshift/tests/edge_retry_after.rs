//! A hostile API's absurd `Retry-After` (20 digits: more seconds than an
//! `Instant` can hold) over real HTTP on 127.0.0.1: the pause is cut to
//! `max_pause`, no agent dies, and every item has exactly one outcome, in
//! unordered and in ordered runs.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use futures::StreamExt;
use gearshift::http::HttpFetcher;
use gearshift::{Agents, Config, Order, Pipeline, RetryPolicy};

/// Answers 429 with a 20-digit `Retry-After` to the first request for each
/// odd id, and 200 otherwise.
async fn hostile(
    State(seen): State<Arc<Mutex<HashSet<u64>>>>,
    Path(id): Path<u64>,
) -> (StatusCode, HeaderMap, String) {
    let first = seen.lock().unwrap().insert(id);
    let mut headers = HeaderMap::new();
    if id % 2 == 1 && first {
        headers.insert("retry-after", "99999999999999999999".parse().unwrap());
        return (StatusCode::TOO_MANY_REQUESTS, headers, String::new());
    }
    (StatusCode::OK, headers, format!("item-{id}"))
}

async fn run(order: Order) {
    let app = axum::Router::new()
        .route("/item/{id}", axum::routing::get(hostile))
        .with_state(Arc::new(Mutex::new(HashSet::new())));
    let base = common::serve(app).await;
    let fetcher = HttpFetcher::builder().build().unwrap();
    let items = 50u64;
    let (handle, outcomes) = Pipeline::from_iter(0..items)
        .io(move |id: u64| {
            let f = fetcher.clone();
            let url = format!("{base}/item/{id}");
            async move { f.get(&url).await }
        })
        .config(Config {
            agents: Agents::Total(4),
            max_pause: Duration::from_millis(100),
            retry: RetryPolicy::attempts(3),
            order,
            ..Config::default()
        })
        .spawn_stream()
        .unwrap();
    let outcomes: Vec<_> = tokio::time::timeout(Duration::from_secs(30), outcomes.collect())
        .await
        .unwrap_or_else(|_| panic!("{order:?}: the run hangs"));
    let report = handle.join().await;
    let ids: HashSet<u64> = outcomes.iter().map(|o| o.id()).collect();
    assert_eq!(
        outcomes.len() as u64,
        items,
        "{order:?}: one outcome per item"
    );
    assert_eq!(ids.len() as u64, items, "{order:?}");
    assert_eq!(report.difference(), 0, "{order:?}");
    // Each odd item is retried after a pause cut to 100 ms, and succeeds.
    assert_eq!(report.ok, items, "{order:?}: {report}");
    if let Order::Ordered { .. } = order {
        let in_order: Vec<u64> = outcomes.iter().map(|o| o.id()).collect();
        assert_eq!(in_order, (0..items).collect::<Vec<_>>());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absurd_retry_after_is_cut_to_max_pause_and_loses_nothing() {
    run(Order::Unordered).await;
    run(Order::Ordered { window: 16 }).await;
}
