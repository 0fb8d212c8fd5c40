//! Rule 2 of [`Gradient`]: failures above their baseline, and the verdict
//! on the last failure cut. Its own file because the baseline (what the
//! law learns) and the verdict (how it unlearns) belong together.

use super::reading::{Reading, median, share_se};
use super::{Gradient, Probe, Z};
use crate::tuner::Decision;

/// Windows whose median failure share is the baseline (a median, not the
/// lowest: the lowest of noisy shares would make noise look like overload).
const BASELINE_WINDOWS: usize = 8;
/// Failed calls a run of windows needs to cut: one failure is no share
/// (the first fault of a steady mix, before any window taught the
/// baseline).
const MIN_FAILURES: f64 = 2.0;

impl Gradient {
    /// Judges the last failure cut, then cuts on failures above their
    /// baseline; `None` when neither moves the limit.
    pub(super) fn failure_rule(
        &mut self,
        r: &Reading,
        started: f64,
        workers: Option<usize>,
    ) -> Option<Decision> {
        // Failures that ended in this window began one failure's length
        // before it (a timeout: its whole length). Begun before the last
        // failure cut, they say nothing of it, nor of the level now.
        if let (Some(Probe::Fail { at, .. }), Some(took)) = (self.probe, r.failed_secs)
            && started - took < at
        {
            let reason = format!(
                "failed calls took {:.0} ms: those ending now began before the cut {:.2} s ago",
                took * 1e3,
                self.clock - at
            );
            return Some(self.hold(workers, reason));
        }
        // A failure cut that does not take the failure share at least
        // halfway to where it would go if the API dropped what it could
        // not take was not about our load (a steady fault mix that
        // changed): undo it, and the share is the new baseline.
        if let Some(Probe::Fail {
            from,
            share,
            share_se,
            at: _,
            expect,
            ceiling,
        }) = self.probe
            && r.good + r.failure_share > 0.0
        {
            self.probe = None;
            // Under noise the cut stands: only a share clearly above the
            // halfway mark undoes it. The mark carries half the noise of
            // the share that brought the cut (two failures in five calls
            // is a share of 40% +- 19%).
            let halfway = share - 0.5 * (share - expect);
            let noise = r.failure_se.hypot(0.5 * share_se);
            if r.failure_share - halfway > Z * noise {
                self.failures.clear();
                self.failures.push_back(r.failure_share);
                self.level = Level::default();
                self.ceiling = ceiling;
                let reason = format!(
                    "failures {:.1}% did not fall with the cut ({:.1}% before): not overload; \
                     baseline re-based",
                    r.failure_share * 100.0,
                    share * 100.0
                );
                return Some(self.set(from, workers, reason));
            }
            // A ceiling marks a level shown to be too high: only a share
            // clearly below the halfway mark shows it. Under noise the cut
            // stands, without a ceiling.
            if halfway - r.failure_share <= Z * noise {
                self.ceiling = ceiling;
            }
        }
        // Before any window, a healthy API fails nothing: failures from the
        // first windows are overload until a cut fails to lower them (an
        // API can be in collapse from the first call, its slots held by
        // calls it dropped). A limit's failures are judged against the
        // baseline learnt before it was reached (windows past the knee
        // would otherwise teach their own overload as the norm), pooled
        // over the run of windows above it: a share too small to stand out
        // in one window stands out in a few.
        let margin = self.params.failure_margin;
        if (self.level.limit - self.limit).abs() >= 0.5 {
            self.level = Level::new(self.limit, median(&self.failures).unwrap_or(0.0));
        }
        let baseline = self.level.baseline;
        if r.failure_share <= baseline + margin {
            self.level = Level::new(self.limit, baseline);
        } else {
            self.level.add(r);
        }
        let (share, share_se) = self.level.share();
        if share > baseline + margin + Z * share_se && self.level.fails >= MIN_FAILURES {
            let windows = match self.level.windows {
                1 => String::new(),
                n => format!(" in the last {n} windows"),
            };
            // Failed calls held their slots (a timeout for its whole
            // length): the API took the share that did not fail beyond
            // the baseline.
            let took = self.limit * (1.0 - (share - baseline)).max(0.0);
            let why = format!(
                "failures {:.1}%{windows} over a baseline of {:.1}%",
                share * 100.0,
                baseline * 100.0
            );
            let (from, ceiling) = (self.limit, self.ceiling);
            let decision = self.overload(Some(took), true, why, workers);
            // At the new limit the API would drop all but `took`.
            let expect = (1.0 - took / self.limit.max(1.0)).clamp(baseline, 1.0);
            self.probe = Some(Probe::Fail {
                from,
                at: self.clock,
                share,
                share_se,
                expect,
                ceiling,
            });
            return Some(decision);
        }
        // A window teaches the baseline only with calls enough to show a
        // share of `failure_margin` (one or two calls read 0%, 50%, 100%).
        if r.ended * self.params.failure_margin < 1.0 {
            return None;
        }
        self.failures.push_back(r.failure_share);
        if self.failures.len() > BASELINE_WINDOWS {
            self.failures.pop_front();
        }
        None
    }
}

/// The run of windows at one limit whose failure share was over the
/// margin, their failures pooled, and the baseline they are judged against
/// (the one learnt before the limit was reached).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Level {
    limit: f64,
    baseline: f64,
    fails: f64,
    ended: f64,
    windows: usize,
}

impl Level {
    fn new(limit: f64, baseline: f64) -> Level {
        Level {
            limit,
            baseline,
            ..Level::default()
        }
    }

    fn add(&mut self, r: &Reading) {
        self.fails += r.failure_share * r.ended;
        self.ended += r.ended;
        self.windows += 1;
    }

    /// The pooled share and its standard error (Laplace's, as a window's).
    fn share(&self) -> (f64, f64) {
        let share = if self.ended > 0.0 {
            self.fails / self.ended
        } else {
            0.0
        };
        (share, share_se(self.fails, self.ended))
    }
}
