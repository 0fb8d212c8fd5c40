//! Startup and the IO-bound hill climber: double while throughput grows,
//! then small probes up and down, kept only when they pay.

use std::time::Duration;

use super::super::{Tuner, Window};
use super::cpu::workers_saturated;
use super::facts::Facts;
use super::signals::secs;
use super::{Adaptive, Decision, Mode};

/// Startup keeps doubling while a doubling gains at least this fraction.
const STARTUP_GAIN: f64 = 0.25;
/// Startup stops when the median latency passes this multiple of no-load.
const STARTUP_INFLATION: f64 = 2.0;
/// Windows of wait after a failed probe: doubles per failure up to this,
/// or up to [`MAX_WAIT`] where windows are short.
const MAX_BACKOFF: u32 = 16;
/// The longest wait between probes that keep failing, where 16 windows are
/// less: on a sharp top every probe costs (the heavy-tailed `tail` phase:
/// 21 -> 18 loses 14%, 21 -> 24 6%), and a probe each 2 s cost 2-3%.
const MAX_WAIT: Duration = Duration::from_secs(5);
/// Each probe down kept in a row (after the first) doubles the next step,
/// at most this many times.
const MAX_DESCENT: u32 = 3;
/// Rates kept per level for the probe reference: at least this many, and
/// as many as fit in [`LEVEL_TIME`]. The last this many measure the rate's
/// spread, and a kept probe is checked once its level has this many.
const LEVEL_WINDOWS: usize = 4;
/// A level's rate, the reference its probes are judged against, is the
/// mean of its windows over this long: after a long wait the reference is
/// precise, and only the probe's own windows are noisy. The mean of its
/// last four windows, on a heavy-tailed API whose rate swings by 14% a
/// window, read 881/s for a level that ran at about 1,030/s, and a probe
/// down that lost 10% was kept against it.
const LEVEL_TIME: Duration = Duration::from_secs(3);
/// The best rate decays by this factor per window, so it cannot go stale.
const BEST_DECAY: f64 = 0.99;
/// A knee step's rate at or under this share of the best rate (times the
/// share of the concurrency the step kept): the API got slower.
const SLOWER: f64 = 0.67;
/// Median latency over no-load latency past which the API is queueing.
pub(super) const KNEE: f64 = 1.5;
/// Median latency under this multiple of no-load shows no queue at all.
const NO_QUEUE: f64 = 1.1;
/// Calls timed out within this many judged windows: some agents are held.
const STALL_MEMORY: u32 = 10;
/// Windows at a level whose latency moves the climber while calls stall,
/// once the climb that found the level is over: which agents stalls hold
/// drifts over a timeout (a second in the bench, ten windows), and one
/// window's latency followed it, the concurrency with it.
const STALL_WINDOWS: usize = 3;
/// The most windows a probe's verdict waits for, however noisy the rate:
/// as many of the shortest (100 ms) windows as fit in [`VERDICT_TIME`].
const MAX_PROBE_WINDOWS: usize = 4;
/// The most time a probe's verdict waits for.
const VERDICT_TIME: Duration = Duration::from_millis(400);
/// The weight of each new measure of the rate's spread in its average.
const NOISE_WEIGHT: f64 = 0.1;

/// A direction to probe in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dir {
    Up,
    Down,
}

/// A probe waiting for its verdict.
#[derive(Debug, Clone, Copy)]
pub(super) struct Probe {
    from: usize,
    reference: f64,
    dir: Dir,
    /// Sent by the knee rule: latency said the API was queueing.
    knee: bool,
    /// Windows the verdict waits for (see [`Adaptive::windows_needed`]),
    /// and the rates of those seen at the probed level.
    need: usize,
    seen: usize,
    rates: [f64; MAX_PROBE_WINDOWS],
}

/// A kept probe, checked once more when the level it kept has
/// [`LEVEL_WINDOWS`] windows of its own.
#[derive(Debug, Clone, Copy)]
pub(super) struct Kept {
    /// The level the probe left, and that level's rate.
    from: usize,
    from_rate: f64,
    /// The level it kept.
    level: usize,
}

