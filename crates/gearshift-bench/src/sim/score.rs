//! The oracle (the best fixed setting of each phase, by a sweep) and a
//! run's scores against it. Scores use each window's expected goodput, so
//! the noise moves a tuner's decisions, not its luck.

use super::run::{Fixed, MAX_LIMIT, SimConfig, Trajectory, simulate};
use super::scenario::Scenario;

/// Goodput within this fraction of the oracle's counts as settled.
const SETTLED: f64 = 0.05;
/// Time after a phase starts before the limit counts as runaway.
const GRACE: f64 = 3.0;
/// The limit counts as runaway above this multiple of the oracle's.
const RUNAWAY: f64 = 2.0;

/// The best fixed setting of each phase.
#[derive(Debug, Clone, PartialEq)]
pub struct Oracle {
    /// Per phase: the best fixed calls in flight.
    pub limits: Vec<usize>,
    /// Per phase: its goodput (items/s).
    pub goodput: Vec<f64>,
    /// Per phase: its goodput (items/s) over each 1 s of the phase, at
    /// the best setting (what settling compares with, so drifts count).
    pub per_second: Vec<Vec<f64>>,
    /// Every setting swept, with its goodput per phase.
    pub swept: Vec<(usize, Vec<f64>)>,
}

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

fn fixed(s: &Scenario, n: usize) -> Trajectory {
    let cfg = SimConfig {
        start: n,
        ..SimConfig::for_scenario(s)
    };
    simulate(s, &mut Fixed(n), &cfg)
}

fn fixed_run(s: &Scenario, n: usize) -> Vec<f64> {
    phase_goodput(s, &fixed(s, n))
}

/// Index of the first (smallest) setting with the best goodput in `ph`.
fn best_of(swept: &[(usize, Vec<f64>)], ph: usize) -> usize {
    let mut best = 0;
    for (i, (_, g)) in swept.iter().enumerate() {
        if g[ph] > swept[best].1[ph] * (1.0 + 1e-9) {
            best = i;
        }
    }
    best
}

/// Sweeps fixed settings: a geometric grid from 1 to [`MAX_LIMIT`], then,
/// per phase, finer steps between the best and its neighbours down to
/// every single setting.
pub fn oracle(s: &Scenario) -> Oracle {
    let mut grid = vec![1usize];
    while *grid.last().unwrap_or(&MAX_LIMIT) < MAX_LIMIT {
        let last = grid[grid.len() - 1];
        grid.push(((last as f64 * 1.25).ceil() as usize).min(MAX_LIMIT));
    }
    let mut swept: Vec<(usize, Vec<f64>)> = grid.iter().map(|&n| (n, fixed_run(s, n))).collect();
    for ph in 0..s.phases.len() {
        // Narrow down between the best and its neighbours until the step is 1.
        loop {
            swept.sort_by_key(|(n, _)| *n);
            let best = best_of(&swept, ph);
            let lo = swept[best.saturating_sub(1)].0;
            let hi = swept[(best + 1).min(swept.len() - 1)].0;
            let step = ((hi - lo) / 16).max(1);
            let new: Vec<usize> = (lo..=hi)
                .step_by(step)
                .filter(|n| !swept.iter().any(|(m, _)| m == n))
                .collect();
            if new.is_empty() {
                break;
            }
            swept.extend(new.into_iter().map(|n| (n, fixed_run(s, n))));
        }
    }
    swept.sort_by_key(|(n, _)| *n);
    let (mut limits, mut goodput, mut seconds) = (Vec::new(), Vec::new(), Vec::new());
    for ph in 0..s.phases.len() {
        // The smallest of the best settings: ties go to fewer calls.
        let (n, g) = &swept[best_of(&swept, ph)];
        limits.push(*n);
        goodput.push(g[ph]);
        seconds.push(per_second(s, &fixed(s, *n), ph));
    }
    Oracle {
        limits,
        goodput,
        per_second: seconds,
        swept,
    }
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
    /// Seconds, after the first 3 s, with the limit above 2x the oracle's.
    pub runaway: f64,
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

    /// Runaway seconds over all phases.
    pub fn runaway(&self) -> f64 {
        self.phases.iter().map(|p| p.runaway).sum()
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
            let cap = RUNAWAY * o.limits[ph] as f64;
            let runaway = run
                .steps
                .iter()
                .filter(|st| st.phase == ph && st.limit as f64 > cap)
                .map(|st| (st.t + st.secs - (t0 + GRACE).max(st.t)).max(0.0))
                .fold(0.0, |a, b| a + b);
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
