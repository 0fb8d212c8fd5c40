//! [`MockConfig`]: the mock API's latency model and fault rates, all of which
//! can change while it runs (see [`MockApi::set_config`](super::MockApi::set_config)).

use std::fmt;
use std::time::Duration;

/// How long the mock API takes to answer, as a function of the requests in
/// flight `n` when a request arrives:
///
/// ```text
/// latency = base * J + max(0, n - capacity) * base / capacity
/// J       = 1 - jitter + jitter * Exp(1)             (mean 1)
///         or exp(sigma * Z - sigma^2 / 2), Z ~ N(0,1) (lognormal, mean 1)
/// latency *= 1 + retrograde * max(0, n - capacity)
/// ```
///
/// Past `capacity`, each extra request adds `base / capacity`, so the
/// throughput stays at `capacity / base`; with `retrograde > 0` it falls.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyModel {
    /// The no-load latency. By default, 20 ms.
    pub base: Duration,
    /// Requests in flight the API serves without slowing down; `None` is
    /// unlimited. By default, 16.
    pub capacity: Option<usize>,
    /// Jitter weight `j` in `J = 1 - j + j * Exp(1)`, between 0 and 1.
    /// By default, 0.2.
    pub jitter: f64,
    /// Heavy-tailed jitter instead: lognormal with this sigma and mean 1.
    /// By default, off.
    pub lognormal_sigma: Option<f64>,
    /// Retrograde factor `k`: latency is multiplied by `1 + k * excess`.
    /// By default, 0.
    pub retrograde: f64,
    /// Beyond this many requests in flight, answer 429 with `Retry-After`.
    /// By default, none.
    pub hard_limit: Option<usize>,
}

impl Default for LatencyModel {
    fn default() -> Self {
        LatencyModel {
            base: Duration::from_millis(20),
            capacity: Some(16),
            jitter: 0.2,
            lognormal_sigma: None,
            retrograde: 0.0,
            hard_limit: None,
        }
    }
}

/// Fault rates, each the probability that a request gets that fault. Which
/// request gets which fault is a hash of `(seed, id, attempt)`, so a run
/// replays exactly.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultRates {
    /// Answer 500 (after the modelled latency).
    pub server_error: f64,
    /// Answer 429 with `Retry-After` (at once, as a rate limiter in front would).
    pub rate_limited: f64,
    /// Never answer: hold the request for `stall_for` (or until the client
    /// gives up and closes the connection).
    pub stall: f64,
    /// Close the connection without a response (after the modelled latency).
    pub reset: f64,
    /// Send headers announcing the full `Content-Length`, half the body, then
    /// close the connection.
    pub truncated: f64,
}

impl FaultRates {
    /// The sum of the rates; at most 1.
    pub fn total(&self) -> f64 {
        self.server_error + self.rate_limited + self.stall + self.reset + self.truncated
    }
}

/// What the mock API does with calls beyond its capacity: real services
/// queue them, drop them, or fail them, and a tuner must cope with each.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub enum Overload {
    /// They queue: each extra call in flight adds `base / capacity` to the
    /// latency, as [`LatencyModel`] describes.
    #[default]
    Queue,
    /// They are never answered. A call arriving with `n` others in flight
    /// (held ones included) is held with probability `1 - capacity / (n + 1)`
    /// until the client gives up (or `stall_for`); served calls answer at the
    /// flat base latency, however many are held.
    Drop,
    /// A share `min(0.95, floor + slope * max(0, n / capacity - 1))` of calls
    /// answers 500, `n` the calls in flight on arrival; latency as [`Queue`](Overload::Queue).
    Errors {
        /// Share of 500s with no overload, between 0 and 1.
        floor: f64,
        /// Share added per unit of overload (`n / capacity - 1`), between 0 and 1.
        slope: f64,
    },
}

/// Everything the mock API does.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use gearshift_bench::mock_api::MockConfig;
///
/// let mut config = MockConfig::default();
/// config.latency.base = Duration::from_millis(5);
/// config.faults.server_error = 0.1;
/// assert!(config.validate().is_ok());
/// config.faults.stall = 2.0;
/// assert_eq!(
///     config.validate().unwrap_err().to_string(),
///     "faults.stall must be between 0 and 1, got 2.0"
/// );
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct MockConfig {
    /// The latency model.
    pub latency: LatencyModel,
    /// The fault rates. By default, none.
    pub faults: FaultRates,
    /// Calls beyond `latency.capacity` (none when it is unlimited). By
    /// default, they queue.
    pub overload: Overload,
    /// Seed of every random choice (jitter, faults). By default, 1.
    pub seed: u64,
    /// Bytes in each `/item/{id}` body. By default, 4096.
    pub payload_bytes: usize,
    /// The `Retry-After` sent with each 429, rounded up to whole seconds (the
    /// header's unit). By default, 1 s.
    pub retry_after: Duration,
    /// Requests arriving this soon after a Retry-After window opens are not
    /// counted as "inside the window": they were already on the wire when
    /// the 429 went out. By default, 5 ms.
    pub retry_after_grace: Duration,
    /// How long a stalled request is held before the server drops it.
    /// By default, 60 s.
    pub stall_for: Duration,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            latency: LatencyModel::default(),
            faults: FaultRates::default(),
            overload: Overload::Queue,
            seed: 1,
            payload_bytes: 4096,
            retry_after: Duration::from_secs(1),
            retry_after_grace: Duration::from_millis(5),
            stall_for: Duration::from_secs(60),
        }
    }
}

