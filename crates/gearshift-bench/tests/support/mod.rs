//! Test support: waits on conditions with deadlines, and a panic hook that
//! quiets only the panics a test injects on purpose.
#![allow(dead_code)]

use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

/// Waits until `cond` holds, polling every 2 ms; panics naming `what` if it
/// does not within `within`. Tests wait on a state this way, never on a
/// fixed sleep, so a loaded machine makes them slower, not wrong.
pub async fn wait_until(within: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// [`wait_until`] for code outside a runtime: blocks the calling thread.
pub fn wait_until_blocking(within: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Markers of the panics tests inject on purpose.
static QUIET_MARKERS: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

/// Keeps the panics whose message contains `marker` (the ones a test
/// injects on purpose) out of the output, and forwards every other panic to
/// the hook that was there before: a failing assertion in any test of the
/// binary still prints its message. The hook is installed once per process.
pub fn quiet_panics_marked(marker: &'static str) {
    static INSTALL: Once = Once::new();
    {
        let mut markers = QUIET_MARKERS.lock().unwrap_or_else(|e| e.into_inner());
        if !markers.contains(&marker) {
            markers.push(marker);
        }
    }
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let msg = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("");
            let quiet = QUIET_MARKERS
                .lock()
                .map(|m| m.iter().any(|k| msg.contains(k)))
                .unwrap_or(false);
            if !quiet {
                previous(info);
            }
        }));
    });
}
