//! The verdict on a series of latency cuts (rule 4 of [`Gradient`]). Its
//! own file because it is how the law unlearns: cuts that did not lower the
//! latency were not about our queue, and the no-load value moves.

use super::noload::NoLoad;
use super::{Gradient, Probe, Z};
use crate::tuner::Decision;

impl Gradient {
    /// Judges the series of latency cuts under way on a window's median
    /// `p50` (log error `p50_se`); `Some` when it undoes the series.
    pub(super) fn cut_series_verdict(
        &mut self,
        p50: f64,
        p50_se: f64,
        workers: Option<usize>,
    ) -> Option<Decision> {
        // Latency cuts are judged as a series, from the first: cuts that
        // do not take the latency at least halfway (in log terms) to where
        // queueing would have taken it were not about our queue: the API
        // got slower. Until the series is large enough to tell from the
        // noise, it goes on.
        let Some(Probe::Down {
            from,
            p50: before,
            p50_se: before_se,
            last_from,
        }) = self.probe
        else {
            return None;
        };
        // The window just after a cut began with calls started before
        // it: it is judged on the higher of the last two limits.
        let at = if self.moved {
            self.limit.max(last_from)
        } else {
            self.limit
        };
        let k = at.round() / from.round().max(1.0);
        let expect = (before * k).max(self.noload.map_or(0.0, |n| n.secs()));
        let span = (before / expect.max(1e-9)).ln();
        if span >= Z * before_se.hypot(p50_se) {
            self.probe = None;
            if (before / p50).ln() < 0.5 * span {
                self.noload = Some(NoLoad::read(p50, p50_se));
                // A slower API has a new knee: a ceiling learnt on the old
                // one would hold the limit where the old knee was.
                self.ceiling = None;
                let reason = format!(
                    "latency {:.1} ms did not fall with the cuts ({:.1} ms at {from:.0} calls): \
                     the API is slower, not queued; no-load latency re-based, ceiling dropped",
                    p50 * 1e3,
                    before * 1e3
                );
                return Some(self.set(from, workers, reason));
            }
        }
        None
    }
}
