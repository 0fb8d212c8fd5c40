//! Showing a URL in logs and error messages without the secrets it may carry.
//!
//! API keys often ride in the query string (`?api_key=...`) and credentials in
//! the userinfo (`http://user:pass@host/`); both are dropped before a URL is
//! logged or put in an error message.

use reqwest::Url;

/// The URL with its userinfo, query string and fragment removed: what the
/// fetcher logs by default.
///
/// Scheme, host, port and path are kept, so the log still says which endpoint
/// failed. A string that does not parse as a URL with a host is cut the same
/// way by hand.
///
/// # Examples
///
/// ```
/// use gearshift::http::redact_url;
///
/// assert_eq!(
///     redact_url("http://user:pw@127.0.0.1:8080/items/7?api_key=s3cret#top"),
///     "http://127.0.0.1:8080/items/7",
/// );
/// ```
pub fn redact_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(parsed) if parsed.has_host() => shown_url(&parsed, false),
        // Without a host, `user:pw@host` parses as scheme `user`: cut by hand.
        _ => redact_unparsed(url),
    }
}

/// The URL as the fetcher logs it: redacted, or with its query string and
/// fragment when `full` (the userinfo is dropped either way).
pub(crate) fn shown_url(url: &Url, full: bool) -> String {
    let mut url = url.clone();
    // Both fail only for URLs without a host (`mailto:`), which have no userinfo.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    if !full {
        url.set_query(None);
        url.set_fragment(None);
    }
    url.into()
}

fn redact_unparsed(url: &str) -> String {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    let url = &url[..end];
    let authority_start = url.find("://").map_or(0, |i| i + 3);
    let authority_end = url[authority_start..]
        .find('/')
        .map_or(url.len(), |i| authority_start + i);
    match url[authority_start..authority_end].rfind('@') {
        Some(at) => format!(
            "{}{}",
            &url[..authority_start],
            &url[authority_start + at + 1..]
        ),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_query_fragment_and_userinfo() {
        assert_eq!(
            redact_url("http://127.0.0.1:9/a/b?token=x&y=2"),
            "http://127.0.0.1:9/a/b"
        );
        assert_eq!(redact_url("http://127.0.0.1/a#frag"), "http://127.0.0.1/a");
        assert_eq!(
            redact_url("http://alice:pw@127.0.0.1/a"),
            "http://127.0.0.1/a"
        );
        assert_eq!(redact_url("http://alice@127.0.0.1/"), "http://127.0.0.1/");
    }

    #[test]
    fn keeps_what_is_not_secret() {
        assert_eq!(
            redact_url("http://127.0.0.1:8080/items/7"),
            "http://127.0.0.1:8080/items/7"
        );
    }

    #[test]
    fn full_keeps_query_but_never_the_password() {
        let url = Url::parse("http://alice:pw@127.0.0.1/a?page=2#f").unwrap();
        assert_eq!(shown_url(&url, true), "http://127.0.0.1/a?page=2#f");
        assert_eq!(shown_url(&url, false), "http://127.0.0.1/a");
    }

    #[test]
    fn unparseable_strings_are_cut_by_hand() {
        assert_eq!(redact_url("not a url?key=1"), "not a url");
        assert_eq!(redact_url("::bad://u:p@h:x/p?k=1"), "::bad://h:x/p");
        assert_eq!(redact_url("u:p@host?k"), "host");
        assert_eq!(redact_url(""), "");
    }
}
