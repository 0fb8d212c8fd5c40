//! The JSON report (`bench-out/run.json`, or `--json FILE`): one object
//! per (scenario, system) row, its figures the medians over the repeats.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::repeat::RepeatedScenario;

/// One row of the JSON report.
#[derive(Debug, Clone, Serialize)]
pub struct JsonRow {
    /// The scenario.
    pub scenario: String,
    /// The system.
    pub system: String,
    /// Whether this is the scenario's reference row (`ratio_to_gearshift`
    /// divides by it).
    pub reference: bool,
    /// How many times the row ran.
    pub repeats: usize,
    /// Items in flight it allowed.
    pub concurrency: usize,
    /// Items given to it.
    pub items: u64,
    /// Items Ok (the fewest over the repeats).
    pub ok: u64,
    /// Items Failed (summed over the repeats).
    pub failed: u64,
    /// Throughput, the median over the repeats.
    pub items_per_s: f64,
    /// The slowest repeat's throughput.
    pub items_per_s_min: f64,
    /// The fastest repeat's throughput.
    pub items_per_s_max: f64,
    /// Every repeat's throughput, in run order.
    pub runs_items_per_s: Vec<f64>,
    /// The scenario's theoretical limit.
    pub limit_per_s: f64,
    /// `items_per_s / limit_per_s`.
    pub fraction_of_limit: f64,
    /// `items_per_s` over the scenario's gearshift reference.
    pub ratio_to_gearshift: Option<f64>,
    /// Median item latency, ms (median over the repeats).
    pub p50_ms: f64,
    /// 99th percentile item latency, ms (median over the repeats).
    pub p99_ms: f64,
    /// Wall time, s (median over the repeats).
    pub elapsed_s: f64,
    /// The largest share of the machine's CPU other processes took during
    /// a repeat (`null` where it cannot be read).
    pub others_cpu: Option<f64>,
    /// Failures by kind (summed over the repeats).
    pub failures: BTreeMap<String, u64>,
    /// Marked moments of the median repeat: (s since start, label).
    pub events: Vec<(f64, String)>,
    /// Set if an item was lost or repeated (the row is void).
    pub accounting_error: Option<String>,
    /// The most calls each API had in flight, by the server's own count
    /// (the most over the repeats): `api`, or `fetch` and `upload`
    /// (two_apis).
    pub peak_in_flight: BTreeMap<String, usize>,
    /// Each API's capacity (`null`: unlimited).
    pub capacity: BTreeMap<String, Option<usize>>,
}

/// The rows of `results`.
pub fn json_rows(results: &[RepeatedScenario]) -> Vec<JsonRow> {
    let mut rows = Vec::new();
    for r in results {
        let reference = r.reference_items_per_s();
        for row in &r.rows {
            let rate = row.items_per_s();
            let median = row.median_run();
            let mut failures = BTreeMap::new();
            let mut peak_in_flight = BTreeMap::new();
            for run in &row.runs {
                for (kind, n) in &run.failures {
                    *failures.entry(kind.clone()).or_insert(0) += n;
                }
                for (api, p) in &run.peak_in_flight {
                    let e = peak_in_flight.entry(api.clone()).or_insert(0);
                    *e = (*e).max(*p);
                }
            }
            rows.push(JsonRow {
                scenario: r.scenario.clone(),
                system: row.system().to_owned(),
                reference: row.system() == r.reference,
                repeats: row.runs.len(),
                concurrency: median.concurrency,
                items: median.items,
                ok: row.runs.iter().map(|x| x.ok).min().unwrap_or(0),
                failed: row.runs.iter().map(|x| x.failed).sum(),
                items_per_s: rate.median,
                items_per_s_min: rate.min,
                items_per_s_max: rate.max,
                runs_items_per_s: row.runs.iter().map(|x| x.items_per_s()).collect(),
                limit_per_s: r.limit_per_s,
                fraction_of_limit: rate.median / r.limit_per_s,
                ratio_to_gearshift: reference.map(|x| rate.median / x),
                p50_ms: row.median_of(|x| x.p50_ms()),
                p99_ms: row.median_of(|x| x.p99_ms()),
                elapsed_s: row.median_of(|x| x.elapsed.as_secs_f64()),
                others_cpu: row.others_cpu(),
                failures,
                events: median.events.clone(),
                accounting_error: row.accounting_error(),
                peak_in_flight,
                capacity: r.apis.iter().cloned().collect(),
            });
        }
    }
    rows
}

/// Writes the rows of `results` to `path` as a JSON array.
///
/// # Errors
///
/// If the file cannot be written.
pub fn write_json(path: &Path, results: &[RepeatedScenario]) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(&json_rows(results))?;
    std::fs::write(path, text)
        .map_err(|e| anyhow::anyhow!("could not write {}: {e}", path.display()))
}
