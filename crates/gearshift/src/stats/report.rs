//! [`Report`]: counts, throughput, latency percentiles and per-stage,
//! per-agent figures, live (`PipelineHandle::snapshot`) or final (`join`).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::counters::{AgentStats, Capacity, StageKind, StageStats};
use super::latency::Percentiles;
use crate::control::shared::Shared;
use crate::error::ErrorKind;

/// Everything measured about a run so far.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Whether every item has its outcome (the report of `join`).
    pub finished: bool,
    /// Time since the pipeline started.
    pub elapsed: Duration,
    /// Items taken from the source (each numbered with an [`ItemId`](crate::ItemId)).
    /// In a finished report it equals [`outcomes`](Self::outcomes); while
    /// running, the difference is the items still inside the pipeline.
    pub taken: u64,
    /// Items that ended as `Ok`.
    pub ok: u64,
    /// Items that ended as `Failed`.
    pub failed: u64,
    /// Items that ended as `Cancelled`.
    pub cancelled: u64,
    /// Failed items by reason.
    pub failures_by_kind: BTreeMap<ErrorKind, u64>,
    /// Outcomes per second over the run.
    pub items_per_s: f64,
    /// Latency of successful items, from the moment the first stage took
    /// the item to its outcome (time queued behind the source is not
    /// counted: items from an iterator have no arrival time).
    pub latency: Percentiles,
    /// One entry per stage, in pipeline order.
    pub stages: Vec<StageReport>,
    /// The tuner's most recent decisions, oldest first.
    pub decisions: Vec<TunerDecision>,
}

impl Report {
    /// Outcomes recorded: `ok + failed + cancelled`.
    pub fn outcomes(&self) -> u64 {
        self.ok + self.failed + self.cancelled
    }

    /// `outcomes - taken`: in a finished report anything but 0 is a bug in
    /// gearshift (negative: items lost without an outcome; positive: items
    /// with more than one), and the pipeline logs it as an error. While
    /// running it is minus the items inside the pipeline.
    pub fn difference(&self) -> i64 {
        let diff = i128::from(self.outcomes()) - i128::from(self.taken);
        diff.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }
}

/// One stage's figures.
#[derive(Debug, Clone)]
pub struct StageReport {
    /// The stage's name.
    pub name: String,
    /// IO or CPU.
    pub kind: StageKind,
    /// Items taken from the input channel.
    pub items_in: u64,
    /// Items passed on.
    pub items_out: u64,
    /// Items this stage gave up on.
    pub failed: u64,
    /// Items this stage cancelled.
    pub cancelled: u64,
    /// Items taken but not yet passed on or ended.
    pub in_flight: u64,
    /// Items waiting in the input channel now.
    pub queue_len: usize,
    /// Capacity of the input channel.
    pub queue_capacity: usize,
    /// Calls made (IO), including retries; batches run (CPU).
    pub attempts: u64,
    /// Retries (IO).
    pub retries: u64,
    /// Failed attempts by reason.
    pub errors_by_kind: BTreeMap<ErrorKind, u64>,
    /// Time spent blocked on a full output channel, summed over agents/workers.
    pub blocked_put: Duration,
    /// Time spent waiting for input, summed over agents (IO) or the batcher (CPU).
    pub blocked_get: Duration,
    /// Fraction of the stage's capacity in use over the run (API time over
    /// agents x elapsed; batch time over workers x elapsed).
    pub busy_fraction: f64,
    /// Per-attempt latency (IO) or per-item run time (CPU).
    pub latency: Percentiles,
    /// Concurrency now: agents alive (IO) or workers (CPU).
    pub concurrency: usize,
    /// Concurrency asked for.
    pub concurrency_target: usize,
    /// API permits (IO), or batch slots (CPU: 2 per worker, for batches
    /// queued for the pool, running or being forwarded).
    pub permits: usize,
    /// Calls in flight (IO) or batch slots taken (CPU) now.
    pub permits_in_use: usize,
    /// Per live agent (IO stages only): the seed's agent stats, and more.
    pub agents: Vec<AgentReport>,
    /// Agents that retired after a shrink (their figures are in the stage's).
    pub agents_retired: u64,
}

/// One agent's figures.
#[derive(Debug, Clone)]
pub struct AgentReport {
    /// The agent's number within its stage.
    pub id: usize,
    /// Items it finished successfully.
    pub processed: u64,
    /// Failed attempts.
    pub errors: u64,
    /// Retries.
    pub retries: u64,
    /// Time spent in API calls.
    pub api_time: Duration,
    /// Time blocked on a full output channel.
    pub blocked_put: Duration,
    /// Time waiting for input.
    pub idle: Duration,
    /// Whether it has retired after a shrink.
    pub retired: bool,
}

/// A tuner decision, as recorded.
#[derive(Debug, Clone)]
pub struct TunerDecision {
    /// When, since the pipeline started.
    pub at: Duration,
    /// Which tuner.
    pub tuner: String,
    /// Agents after the decision.
    pub agents: usize,
    /// API permits after the decision.
    pub api_permits: usize,
    /// Workers after the decision.
    pub workers: usize,
    /// Why, with the numbers behind it.
    pub reason: String,
}

