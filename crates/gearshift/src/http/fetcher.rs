//! [`HttpFetcher`]: one HTTP attempt per call, bounded in time and size, its
//! failure classified into an [`ErrorKind`] for the pipeline's retry policy.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, USER_AGENT};
use reqwest::{Method, Request, RequestBuilder, Response, StatusCode, Url};

use super::classify::{classify_body_error, classify_send_error, classify_status, error_chain};
use super::error::{FetchError, HttpBuildError};
use super::redact::{redact_url, shown_url};
use crate::config::MAX_DURATION;
use crate::{ConfigError, ErrorKind, StageError};

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

/// Settings for an [`HttpFetcher`]; [`build`](Self::build) can be called
/// again to make more fetchers with the same settings.
#[derive(Clone)]
pub struct HttpFetcherBuilder {
    timeout: Duration,
    read_timeout: Duration,
    connect_timeout: Duration,
    max_body_bytes: usize,
    headers: Vec<(String, String)>,
    idempotency: Idempotency,
    log_full_urls: bool,
}

#[derive(Clone, Debug)]
enum Idempotency {
    Off,
    RandomNamespace,
    Namespace(String),
}

struct Inner {
    client: reqwest::Client,
    timeout: Duration,
    read_timeout: Duration,
    max_body_bytes: usize,
    idempotency_namespace: Option<String>,
    log_full_urls: bool,
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
        // Transient failures are routine (the pipeline retries them); the
        // others lose the item, so they are worth a warning.
        if kind.is_transient() {
            tracing::debug!(url = err.url(), status, kind = kind.as_str(), error = %err, "http attempt failed");
        } else {
            tracing::warn!(url = err.url(), status, kind = kind.as_str(), error = %err, "http attempt failed");
        }
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

impl HttpFetcherBuilder {
    /// A builder with the default settings.
    pub fn new() -> Self {
        HttpFetcherBuilder {
            timeout: DEFAULT_TIMEOUT,
            read_timeout: DEFAULT_READ_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            headers: Vec::new(),
            idempotency: Idempotency::Off,
            log_full_urls: false,
        }
    }

    /// Builds a fetcher with its own connection pool.
    ///
    /// # Errors
    ///
    /// [`HttpBuildError`] when a timeout is zero or over a year, the body cap
    /// is zero, a header or the idempotency namespace is invalid, or reqwest
    /// cannot build its client.
    pub fn build(&self) -> Result<HttpFetcher, HttpBuildError> {
        check_duration("timeout", self.timeout)?;
        check_duration("read_timeout", self.read_timeout)?;
        check_duration("connect_timeout", self.connect_timeout)?;
        if self.max_body_bytes == 0 {
            return Err(ConfigError::new("max_body_bytes", "> 0", self.max_body_bytes).into());
        }
        let idempotency_namespace = match &self.idempotency {
            Idempotency::Off => None,
            Idempotency::RandomNamespace => Some(format!("{:016x}", rand::random::<u64>())),
            Idempotency::Namespace(ns) => {
                check_namespace(ns)?;
                Some(ns.clone())
            }
        };
        let client = reqwest::Client::builder()
            .timeout(self.timeout)
            .read_timeout(self.read_timeout)
            .connect_timeout(self.connect_timeout)
            .default_headers(self.header_map()?)
            .build()
            .map_err(|e| HttpBuildError::Client(error_chain(&e.without_url())))?;
        Ok(HttpFetcher {
            inner: Arc::new(Inner {
                client,
                timeout: self.timeout,
                read_timeout: self.read_timeout,
                max_body_bytes: self.max_body_bytes,
                idempotency_namespace,
                log_full_urls: self.log_full_urls,
            }),
        })
    }

    /// The longest one call may take, from connecting to the end of the body.
    ///
    /// The pipeline's `Config::api_timeout` also bounds each attempt; this one
    /// makes the fetcher safe on its own. By default, 30 s.
    pub fn timeout(&mut self, timeout: Duration) -> &mut Self {
        self.timeout = timeout;
        self
    }

    /// The longest wait for the next bytes of a response (headers or body
    /// chunk): a remote that stalls or trickles fails after this long rather
    /// than at the call timeout. By default, 10 s.
    pub fn read_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.read_timeout = timeout;
        self
    }

