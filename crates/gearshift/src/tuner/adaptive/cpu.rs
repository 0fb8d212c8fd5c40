//! The CPU-bound regime: when the channel into the CPU stage stays full,
//! the IO stage is sized by Little's law and the cores go to workers.

use std::time::Duration;

use super::super::Window;
use super::facts::Facts;
use super::signals::{median, scale, secs};
use super::{Adaptive, Decision, Dir, Mode};

/// Channel occupancy (of capacity) that counts as full.
const FULL: f64 = 0.8;
/// Fraction of agent time blocked on the full channel that counts as full.
const BLOCKED: f64 = 0.2;
/// Worker idle time below which the CPU stage counts as saturated.
const WORKERS_BUSY: f64 = 0.1;
/// Windows whose medians are kept as the round trip a concurrency was sized
/// for (by Little's law or a throttle).
const SIZED_RTTS: usize = 5;
/// A median under this fraction of that round trip (scaled to the
/// concurrency) says the API itself got faster.
const FASTER: f64 = 0.75;

impl Adaptive {
    /// Counts windows disagreeing with the current regime and switches
    /// after `hysteresis` of them in a row.
    pub(super) fn track_regime(&mut self, full: bool) {
        if (self.mode == Mode::CpuBound) == full {
            self.streak = 0;
            return;
        }
        self.streak += 1;
        if self.streak < self.hysteresis {
            return;
        }
        self.streak = 0;
        self.mode = if full { Mode::CpuBound } else { Mode::IoBound };
        self.probe = None;
        self.prev = None;
        self.rates.clear();
        self.best_rate = 0.0;
        self.next = Dir::Up;
        self.wait = 0;
        self.backoff = 1;
    }

    /// Remembers the medians of the windows whose concurrency was set for
    /// the API's old speed by something other than its latency: a full
    /// channel (Little's law sized the IO stage for the CPU stage) or a
    /// throttle (cut, then regrowth toward the ceiling). Once the channel
    /// is no longer full and the tuner has left CpuBound, or while it is
    /// throttled, compares the smoothed median with them. Well below: the
    /// API itself got faster, and the concurrency may sit far past the new
    /// knee, where the only latency seen of the new API may be all queue
    /// (so the knee rule is blind). The hill climber's first move is then
    /// a probe down by half, whether or not the change of speed was
    /// detected (that needs 5 windows at one level and 2x with the rate,
    /// which a concurrency past the knee, or regrowth, can hide).
    ///
    /// Each remembered median is scaled by `min(1, c / its level)`: by
    /// Little's law a cut (or Little's-law shrink) to `c` lowers a queueing
    /// API's median at most in proportion unless the rate rises, so only a
    /// faster API falls below that.
    pub(super) fn faster_api(&mut self, w: &Window, full: bool) {
        let c = self.concurrency;
        if !full && self.mode != Mode::CpuBound && self.sized_rtts.len() >= 2 {
            let scaled: Vec<Duration> = self
                .sized_rtts
                .iter()
                .map(|&(level, d)| scale(d, (c as f64 / level.max(1) as f64).min(1.0)))
                .collect();
            let sized = median(&scaled);
            // The raw median too: the smoothed one still holds the old
            // API's for a window or two, and at the bench's C -> A' the
            // channel empties (cheaper CPU) a window before calls get
            // faster, so the climber had already probed up (52 -> 58).
            let now = [self.latency.current(c), w.latency_p50]
                .into_iter()
                .flatten()
                .min();
            if let Some(now) = now.filter(|&n| secs(n) < FASTER * secs(sized)) {
                self.sized_rtts.clear();
                self.halve = Some(format!(
                    "the median fell to {:.2}x the one the concurrency was sized for \
                     ({:.1} -> {:.1} ms at {c}): the API got faster",
                    secs(now) / secs(sized),
                    secs(sized) * 1e3,
                    secs(now) * 1e3
                ));
                if matches!(self.mode, Mode::Throttled | Mode::Startup) {
                    // Regrowing (or doubling) toward a level sized for the
                    // old API would walk into the new one's knee.
                    self.enter_io_bound(c);
                }
                return;
            }
        }
        if full || matches!(self.mode, Mode::CpuBound | Mode::Throttled) {
            self.remember_sized(w);
        } else {
            // The hill climber sets the concurrency now: the sized medians
            // age out one a window, so a median that falls a window late
            // (calls of the old API still ending) is still compared.
            self.sized_rtts.pop_front();
        }
    }

    /// Keeps this window's median as one measured at a concurrency sized
    /// for the API's current speed by Little's law or a throttle.
    pub(super) fn remember_sized(&mut self, w: &Window) {
        if let Some(p50) = w.latency_p50 {
            self.sized_rtts.push_back((self.concurrency, p50));
            if self.sized_rtts.len() > SIZED_RTTS {
                self.sized_rtts.pop_front();
            }
        }
    }

    /// CPU-bound: never grow; shrink to Little's law with headroom; give
    /// the CPU stage all the pool's threads when its workers are busy.
    pub(super) fn cpu_bound(&mut self, w: &Window, f: &Facts) -> Decision {
        // Little's law sizes the IO stage here, whatever the API's knee.
        self.halve = None;
        let rtt = self.latency.current(self.concurrency).or(w.latency_p50);
        let (Some(rtt), true) = (rtt, w.cpu_items > 0) else {
            return self.hold(
                f,
                "no CPU items or no round trip measured: cannot size".into(),
            );
        };
        let pool = if w.max_workers > 0 {
            w.max_workers
        } else {
            self.cores
        };
        let workers = (w.workers < pool && w.workers_idle < WORKERS_BUSY).then_some(pool);
        // With more workers the CPU stage will take more: size for that.
        let scale = match workers {
            Some(p) if w.workers > 0 => p as f64 / w.workers as f64,
            _ => 1.0,
        };
        let cpu_rate = w.cpu_rate() * scale;
        let little = (cpu_rate * secs(rtt) * self.headroom).ceil();
        let little = if little.is_finite() {
            little as usize
        } else {
            usize::MAX
        };
        let want = little.min(self.concurrency);
        let rule = format!(
            "little's law: cpu {cpu_rate:.1}/s x rtt {:.1} ms x headroom {} = {little}{}",
            secs(rtt) * 1e3,
            self.headroom,
            match workers {
                Some(p) => format!(
                    "; workers busy ({:.0}% idle): {} -> {p}",
                    w.workers_idle * 100.0,
                    w.workers
                ),
                None => String::new(),
            }
        );
        self.set(want, workers, f, rule)
    }
}

/// The CPU workers ran nearly all the window: more items from the IO stage
/// cannot leave the pipeline any faster.
pub(super) fn workers_saturated(w: &Window) -> bool {
    w.workers > 0 && w.workers_idle < WORKERS_BUSY
}

/// The channel into the CPU stage stayed nearly full, or agents spent a
/// fifth of their time blocked on it.
pub(super) fn is_full(w: &Window) -> bool {
    let queue_full = w.queue_capacity > 0 && w.queue_min as f64 >= FULL * w.queue_capacity as f64;
    queue_full || w.agents_blocked > BLOCKED
}
