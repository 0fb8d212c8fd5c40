//! Fuzzing (proptest, a bounded number of cases) of everything the HTTP
//! fetcher parses from the network (issue 20): `Retry-After` values, status
//! codes 100-999 with random headers, and truncated or oversized bodies from
//! a raw server on 127.0.0.1. Each case asserts no panic, a typed result,
//! every pause within [`MAX_RETRY_AFTER`], and a retryable kind only where
//! one belongs.

#![cfg(feature = "http")]

#[path = "http_fuzz/server.rs"]
mod server;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gearshift::ErrorKind;
use gearshift::http::{MAX_RETRY_AFTER, parse_retry_after};
use proptest::prelude::*;

use server::{CAPS, env};

// ---- Retry-After, parsed directly --------------------------------------------

/// The last second an HTTP date can name: 9999-12-31 23:59:59 UTC.
const LAST_HTTP_DATE: u64 = 253_402_300_799;
/// 2070-01-01 00:00:00 UTC: an RFC 850 date's two-digit year stops before.
const RFC850_END: u64 = 3_155_760_000;

/// An HTTP date at `secs` after the epoch in one of the three forms RFC 9110
/// accepts: 0 IMF-fixdate, 1 RFC 850 (two-digit year), 2 asctime.
fn http_date(secs: u64, form: usize) -> String {
    // A two-digit year means 1970-2069.
    let secs = if form == 1 { secs % RFC850_END } else { secs };
    let imf = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs));
    // "Sun, 06 Nov 1994 08:49:37 GMT"
    let parts: Vec<&str> = imf.split(' ').collect();
    let (wd, dd, mon, year, hms) = (&parts[0][..3], parts[1], parts[2], parts[3], parts[4]);
    match form {
        0 => imf.clone(),
        1 => {
            let weekday = match wd {
                "Mon" => "Monday",
                "Tue" => "Tuesday",
                "Wed" => "Wednesday",
                "Thu" => "Thursday",
                "Fri" => "Friday",
                "Sat" => "Saturday",
                _ => "Sunday",
            };
            format!(
                "{weekday}, {dd}-{mon}-{} {hms} GMT",
                &year[year.len() - 2..]
            )
        }
        _ => format!("{wd} {mon} {:>2} {hms} {year}", dd.trim_start_matches('0')),
    }
}

/// The pause a `Retry-After` of only ASCII digits must give: its value,
/// saturated at the cap, however many digits.
fn digits_pause(digits: &str) -> Duration {
    let significant = digits.trim_start_matches('0');
    if significant.len() > 30 {
        return MAX_RETRY_AFTER;
    }
    let secs: u128 = significant.parse().unwrap_or(0);
    match u64::try_from(secs) {
        Ok(s) => Duration::from_secs(s).min(MAX_RETRY_AFTER),
        Err(_) => MAX_RETRY_AFTER,
    }
}

/// Values a hostile or broken remote might send as `Retry-After`.
fn retry_after_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ -~]{0,40}",
        "[ \t]{0,2}[+-]?[0-9]{0,70}[ \t]{0,2}",
        any::<u64>().prop_map(|n| n.to_string()),
        any::<u128>().prop_map(|n| n.to_string()),
        "-?[0-9]{1,5}(\\.[0-9]{0,3}|e[0-9]{1,3}|x[0-9a-f]{1,4})",
        (0..=LAST_HTTP_DATE, 0..3usize).prop_map(|(s, f)| http_date(s, f)),
        // Dates cut short or with a character swapped.
        (0..=LAST_HTTP_DATE, 0..3usize, 0..40usize, any::<char>()).prop_map(|(s, f, at, c)| {
            let mut date: Vec<char> = http_date(s, f).chars().collect();
            let at = at % date.len();
            if c.is_ascii_digit() {
                date.truncate(at);
            } else {
                date[at] = c;
            }
            date.into_iter().collect()
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn retry_after_is_typed_and_within_the_cap(
        text in retry_after_text(),
        now_secs in 0..=LAST_HTTP_DATE,
    ) {
        let now = UNIX_EPOCH + Duration::from_secs(now_secs);
        let got = parse_retry_after(&text, now);
        if let Some(pause) = got {
            prop_assert!(pause <= MAX_RETRY_AFTER, "{text:?} gave {pause:?}");
            prop_assert!(Instant::now().checked_add(pause).is_some());
        }
        let trimmed = text.trim();
        if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit()) {
            prop_assert_eq!(got, Some(digits_pause(trimmed)), "{:?}", text);
        }
        // A signed or fractional number is no delta-seconds.
        let number = trimmed.bytes().all(|b| b.is_ascii_digit() || b"+-.".contains(&b));
        if number && trimmed.bytes().any(|b| b"+-.".contains(&b)) {
            prop_assert_eq!(got, None, "{:?}", text);
        }
    }

    #[test]
    fn retry_after_dates_measure_from_now_and_saturate(
        at in 0..=LAST_HTTP_DATE,
        now_secs in 0..=LAST_HTTP_DATE,
        form in 0..3usize,
    ) {
        let now = UNIX_EPOCH + Duration::from_secs(now_secs);
        let text = http_date(at, form);
        let got = parse_retry_after(&text, now);
        prop_assert!(got.is_some(), "{text:?} is a valid HTTP date");
        // RFC 850 years have two digits: only the bound is checked for them.
        if form != 1 {
            let want = Duration::from_secs(at.saturating_sub(now_secs)).min(MAX_RETRY_AFTER);
            prop_assert_eq!(got, Some(want), "{:?} at {}", text, now_secs);
        }
        prop_assert!(got.unwrap() <= MAX_RETRY_AFTER);
    }
}

