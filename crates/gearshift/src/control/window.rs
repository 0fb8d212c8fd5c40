//! Measurement windows: what the pipeline did between two reads, as the
//! tuner's [`Window`].
//!
//! Reading changes nothing in the stats: each [`WindowReader`] keeps the
//! cumulative values it saw last (counters, a copy of the latency
//! histogram, its place in the windowed maxima) and reports the
//! differences. So a controller and a metrics exporter, or one controller
//! per budget, each read their own windows of the same stages.

use std::sync::Arc;

use tokio::time::Instant;

use std::time::Duration;

use crate::control::PipelineHandle;
use crate::control::budget::Budget;
use crate::control::shared::Shared;
use crate::error::ErrorKind;
use crate::stats::counters::{StageKind, StageStats};
use crate::stats::latency::{LatencyDelta, Percentiles};
use crate::stats::window::{MaxReader, MinReader};
use crate::tuner::Window;

/// Reads [`Window`]s of a running pipeline: the first IO stage and the CPU
/// stage after it, as the tuner sees them. Each reader's windows follow on
/// from its own previous read; readers do not disturb each other.
#[derive(Debug)]
pub struct WindowReader {
    shared: Arc<Shared>,
    at: Instant,
    io_index: Option<usize>,
    cpu_index: Option<usize>,
    io: Option<IoMark>,
    cpu: Option<CpuMark>,
}

/// What a reader saw of an IO stage at its last read.
#[derive(Debug)]
struct IoMark {
    stage: Arc<StageStats>,
    latency: LatencyDelta,
    peak: MaxReader,
    /// Permits in use at the last read: the level the next window's peak
    /// starts from.
    in_use: usize,
    retry_after: MaxReader,
    /// Time of the calls that ended, and of all calls including the part
    /// run of those under way (nanoseconds).
    busy: u64,
    in_flight: u64,
    idle: u64,
    blocked: u64,
    throttled: u64,
    timeouts: u64,
    errors: u64,
    /// The stage's budget and the time it had spent paused at the last
    /// read (nanoseconds; a pause still ahead is not spent yet).
    budget: Option<(Arc<Budget>, u64)>,
}

/// What a reader saw of a CPU stage at its last read.
#[derive(Debug)]
struct CpuMark {
    stage: Arc<StageStats>,
    queue_min: MinReader,
    items: u64,
    busy: u64,
}

impl WindowReader {
    /// A reader of `handle`'s pipeline (its first IO stage and the CPU
    /// stage after it) whose first window starts now.
    pub fn new(handle: &PipelineHandle) -> Self {
        let stages = handle.shared.stages();
        let io = stages.iter().position(|s| s.kind == StageKind::Io);
        let cpu = io.and_then(|i| (i..stages.len()).find(|&c| stages[c].kind == StageKind::Cpu));
        Self::of(Arc::clone(&handle.shared), io, cpu)
    }

    /// A reader of IO stage `io` and CPU stage `cpu`, by index.
    pub(crate) fn of(shared: Arc<Shared>, io: Option<usize>, cpu: Option<usize>) -> Self {
        let now = Instant::now();
        let stages = shared.stages();
        let io_mark = io.map(|i| {
            let budget = shared.stage_apis.get(i).cloned().flatten();
            IoMark::new(Arc::clone(&stages[i]), budget, now)
        });
        let cpu_mark = cpu.map(|c| CpuMark::new(Arc::clone(&stages[c]), now));
        WindowReader {
            shared,
            at: now,
            io_index: io,
            cpu_index: cpu,
            io: io_mark,
            cpu: cpu_mark,
        }
    }

    /// What happened since the previous read (or since the reader was made).
    pub fn read(&mut self) -> Window {
        let now = Instant::now();
        let elapsed = now - self.at;
        self.at = now;
        let live = self.shared.settings.borrow().clone();
        let mut w = Window {
            elapsed,
            cores: live.defaults.cores,
            agents: self.io_index.map_or(0, |i| live.agents(i)),
            api_permits: self
                .io
                .as_ref()
                .map_or(0, |io| io.stage.gauges.concurrency.get().permits),
            workers: self
                .cpu_index
                .map_or(live.defaults.workers, |c| live.workers(c)),
            max_workers: self.shared.pool_threads,
            ..Window::default()
        };
        let secs = elapsed.as_secs_f64().max(1e-9);
        if let Some(io) = &mut self.io {
            io.read(&mut w, secs, now);
        }
        if let Some(cpu) = &mut self.cpu {
            cpu.read(&mut w, secs, now);
        }
        w
    }
}

/// Failed attempts other than throttling and timeouts.
fn other_errors(s: &StageStats) -> u64 {
    ErrorKind::ALL
        .iter()
        .filter(|k| !matches!(k, ErrorKind::RateLimited | ErrorKind::Timeout))
        .map(|k| s.errors_of(*k))
        .sum()
}

fn busy(s: &StageStats) -> u64 {
    s.total(&s.busy_nanos, |a| &a.api_nanos)
}

