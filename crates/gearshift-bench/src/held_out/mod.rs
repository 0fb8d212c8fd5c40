//! `gearshift-bench tuner --held-out`: the default controller, the seed's
//! rule, every preset and the best single fixed setting on seeded
//! scenarios of the closed-loop simulator ([`crate::sim`]), scored against
//! each scenario's oracle, with the targets checked.
//!
//! Each scenario's oracle is computed once and shared by every tuner; the
//! seeds run in parallel on rayon's pool.

use std::ops::Range;
use std::time::Instant;

use gearshift::Preset;
use gearshift::tuner::{SeedRule, Tuner, default_for};
use rayon::prelude::*;
use serde::Serialize;

use crate::report;
use crate::sim::{
    Family, Outcome, SimConfig, Summary, fixed_run, oracle, quantile, score, simulate_with,
};

mod command;
mod text;

pub use command::command;
pub use text::{plot_default_run, render, write_json};

/// Fixed settings swept for the best single one (calls in flight per API).
const FIXED_GRID: [usize; 23] = [
    1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048,
    4096,
];
/// Runs whose limit ran away for longer than this (s) count as runaways.
const RUNAWAY_S: f64 = 2.0;
/// Scenarios listed as the worst of each tuner.
const WORST: usize = 5;

/// What to run.
#[derive(Debug, Clone)]
pub struct HeldOutOptions {
    /// The seeds.
    pub seeds: Range<u64>,
    /// Whether the seeds are the training range (for the report's label).
    pub training: bool,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

/// The whole report, as written with `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct HeldOutReport {
    /// `held-out` or `training`.
    pub range: String,
    /// First seed.
    pub first_seed: u64,
    /// Scenarios run.
    pub scenarios: usize,
    /// The best single fixed setting (calls in flight per API).
    pub best_fixed: usize,
    /// Per tuner, the default controller first.
    pub tuners: Vec<TunerReport>,
    /// The targets, checked on the default controller.
    pub targets: Vec<Target>,
    /// Wall time of the run (s).
    pub elapsed_s: f64,
}

/// One tuner's distribution.
#[derive(Debug, Clone, Serialize)]
pub struct TunerReport {
    /// Its label.
    pub name: String,
    /// Mean fraction of the oracle's goodput.
    pub mean: f64,
    /// Median fraction.
    pub median: f64,
    /// 5th percentile fraction.
    pub p5: f64,
    /// Smallest fraction.
    pub min: f64,
    /// Median settling time (s); `null` if most runs never settled.
    pub median_settling_s: Option<f64>,
    /// Runs whose limit ran away (above 2x the oracle's) for more than 2 s.
    pub runaways: usize,
    /// Calls started inside `Retry-After` windows, all runs.
    pub calls_in_retry_after: f64,
    /// Per family present.
    pub families: Vec<FamilyReport>,
    /// The worst scenarios, worst first.
    pub worst: Vec<ScenarioReport>,
    /// Every scenario, by seed.
    pub scenarios: Vec<ScenarioReport>,
}

/// One family's share of a tuner's distribution.
#[derive(Debug, Clone, Serialize)]
pub struct FamilyReport {
    /// The family.
    pub family: String,
    /// Scenarios of it.
    pub n: usize,
    /// Median fraction.
    pub median: f64,
    /// 5th percentile fraction.
    pub p5: f64,
}

/// One scenario's result.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    /// Its seed.
    pub seed: u64,
    /// Its family.
    pub family: String,
    /// Fraction of the oracle's goodput.
    pub fraction: f64,
    /// Seconds with the limit above 2x the oracle's (after each phase's
    /// first 3 s), all APIs.
    pub runaway_s: f64,
    /// Slowest phase's settling time (s); `null` if one never settled.
    pub settling_s: Option<f64>,
    /// Seconds paused by `Retry-After`.
    pub paused_s: f64,
    /// Calls started inside `Retry-After` windows.
    pub calls_in_retry_after: f64,
    /// Why it scored what it did, in a few words.
    pub why: String,
}

/// One of the targets.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// What is checked.
    pub name: String,
    /// What was measured.
    pub measured: String,
    /// Whether it holds.
    pub pass: bool,
}

