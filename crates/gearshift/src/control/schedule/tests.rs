//! Unit tests of [`Schedule`]: fixed offsets, time zones across DST, and
//! values that must be refused without overflowing.

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

/// A fixed instant (RFC 3339, UTC), never the wall clock.
fn instant(rfc3339: &str) -> SystemTime {
    SystemTime::try_from(rfc3339.parse::<Timestamp>().unwrap()).unwrap()
}

/// Berlin's rule (CET, CEST from the last Sunday of March to the last
/// Sunday of October) as a POSIX string: no tz database needed.
const BERLIN_POSIX: &str = "CET-1CEST,M3.5.0,M10.5.0/3";

/// Across the clock change of 29 March 2026 (02:00 CET became 03:00
/// CEST), the 06:00 switch stays at 06:00 on the Berlin clock, where a
/// fixed UTC+1 schedule runs it at 07:00 local time all summer.
#[test]
fn a_zoned_switch_keeps_its_wall_clock_hour_across_dst() {
    let switches = [(6, Preset::Morning), (14, Preset::Evening)];
    let zoned =
        Schedule::time_of_day_in_zone(TimeZone::posix(BERLIN_POSIX).unwrap(), switches).unwrap();
    let fixed = Schedule::time_of_day(60, switches).unwrap();
    let at = |s: &Schedule, t| s.preset_at(Duration::ZERO, instant(t));
    // Winter: 05:30 UTC is 06:30 CET; both agree.
    assert_eq!(at(&zoned, "2026-03-28T05:30:00Z"), Some(Preset::Morning));
    assert_eq!(at(&fixed, "2026-03-28T05:30:00Z"), Some(Preset::Morning));
    // Summer: 04:30 UTC is 06:30 CEST, morning in Berlin; the fixed
    // offset reads 05:30 and still holds the evening preset.
    assert_eq!(at(&zoned, "2026-03-30T04:30:00Z"), Some(Preset::Morning));
    assert_eq!(at(&fixed, "2026-03-30T04:30:00Z"), Some(Preset::Evening));
    // 03:30 UTC is 05:30 CEST: not yet morning.
    assert_eq!(at(&zoned, "2026-03-30T03:30:00Z"), Some(Preset::Evening));
    // And back in autumn (25 October 2026): 05:30 UTC is 06:30 CET.
    assert_eq!(at(&zoned, "2026-10-26T05:30:00Z"), Some(Preset::Morning));
    assert_eq!(at(&zoned, "2026-10-26T04:30:00Z"), Some(Preset::Evening));
}

/// A switch at an hour the clock skips runs at the next hour of the day.
#[test]
fn a_switch_in_the_skipped_hour_runs_at_the_next_one() {
    let tz = TimeZone::posix(BERLIN_POSIX).unwrap();
    let s =
        Schedule::time_of_day_in_zone(tz, [(2, Preset::Evening), (6, Preset::Morning)]).unwrap();
    let at = |t| s.preset_at(Duration::ZERO, instant(t));
    // 00:30 UTC is 01:30 CET; 01:00 UTC jumps the clock to 03:00 CEST.
    assert_eq!(at("2026-03-29T00:30:00Z"), Some(Preset::Morning));
    assert_eq!(at("2026-03-29T01:30:00Z"), Some(Preset::Evening));
}

/// The same through the system's tz database, by name, for New York
/// (clocks went forward on 8 March 2026).
#[test]
fn a_named_time_zone_follows_dst() {
    let switches = [(7, Preset::Morning), (19, Preset::Evening)];
    let zoned = match Schedule::time_of_day_in("America/New_York", switches) {
        Ok(s) => s,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("skipped: no tz database on this machine ({e})");
            return;
        }
        Err(e) => panic!("the tz database is needed in CI: {e}"),
    };
    let at = |t| zoned.preset_at(Duration::ZERO, instant(t));
    // 12:30 UTC is 07:30 EST in winter, and 11:30 UTC is 07:30 EDT.
    assert_eq!(at("2026-03-07T12:30:00Z"), Some(Preset::Morning));
    assert_eq!(at("2026-03-07T11:30:00Z"), Some(Preset::Evening));
    assert_eq!(at("2026-03-09T11:30:00Z"), Some(Preset::Morning));
    let fixed = Schedule::time_of_day(-300, switches).unwrap();
    assert_eq!(
        fixed.preset_at(Duration::ZERO, instant("2026-03-09T11:30:00Z")),
        Some(Preset::Evening)
    );
}

#[test]
fn a_bad_zoned_schedule_is_refused() {
    let err = Schedule::time_of_day_in("Nowhere/Atlantis", [(6, Preset::Morning)]);
    assert!(err.unwrap_err().to_string().contains("Nowhere/Atlantis"));
    assert!(Schedule::time_of_day_in_zone(TimeZone::UTC, [(24, Preset::Morning)]).is_err());
    assert!(Schedule::time_of_day_in_zone(TimeZone::UTC, []).is_err());
}

/// A clock beyond the years jiff holds still gives an answer.
#[test]
fn a_zoned_schedule_never_overflows() {
    let s = Schedule::time_of_day_in_zone(TimeZone::UTC, [(6, Preset::Morning)]).unwrap();
    let far = UNIX_EPOCH
        .checked_add(Duration::from_secs(i64::MAX as u64))
        .unwrap_or(UNIX_EPOCH + Duration::from_secs(1 << 40));
    for now in [UNIX_EPOCH, far] {
        assert_eq!(s.preset_at(Duration::ZERO, now), Some(Preset::Morning));
    }
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