impl Probe {
    /// The rates of the windows seen at the probed level.
    fn seen(&self) -> &[f64] {
        &self.rates[..self.seen]
    }

    /// Their mean.
    fn rate(&self) -> f64 {
        mean(self.seen())
    }
}

impl Adaptive {
    /// Startup: double while a doubling gains at least 25% and latency
    /// stays under 2x no-load; then settle at the best level seen.
    pub(super) fn startup(&mut self, w: &Window, f: &Facts, changed: bool) -> Decision {
        // The previous level's rate is kept: once the limit binds again,
        // this level is judged against it. Forgetting it made the next
        // window a blind "first window" doubling (64 -> 128 on a 32-call
        // API, after the window right after a doubling, whose new calls had
        // not finished yet, looked not binding).
        if let Some(why) = self.not_binding(w) {
            return self.hold(f, format!("{why}: no doubling"));
        }
        let c = self.concurrency;
        let rate = w.io_rate();
        if self.prev.is_none() {
            self.tried.clear();
        }
        self.tried.push((c, rate));
        let inflation = self.latency.inflation(c);
        let grew = match self.prev {
            Some((pc, pr)) if pc < c => Some(rate >= pr * (1.0 + STARTUP_GAIN)),
            Some(_) => Some(false),
            None => None,
        };
        let room = c < self.cap();
        if grew != Some(false) && room && inflation < STARTUP_INFLATION {
            self.prev = Some((c, rate));
            let why = match (grew, changed) {
                (_, true) => "the API changed speed".to_string(),
                (None, _) => "first window".to_string(),
                (Some(_), _) => "a doubling gained >= 25%".to_string(),
            };
            return self.set(c.saturating_mul(2), None, f, format!("{why}: double {c}"));
        }
        let (best, best_rate) = self.best_tried();
        // BBR's drain: the calls in flight that rate needs without queueing
        // (rate x no-load latency), between the level below and the best.
        let below = self.tried.iter().map(|t| t.0).filter(|&l| l < best).max();
        let no_load = self.latency.no_load().map_or(0.0, secs);
        let bdp = (best_rate * no_load * (1.0 + self.dead_band)).ceil();
        let target = match below {
            Some(b) if bdp.is_finite() => (bdp as usize).clamp(b, best),
            _ => best,
        };
        self.tried.clear();
        self.enter_io_bound(target);
        self.wait = 1;
        let why = if !room {
            "at the upper bound".to_string()
        } else if inflation >= STARTUP_INFLATION {
            format!("latency {inflation:.2}x no-load")
        } else {
            let before = self.prev.map_or(0.0, |p| p.1);
            format!("a doubling gained < 25% ({before:.1} -> {rate:.1}/s)")
        };
        self.prev = None;
        self.set(
            target,
            None,
            f,
            format!(
                "{why}: startup ends; best level {best} ({best_rate:.1}/s), \
                 rate x no-load latency {bdp:.0}: {target}"
            ),
        )
    }

