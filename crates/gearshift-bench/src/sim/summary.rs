//! A tuner's scores over a range of seeds: the distribution the issue's
//! targets are stated in (median, 5th percentile, worst scenarios).

use std::ops::Range;

use gearshift::tuner::Tuner;

use super::evaluate;
use super::scenario::{Family, Scenario};
use super::score::Score;

/// One scenario's result in a [`Summary`].
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The scenario's seed.
    pub seed: u64,
    /// Its family.
    pub family: Family,
    /// Goodput over the oracle's, whole run.
    pub fraction: f64,
    /// Slowest phase's settling time; `None` if a phase never settled.
    pub settling: Option<f64>,
    /// Runaway seconds over all phases.
    pub runaway: f64,
    /// Calls started inside a `Retry-After`.
    pub in_retry_after: f64,
    /// Seconds the chain was paused by `Retry-After`.
    pub paused: f64,
}

impl Outcome {
    /// The outcome of a run on `s` that scored `sc`.
    pub fn of(s: &Scenario, sc: &Score) -> Outcome {
        Outcome {
            seed: s.seed,
            family: s.family,
            fraction: sc.fraction,
            settling: sc.settling(),
            runaway: sc.runaway(),
            in_retry_after: sc.in_retry_after,
            paused: sc.paused,
        }
    }
}

impl Outcome {
    /// Why a run scored low, in a few words: runaway, settling, pauses.
    pub fn why(&self) -> String {
        let settling = self.settling.map_or("never settled".to_string(), |x| {
            format!("settled after {x:.0}s")
        });
        format!(
            "runaway {:.1}s, {settling}, paused {:.1}s, calls in Retry-After {:.0}",
            self.runaway, self.paused, self.in_retry_after
        )
    }
}

/// A tuner over a range of seeds.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// The tuner's name.
    pub tuner: String,
    /// Every scenario, by seed.
    pub outcomes: Vec<Outcome>,
}

/// The `q` quantile (0..=1, nearest rank) of `xs`; NaN when empty.
pub fn quantile(xs: &[f64], q: f64) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize]
}

impl Summary {
    /// Runs fresh tuners from `make(cores)` (one per API) on every seed of
    /// `seeds`.
    pub fn run(seeds: Range<u64>, make: impl Fn(usize) -> Box<dyn Tuner>) -> Summary {
        let name = make(1).name().to_string();
        let outcomes = seeds
            .map(|seed| {
                let (s, _, sc) = evaluate(seed, &make);
                Outcome::of(&s, &sc)
            })
            .collect();
        Summary {
            tuner: name,
            outcomes,
        }
    }

    /// Fractions of the oracle, optionally of one family only.
    pub fn fractions(&self, family: Option<Family>) -> Vec<f64> {
        self.outcomes
            .iter()
            .filter(|o| family.is_none_or(|f| o.family == f))
            .map(|o| o.fraction)
            .collect()
    }

    /// The `n` scenarios with the lowest fraction, worst first.
    pub fn worst(&self, n: usize) -> Vec<&Outcome> {
        let mut v: Vec<&Outcome> = self.outcomes.iter().collect();
        v.sort_by(|a, b| a.fraction.total_cmp(&b.fraction));
        v.truncate(n);
        v
    }

    /// Median settling time, a never-settled run counting as infinite.
    pub fn median_settling(&self) -> f64 {
        let s: Vec<f64> = self
            .outcomes
            .iter()
            .map(|o| o.settling.unwrap_or(f64::INFINITY))
            .collect();
        quantile(&s, 0.5)
    }

    /// Runs whose runaway lasted more than `secs`.
    pub fn runaways(&self, secs: f64) -> usize {
        self.outcomes.iter().filter(|o| o.runaway > secs).count()
    }

    /// A few lines for a report: the distribution, per family, the worst 5.
    pub fn render(&self) -> String {
        let f = self.fractions(None);
        let settled = self
            .outcomes
            .iter()
            .filter(|o| o.settling.is_some())
            .count();
        let in_ra: f64 = self.outcomes.iter().map(|o| o.in_retry_after).sum();
        let mut out = format!(
            "{:10} n={} median {:.3} p5 {:.3} min {:.3} | settled in {settled} runs, \
             settling median {:.1}s | runaway>2s in {} runs | calls in Retry-After {in_ra:.0}\n",
            self.tuner,
            f.len(),
            quantile(&f, 0.5),
            quantile(&f, 0.05),
            quantile(&f, 0.0),
            self.median_settling(),
            self.runaways(2.0),
        );
        for fam in Family::ALL {
            let ff = self.fractions(Some(fam));
            if !ff.is_empty() {
                out += &format!(
                    "  {:11} n={:3} median {:.3} p5 {:.3}\n",
                    format!("{fam:?}"),
                    ff.len(),
                    quantile(&ff, 0.5),
                    quantile(&ff, 0.05)
                );
            }
        }
        for w in self.worst(5) {
            out += &format!(
                "  worst: seed {} {:?} fraction {:.3} {}\n",
                w.seed,
                w.family,
                w.fraction,
                w.why()
            );
        }
        out
    }
}
