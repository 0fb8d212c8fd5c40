//! An optional limit on calls started per second (GCRA pacing), separate from
//! the concurrency limit: calls are spaced `1 / rate` apart, and up to
//! `burst` calls may go at once after a quiet spell (the GCRA's tolerance of
//! `(burst - 1) / rate`).
//!
//! Written by hand rather than with `governor`: a live change of the rate
//! must reach the calls already waiting for their turn (governor's limiter
//! is rebuilt to change its quota, and its waiters keep the old one), and
//! the pipeline needs only this one keyed-less limiter.
//!
//! Each call books a turn and sleeps until it. A live change of the rate
//! cancels every turn not yet reached: the waiters wake and book again at
//! the new rate, spaced from the last call that did start. So lifting a
//! limit releases the waiters at once, and raising it shortens their wait.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::config::MAX_DURATION;

/// Spaces call starts evenly; `None` rate means no limit.
#[derive(Debug)]
pub(crate) struct RateLimit {
    state: Mutex<Pacing>,
    /// Whether a limit is set: read without the lock on every call.
    limited: AtomicBool,
    /// Bumped (under the lock) by each change of rate: a turn booked under
    /// an older one is cancelled.
    generation: AtomicU64,
    /// Wakes the waiters when the rate changes.
    changed: Notify,
}

#[derive(Debug)]
struct Pacing {
    interval: Option<Duration>,
    /// Calls that may go at once after a quiet spell: at least 1.
    burst: u32,
    /// The next free turn.
    next: Instant,
    /// The latest turn a call was let through at.
    last: Option<Instant>,
}

/// A booked turn.
struct Turn {
    at: Instant,
    generation: u64,
}

impl RateLimit {
    pub(crate) fn new(per_second: Option<f64>) -> Self {
        RateLimit {
            limited: AtomicBool::new(per_second.is_some()),
            state: Mutex::new(Pacing {
                interval: per_second.map(interval),
                burst: 1,
                next: Instant::now(),
                last: None,
            }),
            generation: AtomicU64::new(0),
            changed: Notify::new(),
        }
    }

    /// Changes the rate; applies to the next call and to the calls waiting
    /// for their turn. Setting the rate it already has changes nothing.
    pub(crate) fn set(&self, per_second: Option<f64>) {
        let interval = per_second.map(interval);
        {
            let mut s = self.lock();
            if s.interval == interval {
                return;
            }
            s.interval = interval;
            self.generation.fetch_add(1, Ordering::AcqRel);
            let now = Instant::now();
            s.next = match (s.last, interval) {
                (Some(last), Some(interval)) => after(last, interval).max(now),
                _ => now,
            };
            self.limited.store(interval.is_some(), Ordering::Release);
        }
        self.changed.notify_waiters();
    }

    /// Sets how many calls may go at once after a quiet spell (at least 1);
    /// applies to the next turn booked.
    pub(crate) fn set_burst(&self, burst: u32) {
        self.lock().burst = burst.max(1);
    }

    /// Whether calls are paced at all.
    pub(crate) fn is_limited(&self) -> bool {
        self.limited.load(Ordering::Acquire)
    }

    /// Waits for this call's turn.
    pub(crate) async fn ready(&self) {
        loop {
            if !self.is_limited() {
                return;
            }
            let Some(turn) = self.book() else { return };
            // Listen, then check that no change came since the booking: a
            // change after this check wakes the waiter.
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.generation.load(Ordering::Acquire) == turn.generation {
                tokio::select! {
                    biased;
                    () = tokio::time::sleep_until(turn.at) => {}
                    () = &mut changed => {}
                }
            }
            if self.reached(&turn) {
                return;
            }
        }
    }

    /// Books the next turn; `None` if there is no limit or the turn is now
    /// (then the call goes at once).
    fn book(&self) -> Option<Turn> {
        let mut s = self.lock();
        let interval = s.interval?;
        let now = Instant::now();
        // GCRA: `next` is the theoretical arrival time; a call may go as
        // early as `burst - 1` spacings before it.
        let tolerance = interval
            .checked_mul(s.burst - 1)
            .map_or(MAX_DURATION, |t| t.min(MAX_DURATION));
        let at = s.next.checked_sub(tolerance).unwrap_or(now).max(now);
        s.next = after(s.next.max(at), interval);
        if at <= now {
            s.last = Some(at);
            return None;
        }
        Some(Turn {
            at,
            generation: self.generation.load(Ordering::Acquire),
        })
    }