/// Runs every tuner on every seed of `opts.seeds`.
pub fn run(opts: &HeldOutOptions) -> HeldOutReport {
    let started = Instant::now();
    let bar = report::progress_bar(
        opts.seeds.end.saturating_sub(opts.seeds.start),
        "scenarios (oracle, then every tuner)",
        opts.progress,
    );
    let per_seed: Vec<Vec<Outcome>> = opts
        .seeds
        .clone()
        .into_par_iter()
        .map(|seed| {
            let out = one_seed(seed);
            bar.inc(1);
            out
        })
        .collect();
    bar.finish_and_clear();
    let column = |j: usize| -> Vec<Outcome> { per_seed.iter().map(|o| o[j].clone()).collect() };
    let fixed_from = 2 + Preset::ALL.len();
    let best = (0..FIXED_GRID.len())
        .map(|g| (g, mean(&fractions(&column(fixed_from + g)))))
        .fold((0, f64::NEG_INFINITY), |a, b| if b.1 > a.1 { b } else { a })
        .0;
    let mut summaries = vec![
        summary("default", column(0)),
        summary("seed rule", column(1)),
    ];
    for (k, p) in Preset::ALL.iter().enumerate() {
        summaries.push(summary(&format!("preset {p}"), column(2 + k)));
    }
    summaries.push(summary(
        &format!("best fixed ({})", FIXED_GRID[best]),
        column(fixed_from + best),
    ));
    let tuners: Vec<TunerReport> = summaries.iter().map(tuner_report).collect();
    HeldOutReport {
        range: if opts.training {
            "training"
        } else {
            "held-out"
        }
        .to_string(),
        first_seed: opts.seeds.start,
        scenarios: per_seed.len(),
        best_fixed: FIXED_GRID[best],
        targets: text::targets(&tuners),
        tuners,
        elapsed_s: started.elapsed().as_secs_f64(),
    }
}

/// Every tuner on one seed, in the report's order: the default, the seed
/// rule, each preset, each setting of [`FIXED_GRID`].
fn one_seed(seed: u64) -> Vec<Outcome> {
    let s = crate::sim::Scenario::generate(seed);
    let o = oracle(&s);
    let tuned = |make: &dyn Fn(usize) -> Box<dyn Tuner>| {
        let run = simulate_with(&s, make, &SimConfig::for_scenario(&s));
        Outcome::of(&s, &score(&s, &run, &o))
    };
    let fixed = |n: usize| Outcome::of(&s, &score(&s, &fixed_run(&s, &vec![n; s.apis()]), &o));
    let mut out = vec![
        tuned(&default_for),
        tuned(&|_| Box::new(SeedRule::default())),
    ];
    out.extend(
        Preset::ALL
            .iter()
            .map(|p| fixed(((p.agents_per_core() * s.cores as f64).round() as usize).max(1))),
    );
    out.extend(FIXED_GRID.iter().map(|&n| fixed(n)));
    out
}

fn summary(name: &str, outcomes: Vec<Outcome>) -> Summary {
    Summary {
        tuner: name.to_string(),
        outcomes,
    }
}

fn fractions(o: &[Outcome]) -> Vec<f64> {
    o.iter().map(|o| o.fraction).collect()
}

fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        f64::NAN
    } else {
        xs.iter().sum::<f64>() / xs.len() as f64
    }
}

fn scenario_report(o: &Outcome) -> ScenarioReport {
    ScenarioReport {
        seed: o.seed,
        family: format!("{:?}", o.family),
        fraction: o.fraction,
        runaway_s: o.runaway,
        settling_s: o.settling,
        paused_s: o.paused,
        calls_in_retry_after: o.in_retry_after,
        why: o.why(),
    }
}

fn tuner_report(s: &Summary) -> TunerReport {
    let f = s.fractions(None);
    let settling = s.median_settling();
    TunerReport {
        name: s.tuner.clone(),
        mean: mean(&f),
        median: quantile(&f, 0.5),
        p5: quantile(&f, 0.05),
        min: quantile(&f, 0.0),
        median_settling_s: settling.is_finite().then_some(settling),
        runaways: s.runaways(RUNAWAY_S),
        calls_in_retry_after: s.outcomes.iter().map(|o| o.in_retry_after).sum(),
        families: Family::ALL
            .iter()
            .filter_map(|&fam| {
                let ff = s.fractions(Some(fam));
                (!ff.is_empty()).then(|| FamilyReport {
                    family: format!("{fam:?}"),
                    n: ff.len(),
                    median: quantile(&ff, 0.5),
                    p5: quantile(&ff, 0.05),
                })
            })
            .collect(),
        worst: s.worst(WORST).into_iter().map(scenario_report).collect(),
        scenarios: s.outcomes.iter().map(scenario_report).collect(),
    }
}
