//! Durations written as seconds (a float) when a report is serialized
//! (feature `serde`): `"elapsed": 2.31` reads better in JSON, and in any
//! tool that loads it, than serde's default `{"secs": 2, "nanos": 310000000}`.

use std::time::Duration;

use serde::Serializer;

/// A duration as seconds.
pub(crate) fn secs<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// An optional duration as seconds, or null.
pub(crate) fn opt_secs<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&d.as_secs_f64()),
        None => s.serialize_none(),
    }
}
