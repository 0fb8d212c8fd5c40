//! `--json FILE`: one object per (scenario, system) row.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::scenario::ScenarioResult;

/// One row of the JSON report.
#[derive(Debug, Clone, Serialize)]
pub struct JsonRow {
    /// The scenario.
    pub scenario: String,
    /// The system.
    pub system: String,
    /// Items in flight it allowed.
    pub concurrency: usize,
    /// Items given to it.
    pub items: u64,
    /// Items Ok.
    pub ok: u64,
    /// Items Failed.
    pub failed: u64,
    /// Throughput.
    pub items_per_s: f64,
    /// The scenario's theoretical limit.
    pub limit_per_s: f64,
    /// `items_per_s / limit_per_s`.
    pub fraction_of_limit: f64,
    /// `items_per_s` over the scenario's gearshift reference.
    pub ratio_to_gearshift: Option<f64>,
    /// Median item latency, ms.
    pub p50_ms: f64,
    /// 99th percentile item latency, ms.
    pub p99_ms: f64,
    /// Wall time, s.
    pub elapsed_s: f64,
    /// Failures by kind.
    pub failures: BTreeMap<String, u64>,
    /// Marked moments: (s since start, label).
    pub events: Vec<(f64, String)>,
    /// Set if an item was lost or repeated (the row is void).
    pub accounting_error: Option<String>,
    /// The most calls each API had in flight, by the server's own count:
    /// `api`, or `fetch` and `upload` (two_apis).
    pub peak_in_flight: BTreeMap<String, usize>,
    /// Each API's capacity (`null`: unlimited).
    pub capacity: BTreeMap<String, Option<usize>>,
}

/// The rows of `results`.
pub fn json_rows(results: &[ScenarioResult]) -> Vec<JsonRow> {
    let mut rows = Vec::new();
    for r in results {
        let reference = r
            .rows
            .iter()
            .find(|row| row.system == r.reference)
            .map(|row| row.items_per_s())
            .filter(|x| *x > 0.0);
        for row in &r.rows {
            rows.push(JsonRow {
                scenario: r.scenario.clone(),
                system: row.system.clone(),
                concurrency: row.concurrency,
                items: row.items,
                ok: row.ok,
                failed: row.failed,
                items_per_s: row.items_per_s(),
                limit_per_s: r.limit_per_s,
                fraction_of_limit: row.items_per_s() / r.limit_per_s,
                ratio_to_gearshift: reference.map(|x| row.items_per_s() / x),
                p50_ms: row.p50_ms(),
                p99_ms: row.p99_ms(),
                elapsed_s: row.elapsed.as_secs_f64(),
                failures: row.failures.clone(),
                events: row.events.clone(),
                accounting_error: row.accounting_error.clone(),
                peak_in_flight: row.peak_in_flight.clone(),
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
pub fn write_json(path: &Path, results: &[ScenarioResult]) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(&json_rows(results))?;
    std::fs::write(path, text)
        .map_err(|e| anyhow::anyhow!("could not write {}: {e}", path.display()))
}
