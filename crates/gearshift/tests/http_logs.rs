//! What `gearshift::http::HttpFetcher` logs: the failed attempt with its
//! fields, never a header value nor (by default) a query string.
//!
//! Its own test binary with one test: the capturing subscriber is the global
//! default, which other tests running in parallel could not race with.

#![cfg(feature = "http")]

mod common;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use gearshift::ErrorKind;
use gearshift::http::HttpFetcher;

use common::{Captured, serve};

#[tokio::test]
async fn authorization_and_query_never_reach_the_logs() {
    let seen_auth = Arc::new(Mutex::new(None));
    let seen = seen_auth.clone();
    let base = serve(Router::new().route(
        "/",
        get(move |headers: HeaderMap| async move {
            *seen.lock().unwrap() = headers.get("authorization").cloned();
            StatusCode::INTERNAL_SERVER_ERROR
        }),
    ))
    .await;
    let captured = Captured::default();
    tracing::subscriber::set_global_default(captured.subscriber()).unwrap();

    let f = HttpFetcher::builder()
        .header("Authorization", "Bearer s3cret-token")
        .build()
        .unwrap();
    let err = f
        .get(&format!("{base}/?api_key=q5ecret"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Server);
    // The header was sent...
    assert_eq!(
        seen_auth.lock().unwrap().as_ref().unwrap(),
        "Bearer s3cret-token"
    );
    // ...and the failure logged, with its fields, but no secret.
    let logs = captured.text();
    assert!(logs.contains("http attempt failed"), "{logs}");
    assert!(
        logs.contains("kind=\"server_5xx\"") || logs.contains("kind=server_5xx"),
        "{logs}"
    );
    assert!(logs.contains("status=500"), "{logs}");
    assert!(
        logs.contains(&format!("url=\"{base}/\"")) || logs.contains(&format!("url={base}/")),
        "{logs}"
    );
    for text in [
        logs.as_str(),
        &err.to_string(),
        &format!("{err:?}"),
        &format!("{f:?}"),
    ] {
        assert!(!text.contains("s3cret"), "{text}");
        assert!(!text.contains("q5ecret"), "{text}");
    }

    // With full URLs on, the query shows (the option works), the header still not.
    let full = HttpFetcher::builder()
        .header("Authorization", "Bearer s3cret-token")
        .log_full_urls(true)
        .build()
        .unwrap();
    full.get(&format!("{base}/?page=2")).await.unwrap_err();
    let logs = captured.text();
    assert!(logs.contains("/?page=2"), "{logs}");
    assert!(!logs.contains("s3cret"), "{logs}");
}
