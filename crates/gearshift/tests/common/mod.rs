//! Test servers on 127.0.0.1: a well-behaved one (axum) and a raw TCP one for
//! the misbehaving cases (stalls, truncation, resets), plus a tracing capture.

#![allow(dead_code)]

use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Serves `app` on 127.0.0.1, port 0; returns `http://127.0.0.1:PORT`.
pub async fn serve(app: axum::Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

/// Accepts one connection on 127.0.0.1, port 0, and hands it to `handle`;
/// returns the base URL and the task, whose output is `handle`'s.
pub async fn raw_server<F, Fut>(handle: F) -> (String, JoinHandle<Fut::Output>)
where
    F: FnOnce(TcpStream) -> Fut + Send + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        handle(stream).await
    });
    (base, task)
}

/// Reads a request head (up to the blank line); returns it as text.
pub async fn read_request(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "client closed before sending a whole request");
        head.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Whether the peer closes the connection within `bound`: a read returns 0
/// or fails. Data still arriving is skipped.
pub async fn closed_within(stream: &mut TcpStream, bound: Duration) -> bool {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(bound, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await
    .is_ok()
}

/// A `tracing` writer into memory, to check what the library logs.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Installs [`Self::subscriber`] as this thread's default, for as long
    /// as the guard lives.
    ///
    /// tracing caches each callsite's interest for the whole process,
    /// asked of the first thread that reaches it. While one dispatcher is
    /// registered, a sibling test's thread with no subscriber would cache
    /// "never" and silence this capture (tokio-rs/tracing#3611), so a
    /// global subscriber that defers every decision to the thread's own
    /// (and takes nothing itself) is installed first.
    pub fn set_default(&self) -> tracing::subscriber::DefaultGuard {
        static UNDECIDED: Once = Once::new();
        UNDECIDED.call_once(|| {
            // Refused only if the binary set one already, which serves too.
            let _ = tracing::subscriber::set_global_default(Undecided);
        });
        tracing::subscriber::set_default(self.subscriber())
    }

    /// A subscriber that logs everything, at every level, into this buffer.
    pub fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync + 'static {
        let writer = self.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish()
    }
}

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A global subscriber that enables nothing but answers every callsite
/// "sometimes", so each event asks the current thread's subscriber.
struct Undecided;

impl tracing::Subscriber for Undecided {
    fn register_callsite(&self, _: &tracing::Metadata<'_>) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::sometimes()
    }

    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        false
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, _: &tracing::Event<'_>) {}

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}
