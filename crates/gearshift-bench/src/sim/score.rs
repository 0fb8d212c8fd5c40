//! A run's scores against the oracle. Scores use each step's expected
//! goodput, so the noise moves a tuner's decisions, not its luck.

use super::oracle::Oracle;
use super::run::Trajectory;
use super::scenario::Scenario;

/// Goodput within this fraction of the oracle's counts as settled.
const SETTLED: f64 = 0.05;
/// Time after a phase starts before the limit counts as runaway.
const GRACE: f64 = 3.0;
/// The limit counts as runaway above this multiple of the oracle's.
const RUNAWAY: f64 = 2.0;

/// Goodput (items/s) over each 1 s of phase `ph`, every window spread over
/// the seconds it overlaps (the last, partial second by its width).
pub fn per_second(s: &Scenario, run: &Trajectory, ph: usize) -> Vec<f64> {
    let (t0, len) = (s.phase_starts()[ph], s.phases[ph].secs);
    let buckets = len.ceil().max(1.0) as usize;
    let mut items = vec![0.0; buckets];
    for st in run.steps.iter().filter(|st| st.phase == ph) {
        let (a, b) = (st.t - t0, st.t - t0 + st.secs);
        let first = a.floor().max(0.0) as usize;
        for (k, item) in items.iter_mut().enumerate().skip(first) {
            let overlap = (b.min(k as f64 + 1.0) - a.max(k as f64)).max(0.0);
            if overlap <= 0.0 {
                break;
            }
            *item += st.expected * overlap / st.secs;
        }
    }
    for (k, item) in items.iter_mut().enumerate() {
        *item /= (len - k as f64).min(1.0);
    }
    items
}

/// Goodput (items/s) of each phase of a run.
pub fn phase_goodput(s: &Scenario, run: &Trajectory) -> Vec<f64> {
    let mut items = vec![0.0; s.phases.len()];
    for st in &run.steps {
        items[st.phase] += st.expected;
    }
    items
        .iter()
        .zip(&s.phases)
        .map(|(i, p)| i / p.secs)
        .collect()
}

/// One phase's scores.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseScore {
    /// Goodput over the oracle's.
    pub fraction: f64,
    /// Seconds into the phase after which every 1 s of goodput stays at
    /// 95% or more of the oracle's same second; `None` if the phase's last
    /// second is still below.
    pub settling: Option<f64>,
    /// Per API: seconds, after the first 3 s, with its limit above 2x the
    /// oracle's setting for that API.
    pub runaway: Vec<f64>,
}

/// A run's scores against the oracle.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    /// Goodput of the whole run over the oracle's.
    pub fraction: f64,
    /// Per phase.
    pub phases: Vec<PhaseScore>,
    /// Calls started while a `Retry-After` was in force.
    pub in_retry_after: f64,
    /// Seconds the budget was paused by `Retry-After`.
    pub paused: f64,
}

impl Score {
    /// The slowest phase's settling time; `None` if a phase never settled.
    pub fn settling(&self) -> Option<f64> {
        self.phases
            .iter()
            .try_fold(0.0f64, |m, p| p.settling.map(|s| m.max(s)))
    }

    /// Runaway seconds over all phases and APIs.
    pub fn runaway(&self) -> f64 {
        self.phases.iter().flat_map(|p| &p.runaway).sum()
    }
}

/// Scores `run` on `s` against `o`.
pub fn score(s: &Scenario, run: &Trajectory, o: &Oracle) -> Score {
    let starts = s.phase_starts();
    let got = phase_goodput(s, run);
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 1.0 };
    let total: f64 = got.iter().zip(&s.phases).map(|(g, p)| g * p.secs).sum();
    let best: f64 = o
        .goodput
        .iter()
        .zip(&s.phases)
        .map(|(g, p)| g * p.secs)
        .sum();
    let phases = (0..s.phases.len())
        .map(|ph| {
            let t0 = starts[ph];
            let second = per_second(s, run, ph);
            let ok = |k: usize| second[k] >= (1.0 - SETTLED) * o.per_second[ph][k];
            let settling = (0..second.len())
                .rev()
                .take_while(|&k| ok(k))
                .last()
                .map(|k| k as f64);
            let runaway = o.limits[ph]
                .iter()
                .enumerate()
                .map(|(i, &best)| {
                    let cap = RUNAWAY * best as f64;
                    run.steps
                        .iter()
                        .filter(|st| {
                            st.phase == ph && st.limits.get(i).is_some_and(|&n| n as f64 > cap)
                        })
                        .map(|st| (st.t + st.secs - (t0 + GRACE).max(st.t)).max(0.0))
                        .fold(0.0, |a, b| a + b)
                })
                .collect();
            PhaseScore {
                fraction: ratio(got[ph], o.goodput[ph]),
                settling,
                runaway,
            }
        })
        .collect();
    Score {
        fraction: ratio(total, best),
        phases,
        in_retry_after: run.steps.iter().map(|st| st.in_retry_after).sum(),
        paused: run.steps.iter().map(|st| st.paused).sum(),
    }
}