    /// IO-bound: judge the last probe, or wait, or probe a small step up or
    /// down (down when latency says the API is queueing with no gain).
    pub(super) fn io_bound(&mut self, w: &Window, f: &Facts) -> Decision {
        let c = self.concurrency;
        let rate = w.io_rate();
        if let Some(p) = self.probe.take() {
            return self.judge(p, w, f);
        }
        self.trend = 0;
        if self.level != c {
            self.level = c;
            self.rates.clear();
        }
        self.rates.push(rate);
        let keep = self.level_windows();
        if self.rates.len() > keep {
            self.rates.drain(..self.rates.len() - keep);
        }
        if self.rates.len() >= 3 {
            // A few windows' spread is itself noisy (4 windows of a 14%
            // spread read 7%): average its square over many.
            let last = &self.rates[self.rates.len().saturating_sub(LEVEL_WINDOWS)..];
            let spread = relative_spread(last).powi(2);
            self.noise = match self.noise {
                Some(v) => Some(v + NOISE_WEIGHT * (spread - v)),
                None => Some(spread),
            };
        }
        let mean = self.level_rate();
        self.best_rate = (self.best_rate * BEST_DECAY).max(mean);
        if let Some(d) = self.undo_a_probe_kept_on_noise(mean, f) {
            return d;
        }
        if let Some(why) = self.halve.take().filter(|_| c > self.min) {
            // The latency seen of the faster API may be all queue (the
            // no-load estimate too), so the knee rule cannot see it: halve,
            // and let the knee verdict keep it or go back.
            self.send(c, mean, Dir::Down, true);
            return self.set(c / 2, None, f, format!("{why}: probe down by half"));
        }
        let inflation = self.latency.inflation(c);
        let samples = self.latency.samples_at(c);
        let steady = self.stall_steady;
        // Latency says the API is queueing: probe down. Whether that costs
        // throughput is what the probe's verdict checks.
        let knee = inflation > KNEE && samples >= if steady { STALL_WINDOWS } else { 2 };
        let strong = knee && inflation > 2.0 * KNEE;
        let free = self.free(c);
        let grow = free && (!steady || samples >= STALL_WINDOWS);
        // While calls time out, latency moves the climber (Vegas), and its
        // steps wait for no backoff: that paces probes judged on the rate.
        // Growth still waits after a probe up from here did not gain.
        let vegas = self.stalling() && (knee || (grow && self.next == Dir::Up));
        if self.wait > 0 && !strong && !vegas {
            self.wait -= 1;
            return self.hold(
                f,
                format!(
                    "holding at {c} ({mean:.1}/s); next probe in {} windows",
                    self.wait + 1
                ),
            );
        }
        let dir = if knee {
            Dir::Down
        } else if grow {
            Dir::Up
        } else if free {
            return self.hold(
                f,
                format!("calls time out, no queue at {c} for {samples} of {STALL_WINDOWS} windows"),
            );
        } else if self.stalling() {
            // Vegas: with calls stalling, which agents are held drifts over
            // a timeout, so a probe's windows and its reference's differ
            // by that drift more than by the step. Between no queue and
            // the knee, latency alone says hold.
            return self.hold(
                f,
                format!(
                    "calls time out, latency {inflation:.2}x no-load: between no queue and \
                     the knee, holding at {c}"
                ),
            );
        } else {
            self.next
        };
        // Once the climb is over, growth takes half steps: the knee is a
        // step away, and full steps on the stalls' drift swung the bench's
        // `timeouts` phase from 37 to 60 calls (a CV of 0.117).
        let step = if grow && steady {
            (self.step(c) / 2).max(1)
        } else {
            self.step(c)
        };
        if dir == Dir::Down && c <= self.min {
            self.next = Dir::Up;
            if knee {
                return self.hold(
                    f,
                    format!("the knee (latency {inflation:.2}x no-load), at the minimum"),
                );
            }
        }
        match dir {
            Dir::Down if c > self.min => {
                self.send(c, mean, dir, knee);
                let why = if knee {
                    format!("the knee: latency {inflation:.2}x no-load")
                } else {
                    "probe down".to_string()
                };
                self.set(c - step, None, f, format!("{why}: -{step}"))
            }
            _ => {
                if let Some(why) = self.not_binding(w) {
                    return self.hold(f, format!("{why}: no probe up"));
                }
                if c >= self.cap() {
                    self.next = Dir::Down;
                    return self.hold(f, format!("at the cap {}: no probe up", self.cap()));
                }
                self.send(c, mean, Dir::Up, false);
                self.set(c + step, None, f, format!("probe up: +{step}"))
            }
        }
    }