    /// The longest wait for a connection to open. By default, 10 s.
    pub fn connect_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.connect_timeout = timeout;
        self
    }

    /// The largest response body accepted, in bytes. A larger one is refused
    /// as [`ErrorKind::BadPayload`] when its `Content-Length` arrives, or as
    /// soon as the streamed bytes pass the cap, so it is never held in
    /// memory. By default, 16 MiB.
    pub fn max_body_bytes(&mut self, bytes: usize) -> &mut Self {
        self.max_body_bytes = bytes;
        self
    }

    /// Adds a header sent with every request (an API key, say). Values are
    /// never logged nor shown by `Debug`. By default, only
    /// `User-Agent: gearshift/<version>`, which this can replace.
    pub fn header(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sends an `Idempotency-Key` header with [`get_keyed`](HttpFetcher::get_keyed)
    /// and [`post_keyed`](HttpFetcher::post_keyed), so the remote can tell a
    /// retry from a new request. The key combines a namespace, random per
    /// [`build`](Self::build) unless [set](Self::idempotency_namespace), with
    /// the item key. By default, off.
    pub fn idempotency_keys(&mut self, on: bool) -> &mut Self {
        self.idempotency = if on {
            Idempotency::RandomNamespace
        } else {
            Idempotency::Off
        };
        self
    }

    /// Turns idempotency keys on with a fixed namespace (1 to 200 ASCII
    /// letters, digits, `-`, `_` or `.`), so keys stay the same across
    /// restarts of a job. By default, keys are off.
    pub fn idempotency_namespace(&mut self, namespace: impl Into<String>) -> &mut Self {
        self.idempotency = Idempotency::Namespace(namespace.into());
        self
    }

    /// Logs and reports URLs with their query strings. Userinfo
    /// (`user:password@`) is dropped either way. By default, off: query
    /// strings often carry API keys.
    pub fn log_full_urls(&mut self, on: bool) -> &mut Self {
        self.log_full_urls = on;
        self
    }

    fn header_map(&self) -> Result<HeaderMap, HttpBuildError> {
        let mut map = HeaderMap::new();
        map.insert(USER_AGENT, HeaderValue::from_static(DEFAULT_USER_AGENT));
        for (name, value) in &self.headers {
            let bad = |reason| HttpBuildError::Header {
                name: name.clone(),
                reason,
            };
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| bad("not a valid header name"))?;
            let mut value = HeaderValue::from_str(value)
                .map_err(|_| bad("value must be visible ascii, spaces or tabs"))?;
            // Keeps the value out of reqwest's Debug output.
            value.set_sensitive(true);
            map.insert(name, value);
        }
        Ok(map)
    }
}

impl Default for HttpFetcherBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for HttpFetcherBuilder {
    // Header names only: the values may be credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header_names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("HttpFetcherBuilder")
            .field("timeout", &self.timeout)
            .field("read_timeout", &self.read_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("headers", &header_names)
            .field("idempotency", &self.idempotency)
            .field("log_full_urls", &self.log_full_urls)
            .finish()
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

fn check_duration(field: &'static str, d: Duration) -> Result<(), ConfigError> {
    if d.is_zero() || d > MAX_DURATION {
        return Err(ConfigError::new(field, "> 0 and at most a year", d));
    }
    Ok(())
}

fn check_namespace(ns: &str) -> Result<(), ConfigError> {
    let ok = (1..=200).contains(&ns.len())
        && ns
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(
            "idempotency_namespace",
            "1 to 200 ascii letters, digits, '-', '_' or '.'",
            ns,
        ))
    }
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_MAX_BODY_BYTES: usize = 16 << 20;
const DEFAULT_USER_AGENT: &str = concat!("gearshift/", env!("CARGO_PKG_VERSION"));
/// The largest error body read (and dropped) to keep its connection.
const DRAIN_MAX: usize = 64 << 10;
/// The longest wait for an error body to drain.
const DRAIN_WAIT: Duration = Duration::from_secs(1);
/// The most a `Content-Length` header can make us reserve up front: a remote
/// that declares a large body has to send it before it costs memory.
const PREALLOCATE_MAX: usize = 1 << 20;
