//! Schedules: a fixed interval, a crontab line or a systemd `OnCalendar` expression, with a time
//! zone, and the next expected time after an instant.
//!
//! Daylight saving time follows the tools whose syntax we take:
//! - **crontab** behaves like Debian's cron, as Healthchecks' `cronsim` does. A line with a fixed
//!   minute and hour (`30 2 * * *`, `0 9-17 * * 1-5`) is matched on the wall clock: in the
//!   spring-forward gap a time that does not exist fires when the gap ends (02:30 → 03:00), and
//!   in the fall-back fold a time that happens twice fires once, at its first occurrence. A line
//!   whose minute or hour field starts with `*` (`*/15 * * * *`, `0 * * * *`) runs on real time:
//!   every real minute whose local time matches, so in the fold the repeated hour matches again
//!   and in the gap nothing matches.
//! - **OnCalendar** behaves like Healthchecks' `oncalendar`: matched on the wall clock, a time in
//!   the gap is skipped, a time in the fold fires once, at its first occurrence.
//! - **Intervals** are real durations; Sentry's `month` and `year` units are calendar months and
//!   years counted in UTC.
//!
//! A result is always strictly after the given instant.

use std::fmt;

use jiff::civil::{Date, DateTime, Weekday};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Span, Timestamp, ToSpan};
use serde::{Deserialize, Serialize};

use calendar::parse_oncalendar;
use cron::parse_cron;

mod calendar;
mod cron;

/// The stored form: what the user typed, checked by [`ScheduleSpec::compile`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    pub kind: ScheduleKind,
    /// `30s` / `2 hours` / `1 month` for intervals, the crontab line, the OnCalendar expression.
    pub value: String,
    /// IANA time zone name for crontab and OnCalendar; UTC when not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tz: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    Interval,
    Cron,
    #[serde(rename = "oncalendar")]
    OnCalendar,
}

/// A schedule that does not parse; `position` is a byte offset into `value` when known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ScheduleError {
    pub position: Option<usize>,
    pub message: String,
}

impl ScheduleError {
    /// Stable error code for the API.
    pub const CODE: &'static str = "invalid_schedule";

    fn at(position: usize, message: impl Into<String>) -> ScheduleError {
        ScheduleError {
            position: Some(position),
            message: message.into(),
        }
    }

    fn new(message: impl Into<String>) -> ScheduleError {
        ScheduleError {
            position: None,
            message: message.into(),
        }
    }
}

/// Shortest interval.
pub const MIN_INTERVAL: SignedDuration = SignedDuration::from_secs(1);
/// Schedules are searched this many years ahead; a line that matches nothing sooner
/// (`0 0 31 2 *` is refused outright) has no next time.
const HORIZON_YEARS: i16 = 50;

impl ScheduleSpec {
    pub fn compile(&self) -> Result<Schedule, ScheduleError> {
        let tz = match &self.tz {
            Some(name) => parse_tz(name)?,
            None => TimeZone::UTC,
        };
        let kind = match self.kind {
            ScheduleKind::Interval => parse_interval(&self.value)?,
            ScheduleKind::Cron => Kind::Cron(Box::new(parse_cron(&self.value)?)),
            ScheduleKind::OnCalendar => Kind::Calendar(parse_oncalendar(&self.value)?),
        };
        Ok(Schedule {
            spec: self.clone(),
            kind,
            tz,
        })
    }
}

fn parse_tz(name: &str) -> Result<TimeZone, ScheduleError> {
    TimeZone::get(name).map_err(|_| {
        ScheduleError::new(format!(
            "unknown time zone '{name}'; use an IANA name such as Europe/Berlin or UTC"
        ))
    })
}

/// A compiled schedule.
#[derive(Clone)]
pub struct Schedule {
    spec: ScheduleSpec,
    kind: Kind,
    tz: TimeZone,
}

