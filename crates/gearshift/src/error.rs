//! Errors: what a stage function returns ([`StageError`]), why an item failed
//! ([`ErrorKind`]), and why a configuration was refused ([`ConfigError`]).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Why an attempt failed. It decides whether the attempt is retried by default
/// and which bucket of the report's failure histogram the item lands in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The remote answered 5xx.
    Server,
    /// The attempt ran past `api_timeout`, or the item past its deadline.
    Timeout,
    /// The connection was reset or refused.
    Reset,
    /// The remote said stop: 429, or 503 with `Retry-After`.
    RateLimited,
    /// The answer arrived but was unusable: truncated, too large, malformed.
    BadPayload,
    /// The remote refused the request itself (4xx other than 429): never retried.
    Rejected,
    /// The stage function panicked: never retried.
    Panic,
    /// Anything else the stage function returned.
    Other,
}

impl ErrorKind {
    /// Every kind, in report order.
    pub const ALL: [ErrorKind; 8] = [
        ErrorKind::Server,
        ErrorKind::Timeout,
        ErrorKind::Reset,
        ErrorKind::RateLimited,
        ErrorKind::BadPayload,
        ErrorKind::Rejected,
        ErrorKind::Panic,
        ErrorKind::Other,
    ];

    /// The kind's place in [`ALL`](Self::ALL), which lists the kinds in
    /// the order they are declared.
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// Whether the default retry policy retries this kind.
    pub fn is_transient(self) -> bool {
        !matches!(self, ErrorKind::Rejected | ErrorKind::Panic)
    }

    /// A short snake_case name for tables, JSON and tracing fields.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Server => "server_5xx",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Reset => "reset",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::BadPayload => "bad_payload",
            ErrorKind::Rejected => "rejected_4xx",
            ErrorKind::Panic => "panic",
            ErrorKind::Other => "other",
        }
    }
}

/// Written as [`as_str`](ErrorKind::as_str) (feature `serde`), as in the
/// report's tables and tracing fields.
#[cfg(feature = "serde")]
impl serde::Serialize for ErrorKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error a stage function returns.
///
/// Any `std::error::Error` converts into it with `?` (as [`ErrorKind::Other`]);
/// the constructors set a kind so the retry policy and the report can tell
/// a timeout from a 5xx. It is cheap to clone, so a [`Failure`](crate::Failure)
/// can be both logged and handed to a dead-letter sink.
#[derive(Clone)]
pub struct StageError {
    kind: ErrorKind,
    retry_after: Option<Duration>,
    source: Arc<dyn std::error::Error + Send + Sync>,
}

impl StageError {
    /// An error of the given kind, wrapping `source`.
    pub fn new(
        kind: ErrorKind,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        StageError {
            kind,
            retry_after: None,
            source: Arc::from(source.into()),
        }
    }

    /// An error of the given kind with a plain message.
    pub fn msg(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self::new(kind, message.into())
    }

    /// The remote asked to be left alone for `retry_after`: the whole IO
    /// stage pauses until then, and the attempt is retried afterwards.
    pub fn rate_limited(retry_after: Option<Duration>) -> Self {
        let mut e = Self::msg(ErrorKind::RateLimited, "rate limited by the remote");
        e.retry_after = retry_after;
        e
    }

    /// Sets the pause the remote asked for (from a `Retry-After` header).
    pub fn with_retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = Some(retry_after);
        self
    }

    /// Why the attempt failed.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The pause the remote asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The underlying error.
    pub fn source_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.source
    }
}

impl<E> From<E> for StageError
where
    E: std::error::Error + Send + Sync + 'static,
{
    fn from(e: E) -> Self {
        StageError::new(ErrorKind::Other, e)
    }
}

impl fmt::Display for StageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.source)
    }
}

impl fmt::Debug for StageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StageError")
            .field("kind", &self.kind)
            .field("retry_after", &self.retry_after)
            .field("source", &self.source)
            .finish()
    }
}

/// A configuration value was refused, at build time or on a runtime change.
///
/// The message names the field and the value, e.g.
/// `agents_per_core must be a finite number > 0, got NaN`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}{field} must be {expected}, got {got}", scope.as_ref().map(|s| format!("{s}: ")).unwrap_or_default())]
pub struct ConfigError {
    /// Where the field is, when it is not the pipeline's `Config`: a stage
    /// (`"stage upload"`) or an API budget (`"api search"`).
    pub scope: Option<String>,
    /// The field that was refused.
    pub field: &'static str,
    /// What the field accepts.
    pub expected: &'static str,
    /// The refused value, as text.
    pub got: String,
}

impl ConfigError {
    pub(crate) fn new(field: &'static str, expected: &'static str, got: impl fmt::Debug) -> Self {
        ConfigError {
            scope: None,
            field,
            expected,
            got: format!("{got:?}"),
        }
    }

    /// The same error, placed in a stage or an API budget.
    pub(crate) fn within(mut self, scope: String) -> Self {
        self.scope = Some(scope);
        self
    }
}

/// No stage or API budget has the name asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no {what} named {name:?} (the pipeline has: {})", known.join(", "))]
pub struct LookupError {
    /// `"stage"` or `"api"`.
    pub what: &'static str,
    /// The name asked for.
    pub name: String,
    /// The names there are.
    pub known: Vec<String>,
}

impl LookupError {
    pub(crate) fn new(what: &'static str, name: &str, known: &[std::sync::Arc<str>]) -> Self {
        LookupError {
            what,
            name: name.to_owned(),
            known: known.iter().map(|n| n.to_string()).collect(),
        }
    }
}

/// A pipeline could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The configuration was refused.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// `spawn` was called outside a tokio runtime.
    #[error("spawn must be called from within a tokio runtime (use `run_blocking` otherwise)")]
    NoRuntime,
    /// `run_blocking` was called inside a tokio runtime, where starting a
    /// runtime of its own would panic.
    #[error(
        "run_blocking was called inside a tokio runtime: await `run()` there instead \
         (or, on a blocking thread of that runtime, `Handle::current().block_on(pipeline.run())`)"
    )]
    InsideRuntime,
    /// The rayon pool for the CPU stages could not be built.
    #[error("could not build the rayon pool: {0}")]
    Pool(String),
    /// The pipeline has no stage.
    #[error("a pipeline needs at least one stage")]
    NoStages,
    /// Two stages, or two different API budgets, have the same name.
    #[error("two stages or two different APIs are named {0:?}: names must be unique")]
    DuplicateName(String),
    /// A per-stage setting was given where it does not apply (before any
    /// stage, or to a stage of the other kind).
    #[error("{setting}(..) {problem}")]
    StageSetting {
        /// The builder method.
        setting: &'static str,
        /// What was wrong.
        problem: &'static str,
    },
}
