//! The numbers behind a decision, written into its reason so a log line
//! says what the tuner saw, not only what it did.

use std::fmt;
use std::time::Duration;

use super::super::Window;
use super::Adaptive;
use super::signals::ms;

/// One window's measurements as the tuner read them.
#[derive(Debug, Clone)]
pub(super) struct Facts {
    /// Concurrency the window was measured at.
    pub(super) concurrency: usize,
    pub(super) workers: usize,
    io_rate: f64,
    cpu_rate: f64,
    p50: Option<Duration>,
    /// The median at this concurrency, smoothed over up to three windows.
    smoothed: Option<Duration>,
    no_load: Option<Duration>,
    queue_min: usize,
    queue_capacity: usize,
    blocked: f64,
    idle: f64,
    workers_idle: f64,
    throttled: u64,
    timeouts: u64,
    /// The usual share of attempts timing out (stalls, not overload).
    stall_share: Option<f64>,
}

impl Facts {
    pub(super) fn of(w: &Window, tuner: &Adaptive) -> Facts {
        Facts {
            concurrency: tuner.concurrency,
            workers: w.workers,
            io_rate: w.io_rate(),
            cpu_rate: w.cpu_rate(),
            p50: w.latency_p50,
            smoothed: tuner.latency.current(tuner.concurrency),
            no_load: tuner.latency.no_load(),
            queue_min: w.queue_min,
            queue_capacity: w.queue_capacity,
            blocked: w.agents_blocked,
            idle: w.agents_idle,
            workers_idle: w.workers_idle,
            throttled: w.throttled,
            timeouts: w.timeouts,
            stall_share: tuner.stall_share,
        }
    }
}

impl Facts {
    /// The same facts with the no-load latency as it is after the window.
    pub(super) fn with_no_load(mut self, no_load: Option<Duration>) -> Facts {
        self.no_load = no_load;
        self
    }
}

impl fmt::Display for Facts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "concurrency {} workers {} io {:.1}/s cpu {:.1}/s p50 {:.1} ms (smoothed {:.1}, no-load {:.1}) \
             queue_min {}/{} blocked {:.0}% idle {:.0}% workers idle {:.0}% throttled {} timeouts {}{}",
            self.concurrency,
            self.workers,
            self.io_rate,
            self.cpu_rate,
            ms(self.p50),
            ms(self.smoothed),
            ms(self.no_load),
            self.queue_min,
            self.queue_capacity,
            self.blocked * 100.0,
            self.idle * 100.0,
            self.workers_idle * 100.0,
            self.throttled,
            self.timeouts,
            match self.stall_share {
                Some(s) if s > 0.0 => format!(" (usually {:.1}%)", s * 100.0),
                _ => String::new(),
            },
        )
    }
}
