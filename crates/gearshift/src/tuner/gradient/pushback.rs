//! Rule 1 of [`Gradient`]: pushback (a 429/503, a `Retry-After`). Its own
//! file because its estimate of what the API took has two sources that
//! bound each other: Little's law and the count of refused calls.

use super::reading::Reading;
use super::{Gradient, Z};
use crate::tuner::{Decision, Window};

impl Gradient {
    /// Cuts to `backoff` x what the API took, and makes that a ceiling.
    pub(super) fn pushback(&mut self, w: &Window, r: &Reading, workers: Option<usize>) -> Decision {
        // Refused calls return at once and hold no slot: the calls the API
        // took are what it served (Little's law).
        let why = format!(
            "{} throttled, Retry-After {:?}, served {:.1} calls (Little's law)",
            w.throttled, w.retry_after, r.served
        );
        // Little's law is noisy, and probing past a hard limit again costs
        // another pause: alone, take its lower bound, and none from too
        // few calls.
        let little = (r.rate_se < 0.5).then_some(r.served);
        // The refused calls were not taken: the API took at most the rest
        // of the calls sent (the most in flight at once, or the limit; a
        // pause stops the calls not yet sent), a count with no noise of
        // its own. Little's law reads the mean in flight, not the most:
        // below the peak while the agents ramp after a raise, or while
        // input comes in bursts, so where the peak is measured the count
        // stands. Without the peak, the count assumes the whole limit was
        // sent, and Little's law, clearly fewer, says agents lacked work.
        // Little's law overcounts a window mostly paused (its calls ended
        // in the pause), never past the count.
        let peak = (w.peak_in_flight > 0).then_some(w.peak_in_flight as f64);
        let sent = peak.map_or(self.limit.round(), |p| p.min(self.limit.round()));
        let refused = (w.throttled > 0)
            .then_some(sent - w.throttled as f64)
            .filter(|rest| *rest >= 1.0);
        let took = match (little, refused) {
            (Some(l), Some(most)) if peak.is_none() && most > l * (Z * r.rate_se).exp() => Some(l),
            (_, Some(most)) => Some(most),
            (Some(l), None) => Some(l * (-Z * r.rate_se).exp()),
            (None, None) => None,
        };
        // Probing past a hard limit again costs another pause: the ceiling
        // stands (no bisection).
        self.overload(took, false, why, workers)
    }
}
