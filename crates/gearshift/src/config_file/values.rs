//! How the values that are not plain numbers are written in a config file:
//! durations as humans write them (`"250ms"`, `"30s"`, `"1h 30m"`, read by
//! `jiff`), `"off"` for an optional duration, and the small enums
//! ([`Agents`], [`Order`], [`OnError`]).
//!
//! These are serde `Visitor`s, not a parser: the TOML is the `toml`
//! crate's, the durations `jiff`'s. Each refuses a value with a message
//! that shows how to write it, and the loader adds the file and the key.

use std::fmt;
use std::time::Duration;

use jiff::SignedDuration;
use serde::de::{self, Deserializer, MapAccess, Visitor, value::MapAccessDeserializer};
use serde::{Deserialize, Serialize, Serializer};

use crate::config::{Agents, OnError, Order};

/// A duration written with its unit: `"250ms"`, `"30s"`, `"1h 30m"` (or
/// ISO 8601, `"PT30S"`). A bare number is refused: its unit would be a
/// guess.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct HumanDuration(pub(super) Duration);

/// An optional duration: a duration, or `"off"` for none.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct MaybeDuration(pub(super) Option<Duration>);

/// `agents = "auto"`, `agents = 24` (in all) or `agents = { per_core = 2.5 }`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct AgentsValue(pub(super) Agents);

/// `order = "unordered"` or `order = { window = 256 }` (in input order,
/// with a reorder window of 256 items).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct OrderValue(pub(super) Order);

/// `on_error = "continue"` or `on_error = "cancel"`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum OnErrorValue {
    Continue,
    Cancel,
}

/// Formats a duration the way a person would write it in the file.
pub(super) fn format_duration(d: Duration) -> String {
    match SignedDuration::try_from(d) {
        Ok(sd) => format!("{sd:#}"),
        Err(_) => format!("{}s", d.as_secs()),
    }
}

/// Reads a duration string (used by every duration visitor).
fn parse_duration<E: de::Error>(s: &str) -> Result<Duration, E> {
    let sd: SignedDuration = s.trim().parse().map_err(|e| {
        E::custom(format!(
            "{s:?} is not a duration ({e}): write it as \"250ms\", \"30s\" or \"1h 30m\""
        ))
    })?;
    Duration::try_from(sd).map_err(|_| E::custom(format!("{s:?} is negative: a duration is >= 0")))
}

/// A bare number where a duration belongs: say which unit to write.
fn number_is_not_a_duration<E: de::Error>(n: impl fmt::Display) -> E {
    E::custom(format!(
        "a duration needs a unit: write \"{n}s\" or \"{n}ms\", not {n}"
    ))
}

struct DurationVisitor {
    off: bool,
}

impl<'de> Visitor<'de> for DurationVisitor {
    type Value = Option<Duration>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as \"250ms\" or \"30s\"")?;
        if self.off {
            f.write_str(", or \"off\"")?;
        }
        Ok(())
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        if self.off && matches!(s.trim(), "off" | "none") {
            return Ok(None);
        }
        parse_duration(s).map(Some)
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
        Err(number_is_not_a_duration(n))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
        Err(number_is_not_a_duration(n))
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Self::Value, E> {
        Err(number_is_not_a_duration(n))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = d.deserialize_any(DurationVisitor { off: false })?;
        Ok(HumanDuration(v.unwrap_or_default()))
    }
}

impl<'de> Deserialize<'de> for MaybeDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DurationVisitor { off: true })
            .map(MaybeDuration)
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(self.0))
    }
}

impl Serialize for MaybeDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(d) => s.serialize_str(&format_duration(d)),
            None => s.serialize_str("off"),
        }
    }
}

/// `{ per_core = 2.5 }`.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct PerCore {
    per_core: f64,
}

/// `{ window = 256 }`.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Window {
    window: usize,
}

struct AgentsVisitor;

impl<'de> Visitor<'de> for AgentsVisitor {
    type Value = Agents;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"auto\", a number of agents, or { per_core = 2.5 }")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Agents, E> {
        match s.trim() {
            "auto" => Ok(Agents::Auto),
            _ => Err(E::invalid_value(de::Unexpected::Str(s), &self)),
        }
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Agents, E> {
        usize::try_from(n)
            .map(Agents::Total)
            .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(n), &self))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Agents, E> {
        u64::try_from(n)
            .map_err(|_| E::invalid_value(de::Unexpected::Signed(n), &self))
            .and_then(|n| self.visit_u64(n))
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Agents, E> {
        Err(E::custom(format!(
            "agents = {n} is ambiguous: write agents = {{ per_core = {n} }} for agents per core"
        )))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Agents, A::Error> {
        let PerCore { per_core } = PerCore::deserialize(MapAccessDeserializer::new(map))?;
        Ok(Agents::PerCore(per_core))
    }
}

impl<'de> Deserialize<'de> for AgentsValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(AgentsVisitor).map(AgentsValue)
    }
}

impl Serialize for AgentsValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Agents::Auto => s.serialize_str("auto"),
            Agents::Total(n) => s.serialize_u64(n as u64),
            Agents::PerCore(per_core) => PerCore { per_core }.serialize(s),
        }
    }
}

struct OrderVisitor;

impl<'de> Visitor<'de> for OrderVisitor {
    type Value = Order;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"unordered\", or { window = 256 } for input order")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Order, E> {
        match s.trim() {
            "unordered" => Ok(Order::Unordered),
            "ordered" => Err(E::custom(
                "input order needs a reorder window: write order = { window = 256 }",
            )),
            _ => Err(E::invalid_value(de::Unexpected::Str(s), &self)),
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Order, A::Error> {
        let Window { window } = Window::deserialize(MapAccessDeserializer::new(map))?;
        Ok(Order::Ordered { window })
    }
}

impl<'de> Deserialize<'de> for OrderValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(OrderVisitor).map(OrderValue)
    }
}

impl Serialize for OrderValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Order::Unordered => s.serialize_str("unordered"),
            Order::Ordered { window } => Window { window }.serialize(s),
        }
    }
}

impl From<OnErrorValue> for OnError {
    fn from(v: OnErrorValue) -> OnError {
        match v {
            OnErrorValue::Continue => OnError::Continue,
            OnErrorValue::Cancel => OnError::Cancel,
        }
    }
}

impl From<OnError> for OnErrorValue {
    fn from(v: OnError) -> OnErrorValue {
        match v {
            OnError::Continue => OnErrorValue::Continue,
            OnError::Cancel => OnErrorValue::Cancel,
        }
    }
}
