//! [`HttpFetcher`]: one HTTP attempt per call, bounded in time and size, its
//! failure classified into an [`ErrorKind`] for the pipeline's retry policy.
//!
//! Just over 400 lines: one attempt, from request to classified outcome,
//! kept in one place so every path that can fail is seen beside the others.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{Method, Request, RequestBuilder, Response, StatusCode, Url};

use super::builder::HttpFetcherBuilder;
use super::classify::{
    check_scheme, classify_body_error, classify_send_error, classify_status, error_chain,
};
use super::error::FetchError;
use super::redact::{redact_url, shown_url};
use crate::{ErrorKind, StageError};

/// The header that carries the idempotency key, when keys are on.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Fetches over HTTP for an IO stage: one attempt per call.
///
/// Cheap to clone (one shared connection pool behind an `Arc`): clone it into
/// each agent's closure. It never retries: the pipeline does, reading the
/// [`kind`](StageError::kind) and [`retry_after`](StageError::retry_after) of
/// the error it returns. Each attempt is bounded by a call timeout, a read
/// timeout between body chunks and a cap on the body size.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use gearshift::http::HttpFetcher;
///
/// let fetcher = HttpFetcher::builder()
///     .timeout(Duration::from_secs(5))
///     .max_body_bytes(1 << 20)
///     .header("authorization", "Bearer s3cret")
///     .build()?;
/// let for_agent = fetcher.clone(); // shares the pool
/// # drop(for_agent);
/// # Ok::<(), gearshift::http::HttpBuildError>(())
/// ```
#[derive(Clone)]
pub struct HttpFetcher {
    inner: Arc<Inner>,
}

/// What every clone of one fetcher shares; made by [`HttpFetcherBuilder::build`].
pub(super) struct Inner {
    pub(super) client: reqwest::Client,
    pub(super) timeout: Duration,
    pub(super) read_timeout: Duration,
    pub(super) max_body_bytes: usize,
    pub(super) idempotency_namespace: Option<String>,
    pub(super) log_full_urls: bool,
}

/// One failed attempt, before it becomes a [`StageError`].
struct Failed {
    status: Option<StatusCode>,
    kind: ErrorKind,
    retry_after: Option<Duration>,
    detail: String,
}

impl HttpFetcher {
    /// A builder with the default settings.
    pub fn builder() -> HttpFetcherBuilder {
        HttpFetcherBuilder::new()
    }

    pub(super) fn from_inner(inner: Inner) -> Self {
        HttpFetcher {
            inner: Arc::new(inner),
        }
    }

    /// The underlying reqwest client, to build requests for [`send`](Self::send).
    pub fn client(&self) -> &reqwest::Client {
        &self.inner.client
    }

    /// GETs `url` and returns its body.
    ///
    /// # Errors
    ///
    /// A [`StageError`] whose kind says what went wrong (see the
    /// [module docs](super#errors)); its source is a [`FetchError`].
    pub async fn get(&self, url: &str) -> Result<Bytes, StageError> {
        self.request(Method::GET, url, None, None).await
    }

