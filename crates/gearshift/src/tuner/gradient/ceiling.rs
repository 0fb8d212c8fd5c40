//! [`Ceiling`]: a level growth may not pass, with the level shown too high
//! above it. Its own file because it is a bisection, not a wall: the knee
//! lies between the two, and a ceiling that holds its level without a
//! signal narrows the gap by half.

/// A level growth may not pass until `until` (seconds of the run), and the
/// level `over` that brought the signal (pushback, failures, a loss of
/// throughput): the knee lies between them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Ceiling {
    pub(super) level: f64,
    pub(super) over: f64,
    pub(super) until: f64,
}

impl Ceiling {
    /// The ceiling halfway to `over`, when the gap is wider than a growth
    /// step near the knee (`sqrt(level)`): the level held without a signal,
    /// so the knee lies above it. `None` when the gap is resolved.
    pub(super) fn raised(self) -> Option<Ceiling> {
        let gap = self.over - self.level;
        (gap > self.level.sqrt().max(1.0)).then(|| Ceiling {
            level: self.level + gap / 2.0,
            ..self
        })
    }
}
