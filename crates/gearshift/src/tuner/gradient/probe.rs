//! The last move of [`Gradient`](super::Gradient), kept for the next
//! window to judge.

/// The last move, with what the window before it read.
#[derive(Debug, Clone, Copy)]
pub(super) enum Probe {
    /// Grown from `from` when the goodput was `rate` (relative error `se`).
    Up { from: f64, rate: f64, se: f64 },
    /// A series of latency cuts began at `from`, when the median was `p50`
    /// (log error `p50_se`); the last cut started from `last_from`.
    Down {
        from: f64,
        p50: f64,
        p50_se: f64,
        last_from: f64,
    },
    /// Draining after a first doubling that gained too little: the API
    /// was saturated down to `at` calls, at a goodput of `rate` (relative
    /// error `se`, pooled over the windows that read it).
    Drain { at: f64, rate: f64, se: f64 },
    /// Cut from `from` at `at` (seconds of the run) for a failure `share`
    /// (standard error `share_se`), which overload would bring down to
    /// `expect`; `ceiling` was the ceiling before.
    Fail {
        from: f64,
        at: f64,
        share: f64,
        share_se: f64,
        expect: f64,
        ceiling: Option<super::Ceiling>,
    },
}