    /// GETs `url` for the item `key`, sending an `Idempotency-Key` header
    /// derived from `key` when keys are [on](HttpFetcherBuilder::idempotency_keys):
    /// every retry of the item sends the same key.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub async fn get_keyed(&self, url: &str, key: u64) -> Result<Bytes, StageError> {
        self.request(Method::GET, url, Some(key), None).await
    }

    /// POSTs `body` to `url` and returns the response body.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub async fn post(&self, url: &str, body: impl Into<Bytes>) -> Result<Bytes, StageError> {
        self.request(Method::POST, url, None, Some(body.into()))
            .await
    }

    /// POSTs `body` to `url` for the item `key`, with an `Idempotency-Key`
    /// header when keys are on: a retried upload the remote already applied
    /// is recognised instead of applied twice.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub async fn post_keyed(
        &self,
        url: &str,
        key: u64,
        body: impl Into<Bytes>,
    ) -> Result<Bytes, StageError> {
        self.request(Method::POST, url, Some(key), Some(body.into()))
            .await
    }

    /// Sends a request built by hand (any method, per-request headers or
    /// query) with the same bounds and classification as [`get`](Self::get).
    ///
    /// Build it from [`client`](Self::client). The request runs on this
    /// fetcher's pool with its timeouts and body cap whatever client built it;
    /// a timeout set on the request itself replaces the fetcher's call timeout.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get); a request that cannot be built (a malformed
    /// URL or header) is [`ErrorKind::Rejected`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(fetcher: gearshift::http::HttpFetcher, id: u64) -> Result<(), gearshift::StageError> {
    /// let request = fetcher
    ///     .client()
    ///     .delete(format!("http://127.0.0.1:8080/items/{id}"))
    ///     .header("x-reason", "expired");
    /// fetcher.send(request).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send(&self, request: RequestBuilder) -> Result<Bytes, StageError> {
        match request.build_split().1 {
            Ok(request) => self.execute(request).await,
            Err(err) => {
                let url = err.url().map_or_else(
                    || "<unknown url>".to_owned(),
                    |u| shown_url(u, self.inner.log_full_urls),
                );
                let detail = format!(
                    "could not build the request: {}",
                    error_chain(&err.without_url())
                );
                Err(self.fail(None, url, Failed::new(ErrorKind::Rejected, detail)))
            }
        }
    }

    /// The `Idempotency-Key` value sent for item `key`, or `None` when keys
    /// are off. Use it to add the header to a request for [`send`](Self::send).
    ///
    /// The value is `<namespace>-<key as 16 hex digits>`; it is the same for
    /// every clone of this fetcher.
    pub fn idempotency_key(&self, key: u64) -> Option<String> {
        self.inner
            .idempotency_namespace
            .as_ref()
            .map(|ns| format!("{ns}-{key:016x}"))
    }

    /// The cap on a response body, in bytes.
    pub fn max_body_bytes(&self) -> usize {
        self.inner.max_body_bytes
    }

    async fn request(
        &self,
        method: Method,
        url: &str,
        key: Option<u64>,
        body: Option<Bytes>,
    ) -> Result<Bytes, StageError> {
        let parsed = match Url::parse(url) {
            Ok(parsed) => parsed,
            Err(err) => {
                let detail = format!("invalid url: {err}");
                return Err(self.fail(
                    Some(method),
                    redact_url(url),
                    Failed::new(ErrorKind::Rejected, detail),
                ));
            }
        };
        let mut request = Request::new(method, parsed);
        if let Some(value) = key.and_then(|k| self.idempotency_key(k)) {
            let value = HeaderValue::try_from(value)
                .expect("the idempotency namespace was checked at build");
            request
                .headers_mut()
                .insert(HeaderName::from_static(IDEMPOTENCY_KEY), value);
        }
        if let Some(body) = body {
            *request.body_mut() = Some(body.into());
        }
        self.execute(request).await
    }

    async fn execute(&self, request: Request) -> Result<Bytes, StageError> {
        let method = request.method().clone();
        let url = shown_url(request.url(), self.inner.log_full_urls);
        // Every request passes here (get, post, send): a scheme the client
        // cannot speak is refused before any connection is tried.
        if let Err(detail) = check_scheme(request.url()) {
            return Err(self.fail(Some(method), url, Failed::new(ErrorKind::Rejected, detail)));
        }
        match self.attempt(request).await {
            Ok((status, body)) => {
                tracing::trace!(
                    %method,
                    %url,
                    status = status.as_u16(),
                    bytes = body.len(),
                    "http attempt ok"
                );
                Ok(body)
            }
            Err(failed) => Err(self.fail(Some(method), url, failed)),
        }
    }

    async fn attempt(&self, request: Request) -> Result<(StatusCode, Bytes), Failed> {
        let mut response = match self.inner.client.execute(request).await {
            Ok(response) => response,
            Err(err) => {
                let (kind, what) = classify_send_error(&err);
                let detail = format!(
                    "{what}{}: {}",
                    self.timeouts_if(kind),
                    error_chain(&err.without_url())
                );
                return Err(Failed::new(kind, detail));
            }
        };
        let status = response.status();
        if let Some((kind, retry_after)) =
            classify_status(status, response.headers(), SystemTime::now())
        {
            drain_small_body(&mut response, self.inner.read_timeout).await;
            let mut detail = format!("server answered {status}");
            if let Some(pause) = retry_after {
                detail.push_str(&format!(", retry after {pause:?}"));
            }
            return Err(Failed {
                status: Some(status),
                kind,
                retry_after,
                detail,
            });
        }
        match self.read_body(&mut response).await {
            Ok(body) => Ok((status, body)),
            Err((kind, detail)) => Err(Failed {
                status: Some(status),
                ..Failed::new(kind, detail)
            }),
        }
    }

    /// Reads the body chunk by chunk, refusing it as soon as it is known to
    /// exceed the cap, so a huge answer never sits in memory.
    async fn read_body(&self, response: &mut Response) -> Result<Bytes, (ErrorKind, String)> {
        let cap = self.inner.max_body_bytes;
        let declared = response.content_length();
        if let Some(len) = declared {
            if len > cap as u64 {
                return Err((
                    ErrorKind::BadPayload,
                    format!("content-length {len} exceeds max_body_bytes {cap}"),
                ));
            }
        }
        // `declared <= cap` here, so it fits in usize.
        let capacity = declared.map_or(0, |len| len as usize).min(PREALLOCATE_MAX);
        let mut body = BytesMut::with_capacity(capacity);
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if chunk.len() > cap - body.len() {
                        return Err((
                            ErrorKind::BadPayload,
                            format!(
                                "body exceeds max_body_bytes {cap} ({} bytes received)",
                                body.len() + chunk.len()
                            ),
                        ));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(body.freeze()),
                Err(err) => {
                    let (kind, what) = classify_body_error(&err);
                    let of = declared.map_or_else(String::new, |len| format!(" of {len}"));
                    let detail = format!(
                        "{what} after {}{of} bytes{}: {}",
                        body.len(),
                        self.timeouts_if(kind),
                        error_chain(&err.without_url())
                    );
                    return Err((kind, detail));
                }
            }
        }
    }

    /// The timeouts in force, for the message of a timeout.
    fn timeouts_if(&self, kind: ErrorKind) -> String {
        if kind == ErrorKind::Timeout {
            format!(
                " (read_timeout {:?}, timeout {:?})",
                self.inner.read_timeout, self.inner.timeout
            )
        } else {
            String::new()
        }
    }

    /// Logs the failed attempt and wraps it for the pipeline.
    fn fail(&self, method: Option<Method>, url: String, failed: Failed) -> StageError {
        let Failed {
            status,
            kind,
            retry_after,
            detail,
        } = failed;
        let err = FetchError::new(method, url, status, detail);
        let status = status.map(|s| s.as_u16());
        // One attempt is not the item's fate: the pipeline retries it or
        // ends it as failed, and its collector logs that once, knowing
        // whether a dead-letter sink takes the failure. A caller outside a
        // pipeline gets the error back.
        tracing::debug!(url = err.url(), status, kind = kind.as_str(), error = %err, "http attempt failed");
        let stage_error = StageError::new(kind, err);
        match retry_after {
            Some(pause) => stage_error.with_retry_after(pause),
            None => stage_error,
        }
    }
}

