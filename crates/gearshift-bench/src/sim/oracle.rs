//! The oracle: the best fixed setting of each phase, by a sweep (for two
//! APIs, the best fixed pair).

use std::collections::BTreeMap;

use gearshift::tuner::Tuner;

use super::run::{Fixed, MAX_LIMIT, SimConfig, Trajectory, simulate};
use super::scenario::Scenario;
use super::score::{per_second, phase_goodput};

/// Rounds of the pair search (each a line search per API).
const PAIR_ROUNDS: usize = 2;

/// The best fixed setting of each phase.
#[derive(Debug, Clone, PartialEq)]
pub struct Oracle {
    /// Per phase: the best fixed calls in flight, one per API.
    pub limits: Vec<Vec<usize>>,
    /// Per phase: its goodput (items/s).
    pub goodput: Vec<f64>,
    /// Per phase: its goodput (items/s) over each 1 s of the phase, at
    /// the best setting (what settling compares with, so drifts count).
    pub per_second: Vec<Vec<f64>>,
    /// Every setting swept (one value per API), with its goodput per phase.
    pub swept: Vec<(Vec<usize>, Vec<f64>)>,
}

/// Goodput (items/s) per phase of every API fixed at `n[i]` from the start.
pub fn fixed_goodput(s: &Scenario, n: &[usize]) -> Vec<f64> {
    phase_goodput(s, &fixed_run(s, n))
}

/// Every API fixed at `n[i]` from the start.
pub fn fixed_run(s: &Scenario, n: &[usize]) -> Trajectory {
    let mut fixed: Vec<Fixed> = n.iter().map(|&x| Fixed(x)).collect();
    let mut tuners: Vec<&mut dyn Tuner> = fixed.iter_mut().map(|f| f as &mut dyn Tuner).collect();
    simulate(s, &mut tuners, &SimConfig::starting_at(s, n))
}

/// Sweeps fixed settings. One API: a geometric grid from 1 to
/// [`MAX_LIMIT`], then, per phase, finer steps between the best and its
/// neighbours down to every single setting. Two APIs: each API's best
/// alone, then line searches of one API's setting with the other's held,
/// in turn.
pub fn oracle(s: &Scenario) -> Oracle {
    let mut sweep = Sweep::default();
    let limits: Vec<Vec<usize>> = if s.apis() == 1 {
        sweep.one_api(s)
    } else {
        sweep.pair(s)
    };
    let mut goodput = Vec::new();
    let mut seconds = Vec::new();
    for (ph, n) in limits.iter().enumerate() {
        goodput.push(sweep.eval(s, n)[ph]);
        seconds.push(per_second(s, &fixed_run(s, n), ph));
    }
    Oracle {
        limits,
        goodput,
        per_second: seconds,
        swept: sweep.done.into_iter().collect(),
    }
}

/// Settings run so far, with their goodput per phase.
#[derive(Default)]
struct Sweep {
    done: BTreeMap<Vec<usize>, Vec<f64>>,
}

impl Sweep {
    fn eval(&mut self, s: &Scenario, n: &[usize]) -> Vec<f64> {
        self.done
            .entry(n.to_vec())
            .or_insert_with(|| fixed_goodput(s, n))
            .clone()
    }

    /// The best single setting per phase.
    fn one_api(&mut self, s: &Scenario) -> Vec<Vec<usize>> {
        (0..s.phases.len())
            .map(|ph| vec![self.line(&[1], 0, s, ph)])
            .collect()
    }

    /// The best pair per phase: from each API's best alone, line searches
    /// in turn until a round changes nothing.
    fn pair(&mut self, s: &Scenario) -> Vec<Vec<usize>> {
        let alone: Vec<usize> = (0..s.apis())
            .map(|i| oracle(&s.api_alone(i)).limits[0][0])
            .collect();
        (0..s.phases.len())
            .map(|ph| {
                let mut best = alone.clone();
                for _ in 0..PAIR_ROUNDS {
                    let before = best.clone();
                    for i in 0..best.len() {
                        best[i] = self.line(&best.clone(), i, s, ph);
                    }
                    if best == before {
                        break;
                    }
                }
                // Whatever else was run is no better (ties: fewer calls).
                for (n, g) in &self.done {
                    let (got, have) = (g[ph], self.done[&best][ph]);
                    let fewer = n.iter().sum::<usize>() < best.iter().sum::<usize>();
                    if got > have * (1.0 + 1e-9) || (got >= have * (1.0 - 1e-9) && fewer) {
                        best = n.clone();
                    }
                }
                best
            })
            .collect()
    }

    /// The smallest setting of API `i`, the others held as in `held`,
    /// with the best goodput in phase `ph`: a geometric grid, then
    /// narrowing between the best and its neighbours until the step is 1.
    /// Settings already run on the same line count.
    fn line(&mut self, held: &[usize], i: usize, s: &Scenario, ph: usize) -> usize {
        let at = |n: usize| {
            let mut x = held.to_vec();
            x[i] = n;
            x
        };
        let mut n = 1usize;
        loop {
            self.eval(s, &at(n));
            if n >= MAX_LIMIT {
                break;
            }
            n = ((n as f64 * 1.25).ceil() as usize).min(MAX_LIMIT);
        }
        let mut tried: Vec<(usize, f64)> = self
            .done
            .iter()
            .filter(|(k, _)| at(k[i]) == **k)
            .map(|(k, g)| (k[i], g[ph]))
            .collect();
        loop {
            tried.sort_by_key(|(n, _)| *n);
            let best = best_of(&tried);
            let lo = tried[best.saturating_sub(1)].0;
            let hi = tried[(best + 1).min(tried.len() - 1)].0;
            let step = ((hi - lo) / 16).max(1);
            let new: Vec<usize> = (lo..=hi)
                .step_by(step)
                .filter(|n| !tried.iter().any(|(m, _)| m == n))
                .collect();
            if new.is_empty() {
                return tried[best].0;
            }
            for n in new {
                let g = self.eval(s, &at(n))[ph];
                tried.push((n, g));
            }
        }
    }
}

/// Index of the first (smallest) setting with the best goodput: ties go to
/// fewer calls.
fn best_of(tried: &[(usize, f64)]) -> usize {
    let mut best = 0;
    for (i, (_, g)) in tried.iter().enumerate() {
        if *g > tried[best].1 * (1.0 + 1e-9) {
            best = i;
        }
    }
    best
}

impl Scenario {
    /// API `i` of a two-API scenario on its own, with no CPU cost (what
    /// the pair search starts from).
    fn api_alone(&self, i: usize) -> Scenario {
        let mut s = Scenario {
            cpu_ms: 0.0,
            second: None,
            ..self.clone()
        };
        if let (Some(a), 1) = (&self.second, i) {
            s.shape = a.shape;
            s.failure = a.failure;
            s.sigma = a.sigma;
            s.timeout = a.timeout;
            for p in &mut s.phases {
                p.base = (a.base, a.base);
                p.capacity = (a.capacity, a.capacity);
            }
        }
        s
    }
}
