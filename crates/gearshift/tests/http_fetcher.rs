//! `gearshift::http::HttpFetcher` against real servers on 127.0.0.1: status
//! classification, timeouts, the body cap, truncation, resets, idempotency
//! keys. What reaches the logs is checked in `http_logs.rs`.

#![cfg(feature = "http")]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use gearshift::http::{FetchError, HttpBuildError, HttpFetcher, redact_url};
use gearshift::{ErrorKind, StageError};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use common::{closed_within, raw_server, read_request, serve};

/// Far beyond any cap here: a fetcher that buffered it all would be obvious.
const HUGE: u64 = 100 << 20;

fn fetcher() -> HttpFetcher {
    HttpFetcher::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn fetch_error(err: &StageError) -> &FetchError {
    err.source_error()
        .downcast_ref::<FetchError>()
        .expect("the fetcher wraps a FetchError")
}

/// An axum app answering `status` with `headers` on `/`.
fn answering(status: StatusCode, headers: &'static [(&'static str, &'static str)]) -> Router {
    Router::new().route(
        "/",
        get(move || async move {
            let mut map = HeaderMap::new();
            for (name, value) in headers {
                map.insert(*name, value.parse().unwrap());
            }
            (status, map, "nope")
        }),
    )
}

// ---- statuses ---------------------------------------------------------------

#[tokio::test]
async fn ok_body_is_returned_for_get_and_post() {
    let base = serve(
        Router::new()
            .route("/hello", get(|| async { "hello, world" }))
            .route("/echo", post(|body: Bytes| async move { body })),
    )
    .await;
    let f = fetcher();
    assert_eq!(
        &f.get(&format!("{base}/hello")).await.unwrap()[..],
        b"hello, world"
    );
    let echoed = f
        .post(&format!("{base}/echo"), &b"upload me"[..])
        .await
        .unwrap();
    assert_eq!(&echoed[..], b"upload me");
}

#[tokio::test]
async fn status_500_is_server_and_the_message_says_so() {
    let base = serve(answering(StatusCode::INTERNAL_SERVER_ERROR, &[])).await;
    let err = fetcher()
        .get(&format!("{base}/?key=s3cret"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Server);
    assert_eq!(err.retry_after(), None);
    assert_eq!(
        fetch_error(&err).status(),
        Some(StatusCode::INTERNAL_SERVER_ERROR)
    );
    assert_eq!(
        err.to_string(),
        format!("server_5xx: GET {base}/: server answered 500 Internal Server Error")
    );
}

#[tokio::test]
async fn status_503_with_retry_after_is_rate_limited() {
    let base = serve(answering(
        StatusCode::SERVICE_UNAVAILABLE,
        &[("retry-after", "7")],
    ))
    .await;
    let err = fetcher().get(&format!("{base}/")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));

    let base = serve(answering(StatusCode::SERVICE_UNAVAILABLE, &[])).await;
    let err = fetcher().get(&format!("{base}/")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Server, "503 without Retry-After");
    assert_eq!(err.retry_after(), None);
}

#[tokio::test]
async fn status_429_with_retry_after_seconds_or_date() {
    let base = serve(answering(
        StatusCode::TOO_MANY_REQUESTS,
        &[("retry-after", "3")],
    ))
    .await;
    let err = fetcher().get(&format!("{base}/")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));

    let at = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(30));
    let at: &'static str = Box::leak(at.into_boxed_str());
    let base = serve(Router::new().route(
        "/",
        get(move || async move { (StatusCode::TOO_MANY_REQUESTS, [("retry-after", at)]) }),
    ))
    .await;
    let err = fetcher().get(&format!("{base}/")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    let pause = err.retry_after().expect("a date parses");
    // The date has whole seconds and a little time has passed.
    assert!(
        pause > Duration::from_secs(25) && pause <= Duration::from_secs(30),
        "{pause:?}"
    );

    let base = serve(answering(StatusCode::TOO_MANY_REQUESTS, &[])).await;
    let err = fetcher().get(&format!("{base}/")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert_eq!(err.retry_after(), None);
}

#[tokio::test]
async fn status_404_is_rejected_and_not_transient() {
    let base = serve(Router::new()).await;
    let err = fetcher().get(&format!("{base}/missing")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Rejected);
    assert!(!err.kind().is_transient());
    assert_eq!(fetch_error(&err).status(), Some(StatusCode::NOT_FOUND));
    assert!(err.to_string().contains("404 Not Found"), "{err}");
}

#[tokio::test]
async fn malformed_url_is_rejected_without_leaking_its_query() {
    let err = fetcher()
        .get("http://[::1/x?token=s3cret")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Rejected);
    assert!(err.to_string().contains("invalid url"), "{err}");
    assert!(!err.to_string().contains("s3cret"), "{err}");
}

