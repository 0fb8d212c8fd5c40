//! The terminal table, with a legend under it that explains every column.

use std::fmt::Write;

use crate::cpu_share::CONTENTION_THRESHOLD;
use crate::repeat::{RepeatedRow, RepeatedScenario};

/// The mark of a scenario's reference row.
pub const REFERENCE_MARK: &str = "*";

/// The mark of a row measured while other processes took more than
/// [`CONTENTION_THRESHOLD`] of the machine's CPU.
pub const CONTENDED_MARK: &str = "!";

/// Every column of the table, in order: its header and what it means.
pub const COLUMNS: [(&str, &str); 10] = [
    (
        "system",
        "how the work is run: a gearshift setting or a baseline (crate README, \"Systems\"); \
         * marks the reference row",
    ),
    (
        "C",
        "concurrency: items the system lets in flight at once (agents, or the C of \
         buffer_unordered); the default controller's row shows where it starts",
    ),
    (
        "items",
        "items that ended Ok / items given, per run (the fewest Ok over the repeats)",
    ),
    (
        "items/s",
        "throughput, the median over the repeats: Ok items / time to the last outcome",
    ),
    ("min-max", "the slowest and the fastest repeat, items/s"),
    (
        "of limit",
        "median items/s as a share of the scenario's theoretical limit (on its heading \
         line): 100% is the best any system can do",
    ),
    (
        "vs gear",
        "median items/s over the reference row's (the * row): 1.00 is as fast, 0.50 half \
         as fast",
    ),
    (
        "p50 ms",
        "median item latency, from its first fetch to its outcome (median over the repeats)",
    ),
    (
        "p99 ms",
        "99th percentile item latency (median over the repeats)",
    ),
    (
        "others",
        "share of the machine's CPU that other processes took while the row ran (the most \
         over its repeats); ! when above 10%",
    ),
];

/// The table of every row of `results` (medians and spreads over the
/// repeats), the legend, and a warning if rows ran under contention.
pub fn table(results: &[RepeatedScenario]) -> String {
    let mut out = String::new();
    let repeats = results
        .iter()
        .flat_map(|r| &r.rows)
        .map(|r| r.runs.len())
        .max()
        .unwrap_or(0);
    let _ = writeln!(
        out,
        "  {:<44} {:>4} {:>9} {:>8} {:>13} {:>8} {:>7} {:>8} {:>8} {:>6}",
        COLUMNS[0].0,
        COLUMNS[1].0,
        COLUMNS[2].0,
        COLUMNS[3].0,
        COLUMNS[4].0,
        COLUMNS[5].0,
        COLUMNS[6].0,
        COLUMNS[7].0,
        COLUMNS[8].0,
        COLUMNS[9].0,
    );
    for r in results {
        let _ = writeln!(
            out,
            "{}: limit {:.0} items/s{}",
            r.scenario,
            r.limit_per_s,
            apis(r)
        );
        let reference = r.reference_items_per_s();
        for row in &r.rows {
            let _ = writeln!(out, "{}", line(r, row, reference));
        }
    }
    out.push_str(&legend(repeats, results));
    out.push_str(&contention_warning(results));
    out
}

/// One row: mark, figures, then notes (peaks, failures, accounting).
fn line(r: &RepeatedScenario, row: &RepeatedRow, reference: Option<f64>) -> String {
    let mark = if row.system() == r.reference {
        REFERENCE_MARK
    } else {
        " "
    };
    let rate = row.items_per_s();
    let ratio = reference
        .map(|x| format!("{:.2}", rate.median / x))
        .unwrap_or_else(|| "-".into());
    let first = &row.runs[0];
    let ok = row.runs.iter().map(|r| r.ok).min().unwrap_or(0);
    let others = match row.others_cpu() {
        Some(x) => format!(
            "{:.0}%{}",
            100.0 * x,
            if row.contended() { CONTENDED_MARK } else { " " }
        ),
        None => "- ".into(),
    };
    let failed: u64 = row.runs.iter().map(|r| r.failed).sum();
    let notes = match row.accounting_error() {
        Some(e) => format!("  ACCOUNTING ERROR: {e}"),
        None if failed > 0 => format!("  failed {failed}"),
        None => String::new(),
    };
    format!(
        "{mark} {:<44} {:>4} {:>9} {:>8.1} {:>13} {:>7.1}% {:>7} {:>8.2} {:>8.2} {:>6}{}{}",
        row.system(),
        first.concurrency,
        format!("{ok}/{}", first.items),
        rate.median,
        format!("{:.0}-{:.0}", rate.min, rate.max),
        100.0 * rate.median / r.limit_per_s,
        ratio,
        row.median_of(|x| x.p50_ms()),
        row.median_of(|x| x.p99_ms()),
        others,
        peaks(r, row),
        notes,
    )
}

