//! What the fetcher puts inside a [`StageError`](crate::StageError)
//! ([`FetchError`]), and why a fetcher could not be built ([`HttpBuildError`]).

use std::fmt;

use reqwest::{Method, StatusCode};

use crate::ConfigError;

/// One failed attempt: the request (with its URL redacted), the status if one
/// arrived, and what happened.
///
/// The fetcher wraps it in a [`StageError`](crate::StageError) whose
/// [`kind`](crate::StageError::kind) says how to treat it; downcast
/// [`source_error`](crate::StageError::source_error) to reach the status.
///
/// # Examples
///
/// ```
/// # fn status_of(err: &gearshift::StageError) -> Option<u16> {
/// use gearshift::http::FetchError;
///
/// err.source_error()
///     .downcast_ref::<FetchError>()
///     .and_then(|e| e.status())
///     .map(|s| s.as_u16())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct FetchError {
    method: Option<Method>,
    url: String,
    status: Option<StatusCode>,
    detail: String,
}

impl FetchError {
    pub(crate) fn new(
        method: Option<Method>,
        url: String,
        status: Option<StatusCode>,
        detail: String,
    ) -> Self {
        FetchError {
            method,
            url,
            status,
            detail,
        }
    }

    /// The request's method; `None` when the request could not even be built.
    pub fn method(&self) -> Option<&Method> {
        self.method.as_ref()
    }

    /// The request's URL as the fetcher logs it: without query string and
    /// userinfo unless the fetcher was built with
    /// [`log_full_urls`](super::HttpFetcherBuilder::log_full_urls).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The response status, when the failure came after one arrived.
    pub fn status(&self) -> Option<StatusCode> {
        self.status
    }
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.method {
            Some(method) => write!(f, "{method} {}: {}", self.url, self.detail),
            None => write!(f, "request {}: {}", self.url, self.detail),
        }
    }
}

impl std::error::Error for FetchError {}

/// An [`HttpFetcher`](super::HttpFetcher) could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpBuildError {
    /// A setting was out of range.
    #[error("invalid http fetcher setting: {0}")]
    Config(#[from] ConfigError),
    /// A default header had an invalid name or value. The value is never
    /// shown: it may be a secret.
    #[error("invalid default header {name:?}: {reason}")]
    Header {
        /// The header name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A root certificate given to
    /// [`add_root_certificate`](super::HttpFetcherBuilder::add_root_certificate)
    /// could not be read.
    #[error("invalid root certificate (number {number} added): {reason}")]
    Certificate {
        /// Which one, counting the calls from 1.
        number: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// reqwest refused to build its client.
    #[error("could not build the http client: {0}")]
    Client(String),
}