#[tokio::test]
async fn send_runs_custom_requests_with_the_same_classification() {
    let seen = Arc::new(Mutex::new(None));
    let seen2 = seen.clone();
    let base = serve(Router::new().route(
        "/item",
        axum::routing::put(move |headers: HeaderMap| async move {
            *seen2.lock().unwrap() = headers.get("x-reason").cloned();
            StatusCode::CONFLICT
        }),
    ))
    .await;
    let f = fetcher();
    let err = f
        .send(
            f.client()
                .put(format!("{base}/item"))
                .header("x-reason", "expired"),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Rejected);
    assert!(err.to_string().starts_with("rejected_4xx: PUT "), "{err}");
    assert_eq!(seen.lock().unwrap().as_ref().unwrap(), "expired");

    // A request that cannot be built is refused, never sent.
    let err = f
        .send(
            f.client()
                .get(format!("{base}/item"))
                .header("bad header", "x"),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Rejected);
    assert!(
        err.to_string().contains("could not build the request"),
        "{err}"
    );
}

#[tokio::test]
async fn error_answers_keep_their_pooled_connection() {
    let ports = Arc::new(Mutex::new(Vec::new()));
    let record = ports.clone();
    let app = Router::new().route(
        "/{status}",
        get(
            move |ConnectInfo(peer): ConnectInfo<SocketAddr>, Path(status): Path<u16>| {
                record.lock().unwrap().push(peer.port());
                async move {
                    // Chunked, so the client cannot know the body is short.
                    let chunks = ["some ", "error ", "text"].map(Ok::<_, std::io::Error>);
                    let body = axum::body::Body::from_stream(futures::stream::iter(chunks));
                    (StatusCode::from_u16(status).unwrap(), body)
                }
            },
        ),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    let f = fetcher();
    for status in [500, 429, 404, 503, 200] {
        let _ = f.get(&format!("{base}/{status}")).await;
    }
    let ports = ports.lock().unwrap().clone();
    assert_eq!(ports.len(), 5);
    assert!(
        ports.iter().all(|p| *p == ports[0]),
        "one connection for all five calls, got client ports {ports:?}"
    );
}

// ---- the body cap -----------------------------------------------------------

/// A raw server that answers with `head` and then streams up to `HUGE` bytes
/// of body (`chunked` or plain) until a write fails; returns how many body
/// bytes it managed to write.
async fn streaming_server(
    head: &'static str,
    chunked: bool,
) -> (String, tokio::task::JoinHandle<u64>) {
    raw_server(move |mut s| async move {
        read_request(&mut s).await;
        s.write_all(head.as_bytes()).await.unwrap();
        let block = vec![b'x'; 64 << 10];
        let mut written = 0u64;
        while written < HUGE {
            let sent = if chunked {
                let mut frame = format!("{:x}\r\n", block.len()).into_bytes();
                frame.extend_from_slice(&block);
                frame.extend_from_slice(b"\r\n");
                s.write_all(&frame).await
            } else {
                s.write_all(&block).await
            };
            if sent.is_err() {
                break;
            }
            written += block.len() as u64;
        }
        written
    })
    .await
}

#[tokio::test]
async fn content_length_over_the_cap_is_refused_before_reading() {
    let head = "HTTP/1.1 200 OK\r\ncontent-length: 104857600\r\n\r\n";
    let (base, server) = streaming_server(head, false).await;
    let f = fetcher(); // the default cap, 16 MiB
    assert_eq!(f.max_body_bytes(), 16 << 20);
    let err = f.get(&format!("{base}/big")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadPayload);
    assert!(
        err.to_string()
            .contains("content-length 104857600 exceeds max_body_bytes 16777216"),
        "{err}"
    );
    // The client hung up: the server's writes fail long before 100 MiB.
    let written = tokio::time::timeout(Duration::from_secs(2), server)
        .await
        .expect("the server sees the connection close")
        .unwrap();
    assert!(written < 32 << 20, "the server wrote {written} bytes");
}

#[tokio::test]
async fn chunked_body_over_the_cap_is_cut_off_while_streaming() {
    let head = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
    let (base, server) = streaming_server(head, true).await;
    let f = HttpFetcher::builder()
        .max_body_bytes(1 << 20)
        .build()
        .unwrap();
    let err = f.get(&format!("{base}/big")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadPayload);
    assert!(
        err.to_string()
            .contains("body exceeds max_body_bytes 1048576"),
        "{err}"
    );
    // What the server got out before its writes failed bounds what the client
    // could have read: the cap plus socket buffers, not the 100 MiB body.
    let written = tokio::time::timeout(Duration::from_secs(2), server)
        .await
        .expect("the server sees the connection close")
        .unwrap();
    assert!(written < 32 << 20, "the server wrote {written} bytes");
}

#[tokio::test]
async fn body_exactly_at_the_cap_is_accepted() {
    let base = serve(Router::new().route("/", get(|| async { vec![7u8; 1000] }))).await;
    let f = HttpFetcher::builder().max_body_bytes(1000).build().unwrap();
    assert_eq!(f.get(&format!("{base}/")).await.unwrap().len(), 1000);
    let f = HttpFetcher::builder().max_body_bytes(999).build().unwrap();
    let err = f.get(&format!("{base}/")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadPayload);
}

// ---- truncation, resets, refusals -------------------------------------------

#[tokio::test]
async fn truncated_body_is_bad_payload_and_transient() {
    let (base, _server) = raw_server(|mut s| async move {
        read_request(&mut s).await;
        s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n0123456789")
            .await
            .unwrap();
        s.shutdown().await.unwrap();
    })
    .await;
    let err = fetcher().get(&format!("{base}/")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadPayload);
    assert!(err.kind().is_transient());
    assert!(
        err.to_string()
            .contains("body truncated after 10 of 1000 bytes"),
        "{err}"
    );
}

#[tokio::test]
async fn connection_refused_is_reset() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = fetcher().get(&format!("http://{addr}/")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Reset);
    assert!(err.to_string().contains("could not connect"), "{err}");
}