    /// A probe is judged on few windows (one where the rate looked steady):
    /// on a noisy API (heavy-tailed latency, stalls) lucky windows can keep
    /// a level that is worse.
    /// Once the kept level has a full set of windows of its own, a mean
    /// under the rate of the level it left by more than the dead band
    /// undoes it, without waiting out the backoff there.
    fn undo_a_probe_kept_on_noise(&mut self, mean: f64, f: &Facts) -> Option<Decision> {
        let c = self.concurrency;
        let Kept {
            from,
            from_rate: before,
            level,
        } = self.kept_from?;
        if level != c {
            // Another rule moved the concurrency since: the check is stale.
            self.kept_from = None;
            return None;
        }
        // Checked at 4, 8, 16 ... windows, and once the level's mean is
        // as long as it gets: each check's mean is more precise.
        let n = self.rates.len();
        let last = n >= self.level_windows();
        if n < LEVEL_WINDOWS || !(n.is_power_of_two() || last) {
            return None;
        }
        if last {
            self.kept_from = None;
        }
        if mean >= before * (1.0 - self.undo_tolerance(n)) {
            return None;
        }
        self.kept_from = None;
        self.level = from;
        self.rates.clear();
        self.trend = 0;
        self.next = if from > c { Dir::Up } else { Dir::Down };
        self.wait = self.backoff;
        Some(self.set(
            from,
            None,
            f,
            format!(
                "level {c}, kept on its probe's windows, trails {from} over {n} windows \
                 ({mean:.1} vs {before:.1}/s): back to {from}, wait {} windows",
                self.wait
            ),
        ))
    }

    /// How far a kept level's mean over `n` windows may trail the rate of
    /// the level it left: one standard error of their difference, within
    /// half the dead band and the dead band. The dead band alone let the
    /// `tail` phase sit for 20 s at 19 calls, 4% under the 22 it left (93%
    /// of the oracle): over 30 windows at a 14% spread each, a 3.6% gap is
    /// one standard error. Half the dead band at least: a steady flat top's
    /// levels differ by a hair, and are no worse for it.
    fn undo_tolerance(&self, n: usize) -> f64 {
        let reference = self.level_windows() as f64;
        let error = self.noise() * (1.0 / n as f64 + 1.0 / reference).sqrt();
        // `max` before `min`: a NaN spread reads as half the dead band.
        error.max(0.5 * self.dead_band).min(self.dead_band)
    }

