//! [`Schedule`]: switch presets by time of day (the seed's morning and
//! evening) or by time since the pipeline started.
//!
//! # Which time of day?
//!
//! | the switch hours are...                      | use                                   |
//! |----------------------------------------------|---------------------------------------|
//! | wall-clock hours where the work happens      | [`Schedule::time_of_day_in`] (a time zone name, e.g. `"Europe/Berlin"`) |
//! | hours in a zone built in code (POSIX rule, fixed) | [`Schedule::time_of_day_in_zone`] |
//! | hours at a fixed UTC offset                  | [`Schedule::time_of_day`]             |
//!
//! A fixed offset is not a time zone: where clocks change for daylight
//! saving time, a switch set at 06:00 on the winter offset runs at 07:00
//! wall-clock time all summer. A time zone (read through the `jiff` crate,
//! from the system's tz database) follows the clock change, so a "morning"
//! switch stays at the same wall-clock hour all year. The time zone rules
//! are `jiff`'s; this module only picks the preset for an hour.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::preset::Preset;

/// When to switch to which preset. The controller checks it every 250 ms and
/// applies a preset when the scheduled one changes, through the same path as
/// [`PipelineHandle::apply`](crate::PipelineHandle::apply).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use gearshift::{Preset, Schedule};
///
/// // Morning from 06:00 Berlin time (summer or winter), Evening from 14:00.
/// let daily = Schedule::time_of_day_in("Europe/Berlin", [(6, Preset::Morning), (14, Preset::Evening)]);
/// # let daily = daily.or_else(|_| Schedule::time_of_day(60, [(6, Preset::Morning)])); // no tz database
/// assert!(daily.is_ok());
///
/// let ramp = Schedule::after([(Duration::ZERO, Preset::Morning), (Duration::from_secs(600), Preset::Evening)]);
/// assert_eq!(ramp.preset_at(Duration::from_secs(601), std::time::SystemTime::now()), Some(Preset::Evening));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// Presets by hour at a fixed offset from UTC: `(from_hour, preset)`,
    /// sorted by hour, with local time = UTC + `utc_offset_minutes`. It does
    /// **not** follow daylight saving time (see [`Zoned`](Self::Zoned)).
    TimeOfDay {
        /// Local time's offset from UTC, in minutes.
        utc_offset_minutes: i32,
        /// `(from_hour, preset)` pairs, sorted by hour.
        switches: Vec<(u8, Preset)>,
    },
    /// Presets by wall-clock hour in a time zone, daylight saving time
    /// included: `(from_hour, preset)`, sorted by hour.
    Zoned {
        /// The time zone whose clock the hours are read on.
        time_zone: TimeZone,
        /// `(from_hour, preset)` pairs, sorted by hour.
        switches: Vec<(u8, Preset)>,
    },
    /// Presets by time since start: `(after, preset)`, sorted.
    Elapsed(Vec<(Duration, Preset)>),
}

/// The schedule was impossible.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid schedule: {0}")]
pub struct ScheduleError(String);

impl Schedule {
    /// Presets by hour at a fixed offset from UTC, in minutes.
    ///
    /// A fixed offset does not follow daylight saving time: where clocks
    /// change, the switches run an hour off wall-clock time for half the
    /// year. Use [`time_of_day_in`](Self::time_of_day_in) with the time
    /// zone's name unless a fixed offset is what you mean.
    ///
    /// # Errors
    ///
    /// An hour over 23, an offset beyond ±[`MAX_UTC_OFFSET_MINUTES`], or no
    /// switch at all.
    pub fn time_of_day(
        utc_offset_minutes: i32,
        switches: impl IntoIterator<Item = (u8, Preset)>,
    ) -> Result<Self, ScheduleError> {
        let switches = sorted_hours(switches)?;
        if utc_offset_minutes.unsigned_abs() > MAX_UTC_OFFSET_MINUTES {
            return Err(ScheduleError(format!(
                "utc_offset_minutes must be within ±{MAX_UTC_OFFSET_MINUTES}, got {utc_offset_minutes}"
            )));
        }
        Ok(Schedule::TimeOfDay {
            utc_offset_minutes,
            switches,
        })
    }