#[derive(Clone)]
enum Kind {
    Every(SignedDuration),
    Months(i64),
    Cron(Box<Fields>),
    /// One or more OnCalendar expressions, each with an optional zone of its own.
    Calendar(Vec<(Fields, Option<TimeZone>)>),
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Schedule").field(&self.spec).finish()
    }
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Schedule) -> bool {
        self.spec == other.spec
    }
}

impl Serialize for Schedule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.spec.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Schedule, D::Error> {
        ScheduleSpec::deserialize(d)?
            .compile()
            .map_err(serde::de::Error::custom)
    }
}

impl Schedule {
    /// A fixed interval (at least [`MIN_INTERVAL`]).
    pub fn every(interval: SignedDuration) -> Result<Schedule, ScheduleError> {
        ScheduleSpec {
            kind: ScheduleKind::Interval,
            value: format!("{}ms", interval.as_millis()),
            tz: None,
        }
        .compile()
    }

    pub fn cron(expr: &str, tz: &str) -> Result<Schedule, ScheduleError> {
        ScheduleSpec {
            kind: ScheduleKind::Cron,
            value: expr.to_string(),
            tz: Some(tz.to_string()),
        }
        .compile()
    }

    pub fn on_calendar(expr: &str, tz: &str) -> Result<Schedule, ScheduleError> {
        ScheduleSpec {
            kind: ScheduleKind::OnCalendar,
            value: expr.to_string(),
            tz: Some(tz.to_string()),
        }
        .compile()
    }

    pub fn spec(&self) -> &ScheduleSpec {
        &self.spec
    }

    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// An interval (Healthchecks' "simple" kind): the next time counts from the last signal,
    /// not from a calendar.
    pub fn is_interval(&self) -> bool {
        matches!(self.kind, Kind::Every(_) | Kind::Months(_))
    }

    /// The fixed interval, if this schedule is one.
    pub fn interval(&self) -> Option<SignedDuration> {
        match self.kind {
            Kind::Every(d) => Some(d),
            _ => None,
        }
    }

    /// The first scheduled instant strictly after `after`.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        match &self.kind {
            Kind::Every(d) => after.checked_add(*d).ok(),
            Kind::Months(n) => after
                .to_zoned(TimeZone::UTC)
                .checked_add(n.months())
                .ok()
                .map(|z| z.timestamp()),
            Kind::Cron(fields) => {
                if fields.real_time {
                    next_real_time(fields, &self.tz, after)
                } else {
                    next_wall_clock(fields, &self.tz, after, Gap::FireAtEnd)
                }
            }
            Kind::Calendar(list) => list
                .iter()
                .filter_map(|(fields, tz)| {
                    next_wall_clock(fields, tz.as_ref().unwrap_or(&self.tz), after, Gap::Skip)
                })
                .min(),
        }
    }

    /// The scheduled instants in `(after, until]`, at most `limit` of them.
    pub fn between(&self, after: Timestamp, until: Timestamp, limit: usize) -> Vec<Timestamp> {
        let mut out = Vec::new();
        let mut t = after;
        while out.len() < limit {
            match self.next_after(t) {
                Some(n) if n <= until => {
                    out.push(n);
                    t = n;
                }
                _ => break,
            }
        }
        out
    }
}

fn parse_interval(value: &str) -> Result<Kind, ScheduleError> {
    let v = value.trim();
    if let Some(d) = super::parse_duration(v) {
        if d < MIN_INTERVAL {
            return Err(ScheduleError::new("the shortest interval is 1s"));
        }
        return Ok(Kind::Every(d));
    }
    // Sentry's form: a count and a unit name.
    let bad = || {
        ScheduleError::new(format!(
            "'{v}' is not an interval; write 30s, 5m, 2h, 1d, or 1 month"
        ))
    };
    let (count, unit) = v.split_once(char::is_whitespace).ok_or_else(bad)?;
    let count: i64 = count.parse().map_err(|_| bad())?;
    if count < 1 {
        return Err(bad());
    }
    let unit = unit.trim().trim_end_matches('s');
    let fixed = |secs: i64| {
        count
            .checked_mul(secs)
            .map(|s| Kind::Every(SignedDuration::from_secs(s)))
            .ok_or_else(bad)
    };
    match unit {
        "second" => fixed(1),
        "minute" => fixed(60),
        "hour" => fixed(3_600),
        "day" => fixed(86_400),
        "week" => fixed(604_800),
        "month" if count <= 1200 => Ok(Kind::Months(count)),
        "year" if count <= 100 => Ok(Kind::Months(count * 12)),
        _ => Err(bad()),
    }
}

