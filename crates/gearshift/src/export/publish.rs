//! The publisher: copies a [`Report`] and the latency histograms' new
//! samples into the `metrics` recorder.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use metrics::{Label, counter, gauge, histogram};

use super::names::*;
use crate::control::budget::Budget;
use crate::control::shared::Shared;
use crate::error::ErrorKind;
use crate::stats::counters::{StageKind, StageStats};
use crate::stats::latency::LatencyDelta;
use crate::stats::{ApiReport, Report, StageReport};

/// One pipeline's publisher. Shared by the periodic task and the collector
/// (which publishes the final report before `join` returns), so its state
/// sits behind a lock taken once per publication.
#[derive(Debug, Default)]
pub(crate) struct Exporter {
    state: Mutex<State>,
}

/// What a publication needs from the previous one: each histogram's last
/// cumulative copy, and whether the final report is out.
#[derive(Debug, Default)]
struct State {
    /// Made at the first publication, when every stage is registered.
    readers: Option<Readers>,
    finished: bool,
}

#[derive(Debug)]
struct Readers {
    items: LatencyDelta,
    stages: Vec<(Arc<StageStats>, LatencyDelta)>,
    apis: Vec<(Arc<Budget>, LatencyDelta)>,
}

impl Exporter {
    /// Publishes the figures now, unless the final report is already out
    /// (a later live report must not overwrite it).
    pub(crate) fn publish_live(&self, shared: &Shared) {
        let mut state = self.lock();
        if !state.finished {
            // Read under the lock: two publications never interleave.
            let report = shared.report(false);
            publish(&mut state, shared, &report);
        }
    }

    /// Publishes the final report; nothing is published after it.
    pub(crate) fn publish_final(&self, shared: &Shared, report: &Report) {
        let mut state = self.lock();
        publish(&mut state, shared, report);
        state.finished = true;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn publish(state: &mut State, shared: &Shared, report: &Report) {
    let readers = state.readers.get_or_insert_with(|| Readers {
        items: LatencyDelta::new_with(|_| {}),
        stages: (shared.stages().into_iter())
            .map(|s| {
                let delta = LatencyDelta::new_with(|_| {});
                (s, delta)
            })
            .collect(),
        apis: (shared.budgets().into_iter())
            .map(|b| (b, LatencyDelta::new_with(|_| {})))
            .collect(),
    });
    pipeline(report);
    record(
        histogram!(ITEM_LATENCY),
        readers.items.read_with(|h| shared.latency.add_to(h)),
    );
    for s in &report.stages {
        stage(s);
    }
    for (stats, delta) in &mut readers.stages {
        let h = histogram!(STAGE_LATENCY, "stage" => stats.name.to_string());
        record(h, delta.read(&stats.latency));
    }
    for a in &report.apis {
        api(a);
    }
    for (budget, delta) in &mut readers.apis {
        let h = histogram!(API_LATENCY, "api" => budget.name.to_string());
        record(h, delta.read(&budget.stats.latency));
    }
}

fn pipeline(r: &Report) {
    counter!(ITEMS_TAKEN).absolute(r.taken);
    counter!(ITEMS_OK).absolute(r.ok);
    counter!(ITEMS_CANCELLED).absolute(r.cancelled);
    for kind in ErrorKind::ALL {
        let n = r.failures_by_kind.get(&kind).copied().unwrap_or(0);
        counter!(ITEMS_FAILED, "kind" => kind.as_str()).absolute(n);
    }
    gauge!(ITEMS_IN_FLIGHT).set(r.taken.saturating_sub(r.outcomes()) as f64);
}

fn stage(s: &StageReport) {
    let labels = [Label::new("stage", s.name.clone())];
    let l = || labels.iter();
    counter!(STAGE_IN, l()).absolute(s.items_in);
    counter!(STAGE_OUT, l()).absolute(s.items_out);
    counter!(STAGE_FAILED, l()).absolute(s.failed);
    counter!(STAGE_CANCELLED, l()).absolute(s.cancelled);
    counter!(STAGE_ATTEMPTS, l()).absolute(s.attempts);
    counter!(STAGE_RETRIES, l()).absolute(s.retries);
    for kind in ErrorKind::ALL {
        let n = s.errors_by_kind.get(&kind).copied().unwrap_or(0);
        let with_kind = vec![labels[0].clone(), Label::new("kind", kind.as_str())];
        counter!(STAGE_ERRORS, with_kind).absolute(n);
    }
    gauge!(STAGE_IN_FLIGHT, l()).set(s.in_flight as f64);
    gauge!(STAGE_QUEUE, l()).set(s.queue_len as f64);
    gauge!(STAGE_QUEUE_CAPACITY, l()).set(s.queue_capacity as f64);
    gauge!(STAGE_BLOCKED_PUT, l()).set(s.blocked_put.as_secs_f64());
    gauge!(STAGE_BLOCKED_GET, l()).set(s.blocked_get.as_secs_f64());
    gauge!(STAGE_BUSY, l()).set(s.busy_fraction);
    match s.kind {
        StageKind::Io => {
            gauge!(STAGE_AGENTS, l()).set(s.concurrency as f64);
            gauge!(STAGE_AGENTS_TARGET, l()).set(s.concurrency_target as f64);
        }
        StageKind::Cpu => gauge!(STAGE_WORKERS, l()).set(s.concurrency as f64),
    }
    gauge!(STAGE_PERMITS, l()).set(s.permits as f64);
    gauge!(STAGE_PERMITS_IN_USE, l()).set(s.permits_in_use as f64);
}

fn api(a: &ApiReport) {
    let labels = [Label::new("api", a.name.clone())];
    let l = || labels.iter();
    counter!(API_CALLS, l()).absolute(a.attempts);
    counter!(API_CALLS_OK, l()).absolute(a.calls_ok);
    counter!(API_THROTTLED, l()).absolute(a.throttled);
    counter!(API_TIMEOUTS, l()).absolute(a.timeouts);
    for kind in ErrorKind::ALL {
        let n = a.errors_by_kind.get(&kind).copied().unwrap_or(0);
        let with_kind = vec![labels[0].clone(), Label::new("kind", kind.as_str())];
        counter!(API_ERRORS, with_kind).absolute(n);
    }
    gauge!(API_IN_FLIGHT, l()).set(a.in_flight as f64);
    gauge!(API_IN_FLIGHT_PEAK, l()).set(a.peak_in_flight as f64);
    if let Some(n) = a.max_in_flight {
        gauge!(API_PERMITS, l()).set(n as f64);
    }
    if let Some(r) = a.rate_limit {
        gauge!(API_RATE_LIMIT, l()).set(r);
    }
    gauge!(API_PAUSED, l()).set(a.paused.as_secs_f64());
}

/// Records a window of samples (microseconds, 2 significant digits) as
/// seconds, one call per distinct value.
fn record(h: metrics::Histogram, window: &Histogram<u64>) {
    for v in window.iter_recorded() {
        let us = window.median_equivalent(v.value_iterated_to());
        let count = usize::try_from(v.count_at_value()).unwrap_or(usize::MAX);
        h.record_many(Duration::from_micros(us).as_secs_f64(), count);
    }
}