    /// Keeps a probe that paid (and takes the next step in its direction at
    /// once), or reverts one that did not and backs off. It waits for as
    /// many windows as the rate's noise needs, and judges their mean.
    pub(super) fn judge(&mut self, mut p: Probe, w: &Window, f: &Facts) -> Decision {
        let c = self.concurrency;
        let db = self.dead_band;
        let r = p.reference;
        let free = p.dir == Dir::Up && self.free(c);
        p.rates[p.seen] = w.io_rate();
        p.seen += 1;
        // The noise of the mean of the probe's windows so far. A verdict
        // is clear before its windows are in when that mean is off the
        // reference by the dead band plus twice its noise (a phase change
        // losing 87% of the rate in its first window).
        let error = self.noise() / (p.seen as f64).sqrt();
        let off = (p.rate() - r).abs() / r.max(f64::MIN_POSITIVE);
        let clear = off > db + 2.0 * error;
        if p.seen < p.need && !free && !clear {
            let (from, seen, need) = (p.from, p.seen, p.need);
            self.probe = Some(p);
            return self.hold(
                f,
                format!(
                    "probe {from} -> {c}: window {seen} of {need} (the rate varies {:.0}% \
                     per window)",
                    self.noise() * 100.0
                ),
            );
        }
        let rate = p.rate();
        let paid = match p.dir {
            Dir::Up => rate > r * (1.0 + db) || free,
            // Past the knee (latency says the API is queueing) the rate
            // fell because the tuner is there: the level below must only
            // hold it, and the best rate is no judge.
            Dir::Down if p.knee => rate >= r * (1.0 - db),
            // Otherwise a walk down a flat top, step by step within the
            // dead band, guarded by the best rate. The loss it may show
            // shrinks by the noise of its windows' mean: on the `tail`
            // phase's 14% a window, four windows are good to 7%, and probes
            // losing 4% kept on them walked 22 calls to 19 and 17.
            Dir::Down => {
                let tolerance = (db - error).max(0.0);
                rate >= r * (1.0 - tolerance) && rate >= self.best_rate * (1.0 - db)
            }
        };
        let moved = format!("{} -> {c} ({r:.1} -> {rate:.1}/s)", p.from);
        // The knee said queueing, yet the rate fell with the concurrency
        // (three quarters of proportionally or more): there was no queue,
        // so the no-load latency is stale (the API itself got slower).
        let share = c as f64 / p.from.max(1) as f64;
        if p.knee && p.dir == Dir::Down && rate <= r * (1.0 - 0.75 * (1.0 - share)) {
            // The rate fell by a third more than the step explains, against
            // the best rate (as a detected change of speed needs): the API
            // got slower, and no median's noise fired the knee at the top.
            let slower = rate <= SLOWER * share * self.best_rate;
            let relearned = self.relearn_no_load(p.from);
            // The API itself changed: its rates so far are another API's.
            self.forget_rates();
            self.trend = 0;
            self.level = p.from;
            let why = format!(
                "probe {moved} lost the rate in proportion: no queue after all, {relearned}"
            );
            if slower && !self.stalling() {
                // A slower API, as a detected change of speed is: start
                // over as then. Probing up from here climbed phase B's
                // slow, linear API in +10% steps on 0.4 s windows against
                // the dead band (B at 79% of the oracle, settling in 24 s).
                // Not while calls time out: a doubling on the stalls'
                // noise overshoots the knee.
                self.mode = Mode::Startup;
                self.prev = None;
                self.tried.clear();
                return self.set(p.from, None, f, format!("{why}; back, startup again"));
            }
            self.wait = 1;
            return self.set(p.from, None, f, format!("{why}; back, probe up next"));
        }
        // A step down larger than a probe's that lost less than half its
        // share of the rate overshot a flat or retrograde top: the best
        // level lies between, so go halfway back rather than all the way.
        let big = p.from.saturating_sub(c) > self.step(p.from);
        if !paid && p.dir == Dir::Down && big && rate > r * (1.0 - 0.5 * (1.0 - share)) {
            let mid = c + (p.from - c).div_ceil(2);
            self.trend = 0;
            self.level = mid;
            p.seen = 0;
            self.probe = Some(p);
            return self.set(
                mid,
                None,
                f,
                format!("probe {moved} did not hold the rate but lost little: halfway back"),
            );
        }
        if !paid {
            if p.dir == Dir::Up && self.stalling() {
                self.stall_steady = true;
            }
            self.next = match p.dir {
                Dir::Up => Dir::Down,
                Dir::Down => Dir::Up,
            };
            // While calls time out, a failed probe up waits out one stall
            // memory at most: the rates it was judged on swung with which
            // agents stalls held, which drifts over that long. The 5 s of
            // backoff a sharp top earns held the `timeouts` phase at 39
            // calls (95% of the oracle's 44) after a knee step and one
            // probe up read 978 -> 979/s.
            self.wait = if self.stalling() {
                self.backoff.min(STALL_MEMORY)
            } else {
                self.backoff
            };
            self.backoff = (self.backoff * 2).min(self.max_backoff());
            self.linear_ups = 0;
            self.trend = 0;
            self.level = p.from;
            let kind = if p.dir == Dir::Up {
                "gain"
            } else {
                "hold the rate"
            };
            return self.set(
                p.from,
                None,
                f,
                format!(
                    "probe {moved} did not {kind}: back, wait {} windows",
                    self.wait
                ),
            );
        }
        // The level's rates start from the probe's windows. The best rate
        // is raised only from a level's mean, in `io_bound`: raised from a
        // lucky window it made every later probe down look like a loss.
        self.level = c;
        self.rates = p.seen().to_vec();
        // A free step was kept on latency, not on its windows' rate: the
        // rate has nothing to undo.
        self.kept_from = (!free).then_some(Kept {
            from: p.from,
            from_rate: r,
            level: c,
        });
        self.next = p.dir;
        self.wait = 0;
        // One kept probe may be noise on a flat top; two in a row are a
        // trend, and only a trend resets the backoff. A free step is no
        // evidence: its verdict did not read the rate.
        if !free {
            self.trend += 1;
            if self.trend >= 2 {
                self.backoff = 1;
            }
        }
        if p.dir == Dir::Down {
            if self.stalling() {
                // Not while calls time out: a window's rate swings with
                // which agents stall, and steps down kept on flattering
                // windows walked the timeouts phase from 49 calls to 31.
                // The latency at this level says whether to go on.
                return self.hold(
                    f,
                    format!("probe {moved} held the rate: kept; calls time out, so no step on"),
                );
            }
            let step = self.step(c) << (self.trend - 1).min(MAX_DESCENT);
            if c <= self.min {
                return self.hold(
                    f,
                    format!("probe {moved} held the rate: kept, at the minimum"),
                );
            }
            self.send(c, rate, Dir::Down, false);
            return self.set(
                c.saturating_sub(step),
                None,
                f,
                format!("probe {moved} held the rate: kept; down again -{step}"),
            );
        }
        let step = self.step(c);
        let paid = if rate > r * (1.0 + db) {
            "paid"
        } else {
            "no queue while calls time out"
        };
        // Near-linear gains twice in a row: the API has much more room. Not
        // while calls time out: then the rate swings with which agents
        // stall, and a doubling on its noise overshoots the knee (not only
        // while growth is free: at 1.14x no-load, 42 -> 47 read 802 ->
        // 997/s, and a doubling to 94 cost the timeouts phase 8%). Nor
        // while the CPU workers are saturated: then the gain is the IO
        // stage refilling the channel, not room at the API (C at 30 s
        // phases: a dip in the CPU rate shrank the IO stage 52 -> 37, the
        // refill read 37 -> 41 -> 46 as linear at 1% worker idle, and the
        // doubling to 92 ran into the API's limit of 60 with 36 429s).
        let linear = !self.stalling()
            && !workers_saturated(w)
            && rate >= r * (1.0 + 0.75 * (c as f64 / p.from.max(1) as f64 - 1.0));
        self.linear_ups = if linear { self.linear_ups + 1 } else { 0 };
        if self.linear_ups >= 2 {
            self.linear_ups = 0;
            self.mode = Mode::Startup;
            self.prev = Some((c, rate));
            self.tried = vec![(c, rate)];
            return self.set(
                c.saturating_mul(2),
                None,
                f,
                format!("probe {moved} scaled near-linearly twice: startup again, double {c}"),
            );
        }
        if self.stall_steady {
            return self.hold(
                f,
                format!("probe {moved} {paid}: kept; calls time out, so the latency here decides"),
            );
        }
        if let Some(why) = self.not_binding(w) {
            return self.hold(f, format!("probe {moved} {paid}: kept; {why}"));
        }
        if c >= self.cap() {
            return self.hold(f, format!("probe {moved} {paid}: kept, at the cap"));
        }
        self.send(c, rate, Dir::Up, false);
        self.set(
            c + step,
            None,
            f,
            format!("probe {moved} {paid}: kept; up again +{step}"),
        )
    }