/// The sets a calendar expression matches, shared by crontab and OnCalendar.
#[derive(Debug, Clone, PartialEq)]
struct Fields {
    seconds: u64,
    minutes: u64,
    hours: u32,
    /// Days of the month, bits 1..=31.
    days: u32,
    /// Days counted from the end of the month, bit n = n-th last day (bit 1 = last day).
    last_days: u32,
    /// Months, bits 1..=12.
    months: u16,
    /// Weekdays, bit 0 = Sunday.
    weekdays: u8,
    /// Cron `MON#2`: (weekday, n-th in the month).
    nth_weekdays: Vec<(u8, u8)>,
    /// Cron `5L`: the last such weekday of the month (bit 0 = Sunday).
    last_weekdays: u8,
    /// Year ranges (OnCalendar); empty = every year.
    years: Vec<(i16, i16)>,
    /// Cron: day-of-month OR day-of-week when both are restricted; OnCalendar: always AND.
    day_or: bool,
    /// Cron with `*` in the minute or hour field: matched on real time (see the module doc).
    real_time: bool,
}

impl Fields {
    fn year_ok(&self, y: i16) -> bool {
        self.years.is_empty() || self.years.iter().any(|&(a, b)| a <= y && y <= b)
    }

    fn day_ok(&self, d: Date) -> bool {
        let dom = bit32(self.days, d.day() as u32) || {
            let from_end = (d.days_in_month() - d.day() + 1) as u32;
            bit32(self.last_days, from_end)
        };
        let wd = d.weekday().to_sunday_zero_offset() as u8;
        let dow = self.weekdays & (1 << wd) != 0
            || self
                .nth_weekdays
                .iter()
                .any(|&(w, n)| w == wd && (d.day() as u8 - 1) / 7 + 1 == n)
            || (self.last_weekdays & (1 << wd) != 0 && d.day() + 7 > d.days_in_month());
        if self.day_or { dom || dow } else { dom && dow }
    }

    /// The first civil datetime at or after `c` that matches (seconds resolution).
    fn next_match(&self, c: DateTime) -> Option<DateTime> {
        let limit = c.year().saturating_add(HORIZON_YEARS);
        let mut dt = c;
        loop {
            let date = dt.date();
            if dt.year() > limit {
                return None;
            }
            if !self.year_ok(dt.year()) {
                let next = self
                    .years
                    .iter()
                    .map(|&(a, _)| a)
                    .filter(|&a| a > dt.year())
                    .min()?;
                dt = Date::new(next, 1, 1).ok()?.to_datetime(midnight());
                continue;
            }
            if self.months & (1 << dt.month()) == 0 {
                dt = date
                    .first_of_month()
                    .checked_add(1.month())
                    .ok()?
                    .to_datetime(midnight());
                continue;
            }
            if !self.day_ok(date) {
                dt = date.tomorrow().ok()?.to_datetime(midnight());
                continue;
            }
            match next_bit32(self.hours, dt.hour() as u32, 24) {
                Some(h) if h == dt.hour() as u32 => {}
                Some(h) => {
                    dt = date.at(h as i8, 0, 0, 0);
                    continue;
                }
                None => {
                    dt = date.tomorrow().ok()?.to_datetime(midnight());
                    continue;
                }
            }
            match next_bit64(self.minutes, dt.minute() as u32, 60) {
                Some(m) if m == dt.minute() as u32 => {}
                Some(m) => {
                    dt = date.at(dt.hour(), m as i8, 0, 0);
                    continue;
                }
                None => {
                    dt = dt
                        .checked_add(1.hour())
                        .ok()?
                        .with()
                        .minute(0)
                        .second(0)
                        .build()
                        .ok()?;
                    continue;
                }
            }
            match next_bit64(self.seconds, dt.second() as u32, 60) {
                Some(s) => return Some(date.at(dt.hour(), dt.minute(), s as i8, 0)),
                None => {
                    dt = dt
                        .checked_add(1.minute())
                        .ok()?
                        .with()
                        .second(0)
                        .build()
                        .ok()?;
                }
            }
        }
    }

