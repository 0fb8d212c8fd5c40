//! IO stages fetching from a real HTTP server on 127.0.0.1.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use gearshift::{Agents, Api, Config, Pipeline};
use support::{TestServer, check_ledger, fetch};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_then_compute_over_http() {
    let server = TestServer::start(Duration::from_millis(2)).await;
    let client = reqwest::Client::new();
    let base = server.addr;
    let (outcomes, report) = Pipeline::from_iter(0..300u64)
        .io(move |id| fetch_item(client.clone(), format!("http://{base}/item/{id}")))
        .cpu(|body: String| body.len())
        .collect()
        .await
        .unwrap();
    let (ok, _, _) = check_ledger(300, &outcomes, &report);
    assert_eq!(ok, 300);
    for o in outcomes {
        let id = o.id();
        assert_eq!(o.ok(), Some(format!("item-{id}").len()));
    }
    assert_eq!(server.state.requests.load(Ordering::Relaxed), 300);
}

async fn fetch_item(client: reqwest::Client, url: String) -> Result<String, gearshift::StageError> {
    fetch(&client, url).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_permits_cap_calls_in_flight() {
    let server = TestServer::start(Duration::from_millis(20)).await;
    let client = reqwest::Client::new();
    let base = server.addr;
    let config = Config {
        agents: Agents::Total(16),
        ..Config::default().with_cores(2)
    };
    let report = Pipeline::from_iter(0..100u64)
        .io(move |id| fetch_item(client.clone(), format!("http://{base}/item/{id}")))
        .api(&Api::new("items").max_in_flight(5))
        .config(config)
        .run()
        .await
        .unwrap();
    assert_eq!(report.ok, 100);
    let max = server.state.max_in_flight.load(Ordering::Relaxed);
    assert!(
        max <= 5,
        "the semaphore allows 5 calls at once, the server saw {max}"
    );
    assert!(
        max >= 4,
        "16 agents should keep the 5 permits busy, the server saw {max}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_per_core_decides_concurrency() {
    let server = TestServer::start(Duration::from_millis(20)).await;
    let client = reqwest::Client::new();
    let base = server.addr;
    // 3 agents per core on 2 cores: 6 agents, and a budget of the stage's
    // own with no limit of its own: agents are the limit.
    let report = Pipeline::from_iter(0..120u64)
        .io(move |id| fetch_item(client.clone(), format!("http://{base}/item/{id}")))
        .config(Config {
            agents: Agents::PerCore(3.0),
            ..Config::default().with_cores(2)
        })
        .run()
        .await
        .unwrap();
    assert_eq!(report.ok, 120);
    assert_eq!(server.state.max_in_flight.load(Ordering::Relaxed), 6);
    assert_eq!(report.stages[0].concurrency_target, 6);
}
