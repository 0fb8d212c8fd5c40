//! The HTTP client every system under test shares: one pooled reqwest
//! client, and one way to call (GET with [`fetch`], POST with [`upload`])
//! that maps failures to gearshift's [`ErrorKind`]s so all systems count
//! failures the same way.

use std::time::Duration;

use bytes::Bytes;
use gearshift::{ErrorKind, StageError};
use reqwest::StatusCode;

/// A pooled client for loopback calls: no proxy, no idle-connection limit,
/// `TCP_NODELAY` on.
///
/// # Errors
///
/// The reqwest error if the client cannot be built.
pub fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
}

/// GETs `url` with a per-call `timeout` and returns the body.
///
/// # Errors
///
/// A [`StageError`]: `RateLimited` (with `Retry-After` in seconds) for 429
/// and 503-with-`Retry-After`, `Server` for other 5xx, `Rejected` for other
/// non-2xx, `Timeout`, `Reset` when the connection closed before an answer,
/// `BadPayload` when the body broke off.
pub async fn fetch(
    client: &reqwest::Client,
    url: &str,
    timeout: Duration,
) -> Result<Bytes, StageError> {
    call(client.get(url), timeout).await
}

/// POSTs `body` to `url` with a per-call `timeout` and returns the answer
/// (the mock API's `/upload/{id}` answers the body's length).
///
/// # Errors
///
/// As for [`fetch`].
pub async fn upload(
    client: &reqwest::Client,
    url: &str,
    body: impl Into<reqwest::Body>,
    timeout: Duration,
) -> Result<Bytes, StageError> {
    call(client.post(url).body(body), timeout).await
}

async fn call(request: reqwest::RequestBuilder, timeout: Duration) -> Result<Bytes, StageError> {
    let resp = request
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| classify(e, ErrorKind::Reset))?;
    let status = resp.status();
    if !status.is_success() {
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        return Err(match (status, retry_after) {
            (StatusCode::TOO_MANY_REQUESTS, ra) => StageError::rate_limited(ra),
            (StatusCode::SERVICE_UNAVAILABLE, Some(ra)) => StageError::rate_limited(Some(ra)),
            (s, _) if s.is_server_error() => {
                StageError::msg(ErrorKind::Server, format!("status {s}"))
            }
            (s, _) => StageError::msg(ErrorKind::Rejected, format!("status {s}")),
        });
    }
    resp.bytes()
        .await
        .map_err(|e| classify(e, ErrorKind::BadPayload))
}

fn classify(e: reqwest::Error, otherwise: ErrorKind) -> StageError {
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else {
        otherwise
    };
    StageError::new(kind, e)
}
