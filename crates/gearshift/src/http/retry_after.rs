//! Reading a `Retry-After` header: how long the remote asked to be left alone.

use std::time::{Duration, SystemTime};

/// Parses a `Retry-After` value (RFC 9110, section 10.2.3) into a pause.
///
/// The value is either delta-seconds (`"120"`) or an HTTP date
/// (`"Wed, 21 Oct 2015 07:28:00 GMT"`, also the obsolete RFC 850 and asctime
/// forms); a date is measured from `now`, and a date already past gives a
/// zero pause. Anything else (negative or fractional numbers, garbage) gives
/// `None`, so a malformed header never turns into a made-up pause.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, SystemTime, UNIX_EPOCH};
/// use gearshift::http::parse_retry_after;
///
/// let now = UNIX_EPOCH + Duration::from_secs(1_445_412_480); // 2015-10-21 07:28:00 UTC
/// assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
/// assert_eq!(
///     parse_retry_after("Wed, 21 Oct 2015 07:29:00 GMT", now),
///     Some(Duration::from_secs(60)),
/// );
/// assert_eq!(parse_retry_after("soon", now), None);
/// ```
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        // All digits but too large for u64: the remote means "a very long time".
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    /// 2015-10-21 07:28:00 UTC.
    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_445_412_480)
    }

    #[test]
    fn delta_seconds() {
        assert_eq!(parse_retry_after("0", now()), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after(" 7 ", now()),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            parse_retry_after("99999999999999999999999", now()),
            Some(Duration::from_secs(u64::MAX))
        );
    }

    #[test]
    fn http_dates_in_all_three_forms() {
        let in_90s = Some(Duration::from_secs(90));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:29:30 GMT", now()),
            in_90s
        );
        assert_eq!(
            parse_retry_after("Wednesday, 21-Oct-15 07:29:30 GMT", now()),
            in_90s
        );
        assert_eq!(parse_retry_after("Wed Oct 21 07:29:30 2015", now()), in_90s);
    }

    #[test]
    fn past_date_is_zero() {
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now()),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn garbage_is_none() {
        for v in [
            "",
            "  ",
            "-5",
            "1.5",
            "+3",
            "soon",
            "Wed, 99 Oct 2015 07:00:00 GMT",
        ] {
            assert_eq!(parse_retry_after(v, now()), None, "{v:?}");
        }
    }
}