    /// The resolution of the search: a minute when only second 0 matches (every crontab
    /// line, most OnCalendar expressions), else a second.
    fn step(&self) -> Span {
        if self.on_minutes() {
            1.minute()
        } else {
            1.second()
        }
    }

    fn on_minutes(&self) -> bool {
        self.seconds == 1
    }
}

fn midnight() -> jiff::civil::Time {
    jiff::civil::Time::midnight()
}

fn bit32(set: u32, i: u32) -> bool {
    i < 32 && set & (1 << i) != 0
}

fn next_bit32(set: u32, from: u32, end: u32) -> Option<u32> {
    (from..end).find(|&i| set & (1 << i) != 0)
}

fn next_bit64(set: u64, from: u32, end: u32) -> Option<u32> {
    (from..end).find(|&i| set & (1u64 << i) != 0)
}

/// The first whole step (minute or second) of `fields` strictly after `dt`.
fn after_step(dt: DateTime, fields: &Fields) -> Option<DateTime> {
    let truncated = if fields.on_minutes() {
        dt.with().second(0).subsec_nanosecond(0).build().ok()?
    } else {
        dt.with().subsec_nanosecond(0).build().ok()?
    };
    truncated.checked_add(fields.step()).ok()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Gap {
    /// Cron: a time inside the gap fires when the gap ends.
    FireAtEnd,
    /// OnCalendar: a time inside the gap does not happen.
    Skip,
}

/// Wall-clock matching: the next matching civil time, mapped to an instant (fold: first
/// occurrence; gap: per `gap`), that is after `after`.
fn next_wall_clock(
    fields: &Fields,
    tz: &TimeZone,
    after: Timestamp,
    gap: Gap,
) -> Option<Timestamp> {
    let mut c = after_step(tz.to_datetime(after), fields)?;
    for _ in 0..10_000 {
        let m = fields.next_match(c)?;
        let instant = match tz.to_ambiguous_timestamp(m).offset() {
            AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(m).ok(),
            // The earlier occurrence; the second one is the same wall-clock time again.
            AmbiguousOffset::Fold { before, .. } => before.to_timestamp(m).ok(),
            AmbiguousOffset::Gap { after: later, .. } => match gap {
                Gap::Skip => None,
                Gap::FireAtEnd => {
                    // Read with the later offset the time falls before the transition; the
                    // transition that follows is where the gap ends.
                    let probe = later.to_timestamp(m).ok()?;
                    tz.following(probe).next().map(|t| t.timestamp())
                }
            },
        };
        if let Some(i) = instant.filter(|&i| i > after) {
            return Some(i);
        }
        c = m.checked_add(fields.step()).ok()?;
    }
    None
}

/// Real-time matching: between two transitions local time is a fixed offset from UTC, so the
/// next match is searched one offset period at a time.
fn next_real_time(fields: &Fields, tz: &TimeZone, after: Timestamp) -> Option<Timestamp> {
    let mut t = {
        let minute = after.as_second().div_euclid(60) * 60;
        Timestamp::from_second(minute + 60).ok()?
    };
    for _ in 0..10_000 {
        let offset = tz.to_offset(t);
        let m = fields.next_match(offset.to_datetime(t))?;
        let candidate = offset.to_timestamp(m).ok()?;
        match tz.following(t).next() {
            Some(tr) if candidate >= tr.timestamp() => t = tr.timestamp(),
            _ => return Some(candidate),
        }
    }
    None
}

#[cfg(test)]
mod tests;
