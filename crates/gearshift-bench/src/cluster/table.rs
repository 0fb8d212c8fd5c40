//! The table `gearshift-bench cluster` prints.

use std::fmt::Write as _;

use super::Row;

/// One line per row, with the API's limit and the targets' inputs.
pub fn render(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>5} {:>7} {:>8} {:>4} {:>4} {:>7} {:>6} {:>5} {:>10} {:>8} {:>6} {:>6} {:>6} {:>9} {:>7}",
        "procs",
        "items",
        "recorded",
        "lost",
        "dup",
        "redeliv",
        "failed",
        "429s",
        "peak/K",
        "items/s",
        "limit",
        "frac",
        "killed",
        "redeliv_s",
        "broker"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:>5} {:>7} {:>8} {:>4} {:>4} {:>7} {:>6} {:>5} {:>10} {:>8.0} {:>6.0} {:>6.2} {:>6} {:>9} {:>7}",
            r.processes,
            r.items,
            r.recorded,
            r.lost,
            r.duplicated,
            r.redelivered,
            r.failed,
            r.api_429,
            format!("{}/{}", r.api_peak_in_flight, r.api_capacity),
            r.items_per_s,
            r.limit_per_s,
            r.fraction_of_limit,
            r.killed,
            r.redelivery_s.map_or("-".into(), |s| format!("{s:.2}")),
            if r.broker_restarted { "restart" } else { "-" },
        );
    }
    if let Some(r) = rows.first() {
        let _ = writeln!(
            out,
            "ack_wait {:.1} s; API calls {} for {} items; {}",
            r.ack_wait_s,
            rows.iter().map(|r| r.api_calls).sum::<u64>(),
            rows.iter().map(|r| r.items).sum::<u64>(),
            if rows.iter().any(|r| r.timed_out) {
                "SOME ROWS TIMED OUT"
            } else {
                "every row finished"
            }
        );
    }
    out
}