impl Report {
    pub(crate) fn build(shared: &Shared, finished: bool) -> Report {
        let elapsed = shared.started.elapsed();
        let l = &shared.ledger;
        // Outcomes first: every item is taken before it has an outcome, so
        // a live report never shows more outcomes than items taken.
        let (ok, failed, cancelled) = (l.ok.get(), l.failed.get(), l.cancelled.get());
        let taken = l.taken.get();
        let failures_by_kind = ErrorKind::ALL
            .iter()
            .zip(&l.by_kind)
            .filter(|(_, c)| c.get() > 0)
            .map(|(k, c)| (*k, c.get()))
            .collect();
        Report {
            finished,
            elapsed,
            taken,
            ok,
            failed,
            cancelled,
            failures_by_kind,
            items_per_s: (ok + failed + cancelled) as f64 / elapsed.as_secs_f64().max(1e-9),
            latency: shared.latency.total(),
            stages: shared
                .stages()
                .iter()
                .map(|s| stage_report(s, elapsed))
                .collect(),
            decisions: shared
                .decisions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .cloned()
                .collect(),
        }
    }
}

fn stage_report(s: &StageStats, elapsed: Duration) -> StageReport {
    let agents: Vec<AgentReport> = s
        .agents
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|a| agent_report(a))
        .collect();
    let (concurrency, concurrency_target, permits, permits_in_use) = match &s.capacity {
        Capacity::Io { roster, permits } => (
            roster.alive(),
            roster.target(),
            permits.size(),
            permits.in_use(),
        ),
        Capacity::Cpu { slots, workers } => {
            let workers = workers.load(std::sync::atomic::Ordering::Relaxed);
            (workers, workers, slots.size(), slots.in_use())
        }
    };
    let busy = Duration::from_nanos(s.total(&s.busy_nanos, |a| &a.api_nanos));
    // Every item is counted in before it is counted out, so reading the
    // outs first keeps `items_out + failed + cancelled <= items_in` in a
    // snapshot taken while items flow.
    let items_out = s.total(&s.items_out, |a| &a.passed);
    let (failed, cancelled) = (s.failed.get(), s.cancelled.get());
    let ended = items_out + failed + cancelled;
    let items_in = s.total(&s.items_in, |a| &a.taken);
    StageReport {
        name: s.name.to_string(),
        kind: s.kind,
        items_in,
        items_out,
        failed,
        cancelled,
        in_flight: items_in.saturating_sub(ended),
        queue_len: s.queue.get(),
        queue_capacity: s.queue_capacity,
        attempts: s.total(&s.attempts, |a| &a.attempts),
        retries: s.retries.get(),
        errors_by_kind: ErrorKind::ALL
            .iter()
            .map(|k| (*k, s.errors_of(*k)))
            .filter(|(_, n)| *n > 0)
            .collect(),
        blocked_put: Duration::from_nanos(s.total(&s.blocked_put_nanos, |a| &a.blocked_put_nanos)),
        blocked_get: Duration::from_nanos(s.total(&s.blocked_get_nanos, |a| &a.idle_nanos)),
        busy_fraction: busy.as_secs_f64()
            / (elapsed.as_secs_f64() * concurrency_target.max(1) as f64).max(1e-9),
        latency: s.latency.total(),
        concurrency,
        concurrency_target,
        permits,
        permits_in_use,
        agents,
        agents_retired: s.agents_retired.get(),
    }
}

fn agent_report(a: &AgentStats) -> AgentReport {
    AgentReport {
        id: a.id,
        processed: a.processed.get(),
        errors: a.errors.get(),
        retries: a.retries.get(),
        api_time: Duration::from_nanos(a.api_nanos.get()),
        blocked_put: Duration::from_nanos(a.blocked_put_nanos.get()),
        idle: Duration::from_nanos(a.idle_nanos.get()),
        retired: a.retired.load(Ordering::Relaxed),
    }
}

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
        writeln!(
            f,
            "{:<12} {:>4} {:>10} {:>10} {:>7} {:>7} {:>9} {:>6} {:>9} {:>9} {:>9}",
            "stage",
            "kind",
            "in",
            "out",
            "failed",
            "retries",
            "conc",
            "busy",
            "p50 ms",
            "p99 ms",
            "queue"
        )?;
        for s in &self.stages {
            writeln!(
                f,
                "{:<12} {:>4} {:>10} {:>10} {:>7} {:>7} {:>9} {:>5.0}% {:>9.2} {:>9.2} {:>9}",
                s.name,
                match s.kind {
                    StageKind::Io => "io",
                    StageKind::Cpu => "cpu",
                },
                s.items_in,
                s.items_out,
                s.failed,
                s.retries,
                format!("{}/{}", s.concurrency_target, s.permits),
                s.busy_fraction * 100.0,
                ms(s.latency.p50),
                ms(s.latency.p99),
                format!("{}/{}", s.queue_len, s.queue_capacity),
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[tokio::test]
    async fn a_finished_report_states_items_without_an_outcome() {
        let shared = Shared::new(Config::default(), tokio::runtime::Handle::current());
        shared.ledger.taken.add(20);
        shared.ledger.ok.add(12);
        shared.ledger.cancelled.add(3);
        let report = Report::build(&shared, true);
        assert_eq!((report.taken, report.outcomes()), (20, 15));
        assert_eq!(report.difference(), -5);
        let text = report.to_string();
        assert!(
            text.contains("ERROR: 20 items taken but 15 outcomes recorded"),
            "{text}"
        );
        // While items flow, the difference is what is still inside.
        assert!(!Report::build(&shared, false).to_string().contains("ERROR"));
    }
}