// ---- statuses and headers ------------------------------------------------------

/// Header names the fetcher must not care about. Framing (`content-length`,
/// `transfer-encoding`, `connection`) is set by the case; `location` would
/// make the client follow a redirect.
fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "server",
            "date",
            "content-type",
            "cache-control",
            "www-authenticate",
            "set-cookie",
            "vary",
            "etag",
            "x-request-id",
            "x-ratelimit-reset",
        ])
        .prop_map(str::to_owned),
        "x-[a-z0-9-]{1,12}",
    ]
}

/// A header value's bytes: visible ASCII, spaces, tabs, and obs-text.
fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![0x20u8..=0x7e, Just(b'\t'), 0x80u8..=0xff],
        0..40,
    )
}

/// A `Retry-After` value a server can put on the wire.
fn retry_after_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        retry_after_text().prop_map(|t| t
            .bytes()
            .filter(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
            .collect()),
        header_value(),
    ]
}

/// What `HeaderValue::to_str` accepts, then parsed as the fetcher does.
fn expected_pause(value: &[u8]) -> Option<Duration> {
    let text = std::str::from_utf8(value).ok()?;
    if !value
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
    {
        return None;
    }
    parse_retry_after(text, SystemTime::now())
}

#[derive(Debug, Clone)]
struct StatusCase {
    status: u16,
    reason: String,
    headers: Vec<(String, Vec<u8>)>,
    retry_after: Vec<Vec<u8>>,
    body: String,
}

fn status_case() -> impl Strategy<Value = StatusCase> {
    (
        prop_oneof![
            100u16..=999,
            prop::sample::select(vec![
                100u16, 101, 199, 200, 204, 301, 400, 404, 408, 429, 500, 503, 599, 600, 999,
            ]),
        ],
        "[A-Za-z ]{0,12}",
        prop_oneof![
            8 => prop::collection::vec((header_name(), header_value()), 0..8),
            1 => prop::collection::vec((header_name(), header_value()), 110..130),
        ],
        prop::collection::vec(retry_after_value(), 0..3),
        "[a-z ]{0,20}",
    )
        .prop_map(|(status, reason, headers, retry_after, body)| StatusCase {
            status,
            reason,
            headers,
            retry_after,
            body,
        })
}

impl StatusCase {
    fn response(&self) -> Vec<u8> {
        let mut r = format!("HTTP/1.1 {} {}\r\n", self.status, self.reason).into_bytes();
        let headers = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v))
            .chain(self.retry_after.iter().map(|v| ("retry-after", v)));
        for (name, value) in headers {
            r.extend_from_slice(name.as_bytes());
            r.extend_from_slice(b": ");
            r.extend_from_slice(value);
            r.extend_from_slice(b"\r\n");
        }
        let framing = format!(
            "content-length: {}\r\nconnection: close\r\n\r\n{}",
            self.body.len(),
            self.body
        );
        r.extend_from_slice(framing.as_bytes());
        r
    }

    /// Over hyper's limit of 100 headers: the head does not parse.
    fn too_many_headers(&self) -> bool {
        self.headers.len() > 100
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_status_and_headers_classify_as_the_docs_say(case in status_case()) {
        let env = env();
        let fetcher = &env.fetchers[CAPS.len() - 1].1;
        let result = env.fetch(fetcher, case.response());
        let status = case.status;
        let pause = case.retry_after.first().and_then(|v| expected_pause(v));
        let err = match result {
            Ok(body) => {
                prop_assert!((200..300).contains(&status), "{status} gave Ok");
                prop_assert!(!case.too_many_headers());
                if status != 204 {
                    prop_assert_eq!(body, case.body.as_bytes());
                }
                return Ok(());
            }
            Err(err) => err,
        };
        let kind = err.kind();
        if let Some(got) = err.retry_after() {
            prop_assert!(got <= MAX_RETRY_AFTER, "{got:?}");
            prop_assert!(matches!(status, 429 | 503), "{status} carried a pause");
        }
        if case.too_many_headers() {
            prop_assert_eq!(kind, ErrorKind::BadPayload, "{}", err);
            return Ok(());
        }
        match status {
            // 101 reaches the caller (nothing asked to switch): refused.
            101 => prop_assert_eq!(kind, ErrorKind::Rejected, "{}", err),
            // Other informational answers are skipped while waiting for the
            // final one; the server then hangs up (Reset) or what follows
            // does not parse (BadPayload).
            100..=199 => prop_assert!(
                matches!(kind, ErrorKind::Reset | ErrorKind::BadPayload),
                "{status}: {err}"
            ),
            200..=299 => prop_assert!(false, "{status} failed: {err}"),
            408 => prop_assert_eq!(kind, ErrorKind::Timeout),
            429 => {
                prop_assert_eq!(kind, ErrorKind::RateLimited);
                prop_assert_eq!(err.retry_after().is_some(), pause.is_some(), "{:?}", case.retry_after);
            }
            503 if pause.is_some() => prop_assert_eq!(kind, ErrorKind::RateLimited),
            500..=599 => prop_assert_eq!(kind, ErrorKind::Server, "{}", err),
            _ => {
                prop_assert_eq!(kind, ErrorKind::Rejected, "{}", err);
                prop_assert!(!kind.is_transient());
            }
        }
        if let (Some(want), Some(got)) = (pause, err.retry_after()) {
            // A date is measured from two slightly different "now"s.
            let gap = want.abs_diff(got);
            prop_assert!(gap <= Duration::from_secs(2), "{want:?} vs {got:?}");
        }
    }
}

