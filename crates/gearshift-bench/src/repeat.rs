//! `run --repeat N`: the same scenario measured N times, each system's runs
//! side by side, so a row shows its median and its min-max spread rather
//! than one draw of the machine's noise.

use crate::cpu_share::CONTENTION_THRESHOLD;
use crate::ledger::RunResult;
use crate::scenario::ScenarioResult;

/// The median and the extremes of some measurements.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// The middle value (the mean of the two middle ones for an even count).
    pub median: f64,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
}

impl Spread {
    /// The spread of `values`; `None` if there are none or one is NaN.
    pub fn of(values: &[f64]) -> Option<Spread> {
        if values.is_empty() || values.iter().any(|v| v.is_nan()) {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[n - 1],
        })
    }

    /// Every figure divided by `by` (e.g. by the scenario's limit).
    pub fn scaled(self, by: f64) -> Spread {
        Spread {
            median: self.median / by,
            min: self.min / by,
            max: self.max / by,
        }
    }
}

/// One system's runs of one scenario.
#[derive(Debug, Clone)]
pub struct RepeatedRow {
    /// Its runs, in the order they ran (at least one).
    pub runs: Vec<RunResult>,
}

impl RepeatedRow {
    /// The system's name.
    pub fn system(&self) -> &str {
        &self.runs[0].system
    }

    /// Items/s over the runs.
    pub fn items_per_s(&self) -> Spread {
        self.spread(RunResult::items_per_s)
    }

    /// The median over the runs of `f`.
    pub fn median_of(&self, f: impl Fn(&RunResult) -> f64) -> f64 {
        self.spread(f).median
    }

    /// The spread over the runs of `f`.
    pub fn spread(&self, f: impl Fn(&RunResult) -> f64) -> Spread {
        let values: Vec<f64> = self.runs.iter().map(f).collect();
        Spread::of(&values).unwrap_or(Spread {
            median: f64::NAN,
            min: f64::NAN,
            max: f64::NAN,
        })
    }

    /// The run whose items/s is the median (the lower of the two middle
    /// ones for an even count): the one to plot.
    pub fn median_run(&self) -> &RunResult {
        let mut order: Vec<&RunResult> = self.runs.iter().collect();
        order.sort_by(|a, b| a.items_per_s().total_cmp(&b.items_per_s()));
        order[(order.len() - 1) / 2]
    }

    /// The largest share of the machine's CPU other processes took during
    /// any of the runs; `None` where it could not be read.
    pub fn others_cpu(&self) -> Option<f64> {
        self.runs
            .iter()
            .filter_map(|r| r.others_cpu)
            .reduce(f64::max)
    }

    /// Whether other processes took more than [`CONTENTION_THRESHOLD`] of
    /// the machine during one of the runs.
    pub fn contended(&self) -> bool {
        self.others_cpu().is_some_and(|x| x > CONTENTION_THRESHOLD)
    }

    /// The accounting errors of its runs, if any (any one voids the row).
    pub fn accounting_error(&self) -> Option<String> {
        let errors: Vec<&str> = self
            .runs
            .iter()
            .filter_map(|r| r.accounting_error.as_deref())
            .collect();
        (!errors.is_empty()).then(|| errors.join("; "))
    }
}

/// Every system's runs of one scenario.
#[derive(Debug, Clone)]
pub struct RepeatedScenario {
    /// The scenario's name.
    pub scenario: String,
    /// Its theoretical limit, items/s.
    pub limit_per_s: f64,
    /// The system the others are compared with.
    pub reference: String,
    /// The APIs and their capacities (as in [`ScenarioResult::apis`]).
    pub apis: Vec<(String, Option<usize>)>,
    /// One row per system, in run order.
    pub rows: Vec<RepeatedRow>,
}

impl RepeatedScenario {
    /// Gathers repeats of one scenario: rows are matched by system name,
    /// in the first repeat's order; `None` if `results` is empty.
    pub fn merge(results: Vec<ScenarioResult>) -> Option<RepeatedScenario> {
        let mut results = results.into_iter();
        let first = results.next()?;
        let mut rows: Vec<RepeatedRow> = first
            .rows
            .into_iter()
            .map(|r| RepeatedRow { runs: vec![r] })
            .collect();
        for more in results {
            for run in more.rows {
                match rows.iter_mut().find(|r| r.system() == run.system) {
                    Some(row) => row.runs.push(run),
                    None => rows.push(RepeatedRow { runs: vec![run] }),
                }
            }
        }
        Some(RepeatedScenario {
            scenario: first.scenario,
            limit_per_s: first.limit_per_s,
            reference: first.reference,
            apis: first.apis,
            rows,
        })
    }

    /// The reference row's median items/s, if it ran and did something.
    pub fn reference_items_per_s(&self) -> Option<f64> {
        self.rows
            .iter()
            .find(|r| r.system() == self.reference)
            .map(|r| r.items_per_s().median)
            .filter(|x| *x > 0.0)
    }
}
