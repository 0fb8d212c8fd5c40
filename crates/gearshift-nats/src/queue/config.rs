//! [`QueueConfig`]: the names and timings of one work queue, checked
//! before anything talks to the server.

use std::time::Duration;

use crate::error::Error;

/// The most items one worker may hold at once.
pub const MAX_HELD: usize = 65_536;
/// The longest `ack_wait` (and any other duration) accepted.
pub const MAX_WAIT: Duration = Duration::from_secs(3600);
/// The shortest `ack_wait`: heartbeats go every third of it.
pub const MIN_ACK_WAIT: Duration = Duration::from_millis(300);
/// The most deliveries an item may be given.
pub const MAX_ATTEMPTS: u32 = 1_000;

/// The names and timings of a work queue, shared by its producers and
/// workers: every process of a job should use the same values.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use gearshift_nats::QueueConfig;
///
/// let config = QueueConfig::new("thumbnails")
///     .ack_wait(Duration::from_secs(10))
///     .max_held(128)
///     .max_attempts(3);
/// assert!(config.validate().is_ok());
/// assert_eq!(config.subject(), "gearshift.thumbnails");
/// ```
#[derive(Debug, Clone)]
pub struct QueueConfig {
    pub(crate) name: String,
    pub(crate) ack_wait: Duration,
    pub(crate) max_held: usize,
    pub(crate) max_batch: usize,
    pub(crate) fetch_expiry: Duration,
    pub(crate) max_attempts: u32,
    pub(crate) nak_delay: Duration,
    pub(crate) stop_when_idle: Option<Duration>,
    pub(crate) max_ack_pending: i64,
}

impl QueueConfig {
    /// A queue named `name`: stream `name`, subject `gearshift.<name>`,
    /// durable consumer `<name>-workers` and outcome bucket
    /// `<name>-outcomes`. The name may hold letters, digits, `-` and `_`.
    pub fn new(name: impl Into<String>) -> QueueConfig {
        QueueConfig {
            name: name.into(),
            ack_wait: Duration::from_secs(30),
            max_held: 64,
            max_batch: 64,
            fetch_expiry: Duration::from_secs(1),
            max_attempts: 5,
            nak_delay: Duration::from_secs(1),
            stop_when_idle: None,
            max_ack_pending: 20_000,
        }
    }

    /// How long the server waits for an item's ack (or heartbeat) before it
    /// redelivers the item to another worker: the time a dead worker's
    /// items take to move on. Held items get a heartbeat every third of it.
    /// By default, 30 s.
    pub fn ack_wait(mut self, ack_wait: Duration) -> Self {
        self.ack_wait = ack_wait;
        self
    }

    /// The most items a worker holds at once (fetched and not yet
    /// settled): set it to the pipeline's capacity (its `max_in_flight`),
    /// as fetches never ask for more than the free room. By default, 64.
    pub fn max_held(mut self, max_held: usize) -> Self {
        self.max_held = max_held;
        self
    }

    /// The most items one fetch asks for. By default, 64.
    pub fn max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch;
        self
    }

    /// How long a fetch waits on the server for items before it ends empty.
    /// By default, 1 s.
    pub fn fetch_expiry(mut self, expiry: Duration) -> Self {
        self.fetch_expiry = expiry;
        self
    }

    /// The deliveries an item may get: one more and it is recorded as
    /// `Failed` and terminated. Deliveries are counted by the server, so a
    /// worker that died or shut down with the item counts as one. By
    /// default, 5.
    pub fn max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts;
        self
    }

    /// The delay of the nak that hands a held item back on shutdown (so
    /// another worker, not this one on its way out, takes it). By default,
    /// 1 s.
    pub fn nak_delay(mut self, delay: Duration) -> Self {
        self.nak_delay = delay;
        self
    }

    /// Ends a worker's items (and so its pipeline) once the queue has been
    /// empty for this long and it holds nothing; for batch jobs and tests.
    /// By default, `None`: it runs until stopped.
    pub fn stop_when_idle(mut self, idle: Option<Duration>) -> Self {
        self.stop_when_idle = idle;
        self
    }

    /// The stream's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The subject items are published on: `gearshift.<name>`.
    pub fn subject(&self) -> String {
        format!("gearshift.{}", self.name)
    }

    /// The durable consumer all workers share: `<name>-workers`.
    pub fn consumer(&self) -> String {
        format!("{}-workers", self.name)
    }

    /// The key-value bucket of the outcomes: `<name>-outcomes`.
    pub fn outcome_bucket(&self) -> String {
        format!("{}-outcomes", self.name)
    }

    /// Checks every setting.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the first setting out of range.
    pub fn validate(&self) -> Result<(), Error> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !name_ok {
            return Err(Error::config(
                "name",
                &self.name,
                "1 to 64 letters, digits, '-' or '_'",
            ));
        }
        if !(MIN_ACK_WAIT..=MAX_WAIT).contains(&self.ack_wait) {
            return Err(Error::config(
                "ack_wait",
                format_args!("{:?}", self.ack_wait),
                "between 300 ms and 1 h",
            ));
        }
        if !(1..=MAX_HELD).contains(&self.max_held) {
            return Err(Error::config("max_held", self.max_held, "1 to 65536"));
        }
        if !(1..=MAX_HELD).contains(&self.max_batch) {
            return Err(Error::config("max_batch", self.max_batch, "1 to 65536"));
        }
        if !(Duration::from_millis(10)..=MAX_WAIT).contains(&self.fetch_expiry) {
            return Err(Error::config(
                "fetch_expiry",
                format_args!("{:?}", self.fetch_expiry),
                "between 10 ms and 1 h",
            ));
        }
        if !(1..=MAX_ATTEMPTS).contains(&self.max_attempts) {
            return Err(Error::config(
                "max_attempts",
                self.max_attempts,
                "1 to 1000",
            ));
        }
        if self.nak_delay > MAX_WAIT {
            return Err(Error::config(
                "nak_delay",
                format_args!("{:?}", self.nak_delay),
                "at most 1 h",
            ));
        }
        if self.stop_when_idle.is_some_and(|d| d > MAX_WAIT) {
            return Err(Error::config(
                "stop_when_idle",
                format_args!("{:?}", self.stop_when_idle),
                "at most 1 h",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_out_of_range_name_the_field() {
        let e = QueueConfig::new("a.b").validate().unwrap_err();
        assert!(e.to_string().starts_with("name must be"), "{e}");
        let e = QueueConfig::new("q")
            .ack_wait(Duration::from_millis(1))
            .validate()
            .unwrap_err();
        assert!(e.to_string().starts_with("ack_wait must be"), "{e}");
        let e = QueueConfig::new("q").max_held(0).validate().unwrap_err();
        assert_eq!(e.to_string(), "max_held must be 1 to 65536, got 0");
        let e = QueueConfig::new("q")
            .max_attempts(0)
            .validate()
            .unwrap_err();
        assert_eq!(e.to_string(), "max_attempts must be 1 to 1000, got 0");
    }
}
