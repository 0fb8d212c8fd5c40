//! HTTPS and the permanent failures of `gearshift::http::HttpFetcher`
//! (issue 20, defect 6): a local HTTPS server on 127.0.0.1 with a
//! certificate made here by rcgen; an untrusted certificate, an unsupported
//! scheme, a malformed URL and a request that cannot be built all fail as
//! `Rejected`, never as a retried `Reset`.

#![cfg(feature = "http")]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use gearshift::http::HttpFetcher;
use gearshift::{ErrorKind, RetryPolicy, StageError};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use common::{raw_server, read_request};

/// A permanent failure: `kind`, and the default policy would not retry it.
fn assert_permanent(err: &StageError, kind: ErrorKind) {
    assert_eq!(err.kind(), kind, "{err}");
    assert!(!err.kind().is_transient(), "{err}");
    assert!(
        !RetryPolicy::default().should_retry(err),
        "the default policy must not retry {err}"
    );
}

/// A listener on 127.0.0.1 that counts connections and drops them.
async fn counting_listener() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while listener.accept().await.is_ok() {
            seen.fetch_add(1, Ordering::SeqCst);
        }
    });
    (port, count)
}

#[cfg(feature = "tls")]
mod tls {
    use super::*;

    use std::convert::Infallible;

    use gearshift::http::{FetchError, HttpBuildError};
    use http_body_util::Full;
    use hyper::body::Bytes;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use tokio_rustls::TlsAcceptor;
    use tokio_rustls::rustls::ServerConfig;
    use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

    fn fetch_error(err: &StageError) -> &FetchError {
        err.source_error()
            .downcast_ref::<FetchError>()
            .expect("the fetcher wraps a FetchError")
    }

