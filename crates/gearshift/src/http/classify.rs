//! Turning what went wrong into an [`ErrorKind`]: the pipeline's retry policy
//! and its stage-wide `Retry-After` pause read nothing else, so this is where
//! a 429 is told from a 500 and a stalled body from a refused connection.

use std::error::Error as _;
use std::io;
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{StatusCode, Url};

use super::retry_after::parse_retry_after;
use crate::ErrorKind;

/// What a non-success status means: its kind, and the pause the remote asked
/// for. `None` for 2xx.
///
/// 429 is rate limiting with or without `Retry-After`; 503 is rate limiting
/// only when it says how long to wait, otherwise a plain server error; 408
/// (the server gave up waiting for the request) is a timeout; any other 4xx,
/// and a 1xx or 3xx that reached the caller, is rejected: retrying the same
/// request cannot change the answer.
pub(crate) fn classify_status(
    status: StatusCode,
    headers: &HeaderMap,
    now: SystemTime,
) -> Option<(ErrorKind, Option<Duration>)> {
    if status.is_success() {
        return None;
    }
    let retry_after = || {
        headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, now))
    };
    Some(match status {
        StatusCode::TOO_MANY_REQUESTS => (ErrorKind::RateLimited, retry_after()),
        StatusCode::SERVICE_UNAVAILABLE => match retry_after() {
            Some(pause) => (ErrorKind::RateLimited, Some(pause)),
            None => (ErrorKind::Server, None),
        },
        StatusCode::REQUEST_TIMEOUT => (ErrorKind::Timeout, None),
        s if s.is_server_error() => (ErrorKind::Server, None),
        _ => (ErrorKind::Rejected, None),
    })
}

/// Refuses a URL whose scheme the fetcher cannot speak, with the reason.
///
/// Checked before a request is sent: reqwest would report an `https` URL in
/// a build without TLS as a connect error, which reads as a transient
/// [`Reset`](ErrorKind::Reset) and is retried for nothing.
pub(crate) fn check_scheme(url: &Url) -> Result<(), String> {
    match url.scheme() {
        "http" => Ok(()),
        "https" if cfg!(feature = "tls") => Ok(()),
        "https" => Err("https needs the `tls` feature of gearshift, off in this build".to_owned()),
        other => Err(format!(
            "unsupported url scheme {other:?}: only http and https"
        )),
    }
}

/// The kind of an error from sending the request, before any response
/// arrived, with a few words on what happened.
///
/// A failed TLS handshake (untrusted or expired certificate, wrong host
/// name, no common protocol) is [`Rejected`](ErrorKind::Rejected): the same
/// request to the same server fails the same way until someone changes a
/// certificate or the trusted roots. A response head that does not parse is
/// [`BadPayload`](ErrorKind::BadPayload). A DNS failure is a connect error,
/// [`Reset`](ErrorKind::Reset): the system resolver does not reliably tell a
/// name that does not exist from a resolver that is briefly unreachable.
pub(crate) fn classify_send_error(err: &reqwest::Error) -> (ErrorKind, &'static str) {
    if err.is_timeout() {
        (ErrorKind::Timeout, "timed out waiting for the response")
    } else if err.is_builder() {
        (ErrorKind::Rejected, "invalid request")
    } else if err.is_redirect() {
        (ErrorKind::Rejected, "too many redirects")
    } else if is_tls_error(err) {
        (ErrorKind::Rejected, "tls handshake failed")
    } else if find_cause::<hyper::Error>(err).is_some_and(hyper::Error::is_parse) {
        (ErrorKind::BadPayload, "malformed response head")
    } else if err.is_connect() {
        (ErrorKind::Reset, "could not connect")
    } else if err.is_request() {
        // The connection was reset or closed before a whole response arrived.
        (ErrorKind::Reset, "connection failed before a response")
    } else {
        (ErrorKind::Other, "request failed")
    }
}

