//! The IO stage's shared pause: when the remote answers `Retry-After`, every
//! agent of the stage waits until it passes, and no call is sent inside it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// A deadline shared by all agents of a stage, as nanoseconds since `origin`.
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

    /// Extends the pause to at least `now + d`.
    pub(crate) fn extend(&self, d: Duration) {
        let until = (Instant::now() + d).duration_since(self.origin).as_nanos() as u64;
        self.until_nanos.fetch_max(until, Ordering::AcqRel);
    }

    /// When the pause ends, if it is still on.
    pub(crate) fn until(&self) -> Option<Instant> {
        let until = self.origin + Duration::from_nanos(self.until_nanos.load(Ordering::Acquire));
        (until > Instant::now()).then_some(until)
    }

    /// Whether a pause is on at `now` (a clock read the caller already has).
    pub(crate) fn is_on(&self, now: Instant) -> bool {
        match self.until_nanos.load(Ordering::Acquire) {
            0 => false,
            n => self.origin + Duration::from_nanos(n) > now,
        }
    }

    /// Waits until no pause is on (a pause may be extended while waiting).
    pub(crate) async fn wait(&self) {
        while let Some(until) = self.until() {
            tokio::time::sleep_until(until).await;
        }
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
}
