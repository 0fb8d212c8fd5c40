//! The moves the law makes: set the limit, hold it, cut it on overload,
//! grow the workers; each with its reason.

use super::{Ceiling, Gradient};
use crate::tuner::{Decision, Window};

/// Worker idle time below which the CPU stage counts as saturated.
const SATURATED: f64 = 0.1;

impl Gradient {
    pub(super) fn clamp(&self, limit: f64) -> f64 {
        limit.clamp(self.params.min_limit as f64, self.params.max_limit as f64)
    }

    pub(super) fn set(&mut self, limit: f64, workers: Option<usize>, reason: String) -> Decision {
        let before = self.limit.round() as usize;
        self.limit = self.clamp(limit);
        let after = self.limit.round() as usize;
        let changed = (after != before).then_some(after);
        self.moved = changed.is_some();
        Decision {
            agents: changed,
            api_permits: changed,
            workers,
            reason,
        }
    }

    pub(super) fn hold(&mut self, workers: Option<usize>, reason: String) -> Decision {
        self.moved = false;
        Decision {
            workers,
            ..Decision::hold(reason)
        }
    }

    /// Overload: cut to `backoff` x the calls the API took, and remember
    /// that level as a ceiling.
    /// Without an estimate (`None`), the ceiling is the cut level: the
    /// limit itself is known to be too high.
    /// With `probe_again`, the knee lies between the ceiling and the
    /// limit, for the ceiling to bisect; without, the ceiling stands (past
    /// a hard limit each probe costs a `Retry-After` pause).
    pub(super) fn overload(
        &mut self,
        took: Option<f64>,
        probe_again: bool,
        why: String,
        workers: Option<usize>,
    ) -> Decision {
        // One window never more than halves the limit: one noisy reading
        // must not throw away what many others found.
        let took = took.map(|t| self.clamp(t.min(self.limit - 1.0).max(self.limit / 2.0)));
        // Without an estimate, halve (as TCP does): the limit is known to be
        // too high and by how much is not.
        let target = took.map_or(self.limit / 2.0, |t| self.params.backoff * t);
        let ceiling = took.unwrap_or(target);
        let over = if probe_again { self.limit } else { ceiling };
        self.ceiling = Some(self.ceiling_at(ceiling, over));
        let took = took.map_or("an unknown number of".into(), |t| format!("{t:.1}"));
        self.slow_start = false;
        self.probe = None;
        let reason = format!(
            "{why}: the API took {took} calls, limit {:.0} -> {:.0}",
            self.limit,
            self.clamp(target).round()
        );
        self.set(target, workers, reason)
    }

    /// A ceiling at `level` for `ceiling_memory`, below the level `over`
    /// that brought its signal.
    pub(super) fn ceiling_at(&self, level: f64, over: f64) -> Ceiling {
        Ceiling {
            level,
            over,
            until: self.clock + self.params.ceiling_memory.as_secs_f64(),
        }
    }

    /// Saturated workers grow to the pool (by half, at least one).
    pub(super) fn workers(&self, w: &Window) -> Option<usize> {
        let grow = w.cpu_items > 0 && w.workers_idle < SATURATED && w.workers < w.max_workers;
        grow.then(|| (w.workers + (w.workers / 2).max(1)).min(w.max_workers))
    }
}