    /// Growth is free at `c`: calls time out, so stalled calls hold agents,
    /// and the successful calls show no queue, so the API has room for the
    /// agents it is not getting. The rate is no judge here: which agents
    /// stall is random, and near the top a step buys less than the dead
    /// band (Vegas' queue estimate ~0, not Gradient2's rate).
    pub(super) fn free(&self, c: usize) -> bool {
        self.stalling() && self.latency.samples_at(c) > 0 && self.latency.inflation(c) < NO_QUEUE
    }

    /// A knee step down awaits its verdict.
    pub(super) fn knee_step_out(&self) -> bool {
        self.probe
            .as_ref()
            .is_some_and(|p| p.knee && p.dir == Dir::Down)
    }

    /// A call timed out within the last [`STALL_MEMORY`] judged windows:
    /// some agents are held by stalled calls.
    pub(super) fn stalling(&self) -> bool {
        self.since_timeout < STALL_MEMORY
    }

    /// The smallest level startup tried whose rate is within the dead band
    /// of the best rate it saw.
    pub(super) fn best_tried(&self) -> (usize, f64) {
        let top = self.tried.iter().map(|t| t.1).fold(0.0, f64::max);
        self.tried
            .iter()
            .filter(|t| t.1 >= top * (1.0 - self.dead_band))
            .min_by_key(|t| t.0)
            .copied()
            .unwrap_or((self.concurrency, 0.0))
    }

