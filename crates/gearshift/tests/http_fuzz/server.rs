//! The fuzz target's raw HTTP server on 127.0.0.1 and its shared runtime.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use gearshift::http::HttpFetcher;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;

/// A runtime, a raw HTTP server answering each `/case/N` with the bytes
/// registered for N, and fetchers with a few body caps, shared by the cases.
pub struct Env {
    rt: Runtime,
    base: String,
    responses: Arc<Mutex<HashMap<u64, Vec<u8>>>>,
    next: AtomicU64,
    /// (cap, fetcher), built once: each build loads the platform's roots.
    pub fetchers: Vec<(usize, HttpFetcher)>,
}

pub const CAPS: [usize; 4] = [1, 100, 4096, 40_000];

pub fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let responses: Arc<Mutex<HashMap<u64, Vec<u8>>>> = Arc::default();
        let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let table = responses.clone();
        rt.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(answer(stream, table.clone()));
            }
        });
        let fetchers = CAPS
            .iter()
            .map(|&cap| {
                let f = HttpFetcher::builder()
                    .timeout(Duration::from_secs(20))
                    .read_timeout(Duration::from_secs(10))
                    .max_body_bytes(cap)
                    .build()
                    .unwrap();
                (cap, f)
            })
            .collect();
        Env {
            rt,
            base,
            responses,
            next: AtomicU64::new(0),
            fetchers,
        }
    })
}

impl Env {
    /// GETs a URL the server answers with exactly `response`.
    pub fn fetch(
        &self,
        fetcher: &HttpFetcher,
        response: Vec<u8>,
    ) -> Result<Vec<u8>, gearshift::StageError> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.responses.lock().unwrap().insert(id, response);
        let url = format!("{}/case/{id}", self.base);
        self.rt.block_on(fetcher.get(&url)).map(|b| b.to_vec())
    }
}

/// Reads the request head, writes the registered bytes, closes gracefully:
/// FIN, then reads until the client hangs up, so no RST can cut the answer.
async fn answer(mut stream: TcpStream, table: Arc<Mutex<HashMap<u64, Vec<u8>>>>) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let line = String::from_utf8_lossy(&head);
    let id = line
        .split_whitespace()
        .nth(1)
        .and_then(|path| path.strip_prefix("/case/"))
        .and_then(|id| id.parse::<u64>().ok());
    let response = id.and_then(|id| table.lock().unwrap().remove(&id));
    if let Some(response) = response {
        let _ = stream.write_all(&response).await;
    }
    let _ = stream.shutdown().await;
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}
