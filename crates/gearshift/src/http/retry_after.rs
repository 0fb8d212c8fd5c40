//! Reading a `Retry-After` header: how long the remote asked to be left alone.

use std::time::{Duration, SystemTime};

/// The longest pause [`parse_retry_after`] returns: one day.
///
/// A remote may ask for any number of seconds, or a date in the year 9999;
/// a pause that long is a mistake or an attack, and `Instant::now() + d`
/// overflows (and panics) long before `u64::MAX` seconds. Every parsed pause
/// is saturated to this cap, so any caller can add it to an `Instant`. The
/// pipeline caps it further with `Config::max_pause`.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// Parses a `Retry-After` value (RFC 9110, section 10.2.3) into a pause of
/// at most [`MAX_RETRY_AFTER`].
///
/// The value is either delta-seconds (`"120"`) or an HTTP date
/// (`"Wed, 21 Oct 2015 07:28:00 GMT"`, also the obsolete RFC 850 and asctime
/// forms); a date is measured from `now`, and a date already past gives a
/// zero pause. A number or date beyond the cap gives the cap: the remote
/// means "a very long time". Anything else (negative or fractional numbers,
/// garbage) gives `None`, so a malformed header never turns into a made-up
/// pause.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, SystemTime, UNIX_EPOCH};
/// use gearshift::http::{MAX_RETRY_AFTER, parse_retry_after};
///
/// let now = UNIX_EPOCH + Duration::from_secs(1_445_412_480); // 2015-10-21 07:28:00 UTC
/// assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
/// assert_eq!(
///     parse_retry_after("Wed, 21 Oct 2015 07:29:00 GMT", now),
///     Some(Duration::from_secs(60)),
/// );
/// assert_eq!(parse_retry_after("99999999999999999999", now), Some(MAX_RETRY_AFTER));
/// assert_eq!(parse_retry_after("soon", now), None);
/// ```
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        let secs = value.bytes().try_fold(0u64, |secs, digit| {
            secs.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
        });
        // `None`: more seconds than a u64 holds, far beyond the cap.
        return Some(secs.map_or(MAX_RETRY_AFTER, |s| {
            Duration::from_secs(s).min(MAX_RETRY_AFTER)
        }));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    let pause = at.duration_since(now).unwrap_or(Duration::ZERO);
    Some(pause.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Instant, UNIX_EPOCH};

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
            parse_retry_after("000000000000000000000000042", now()),
            Some(Duration::from_secs(42))
        );
        assert_eq!(
            parse_retry_after("86400", now()),
            Some(MAX_RETRY_AFTER),
            "exactly the cap"
        );
    }

    /// Issue 20, defect 1: 20 digits parsed to `u64::MAX` seconds, and
    /// `Instant::now() + d` panicked inside the pipeline's pause.
    #[test]
    fn huge_numbers_saturate_to_the_cap() {
        for v in [
            "86401",
            "18446744073709551615",
            "18446744073709551616",
            "99999999999999999999",
            "99999999999999999999999999999999999999999999999999",
        ] {
            let pause = parse_retry_after(v, now()).expect("digits parse");
            assert_eq!(pause, MAX_RETRY_AFTER, "{v:?}");
            assert!(Instant::now().checked_add(pause).is_some(), "{v:?}");
        }
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
    fn far_future_date_saturates_to_the_cap() {
        assert_eq!(
            parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now()),
            Some(MAX_RETRY_AFTER)
        );
    }

    #[test]
    fn past_date_is_zero() {
        for v in [
            "Wed, 21 Oct 2015 07:00:00 GMT",
            "Thu, 01 Jan 1970 00:00:00 GMT",
        ] {
            assert_eq!(parse_retry_after(v, now()), Some(Duration::ZERO), "{v:?}");
        }
    }

    #[test]
    fn garbage_is_none() {
        for v in [
            "",
            "  ",
            "-5",
            "1.5",
            "+3",
            "1e9",
            "0x10",
            "soon",
            "Wed, 99 Oct 2015 07:00:00 GMT",
        ] {
            assert_eq!(parse_retry_after(v, now()), None, "{v:?}");
        }
    }
}
