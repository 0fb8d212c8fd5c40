//! Metrics export (feature `metrics`): every per-stage and per-budget figure
//! of the [`Report`](crate::Report), published through the
//! [`metrics`](https://docs.rs/metrics) facade, so that whichever recorder
//! the application installs (Prometheus, StatsD, OpenTelemetry...) sees them.
//!
//! # How it works, and why
//!
//! gearshift already counts everything on the hot path, in relaxed atomics
//! and sharded histograms that any number of readers can read (see
//! [`stats`](crate::stats)). Calling the facade there as well would put a
//! registry lookup (or a handle per agent) and a second atomic add on every
//! call; instead each pipeline publishes what it already has:
//!
//! - a task wakes every [`PUBLISH_INTERVAL`] and, on tokio's blocking
//!   pool (so that it never holds up an agent), takes a live report (as
//!   [`PipelineHandle::snapshot`](crate::PipelineHandle::snapshot) does) and
//!   sets each counter to its total ([`metrics::Counter::absolute`]) and
//!   each gauge to its value; the latency histograms' samples since the last
//!   publication (read as the difference of two cumulative copies, as the
//!   tuner's windows are) are recorded into the facade's histograms;
//! - the final report is published before
//!   [`PipelineHandle::join`](crate::PipelineHandle::join) returns, so a
//!   scrape after `join` sees every item;
//! - the controller counts each decision it applies, by direction.
//!
//! With the feature off, none of this is compiled: no task, no field, no
//! call. With it on and no recorder installed, the facade's calls do
//! nothing, once a second.
//!
//! # Names
//!
//! Prometheus conventions: counters end in `_total`, times are in seconds,
//! the stage, the API budget and the error kind are labels (`stage`, `api`,
//! `kind`, whose values are [`ErrorKind::as_str`](crate::ErrorKind::as_str)).
//! Counters of items and calls (the facade's counters are integers):
//!
//! | metric | labels | what |
//! |--------|--------|------|
//! | `gearshift_items_taken_total` | | items taken from the source |
//! | `gearshift_items_ok_total` | | items that ended `Ok` |
//! | `gearshift_items_failed_total` | `kind` | items that ended `Failed` |
//! | `gearshift_items_cancelled_total` | | items that ended `Cancelled` |
//! | `gearshift_stage_items_in_total`, `_out_total`, `_failed_total`, `_cancelled_total` | `stage` | items through each stage |
//! | `gearshift_stage_attempts_total` | `stage` | calls made, retries included (IO); batches run (CPU) |
//! | `gearshift_stage_retries_total` | `stage` | calls retried |
//! | `gearshift_stage_errors_total` | `stage`, `kind` | failed attempts |
//! | `gearshift_api_calls_total`, `gearshift_api_calls_ok_total` | `api` | calls made, calls answered successfully |
//! | `gearshift_api_throttled_total` | `api` | attempts answered 429 (or 503 with `Retry-After`) |
//! | `gearshift_api_timeouts_total` | `api` | attempts that timed out |
//! | `gearshift_api_errors_total` | `api`, `kind` | failed attempts |
//! | `gearshift_tuner_decisions_total` | `api`, `direction` | controller decisions applied: `up`, `down` (every limit that moved moved that way), `mixed`, `same`; the reason of each is in the `tuner decision` log event |
//!
//! Gauges:
//!
//! | metric | labels | what |
//! |--------|--------|------|
//! | `gearshift_items_in_flight` | | items taken without an outcome yet |
//! | `gearshift_stage_items_in_flight` | `stage` | items inside the stage |
//! | `gearshift_stage_queue_length`, `gearshift_stage_queue_capacity` | `stage` | queue occupancy of the stage's input |
//! | `gearshift_stage_blocked_put_seconds`, `gearshift_stage_blocked_get_seconds` | `stage` | time blocked on a full output / waiting for input, summed over agents or workers, since the start |
//! | `gearshift_stage_busy_ratio` | `stage` | share of the stage's capacity used over the run |
//! | `gearshift_stage_agents`, `gearshift_stage_agents_target` | `stage` | IO: agents alive, agents asked for |
//! | `gearshift_stage_workers` | `stage` | CPU: workers |
//! | `gearshift_stage_permits`, `gearshift_stage_permits_in_use` | `stage` | API permits (IO) or batch slots (CPU), and those taken |
//! | `gearshift_api_in_flight`, `gearshift_api_in_flight_peak` | `api` | calls in flight now; most at once over the last 60 s |
//! | `gearshift_api_permits` | `api` | the budget's limit on calls in flight (absent: none) |
//! | `gearshift_api_rate_limit_per_second` | `api` | the budget's rate limit (absent: none) |
//! | `gearshift_api_paused_seconds` | `api` | wall time paused by `Retry-After`, since the start |
//!
//! The three cumulative times (`blocked_*_seconds`, `paused_seconds`) only
//! grow and are counters in Prometheus' sense (take `rate()` of them), but
//! are published as gauges without `_total`: the facade's counters hold
//! integers, and whole seconds would hide the figure.
//!
//! Histograms (a Prometheus recorder renders them as summaries unless it is
//! given buckets): `gearshift_item_latency_seconds` (successful items, first
//! stage to outcome), `gearshift_stage_latency_seconds{stage}` (successful
//! calls for IO, run time per item for CPU), `gearshift_api_latency_seconds{api}`
//! (successful calls). Samples keep the stats' resolution: 2 significant
//! digits.
//!
//! # Caveats
//!
//! - Labels do not name the pipeline: two pipelines alive at once should
//!   give their stages distinct names (a budget's figures are its own and
//!   are the same whichever pipeline publishes them, but its latency
//!   samples are recorded by each pipeline drawing on it).
//! - Every latency sample is forwarded, so the recorder sees exact counts
//!   and sums. A recorder that keeps raw samples between its reads
//!   (`metrics-exporter-prometheus` does, until its upkeep, every 5 s by
//!   default) holds each sample with a timestamp meanwhile, 24 bytes: about
//!   12 MB per histogram at 100 000 items/s. Shorten its upkeep for
//!   pipelines far faster.
//! - A recorder must be installed before the pipeline spawns for the metric
//!   descriptions (`# HELP`) to reach it; the values reach any recorder
//!   installed by the next publication.