    pub(super) fn enter_io_bound(&mut self, level: usize) {
        self.mode = Mode::IoBound;
        self.level = level;
        self.rates.clear();
        self.probe = None;
        self.kept_from = None;
        self.next = Dir::Up;
        self.wait = 0;
        self.backoff = 1;
        self.linear_ups = 0;
        self.trend = 0;
        self.stall_steady = false;
    }

    /// Forgets the rates learned of the API: its level's windows, the best
    /// rate and their noise, and the backoff earned probing its top (the
    /// next probe goes up, at once). For when the API changed speed: a
    /// wait of 20-39 windows left from `tail`'s sharp top held the
    /// `timeouts` phase at 21 calls for 2-4 s after calls began to stall
    /// (30 s phases, every seed; one at 89% of the oracle).
    pub(super) fn forget_rates(&mut self) {
        self.rates.clear();
        self.best_rate = 0.0;
        self.noise = None;
        self.next = Dir::Up;
        self.wait = 0;
        self.backoff = 1;
    }

    /// Sends a probe from `from`, whose rate is `reference`; the caller
    /// moves the concurrency.
    fn send(&mut self, from: usize, reference: f64, dir: Dir, knee: bool) {
        self.probe = Some(Probe {
            from,
            reference,
            dir,
            knee,
            need: self.windows_needed(),
            seen: 0,
            rates: [0.0; MAX_PROBE_WINDOWS],
        });
    }

    /// Windows a probe's verdict needs: enough that the noise of their
    /// mean (the rate's spread per window over the square root of their
    /// number) is within the dead band, as many as fit in [`VERDICT_TIME`].
    /// One where a window's rate is steady (phase A's 4%), up to
    /// [`MAX_PROBE_WINDOWS`] where it swings with heavy-tailed latency or
    /// stalled calls.
    fn windows_needed(&self) -> usize {
        // The time budget: where windows are long (phase B's 0.4 s) four
        // of them took a climb to B's Little's-law level at +3 per 1.6 s,
        // far past the 3 s the tuner has to settle.
        let fit = self.windows_in(VERDICT_TIME) as f64;
        let n = (self.noise() / self.dead_band).powi(2).ceil();
        // `min` takes `fit` when `n` is NaN (a window of NaN rates).
        (n.min(fit) as usize).clamp(1, MAX_PROBE_WINDOWS)
    }

    /// Windows a level's rate is the mean of: [`LEVEL_WINDOWS`], or as
    /// many as fit in [`LEVEL_TIME`]. While calls time out, the last
    /// [`LEVEL_WINDOWS`]: the agents stalls hold drift over a timeout, so
    /// older windows measured another split (in the test model, 3 s of
    /// them held the climber a step under the best for seconds).
    fn level_windows(&self) -> usize {
        if self.stalling() {
            return LEVEL_WINDOWS;
        }
        self.windows_in(LEVEL_TIME).max(LEVEL_WINDOWS)
    }

    /// The most windows of wait after failed probes: [`MAX_BACKOFF`], or as
    /// many as fit in [`MAX_WAIT`].
    fn max_backoff(&self) -> u32 {
        (self.windows_in(MAX_WAIT) as u32).max(MAX_BACKOFF)
    }

    /// Whole windows of the current length that fit in `d`.
    fn windows_in(&self, d: Duration) -> usize {
        (d.as_secs_f64() / self.window().as_secs_f64()).floor() as usize
    }

    /// The rate's relative spread per window (0 until measured).
    fn noise(&self) -> f64 {
        self.noise.map_or(0.0, f64::sqrt)
    }

