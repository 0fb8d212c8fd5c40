//! What a pipeline logs when items fail: a 4xx that a dead-letter sink
//! takes is the user's to report (debug per item, one summary), while a
//! failure nobody takes is a warning per item.
//!
//! Its own test binary: the capturing subscriber is set per test thread
//! (`Captured::set_default`), and every test here is single-threaded.

#![cfg(feature = "http")]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use gearshift::Pipeline;
use gearshift::http::HttpFetcher;

use common::{Captured, serve};

const ITEMS: u64 = 20;

/// A server whose every `/item/{id}` is 404 Not Found.
async fn not_found() -> String {
    serve(Router::new().route("/item/{id}", get(|| async { StatusCode::NOT_FOUND }))).await
}

/// Items `0..ITEMS` fetched from `base`, one IO stage.
macro_rules! pipeline {
    ($base:expr) => {{
        let (fetcher, base) = (HttpFetcher::builder().build().unwrap(), $base);
        Pipeline::from_iter(0..ITEMS).io(move |id| {
            let (f, url) = (fetcher.clone(), format!("{base}/item/{id}"));
            async move { f.get(&url).await }
        })
    }};
}

fn lines_at<'a>(logs: &'a str, level: &str, message: &str) -> Vec<&'a str> {
    logs.lines()
        .filter(|l| l.contains(level) && l.contains(message))
        .collect()
}

#[tokio::test(flavor = "current_thread")]
async fn a_4xx_taken_by_a_dead_letter_sink_is_no_warning() {
    let base = not_found().await;
    let captured = Captured::default();
    let _guard = captured.set_default();
    let taken = Arc::new(AtomicU64::new(0));
    let t = Arc::clone(&taken);
    let report = pipeline!(base)
        .dead_letter(move |_| {
            t.fetch_add(1, Ordering::Relaxed);
        })
        .run()
        .await
        .unwrap();
    assert_eq!(report.failed, ITEMS);
    assert_eq!(taken.load(Ordering::Relaxed), ITEMS);
    let logs = captured.text();
    let warnings: Vec<&str> = logs.lines().filter(|l| l.contains(" WARN ")).collect();
    assert!(warnings.is_empty(), "{warnings:#?}");
    // Each item at debug, with its kind; one summary at info.
    assert_eq!(
        lines_at(&logs, "DEBUG", "item failed").len(),
        ITEMS as usize,
        "{logs}"
    );
    let summary = lines_at(&logs, " INFO ", "items failed");
    assert_eq!(summary.len(), 1, "{logs}");
    assert!(
        summary[0].contains(&format!("failed={ITEMS}")),
        "{}",
        summary[0]
    );
    assert!(summary[0].contains("rejected_4xx 20"), "{}", summary[0]);
    assert!(summary[0].contains("dead-letter"), "{}", summary[0]);
}

#[tokio::test(flavor = "current_thread")]
async fn a_failure_nobody_takes_is_a_warning_per_item() {
    let base = not_found().await;
    let captured = Captured::default();
    let _guard = captured.set_default();
    let report = pipeline!(base).run().await.unwrap();
    assert_eq!(report.failed, ITEMS);
    let logs = captured.text();
    assert_eq!(
        lines_at(&logs, " WARN ", "item failed").len(),
        ITEMS as usize,
        "{logs}"
    );
}
