//! The crate's error type.

/// What went wrong talking to NATS or running a local nats-server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A JetStream request (stream, key-value) failed.
    #[error("jetstream {what} failed: {source}")]
    JetStream {
        /// The request that failed.
        what: &'static str,
        /// Why.
        #[source]
        source: async_nats::Error,
    },
    /// The local nats-server could not be started or stopped.
    #[error("nats-server: {0}")]
    Server(String),
}
