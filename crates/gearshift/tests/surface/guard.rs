//! Guarded calls: a panic or a hang in a call becomes a failure of the
//! case, named by its cause.

use std::panic::AssertUnwindSafe;
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use futures::FutureExt;

use super::MARKER;

/// A builder or handle call must return within this.
pub const CALL_BOUND: Duration = Duration::from_secs(5);

/// How a case passed: it ran, or was refused with a typed error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    Ran,
    Refused,
}

/// Why a case failed: `what` groups failures, `detail` explains one.
#[derive(Debug)]
pub struct Fail {
    pub what: String,
    pub detail: String,
    /// The case left threads running: later cases would run beside them,
    /// so the run stops here.
    pub stops: bool,
}

pub fn fail<T>(what: impl Into<String>, detail: impl Into<String>) -> Result<T, Fail> {
    Err(Fail {
        what: what.into(),
        detail: detail.into(),
        stops: false,
    })
}

/// Panics other than the injected ones, as "message at file:line".
pub static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

pub fn record_panics() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let msg = panic_text(info.payload());
            if msg.contains(MARKER) {
                return;
            }
            let at = info.location().map(|l| {
                // std's and dependencies' paths, without the machine's prefix.
                let file = l.file();
                let short = ["/library/", "/registry/src/"]
                    .iter()
                    .find_map(|k| file.find(k).map(|i| &file[i + k.len()..]))
                    .unwrap_or(file);
                format!("{short}:{}", l.line())
            });
            if let Ok(mut p) = PANICS.lock() {
                p.push(format!("{msg:?} at {}", at.unwrap_or_default()));
            }
            previous(info);
        }));
    });
}

pub fn take_panics() -> Vec<String> {
    std::mem::take(&mut *PANICS.lock().unwrap_or_else(|e| e.into_inner()))
}

pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(not a string)".into())
}

/// Runs a call; a panic, or a call that blocks past `CALL_BOUND` when
/// `bounded`, fails the case.
pub fn guard<R>(call: &str, bounded: bool, f: impl FnOnce() -> R) -> Result<R, Fail> {
    let started = Instant::now();
    let r = std::panic::catch_unwind(AssertUnwindSafe(f)).or_else(|p| {
        let msg = panic_text(&*p);
        fail(format!("panic: {}", head(&msg)), format!("{call}: {msg}"))
    })?;
    let took = started.elapsed();
    if bounded && took > CALL_BOUND {
        return fail(
            format!("{} blocked", label(call)),
            format!("{call} returned after {took:?}"),
        );
    }
    Ok(r)
}

/// The gist of a panic message, to group failures by cause: its first
/// clause, without numbers.
pub fn head(msg: &str) -> String {
    msg.trim_start_matches('"')
        .chars()
        .take_while(|c| !matches!(c, ':' | '.' | '(' | '"'))
        .take(100)
        .map(|c| if c.is_ascii_digit() { '#' } else { c })
        .collect()
}

/// A call's group: what comes before ": " (the values, after it, differ
/// from case to case).
pub fn label(call: &str) -> &str {
    call.split(": ").next().unwrap_or(call)
}

/// Awaits a future within `bound`; a panic or a hang fails the case.
pub async fn guard_async<R>(
    call: &str,
    bound: Duration,
    f: impl Future<Output = R>,
) -> Result<R, Fail> {
    match tokio::time::timeout(bound, AssertUnwindSafe(f).catch_unwind()).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(p)) => {
            let msg = panic_text(&*p);
            fail(format!("panic: {}", head(&msg)), format!("{call}: {msg}"))
        }
        Err(_) => fail(
            format!("{call} hung"),
            format!("no result within {bound:?}"),
        ),
    }
}
