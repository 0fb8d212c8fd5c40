//! Deterministic draws: every random choice of the mock API is a hash of
//! `(seed, id, attempt, purpose)`, so a run with the same seed and the same
//! request order per id replays the same faults and latencies.

use std::time::Duration;

use super::config::{FaultRates, LatencyModel, Overload};

/// A fault the mock API injects into one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    /// 500 Internal Server Error.
    ServerError,
    /// 429 with `Retry-After`, drawn from the fault rates.
    RateLimited,
    /// 429 with `Retry-After`, because more than the hard limit were in flight.
    HardLimit,
    /// No answer until the client gives up.
    Stall,
    /// The connection is closed without a response.
    Reset,
    /// Fewer body bytes than `Content-Length` announced, then close.
    Truncated,
}

impl Fault {
    /// A short snake_case name for stats and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::ServerError => "server_error",
            Fault::RateLimited => "rate_limited",
            Fault::HardLimit => "hard_limit",
            Fault::Stall => "stall",
            Fault::Reset => "reset",
            Fault::Truncated => "truncated",
        }
    }
}

/// The fault (if any) for attempt `attempt` of item `id`.
pub fn fault(rates: &FaultRates, seed: u64, id: u64, attempt: u32) -> Option<Fault> {
    let u = uniform(seed, id, attempt, SALT_FAULT);
    let table = [
        (rates.server_error, Fault::ServerError),
        (rates.rate_limited, Fault::RateLimited),
        (rates.stall, Fault::Stall),
        (rates.reset, Fault::Reset),
        (rates.truncated, Fault::Truncated),
    ];
    let mut edge = 0.0;
    for (rate, f) in table {
        edge += rate;
        if u < edge {
            return Some(f);
        }
    }
    None
}

/// What the overload behaviour does to one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Overloaded {
    /// Held unanswered until the client gives up.
    Dropped,
    /// Answered 500 after the modelled latency.
    Failed,
}

/// The overload behaviour's draw for attempt `attempt` of item `id`,
/// arriving with `in_flight` calls being served and `held` calls held.
pub(crate) fn overload(
    overload: Overload,
    capacity: Option<usize>,
    seed: u64,
    (id, attempt): (u64, u32),
    (in_flight, held): (usize, usize),
) -> Option<Overloaded> {
    let cap = capacity? as f64;
    let u = uniform(seed, id, attempt, SALT_OVERLOAD);
    match overload {
        Overload::Queue => None,
        Overload::Drop => {
            let n = (in_flight + held + 1) as f64;
            (u < 1.0 - cap / n).then_some(Overloaded::Dropped)
        }
        Overload::Errors { floor, slope } => {
            let over = (in_flight as f64 / cap - 1.0).max(0.0);
            (u < (floor + slope * over).min(0.95)).then_some(Overloaded::Failed)
        }
    }
}

/// The modelled latency for a request arriving with `in_flight` others.
pub fn latency(
    model: &LatencyModel,
    seed: u64,
    id: u64,
    attempt: u32,
    in_flight: usize,
) -> Duration {
    let base = model.base.as_secs_f64();
    let j = match model.lognormal_sigma {
        Some(sigma) => {
            let z = normal(seed, id, attempt);
            (sigma * z - sigma * sigma / 2.0).exp()
        }
        None => {
            let u = uniform(seed, id, attempt, SALT_JITTER);
            let exp1 = -(1.0 - u).ln();
            1.0 - model.jitter + model.jitter * exp1
        }
    };
    let (excess, per_extra) = match model.capacity {
        Some(cap) => (in_flight.saturating_sub(cap) as f64, base / cap as f64),
        None => (0.0, 0.0),
    };
    let mut secs = base * j + excess * per_extra;
    secs *= 1.0 + model.retrograde * excess;
    Duration::from_secs_f64(secs.clamp(0.0, 3600.0))
}

/// A uniform draw in `[0, 1)` from the hash of its inputs.
pub fn uniform(seed: u64, id: u64, attempt: u32, salt: u64) -> f64 {
    let h = mix(mix(mix(seed ^ salt) ^ id) ^ u64::from(attempt));
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// A standard normal draw (Box-Muller over two uniforms).
fn normal(seed: u64, id: u64, attempt: u32) -> f64 {
    let u1 = uniform(seed, id, attempt, SALT_NORMAL_1).max(f64::MIN_POSITIVE);
    let u2 = uniform(seed, id, attempt, SALT_NORMAL_2);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// splitmix64's finaliser: a cheap, well-mixed 64-bit hash.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const SALT_FAULT: u64 = 0xFA17;
const SALT_JITTER: u64 = 0x0071_77E4;
const SALT_OVERLOAD: u64 = 0x000F_100D;
const SALT_NORMAL_1: u64 = 0x004E_0001;
const SALT_NORMAL_2: u64 = 0x004E_0002;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_has_mean_one() {
        let model = LatencyModel {
            base: Duration::from_secs(1),
            ..LatencyModel::default()
        };
        let n = 20_000;
        let mean: f64 = (0..n)
            .map(|id| latency(&model, 7, id, 0, 0).as_secs_f64())
            .sum::<f64>()
            / n as f64;
        assert!((mean - 1.0).abs() < 0.02, "mean {mean}");
        let lognormal = LatencyModel {
            lognormal_sigma: Some(1.0),
            ..model
        };
        let mean: f64 = (0..n)
            .map(|id| latency(&lognormal, 7, id, 0, 0).as_secs_f64())
            .sum::<f64>()
            / n as f64;
        assert!((mean - 1.0).abs() < 0.1, "lognormal mean {mean}");
    }

    #[test]
    fn fault_rates_partition_the_unit_interval() {
        let rates = FaultRates {
            server_error: 0.2,
            reset: 0.1,
            ..FaultRates::default()
        };
        let n = 10_000;
        let five = (0..n)
            .filter(|&id| fault(&rates, 3, id, 0) == Some(Fault::ServerError))
            .count();
        let reset = (0..n)
            .filter(|&id| fault(&rates, 3, id, 0) == Some(Fault::Reset))
            .count();
        assert!((1800..2200).contains(&five), "{five}");
        assert!((850..1150).contains(&reset), "{reset}");
    }
}
