//! The HTTP fetcher: what an IO stage calls to talk to a remote API.
//!
//! [`HttpFetcher`] makes **one attempt per call**. Retries, backoff and the
//! stage-wide pause a `Retry-After` asks for live in the pipeline, which
//! reads the [`kind`](crate::StageError::kind) and
//! [`retry_after`](crate::StageError::retry_after) of the error the fetcher
//! returns. The fetcher's job is to bound each attempt (a call timeout, a
//! read timeout between chunks, a body size cap) and to say precisely what
//! went wrong.
//!
//! # Which one do I use, and when?
//!
//! | you want to | use |
//! |---|---|
//! | read a resource | [`HttpFetcher::get`] |
//! | upload a result | [`HttpFetcher::post`] |
//! | make a retried call safe to repeat (the remote dedupes on `Idempotency-Key`) | [`HttpFetcher::get_keyed`] / [`HttpFetcher::post_keyed`] with [`idempotency_keys`](HttpFetcherBuilder::idempotency_keys) on |
//! | another method, per-request headers or query | [`HttpFetcher::send`] with a request from [`HttpFetcher::client`] |
//! | your own HTTP client | [`parse_retry_after`] and [`redact_url`], then `StageError::new(kind, err)` |
//! | trust a private CA or a self-signed server | [`add_root_certificate`](HttpFetcherBuilder::add_root_certificate) |
//!
//! Build one fetcher and clone it into each agent: the clones share one
//! connection pool.
//!
//! ```
//! use std::time::Duration;
//! use axum::{Router, extract::Path, http::StatusCode, routing::get};
//! use gearshift::ErrorKind;
//! use gearshift::http::HttpFetcher;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A stand-in for the remote API, on loopback.
//! let api = Router::new()
//!     .route("/items/{id}", get(|Path(id): Path<u64>| async move { format!("item {id}") }))
//!     .route("/busy", get(|| async { (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "2")]) }));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let base = format!("http://{}", listener.local_addr()?);
//! tokio::spawn(async move { axum::serve(listener, api).await });
//!
//! let fetcher = HttpFetcher::builder()
//!     .timeout(Duration::from_secs(5))
//!     .max_body_bytes(1 << 20)
//!     .build()?;
//!
//! let body = fetcher.get(&format!("{base}/items/7")).await.map_err(|e| e.to_string())?;
//! assert_eq!(&body[..], b"item 7");
//!
//! // The remote says "not now": the pipeline pauses the stage for 2 s, then retries.
//! let err = fetcher.get(&format!("{base}/busy?api_key=s3cret")).await.unwrap_err();
//! assert_eq!(err.kind(), ErrorKind::RateLimited);
//! assert_eq!(err.retry_after(), Some(Duration::from_secs(2)));
//! assert!(!err.to_string().contains("s3cret")); // the query string is never shown
//! # Ok(())
//! # }
//! ```
//!
//! # Errors
//!
//! Every failure is a [`StageError`](crate::StageError) wrapping a
//! [`FetchError`] (method, redacted URL, status, what happened). Its kind:
//!
//! | what happened | kind | retried by default |
//! |---|---|---|
//! | no answer within the call or read timeout; 408 | [`Timeout`](crate::ErrorKind::Timeout) | yes |
//! | connection refused, reset, or closed before a response | [`Reset`](crate::ErrorKind::Reset) | yes |
//! | the host name does not resolve (DNS) | [`Reset`](crate::ErrorKind::Reset), "could not connect: ... dns error" | yes |
//! | 5xx | [`Server`](crate::ErrorKind::Server) | yes |
//! | 429; 503 with a `Retry-After` (the pause is in `retry_after`) | [`RateLimited`](crate::ErrorKind::RateLimited) | yes, after the pause |
//! | body over the cap, or cut short; a response head that does not parse | [`BadPayload`](crate::ErrorKind::BadPayload) | yes |
//! | any other 4xx (or a stray 1xx/3xx) | [`Rejected`](crate::ErrorKind::Rejected) | no |
//! | a malformed URL, a scheme other than `http`/`https`, a request that cannot be built | [`Rejected`](crate::ErrorKind::Rejected) | no |
//! | the TLS handshake fails (untrusted, expired or misnamed certificate) | [`Rejected`](crate::ErrorKind::Rejected) | no |
//!
//! A DNS failure is retried because the system resolver cannot reliably
//! tell "no such name" from "the resolver is briefly unreachable"; a name
//! that never resolves spends the retry budget and then fails as `Reset`.
//! The other permanent cases fail the same way on every attempt until a
//! person changes the URL, the code or the certificates.
//!
//! A `Retry-After` is capped at [`MAX_RETRY_AFTER`] (one day) when parsed,
//! whatever number or date the remote sends; the pipeline caps the pause
//! further with its own setting.
//!
//! # HTTPS
//!
//! With the `tls` feature (on by default) the fetcher speaks HTTPS through
//! rustls, with the aws-lc-rs crypto provider. It trusts the platform's
//! roots, through `rustls-platform-verifier`: on Linux and other Unixes the
//! system CA bundle (the files named by `SSL_CERT_FILE` / `SSL_CERT_DIR` if
//! set, else the usual `/etc/ssl` locations), on macOS and iOS the Security
//! framework, on Windows the system certificate store, on Android the
//! system's trust store. A Linux machine with no CA bundle and no added root
//! cannot build a fetcher: [`build`](HttpFetcherBuilder::build) returns
//! [`HttpBuildError::Client`] ("no CA certificates were loaded from the
//! system").
//!
//! To trust a private CA or a self-signed server as well, pass its PEM
//! certificate to
//! [`add_root_certificate`](HttpFetcherBuilder::add_root_certificate); to
//! trust only the roots you add, turn
//! [`platform_roots`](HttpFetcherBuilder::platform_roots) off. Without the
//! `tls` feature (`default-features = false, features = ["http"]`), an
//! `https` URL is refused as `Rejected` before any connection is tried.
//!
//! # Timeouts
//!
//! Three bounds, from the widest: the pipeline's `api_timeout` around each
//! attempt; the fetcher's own call [`timeout`](HttpFetcherBuilder::timeout)
//! (so it is safe outside a pipeline); and the
//! [`read_timeout`](HttpFetcherBuilder::read_timeout) between two reads, which
//! catches a remote that sends headers and then stalls or trickles a byte at
//! a time long before the other two would.
//!
//! # Secrets
//!
//! Header values (`Authorization`, API keys) are never logged nor shown by
//! `Debug`. URLs in logs and error messages lose their query string and
//! userinfo unless [`log_full_urls`](HttpFetcherBuilder::log_full_urls) is
//! on. Each failed attempt is logged through `tracing` with the fields `url`,
//! `status` and `kind`: at `debug` when it is transient, at `warn` otherwise.

mod builder;
mod classify;
mod error;
mod fetcher;
mod redact;
mod retry_after;

pub use builder::HttpFetcherBuilder;
pub use error::{FetchError, HttpBuildError};
pub use fetcher::{HttpFetcher, IDEMPOTENCY_KEY};
pub use redact::redact_url;
pub use retry_after::{MAX_RETRY_AFTER, parse_retry_after};