/// The legend: every column, then the marks and the notes a row may carry.
pub fn legend(repeats: usize, results: &[RepeatedScenario]) -> String {
    let mut out = if repeats > 1 {
        format!("\nEach row ran {repeats} times (--repeat); figures are medians over them.\n")
    } else {
        "\nEach row ran once: min-max is that one run (`run --repeat N` gives a spread).\n"
            .to_owned()
    };
    for (name, what) in COLUMNS {
        let _ = writeln!(out, "  {name:<9} {what}");
    }
    let _ = writeln!(
        out,
        "  {REFERENCE_MARK:<9} the scenario's reference row: the gearshift setting `vs gear` \
         divides by"
    );
    let _ = writeln!(
        out,
        "  {CONTENDED_MARK:<9} other processes took more than {:.0}% of the machine's CPU \
         during one of the row's runs: its figures may be low",
        100.0 * CONTENTION_THRESHOLD
    );
    if results.iter().any(|r| r.apis.len() > 1) {
        let _ = writeln!(
            out,
            "  {:<9} the most calls each API had in flight at once (the server's own count) \
             / its capacity",
            "peak"
        );
    }
    out
}

/// A warning naming the rows measured under contention; empty if none.
fn contention_warning(results: &[RepeatedScenario]) -> String {
    let rows: Vec<&RepeatedRow> = results.iter().flat_map(|r| &r.rows).collect();
    let contended = rows.iter().filter(|r| r.contended()).count();
    if contended == 0 {
        return String::new();
    }
    let worst = rows
        .iter()
        .filter_map(|r| r.others_cpu())
        .fold(0.0, f64::max);
    format!(
        "\nWARNING: {contended} of {} rows ran while other processes took more than {:.0}% of \
         the machine's CPU (up to {:.0}%; marked {CONTENDED_MARK}). Their figures, and \
         comparisons with them, are not reliable: rerun on an idle machine.\n",
        rows.len(),
        100.0 * CONTENTION_THRESHOLD,
        100.0 * worst
    )
}

/// `  (API: 16 calls at once, 20 ms each)`-style note on the heading line.
fn apis(r: &RepeatedScenario) -> String {
    let caps: Vec<String> = r
        .apis
        .iter()
        .map(|(name, cap)| match cap {
            Some(c) => format!("{name} capacity {c}"),
            None => format!("{name} capacity unlimited"),
        })
        .collect();
    format!(" ({})", caps.join(", "))
}

/// `  peak fetch 16/16, upload 4/4` (peak in flight / capacity, by each
/// server's count, the most over the repeats) when the scenario has more
/// than one API; else nothing.
fn peaks(r: &RepeatedScenario, row: &RepeatedRow) -> String {
    if r.apis.len() < 2 {
        return String::new();
    }
    let each: Vec<String> = r
        .apis
        .iter()
        .map(|(name, cap)| {
            let peak = row
                .runs
                .iter()
                .filter_map(|run| run.peak_in_flight.get(name))
                .max()
                .map_or_else(|| "-".to_owned(), usize::to_string);
            let cap = cap.map_or_else(|| "unlimited".to_owned(), |c| c.to_string());
            format!("{name} {peak}/{cap}")
        })
        .collect();
    format!("  peak {}", each.join(", "))
}