/// The kind of an error while reading the body, after the status arrived.
///
/// A stall is a timeout; a reset is a reset; anything else means the body
/// stopped short of its end, an unusable (truncated) payload.
pub(crate) fn classify_body_error(err: &reqwest::Error) -> (ErrorKind, &'static str) {
    if err.is_timeout() {
        (ErrorKind::Timeout, "timed out reading the body")
    } else if io_error_kind(err).is_some_and(|k| {
        matches!(
            k,
            io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
        )
    }) {
        (ErrorKind::Reset, "connection reset while reading the body")
    } else {
        (ErrorKind::BadPayload, "body truncated")
    }
}

/// The error and its causes as one line, `outer: inner: innermost`.
///
/// Only for errors that carry no URL (`reqwest::Error::without_url`), so the
/// line is safe to log.
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut line = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        // hyper repeats its cause in its own message; skip exact repeats.
        if !line.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = cause.source();
    }
    line
}

/// Whether a TLS error (from rustls, not the socket under it) is in the chain.
#[cfg(feature = "tls")]
fn is_tls_error(err: &reqwest::Error) -> bool {
    find_cause::<rustls::Error>(err).is_some()
}

#[cfg(not(feature = "tls"))]
fn is_tls_error(_: &reqwest::Error) -> bool {
    false
}

/// The first error of type `T` among `err` and its causes, looking inside
/// `io::Error`s too: their `source()` skips the error they wrap, and TLS
/// streams report rustls errors wrapped in one (or two).
fn find_cause<T: std::error::Error + 'static>(err: &reqwest::Error) -> Option<&T> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(cause) = next {
        if let Some(found) = cause.downcast_ref::<T>() {
            return Some(found);
        }
        next = match cause
            .downcast_ref::<io::Error>()
            .and_then(io::Error::get_ref)
        {
            Some(wrapped) => Some(wrapped),
            None => cause.source(),
        };
    }
    None
}

fn io_error_kind(err: &reqwest::Error) -> Option<io::ErrorKind> {
    let mut source = err.source();
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            return Some(io.kind());
        }
        source = cause.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn with_retry_after(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_str(v).unwrap());
        h
    }

    fn kind_of(code: u16, headers: &HeaderMap) -> Option<(ErrorKind, Option<Duration>)> {
        classify_status(
            StatusCode::from_u16(code).unwrap(),
            headers,
            SystemTime::UNIX_EPOCH,
        )
    }

    #[test]
    fn statuses() {
        let none = HeaderMap::new();
        assert_eq!(kind_of(200, &none), None);
        assert_eq!(kind_of(204, &none), None);
        assert_eq!(kind_of(500, &none), Some((ErrorKind::Server, None)));
        assert_eq!(kind_of(502, &none), Some((ErrorKind::Server, None)));
        assert_eq!(kind_of(503, &none), Some((ErrorKind::Server, None)));
        assert_eq!(kind_of(429, &none), Some((ErrorKind::RateLimited, None)));
        assert_eq!(kind_of(404, &none), Some((ErrorKind::Rejected, None)));
        assert_eq!(kind_of(401, &none), Some((ErrorKind::Rejected, None)));
        assert_eq!(kind_of(304, &none), Some((ErrorKind::Rejected, None)));
        assert_eq!(kind_of(408, &none), Some((ErrorKind::Timeout, None)));
    }

    #[test]
    fn retry_after_on_429_and_503() {
        let h = with_retry_after("4");
        let four = Some(Duration::from_secs(4));
        assert_eq!(kind_of(429, &h), Some((ErrorKind::RateLimited, four)));
        assert_eq!(kind_of(503, &h), Some((ErrorKind::RateLimited, four)));
        // Only 429 and 503 carry a pause.
        assert_eq!(kind_of(500, &h), Some((ErrorKind::Server, None)));
        // A malformed header is no pause: 503 stays a server error.
        let bad = with_retry_after("later");
        assert_eq!(kind_of(503, &bad), Some((ErrorKind::Server, None)));
        assert_eq!(kind_of(429, &bad), Some((ErrorKind::RateLimited, None)));
    }
}
