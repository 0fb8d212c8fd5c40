//! [`Schedule`]: switch presets by time of day (the seed's morning and
//! evening) or by time since the pipeline started.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
/// // Morning until 14:00 UTC+1, then Evening until 06:00.
/// let daily = Schedule::time_of_day(60, [(6, Preset::Morning), (14, Preset::Evening)]);
/// assert!(daily.is_ok());
///
/// let ramp = Schedule::after([(Duration::ZERO, Preset::Morning), (Duration::from_secs(600), Preset::Evening)]);
/// assert_eq!(ramp.preset_at(Duration::from_secs(601), std::time::SystemTime::now()), Some(Preset::Evening));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// Presets by local hour: `(from_hour, preset)`, sorted by hour, with
    /// local time = UTC + `utc_offset_minutes`.
    TimeOfDay {
        /// Local time's offset from UTC, in minutes.
        utc_offset_minutes: i32,
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
    /// Presets by hour of the day.
    ///
    /// # Errors
    ///
    /// An hour over 23, an offset beyond ±[`MAX_UTC_OFFSET_MINUTES`], or no
    /// switch at all.
    pub fn time_of_day(
        utc_offset_minutes: i32,
        switches: impl IntoIterator<Item = (u8, Preset)>,
    ) -> Result<Self, ScheduleError> {
        let mut switches: Vec<_> = switches.into_iter().collect();
        if switches.is_empty() {
            return Err(ScheduleError("a schedule needs at least one switch".into()));
        }
        if let Some((h, _)) = switches.iter().find(|(h, _)| *h > 23) {
            return Err(ScheduleError(format!("hour must be 0..=23, got {h}")));
        }
        if utc_offset_minutes.unsigned_abs() > MAX_UTC_OFFSET_MINUTES {
            return Err(ScheduleError(format!(
                "utc_offset_minutes must be within ±{MAX_UTC_OFFSET_MINUTES}, got {utc_offset_minutes}"
            )));
        }
        switches.sort_by_key(|(h, _)| *h);
        Ok(Schedule::TimeOfDay {
            utc_offset_minutes,
            switches,
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
                let hour = local / 3600;
                // Before the first switch of the day, the last one of the previous day holds.
                switches
                    .iter()
                    .rev()
                    .find(|(h, _)| i64::from(*h) <= hour)
                    .or(switches.last())
                    .map(|(_, p)| *p)
            }
        }
    }
}

/// The largest offset from UTC a schedule takes, either way, in minutes:
/// 14 h, the offset of the time zone furthest ahead (UTC+14).
pub const MAX_UTC_OFFSET_MINUTES: u32 = 14 * 60;

/// Seconds in a day.
const DAY: u64 = 86_400;

#[cfg(test)]
mod tests {
    use super::*;

    fn at_hour(h: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(h * 3600 + 17)
    }

    #[test]
    fn time_of_day_wraps_around_midnight() {
        let s = Schedule::time_of_day(0, [(14, Preset::Evening), (6, Preset::Morning)]).unwrap();
        assert_eq!(
            s.preset_at(Duration::ZERO, at_hour(7)),
            Some(Preset::Morning)
        );
        assert_eq!(
            s.preset_at(Duration::ZERO, at_hour(15)),
            Some(Preset::Evening)
        );
        assert_eq!(
            s.preset_at(Duration::ZERO, at_hour(3)),
            Some(Preset::Evening)
        );
    }

    #[test]
    fn offset_shifts_the_hour() {
        let s = Schedule::time_of_day(120, [(6, Preset::Morning), (14, Preset::Evening)]).unwrap();
        // 05:00 UTC is 07:00 at UTC+2.
        assert_eq!(
            s.preset_at(Duration::ZERO, at_hour(5)),
            Some(Preset::Morning)
        );
    }

    #[test]
    fn bad_schedules_are_refused() {
        assert!(Schedule::time_of_day(0, [(24, Preset::Morning)]).is_err());
        assert!(Schedule::time_of_day(0, []).is_err());
        assert!(Schedule::time_of_day(900, [(1, Preset::Morning)]).is_err());
    }

    /// Defect 12 of issue 20: `i32::MIN.abs()` overflowed (a panic in debug
    /// builds, and the offset accepted in release builds).
    #[test]
    fn extreme_offsets_are_refused_without_overflow() {
        for offset in [i32::MIN, i32::MIN + 1, i32::MAX, -841, 841] {
            let err = Schedule::time_of_day(offset, [(6, Preset::Morning)]).unwrap_err();
            assert!(err.to_string().contains(&offset.to_string()), "{err}");
        }
        assert!(Schedule::time_of_day(-840, [(6, Preset::Morning)]).is_ok());
        assert!(Schedule::time_of_day(840, [(6, Preset::Morning)]).is_ok());
    }

    /// The variant's fields are public: an unchecked offset or a far-future
    /// clock gives an answer, never an overflow.
    #[test]
    fn an_unchecked_time_of_day_never_overflows() {
        // The latest time the clock holds (`i64::MAX` seconds on Unix).
        let far = UNIX_EPOCH
            .checked_add(Duration::from_secs(i64::MAX as u64))
            .unwrap_or(UNIX_EPOCH + Duration::from_secs(1 << 40));
        for offset in [i32::MIN, i32::MAX, 0] {
            let s = Schedule::TimeOfDay {
                utc_offset_minutes: offset,
                switches: vec![(6, Preset::Morning), (200, Preset::Evening)],
            };
            for now in [UNIX_EPOCH, at_hour(7), far] {
                assert!(s.preset_at(Duration::MAX, now).is_some());
            }
        }
        let s = Schedule::time_of_day(-120, [(6, Preset::Morning), (14, Preset::Evening)]).unwrap();
        // 15:00 UTC is 13:00 at UTC-2.
        assert_eq!(
            s.preset_at(Duration::ZERO, at_hour(15)),
            Some(Preset::Morning)
        );
    }

    #[test]
    fn elapsed_schedule_holds_nothing_before_its_first_switch() {
        let s = Schedule::after([(Duration::from_secs(5), Preset::Evening)]);
        assert_eq!(s.preset_at(Duration::from_secs(4), SystemTime::now()), None);
        assert_eq!(
            s.preset_at(Duration::from_secs(5), SystemTime::now()),
            Some(Preset::Evening)
        );
    }
}
