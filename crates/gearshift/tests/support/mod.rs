//! Test support: a real HTTP server on 127.0.0.1, an outcome ledger, waits
//! on conditions with deadlines, and a panic hook that quiets only the
//! panics a test injects on purpose.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use gearshift::{ErrorKind, Outcome, Report, StageError};

/// A tiny API: `GET /item/{id}` answers `item-{id}` after `delay`, and
/// counts requests in flight.
#[derive(Clone, Default)]
pub struct ServerState {
    pub delay: Duration,
    pub in_flight: Arc<AtomicUsize>,
    pub max_in_flight: Arc<AtomicUsize>,
    pub requests: Arc<AtomicUsize>,
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub state: ServerState,
}

impl TestServer {
    pub async fn start(delay: Duration) -> TestServer {
        let state = ServerState {
            delay,
            ..ServerState::default()
        };
        let app = Router::new()
            .route("/item/{id}", get(item))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        TestServer { addr, state }
    }

    pub fn url(&self, id: u64) -> String {
        format!("http://{}/item/{id}", self.addr)
    }
}

async fn item(State(s): State<ServerState>, Path(id): Path<u64>) -> String {
    s.requests.fetch_add(1, Ordering::Relaxed);
    let now = s.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
    s.max_in_flight.fetch_max(now, Ordering::Relaxed);
    tokio::time::sleep(s.delay).await;
    s.in_flight.fetch_sub(1, Ordering::Relaxed);
    format!("item-{id}")
}

/// Fetches a URL with a shared reqwest client, as a user's IO stage would.
pub async fn fetch(client: &reqwest::Client, url: String) -> Result<String, StageError> {
    let resp = client.get(url).send().await?;
    if !resp.status().is_success() {
        return Err(StageError::msg(
            ErrorKind::Server,
            format!("status {}", resp.status()),
        ));
    }
    Ok(resp.text().await?)
}

/// Checks that every id in `0..n` has exactly one outcome, and that the
/// report agrees with the outcomes; returns (ok, failed, cancelled).
pub fn check_ledger<T>(n: u64, outcomes: &[Outcome<T>], report: &Report) -> (u64, u64, u64) {
    let mut seen: HashMap<u64, usize> = HashMap::new();
    let (mut ok, mut failed, mut cancelled) = (0, 0, 0);
    for o in outcomes {
        *seen.entry(o.id()).or_default() += 1;
        match o {
            Outcome::Ok { .. } => ok += 1,
            Outcome::Failed(_) => failed += 1,
            Outcome::Cancelled { .. } => cancelled += 1,
        }
    }
    let lost: Vec<u64> = (0..n)
        .filter(|id| !seen.contains_key(id))
        .take(10)
        .collect();
    let dup: Vec<u64> = seen
        .iter()
        .filter(|(_, c)| **c > 1)
        .map(|(id, _)| *id)
        .take(10)
        .collect();
    let unexpected: Vec<u64> = seen
        .keys()
        .filter(|id| **id >= n)
        .copied()
        .take(10)
        .collect();
    assert!(lost.is_empty(), "lost items (first 10): {lost:?}");
    assert!(dup.is_empty(), "duplicated items (first 10): {dup:?}");
    assert!(unexpected.is_empty(), "unexpected items: {unexpected:?}");
    assert!(report.finished);
    assert_eq!(
        (report.ok, report.failed, report.cancelled),
        (ok, failed, cancelled),
        "report disagrees with outcomes"
    );
    (ok, failed, cancelled)
}

/// The most items a pipeline with `config` holds from an IO call to the
/// collector, place by place: agents' calls and outboxes, the IO -> CPU
/// channel, the batch being formed (with the batch that arrived beyond it),
/// the 2 x `workers` batches holding batch slots, the CPU -> collector
/// channel, and the batch in the collector's hands.
pub fn held_from_io_to_collector(config: &gearshift::Config) -> usize {
    let (cap, batch) = (config.channel_capacity, config.items_per_batch);
    config.total_agents() * (1 + batch) + cap + 2 * batch + 2 * config.workers * batch + cap + batch
}

/// Waits until `cond` holds, polling every 2 ms; panics naming `what` if it
/// does not within `within`. Tests wait on a state this way, never on a
/// fixed sleep, so a loaded machine makes them slower, not wrong. Works on
/// tokio's paused clock too.
pub async fn wait_until(within: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Markers of the panics tests inject on purpose.
static QUIET_MARKERS: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

/// Keeps the panics whose message contains `marker` (the ones a test
/// injects on purpose) out of the output, and forwards every other panic to
/// the hook that was there before: a failing assertion in any test of the
/// binary still prints its message. The hook is installed once per process.
pub fn quiet_panics_marked(marker: &'static str) {
    static INSTALL: Once = Once::new();
    {
        let mut markers = QUIET_MARKERS.lock().unwrap_or_else(|e| e.into_inner());
        if !markers.contains(&marker) {
            markers.push(marker);
        }
    }
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let msg = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("");
            let quiet = QUIET_MARKERS
                .lock()
                .map(|m| m.iter().any(|k| msg.contains(k)))
                .unwrap_or(false);
            if !quiet {
                previous(info);
            }
        }));
    });
}
