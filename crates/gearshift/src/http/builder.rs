//! [`HttpFetcherBuilder`]: the settings of an [`HttpFetcher`], checked when
//! it is built, and which TLS roots it trusts.

use std::fmt;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, USER_AGENT};

use super::classify::error_chain;
use super::error::HttpBuildError;
use super::fetcher::{HttpFetcher, Inner};
use crate::ConfigError;
use crate::config::MAX_DURATION;

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
    /// PEM texts given to `add_root_certificate`, parsed at build.
    #[cfg(feature = "tls")]
    root_certificates: Vec<Vec<u8>>,
    #[cfg(feature = "tls")]
    platform_roots: bool,
}

#[derive(Clone, Debug)]
enum Idempotency {
    Off,
    RandomNamespace,
    Namespace(String),
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
            #[cfg(feature = "tls")]
            root_certificates: Vec::new(),
            #[cfg(feature = "tls")]
            platform_roots: true,
        }
    }

    /// Builds a fetcher with its own connection pool.
    ///
    /// # Errors
    ///
    /// [`HttpBuildError`] when a timeout is zero or over a year, the body cap
    /// is zero, a header or the idempotency namespace is invalid, an added
    /// root certificate cannot be read, or reqwest cannot build its client
    /// (with the `tls` feature on Linux: also when no root is trusted at all,
    /// see the [module docs](super#https)).
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
            .default_headers(self.header_map()?);
        #[cfg(feature = "tls")]
        let client = self.with_roots(client)?;
        let client = client
            .build()
            .map_err(|e| HttpBuildError::Client(error_chain(&e.without_url())))?;
        Ok(HttpFetcher::from_inner(Inner {
            client,
            timeout: self.timeout,
            read_timeout: self.read_timeout,
            max_body_bytes: self.max_body_bytes,
            idempotency_namespace,
            log_full_urls: self.log_full_urls,
        }))
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
    /// as [`ErrorKind::BadPayload`](crate::ErrorKind::BadPayload) when its `Content-Length` arrives, or as
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

    /// Trusts every certificate in `pem` (one certificate or a bundle, PEM
    /// text as in a `.pem` or `.crt` file) as a root for HTTPS, besides the
    /// platform's roots: for a private CA or a self-signed test server.
    /// Checked at [`build`](Self::build). Needs the `tls` feature (on by
    /// default).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let ca = std::fs::read("internal-ca.pem")?;
    /// let fetcher = gearshift::http::HttpFetcher::builder()
    ///     .add_root_certificate(ca)
    ///     .build()?;
    /// # drop(fetcher);
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "tls")]
    pub fn add_root_certificate(&mut self, pem: impl AsRef<[u8]>) -> &mut Self {
        self.root_certificates.push(pem.as_ref().to_vec());
        self
    }

    /// Whether the platform's roots are trusted (see the
    /// [module docs](super#https)). Off, only the roots added with
    /// [`add_root_certificate`](Self::add_root_certificate) are: to pin a
    /// private CA, or on a machine without a CA bundle. By default, on.
    /// Needs the `tls` feature (on by default).
    #[cfg(feature = "tls")]
    pub fn platform_roots(&mut self, on: bool) -> &mut Self {
        self.platform_roots = on;
        self
    }

    /// Hands the added roots to reqwest, parsed now so a bad PEM is a build
    /// error rather than a failure of every call.
    #[cfg(feature = "tls")]
    fn with_roots(
        &self,
        client: reqwest::ClientBuilder,
    ) -> Result<reqwest::ClientBuilder, HttpBuildError> {
        let mut roots = Vec::new();
        for (i, pem) in self.root_certificates.iter().enumerate() {
            let bad = |reason: String| HttpBuildError::Certificate {
                number: i + 1,
                reason,
            };
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| bad(error_chain(&e.without_url())))?;
            if certs.is_empty() {
                return Err(bad(
                    "no \"-----BEGIN CERTIFICATE-----\" block found".to_owned()
                ));
            }
            roots.extend(certs);
        }
        if self.platform_roots {
            Ok(client.tls_certs_merge(roots))
        } else if roots.is_empty() {
            Err(ConfigError::new(
                "platform_roots",
                "on, unless a root certificate is added",
                false,
            )
            .into())
        } else {
            Ok(client.tls_certs_only(roots))
        }
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
        let mut f = f.debug_struct("HttpFetcherBuilder");
        f.field("timeout", &self.timeout)
            .field("read_timeout", &self.read_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("headers", &header_names)
            .field("idempotency", &self.idempotency)
            .field("log_full_urls", &self.log_full_urls);
        #[cfg(feature = "tls")]
        f.field("root_certificates", &self.root_certificates.len())
            .field("platform_roots", &self.platform_roots);
        f.finish()
    }
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
