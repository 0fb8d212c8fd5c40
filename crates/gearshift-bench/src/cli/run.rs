//! `run` and `sweep`: the main table and the agents sweep, with their
//! progress, repeats and the files they write.

use std::path::PathBuf;
use std::sync::Arc;

use super::{Common, RunArgs, SweepArgs, options, scenario_named};
use crate::repeat::RepeatedScenario;
use crate::report;
use crate::scenario::{self, RunOptions, Scenario};
use crate::sweep;

pub(super) async fn run(args: RunArgs) -> anyhow::Result<String> {
    if !(1..=100).contains(&args.repeat) {
        anyhow::bail!("repeat must be between 1 and 100, got {}", args.repeat);
    }
    let row_s = row_seconds(&args.common)?;
    let scenarios: Vec<Scenario> = if args.scenarios.is_empty() {
        Scenario::all()
    } else {
        args.scenarios
            .iter()
            .map(|n| scenario_named(n))
            .collect::<anyhow::Result<_>>()?
    };
    let scenarios: Vec<Scenario> = scenarios
        .iter()
        .map(|s| s.with_row_seconds(row_s))
        .collect();
    let mut opts = RunOptions {
        systems: args.systems.clone(),
        ..options(&args.common)?
    };
    let repeat = u64::from(args.repeat);
    let (rows, estimate_s) = plan(&scenarios, &opts)?;
    let overall = Arc::new(report::Overall::new(
        rows * repeat,
        estimate_s * repeat as f64,
        opts.progress,
    ));
    tracing::info!(
        "benchmark: {rows} systems x {repeat} repeats; {}",
        overall.line()
    );
    opts.overall = Some(Arc::clone(&overall));
    let mut results = Vec::new();
    for s in &scenarios {
        let mut repeats = Vec::new();
        for _ in 0..repeat {
            repeats.push(scenario::run(s, &opts).await?);
        }
        results.extend(RepeatedScenario::merge(repeats));
    }
    overall.finish();
    let dir = &args.common.out;
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("could not create {}: {e}", dir.display()))?;
    let mut written = Vec::new();
    let json = args
        .common
        .json
        .clone()
        .unwrap_or_else(|| dir.join("run.json"));
    report::write_json(&json, &results)?;
    written.push(json);
    let summary = dir.join("summary.svg");
    report::plot_summary(&summary, &results)?;
    written.push(summary);
    for (s, r) in scenarios.iter().zip(&results) {
        if s.phases.len() > 1 {
            let path = dir.join(format!("{}_timeline.svg", s.name));
            let limits: Vec<f64> = s.phases.iter().map(|p| p.limit_per_s(opts.cores)).collect();
            report::plot_timeline(&path, r, &limits)?;
            written.push(path);
        }
    }
    let void = results
        .iter()
        .flat_map(|r| &r.rows)
        .filter(|r| r.accounting_error().is_some())
        .count();
    let mut out = report::table(&results);
    if void > 0 {
        out.push_str(&format!("{void} rows failed the exactly-once check\n"));
    }
    out.push_str(&wrote(&written));
    Ok(out)
}

/// How many rows `scenarios` run (once each) and about how many seconds
/// they take, for the progress line.
fn plan(scenarios: &[Scenario], opts: &RunOptions) -> anyhow::Result<(u64, f64)> {
    let (mut rows, mut seconds) = (0u64, 0.0);
    for s in scenarios {
        let (systems, _) = scenario::selected_systems(s, opts)?;
        for system in &systems {
            let n = s.items_for(system, opts.items, opts.cores);
            seconds += s.row_seconds(system, n, opts.cores);
            rows += 1;
        }
    }
    Ok((rows, seconds))
}

fn row_seconds(common: &Common) -> anyhow::Result<f64> {
    let t = common.row_seconds;
    if !(t.is_finite() && (0.1..=600.0).contains(&t)) {
        anyhow::bail!("row_seconds must be between 0.1 and 600, got {t}");
    }
    Ok(t)
}

/// `Wrote:` and the paths, one a line.
fn wrote(paths: &[PathBuf]) -> String {
    let mut out = String::from("\nWrote:\n");
    for p in paths {
        out.push_str(&format!("  {}\n", p.display()));
    }
    out
}

pub(super) async fn run_sweep(args: SweepArgs) -> anyhow::Result<String> {
    let scenario = scenario_named(&args.scenario)?.with_row_seconds(row_seconds(&args.common)?);
    if scenario.phases.len() > 1 || scenario.upload.is_some() {
        anyhow::bail!(
            "scenario must have one phase and one API to sweep, got {}",
            scenario.name
        );
    }
    let opts = options(&args.common)?;
    let values = if args.agents_per_core.is_empty() {
        sweep::default_agents_per_core(&scenario, opts.cores)
    } else {
        args.agents_per_core.clone()
    };
    let swept = sweep::sweep(&scenario, &values, &opts).await?;
    let results: Vec<RepeatedScenario> = RepeatedScenario::merge(vec![swept.result])
        .into_iter()
        .collect();
    let dir = &args.common.out;
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("could not create {}: {e}", dir.display()))?;
    let json = args
        .common
        .json
        .clone()
        .unwrap_or_else(|| dir.join(format!("sweep_{}.json", scenario.name)));
    report::write_json(&json, &results)?;
    let svg = dir.join(format!("sweep_{}.svg", scenario.name));
    let limit = scenario.limit_per_s(opts.cores);
    report::plot_sweep(
        &svg,
        &report::SweepPlot {
            title: &format!(
                "{}: throughput against agents per core ({} cores)",
                scenario.name, opts.cores
            ),
            series: &swept.series,
            limit,
            capacity_per_core: scenario.phases[0]
                .capacity
                .map(|c| c as f64 / opts.cores as f64),
            default_controller: swept.default_controller,
        },
    )?;
    let mut out = report::table(&results);
    out.push_str(&wrote(&[json, svg]));
    Ok(out)
}
