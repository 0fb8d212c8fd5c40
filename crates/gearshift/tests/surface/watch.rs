//! The watchdog: each case on a thread of its own, and what it must leave
//! behind: no panic, no thread, no great heap.

use std::time::{Duration, Instant};

use super::Case;
use super::guard::{Fail, Pass, fail, head, take_panics};
use super::run::case_thread;

/// No case may take longer, whatever its values.
const CASE_DEADLINE: Duration = Duration::from_secs(20);

/// How long the threads of a finished case may take to end.
pub const THREADS_END: Duration = Duration::from_secs(30);

/// Threads of this process (Linux; 0 elsewhere, which disables the check).
pub fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

/// The names of this process's threads, sorted (Linux).
pub fn thread_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .map(|n| n.trim().to_owned())
        .collect();
    names.sort();
    names
}

/// A run of at most 40 items has no use for more memory than this.
pub const MEMORY_BOUND_KIB: u64 = 1 << 20;

/// The process's resident memory now and its peak since the last call,
/// in KiB (Linux; `None` elsewhere). Each call resets the peak.
pub fn memory() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    let now = (field("VmRSS:")?, field("VmHWM:")?);
    std::fs::write("/proc/self/clear_refs", "5").ok()?;
    Some(now)
}

/// Runs a case on a thread of its own, so a call that never returns is
/// reported (and left behind) instead of hanging the test.
pub fn watch(case: &Case) -> Result<Pass, Fail> {
    take_panics();
    let before = memory();
    let threads_before = threads();
    let names_before = thread_names();
    let (tx, rx) = std::sync::mpsc::channel();
    let c = case.clone();
    let thread = std::thread::spawn(move || {
        let _ = tx.send(case_thread(c));
    });
    let result = match rx.recv_timeout(CASE_DEADLINE) {
        Ok(r) => r,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            fail("the case hung", format!("no end within {CASE_DEADLINE:?}"))
        }
        Err(_) => fail("the case's thread panicked", "outside any guarded call"),
    };
    // Every thread a case starts (runtime, pool, sinks) ends with it.
    let extra = |now: Vec<String>| {
        let mut now = now;
        for n in &names_before {
            if let Some(i) = now.iter().position(|m| m == n) {
                now.remove(i);
            }
        }
        now
    };
    let at_end = extra(thread_names());
    let deadline = Instant::now() + THREADS_END;
    while threads() > threads_before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let left = threads().saturating_sub(threads_before);
    let result = match result {
        Ok(_) if left > 0 => fail(
            "threads left running after the case",
            format!(
                "{left} threads after {THREADS_END:?}: {:?} (at the end of the case: {at_end:?})",
                extra(thread_names())
            ),
        ),
        r => r,
    }
    .map_err(|f| Fail {
        stops: left > 0,
        ..f
    });
    if thread.is_finished() {
        let _ = thread.join();
    }
    let panics = take_panics();
    if let (Some((rss, _)), Some((_, peak)), Ok(_)) = (before, memory(), &result)
        && peak.saturating_sub(rss) > MEMORY_BOUND_KIB
    {
        let held = (peak - rss) / 1024;
        return fail::<Pass>(
            "a small run held over 1 GiB",
            format!("{held} MiB for {} items", case.source.len()),
        );
    }
    match result {
        Ok(pass) if panics.is_empty() => Ok(pass),
        Ok(_) => fail(
            format!("panic in a library task: {}", head(&panics[0])),
            panics.join("; "),
        ),
        Err(mut f) if !panics.is_empty() => {
            // Failures after different panics have different causes.
            if !f.what.starts_with("panic") {
                f.what = format!("{}, after a panic: {}", f.what, head(&panics[0]));
            }
            f.detail = format!("{}; panics: {}", f.detail, panics.join("; "));
            Err(f)
        }
        Err(f) => Err(f),
    }
}
