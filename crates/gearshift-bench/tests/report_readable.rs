//! The report a newcomer reads: repeats aggregated as median and min-max,
//! a legend for every column, the reference row marked, a warning for rows
//! measured under CPU contention, a summary chart naming every scenario, and
//! `run` writing its files to `--out` and saying where.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use gearshift_bench::cli::{Cli, execute};
use gearshift_bench::ledger::RunResult;
use gearshift_bench::repeat::{RepeatedScenario, Spread};
use gearshift_bench::report::{self, COLUMNS, CONTENDED_MARK, REFERENCE_MARK};
use gearshift_bench::scenario::{Scenario, ScenarioResult};
use gearshift_bench::sweep::default_agents_per_core;
use hdrhistogram::Histogram;

/// A row that did `rate` items in one second.
fn row(system: &str, rate: u64, others_cpu: Option<f64>) -> RunResult {
    let mut latency_us = Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap();
    latency_us.record(20_000).unwrap();
    RunResult {
        system: system.into(),
        concurrency: 8,
        items: rate,
        ok: rate,
        failed: 0,
        elapsed: Duration::from_secs(1),
        latency_us,
        timeline: vec![(0.5, rate as f64)],
        failures: BTreeMap::new(),
        events: Vec::new(),
        accounting_error: None,
        peak_in_flight: BTreeMap::new(),
        others_cpu,
    }
}

fn scenario(name: &str, rows: Vec<RunResult>) -> ScenarioResult {
    ScenarioResult {
        scenario: name.into(),
        limit_per_s: 800.0,
        reference: "gearshift ref".into(),
        rows,
        apis: vec![("api".into(), Some(16))],
    }
}

/// Three repeats of two systems: gearshift at 400, 600, 500 items/s and
/// tokio+rayon at 300, 100, 200.
fn three_repeats(others_cpu: Option<f64>) -> RepeatedScenario {
    let runs = [(400, 300), (600, 100), (500, 200)]
        .iter()
        .map(|&(g, t)| {
            scenario(
                "mixed",
                vec![
                    row("gearshift ref", g, Some(0.01)),
                    row("tokio+rayon (C=8)", t, others_cpu),
                ],
            )
        })
        .collect();
    RepeatedScenario::merge(runs).unwrap()
}

#[test]
fn repeats_give_the_median_and_the_spread() {
    assert_eq!(
        Spread::of(&[3.0, 1.0, 2.0]),
        Some(Spread {
            median: 2.0,
            min: 1.0,
            max: 3.0
        })
    );
    assert_eq!(Spread::of(&[4.0, 1.0, 3.0, 2.0]).unwrap().median, 2.5);
    assert_eq!(Spread::of(&[]), None);

    let r = three_repeats(None);
    assert_eq!(r.rows.len(), 2);
    let gear = &r.rows[0];
    assert_eq!(gear.runs.len(), 3);
    assert_eq!(
        gear.items_per_s(),
        Spread {
            median: 500.0,
            min: 400.0,
            max: 600.0
        }
    );
    assert_eq!(gear.median_run().ok, 500);
    // The table shows the medians, the spread and the ratio of medians.
    let table = report::table(&[r]);
    let line = table.lines().find(|l| l.contains("tokio+rayon")).unwrap();
    assert!(line.contains(" 200.0 "), "{line}");
    assert!(line.contains(" 100-300 "), "{line}");
    assert!(line.contains(" 25.0% "), "{line}");
    assert!(line.contains(" 0.40 "), "{line}");
    // JSON keeps every repeat.
    let json = report::json_rows(&[three_repeats(None)]);
    assert_eq!(json[1].runs_items_per_s, vec![300.0, 100.0, 200.0]);
    assert_eq!(
        (json[1].items_per_s_min, json[1].items_per_s_max),
        (100.0, 300.0)
    );
    assert!(json[0].reference && !json[1].reference);
}

