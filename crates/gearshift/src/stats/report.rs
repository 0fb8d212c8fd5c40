//! [`Report`]: counts, throughput, latency percentiles and per-stage,
//! per-agent figures, live (`PipelineHandle::snapshot`) or final (`join`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::api::ApiReport;
use super::counters::{AgentStats, StageKind, StageStats};
use super::latency::Percentiles;
use crate::error::ErrorKind;

/// Everything measured about a run so far.
///
/// Printed (`{report}`), it is a summary line, the item latency, the failures
/// by kind, then a table of stages and, when the stages draw on API budgets,
/// a table of APIs:
///
/// ```text
/// running in 2.31 s: 1000 ok, 0 failed, 0 cancelled, 432.9 items/s
/// item latency ms: p50 21.30  p90 24.10  p99 30.20  max 41.00
/// stage        kind       in      out  failed retries  agents workers permits in-flight  busy  p50 ms  p99 ms      queue
/// fetch        io       1000     1000       0       3    8->4       -       4         4   91%   20.10   25.00     0/1024
/// parse        cpu      1000     1000       0       0       -       2       4         1   48%    1.00    2.10     3/1024
/// api                ok attempts throttled timeouts errors in-flight  peak limit paused s  p50 ms  p99 ms
/// search           1000     1003         3        0      3         4     8     8     2.00   20.10   25.00
/// ```
///
/// | stage column | meaning (field of [`StageReport`]) |
/// |--------------|------------------------------------|
/// | `stage`      | the stage's name (`name`) |
/// | `kind`       | `io` (async agents calling an API) or `cpu` (workers on the pool) |
/// | `in`         | items taken from the stage's input (`items_in`) |
/// | `out`        | items passed on to the next stage or to the outcomes (`items_out`) |
/// | `failed`     | items this stage ended as `Failed` (`failed`) |
/// | `retries`    | calls retried (IO; `retries`) |
/// | `agents`     | IO: agents alive now (`concurrency`); `8->4` while 8 are alive and 4 are asked for (`concurrency_target`): a resize under way, or agents leaving as the input ends. A finished report shows the agents asked for. `-` for a CPU stage |
/// | `workers`    | CPU: workers asked for (`concurrency`). `-` for an IO stage |
/// | `permits`    | IO: API permits, the cap on calls in flight; CPU: batch slots, 2 per worker (`permits`) |
/// | `in-flight`  | IO: calls in flight now; CPU: batch slots taken now, by batches queued, running or being passed on (`permits_in_use`) |
/// | `busy`       | the share of the capacity the stage had that it used, over the run: API time over agent-time alive (IO), batch time over worker-time (CPU); never above 100% (`busy_fraction`) |
/// | `p50 ms`, `p99 ms` | per-attempt latency (IO) or per-item run time (CPU), over the run (`latency`) |
/// | `queue`      | items waiting in the stage's input now / the input's capacity (`queue_len` / `queue_capacity`) |
///
/// | api column   | meaning (field of [`ApiReport`](crate::stats::ApiReport)) |
/// |--------------|------------------------------------|
/// | `api`        | the budget's name (`name`) |
/// | `ok`         | calls answered successfully (`calls_ok`) |
/// | `attempts`   | calls made, retries included (`attempts`) |
/// | `throttled`  | attempts answered 429 or 503 (`throttled`) |
/// | `timeouts`   | attempts that timed out (`timeouts`) |
/// | `errors`     | failed attempts of any kind, the two above included (`errors()`) |
/// | `in-flight`  | calls in flight now, over every stage drawing on the budget (`in_flight`) |
/// | `peak`       | most calls in flight at once over the last minute (`peak_in_flight`) |
/// | `limit`      | the budget's cap on calls in flight; `-`: none beyond the stages' agents (`max_in_flight`) |
/// | `paused s`   | seconds the budget was paused by `Retry-After` over the run (`paused`) |
/// | `p50 ms`, `p99 ms` | latency of successful calls, over the run (`latency`) |
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Whether every item has its outcome (the report of `join`).
    pub finished: bool,
    /// Time since the pipeline started.
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::stats::secs::secs"))]
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
    /// One entry per API budget the stages draw on, in stage order: the
    /// budget's own figures, which count the calls of every pipeline that
    /// draws on it.
    pub apis: Vec<ApiReport>,
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
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
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
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::stats::secs::secs"))]
    pub blocked_put: Duration,
    /// Time spent waiting for input, summed over agents (IO) or the batcher (CPU).
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::stats::secs::secs"))]
    pub blocked_get: Duration,
    /// Fraction of the capacity the stage had that it used, over the run:
    /// time in API calls over agent-time alive (IO), time running batches
    /// over worker-time (CPU). The capacity is integrated over time, so
    /// after a resize it counts the agents or workers there were then: the
    /// fraction is never above 1.
    pub busy_fraction: f64,
    /// Agent-time (IO) or worker-time (CPU) the stage had over the run:
    /// the denominator of [`busy_fraction`](Self::busy_fraction).
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::stats::secs::secs"))]
    pub capacity_provided: Duration,
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
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
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
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::stats::secs::secs"))]
    pub api_time: Duration,
    /// Time blocked on a full output channel.
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::stats::secs::secs"))]
    pub blocked_put: Duration,
    /// Time waiting for input.
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::stats::secs::secs"))]
    pub idle: Duration,
    /// Whether it has retired after a shrink.
    pub retired: bool,
}

