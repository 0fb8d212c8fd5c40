//! The controller task: every tick it follows the schedule, asks the tuner
//! for a decision on the last window's measurements, and logs stats. All its
//! changes go through the same validated path as the handle's, which holds
//! them off while a manual change pauses them.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::budget::Budget;
use crate::control::Schedule;
use crate::control::shared::{Shared, Source};
use crate::control::window::WindowReader;
use crate::preset::Preset;
use crate::stats::counters::StageKind;
use crate::stats::report::{Report, TunerDecision};
use crate::stats::{ms, rounded};
use crate::tuner::Window;

/// How often the schedule is checked.
const SCHEDULE_TICK: Duration = Duration::from_millis(250);

pub(crate) struct Controller {
    pub(crate) shared: Arc<Shared>,
    pub(crate) schedule: Option<Schedule>,
}

/// How often the controller looks for a budget that got a tuner.
const TUNER_SCAN: Duration = Duration::from_millis(250);

/// A budget this pipeline drives the tuner of.
struct Tuned {
    budget: Arc<Budget>,
    /// The first stage drawing on the budget, and the CPU stage after it.
    io: usize,
    cpu: Option<usize>,
    /// The tuner's own windows: other readers take theirs.
    reader: WindowReader,
    next: Instant,
}

impl Controller {
    pub(crate) async fn run(self) {
        let mut done = self.shared.report.subscribe();
        let stats_every = self.shared.defaults().stats_interval;
        let mut next_stats = stats_every.map(|d| Instant::now() + d);
        let mut next_schedule = self.schedule.as_ref().map(|_| Instant::now());
        let mut next_scan = Some(Instant::now());
        let mut scheduled: Option<Preset> = None;
        let mut tuned: Vec<Tuned> = Vec::new();
        loop {
            let wake = [next_stats, next_schedule, next_scan]
                .into_iter()
                .chain(tuned.iter().map(|t| Some(t.next)))
                .flatten()
                .min()
                .expect("the scan is always due");
            tokio::select! {
                _ = done.wait_for(|r| r.is_some()) => break,
                _ = tokio::time::sleep_until(wake) => {}
            }
            let now = Instant::now();
            if next_schedule.is_some_and(|t| t <= now) {
                next_schedule = Some(now + SCHEDULE_TICK);
                self.follow_schedule(&mut scheduled);
            }
            if next_scan.is_some_and(|t| t <= now) {
                next_scan = Some(now + TUNER_SCAN);
                self.scan(&mut tuned, now);
            }
            for t in tuned.iter_mut().filter(|t| t.next <= now) {
                let window = t.reader.read();
                // While a manual change holds, windows are measured (so the
                // next decision sees a fresh one) but not decided on.
                let held = self.shared.automatic_held() || !t.budget.controller_free();
                t.next = now
                    + if held {
                        tuner_window(&t.budget)
                    } else {
                        self.tune(t, window)
                    };
            }
            if let (Some(t), Some(every)) = (next_stats, stats_every)
                && t <= now
            {
                next_stats = Some(now + every);
                log_stats(&self.shared.report(false));
            }
        }
        for t in &tuned {
            t.budget.release_driver(self.shared.id);
        }
    }

