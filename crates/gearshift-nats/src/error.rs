//! The crate's one error type: what went wrong talking to NATS, or with
//! a setting, named so a caller can decide whether to retry.

/// An error of gearshift-nats.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is out of its range: the field, the value and the range.
    #[error("{field} must be {expected}, got {value}")]
    Config {
        /// The setting's name.
        field: &'static str,
        /// The value given, as text.
        value: String,
        /// What it must be.
        expected: &'static str,
    },
    /// An item key that cannot be used (empty, or too long).
    #[error("item key {key:?} is invalid: {reason}")]
    InvalidKey {
        /// The key given.
        key: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A JetStream request failed (stream, consumer, key-value, publish):
    /// what was being done and the client's error.
    #[error("{op} failed: {source}")]
    Nats {
        /// What was being done ("create stream JOBS", "publish", ...).
        op: String,
        /// The client's error.
        #[source]
        source: async_nats::Error,
    },
    /// A local nats-server could not be started or restarted.
    #[error("nats-server: {0}")]
    Server(String),
    /// An I/O error (temporary store directory, the server's process).
    #[error("{op}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Wraps a client error with what was being done.
    pub(crate) fn nats(op: impl Into<String>, source: impl Into<async_nats::Error>) -> Self {
        Error::Nats {
            op: op.into(),
            source: source.into(),
        }
    }

    /// A setting out of its range.
    pub(crate) fn config(
        field: &'static str,
        value: impl std::fmt::Display,
        expected: &'static str,
    ) -> Self {
        Error::Config {
            field,
            value: value.to_string(),
            expected,
        }
    }
}
