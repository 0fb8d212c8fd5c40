//! The controller task: every tick it follows the schedule, asks the tuner
//! for a decision on the last window's measurements, and logs stats. All its
//! changes go through the same validated path as the handle's, which holds
//! them off while a manual change pauses them.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use tokio::time::Instant;

use crate::config::Agents;
use crate::control::Schedule;
use crate::control::shared::{Shared, Source};
use crate::error::ErrorKind;
use crate::preset::Preset;
use crate::stats::counters::{Capacity, StageKind};
use crate::stats::latency::{Percentiles, new_histogram};
use crate::stats::report::{Report, TunerDecision};
use crate::tuner::{Tuner, Window};

/// How often the schedule is checked.
const SCHEDULE_TICK: Duration = Duration::from_millis(250);

pub(crate) struct Controller {
    pub(crate) shared: Arc<Shared>,
    pub(crate) tuner: Option<Box<dyn Tuner>>,
    pub(crate) schedule: Option<Schedule>,
}

/// Counter values at the start of a window.
#[derive(Default)]
struct Mark {
    at: Option<Instant>,
    cpu_items: u64,
    io_busy: u64,
    io_idle: u64,
    io_blocked: u64,
    cpu_busy: u64,
    throttled: u64,
    timeouts: u64,
    errors: u64,
}

impl Controller {
    pub(crate) async fn run(mut self) {
        let mut done = self.shared.report.subscribe();
        let stats_every = self.shared.config.borrow().stats_interval;
        let mut next_stats = stats_every.map(|d| Instant::now() + d);
        let mut next_tune = self.tuner.as_ref().map(|t| Instant::now() + t.window());
        let mut next_schedule = self.schedule.as_ref().map(|_| Instant::now());
        let mut scheduled: Option<Preset> = None;
        let mut mark = Mark::default();
        let mut window_hist = new_histogram();
        loop {
            let Some(wake) = [next_stats, next_tune, next_schedule]
                .into_iter()
                .flatten()
                .min()
            else {
                return;
            };
            tokio::select! {
                _ = done.wait_for(|r| r.is_some()) => return,
                _ = tokio::time::sleep_until(wake) => {}
            }
            let now = Instant::now();
            if next_schedule.is_some_and(|t| t <= now) {
                next_schedule = Some(now + SCHEDULE_TICK);
                self.follow_schedule(&mut scheduled);
            }
            if next_tune.is_some_and(|t| t <= now) {
                let window = self.measure(&mut mark, &mut window_hist);
                // While a manual change holds, windows are measured (so the
                // next decision sees a fresh one) but not decided on.
                let next = if self.shared.automatic_held() {
                    self.tuner_window()
                } else {
                    self.tune(window)
                };
                next_tune = Some(now + next);
            }
            if let (Some(t), Some(every)) = (next_stats, stats_every)
                && t <= now
            {
                next_stats = Some(now + every);
                log_stats(&Report::build(&self.shared, false));
            }
        }
    }

    fn follow_schedule(&self, current: &mut Option<Preset>) {
        let Some(schedule) = &self.schedule else {
            return;
        };
        if self.shared.automatic_held() {
            // Forget what was applied: on resume, the scheduled preset applies again.
            *current = None;
            return;
        }
        let want = schedule.preset_at(self.shared.started.elapsed(), SystemTime::now());
        if let Some(preset) = want
            && want != *current
        {
            match self.shared.update(Source::Schedule, |c| preset.apply_to(c)) {
                Ok(true) => {
                    *current = want;
                    tracing::info!(%preset, "schedule switched preset");
                }
                Ok(false) => {}
                Err(e) => {
                    *current = want;
                    tracing::warn!(%preset, error = %e, "schedule could not switch preset");
                }
            }
        }
    }

    /// Asks the tuner and applies its decision; returns the next window length.
    fn tune(&mut self, window: Window) -> Duration {
        let Some(tuner) = self.tuner.as_mut() else {
            return Duration::from_secs(1);
        };
        let decision = tuner.decide(&window);
        let name = tuner.name().to_owned();
        let next = self.tuner_window();
        if !decision.changes_anything() {
            tracing::trace!(tuner = %name, reason = %decision.reason, "tuner holds");
            return next;
        }
        let pool = self.shared.pool_threads;
        let applied = self.shared.update(Source::Tuner, |c| {
            if let Some(a) = decision.agents {
                c.agents = Agents::Total(a);
            }
            if let Some(p) = decision.api_permits {
                c.api_permits = Some(p);
            }
            if let Some(w) = decision.workers {
                c.workers = w.min(pool);
            }
        });
        let c = self.shared.config.borrow().clone();
        match applied {
            Ok(false) => {
                tracing::debug!(tuner = %name, "tuner decision held off by a manual change")
            }
            Ok(true) => {
                tracing::info!(
                    tuner = %name,
                    agents = c.total_agents(),
                    api_permits = c.total_api_permits(),
                    workers = c.workers,
                    io_rate = window.io_rate(),
                    cpu_rate = window.cpu_rate(),
                    latency_p50_ms = window.latency_p50.map(|d| d.as_secs_f64() * 1e3),
                    queue_min = window.queue_min,
                    reason = %decision.reason,
                    "tuner decision"
                );
                self.shared.record_decision(TunerDecision {
                    at: self.shared.started.elapsed(),
                    tuner: name,
                    agents: c.total_agents(),
                    api_permits: c.total_api_permits(),
                    workers: c.workers,
                    reason: decision.reason,
                });
            }
            Err(e) => tracing::warn!(tuner = %name, error = %e, "tuner decision refused"),
        }
        next
    }

