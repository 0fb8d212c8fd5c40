//! The printed form of a [`Report`]: a summary, then a table of stages and
//! one of APIs. Every column is explained in the [`Report`] docs.

use std::fmt;
use std::time::Duration;

use super::api::ApiReport;
use super::counters::StageKind;
use super::report::{Report, StageReport};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} in {:.2} s: {} ok, {} failed, {} cancelled, {:.1} items/s",
            if self.finished { "finished" } else { "running" },
            self.elapsed.as_secs_f64(),
            self.ok,
            self.failed,
            self.cancelled,
            self.items_per_s
        )?;
        if self.finished && self.difference() != 0 {
            writeln!(
                f,
                "ERROR: {} items taken but {} outcomes recorded (a bug in gearshift)",
                self.taken,
                self.outcomes()
            )?;
        }
        writeln!(
            f,
            "item latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
            ms(self.latency.p50),
            ms(self.latency.p90),
            ms(self.latency.p99),
            ms(self.latency.max)
        )?;
        if !self.failures_by_kind.is_empty() {
            let kinds: Vec<String> = self
                .failures_by_kind
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            writeln!(f, "failures: {}", kinds.join(", "))?;
        }
        if !self.stages.is_empty() {
            writeln!(
                f,
                "{:<12} {:<4} {:>8} {:>8} {:>7} {:>7} {:>7} {:>7} {:>7} {:>9} {:>5} {:>7} {:>7} {:>10}",
                "stage",
                "kind",
                "in",
                "out",
                "failed",
                "retries",
                "agents",
                "workers",
                "permits",
                "in-flight",
                "busy",
                "p50 ms",
                "p99 ms",
                "queue"
            )?;
            for s in &self.stages {
                stage_row(f, s, self.finished)?;
            }
        }
        if !self.apis.is_empty() {
            writeln!(
                f,
                "{:<12} {:>8} {:>8} {:>9} {:>8} {:>6} {:>9} {:>5} {:>5} {:>8} {:>7} {:>7}",
                "api",
                "ok",
                "attempts",
                "throttled",
                "timeouts",
                "errors",
                "in-flight",
                "peak",
                "limit",
                "paused s",
                "p50 ms",
                "p99 ms"
            )?;
            for a in &self.apis {
                api_row(f, a)?;
            }
        }
        Ok(())
    }
}

/// A finished stage's agents have all left: its row shows the agents asked
/// for. A running one shows those alive, and `alive->target` while they
/// differ.
fn stage_row(f: &mut fmt::Formatter<'_>, s: &StageReport, finished: bool) -> fmt::Result {
    let resizing = |alive: usize, target: usize| {
        if finished {
            target.to_string()
        } else if alive == target {
            alive.to_string()
        } else {
            format!("{alive}->{target}")
        }
    };
    let (kind, agents, workers) = match s.kind {
        StageKind::Io => (
            "io",
            resizing(s.concurrency, s.concurrency_target),
            "-".to_owned(),
        ),
        StageKind::Cpu => ("cpu", "-".to_owned(), s.concurrency.to_string()),
    };
    writeln!(
        f,
        "{:<12} {:<4} {:>8} {:>8} {:>7} {:>7} {:>7} {:>7} {:>7} {:>9} {:>4.0}% {:>7.2} {:>7.2} {:>10}",
        s.name,
        kind,
        s.items_in,
        s.items_out,
        s.failed,
        s.retries,
        agents,
        workers,
        s.permits,
        s.permits_in_use,
        s.busy_fraction * 100.0,
        ms(s.latency.p50),
        ms(s.latency.p99),
        format!("{}/{}", s.queue_len, s.queue_capacity),
    )
}

