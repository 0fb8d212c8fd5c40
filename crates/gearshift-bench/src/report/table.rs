//! The terminal table.

use std::fmt::Write;

use crate::ledger::RunResult;
use crate::scenario::ScenarioResult;

/// The table of every row of `results`, as text: scenario, system,
/// concurrency, items/s, fraction of the limit, ratio to the scenario's
/// gearshift reference, p50/p99 item latency; in a scenario of more than
/// one API, each API's peak calls in flight over its capacity.
pub fn table(results: &[ScenarioResult]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<16} {:<44} {:>5} {:>9} {:>9} {:>8} {:>8} {:>9} {:>9}",
        "scenario", "system", "C", "items", "items/s", "of limit", "vs gear", "p50 ms", "p99 ms"
    );
    for r in results {
        let reference = r
            .rows
            .iter()
            .find(|row| row.system == r.reference)
            .map(|row| row.items_per_s());
        let _ = writeln!(out, "{:<16} limit {:.0} items/s", r.scenario, r.limit_per_s);
        for row in &r.rows {
            let ratio = reference
                .filter(|x| *x > 0.0)
                .map(|x| format!("{:.2}", row.items_per_s() / x))
                .unwrap_or_else(|| "-".into());
            let _ = writeln!(
                out,
                "{:<16} {:<44} {:>5} {:>9} {:>9.1} {:>8.1}% {:>8} {:>9.2} {:>9.2}{}",
                r.scenario,
                row.system,
                row.concurrency,
                format!("{}/{}", row.ok, row.items),
                row.items_per_s(),
                100.0 * row.items_per_s() / r.limit_per_s,
                ratio,
                row.p50_ms(),
                row.p99_ms(),
                peaks(r, row)
                    + &match &row.accounting_error {
                        Some(e) => format!("  ACCOUNTING ERROR: {e}"),
                        None if row.failed > 0 => format!("  failed {}", row.failed),
                        None => String::new(),
                    }
            );
        }
    }
    out
}

/// `  peak fetch 16/16, upload 4/4` (peak in flight / capacity, by each
/// server's count) when the scenario has more than one API; else nothing.
fn peaks(r: &ScenarioResult, row: &RunResult) -> String {
    if r.apis.len() < 2 {
        return String::new();
    }
    let each: Vec<String> = r
        .apis
        .iter()
        .map(|(name, cap)| {
            let peak = row
                .peak_in_flight
                .get(name)
                .map_or_else(|| "-".to_owned(), usize::to_string);
            let cap = cap.map_or_else(|| "unlimited".to_owned(), |c| c.to_string());
            format!("{name} {peak}/{cap}")
        })
        .collect();
    format!("  peak {}", each.join(", "))
}