    /// The tuner's window, within sane bounds.
    fn tuner_window(&self) -> Duration {
        self.tuner.as_ref().map_or(Duration::from_secs(1), |t| {
            t.window()
                .clamp(Duration::from_millis(10), Duration::from_secs(60))
        })
    }

    /// Measures the window since the last call on the first IO stage and
    /// the CPU stage after it.
    fn measure(&self, mark: &mut Mark, hist: &mut Histogram<u64>) -> Window {
        let stages = self.shared.stages();
        let io = stages.iter().position(|s| s.kind == StageKind::Io);
        let cpu = io.and_then(|i| stages[i..].iter().find(|s| s.kind == StageKind::Cpu));
        let io = io.map(|i| &stages[i]);
        let now = Instant::now();
        let elapsed = now - mark.at.unwrap_or(self.shared.started);
        mark.at = Some(now);
        let config = self.shared.config.borrow().clone();
        let mut w = Window {
            elapsed,
            cores: config.cores,
            agents: config.total_agents(),
            api_permits: config.total_api_permits(),
            workers: config.workers,
            max_workers: self.shared.pool_threads,
            ..Window::default()
        };
        let secs = elapsed.as_secs_f64().max(1e-9);
        if let Some(io) = io {
            hist.reset();
            io.latency.drain_window(hist);
            let p = Percentiles::of(hist);
            w.io_completions = p.count;
            if p.count > 0 {
                (w.latency_p50, w.latency_p90, w.latency_min) =
                    (Some(p.p50), Some(p.p90), Some(p.min));
            }
            if let Capacity::Io { roster, permits } = &io.capacity {
                w.agents = roster.alive().max(1);
                w.peak_in_flight = permits.take_peak();
            }
            let agent_secs = secs * w.agents as f64;
            w.mean_in_flight = delta(
                &mut mark.io_busy,
                io.total(&io.busy_nanos, |a| &a.api_nanos),
            ) as f64
                / 1e9
                / secs;
            w.agents_idle = fraction(
                delta(
                    &mut mark.io_idle,
                    io.total(&io.blocked_get_nanos, |a| &a.idle_nanos),
                ),
                agent_secs,
            );
            w.agents_blocked = fraction(
                delta(
                    &mut mark.io_blocked,
                    io.total(&io.blocked_put_nanos, |a| &a.blocked_put_nanos),
                ),
                agent_secs,
            );
            w.throttled = delta(&mut mark.throttled, io.errors_of(ErrorKind::RateLimited));
            w.timeouts = delta(&mut mark.timeouts, io.errors_of(ErrorKind::Timeout));
            let other: u64 = ErrorKind::ALL
                .iter()
                .filter(|k| !matches!(k, ErrorKind::RateLimited | ErrorKind::Timeout))
                .map(|k| io.errors_of(*k))
                .sum();
            w.errors = delta(&mut mark.errors, other);
            let ra = io
                .retry_after_max_nanos
                .swap(0, std::sync::atomic::Ordering::Relaxed);
            w.retry_after = (ra > 0).then(|| Duration::from_nanos(ra));
        }
        if let Some(cpu) = cpu {
            w.cpu_items = delta(&mut mark.cpu_items, cpu.items_out.get() + cpu.failed.get());
            let busy = delta(&mut mark.cpu_busy, cpu.busy_nanos.get()) as f64 / 1e9;
            w.workers_idle = (1.0 - busy / (secs * w.workers.max(1) as f64)).clamp(0.0, 1.0);
            let min = cpu
                .queue_min
                .swap(usize::MAX, std::sync::atomic::Ordering::Relaxed);
            w.queue_min = if min == usize::MAX {
                cpu.queue.get()
            } else {
                min
            };
            w.queue_capacity = cpu.queue_capacity;
        }
        w
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

/// One `tracing` event per stage and per agent: the seed's `_log_agent_stats`.
fn log_stats(r: &Report) {
    tracing::info!(
        ok = r.ok,
        failed = r.failed,
        cancelled = r.cancelled,
        items_per_s = r.items_per_s,
        p50_ms = r.latency.p50.as_secs_f64() * 1e3,
        p99_ms = r.latency.p99.as_secs_f64() * 1e3,
        "pipeline stats"
    );
    for s in &r.stages {
        tracing::info!(
            stage = %s.name,
            items_in = s.items_in,
            items_out = s.items_out,
            failed = s.failed,
            in_flight = s.in_flight,
            queue = s.queue_len,
            concurrency = s.concurrency,
            permits = s.permits,
            busy = s.busy_fraction,
            blocked_put_ms = s.blocked_put.as_millis() as u64,
            blocked_get_ms = s.blocked_get.as_millis() as u64,
            p50_ms = s.latency.p50.as_secs_f64() * 1e3,
            p90_ms = s.latency.p90.as_secs_f64() * 1e3,
            p99_ms = s.latency.p99.as_secs_f64() * 1e3,
            "stage stats"
        );
        for a in s.agents.iter().filter(|a| !a.retired) {
            tracing::debug!(
                stage = %s.name,
                agent = a.id,
                processed = a.processed,
                errors = a.errors,
                retries = a.retries,
                api_time_s = a.api_time.as_secs_f64(),
                blocked_put_s = a.blocked_put.as_secs_f64(),
                "agent stats"
            );
        }
    }
}