#[tokio::test]
async fn connection_reset_is_reset() {
    let (base, _server) = raw_server(|mut s| async move {
        read_request(&mut s).await;
        s.set_zero_linger().unwrap(); // close with RST
    })
    .await;
    let err = fetcher().get(&format!("{base}/")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Reset, "{err}");
}

#[tokio::test]
async fn connection_closed_before_a_response_is_reset() {
    let (base, _server) = raw_server(|mut s| async move {
        read_request(&mut s).await;
        s.shutdown().await.unwrap();
    })
    .await;
    let err = fetcher().get(&format!("{base}/")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Reset, "{err}");
}

// ---- stalls -----------------------------------------------------------------

/// A fetcher whose read timeout (300 ms) is far below its call timeout (10 s).
fn impatient() -> HttpFetcher {
    HttpFetcher::builder()
        .timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_millis(300))
        .build()
        .unwrap()
}

/// Runs `get` against a server that sends `head` and then, if `trickle`,
/// one byte every 2 s; checks the call fails as a timeout well before the
/// call timeout and the server then sees the connection closed.
async fn assert_stall_times_out(head: &'static [u8], trickle: bool, expect: &str) {
    let (base, server) = raw_server(move |mut s| async move {
        read_request(&mut s).await;
        s.write_all(head).await.unwrap();
        let gone = Instant::now();
        loop {
            tokio::select! {
                closed = closed_within(&mut s, Duration::from_secs(2)) => {
                    if closed {
                        return gone.elapsed();
                    }
                }
                _ = tokio::time::sleep(Duration::from_secs(2)), if trickle => {
                    if s.write_all(b"x").await.is_err() {
                        return gone.elapsed();
                    }
                }
            }
        }
    })
    .await;
    let started = Instant::now();
    let err = impatient().get(&format!("{base}/")).await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(err.to_string().contains(expect), "{err}");
    // The read timeout fired, not the 10 s call timeout.
    assert!(took < Duration::from_secs(3), "took {took:?}");
    // The fetcher dropped the connection: the server's read sees it at once.
    let closed_after = tokio::time::timeout(Duration::from_secs(1), server)
        .await
        .expect("the server sees the connection close within 1 s")
        .unwrap();
    assert!(closed_after < Duration::from_secs(3), "{closed_after:?}");
}

#[tokio::test]
async fn trickling_body_times_out_on_the_read_timeout() {
    assert_stall_times_out(
        b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nx",
        true,
        "timed out reading the body after 1 of 100 bytes (read_timeout 300ms, timeout 10s)",
    )
    .await;
}

#[tokio::test]
async fn body_stalled_midway_times_out_on_the_read_timeout() {
    assert_stall_times_out(
        b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789",
        false,
        "timed out reading the body after 10 of 100 bytes",
    )
    .await;
}