    /// A probe step: twice the dead band of the concurrency, at least one.
    pub(super) fn step(&self, c: usize) -> usize {
        ((c as f64 * 2.0 * self.dead_band).ceil() as usize).max(1)
    }

    pub(super) fn level_rate(&self) -> f64 {
        mean(&self.rates)
    }
}

fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        0.0
    } else {
        xs.iter().sum::<f64>() / xs.len() as f64
    }
}

/// The sample standard deviation over the mean (0 when the mean is 0).
fn relative_spread(xs: &[f64]) -> f64 {
    let m = mean(xs);
    if xs.len() < 2 || m <= 0.0 {
        return 0.0;
    }
    let var = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len() - 1) as f64;
    var.sqrt() / m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verdict_waits_for_the_windows_its_noise_needs_within_its_time() {
        let mut tuner = Adaptive::new(2);
        // 100 ms windows (20 ms round trips; completions per call high
        // enough that the window is sized by the round trip alone).
        tuner.pace = Some((Duration::from_millis(20), 1000.0));
        assert_eq!(tuner.windows_needed(), 1, "noise not measured yet");
        tuner.noise = Some(0.04f64.powi(2));
        assert_eq!(tuner.windows_needed(), 1, "phase A's 4%");
        tuner.noise = Some(0.08f64.powi(2));
        assert_eq!(tuner.windows_needed(), 3, "(8% / 5%)^2 = 2.56");
        tuner.noise = Some(0.2f64.powi(2));
        assert_eq!(tuner.windows_needed(), 4, "at most four");
        // 400 ms windows (200 ms round trips): one fits the budget.
        tuner.pace = Some((Duration::from_millis(200), 1000.0));
        assert_eq!(tuner.windows_needed(), 1);
        // 200 ms windows: two.
        tuner.pace = Some((Duration::from_millis(100), 1000.0));
        assert_eq!(tuner.windows_needed(), 2);
    }

    /// The verdict of a probe from 32 calls at 1,000/s (the best rate)
    /// down to 28, whose four windows read `rate`, with the rate's spread
    /// per window measured at `noise`.
    fn verdict_down(noise: f64, rate: f64) -> String {
        let mut tuner = Adaptive::new(2);
        tuner.pace = Some((Duration::from_millis(20), 1000.0));
        tuner.mode = Mode::IoBound;
        tuner.concurrency = 28;
        tuner.level = 32;
        tuner.best_rate = 1000.0;
        tuner.noise = Some(noise * noise);
        tuner.probe = Some(Probe {
            from: 32,
            reference: 1000.0,
            dir: Dir::Down,
            knee: false,
            need: 4,
            seen: 0,
            rates: [0.0; MAX_PROBE_WINDOWS],
        });
        let w = Window {
            elapsed: Duration::from_millis(100),
            agents: 28,
            io_completions: (rate / 10.0) as u64,
            latency_p50: Some(Duration::from_millis(40)),
            ..Window::default()
        };
        loop {
            let p = tuner.probe.take().expect("a probe waits for its verdict");
            let d = tuner.judge(p, &w, &Facts::of(&w, &tuner));
            if !d.reason.contains("the rate varies") {
                return d.reason;
            }
        }
    }

    #[test]
    fn a_probe_down_within_the_noise_of_its_mean_is_not_kept() {
        // On a steady rate (1% a window), a probe down that loses 4% is
        // within the dead band: a flat top's walk down keeps it. Where the
        // rate swings by 14% a window (the bench's heavy-tailed `tail`
        // phase), the mean of four windows is good to 7%: a 4% loss is no
        // evidence that the level below holds the rate, and it goes back.
        // Kept, such probes walked that phase from 22 calls to 19 and 17,
        // and held it there at 85-95% of the best.
        for (noise, kept) in [(0.01, true), (0.14, false)] {
            let d = verdict_down(noise, 960.0);
            assert_eq!(d.contains("held the rate: kept"), kept, "{d}");
        }
        // A probe down that holds the whole rate is kept however noisy.
        let d = verdict_down(0.14, 1000.0);
        assert!(d.contains("held the rate: kept"), "{d}");
    }
}