    /// Whether a waiter woke to its turn, not to a change that cancelled it.
    fn reached(&self, turn: &Turn) -> bool {
        let mut s = self.lock();
        if self.generation.load(Ordering::Acquire) != turn.generation {
            return false;
        }
        s.last = Some(s.last.map_or(turn.at, |last| last.max(turn.at)));
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pacing> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The spacing for `per_second`, for any value: `Config::validate` keeps the
/// rate between `MIN_RATE_LIMIT` and `MAX_RATE_LIMIT`, and anything else
/// (NaN, zero, negative, subnormal) is the slowest spacing, not a panic.
fn interval(per_second: f64) -> Duration {
    Duration::try_from_secs_f64(per_second.recip()).map_or(MAX_DURATION, |d| d.min(MAX_DURATION))
}

/// `at + interval`, or the latest instant near it the clock can hold.
fn after(at: Instant, interval: Duration) -> Instant {
    at.checked_add(interval)
        .or_else(|| at.checked_add(MAX_DURATION))
        .unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

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

    #[tokio::test(start_paused = true)]
    async fn a_burst_goes_at_once_after_a_quiet_spell_then_calls_are_spaced() {
        let rate = RateLimit::new(Some(10.0));
        rate.set_burst(3);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let start = Instant::now();
        for _ in 0..3 {
            rate.ready().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "three at once");
        rate.ready().await;
        assert_eq!(start.elapsed(), Duration::from_millis(100));
        rate.ready().await;
        assert_eq!(start.elapsed(), Duration::from_millis(200));
    }

    /// Defect 2 of issue 20: `Duration::from_secs_f64(1 / r)` panicked for a
    /// rate that validated (`f64::MIN_POSITIVE`) and for ones that do not.
    #[tokio::test(start_paused = true)]
    async fn any_rate_gives_a_spacing_without_a_panic() {
        for r in [
            f64::MIN_POSITIVE,
            1e-300,
            0.0,
            -1.0,
            f64::NAN,
            f64::INFINITY,
        ] {
            let d = interval(r);
            assert!(d <= MAX_DURATION, "{r}: {d:?}");
            let rate = RateLimit::new(Some(r));
            rate.ready().await;
            rate.set(Some(r * 2.0));
            rate.set(None);
            rate.ready().await;
        }
        assert_eq!(interval(1e9), Duration::from_nanos(1));
        assert_eq!(interval(f64::MAX), Duration::ZERO);
    }

    /// Starts a waiter behind a call that took the only turn at `rate`, and
    /// returns it with the time it was released at.
    async fn waiter_behind_a_call(
        rate: f64,
    ) -> (Arc<RateLimit>, tokio::task::JoinHandle<Instant>, Instant) {
        let limit = Arc::new(RateLimit::new(Some(rate)));
        let start = Instant::now();
        limit.ready().await;
        let waiting = Arc::clone(&limit);
        let waiter = tokio::spawn(async move {
            waiting.ready().await;
            Instant::now()
        });
        // Let it book its turn, far in the future.
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!waiter.is_finished());
        (limit, waiter, start)
    }

    /// Defect 9 of issue 20: a waiter booked at a tiny rate slept until its
    /// turn (for ever, in effect) after the limit was lifted.
    #[tokio::test(start_paused = true)]
    async fn lifting_the_limit_releases_the_waiters_at_once() {
        let (limit, waiter, start) = waiter_behind_a_call(1e-12).await;
        let lifted = Instant::now();
        limit.set(None);
        let released = tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("released by set(None)")
            .unwrap();
        assert_eq!(released, lifted);
        assert!(released - start < Duration::from_secs(1));
    }

    /// Raising the rate: the waiter books again, spaced from the last call
    /// at the new rate (100 ms at 10/s), not at the old turn.
    #[tokio::test(start_paused = true)]
    async fn raising_the_rate_gives_the_waiters_turns_at_the_new_rate() {
        let (limit, waiter, start) = waiter_behind_a_call(1e-6).await;
        limit.set(Some(10.0));
        let released = tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("released at the new rate")
            .unwrap();
        assert_eq!(released - start, Duration::from_millis(100));
        // And the next call is spaced from it at the new rate.
        limit.ready().await;
        assert_eq!(Instant::now() - start, Duration::from_millis(200));
    }

    /// Many waiters re-book one turn each, evenly spaced at the new rate.
    #[tokio::test(start_paused = true)]
    async fn every_waiter_gets_its_own_turn_at_the_new_rate() {
        let limit = Arc::new(RateLimit::new(Some(1e-6)));
        let start = Instant::now();
        limit.ready().await;
        let waiters: Vec<_> = (0..5)
            .map(|_| {
                let limit = Arc::clone(&limit);
                tokio::spawn(async move {
                    limit.ready().await;
                    Instant::now() - start
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(10)).await;
        limit.set(Some(10.0));
        let mut released = Vec::new();
        for w in waiters {
            released.push(w.await.unwrap());
        }
        released.sort();
        let expected: Vec<_> = (1..=5).map(|k| Duration::from_millis(100 * k)).collect();
        assert_eq!(released, expected);
    }

    /// Lowering the rate holds the waiters to the new, longer spacing.
    #[tokio::test(start_paused = true)]
    async fn lowering_the_rate_holds_the_waiters_to_it() {
        let (limit, waiter, start) = waiter_behind_a_call(10.0).await;
        limit.set(Some(1.0));
        let released = waiter.await.unwrap();
        assert_eq!(released - start, Duration::from_secs(1));
    }

    /// Setting the rate in force (as every unrelated config change does)
    /// leaves the booked turns alone.
    #[tokio::test(start_paused = true)]
    async fn setting_the_same_rate_keeps_the_turns() {
        let limit = RateLimit::new(Some(10.0));
        let start = Instant::now();
        limit.ready().await;
        limit.set(Some(10.0));
        limit.ready().await;
        limit.set(Some(10.0));
        limit.ready().await;
        assert_eq!(start.elapsed(), Duration::from_millis(200));
    }
}