impl MockConfig {
    /// A config with the given base latency and capacity, and defaults
    /// otherwise.
    pub fn with_latency(base: Duration, capacity: Option<usize>) -> Self {
        let mut c = MockConfig::default();
        c.latency.base = base;
        c.latency.capacity = capacity;
        c
    }

    /// The `Retry-After` header value, in whole seconds (at least 1).
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_secs_f64().ceil().max(1.0) as u64
    }

    /// Checks every field.
    ///
    /// # Errors
    ///
    /// A [`MockConfigError`] naming the first bad field and its value.
    pub fn validate(&self) -> Result<(), MockConfigError> {
        let l = &self.latency;
        if l.base > Duration::from_secs(3600) {
            return Err(MockConfigError::new(
                "latency.base",
                "at most an hour",
                l.base,
            ));
        }
        if l.capacity == Some(0) {
            return Err(MockConfigError::new(
                "latency.capacity",
                "> 0 (or unlimited)",
                0,
            ));
        }
        if l.hard_limit == Some(0) {
            return Err(MockConfigError::new("latency.hard_limit", "> 0", 0));
        }
        check_unit("latency.jitter", l.jitter)?;
        if let Some(s) = l.lognormal_sigma
            && !(s.is_finite() && (0.0..=5.0).contains(&s))
        {
            return Err(MockConfigError::new(
                "latency.lognormal_sigma",
                "between 0 and 5",
                s,
            ));
        }
        if !(l.retrograde.is_finite() && (0.0..=1000.0).contains(&l.retrograde)) {
            return Err(MockConfigError::new(
                "latency.retrograde",
                "between 0 and 1000",
                l.retrograde,
            ));
        }
        let f = &self.faults;
        check_unit("faults.server_error", f.server_error)?;
        check_unit("faults.rate_limited", f.rate_limited)?;
        check_unit("faults.stall", f.stall)?;
        check_unit("faults.reset", f.reset)?;
        check_unit("faults.truncated", f.truncated)?;
        if f.total() > 1.0 + 1e-9 {
            return Err(MockConfigError::new(
                "faults",
                "rates summing to <= 1",
                f.total(),
            ));
        }
        if let Overload::Errors { floor, slope } = self.overload {
            check_unit("overload.floor", floor)?;
            check_unit("overload.slope", slope)?;
        }
        if self.payload_bytes < 16 || self.payload_bytes > 64 << 20 {
            return Err(MockConfigError::new(
                "payload_bytes",
                "between 16 and 67108864",
                self.payload_bytes,
            ));
        }
        if self.retry_after > Duration::from_secs(3600) {
            return Err(MockConfigError::new(
                "retry_after",
                "at most an hour",
                self.retry_after,
            ));
        }
        if self.retry_after_grace >= self.retry_after {
            return Err(MockConfigError::new(
                "retry_after_grace",
                "shorter than retry_after",
                self.retry_after_grace,
            ));
        }
        if self.stall_for > Duration::from_secs(3600) {
            return Err(MockConfigError::new(
                "stall_for",
                "at most an hour",
                self.stall_for,
            ));
        }
        Ok(())
    }
}

/// A mock API setting was refused.
#[derive(Debug, Clone, PartialEq)]
pub struct MockConfigError {
    /// The refused field.
    pub field: &'static str,
    /// What it accepts.
    pub expected: &'static str,
    /// The refused value, as text.
    pub got: String,
}

impl MockConfigError {
    fn new(field: &'static str, expected: &'static str, got: impl fmt::Debug) -> Self {
        MockConfigError {
            field,
            expected,
            got: format!("{got:?}"),
        }
    }
}

impl fmt::Display for MockConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} must be {}, got {}",
            self.field, self.expected, self.got
        )
    }
}

impl std::error::Error for MockConfigError {}

fn check_unit(field: &'static str, x: f64) -> Result<(), MockConfigError> {
    if !(x.is_finite() && (0.0..=1.0).contains(&x)) {
        return Err(MockConfigError::new(field, "between 0 and 1", x));
    }
    Ok(())
}