/// A tuner decision, as recorded.
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[derive(Debug, Clone)]
pub struct TunerDecision {
    /// When, since the pipeline started.
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::stats::secs::secs"))]
    pub at: Duration,
    /// Which tuner.
    pub tuner: String,
    /// The API budget it controls.
    pub api: String,
    /// Agents of the budget's first stage after the decision.
    pub agents: usize,
    /// The budget's calls in flight allowed after the decision.
    pub api_permits: usize,
    /// Workers after the decision.
    pub workers: usize,
    /// Why, with the numbers behind it.
    pub reason: String,
}

/// The run-wide figures a report starts from, read by the caller in the
/// order that keeps them consistent (outcomes before items taken).
#[derive(Debug, Clone, Default)]
pub(crate) struct Tally {
    pub(crate) taken: u64,
    pub(crate) ok: u64,
    pub(crate) failed: u64,
    pub(crate) cancelled: u64,
    pub(crate) failures_by_kind: BTreeMap<ErrorKind, u64>,
}

/// Everything [`Report::build`] reads: plain values and the stages' stats.
#[derive(Debug, Default)]
pub(crate) struct ReportInput<'a> {
    pub(crate) finished: bool,
    pub(crate) elapsed: Duration,
    pub(crate) tally: Tally,
    /// End-to-end latency of finished items.
    pub(crate) latency: Percentiles,
    pub(crate) stages: &'a [Arc<StageStats>],
    pub(crate) apis: Vec<ApiReport>,
    pub(crate) decisions: Vec<TunerDecision>,
}

impl Report {
    pub(crate) fn build(input: ReportInput<'_>) -> Report {
        let ReportInput {
            finished,
            elapsed,
            tally: t,
            latency,
            stages,
            apis,
            decisions,
        } = input;
        Report {
            finished,
            elapsed,
            taken: t.taken,
            ok: t.ok,
            failed: t.failed,
            cancelled: t.cancelled,
            failures_by_kind: t.failures_by_kind,
            items_per_s: (t.ok + t.failed + t.cancelled) as f64 / elapsed.as_secs_f64().max(1e-9),
            latency,
            stages: stages.iter().map(|s| stage_report(s)).collect(),
            apis,
            decisions,
        }
    }
}

fn stage_report(s: &StageStats) -> StageReport {
    let agents: Vec<AgentReport> = s
        .agents
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|a| agent_report(a))
        .collect();
    let c = s.gauges.concurrency.get();
    let busy = Duration::from_nanos(s.total(&s.busy_nanos, |a| &a.api_nanos));
    let provided = s.capacity.provided();
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
        queue_len: s.gauges.queue.get(),
        queue_capacity: s.gauges.queue_capacity,
        attempts: s.total(&s.attempts, |a| &a.attempts),
        retries: s.retries.get(),
        errors_by_kind: s.errors_by_kind.nonzero(),
        blocked_put: Duration::from_nanos(s.total(&s.blocked_put_nanos, |a| &a.blocked_put_nanos)),
        blocked_get: Duration::from_nanos(s.total(&s.blocked_get_nanos, |a| &a.idle_nanos)),
        busy_fraction: busy_fraction(busy, provided),
        capacity_provided: provided,
        latency: s.latency.total(),
        concurrency: c.alive,
        concurrency_target: c.target,
        permits: c.permits,
        permits_in_use: c.in_use,
        agents,
        agents_retired: s.agents_retired.get(),
    }
}

/// Busy time over the capacity provided, at most 1: a batch or call that
/// outlives a shrink still ends inside the time its agent or worker was
/// counted, so only clock skew between the two reads can exceed it.
fn busy_fraction(busy: Duration, provided: Duration) -> f64 {
    if provided.is_zero() {
        return 0.0;
    }
    (busy.as_secs_f64() / provided.as_secs_f64()).min(1.0)
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
