//! What became of each input item: exactly one [`Outcome`] per item; and
//! which item and attempt a stage function's [`Call`] is for.

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
        /// The attempts its IO calls took, summed over the IO stages it went
        /// through: one per IO stage when nothing was retried, so `attempts`
        /// minus the IO stages is the retries it needed. CPU stages add none
        /// (they run once and never retry), so a pipeline of CPU stages only
        /// gives 0. Each attempt of a batch call counts for every item in it.
        attempts: u32,
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

/// Which call an IO stage function is making, as
/// [`Pipeline::io_with`](crate::Pipeline::io_with) hands it over with the
/// value: the item it is for and which attempt this is, so a request can be
/// tied to its item's [`Outcome`] (in logs, traces, idempotency keys)
/// without carrying the id inside the value.
///
/// ```
/// use gearshift::{Call, Outcome, Pipeline, StageError};
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (outcomes, _report) = Pipeline::from_iter(["a", "b"])
///     .io_with(|name, call: Call| async move {
///         // The same key on every retry of the item, and a fresh one per item.
///         let key = format!("job-{}", call.item);
///         Ok::<_, StageError>(format!("{key} {name}, attempt {}", call.attempt))
///     })
///     .collect()
///     .await?;
/// for outcome in outcomes {
///     if let Outcome::Ok { id, value, attempts } = outcome {
///         assert_eq!(value, format!("job-{id} {}, attempt {attempts}", ["a", "b"][id as usize]));
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Call {
    /// The item the call is for: the id of its [`Outcome`].
    pub item: ItemId,
    /// Which attempt this is at this stage: 1 for the first, then one more
    /// per retry, up to the stage's `RetryPolicy::max_attempts`.
    pub attempt: u32,
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
