use jiff::Zoned;

use super::*;

fn at(s: &str) -> Timestamp {
    s.parse::<Zoned>().unwrap().timestamp()
}

fn zoned(t: Timestamp, tz: &str) -> String {
    t.to_zoned(TimeZone::get(tz).unwrap())
        .strftime("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

/// The next `n` times after `start`, in the schedule's zone.
fn series(s: &Schedule, start: &str, n: usize) -> Vec<String> {
    let tz = s.spec().tz.clone().unwrap_or("UTC".into());
    let mut t = at(start);
    (0..n)
        .map(|_| {
            t = s.next_after(t).unwrap();
            zoned(t, &tz)
        })
        .collect()
}

#[test]
fn interval_counts_from_the_instant() {
    let s = Schedule::every(SignedDuration::from_secs(30)).unwrap();
    let t = at("2025-01-01T00:00:00Z[UTC]");
    assert_eq!(s.next_after(t), Some(t + SignedDuration::from_secs(30)));
    assert!(s.is_interval());
    assert!(Schedule::every(SignedDuration::from_millis(500)).is_err());
    let spec = |v: &str| ScheduleSpec {
        kind: ScheduleKind::Interval,
        value: v.into(),
        tz: None,
    };
    assert_eq!(
        spec("2 hours").compile().unwrap().interval(),
        Some(SignedDuration::from_hours(2))
    );
    assert_eq!(
        spec("1 minute").compile().unwrap().interval(),
        Some(SignedDuration::from_mins(1))
    );
    let monthly = spec("1 month").compile().unwrap();
    assert_eq!(
        monthly.next_after(at("2025-01-31T10:00:00Z[UTC]")),
        Some(at("2025-02-28T10:00:00Z[UTC]"))
    );
    assert!(spec("0 hours").compile().is_err());
    assert!(spec("soon").compile().is_err());
}

#[test]
fn cron_basics_and_sentry_nicknames() {
    let s = Schedule::cron("*/15 * * * *", "UTC").unwrap();
    assert_eq!(
        series(&s, "2025-01-01T00:07:30Z[UTC]", 3),
        [
            "2025-01-01 00:15:00 UTC",
            "2025-01-01 00:30:00 UTC",
            "2025-01-01 00:45:00 UTC"
        ]
    );
    // Strictly after: on a scheduled minute, the next one.
    assert_eq!(
        series(&s, "2025-01-01T00:15:00Z[UTC]", 1),
        ["2025-01-01 00:30:00 UTC"]
    );
    let s = Schedule::cron("@hourly", "UTC").unwrap();
    assert_eq!(
        series(&s, "2025-01-01T00:59:59Z[UTC]", 2),
        ["2025-01-01 01:00:00 UTC", "2025-01-01 02:00:00 UTC"]
    );
    let s = Schedule::cron("@weekly", "UTC").unwrap();
    assert_eq!(
        series(&s, "2025-01-01T00:00:00Z[UTC]", 1),
        ["2025-01-05 00:00:00 UTC"]
    ); // a Sunday
    let s = Schedule::cron("0 9 * * mon-fri", "UTC").unwrap();
    assert_eq!(
        series(&s, "2025-01-03T10:00:00Z[UTC]", 2), // Friday after nine
        ["2025-01-06 09:00:00 UTC", "2025-01-07 09:00:00 UTC"]
    );
    let s = Schedule::cron("0 0 L * *", "UTC").unwrap();
    assert_eq!(
        series(&s, "2024-02-01T00:00:00Z[UTC]", 2),
        ["2024-02-29 00:00:00 UTC", "2024-03-31 00:00:00 UTC"]
    );
    let s = Schedule::cron("0 0 * * MON#1", "UTC").unwrap();
    assert_eq!(
        series(&s, "2025-01-01T00:00:00Z[UTC]", 2),
        ["2025-01-06 00:00:00 UTC", "2025-02-03 00:00:00 UTC"]
    );
    let s = Schedule::cron("0 0 * * 5L", "UTC").unwrap();
    assert_eq!(
        series(&s, "2025-01-01T00:00:00Z[UTC]", 1),
        ["2025-01-31 00:00:00 UTC"]
    );
    let s = Schedule::cron("5/20 * * * *", "UTC").unwrap();
    assert_eq!(
        series(&s, "2025-01-01T00:00:00Z[UTC]", 3),
        [
            "2025-01-01 00:05:00 UTC",
            "2025-01-01 00:25:00 UTC",
            "2025-01-01 00:45:00 UTC"
        ]
    );
    // Day-of-month OR day-of-week when both are restricted (Debian cron).
    let s = Schedule::cron("0 0 13 * 5", "UTC").unwrap();
    assert_eq!(
        series(&s, "2025-01-01T00:00:00Z[UTC]", 3),
        [
            "2025-01-03 00:00:00 UTC",
            "2025-01-10 00:00:00 UTC",
            "2025-01-13 00:00:00 UTC"
        ]
    );
    // Sunday as 7.
    let s = Schedule::cron("0 0 * * 7", "UTC").unwrap();
    assert_eq!(
        series(&s, "2025-01-01T00:00:00Z[UTC]", 1),
        ["2025-01-05 00:00:00 UTC"]
    );
}

#[test]
fn cron_errors_point_at_the_field() {
    let err = |e: &str| {
        ScheduleSpec {
            kind: ScheduleKind::Cron,
            value: e.into(),
            tz: None,
        }
        .compile()
        .unwrap_err()
    };
    let e = err("0 25 * * *");
    assert_eq!(e.position, Some(2));
    assert!(
        e.message.starts_with("bad hour field '25'"),
        "{}",
        e.message
    );
    assert!(err("* * *").message.contains("5 fields"));
    assert_eq!(err("0 0 30 2 *").position, Some(4));
    assert!(err("*/0 * * * *").message.contains("positive"));
    assert!(err("0 0 * * MON#6").message.contains("1 to 5"));
    assert!(err("@reboot").message.contains("nickname"));
    assert!(err("0 0 5-1 * *").message.contains("upwards"));
    let tz = ScheduleSpec {
        kind: ScheduleKind::Cron,
        value: "0 0 * * *".into(),
        tz: Some("Mars/Olympus".into()),
    }
    .compile()
    .unwrap_err();
    assert!(tz.message.contains("unknown time zone"));
}

#[test]
fn cron_fixed_time_in_the_spring_gap_fires_when_the_gap_ends() {
    // Europe/Berlin, 2025-03-30: 02:00 CET jumps to 03:00 CEST.
    let s = Schedule::cron("30 2 * * *", "Europe/Berlin").unwrap();
    assert_eq!(
        series(&s, "2025-03-29T12:00:00+01:00[Europe/Berlin]", 3),
        [
            "2025-03-30 03:00:00 CEST",
            "2025-03-31 02:30:00 CEST",
            "2025-04-01 02:30:00 CEST"
        ]
    );
}

#[test]
fn cron_fixed_time_in_the_fall_fold_fires_once() {
    // Europe/Berlin, 2025-10-26: 03:00 CEST falls back to 02:00 CET.
    let s = Schedule::cron("30 2 * * *", "Europe/Berlin").unwrap();
    assert_eq!(
        series(&s, "2025-10-25T12:00:00+02:00[Europe/Berlin]", 2),
        ["2025-10-26 02:30:00 CEST", "2025-10-27 02:30:00 CET"]
    );
    // Asked during the second pass of the fold, today's run has already happened.
    assert_eq!(
        series(&s, "2025-10-26T02:10:00+01:00[Europe/Berlin]", 1),
        ["2025-10-27 02:30:00 CET"]
    );
}

#[test]
fn cron_every_hour_follows_real_time_over_dst() {
    let s = Schedule::cron("0 * * * *", "Europe/Berlin").unwrap();
    // Fall back: 02:00 comes twice and both are hours.
    assert_eq!(
        series(&s, "2025-10-26T00:30:00+02:00[Europe/Berlin]", 4),
        [
            "2025-10-26 01:00:00 CEST",
            "2025-10-26 02:00:00 CEST",
            "2025-10-26 02:00:00 CET",
            "2025-10-26 03:00:00 CET"
        ]
    );
    // Spring forward: no 02:00.
    assert_eq!(
        series(&s, "2025-03-30T00:30:00+01:00[Europe/Berlin]", 3),
        [
            "2025-03-30 01:00:00 CET",
            "2025-03-30 03:00:00 CEST",
            "2025-03-30 04:00:00 CEST"
        ]
    );
    // Every 15 minutes in New York across the spring gap (2025-03-09 02:00 EST → 03:00 EDT).
    let s = Schedule::cron("*/15 * * * *", "America/New_York").unwrap();
    assert_eq!(
        series(&s, "2025-03-09T01:40:00-05:00[America/New_York]", 3),
        [
            "2025-03-09 01:45:00 EST",
            "2025-03-09 03:00:00 EDT",
            "2025-03-09 03:15:00 EDT"
        ]
    );
}

#[test]
fn cron_in_new_york_keeps_local_time_across_the_change() {
    let s = Schedule::cron("0 9 * * *", "America/New_York").unwrap();
    let t = at("2025-03-08T12:00:00-05:00[America/New_York]");
    let a = s.next_after(t).unwrap();
    let b = s.next_after(a).unwrap();
    assert_eq!(zoned(a, "America/New_York"), "2025-03-09 09:00:00 EDT");
    assert_eq!(zoned(b, "America/New_York"), "2025-03-10 09:00:00 EDT");
    assert_eq!(a.duration_since(t), SignedDuration::from_hours(20));
}

#[test]
fn oncalendar_common_forms() {
    let s = Schedule::on_calendar("daily", "UTC").unwrap();
    assert_eq!(
        series(&s, "2025-01-01T10:00:00Z[UTC]", 1),
        ["2025-01-02 00:00:00 UTC"]
    );
    let s = Schedule::on_calendar("hourly", "UTC").unwrap();
    assert_eq!(
        series(&s, "2025-01-01T10:00:00Z[UTC]", 1),
        ["2025-01-01 11:00:00 UTC"]
    );
    let s = Schedule::on_calendar("weekly", "UTC").unwrap();
    assert_eq!(
        series(&s, "2025-01-01T10:00:00Z[UTC]", 1),
        ["2025-01-06 00:00:00 UTC"]
    );
    let s = Schedule::on_calendar("Mon..Fri 09:00", "UTC").unwrap();
    assert_eq!(
        series(&s, "2025-01-03T10:00:00Z[UTC]", 2),
        ["2025-01-06 09:00:00 UTC", "2025-01-07 09:00:00 UTC"]
    );
    let s = Schedule::on_calendar("*-*-* 02:30:00", "UTC").unwrap();
    assert_eq!(
        series(&s, "2025-01-01T03:00:00Z[UTC]", 1),
        ["2025-01-02 02:30:00 UTC"]
    );
    let s = Schedule::on_calendar("Sat,Sun 10:00", "UTC").unwrap();
    assert_eq!(
        series(&s, "2025-01-01T00:00:00Z[UTC]", 2),
        ["2025-01-04 10:00:00 UTC", "2025-01-05 10:00:00 UTC"]
    );
    let s = Schedule::on_calendar("*:0/15", "UTC").unwrap();
    assert_eq!(
        series(&s, "2025-01-01T00:05:00Z[UTC]", 2),
        ["2025-01-01 00:15:00 UTC", "2025-01-01 00:30:00 UTC"]
    );
    let s = Schedule::on_calendar("*-*~1 23:00", "UTC").unwrap();
    assert_eq!(
        series(&s, "2025-02-01T00:00:00Z[UTC]", 1),
        ["2025-02-28 23:00:00 UTC"]
    );
    let s = Schedule::on_calendar("2026-01-01 00:00:05", "UTC").unwrap();
    assert_eq!(
        series(&s, "2025-01-01T00:00:00Z[UTC]", 1),
        ["2026-01-01 00:00:05 UTC"]
    );
    assert_eq!(s.next_after(at("2026-01-02T00:00:00Z[UTC]")), None);
    let s = Schedule::on_calendar("quarterly", "UTC").unwrap();
    assert_eq!(
        series(&s, "2025-02-01T00:00:00Z[UTC]", 1),
        ["2025-04-01 00:00:00 UTC"]
    );
    // Several expressions, one per line, the earliest wins; a zone on a line of its own.
    let s = Schedule::on_calendar("12:00\nMon 08:00 America/New_York", "Europe/Berlin").unwrap();
    assert_eq!(
        series(&s, "2025-01-06T12:30:00+01:00[Europe/Berlin]", 2),
        ["2025-01-06 14:00:00 CET", "2025-01-07 12:00:00 CET"]
    );
}

#[test]
fn oncalendar_with_a_zone_keeps_its_wall_clock() {
    let s = Schedule::on_calendar("*-*-* 02:30:00", "Europe/Berlin").unwrap();
    // Spring gap: skipped (Healthchecks' oncalendar), unlike cron.
    assert_eq!(
        series(&s, "2025-03-29T12:00:00+01:00[Europe/Berlin]", 2),
        ["2025-03-31 02:30:00 CEST", "2025-04-01 02:30:00 CEST"]
    );
    // Fall fold: once, at the first occurrence.
    assert_eq!(
        series(&s, "2025-10-25T12:00:00+02:00[Europe/Berlin]", 2),
        ["2025-10-26 02:30:00 CEST", "2025-10-27 02:30:00 CET"]
    );
}

#[test]
fn oncalendar_errors() {
    let err = |e: &str| Schedule::on_calendar(e, "UTC").unwrap_err();
    assert!(err("").message.contains("empty"));
    assert!(err("Mon 25:00").message.contains("bad hour"));
    assert!(err("Fun 10:00").message.contains("bad weekday"));
    assert_eq!(err("Mon 10:00 extra 11:00").position, Some(4));
    assert!(err("*-13-01").message.contains("bad month"));
    assert!(err("1800-01-01").message.contains("year"));
}

#[test]
fn serde_keeps_the_source_and_refuses_bad_specs() {
    let s = Schedule::cron("0 3 * * *", "Europe/Vienna").unwrap();
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"kind": "cron", "value": "0 3 * * *", "tz": "Europe/Vienna"})
    );
    let back: Schedule = serde_json::from_value(json).unwrap();
    assert_eq!(back, s);
    let bad = serde_json::from_value::<Schedule>(serde_json::json!({"kind": "cron", "value": "x"}));
    assert!(bad.is_err());
}

#[test]
fn between_lists_expected_times() {
    let s = Schedule::cron("0 * * * *", "UTC").unwrap();
    let got = s.between(
        at("2025-01-01T00:00:00Z[UTC]"),
        at("2025-01-01T03:00:00Z[UTC]"),
        10,
    );
    assert_eq!(got.len(), 3);
    assert_eq!(
        s.between(
            at("2025-01-01T00:00:00Z[UTC]"),
            at("2025-01-02T00:00:00Z[UTC]"),
            5
        )
        .len(),
        5
    );
}