    /// An HTTPS server on 127.0.0.1 whose certificate, self-signed, names
    /// `names`; answers `you asked for <path>`. Returns its port, the
    /// certificate as PEM, and the number of TCP connections accepted.
    async fn https_server(names: &[&str]) -> (u16, String, Arc<AtomicUsize>) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let certified = rcgen::generate_simple_self_signed(names).unwrap();
        let pem = certified.cert.pem();
        let key = PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der());
        let config = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(
                vec![certified.cert.der().clone()],
                PrivateKeyDer::Pkcs8(key),
            )
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A client that distrusts the certificate aborts here.
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service =
                        service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                            let body = format!("you asked for {}", req.uri().path());
                            Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from(body))))
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        (port, pem, connections)
    }

    #[tokio::test]
    async fn https_with_the_certificate_added_as_a_root_returns_the_body() {
        let (port, pem, _) = https_server(&["127.0.0.1", "localhost"]).await;
        let fetcher = HttpFetcher::builder()
            .add_root_certificate(&pem)
            .build()
            .unwrap();
        let body = fetcher
            .get(&format!("https://127.0.0.1:{port}/items/7"))
            .await
            .unwrap();
        assert_eq!(&body[..], b"you asked for /items/7");

        // Only the added root: the platform's are not needed for it.
        let only = HttpFetcher::builder()
            .add_root_certificate(pem.as_bytes())
            .platform_roots(false)
            .build()
            .unwrap();
        let body = only
            .post(&format!("https://127.0.0.1:{port}/upload"), "x")
            .await
            .unwrap();
        assert_eq!(&body[..], b"you asked for /upload");
    }

    /// Issue 20, defect 6: the TLS failure was a connect error, `Reset`,
    /// and retried three times.
    #[tokio::test]
    async fn untrusted_certificate_is_rejected_once_not_retried() {
        let (port, _pem, connections) = https_server(&["127.0.0.1"]).await;
        let fetcher = HttpFetcher::builder().build().unwrap(); // platform roots only
        let err = fetcher
            .get(&format!("https://127.0.0.1:{port}/?token=s3cret"))
            .await
            .unwrap_err();
        assert_permanent(&err, ErrorKind::Rejected);
        let text = err.to_string();
        assert!(text.contains("tls handshake failed"), "{text}");
        assert!(text.contains("certificate"), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
        assert_eq!(fetch_error(&err).status(), None);
        assert_eq!(connections.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn certificate_for_another_name_is_rejected() {
        // Trusted, but it names localhost, not the address asked for.
        let (port, pem, _) = https_server(&["localhost"]).await;
        let fetcher = HttpFetcher::builder()
            .add_root_certificate(pem)
            .build()
            .unwrap();
        let err = fetcher
            .get(&format!("https://127.0.0.1:{port}/"))
            .await
            .unwrap_err();
        assert_permanent(&err, ErrorKind::Rejected);
        assert!(err.to_string().contains("tls handshake failed"), "{err}");
    }

    #[tokio::test]
    async fn plain_http_server_behind_an_https_url_is_rejected() {
        let (base, _server) = raw_server(|mut s| async move {
            // Whatever the client sends, answer in plain HTTP.
            let _ = s
                .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                .await;
            let _ = s.shutdown().await;
        })
        .await;
        let url = base.replace("http://", "https://");
        let err = HttpFetcher::builder()
            .build()
            .unwrap()
            .get(&url)
            .await
            .unwrap_err();
        assert_permanent(&err, ErrorKind::Rejected);
    }

    #[test]
    fn unreadable_root_certificates_are_build_errors() {
        let err = HttpFetcher::builder()
            .add_root_certificate("not a certificate")
            .build()
            .unwrap_err();
        assert!(
            matches!(err, HttpBuildError::Certificate { number: 1, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("BEGIN CERTIFICATE"), "{err}");

        let garbled = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        let err = HttpFetcher::builder()
            .add_root_certificate(garbled)
            .build()
            .unwrap_err();
        assert!(
            matches!(err, HttpBuildError::Certificate { number: 1, .. }),
            "{err}"
        );

        let err = HttpFetcher::builder()
            .platform_roots(false)
            .build()
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("platform_roots must be on, unless a root certificate is added"),
            "{err}"
        );
    }
}

/// Without the `tls` feature an https URL is refused before connecting
/// (`cargo test -p gearshift --no-default-features --features http --test http_tls`).
#[cfg(not(feature = "tls"))]
#[tokio::test]
async fn https_without_the_tls_feature_is_rejected_before_connecting() {
    let (port, connections) = counting_listener().await;
    let err = HttpFetcher::builder()
        .build()
        .unwrap()
        .get(&format!("https://127.0.0.1:{port}/"))
        .await
        .unwrap_err();
    assert_permanent(&err, ErrorKind::Rejected);
    assert!(err.to_string().contains("`tls` feature"), "{err}");
    assert_eq!(connections.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn unsupported_scheme_is_rejected_before_connecting() {
    let (port, connections) = counting_listener().await;
    let f = HttpFetcher::builder().build().unwrap();
    for url in [
        format!("ftp://127.0.0.1:{port}/file"),
        format!("ws://127.0.0.1:{port}/socket"),
        "file:///etc/passwd".to_owned(),
        "mailto:someone@127.0.0.1".to_owned(),
    ] {
        let err = f.get(&url).await.unwrap_err();
        assert_permanent(&err, ErrorKind::Rejected);
        assert!(
            err.to_string().contains("unsupported url scheme"),
            "{url}: {err}"
        );
        // The same through a hand-built request.
        let err = f.send(f.client().delete(&url)).await.unwrap_err();
        assert_permanent(&err, ErrorKind::Rejected);
    }
    assert_eq!(connections.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn malformed_urls_are_rejected() {
    let f = HttpFetcher::builder().build().unwrap();
    for url in [
        "",
        "not a url",
        "127.0.0.1:8080/no-scheme",
        "http://",
        "http://[::1/x",
        "http://127.0.0.1:99999/",
        "http://exa mple/",
        "https://%zz/",
    ] {
        let err = f.get(url).await.unwrap_err();
        assert_permanent(&err, ErrorKind::Rejected);
        assert!(err.to_string().contains("invalid url"), "{url:?}: {err}");
    }
}

#[tokio::test]
async fn request_that_cannot_be_built_is_rejected() {
    let f = HttpFetcher::builder().build().unwrap();
    for request in [
        f.client()
            .get("http://127.0.0.1:9/")
            .header("bad header", "x"),
        f.client()
            .get("http://127.0.0.1:9/")
            .header("x-ok", "bad\nvalue"),
        f.client().get("not a url"),
    ] {
        let err = f.send(request).await.unwrap_err();
        assert_permanent(&err, ErrorKind::Rejected);
        assert!(
            err.to_string().contains("could not build the request"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn malformed_response_head_is_bad_payload() {
    for head in [
        &b"garbage\r\n\r\n"[..],
        b"HTTP/1.1 20 OK\r\ncontent-length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nbad header line\r\n\r\n",
    ] {
        let (base, _server) = raw_server(move |mut s| async move {
            read_request(&mut s).await;
            let _ = s.write_all(head).await;
            let _ = s.shutdown().await;
        })
        .await;
        let f = HttpFetcher::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let err = f.get(&format!("{base}/")).await.unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::BadPayload,
            "{}: {err}",
            String::from_utf8_lossy(head)
        );
        assert!(err.to_string().contains("malformed response head"), "{err}");
    }
}
