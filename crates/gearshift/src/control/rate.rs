//! An optional limit on calls started per second (GCRA pacing), separate from
//! the concurrency limit: calls are spaced `1 / rate` apart.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// Spaces call starts evenly; `None` rate means no limit.
#[derive(Debug)]
pub(crate) struct RateLimit {
    state: Mutex<Pacing>,
    /// Whether a limit is set: read without the lock on every call.
    limited: AtomicBool,
}

#[derive(Debug)]
struct Pacing {
    interval: Option<Duration>,
    next: Instant,
}

impl RateLimit {
    pub(crate) fn new(per_second: Option<f64>) -> Self {
        RateLimit {
            limited: AtomicBool::new(per_second.is_some()),
            state: Mutex::new(Pacing {
                interval: interval(per_second),
                next: Instant::now(),
            }),
        }
    }

    /// Changes the rate; applies to the next call.
    pub(crate) fn set(&self, per_second: Option<f64>) {
        self.lock().interval = interval(per_second);
        self.limited.store(per_second.is_some(), Ordering::Release);
    }

    /// Whether calls are paced at all.
    pub(crate) fn is_limited(&self) -> bool {
        self.limited.load(Ordering::Acquire)
    }

    /// Waits for this call's turn.
    pub(crate) async fn ready(&self) {
        if !self.is_limited() {
            return;
        }
        let turn = {
            let mut s = self.lock();
            let Some(interval) = s.interval else { return };
            let now = Instant::now();
            let turn = s.next.max(now);
            s.next = turn + interval;
            turn
        };
        tokio::time::sleep_until(turn).await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pacing> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn interval(per_second: Option<f64>) -> Option<Duration> {
    per_second.map(|r| Duration::from_secs_f64(1.0 / r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn spaces_calls_evenly() {
        let rate = RateLimit::new(Some(10.0));
        let start = Instant::now();
        for _ in 0..5 {
            rate.ready().await;
        }
        assert_eq!(start.elapsed(), Duration::from_millis(400));
        rate.set(None);
        rate.ready().await;
        assert_eq!(start.elapsed(), Duration::from_millis(400));
    }
}
