//! The leader's view of the members: a key-value watch on their records.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::kv::{Operation, Store};
use futures::StreamExt;
use tokio::task::JoinHandle;

use super::record::MemberRecord;

/// A member as the leader last saw it.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub record: MemberRecord,
    pub revision: u64,
    /// When its record last changed, by the leader's clock.
    pub changed_at: Instant,
}

pub(crate) type Members = Arc<Mutex<HashMap<String, Seen>>>;

/// Follows the members' records into `members`, starting over after an
/// error.
pub(crate) fn follow(
    kv: Store,
    filter: String,
    members: Members,
    renewal: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match kv.watch_with_history(&filter).await {
                Ok(mut watch) => {
                    while let Some(Ok(entry)) = watch.next().await {
                        let id = entry.key.rsplit('.').next().unwrap_or_default().to_owned();
                        let mut m = members.lock().unwrap_or_else(|e| e.into_inner());
                        let record = (entry.operation == Operation::Put)
                            .then(|| serde_json::from_slice::<MemberRecord>(&entry.value).ok())
                            .flatten();
                        match record {
                            // A watch that starts over delivers the last
                            // records again: only a new revision is a sign
                            // of life.
                            Some(_) if m.get(&id).is_some_and(|s| s.revision == entry.revision) => {
                            }
                            Some(record) => {
                                let seen = Seen {
                                    record,
                                    revision: entry.revision,
                                    changed_at: Instant::now(),
                                };
                                m.insert(id, seen);
                            }
                            None => {
                                m.remove(&id);
                            }
                        }
                    }
                }
                Err(e) => tracing::debug!(error = %e, "member watch failed"),
            }
            tokio::time::sleep(renewal).await;
        }
    })
}
