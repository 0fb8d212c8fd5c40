//! The CPU work model: "c ms of CPU per item" is repeated SHA-256 over the
//! payload, with the number of rounds calibrated once per process so that
//! it takes c ms on this machine.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// CPU work of a fixed cost per item. Cheap to copy.
///
/// # Examples
///
/// ```
/// use gearshift_bench::work::Work;
///
/// let work = Work::from_rounds(3);
/// let a = work.run(b"payload");
/// assert_eq!(a, work.run(b"payload")); // deterministic
/// assert_eq!(Work::from_rounds(0).run(b"x"), [0; 32]); // no work at all
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Work {
    rounds: u32,
}

/// The result of the start-up calibration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calibration {
    /// SHA-256 rounds over a 4 KiB payload per millisecond of CPU.
    pub rounds_per_ms: f64,
    /// Rounds timed per try.
    pub rounds_timed: u32,
    /// Tries; the median was kept.
    pub tries: usize,
}

impl Work {
    /// Work that takes about `ms` milliseconds of CPU per 4 KiB payload,
    /// using the process-wide [`calibration`].
    pub fn millis(ms: f64) -> Work {
        let ms = if ms.is_finite() { ms.max(0.0) } else { 0.0 };
        Work::from_rounds((ms * calibration().rounds_per_ms).round() as u32)
    }

    /// Work of exactly `rounds` SHA-256 rounds.
    pub fn from_rounds(rounds: u32) -> Work {
        Work { rounds }
    }

    /// The rounds per item.
    pub fn rounds(self) -> u32 {
        self.rounds
    }

    /// Runs the work on `payload`: each round hashes the previous digest and
    /// the payload. Returns the last digest (zeros for no work), which the
    /// caller keeps so the compiler cannot drop the work.
    pub fn run(self, payload: &[u8]) -> [u8; 32] {
        let mut digest = [0u8; 32];
        for _ in 0..self.rounds {
            let mut h = Sha256::new();
            h.update(digest);
            h.update(payload);
            digest = h.finalize().into();
        }
        digest
    }
}

/// The process-wide calibration, measured on first use: 2,000 rounds over a
/// 4 KiB payload, timed 5 times, median kept.
pub fn calibration() -> Calibration {
    static CAL: OnceLock<Calibration> = OnceLock::new();
    *CAL.get_or_init(|| {
        let cal = calibrate(2000, 5);
        tracing::info!(
            rounds_per_ms = crate::report::rounded(cal.rounds_per_ms, 1),
            tries = cal.tries,
            rounds_timed = cal.rounds_timed,
            "calibrated the CPU work model: {:.1} SHA-256 rounds over 4 KiB per ms (median of the tries)",
            cal.rounds_per_ms
        );
        cal
    })
}

/// Times `rounds` rounds `tries` times and keeps the median.
pub fn calibrate(rounds: u32, tries: usize) -> Calibration {
    let payload = vec![0xA5u8; 4096];
    let work = Work::from_rounds(rounds.max(1));
    let mut times: Vec<Duration> = (0..tries.max(1))
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(work.run(std::hint::black_box(&payload)));
            t.elapsed()
        })
        .collect();
    times.sort();
    let median = times[times.len() / 2].as_secs_f64().max(1e-9);
    Calibration {
        rounds_per_ms: f64::from(work.rounds) / (median * 1e3),
        rounds_timed: work.rounds,
        tries: times.len(),
    }
}