// ---- bodies: truncated, oversized, cut anywhere -----------------------------------

#[derive(Debug, Clone)]
enum Framing {
    /// `content-length: declared`, then `sent` bytes (fewer, as many, or more).
    Length { declared: usize, sent: usize },
    /// Chunks of these sizes, the encoded body cut at `cut` if given (before
    /// its terminator is complete).
    Chunked {
        chunks: Vec<usize>,
        cut: Option<usize>,
    },
    /// No length: the body ends when the connection closes.
    UntilClose { sent: usize },
}

fn framing() -> impl Strategy<Value = Framing> {
    prop_oneof![
        (0..100_000usize, 0..100_000usize)
            .prop_map(|(declared, sent)| Framing::Length { declared, sent }),
        (0..100_000usize, 0..3usize).prop_map(|(declared, how)| Framing::Length {
            declared,
            sent: match how {
                0 => declared,
                1 => declared.saturating_sub(1),
                _ => declared + 1,
            },
        }),
        (
            prop::collection::vec(1..20_000usize, 0..8),
            any::<Option<prop::sample::Index>>()
        )
            .prop_map(|(chunks, cut)| {
                let len = encode_chunked(&chunks).len();
                // Anywhere before the last 5 bytes ("0\r\n\r\n"): truncated.
                let cut = cut.map(|i| i.index(len - 4));
                Framing::Chunked { chunks, cut }
            }),
        (0..100_000usize).prop_map(|sent| Framing::UntilClose { sent }),
    ]
}

fn encode_chunked(chunks: &[usize]) -> Vec<u8> {
    let body: Vec<u8> = body_bytes(chunks.iter().sum()).collect();
    let mut out = Vec::new();
    let mut at = 0;
    for &len in chunks {
        out.extend_from_slice(format!("{len:x}\r\n").as_bytes());
        out.extend_from_slice(&body[at..at + len]);
        out.extend_from_slice(b"\r\n");
        at += len;
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

fn body_bytes(len: usize) -> impl Iterator<Item = u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8)
}

impl Framing {
    fn response(&self) -> Vec<u8> {
        let mut r = b"HTTP/1.1 200 OK\r\nconnection: close\r\n".to_vec();
        match self {
            Framing::Length { declared, sent } => {
                r.extend_from_slice(format!("content-length: {declared}\r\n\r\n").as_bytes());
                r.extend(body_bytes(*sent));
            }
            Framing::Chunked { chunks, cut } => {
                r.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n");
                let mut body = encode_chunked(chunks);
                if let Some(cut) = cut {
                    body.truncate(*cut);
                }
                r.extend(body);
            }
            Framing::UntilClose { sent } => {
                r.extend_from_slice(b"\r\n");
                r.extend(body_bytes(*sent));
            }
        }
        r
    }

    /// The body the fetcher must return, or `None` when it must fail as
    /// `BadPayload` (over the cap, or cut short).
    fn expected(&self, cap: usize) -> Option<Vec<u8>> {
        let (whole, len) = match self {
            Framing::Length { declared, sent } => (sent >= declared, *declared),
            Framing::Chunked { chunks, cut } => (cut.is_none(), chunks.iter().sum()),
            Framing::UntilClose { sent } => (true, *sent),
        };
        (whole && len <= cap).then(|| body_bytes(len).collect())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn truncated_and_oversized_bodies_are_bad_payload(
        framing in framing(),
        which in 0..CAPS.len(),
    ) {
        let env = env();
        let (cap, fetcher) = &env.fetchers[which];
        match (framing.expected(*cap), env.fetch(fetcher, framing.response())) {
            (Some(want), Ok(body)) => prop_assert!(body == want, "wrong body for {framing:?}"),
            (None, Err(err)) => {
                prop_assert_eq!(err.kind(), ErrorKind::BadPayload, "{}", err);
                prop_assert_eq!(err.retry_after(), None);
            }
            (Some(_), Err(err)) => prop_assert!(false, "cap {cap}, {framing:?} failed: {err}"),
            (None, Ok(body)) => {
                prop_assert!(false, "cap {cap}, {framing:?} gave {} bytes", body.len())
            }
        }
    }
}