#[tokio::test]
async fn missing_response_head_times_out_on_the_read_timeout() {
    assert_stall_times_out(b"", false, "timed out waiting for the response").await;
}

// ---- idempotency keys -------------------------------------------------------

/// An app that records the `Idempotency-Key` of each request.
async fn key_recorder() -> (String, Arc<Mutex<Vec<Option<String>>>>) {
    let keys = Arc::new(Mutex::new(Vec::new()));
    let record = keys.clone();
    let handler = move |headers: HeaderMap| {
        let record = record.clone();
        async move {
            let key = headers
                .get("idempotency-key")
                .map(|v| v.to_str().unwrap().to_owned());
            record.lock().unwrap().push(key);
            "ok"
        }
    };
    let base = serve(Router::new().route("/", get(handler.clone()).post(handler))).await;
    (base, keys)
}

#[tokio::test]
async fn idempotency_key_is_stable_per_item_and_shared_by_clones() {
    let (base, keys) = key_recorder().await;
    let url = format!("{base}/");
    let f = HttpFetcher::builder()
        .idempotency_keys(true)
        .build()
        .unwrap();
    let clone = f.clone();
    f.get_keyed(&url, 42).await.unwrap();
    clone.get_keyed(&url, 42).await.unwrap(); // a retry of item 42
    f.post_keyed(&url, 42, "body").await.unwrap();
    f.get_keyed(&url, 43).await.unwrap();
    f.get(&url).await.unwrap();

    let keys = keys.lock().unwrap().clone();
    let k42 = f.idempotency_key(42).unwrap();
    assert_eq!(keys[0].as_deref(), Some(k42.as_str()));
    assert_eq!(keys[1], keys[0]);
    assert_eq!(keys[2], keys[0]);
    assert!(keys[3].is_some() && keys[3] != keys[0], "{keys:?}");
    assert_eq!(keys[4], None, "plain get sends no key");

    // Another build draws another namespace: another job's item 42 differs.
    let other = HttpFetcher::builder()
        .idempotency_keys(true)
        .build()
        .unwrap();
    assert_ne!(other.idempotency_key(42).unwrap(), k42);
}

#[tokio::test]
async fn idempotency_namespace_is_fixed_and_keys_off_send_nothing() {
    let (base, keys) = key_recorder().await;
    let url = format!("{base}/");
    let f = HttpFetcher::builder()
        .idempotency_namespace("job-7")
        .build()
        .unwrap();
    f.get_keyed(&url, 42).await.unwrap();
    let off = fetcher();
    assert_eq!(off.idempotency_key(42), None);
    off.get_keyed(&url, 42).await.unwrap();
    let keys = keys.lock().unwrap().clone();
    assert_eq!(keys, [Some("job-7-000000000000002a".to_owned()), None]);
}

// ---- secrets and logs -------------------------------------------------------

#[test]
fn redact_url_drops_query_and_userinfo() {
    assert_eq!(
        redact_url("http://alice:pw@127.0.0.1:8080/v1/items/9?api_key=s3cret&page=2"),
        "http://127.0.0.1:8080/v1/items/9"
    );
    assert_eq!(redact_url("http://127.0.0.1/a/b"), "http://127.0.0.1/a/b");
}

// ---- the builder ------------------------------------------------------------

#[test]
fn builder_refuses_bad_settings_with_typed_errors() {
    let msg = |b: &mut gearshift::http::HttpFetcherBuilder| b.build().unwrap_err().to_string();
    assert_eq!(
        msg(HttpFetcher::builder().timeout(Duration::ZERO)),
        "invalid http fetcher setting: timeout must be > 0 and at most a year, got 0ns"
    );
    assert!(msg(HttpFetcher::builder().read_timeout(Duration::ZERO)).contains("read_timeout"));
    assert!(msg(HttpFetcher::builder().max_body_bytes(0)).contains("max_body_bytes must be > 0"));
    assert!(
        msg(HttpFetcher::builder().idempotency_namespace("a b")).contains("idempotency_namespace")
    );

    let err = HttpFetcher::builder()
        .header("bad name", "x")
        .build()
        .unwrap_err();
    assert!(matches!(err, HttpBuildError::Header { .. }), "{err}");
    // An invalid value is refused without being echoed: it may be a secret.
    let err = HttpFetcher::builder()
        .header("authorization", "s3cret\n")
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("\"authorization\""), "{err}");
    assert!(!err.to_string().contains("s3cret"), "{err}");
}
