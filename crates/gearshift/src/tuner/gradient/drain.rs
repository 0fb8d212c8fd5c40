//! The doubling judged by throughput, and the drain it may start. Its own
//! file because it is the one place the law reads the knee from goodput
//! alone, where latency cannot say it: when the budget starts above the
//! knee, its first window is already queued, and a no-load latency read
//! there makes every later latency look near it.
//!
//! Below the knee, doubling the calls in flight doubles the goodput
//! (Little's law at no-load latency). A doubling that gains less than
//! halfway (in log terms) shows the API was already saturated before it.
//! The drain then halves the limit while the goodput holds (still
//! saturated) and, once it falls, sets the limit to the knee Little's law
//! gives: the lower limit x the goodput above it over the goodput at it
//! (below the knee goodput is proportional to the calls, at and past it
//! constant); the doubling goes on from there, so a drain misled by noise
//! costs a few windows. Only the first doubling is judged so: each later
//! one starts from a level the one before showed below the knee. A big
//! machine meets this first: the seed's 2 calls per core is 128 on 64
//! cores.

use super::reading::Reading;
use super::{Gradient, Probe, Z};
use crate::tuner::Decision;

impl Gradient {
    /// Judges a doubling, or a step of a drain, when the limit was `used`
    /// (an unused limit says nothing of the API); `None` when neither is
    /// under way or the goodput says nothing clear about a doubling.
    pub(super) fn drain_rule(
        &mut self,
        r: &Reading,
        used: bool,
        workers: Option<usize>,
    ) -> Option<Decision> {
        // Only the first doubling tests the start: each later one starts
        // from a level the one before showed below the knee.
        let blind = matches!(self.probe, Some(Probe::Up { .. }))
            && std::mem::replace(&mut self.blind, false);
        match self.probe? {
            Probe::Up { from, rate, se } if blind && used && self.slow_start && from >= 2.0 => {
                let full = (self.limit / from).ln();
                let gain = (r.rate / rate).ln();
                let noise = Z * se.hypot(r.rate_se);
                if gain >= 0.5 * full || gain >= full - noise {
                    return None;
                }
                // Both windows were on the plateau: their goodputs are two
                // readings of it.
                let (rate, se) = pooled(rate, se, r.rate, r.rate_se);
                let at = from;
                self.probe = Some(Probe::Drain { at, rate, se });
                let reason = format!(
                    "doubling {from:.0} -> {:.0} raised goodput only {:.0}%: the API was \
                     saturated at {from:.0} already; draining to {:.0}",
                    self.limit,
                    (gain.exp() - 1.0) * 100.0,
                    (from / 2.0).round()
                );
                Some(self.set(from / 2.0, workers, reason))
            }
            Probe::Drain { .. } if !used => {
                self.probe = None;
                None
            }
            Probe::Drain { at, rate, se } => {
                let full = (at / self.limit).ln();
                let fell = (rate / r.rate).ln();
                let noise = Z * se.hypot(r.rate_se);
                if fell < 0.5 * full && fell < full - noise && self.limit >= 2.0 {
                    let reason = format!(
                        "goodput {:.0}/s at {:.0} calls held within {:.0}% of {rate:.0}/s at \
                         {at:.0}: still saturated; draining to {:.0}",
                        r.rate,
                        self.limit,
                        (1.0 - (-fell).exp()).max(0.0) * 100.0,
                        (self.limit / 2.0).round()
                    );
                    let (rate, se) = pooled(rate, se, r.rate, r.rate_se);
                    self.probe = Some(Probe::Drain {
                        at: self.limit,
                        rate,
                        se,
                    });
                    let target = self.limit / 2.0;
                    return Some(self.set(target, workers, reason));
                }
                // Below the knee goodput is proportional to the calls:
                // the knee is where it reaches the saturated rate.
                let knee = (self.limit * fell.exp()).max(self.limit).min(at);
                self.probe = None;
                let reason = format!(
                    "goodput fell from {rate:.0}/s at {at:.0} calls to {:.0}/s at {:.0}: \
                     the knee is near {:.0} calls (Little's law)",
                    r.rate,
                    self.limit,
                    knee.round()
                );
                Some(self.set(knee, workers, reason))
            }
            _ => None,
        }
    }
}

/// Two readings of one goodput (relative errors `sa`, `sb`) pooled in log
/// terms, weighted by precision.
fn pooled(a: f64, sa: f64, b: f64, sb: f64) -> (f64, f64) {
    let (wa, wb) = (1.0 / (sa * sa).max(1e-12), 1.0 / (sb * sb).max(1e-12));
    let log = (wa * a.max(1e-12).ln() + wb * b.max(1e-12).ln()) / (wa + wb);
    (log.exp(), (1.0 / (wa + wb)).sqrt())
}
