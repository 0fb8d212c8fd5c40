//! Counting, after a run, from NATS itself rather than from the workers'
//! word (a killed worker's counters die with it).
//!
//! - **lost**: published ids with no record in the outcome bucket, each id
//!   read back with [`WorkQueue::outcome`].
//! - **duplicated**: outcome writes beyond one per key. The bucket is a
//!   stream, `KV_<bucket>`, keeping one message per key, so its message
//!   count is the number of distinct keys; but every accepted write takes
//!   a new stream sequence, also when it replaces the key's message. So
//!   `last_sequence - messages` counts the writes that landed on a key
//!   already written (a `create` that loses is refused by the server and
//!   takes no sequence). Nothing else writes to or deletes from it.
//! - **redelivered**: records whose `delivery` is above 1 (recorded on a
//!   later delivery than the first: another worker's, after a kill).

use async_nats::jetstream;
use futures::{StreamExt, TryStreamExt};
use gearshift_nats::{Record, Status, WorkQueue};

use super::worker::Done;

/// The key an item is published under.
pub fn item_key(i: u64) -> String {
    format!("item-{i}")
}

/// What the outcome bucket holds for ids `0..items`.
#[derive(Debug, Default)]
pub struct Outcomes {
    /// Ids with a record.
    pub recorded: u64,
    /// Records with `delivery > 1`.
    pub redelivered: u64,
    /// Records with status `failed`.
    pub failed: u64,
    /// `(taken_ms, delivery)` of every `ok` record with a value.
    pub taken: Vec<(u64, u32)>,
}

/// Reads the record of every id, 64 at a time.
///
/// # Errors
///
/// The bucket cannot be read.
pub async fn outcomes(queue: &WorkQueue, items: u64) -> anyhow::Result<Outcomes> {
    let records: Vec<Option<Record>> = futures::stream::iter(0..items)
        .map(|i| async move { queue.outcome(&item_key(i)).await })
        .buffer_unordered(64)
        .try_collect()
        .await?;
    let mut out = Outcomes::default();
    for record in records.into_iter().flatten() {
        out.recorded += 1;
        if record.delivery > 1 {
            out.redelivered += 1;
        }
        if record.status == Status::Failed {
            out.failed += 1;
        }
        if let Some(done) = record
            .value
            .and_then(|v| serde_json::from_value::<Done>(v).ok())
        {
            out.taken.push((done.taken_ms, record.delivery));
        }
    }
    Ok(out)
}

/// `(distinct keys, writes)` of the outcome bucket's stream: its message
/// count and its last sequence.
///
/// # Errors
///
/// The stream cannot be read (the server is down, say).
pub async fn bucket_writes(js: &jetstream::Context, bucket: &str) -> anyhow::Result<(u64, u64)> {
    let mut stream = js.get_stream(format!("KV_{bucket}")).await?;
    let info = stream.info().await?;
    Ok((info.state.messages, info.state.last_sequence))
}

/// Seconds from `killed_ms` until the last redelivered item taken before
/// `until_ms` was taken: when the dead worker's items had all moved on.
/// `None` if none was.
pub fn redelivery_s(taken: &[(u64, u32)], killed_ms: u64, until_ms: u64) -> Option<f64> {
    taken
        .iter()
        .filter(|&&(at, delivery)| delivery > 1 && at >= killed_ms && at < until_ms)
        .map(|&(at, _)| at - killed_ms)
        .max()
        .map(|ms| ms as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::redelivery_s;

    #[test]
    fn redelivery_counts_only_later_deliveries_in_the_window() {
        let taken = [(900, 2), (1_500, 1), (2_000, 2), (3_100, 2), (9_000, 2)];
        assert_eq!(redelivery_s(&taken, 1_000, 5_000), Some(2.1));
        assert_eq!(redelivery_s(&taken[..2], 1_000, 5_000), None);
    }
}
