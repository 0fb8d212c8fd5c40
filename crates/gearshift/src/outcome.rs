//! What became of each input item: exactly one [`Outcome`] per item.

use std::fmt;
use std::sync::Arc;

use crate::error::{ErrorKind, StageError};

/// The identity of an input item: its position in the source, from 0.
pub type ItemId = u64;

/// The one result every input item ends as.
#[derive(Debug, Clone)]
pub enum Outcome<T> {
    /// The item went through every stage.
    Ok {
        /// Which input item this is.
        id: ItemId,
        /// What the last stage produced.
        value: T,
    },
    /// A stage gave up on the item.
    Failed(Failure),
    /// The pipeline was cancelled before the item finished.
    Cancelled {
        /// Which input item this is.
        id: ItemId,
    },
}

impl<T> Outcome<T> {
    /// The input item this outcome belongs to.
    pub fn id(&self) -> ItemId {
        match self {
            Outcome::Ok { id, .. } | Outcome::Cancelled { id } => *id,
            Outcome::Failed(f) => f.item,
        }
    }

    /// The value, if the item succeeded.
    pub fn ok(self) -> Option<T> {
        match self {
            Outcome::Ok { value, .. } => Some(value),
            _ => None,
        }
    }

    /// Whether the item succeeded.
    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Ok { .. })
    }
}

/// A recorded failure: which item, where, why, and after how many attempts.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The input item that failed.
    pub item: ItemId,
    /// The name of the stage that gave up.
    pub stage: Arc<str>,
    /// The last error.
    pub error: StageError,
    /// How many attempts were made (1 when there was no retry).
    pub attempts: u32,
}

impl Failure {
    /// Why the item failed.
    pub fn kind(&self) -> ErrorKind {
        self.error.kind()
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "item {} failed in stage {} after {} attempt(s): {}",
            self.item, self.stage, self.attempts, self.error
        )
    }
}