/// A budget with no limit beyond its stages' agents shows `-` as its limit.
fn api_row(f: &mut fmt::Formatter<'_>, a: &ApiReport) -> fmt::Result {
    let limit = a.max_in_flight.map_or("-".to_owned(), |n| n.to_string());
    writeln!(
        f,
        "{:<12} {:>8} {:>8} {:>9} {:>8} {:>6} {:>9} {:>5} {:>5} {:>8.2} {:>7.2} {:>7.2}",
        a.name,
        a.calls_ok,
        a.attempts,
        a.throttled,
        a.timeouts,
        a.errors(),
        a.in_flight,
        a.peak_in_flight,
        limit,
        a.paused.as_secs_f64(),
        ms(a.latency.p50),
        ms(a.latency.p99),
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::stats::api::{ApiGauge, ApiStats};
    use crate::stats::counters::{
        Concurrency, ConcurrencyGauge, QueueLen, StageGauges, StageKind, StageStats,
    };
    use crate::stats::report::{ReportInput, Tally};

    fn stage(kind: StageKind, alive: Arc<AtomicUsize>, target: usize) -> Arc<StageStats> {
        let gauges = StageGauges {
            concurrency: ConcurrencyGauge(Box::new(move || {
                let alive = alive.load(Ordering::Relaxed);
                Concurrency {
                    alive,
                    target,
                    permits: target,
                    in_use: 1,
                }
            })),
            queue: QueueLen(Box::new(|| 3)),
            queue_capacity: 64,
            peak_in_use: Arc::default(),
        };
        Arc::new(StageStats::new("fetch".into(), kind, gauges, 2))
    }

    fn report(stages: &[Arc<StageStats>]) -> Report {
        Report::build(ReportInput {
            elapsed: Duration::from_secs(2),
            stages,
            ..ReportInput::default()
        })
    }

    #[test]
    fn a_finished_report_states_items_without_an_outcome() {
        let tally = Tally {
            taken: 20,
            ok: 12,
            cancelled: 3,
            ..Tally::default()
        };
        let input = |finished| ReportInput {
            finished,
            tally: tally.clone(),
            ..ReportInput::default()
        };
        let report = Report::build(input(true));
        assert_eq!((report.taken, report.outcomes()), (20, 15));
        assert_eq!(report.difference(), -5);
        let text = report.to_string();
        assert!(
            text.contains("ERROR: 20 items taken but 15 outcomes recorded"),
            "{text}"
        );
        // While items flow, the difference is what is still inside.
        assert!(!Report::build(input(false)).to_string().contains("ERROR"));
    }

    /// 8 agents busy for 1 s, then 4 of them retire and the other 4 are busy
    /// for 1 s more: 12 agent-seconds busy out of 12 provided. Against the
    /// agents left (4 x 2 s) it read 150%.
    #[tokio::test(start_paused = true)]
    async fn busy_is_at_most_the_capacity_provided_after_a_shrink() {
        let alive = Arc::new(AtomicUsize::new(8));
        let s = stage(StageKind::Io, Arc::clone(&alive), 4);
        let agents: Vec<_> = (0..8).map(|id| s.register_agent(id)).collect();
        tokio::time::advance(Duration::from_secs(1)).await;
        for a in &agents {
            a.api_nanos.add_time(Duration::from_secs(1));
        }
        for a in &agents[4..] {
            s.fold_agent(a, true);
        }
        alive.store(4, Ordering::Relaxed);
        tokio::time::advance(Duration::from_secs(1)).await;
        for a in &agents[..4] {
            a.api_nanos.add_time(Duration::from_secs(1));
        }
        let r = &report(std::slice::from_ref(&s)).stages[0];
        assert_eq!(r.capacity_provided, Duration::from_secs(12));
        assert!(
            (r.busy_fraction - 1.0).abs() < 1e-9,
            "busy {}",
            r.busy_fraction
        );
        // Half busy from here on: 14 of 16 agent-seconds.
        tokio::time::advance(Duration::from_secs(1)).await;
        for a in &agents[..2] {
            a.api_nanos.add_time(Duration::from_secs(1));
        }
        let r = &report(std::slice::from_ref(&s)).stages[0];
        assert!((r.busy_fraction - 14.0 / 16.0).abs() < 1e-9, "{r:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn cpu_busy_counts_the_workers_there_were() {
        let s = stage(StageKind::Cpu, Arc::new(AtomicUsize::new(2)), 2);
        s.capacity.set(8);
        tokio::time::advance(Duration::from_secs(1)).await;
        s.capacity.set(2);
        tokio::time::advance(Duration::from_secs(1)).await;
        s.busy_nanos.add_time(Duration::from_secs(5));
        let r = &report(std::slice::from_ref(&s)).stages[0];
        assert_eq!(r.capacity_provided, Duration::from_secs(10));
        assert!((r.busy_fraction - 0.5).abs() < 1e-9, "{r:?}");
    }

    #[test]
    fn tables_name_each_figure_in_its_own_column() {
        let io = stage(StageKind::Io, Arc::new(AtomicUsize::new(8)), 4);
        let cpu = stage(StageKind::Cpu, Arc::new(AtomicUsize::new(2)), 2);
        let api = ApiStats::new("search".into(), 1, Arc::default());
        api.calls_ok.add(0, 7);
        let mut r = report(&[io, cpu]);
        r.apis.push(ApiReport::build(&api, ApiGauge::default()));
        let text = r.to_string();
        let lines: Vec<&str> = text.lines().collect();
        let header = lines.iter().position(|l| l.starts_with("stage")).unwrap();
        for col in ["agents", "workers", "permits", "in-flight", "busy", "queue"] {
            assert!(lines[header].contains(col), "{text}");
        }
        let io_row: Vec<&str> = lines[header + 1].split_whitespace().collect();
        let cpu_row: Vec<&str> = lines[header + 2].split_whitespace().collect();
        // stage kind in out failed retries agents workers permits in-flight
        assert_eq!(&io_row[6..10], ["8->4", "-", "4", "1"], "{text}");
        assert_eq!(&cpu_row[6..10], ["-", "2", "2", "1"], "{text}");
        let limited = ApiGauge {
            max_in_flight: Some(8),
            ..ApiGauge::default()
        };
        r.apis.push(ApiReport::build(
            &ApiStats::new("store".into(), 1, Arc::default()),
            limited,
        ));
        let text = r.to_string();
        let lines: Vec<&str> = text.lines().collect();
        let row = |name: &str| -> Vec<&str> {
            let line = lines.iter().find(|l| l.starts_with(name)).unwrap();
            line.split_whitespace().collect()
        };
        assert_eq!(row("search")[1], "7", "{text}");
        // api ok attempts throttled timeouts errors in-flight peak limit
        assert_eq!(row("search")[8], "-", "no limit: {text}");
        assert_eq!(row("store")[8], "8", "{text}");
        assert!(lines.iter().any(|l| l.starts_with("api ")), "{text}");
    }
}
