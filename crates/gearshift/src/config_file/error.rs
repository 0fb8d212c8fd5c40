//! [`ConfigFileError`]: why a config file (or a `GEARSHIFT_*` variable over
//! it) was refused, with the file, the key and, for a value the builders
//! would refuse too, their own [`ConfigError`].

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::ConfigError;

/// A config file could not be read, parsed or accepted.
///
/// The message names where the value came from (the file's path, or the
/// environment variable that overrode it) and the key, e.g.
/// `gearshift.toml: apis.search.rate_limit: api search: rate_limit must be a
/// finite number of calls per second between 1e-6 and 1e9, got -5.0`.
#[derive(Debug)]
pub struct ConfigFileError {
    /// Boxed: a `Result` carrying it stays small.
    inner: Box<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    env_var: Option<String>,
    key: String,
    kind: ConfigFileErrorKind,
}

/// What was wrong, by kind.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConfigFileErrorKind {
    /// The file could not be read.
    Read(io::Error),
    /// The file is not valid TOML (the message shows the line).
    Syntax(toml::de::Error),
    /// A key the layout does not have: a typo, or a setting that does not
    /// exist (the message lists the keys there are).
    UnknownKey(String),
    /// A value of the wrong type or form: a number for a duration, a
    /// duration without a unit, an unknown preset name.
    BadValue(String),
    /// A value the builders refuse too, with their error.
    Invalid(ConfigError),
}

/// A problem at a key, before the loader says where the key came from.
#[derive(Debug)]
pub(super) struct Problem {
    pub(super) key: String,
    /// Boxed: a `Result` carrying it stays small.
    pub(super) kind: Box<ConfigFileErrorKind>,
}

impl ConfigFileError {
    pub(super) fn new(path: &Path, env_var: Option<String>, problem: Problem) -> Self {
        let inner = Inner {
            path: path.to_owned(),
            env_var,
            key: problem.key,
            kind: *problem.kind,
        };
        ConfigFileError {
            inner: Box::new(inner),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The environment variable the refused value came from, if it did not
    /// come from the file.
    pub fn env_var(&self) -> Option<&str> {
        self.inner.env_var.as_deref()
    }

    /// The refused key, dotted (`apis.search.rate_limit`); empty when the
    /// file as a whole was refused (unreadable, not TOML).
    pub fn key(&self) -> &str {
        &self.inner.key
    }

    /// What was wrong.
    pub fn kind(&self) -> &ConfigFileErrorKind {
        &self.inner.kind
    }

    /// The builders' own error, for a value they would refuse too.
    pub fn config_error(&self) -> Option<&ConfigError> {
        match &self.inner.kind {
            ConfigFileErrorKind::Invalid(e) => Some(e),
            _ => None,
        }
    }
}

impl Problem {
    pub(super) fn new(key: impl Into<String>, kind: ConfigFileErrorKind) -> Problem {
        Problem {
            key: key.into(),
            kind: Box::new(kind),
        }
    }

    pub(super) fn bad_value(key: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem::new(key, ConfigFileErrorKind::BadValue(message.into()))
    }
}

impl fmt::Display for ConfigFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner.env_var {
            Some(var) => write!(f, "{var} (over {})", self.inner.path.display())?,
            None => write!(f, "{}", self.inner.path.display())?,
        }
        if !self.inner.key.is_empty() {
            write!(f, ": {}", self.inner.key)?;
        }
        match &self.inner.kind {
            ConfigFileErrorKind::Read(e) => write!(f, ": cannot read the file: {e}"),
            ConfigFileErrorKind::Syntax(e) => write!(f, ": not valid TOML: {e}"),
            ConfigFileErrorKind::UnknownKey(m) => write!(f, ": {m}"),
            ConfigFileErrorKind::BadValue(m) => write!(f, ": {m}"),
            ConfigFileErrorKind::Invalid(e) => write!(f, ": {e}"),
        }
    }
}

/// The message carries the whole chain (the builders' error included), so
/// `source` is left empty and a report does not print it twice; the typed
/// error is [`kind`](ConfigFileError::kind).
impl std::error::Error for ConfigFileError {}