#[test]
fn the_legend_explains_every_column_and_the_reference_is_marked() {
    let table = report::table(&[three_repeats(None)]);
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    // Every column of the header is one the legend explains: with their
    // names taken out, nothing is left of the header.
    let mut rest = header.to_owned();
    for (name, _) in COLUMNS {
        assert!(rest.contains(name), "{name} not in {header}");
        rest = rest.replacen(name, "", 1);
    }
    assert_eq!(rest.trim(), "", "a column the legend does not explain");
    for (name, what) in COLUMNS {
        let entry = format!("  {name:<9} {what}");
        assert!(table.contains(&entry), "no legend for {name}:\n{table}");
    }
    assert!(table.contains(&format!(
        "  {REFERENCE_MARK:<9} the scenario's reference row"
    )));
    // The reference row, and only it, carries the mark.
    let marked: Vec<&str> = table
        .lines()
        .filter(|l| l.starts_with(&format!("{REFERENCE_MARK} ")))
        .collect();
    assert_eq!(marked.len(), 1, "{table}");
    assert!(marked[0].contains("gearshift ref"));
}

#[test]
fn rows_run_under_contention_are_flagged_with_a_warning() {
    let quiet = report::table(&[three_repeats(Some(0.02))]);
    assert!(!quiet.contains("WARNING"), "{quiet}");
    let busy = report::table(&[three_repeats(Some(0.40))]);
    assert!(busy.contains("WARNING: 1 of 2 rows"), "{busy}");
    let line = busy.lines().find(|l| l.contains("tokio+rayon")).unwrap();
    assert!(line.contains(&format!("40%{CONTENDED_MARK}")), "{line}");
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gearshift-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_summary_chart_shows_every_scenario_and_system() {
    let dir = temp_dir("summary");
    let path = dir.join("summary.svg");
    let mut second = three_repeats(None);
    second.scenario = "io_bound".into();
    report::plot_summary(&path, &[three_repeats(None), second]).unwrap();
    let svg = std::fs::read_to_string(&path).unwrap();
    for name in [
        "mixed: limit 800",
        "io_bound: limit 800",
        "tokio+rayon (C=8)",
    ] {
        assert!(svg.contains(name), "{name} not in the chart");
    }
    assert!(svg.contains(&format!("{REFERENCE_MARK} gearshift ref")));
    // The median of each row as its label (not a tick: those are every
    // 20%): 500/800 and 200/800.
    assert!(svg.contains(&format!("\n{:.0}%\n", 62.5)), "{svg}");
    assert!(svg.contains("\n25%\n"), "{svg}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_default_sweep_reaches_past_the_api_capacity() {
    let mixed = Scenario::by_name("mixed").unwrap();
    // Capacity 32 on 2 cores: 16 agents per core.
    let values = default_agents_per_core(&mixed, 2);
    assert!(values.contains(&16.0), "{values:?}");
    assert!(values.iter().any(|&v| v > 16.0), "{values:?}");
    assert!(values.iter().any(|&v| v <= 2.0), "{values:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_writes_json_and_svg_to_the_out_dir_and_names_them() {
    let dir = temp_dir("run");
    let cli = Cli::parse_from([
        "gearshift-bench",
        "run",
        "--scenario",
        "morning_evening",
        "--items",
        "12",
        "--repeat",
        "2",
        "--cores",
        "2",
        "--out",
        dir.to_str().unwrap(),
    ]);
    let out = execute(cli).await.unwrap();
    for file in ["run.json", "summary.svg", "morning_evening_timeline.svg"] {
        let path = dir.join(file);
        assert!(path.exists(), "{file} not written");
        assert!(
            out.contains(&path.display().to_string()),
            "{file} not named:\n{out}"
        );
    }
    assert!(out.contains("Each row ran 2 times"), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("run.json")).unwrap()).unwrap();
    let rows = json.as_array().unwrap();
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| r["repeats"] == 2));
    let _ = std::fs::remove_dir_all(&dir);
}
