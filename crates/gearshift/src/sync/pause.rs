//! The IO stage's shared pause: when the remote answers `Retry-After`, every
//! agent of the stage waits until it passes, and no call is sent inside it.
//!
//! A pause comes from the network, so any `Duration` may arrive (a header of
//! 20 digits is `u64::MAX` seconds): every step is checked arithmetic, and a
//! pause is cut to [`MAX_PAUSE`]. The stage cuts it further, to
//! `Config::max_pause`, before it gets here.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::MAX_DURATION;

/// The longest pause this type holds, whatever it is asked for.
pub(crate) const MAX_PAUSE: Duration = MAX_DURATION;

/// A deadline shared by all agents of a stage, as nanoseconds since `origin`
/// (a `u64` of nanoseconds spans 584 years).
#[derive(Debug)]
pub(crate) struct Pause {
    origin: Instant,
    until_nanos: AtomicU64,
}

impl Pause {
    pub(crate) fn new() -> Self {
        Pause {
            origin: Instant::now(),
            until_nanos: AtomicU64::new(0),
        }
    }

    /// Extends the pause to at least `now + d`, with `d` cut to [`MAX_PAUSE`].
    pub(crate) fn extend(&self, d: Duration) {
        let since_origin = Instant::now()
            .saturating_duration_since(self.origin)
            .saturating_add(d.min(MAX_PAUSE));
        let until = u64::try_from(since_origin.as_nanos()).unwrap_or(u64::MAX);
        self.until_nanos.fetch_max(until, Ordering::AcqRel);
    }

    /// When the pause ends, if it is still on.
    pub(crate) fn until(&self) -> Option<Instant> {
        let until = self.at(self.until_nanos.load(Ordering::Acquire));
        (until > Instant::now()).then_some(until)
    }

    /// Whether a pause is on at `now` (a clock read the caller already has).
    pub(crate) fn is_on(&self, now: Instant) -> bool {
        match self.until_nanos.load(Ordering::Acquire) {
            0 => false,
            n => self.at(n) > now,
        }
    }

    /// Waits until no pause is on (a pause may be extended while waiting).
    pub(crate) async fn wait(&self) {
        while let Some(until) = self.until() {
            tokio::time::sleep_until(until).await;
        }
    }

    /// The instant `nanos` after the origin. One the clock cannot represent
    /// (unreachable with the cap) is the latest pause this type holds.
    fn at(&self, nanos: u64) -> Instant {
        let after = Duration::from_nanos(nanos);
        self.origin
            .checked_add(after)
            .or_else(|| Instant::now().checked_add(MAX_PAUSE))
            .unwrap_or_else(Instant::now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn waits_for_the_longest_extension() {
        let pause = Pause::new();
        pause.extend(Duration::from_secs(2));
        pause.extend(Duration::from_secs(1));
        let start = Instant::now();
        pause.wait().await;
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        assert!(pause.until().is_none());
    }

    /// Defect 1 of issue 20: `Instant::now() + d` panicked for a huge `d`
    /// (a `Retry-After` of 20 digits).
    #[tokio::test(start_paused = true)]
    async fn any_duration_is_cut_to_the_cap_without_a_panic() {
        for huge in [Duration::MAX, Duration::from_secs(u64::MAX)] {
            let pause = Pause::new();
            let start = Instant::now();
            pause.extend(huge);
            assert!(pause.is_on(start));
            assert_eq!(pause.until(), Some(start + MAX_PAUSE));
            pause.wait().await;
            assert_eq!(start.elapsed(), MAX_PAUSE);
            assert!(pause.until().is_none());
        }
    }

    /// Extending after the stage has run a while: the time since the origin
    /// plus the pause still saturates instead of overflowing.
    #[tokio::test(start_paused = true)]
    async fn a_late_huge_extension_still_waits_at_most_the_cap() {
        let pause = Pause::new();
        tokio::time::advance(Duration::from_secs(3600)).await;
        let start = Instant::now();
        pause.extend(Duration::MAX);
        pause.extend(Duration::from_secs(5));
        pause.wait().await;
        assert_eq!(start.elapsed(), MAX_PAUSE);
    }
}