impl fmt::Debug for HttpFetcher {
    // Never the headers: they may hold credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("HttpFetcher")
            .field("timeout", &inner.timeout)
            .field("read_timeout", &inner.read_timeout)
            .field("max_body_bytes", &inner.max_body_bytes)
            .field("idempotency_keys", &inner.idempotency_namespace.is_some())
            .field("log_full_urls", &inner.log_full_urls)
            .finish_non_exhaustive()
    }
}

impl Failed {
    fn new(kind: ErrorKind, detail: String) -> Self {
        Failed {
            status: None,
            kind,
            retry_after: None,
            detail,
        }
    }
}

/// Reads and drops a small error body, so its connection goes back to the
/// pool rather than being closed: a 429 storm then costs no new connections.
/// A large or slow body is dropped with its connection.
async fn drain_small_body(response: &mut Response, read_timeout: Duration) {
    if response
        .content_length()
        .is_some_and(|len| len > DRAIN_MAX as u64)
    {
        return;
    }
    let drain = async {
        let mut read = 0;
        while let Ok(Some(chunk)) = response.chunk().await {
            read += chunk.len();
            if read > DRAIN_MAX {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(read_timeout.min(DRAIN_WAIT), drain).await;
}

/// The largest error body read (and dropped) to keep its connection.
const DRAIN_MAX: usize = 64 << 10;
/// The longest wait for an error body to drain.
const DRAIN_WAIT: Duration = Duration::from_secs(1);
/// The most a `Content-Length` header can make us reserve up front: a remote
/// that declares a large body has to send it before it costs memory.
const PREALLOCATE_MAX: usize = 1 << 20;
