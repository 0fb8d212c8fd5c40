//! Serving the mock API: embedded ([`MockApi`], its own thread and runtime)
//! or standalone ([`serve`]).
//!
//! Connections are served with hyper directly (axum only routes), because a
//! connection reset needs control below the response: when a handler marks
//! its response with `ResetConnection`, the service returns an error and
//! hyper closes the socket without writing a byte of response, so the client
//! sees the connection closed mid-request.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tower::ServiceExt;

use super::config::{MockConfig, MockConfigError};
use super::routes::{ResetConnection, router};
use super::state::{MockStats, State};

/// A mock API running on 127.0.0.1 on its own thread and tokio runtime, so
/// its timers are not delayed by the CPU work of the client under test.
/// Dropping it stops the server (requests still running are dropped).
///
/// # Examples
///
/// ```
/// use gearshift_bench::mock_api::{MockApi, MockConfig};
///
/// let api = MockApi::start(MockConfig::default()).unwrap();
/// assert!(api.base_url().starts_with("http://127.0.0.1:"));
/// assert_eq!(api.stats().requests, 0);
/// ```
#[derive(Debug)]
pub struct MockApi {
    addr: SocketAddr,
    state: Arc<State>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// The mock API could not start.
#[derive(Debug)]
pub enum MockApiError {
    /// The configuration was refused.
    Config(MockConfigError),
    /// The socket or the runtime could not be set up.
    Io(std::io::Error),
}

impl std::fmt::Display for MockApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MockApiError::Config(e) => write!(f, "invalid mock api config: {e}"),
            MockApiError::Io(e) => write!(f, "could not start the mock api: {e}"),
        }
    }
}

impl std::error::Error for MockApiError {}

impl From<MockConfigError> for MockApiError {
    fn from(e: MockConfigError) -> Self {
        MockApiError::Config(e)
    }
}

impl From<std::io::Error> for MockApiError {
    fn from(e: std::io::Error) -> Self {
        MockApiError::Io(e)
    }
}

impl MockApi {
    /// Starts a mock API on `127.0.0.1:0` with one runtime thread.
    ///
    /// # Errors
    ///
    /// [`MockApiError`] if the config is refused or the socket cannot bind.
    pub fn start(config: MockConfig) -> Result<MockApi, MockApiError> {
        Self::start_with_threads(config, 1)
    }

    /// Starts a mock API whose runtime has `threads` worker threads.
    ///
    /// # Errors
    ///
    /// As for [`start`](Self::start).
    pub fn start_with_threads(config: MockConfig, threads: usize) -> Result<MockApi, MockApiError> {
        config.validate()?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::new(config));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("mock-api")
            .enable_all()
            .build()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let served = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name("mock-api".into())
            .spawn(move || {
                rt.block_on(async move {
                    match TcpListener::from_std(listener) {
                        Ok(l) => {
                            serve_on(l, served, async {
                                let _ = stopped.await;
                            })
                            .await
                        }
                        Err(e) => tracing::error!(error = %e, "mock api: bad listener"),
                    }
                });
                // Dropping `rt` here cancels connections still running.
            })?;
        tracing::debug!(%addr, "mock api started");
        Ok(MockApi {
            addr,
            state,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The URL of item `id`.
    pub fn item_url(&self, id: u64) -> String {
        format!("http://{}/item/{id}", self.addr)
    }

    /// The URL item `id`'s result is uploaded to (`POST`).
    pub fn upload_url(&self, id: u64) -> String {
        format!("http://{}/upload/{id}", self.addr)
    }

    /// The socket address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The counters, as `GET /stats` returns them (without per-id counts).
    pub fn stats(&self) -> MockStats {
        self.state.stats(false)
    }

    /// The counters with the number of requests per item id.
    pub fn stats_per_id(&self) -> MockStats {
        self.state.stats(true)
    }

    /// Forgets every counter and every id's attempt number, so the next run
    /// on the same server replays the same faults.
    pub fn reset_stats(&self) {
        self.state.reset();
    }

    /// The config in force.
    pub fn config(&self) -> MockConfig {
        (*self.state.config()).clone()
    }

    /// Replaces the config; requests arriving from now on use it (requests
    /// already sleeping keep their latency). For phase changes mid-run.
    ///
    /// # Errors
    ///
    /// A [`MockConfigError`] if the new config is refused (the old one stays).
    pub fn set_config(&self, config: MockConfig) -> Result<(), MockConfigError> {
        config.validate()?;
        self.state.set_config(config);
        Ok(())
    }
}

impl Drop for MockApi {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves the mock API on `listener` until `shutdown` resolves: the
/// standalone `gearshift-bench mock-api` uses it.
///
/// # Errors
///
/// A [`MockConfigError`] if the config is refused.
pub async fn serve(
    listener: TcpListener,
    config: MockConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), MockConfigError> {
    config.validate()?;
    serve_on(listener, Arc::new(State::new(config)), shutdown).await;
    Ok(())
}

async fn serve_on(listener: TcpListener, state: Arc<State>, shutdown: impl Future<Output = ()>) {
    let app = router(state);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "mock api: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: hyper::Request<Incoming>| {
                let app = app.clone();
                async move {
                    let resp = app.oneshot(req).await.unwrap_or_else(|e| match e {});
                    if resp.extensions().get::<ResetConnection>().is_some() {
                        return Err(ResetError);
                    }
                    Ok(resp)
                }
            });
            // An error here is an injected reset or truncation, or a client
            // that went away: nothing to report.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// The service error that makes hyper drop the connection.
#[derive(Debug)]
struct ResetError;

impl std::fmt::Display for ResetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("injected connection reset")
    }
}

impl std::error::Error for ResetError {}