    /// Starts driving the tuners attached since the last scan (at build
    /// time or through `ApiHandle::tune`), one pipeline per budget.
    fn scan(&self, tuned: &mut Vec<Tuned>, now: Instant) {
        tuned.retain(|t| t.budget.tuner().is_some());
        for (io, budget) in self.shared.stage_apis.iter().enumerate() {
            let Some(budget) = budget else { continue };
            if tuned.iter().any(|t| Arc::ptr_eq(&t.budget, budget))
                || budget.tuner().is_none()
                || !budget.claim_driver(self.shared.id)
            {
                continue;
            }
            let stages = self.shared.stages();
            let cpu = (io..stages.len()).find(|&i| stages[i].kind == StageKind::Cpu);
            tuned.push(Tuned {
                budget: Arc::clone(budget),
                io,
                cpu,
                reader: WindowReader::of(Arc::clone(&self.shared), Some(io), cpu),
                next: now + tuner_window(budget),
            });
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
            match self.shared.apply_preset(Source::Schedule, preset) {
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

    /// Asks a budget's tuner and applies its decision: agents to every
    /// stage drawing on the budget, calls in flight to the budget, workers
    /// to the CPU stage after its first stage. Returns the next window.
    fn tune(&self, t: &Tuned, window: Window) -> Duration {
        let (decision, name) = {
            let mut tuner = t.budget.tuner();
            let Some(attached) = tuner.as_mut() else {
                return TUNER_SCAN;
            };
            let tuner = &mut attached.tuner;
            (tuner.decide(&window), tuner.name().to_owned())
        };
        let next = tuner_window(&t.budget);
        if !decision.changes_anything() {
            tracing::trace!(api = %t.budget.name, tuner = %name, reason = %decision.reason, "tuner holds");
            return next;
        }
        let pool = self.shared.pool_threads;
        #[cfg(feature = "metrics")]
        let before = self.limits(t);
        let applied = self.shared.update(Source::Tuner, |live| {
            for (i, api) in self.shared.stage_apis.iter().enumerate() {
                if let (Some(a), Some(api)) = (decision.agents, api)
                    && Arc::ptr_eq(api, &t.budget)
                {
                    live.tuned[i].agents = Some(a);
                }
            }
            if let (Some(w), Some(cpu)) = (decision.workers, t.cpu) {
                live.tuned[cpu].workers = Some(w.min(pool));
            }
        });
        let applied = applied.and_then(|done| match decision.api_permits {
            Some(p) if done => t
                .budget
                .update(|s| s.max_in_flight = Some(p))
                .map(|()| true),
            _ => Ok(done),
        });
        let live = self.shared.settings.borrow().clone();
        let agents = live.agents(t.io);
        let api_permits = t.budget.permits.size();
        let workers = t.cpu.map_or(0, |c| live.workers(c));
        match applied {
            Ok(true) => {
                tracing::info!(
                    api = %t.budget.name,
                    tuner = %name,
                    agents,
                    api_permits,
                    workers,
                    io_rate = rounded(window.io_rate(), 1),
                    cpu_rate = rounded(window.cpu_rate(), 1),
                    latency_p50_ms = window.latency_p50.map(ms),
                    queue_min = window.queue_min,
                    reason = %decision.reason,
                    "tuner decision"
                );
                #[cfg(feature = "metrics")]
                crate::export::decision(&t.budget.name, before, self.limits(t));
                self.shared.record_decision(TunerDecision {
                    at: self.shared.started.elapsed(),
                    tuner: name,
                    api: t.budget.name.to_string(),
                    agents,
                    api_permits,
                    workers,
                    reason: decision.reason,
                });
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(api = %t.budget.name, tuner = %name, error = %e, "tuner decision refused")
            }
        }
        next
    }

    /// The limits a decision of `t`'s tuner sets, as they are now.
    #[cfg(feature = "metrics")]
    fn limits(&self, t: &Tuned) -> crate::export::Limits {
        let live = self.shared.settings.borrow();
        crate::export::Limits {
            api_permits: t.budget.permits.size(),
            agents: live.agents(t.io),
            workers: t.cpu.map_or(0, |c| live.workers(c)),
        }
    }
}

/// A budget's tuner's window, within sane bounds.
fn tuner_window(budget: &Budget) -> Duration {
    budget.tuner().as_ref().map_or(TUNER_SCAN, |a| {
        a.tuner
            .window()
            .clamp(Duration::from_millis(10), Duration::from_secs(60))
    })
}

/// One `tracing` event per stage and per agent: the seed's `_log_agent_stats`.
fn log_stats(r: &Report) {
    tracing::info!(
        ok = r.ok,
        failed = r.failed,
        cancelled = r.cancelled,
        items_per_s = rounded(r.items_per_s, 1),
        p50_ms = ms(r.latency.p50),
        p99_ms = ms(r.latency.p99),
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
            busy = rounded(s.busy_fraction, 3),
            blocked_put_ms = s.blocked_put.as_millis() as u64,
            blocked_get_ms = s.blocked_get.as_millis() as u64,
            p50_ms = ms(s.latency.p50),
            p90_ms = ms(s.latency.p90),
            p99_ms = ms(s.latency.p99),
            "stage stats"
        );
        for a in s.agents.iter().filter(|a| !a.retired) {
            tracing::debug!(
                stage = %s.name,
                agent = a.id,
                processed = a.processed,
                errors = a.errors,
                retries = a.retries,
                api_time_s = rounded(a.api_time.as_secs_f64(), 3),
                blocked_put_s = rounded(a.blocked_put.as_secs_f64(), 3),
                "agent stats"
            );
        }
    }
}