/// The wall time `budget` has spent paused by `now` (nanoseconds): what
/// its pauses added, less the part of the current one still ahead.
fn paused_by(budget: &Budget, now: Instant) -> u64 {
    let ahead = budget
        .pause
        .until()
        .map_or(0, |until| until.saturating_duration_since(now).as_nanos());
    budget
        .stats
        .paused
        .get()
        .saturating_sub(u64::try_from(ahead).unwrap_or(u64::MAX))
}

fn idle(s: &StageStats) -> u64 {
    s.total(&s.blocked_get_nanos, |a| &a.idle_nanos)
}

fn blocked(s: &StageStats) -> u64 {
    s.total(&s.blocked_put_nanos, |a| &a.blocked_put_nanos)
}

impl IoMark {
    fn new(stage: Arc<StageStats>, budget: Option<Arc<Budget>>, now: Instant) -> Self {
        IoMark {
            budget: budget.map(|b| {
                let spent = paused_by(&b, now);
                (b, spent)
            }),
            latency: LatencyDelta::new(&stage.latency),
            peak: stage.gauges.peak_in_use.reader(now),
            in_use: stage.gauges.concurrency.get().in_use,
            retry_after: stage.retry_after_ms.reader(now),
            busy: busy(&stage),
            in_flight: stage.call_time(now),
            idle: idle(&stage),
            blocked: blocked(&stage),
            throttled: stage.errors_of(ErrorKind::RateLimited),
            timeouts: stage.errors_of(ErrorKind::Timeout),
            errors: other_errors(&stage),
            stage,
        }
    }

    fn read(&mut self, w: &mut Window, secs: f64, now: Instant) {
        let s = Arc::clone(&self.stage);
        let p = Percentiles::of(self.latency.read(&s.latency));
        w.io_completions = p.count;
        if p.count > 0 {
            (w.latency_p50, w.latency_p90, w.latency_min) = (Some(p.p50), Some(p.p90), Some(p.min));
            w.latency_mean = Some(p.mean);
        }
        if let Some((budget, mark)) = &mut self.budget {
            // A pause is counted in the windows it spans, not all in the
            // one it began in: the windows inside it must show it.
            let paused = Duration::from_nanos(delta(mark, paused_by(budget, now)));
            w.paused = paused.min(w.elapsed);
        }
        let c = s.gauges.concurrency.get();
        w.agents = c.alive.max(1);
        let recorded = self.peak.read(&s.gauges.peak_in_use, now).unwrap_or(0) as usize;
        w.peak_in_flight = recorded.max(self.in_use);
        self.in_use = c.in_use;
        let agent_secs = secs * w.agents as f64;
        w.mean_in_flight = delta(&mut self.in_flight, s.call_time(now)) as f64 / 1e9 / secs;
        w.mean_in_flight_ended = Some(delta(&mut self.busy, busy(&s)) as f64 / 1e9 / secs);
        w.agents_idle = fraction(delta(&mut self.idle, idle(&s)), agent_secs);
        w.agents_blocked = fraction(delta(&mut self.blocked, blocked(&s)), agent_secs);
        w.throttled = delta(&mut self.throttled, s.errors_of(ErrorKind::RateLimited));
        w.timeouts = delta(&mut self.timeouts, s.errors_of(ErrorKind::Timeout));
        w.errors = delta(&mut self.errors, other_errors(&s));
        w.retry_after = self
            .retry_after
            .read(&s.retry_after_ms, now)
            .filter(|ms| *ms > 0)
            .map(|ms| Duration::from_millis(u64::from(ms)));
    }
}

impl CpuMark {
    fn new(stage: Arc<StageStats>, now: Instant) -> Self {
        CpuMark {
            queue_min: stage.queue_min.reader(now),
            items: stage.items_out.get() + stage.failed.get(),
            busy: stage.busy_nanos.get(),
            stage,
        }
    }

    fn read(&mut self, w: &mut Window, secs: f64, now: Instant) {
        let s = &self.stage;
        w.cpu_items = delta(&mut self.items, s.items_out.get() + s.failed.get());
        let busy = delta(&mut self.busy, s.busy_nanos.get()) as f64 / 1e9;
        w.workers_idle = (1.0 - busy / (secs * w.workers.max(1) as f64)).clamp(0.0, 1.0);
        w.queue_min = self
            .queue_min
            .read(&s.queue_min, now)
            .map_or_else(|| s.gauges.queue.get(), |m| m as usize);
        w.queue_capacity = s.gauges.queue_capacity;
    }
}

/// Nanoseconds spent, as a fraction (at most 1) of `secs` of capacity.
fn fraction(nanos: u64, secs: f64) -> f64 {
    (nanos as f64 / 1e9 / secs).min(1.0)
}

fn delta(mark: &mut u64, now: u64) -> u64 {
    let d = now.saturating_sub(*mark);
    *mark = now;
    d
}
