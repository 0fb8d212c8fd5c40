//! Calls still running at a window's end. The model's rates are steady
//! states from the first instant, but a real window counts a call's time
//! only when the call ends: just after a start or a raise, the new slots'
//! first calls are still running. This tracks when each batch of slots
//! began and how much of a window's time in flight its ended calls do not
//! account for: what `Window::mean_in_flight_ended` falls short of
//! `mean_in_flight` by, the share the law's check reads.
//!
//! A new slot's first call has run `E[min(L, a)]` by age `a` (L the call's
//! lognormal latency); until it ends none of it is credited, and it tends
//! to the mean latency once the call has surely ended. A window from age
//! `a0` to `a1` leaves the difference uncredited. Slots past their first
//! call leave their calls' ages at the window's two ends: equal on
//! average, so only noise, drawn once per window (the sum of N ages has a
//! spread of about sqrt(N) x their mean, and two ends make it sqrt(2 N)).
//!
//! Only the credit is modelled, not the bias it brings to the median the
//! window draws: the model shows what the check costs (windows held), not
//! all it saves.

use rand::rngs::StdRng;

use super::budget::normal;

/// Batches of slots young enough for their first calls to be running.
#[derive(Debug, Clone, Default)]
pub(super) struct Running {
    /// When each batch began (seconds) and its slots.
    batches: Vec<(f64, f64)>,
    /// Call-seconds of the current window not credited to ended calls.
    uncredited: f64,
    /// Slots still in their first call at the end of the last step: they
    /// have no age from before, so no noise at the window's start.
    young: f64,
    /// First calls that ended in the current window: their ages (their
    /// latencies) lay between the two bounds, `calls` of them per unit of
    /// `F(hi) - F(lo)`.
    first_ends: Vec<(f64, f64, f64)>,
}

impl Running {
    /// `slots` new slots at time 0.
    pub fn new(slots: usize) -> Running {
        Running {
            batches: vec![(0.0, slots as f64)],
            uncredited: 0.0,
            young: 0.0,
            first_ends: Vec::new(),
        }
    }

    /// The limit moved from `from` to `to` at `t`: a raise starts a batch;
    /// a cut ends the youngest slots first.
    pub fn resize(&mut self, t: f64, from: usize, to: usize) {
        if to > from {
            self.batches.push((t, (to - from) as f64));
            return;
        }
        let mut gone = (from - to) as f64;
        while gone > 0.0 {
            let Some(last) = self.batches.last_mut() else {
                break;
            };
            let take = last.1.min(gone);
            (last.1, gone) = (last.1 - take, gone - take);
            if last.1 <= 0.0 {
                self.batches.pop();
            }
        }
    }

    /// A step from `t` of `dt` seconds in which a share `busy` of the slots
    /// had a call in flight, at mean latency `mean` and lognormal `sigma`.
    pub fn add(&mut self, t: f64, dt: f64, busy: f64, mean: f64, sigma: f64) {
        if mean.is_nan() || mean <= 0.0 || dt <= 0.0 {
            return;
        }
        let run = |a: f64| run_by(a, mean, sigma);
        let median = mean / (sigma * sigma / 2.0).exp();
        let busy = busy.clamp(0.0, 1.0);
        self.young = 0.0;
        for &(start, slots) in &self.batches {
            let (a0, a1) = ((t - start).max(0.0), (t + dt - start).max(0.0));
            self.uncredited += slots * busy * (run(a1) - run(a0)).clamp(0.0, dt);
            self.first_ends.push((a0, a1, slots * busy));
            self.young += slots * busy * (1.0 - lognormal_cdf(a1, median, sigma));
        }
        // Past 20 mean latencies a first call has ended (P > 0.99 even at
        // sigma 1.5).
        self.batches
            .retain(|&(start, _)| t + dt - start < 20.0 * mean);
    }

    /// The window's call-seconds credited to ended calls, out of `in_flight`
    /// call-seconds at mean latency `mean` (with the noise of the slots
    /// past their first call), and a new window begins.
    pub fn credited(&mut self, rng: &mut StdRng, in_flight: f64, elapsed: f64, mean: f64) -> f64 {
        self.first_ends.clear();
        let uncredited = std::mem::take(&mut self.uncredited);
        if mean.is_nan() || mean <= 0.0 || elapsed <= 0.0 {
            return in_flight;
        }
        let steady = (in_flight / elapsed - self.young).max(0.0);
        let noise = (2.0 * steady).sqrt() * mean * normal(rng);
        (in_flight - uncredited + noise).max(0.0)
    }
}

