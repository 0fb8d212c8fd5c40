//! The mock API's routes: `GET /item/{id}` and `POST /upload/{id}` (both
//! under the latency model and the faults) and `GET /stats`.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State as AxumState};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde::Deserialize;

use super::config::{MockConfig, Overload};
use super::draw::{self, Fault, Overloaded};
use super::state::State;

/// Marks a response that must not be sent: the connection layer closes the
/// socket instead (see `server.rs`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ResetConnection;

/// The deterministic body of `/item/{id}`: `item {id}\n`, then bytes that
/// depend on the id and position, `len` bytes in all.
///
/// # Examples
///
/// ```
/// let body = gearshift_bench::mock_api::payload(42, 4096);
/// assert_eq!(body.len(), 4096);
/// assert!(body.starts_with(b"item 42\n"));
/// ```
pub fn payload(id: u64, len: usize) -> Bytes {
    let mut out = format!("item {id}\n").into_bytes();
    let seed = id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut i = out.len() as u64;
    while out.len() < len {
        out.push(b'a' + ((seed.rotate_left((i % 64) as u32) ^ i) % 26) as u8);
        i += 1;
    }
    out.truncate(len);
    Bytes::from(out)
}

pub(crate) fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/item/{id}", get(item))
        .route("/upload/{id}", post(upload))
        .route("/stats", get(stats))
        .with_state(state)
}

#[derive(Debug, Deserialize)]
struct StatsQuery {
    #[serde(default)]
    per_id: bool,
}

async fn stats(AxumState(state): AxumState<Arc<State>>, Query(q): Query<StatsQuery>) -> Response {
    axum::Json(state.stats(q.per_id)).into_response()
}

async fn item(AxumState(state): AxumState<Arc<State>>, Path(id): Path<u64>) -> Response {
    call(&state, id, |config| payload(id, config.payload_bytes)).await
}

/// Takes the body (the CPU work's result in the two-API scenario) and
/// answers its length in bytes, as text: the second API of a pipeline, the
/// one it uploads to. Same latency model, faults and counters as `/item`.
async fn upload(
    AxumState(state): AxumState<Arc<State>>,
    Path(id): Path<u64>,
    body: Bytes,
) -> Response {
    let ack = Bytes::from(body.len().to_string());
    call(&state, id, move |_| ack.clone()).await
}

/// One call of item `id`: the hard limit, the overload behaviour, the drawn
/// fault, the modelled latency (counted in flight), then `body` (or the
/// fault).
async fn call(state: &Arc<State>, id: u64, body: impl Fn(&MockConfig) -> Bytes) -> Response {
    let arrival = state.arrive(id);
    let config = &arrival.config;
    let latency = &config.latency;
    if let Some(limit) = latency.hard_limit
        && arrival.in_flight >= limit
    {
        state.record_fault(Fault::HardLimit);
        return too_many_requests(state, config.retry_after_secs());
    }
    let overloaded = draw::overload(
        config.overload,
        latency.capacity,
        config.seed,
        (id, arrival.attempt),
        (arrival.in_flight, arrival.held),
    );
    if overloaded == Some(Overloaded::Dropped) {
        let _held = state.hold();
        tokio::time::sleep(config.stall_for).await;
        return reset();
    }
    let fault = draw::fault(&config.faults, config.seed, id, arrival.attempt);
    match fault {
        Some(Fault::RateLimited) => {
            state.record_fault(Fault::RateLimited);
            return too_many_requests(state, config.retry_after_secs());
        }
        Some(Fault::Stall) => {
            state.record_fault(Fault::Stall);
            tokio::time::sleep(config.stall_for).await;
            return reset();
        }
        _ => {}
    }
    let _in_flight = state.enter();
    // Under drops, what is served is never more than capacity: flat latency.
    let seen = match (config.overload, latency.capacity) {
        (Overload::Drop, Some(cap)) => arrival.in_flight.min(cap),
        _ => arrival.in_flight,
    };
    let delay = draw::latency(latency, config.seed, id, arrival.attempt, seen);
    super::timer::sleep(delay).await;
    if overloaded == Some(Overloaded::Failed) {
        state.record_overload_error();
        state.record_status(500);
        return (StatusCode::INTERNAL_SERVER_ERROR, "overloaded").into_response();
    }
    match fault {
        Some(Fault::ServerError) => {
            state.record_fault(Fault::ServerError);
            state.record_status(500);
            (StatusCode::INTERNAL_SERVER_ERROR, "injected server error").into_response()
        }
        Some(Fault::Reset) => {
            state.record_fault(Fault::Reset);
            reset()
        }
        Some(Fault::Truncated) => {
            state.record_fault(Fault::Truncated);
            state.record_status(200);
            truncated(body(config))
        }
        _ => {
            state.record_status(200);
            body(config).into_response()
        }
    }
}

fn too_many_requests(state: &State, secs: u64) -> Response {
    state.open_window(std::time::Duration::from_secs(secs));
    state.record_status(429);
    let mut r = (StatusCode::TOO_MANY_REQUESTS, "slow down").into_response();
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    r
}

fn reset() -> Response {
    let mut r = StatusCode::INTERNAL_SERVER_ERROR.into_response();
    r.extensions_mut().insert(ResetConnection);
    r
}

/// Announces the full length, sends half, then fails the body so hyper
/// aborts the connection mid-body. The pause before the failure lets the
/// head and the half body reach the client first: with none, hyper drops
/// them unsent; with 2 ms, a busy client still met the close before the head
/// in about 1 of 5,000 truncations (a reset, not a bad payload); with 20 ms,
/// in none of 30,000 on a loaded 2-core machine.
fn truncated(body: Bytes) -> Response {
    use futures::StreamExt;
    let full = body.len();
    let half = body.slice(..full / 2);
    let first = futures::stream::once(async move { Ok::<_, std::io::Error>(half) });
    let fail = futures::stream::once(async {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        Err(std::io::Error::other("injected truncation"))
    });
    let mut r = Response::new(Body::from_stream(first.chain(fail)));
    r.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(full));
    r
}
