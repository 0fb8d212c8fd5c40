//! What is stored per item in the outcome bucket, and under which key.

use async_nats::jetstream;
use gearshift::Outcome;
use serde::{Deserialize, Serialize};

/// The header that names an item: its key, set by the producer.
pub(crate) const MSG_ID: &str = "Nats-Msg-Id";

/// An item's recorded outcome, as stored (JSON) in the outcome bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Record {
    /// `ok`, `failed` or `cancelled`.
    pub status: Status,
    /// The deliveries the item had when this was recorded (1 on the first).
    pub delivery: u32,
    /// The stage that gave up (failures only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// Why it failed (failures only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The last stage's output (`ok` only), as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
}

/// The kind of a [`Record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// It went through every stage.
    Ok,
    /// A stage gave up, or its deliveries were used up.
    Failed,
    /// The job was cancelled before it finished.
    Cancelled,
}

impl Record {
    /// The record of a pipeline outcome at delivery `delivery`.
    pub(crate) fn of<T: Serialize>(outcome: &Outcome<T>, delivery: u32) -> Record {
        let mut record = Record {
            status: Status::Ok,
            delivery,
            stage: None,
            error: None,
            value: None,
        };
        match outcome {
            Outcome::Ok { value, .. } => {
                record.value = match serde_json::to_value(value) {
                    Ok(v) if !v.is_null() => Some(v),
                    Ok(_) => None,
                    Err(e) => {
                        tracing::warn!(error = %e, "the outcome's value cannot be stored as JSON; recorded without it");
                        None
                    }
                };
            }
            Outcome::Failed(f) => {
                record.status = Status::Failed;
                record.stage = Some(f.stage.to_string());
                record.error = Some(f.error.to_string());
            }
            Outcome::Cancelled { .. } => record.status = Status::Cancelled,
        }
        record
    }

    /// The record of an item whose deliveries are used up.
    pub(crate) fn exhausted(delivery: u32, max_attempts: u32) -> Record {
        Record {
            status: Status::Failed,
            delivery,
            stage: Some("queue".into()),
            error: Some(format!(
                "delivered {delivery} times, more than max_attempts {max_attempts}"
            )),
            value: None,
        }
    }

    /// As stored.
    pub(crate) fn to_bytes(&self) -> bytes::Bytes {
        serde_json::to_vec(self)
            .expect("a Record always serializes")
            .into()
    }
}

/// The key of a message's outcome: its `Nats-Msg-Id` (prefix `m.`, or
/// `x.` and the id in hex when it holds characters a key may not), else its
/// stream sequence (prefix `s.`). The prefixes keep the three apart.
pub(crate) fn key_of(msg: &jetstream::Message, stream_sequence: u64) -> String {
    let id = msg
        .headers
        .as_ref()
        .and_then(|h| h.get(MSG_ID))
        .map(|v| v.as_str())
        .filter(|id| !id.is_empty());
    match id {
        Some(id) => encode_id(id),
        None => format!("s.{stream_sequence}"),
    }
}

/// The outcome key of a producer's item key.
pub(crate) fn encode_id(id: &str) -> String {
    let plain = id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'=');
    if plain {
        format!("m.{id}")
    } else {
        let hex: String = id.bytes().map(|b| format!("{b:02x}")).collect();
        format!("x.{hex}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_ids_and_sequences_apart() {
        assert_eq!(encode_id("item-7"), "m.item-7");
        assert_eq!(encode_id("a.b"), "x.612e62");
        assert_ne!(encode_id("s.1"), "s.1");
    }

    #[test]
    fn a_record_round_trips() {
        let r = Record::exhausted(6, 5);
        let back: Record = serde_json::from_slice(&r.to_bytes()).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.status, Status::Failed);
    }
}
