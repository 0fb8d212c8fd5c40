//! [`RetryPolicy`]: which errors an IO stage retries, and how long it waits
//! between attempts.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::{MAX_ATTEMPTS, check_duration};
use crate::error::{ConfigError, StageError};

/// A user's choice of which errors to retry.
type RetryPredicate = Arc<dyn Fn(&StageError) -> bool + Send + Sync>;

/// Which errors an IO stage retries, and how long it waits between attempts.
#[derive(Clone)]
pub struct RetryPolicy {
    /// Attempts per item and stage, including the first. By default, 3.
    pub max_attempts: u32,
    /// The first backoff; each next one doubles. By default, 50 ms.
    pub initial_backoff: Duration,
    /// The longest backoff. By default, 5 s.
    pub max_backoff: Duration,
    /// Randomise each backoff (full jitter). By default, on.
    pub jitter: bool,
    retry_if: Option<RetryPredicate>,
}

impl RetryPolicy {
    /// Up to `max_attempts` attempts per item (including the first), with
    /// the default backoff.
    pub fn attempts(max_attempts: u32) -> Self {
        RetryPolicy {
            max_attempts,
            ..Self::default()
        }
    }

    /// Sets the first and the longest backoff.
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max;
        self
    }

    /// No retries: one attempt per item.
    pub fn never() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// Retry only errors for which `pred` is true. By default, every error
    /// whose kind [is transient](crate::ErrorKind::is_transient).
    pub fn retry_if(mut self, pred: impl Fn(&StageError) -> bool + Send + Sync + 'static) -> Self {
        self.retry_if = Some(Arc::new(pred));
        self
    }

    /// Whether `err` should be retried (attempts permitting).
    pub fn should_retry(&self, err: &StageError) -> bool {
        match &self.retry_if {
            Some(pred) => pred(err),
            None => err.kind().is_transient(),
        }
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.max_attempts == 0 || self.max_attempts > MAX_ATTEMPTS {
            return Err(ConfigError::new(
                "retry.max_attempts",
                expected!("between 1 and {MAX_ATTEMPTS}"),
                self.max_attempts,
            ));
        }
        check_duration("retry.initial_backoff", self.initial_backoff, false)?;
        check_duration("retry.max_backoff", self.max_backoff, false)?;
        if self.max_backoff < self.initial_backoff {
            return Err(ConfigError::new(
                "retry.max_backoff",
                ">= retry.initial_backoff",
                self.max_backoff,
            ));
        }
        Ok(())
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(5),
            jitter: true,
            retry_if: None,
        }
    }
}

impl fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("max_attempts", &self.max_attempts)
            .field("initial_backoff", &self.initial_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("jitter", &self.jitter)
            .field("retry_if", &self.retry_if.as_ref().map(|_| "custom"))
            .finish()
    }
}