mod names;
mod publish;

use std::sync::Arc;
use std::time::Duration;

use crate::control::shared::Shared;

pub(crate) use publish::Exporter;

/// How often a running pipeline publishes its figures.
pub const PUBLISH_INTERVAL: Duration = Duration::from_secs(1);

/// Starts the task that publishes `shared`'s figures every
/// [`PUBLISH_INTERVAL`] until the pipeline has finished (the collector
/// publishes the final report).
pub(crate) fn spawn(shared: Arc<Shared>) {
    // Each spawn, not once: a recorder installed since the last spawn
    // gets the descriptions too.
    names::describe();
    let mut done = shared.report.subscribe();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PUBLISH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let finished = tokio::select! {
                _ = done.wait_for(|r| r.is_some()) => true,
                _ = tick.tick() => false,
            };
            if finished {
                break;
            }
            // CPU work (a report, histogram windows: about 2-20 ms in a
            // debug build) for the blocking pool, not a runtime worker, so
            // that it never delays an agent.
            let shared = Arc::clone(&shared);
            let publish = move || shared.export.publish_live(&shared);
            let _ = tokio::task::spawn_blocking(publish).await;
        }
    });
}

/// The limits a controller decision sets: API permits, agents, workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub(crate) api_permits: usize,
    pub(crate) agents: usize,
    pub(crate) workers: usize,
}

/// Counts an applied decision on `api` by direction.
pub(crate) fn decision(api: &str, before: Limits, after: Limits) {
    let direction = direction(before, after);
    metrics::counter!(names::TUNER_DECISIONS, "api" => api.to_owned(), "direction" => direction)
        .increment(1);
}

/// `up` when every limit that moved grew, `down` when every one shrank,
/// `mixed` when some did each, `same` when none moved.
fn direction(before: Limits, after: Limits) -> &'static str {
    let pairs = [
        (before.api_permits, after.api_permits),
        (before.agents, after.agents),
        (before.workers, after.workers),
    ];
    let up = pairs.iter().any(|(b, a)| a > b);
    let down = pairs.iter().any(|(b, a)| a < b);
    match (up, down) {
        (true, false) => "up",
        (false, true) => "down",
        (true, true) => "mixed",
        (false, false) => "same",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(api_permits: usize, agents: usize, workers: usize) -> Limits {
        Limits {
            api_permits,
            agents,
            workers,
        }
    }

    #[test]
    fn direction_is_that_of_every_limit_that_moved() {
        assert_eq!(direction(limits(8, 8, 2), limits(16, 8, 2)), "up");
        assert_eq!(direction(limits(8, 8, 2), limits(4, 4, 2)), "down");
        assert_eq!(direction(limits(8, 8, 2), limits(4, 8, 3)), "mixed");
        assert_eq!(direction(limits(8, 8, 2), limits(8, 8, 2)), "same");
    }
}
