//! A small HTTP API on 127.0.0.1 for the examples to talk to: it runs on the
//! example's own runtime, so each example is self-contained.
//!
//! - `GET /item/{id}`: a 4 KiB deterministic record, after `latency`;
//! - `POST /upload`: accepts a body and answers its length, after `latency`.
//!
//! The benchmark CLI has the full mock API (latency model, faults):
//! `cargo run --release -p gearshift-bench -- mock-api --help`.
#![allow(dead_code)] // each example uses a part of it

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post};

/// The API's response time, changeable while it runs.
#[derive(Clone)]
pub struct Api {
    latency_us: Arc<AtomicU64>,
    pub addr: SocketAddr,
}

impl Api {
    /// Starts the API on 127.0.0.1 with a free port.
    pub async fn start(latency: Duration) -> anyhow::Result<Api> {
        let latency_us = Arc::new(AtomicU64::new(latency.as_micros() as u64));
        let app = Router::new()
            .route("/item/{id}", get(item))
            .route("/upload", post(upload))
            .with_state(Arc::clone(&latency_us));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Api { latency_us, addr })
    }

    pub fn set_latency(&self, latency: Duration) {
        self.latency_us
            .store(latency.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn item_url(&self, id: u64) -> String {
        format!("http://{}/item/{id}", self.addr)
    }

    pub fn upload_url(&self) -> String {
        format!("http://{}/upload", self.addr)
    }
}

async fn item(State(latency): State<Arc<AtomicU64>>, Path(id): Path<u64>) -> Vec<u8> {
    tokio::time::sleep(Duration::from_micros(latency.load(Ordering::Relaxed))).await;
    (0..4096u64)
        .map(|i| (id.wrapping_mul(31).wrapping_add(i) % 251) as u8)
        .collect()
}

async fn upload(State(latency): State<Arc<AtomicU64>>, body: axum::body::Bytes) -> String {
    tokio::time::sleep(Duration::from_micros(latency.load(Ordering::Relaxed))).await;
    body.len().to_string()
}

/// CPU work standing in for parsing or scoring: `rounds` of SHA-256.
pub fn digest(data: &[u8], rounds: u32) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut out: [u8; 32] = Sha256::digest(data).into();
    for _ in 1..rounds {
        out = Sha256::digest(out).into();
    }
    out
}

/// Logs to stderr, filtered by `RUST_LOG` (default: info).
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // A closed stderr (`| head`) must not make every event panic.
        .log_internal_errors(false)
        .init();
}