    /// Presets by wall-clock hour in the time zone named `time_zone` (an
    /// IANA name such as `"Europe/Berlin"` or `"America/New_York"`, looked
    /// up in the system's tz database), daylight saving time included: a
    /// switch at 6 runs at 06:00 on the local clock in winter and summer.
    /// A switch at an hour the clock skips (02:00 in Berlin on the last
    /// Sunday of March) runs when the clock reaches the next hour; in the
    /// hour the clock repeats in autumn, nothing switches twice.
    ///
    /// # Errors
    ///
    /// An unknown time zone (or no tz database on the machine), an hour
    /// over 23, or no switch at all.
    ///
    /// # Examples
    ///
    /// ```
    /// use gearshift::{Preset, Schedule};
    ///
    /// let daily = Schedule::time_of_day_in("America/New_York", [(7, Preset::Morning), (19, Preset::Evening)]);
    /// # if daily.is_err() { return; } // no tz database on this machine
    /// assert!(daily.is_ok());
    /// assert!(Schedule::time_of_day_in("Mars/Olympus_Mons", [(7, Preset::Morning)]).is_err());
    /// ```
    pub fn time_of_day_in(
        time_zone: &str,
        switches: impl IntoIterator<Item = (u8, Preset)>,
    ) -> Result<Self, ScheduleError> {
        let tz = TimeZone::get(time_zone)
            .map_err(|e| ScheduleError(format!("unknown time zone {time_zone:?}: {e}")))?;
        Self::time_of_day_in_zone(tz, switches)
    }

    /// Presets by wall-clock hour in `time_zone`: one from the tz database
    /// ([`TimeZone::get`]), a POSIX rule ([`TimeZone::posix`], for a
    /// machine without a tz database) or a fixed offset.
    ///
    /// # Errors
    ///
    /// An hour over 23, or no switch at all.
    pub fn time_of_day_in_zone(
        time_zone: TimeZone,
        switches: impl IntoIterator<Item = (u8, Preset)>,
    ) -> Result<Self, ScheduleError> {
        Ok(Schedule::Zoned {
            time_zone,
            switches: sorted_hours(switches)?,
        })
    }

    /// Presets by time since the pipeline started.
    pub fn after(switches: impl IntoIterator<Item = (Duration, Preset)>) -> Self {
        let mut switches: Vec<_> = switches.into_iter().collect();
        switches.sort_by_key(|(d, _)| *d);
        Schedule::Elapsed(switches)
    }

    /// The preset scheduled at `elapsed` since start and wall-clock `now`.
    pub fn preset_at(&self, elapsed: Duration, now: SystemTime) -> Option<Preset> {
        match self {
            Schedule::Elapsed(s) => s
                .iter()
                .rev()
                .find(|(at, _)| *at <= elapsed)
                .map(|(_, p)| *p),
            Schedule::TimeOfDay {
                utc_offset_minutes,
                switches,
            } => {
                // The variant's fields are public, so the offset may not have
                // been checked: reduce both terms to one day before adding.
                let utc = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() % DAY;
                let offset = i64::from(*utc_offset_minutes) * 60;
                let local = (utc as i64 + offset.rem_euclid(DAY as i64)) % DAY as i64;
                preset_for_hour(switches, local / 3600)
            }
            Schedule::Zoned {
                time_zone,
                switches,
            } => {
                // A clock outside jiff's range (years -9999 to 9999) reads
                // as the nearest end of it.
                let ts = Timestamp::try_from(now).unwrap_or(if now < UNIX_EPOCH {
                    Timestamp::MIN
                } else {
                    Timestamp::MAX
                });
                let hour = time_zone.to_datetime(ts).hour();
                preset_for_hour(switches, i64::from(hour))
            }
        }
    }
}

/// Checks and sorts `(from_hour, preset)` switches.
fn sorted_hours(
    switches: impl IntoIterator<Item = (u8, Preset)>,
) -> Result<Vec<(u8, Preset)>, ScheduleError> {
    let mut switches: Vec<_> = switches.into_iter().collect();
    if switches.is_empty() {
        return Err(ScheduleError("a schedule needs at least one switch".into()));
    }
    if let Some((h, _)) = switches.iter().find(|(h, _)| *h > 23) {
        return Err(ScheduleError(format!("hour must be 0..=23, got {h}")));
    }
    switches.sort_by_key(|(h, _)| *h);
    Ok(switches)
}

/// The preset of the last switch at or before `hour`; before the first
/// switch of the day, the last one of the previous day holds.
fn preset_for_hour(switches: &[(u8, Preset)], hour: i64) -> Option<Preset> {
    switches
        .iter()
        .rev()
        .find(|(h, _)| i64::from(*h) <= hour)
        .or(switches.last())
        .map(|(_, p)| *p)
}

/// The largest offset from UTC a schedule takes, either way, in minutes:
/// 14 h, the offset of the time zone furthest ahead (UTC+14).
pub const MAX_UTC_OFFSET_MINUTES: u32 = 14 * 60;

/// Seconds in a day.
const DAY: u64 = 86_400;

#[cfg(test)]
mod tests;
