//! [`NoLoad`]: the API's latency with no queue, the reference of rule 4.
//! Its own type because it is an estimate with an error, not a minimum:
//! the lowest of noisy window medians sits below the truth (a first window
//! of three calls can read half of it, and growth then stalls at a third of
//! the capacity), so windows that agree within their noise are pooled.

use super::Z;

/// The no-load median latency and the standard error of its log.
#[derive(Debug, Clone, Copy)]
pub(super) struct NoLoad {
    log: f64,
    se: f64,
}

impl NoLoad {
    /// A value read from one window: its median and the error of its log.
    pub(super) fn read(p50: f64, se: f64) -> NoLoad {
        NoLoad {
            log: p50.ln(),
            se: se.max(1e-3),
        }
    }

    /// The estimate (seconds).
    pub(super) fn secs(&self) -> f64 {
        self.log.exp()
    }

    /// The standard error of the estimate's log.
    pub(super) fn se(&self) -> f64 {
        self.se
    }

    /// Takes a window's median into account: clearly lower (two standard
    /// errors of the difference), it replaces the estimate, the API got
    /// faster or the estimate was read high; clearly higher, it is a queue
    /// and says nothing of no-load; in between, the two are one reading,
    /// weighted by their precision (their errors shrink as windows agree,
    /// so a queue that builds slowly soon stands out).
    pub(super) fn update(&mut self, p50: f64, se: f64) {
        let new = NoLoad::read(p50, se);
        let diff = new.log - self.log;
        let noise = (self.se.powi(2) + new.se.powi(2)).sqrt();
        if diff < -Z * noise {
            *self = new;
        } else if diff <= Z * noise {
            let (a, b) = (self.se.powi(-2), new.se.powi(-2));
            self.log = (a * self.log + b * new.log) / (a + b);
            self.se = (a + b).powf(-0.5);
        }
    }
}