impl Running {
    /// What the window's median reads over the API's own (`median`, at
    /// `sigma`), out of `ended` calls: the first calls that ended in it
    /// are those that took no longer than their slot's age, the rest are
    /// drawn as in steady state.
    pub fn median_bias(&self, ended: f64, median: f64, sigma: f64) -> f64 {
        let firsts = &self.first_ends;
        if median.is_nan() || median <= 0.0 || ended <= 0.0 {
            return 1.0;
        }
        let cdf = |x: f64| lognormal_cdf(x, median, sigma);
        let first_below = |x: f64| -> f64 {
            firsts
                .iter()
                .map(|&(lo, hi, calls)| calls * (cdf(x.min(hi)) - cdf(lo)).max(0.0))
                .sum()
        };
        let first = first_below(f64::INFINITY).min(ended);
        let rest = ended - first;
        let below = |x: f64| rest * cdf(x) + first_below(x).min(first);
        // Bisection on the log of the median, within 20 sigma of the API's.
        let (mut lo, mut hi) = ((median.ln() - 20.0 * sigma), (median.ln() + 20.0 * sigma));
        for _ in 0..60 {
            let mid = 0.5 * (lo + hi);
            if below(mid.exp()) < ended / 2.0 {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        (0.5 * (lo + hi)).exp() / median
    }
}

/// `P(L <= x)` for L lognormal with `median` and `sigma`.
fn lognormal_cdf(x: f64, median: f64, sigma: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    phi((x / median).ln() / sigma)
}

/// `E[min(L, a)]` for L lognormal with mean `mean` and `sigma`: how long a
/// call started at 0 has run by `a`, on average.
fn run_by(a: f64, mean: f64, sigma: f64) -> f64 {
    if a <= 0.0 {
        return 0.0;
    }
    let mu = mean.ln() - sigma * sigma / 2.0;
    let z = (a.ln() - mu) / sigma;
    mean * phi(z - sigma) + a * (1.0 - phi(z))
}

/// The standard normal CDF (Abramowitz and Stegun 7.1.26, error < 1.5e-7).
fn phi(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs() / std::f64::consts::SQRT_2);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-x * x / 2.0).exp();
    if x >= 0.0 {
        0.5 * (1.0 + erf)
    } else {
        0.5 * (1.0 - erf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_first_call_has_run_its_age_at_first_and_its_mean_at_last() {
        assert!((run_by(0.001, 1.0, 1.0) - 0.001).abs() < 1e-6);
        assert!((run_by(1e4, 1.0, 1.0) - 1.0).abs() < 1e-3);
        assert!((phi(0.0) - 0.5).abs() < 1e-7 && (phi(1.96) - 0.975).abs() < 1e-4);
    }

    #[test]
    fn a_new_batch_leaves_its_first_window_mostly_uncredited_and_later_ones_not() {
        let mut r = Running::new(10);
        // A 100 ms window on calls of a 300 ms mean: most is uncredited.
        r.add(0.0, 0.1, 1.0, 0.3, 1.0);
        assert!(r.uncredited > 0.5 && r.uncredited < 1.0, "{}", r.uncredited);
        r.uncredited = 0.0;
        // Two seconds on, a window of the same batch is nearly all credited.
        r.add(2.0, 0.1, 1.0, 0.3, 1.0);
        assert!(r.uncredited < 0.05, "{}", r.uncredited);
        // The first calls that ended read low: 4 of 10 ended by 100 ms,
        // against a median near 180 ms.
        let mut r2 = Running::new(10);
        r2.add(0.0, 0.1, 1.0, 0.3, 1.0);
        let bias = r2.median_bias(4.0, 0.3 / 0.5f64.exp(), 1.0);
        assert!(bias < 0.5, "{bias}");
        // A cut ends the youngest slots; a batch past its calls is dropped.
        r.resize(2.1, 10, 4);
        r.add(10.0, 0.1, 1.0, 0.3, 1.0);
        assert!(r.batches.is_empty());
    }
}
