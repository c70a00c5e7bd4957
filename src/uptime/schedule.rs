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

// ---- crontab ------------------------------------------------------------------------------

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// Sentry's non-standard schedules (`@reboot` cannot be monitored).
const NICKNAMES: [(&str, &str); 7] = [
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum CronField {
    Minute,
    Hour,
    Day,
    Month,
    Weekday,
}

impl CronField {
    fn name(self) -> &'static str {
        match self {
            CronField::Minute => "minute",
            CronField::Hour => "hour",
            CronField::Day => "day-of-month",
            CronField::Month => "month",
            CronField::Weekday => "day-of-week",
        }
    }

    fn range(self) -> (u32, u32) {
        match self {
            CronField::Minute => (0, 59),
            CronField::Hour => (0, 23),
            CronField::Day => (1, 31),
            CronField::Month => (1, 12),
            CronField::Weekday => (0, 7),
        }
    }

    fn value(self, s: &str) -> Option<u32> {
        let names: &[&str] = match self {
            CronField::Month => &MONTHS,
            CronField::Weekday => &DAYS,
            _ => &[],
        };
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            return Some(i as u32 + if self == CronField::Month { 1 } else { 0 });
        }
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let v: u32 = s.parse().ok()?;
        let (lo, hi) = self.range();
        (lo..=hi).contains(&v).then_some(v)
    }
}

fn parse_cron(expr: &str) -> Result<Fields, ScheduleError> {
    let trimmed = expr.trim();
    let line = NICKNAMES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(trimmed))
        .map(|(_, l)| *l)
        .unwrap_or(expr);
    if line.starts_with('@') {
        return Err(ScheduleError::at(
            0,
            "unknown nickname; use @yearly, @monthly, @weekly, @daily or @hourly",
        ));
    }
    // Fields with their byte offsets, for error positions.
    let mut parts = Vec::new();
    let mut start = None;
    for (i, c) in line
        .char_indices()
        .chain(std::iter::once((line.len(), ' ')))
    {
        match (c.is_whitespace(), start) {
            (false, None) => start = Some(i),
            (true, Some(s)) => {
                parts.push((s, &line[s..i]));
                start = None;
            }
            _ => {}
        }
    }
    if parts.len() != 5 {
        return Err(ScheduleError::new(format!(
            "a crontab line has 5 fields (minute hour day-of-month month day-of-week), this one has {}",
            parts.len()
        )));
    }
    let field = [
        CronField::Minute,
        CronField::Hour,
        CronField::Day,
        CronField::Month,
        CronField::Weekday,
    ];
    let mut f = Fields {
        seconds: 1,
        minutes: 0,
        hours: 0,
        days: 0,
        last_days: 0,
        months: 0,
        weekdays: 0,
        nth_weekdays: Vec::new(),
        last_weekdays: 0,
        years: Vec::new(),
        // Debian cron: if either day field starts with `*`, both must match, else either.
        day_or: !(parts[2].1.starts_with('*') || parts[4].1.starts_with('*')),
        real_time: parts[0].1.starts_with('*') || parts[1].1.starts_with('*'),
    };
    for (&kind, &(at, text)) in field.iter().zip(&parts) {
        let bad =
            |msg: &str| ScheduleError::at(at, format!("bad {} field '{text}': {msg}", kind.name()));
        for term in text.split(',') {
            let mut values: Vec<u32> = Vec::new();
            let upper = term.to_ascii_uppercase();
            if kind == CronField::Day && upper == "L" {
                f.last_days |= 1 << 1;
                continue;
            }
            if kind == CronField::Weekday {
                if let Some((day, nth)) = upper.split_once('#') {
                    let day = kind
                        .value(day)
                        .ok_or_else(|| bad("expected a weekday before #"))?;
                    let nth: u8 = nth
                        .parse()
                        .ok()
                        .filter(|n| (1..=5).contains(n))
                        .ok_or_else(|| bad("# takes 1 to 5"))?;
                    f.nth_weekdays.push(((day % 7) as u8, nth));
                    continue;
                }
                if let Some(day) = upper.strip_suffix('L').filter(|d| !d.is_empty()) {
                    let day = kind
                        .value(day)
                        .ok_or_else(|| bad("expected a weekday before L"))?;
                    f.last_weekdays |= 1 << (day % 7);
                    continue;
                }
            }
            let (range, step) = match term.split_once('/') {
                Some((r, s)) => {
                    let step: u32 = s
                        .parse()
                        .ok()
                        .filter(|&s| s > 0)
                        .ok_or_else(|| bad("the step after / must be a positive number"))?;
                    (r, step)
                }
                None => (term, 1),
            };
            let (lo, hi) = kind.range();
            let (from, to) = if range == "*" {
                (lo, if kind == CronField::Weekday { 6 } else { hi })
            } else if let Some((a, b)) = range.split_once('-') {
                let a = kind.value(a).ok_or_else(|| bad("not a value in range"))?;
                let b = kind.value(b).ok_or_else(|| bad("not a value in range"))?;
                if b < a {
                    return Err(bad("a range must go upwards"));
                }
                (a, b)
            } else {
                let a = kind
                    .value(range)
                    .ok_or_else(|| bad("not a value in range"))?;
                // `5/15` means from 5 to the end in steps of 15.
                (a, if term.contains('/') { hi } else { a })
            };
            values.extend((from..=to).step_by(step as usize));
            for v in values {
                match kind {
                    CronField::Minute => f.minutes |= 1 << v,
                    CronField::Hour => f.hours |= 1 << v,
                    CronField::Day => f.days |= 1 << v,
                    CronField::Month => f.months |= 1 << v,
                    CronField::Weekday => f.weekdays |= 1 << (v % 7),
                }
            }
        }
    }
    // A day that no chosen month has can never fire (`0 0 30 2 *`).
    if f.last_days == 0 && f.days != 0 && !f.day_or {
        let longest = (1..=12u32)
            .filter(|m| f.months & (1 << m) != 0)
            .map(|m| [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m as usize - 1])
            .max()
            .unwrap_or(31);
        if (1..=longest).all(|d| f.days & (1 << d) == 0) {
            return Err(ScheduleError::at(
                parts[2].0,
                "no chosen month has this day, so the schedule never fires",
            ));
        }
    }
    Ok(f)
}

// ---- OnCalendar -----------------------------------------------------------------------------

const SPECIALS: [(&str, &str); 9] = [
    ("minutely", "*-*-* *:*:00"),
    ("hourly", "*-*-* *:00:00"),
    ("daily", "*-*-* 00:00:00"),
    ("monthly", "*-*-01 00:00:00"),
    ("weekly", "Mon *-*-* 00:00:00"),
    ("yearly", "*-01-01 00:00:00"),
    ("annually", "*-01-01 00:00:00"),
    ("quarterly", "*-01,04,07,10-01 00:00:00"),
    ("semiannually", "*-01,07-01 00:00:00"),
];

const WEEKDAYS: [(&str, Weekday); 7] = [
    ("mon", Weekday::Monday),
    ("tue", Weekday::Tuesday),
    ("wed", Weekday::Wednesday),
    ("thu", Weekday::Thursday),
    ("fri", Weekday::Friday),
    ("sat", Weekday::Saturday),
    ("sun", Weekday::Sunday),
];

fn parse_oncalendar(value: &str) -> Result<Vec<(Fields, Option<TimeZone>)>, ScheduleError> {
    let mut out = Vec::new();
    let mut line_start = 0;
    for line in value.split('\n') {
        let offset = line_start;
        line_start += line.len() + 1;
        if line.trim().is_empty() {
            continue;
        }
        out.push(parse_calendar_line(line, offset)?);
    }
    if out.is_empty() {
        return Err(ScheduleError::at(
            0,
            "empty OnCalendar expression; write e.g. daily or Mon..Fri 09:00",
        ));
    }
    Ok(out)
}

fn parse_calendar_line(
    line: &str,
    base: usize,
) -> Result<(Fields, Option<TimeZone>), ScheduleError> {
    // Tokens with their byte offsets in the whole value.
    let mut tokens: Vec<(usize, String)> = Vec::new();
    let mut start = None;
    for (i, c) in line
        .char_indices()
        .chain(std::iter::once((line.len(), ' ')))
    {
        match (c.is_whitespace(), start) {
            (false, None) => start = Some(i),
            (true, Some(s)) => {
                tokens.push((base + s, line[s..i].to_string()));
                start = None;
            }
            _ => {}
        }
    }
    // A zone name, last: not a special word, a time, a date or a weekday.
    let mut tz = None;
    if let Some((_, last)) = tokens.last().filter(|(_, t)| {
        !is_special(t)
            && !t.contains(':')
            && !t.starts_with(|c: char| c.is_ascii_digit() || c == '*')
    }) && let Ok(zone) = TimeZone::get(last)
    {
        tz = Some(zone);
        tokens.pop();
    }
    if tokens.len() == 1
        && let Some((_, expanded)) = SPECIALS
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(&tokens[0].1))
    {
        let at = tokens[0].0;
        tokens = expanded.split(' ').map(|t| (at, t.to_string())).collect();
    }
    let mut f = Fields {
        seconds: 1,
        minutes: 1,
        hours: 1,
        days: !1,
        last_days: 0,
        months: 0b1_1111_1111_1110,
        weekdays: 0x7f,
        nth_weekdays: Vec::new(),
        last_weekdays: 0,
        years: Vec::new(),
        day_or: false,
        real_time: false,
    };
    // Time, last.
    if let Some((at, text)) = tokens.last().filter(|(_, t)| t.contains(':')).cloned() {
        tokens.pop();
        let parts: Vec<&str> = text.split(':').collect();
        if !(2..=3).contains(&parts.len()) {
            return Err(ScheduleError::at(
                at,
                format!("bad time '{text}': write HH:MM or HH:MM:SS"),
            ));
        }
        f.hours = set_of(parts[0], 0, 23)
            .map_err(|m| ScheduleError::at(at, format!("bad hour in '{text}': {m}")))?
            as u32;
        f.minutes = set_of(parts[1], 0, 59)
            .map_err(|m| ScheduleError::at(at, format!("bad minute in '{text}': {m}")))?;
        f.seconds = match parts.get(2) {
            Some(s) => set_of(s, 0, 59)
                .map_err(|m| ScheduleError::at(at, format!("bad second in '{text}': {m}")))?,
            None => 1,
        };
    }
    // Date, before the time.
    if let Some((at, text)) = tokens
        .last()
        .filter(|(_, t)| {
            t.contains(['-', '~']) && t.starts_with(|c: char| c.is_ascii_digit() || c == '*')
        })
        .cloned()
    {
        tokens.pop();
        let (head, day) = match text.rsplit_once('~') {
            Some((h, d)) => (h, (d, true)),
            None => match text.rsplit_once('-') {
                Some((h, d)) => (h, (d, false)),
                None => return Err(ScheduleError::at(at, format!("bad date '{text}'"))),
            },
        };
        let (year, month) = match head.split_once('-') {
            Some((y, m)) => (Some(y), m),
            None => (None, head),
        };
        let bad =
            |what: &str, m: String| ScheduleError::at(at, format!("bad {what} in '{text}': {m}"));
        if let Some(y) = year.filter(|y| *y != "*") {
            for term in y.split(',') {
                let (a, b) = match term.split_once("..") {
                    Some((a, b)) => (a, b),
                    None => (term, term),
                };
                let year = |s: &str| s.parse::<i16>().ok().filter(|y| (1970..=2199).contains(y));
                let (Some(a), Some(b)) = (year(a), year(b)) else {
                    return Err(bad(
                        "year",
                        format!("'{term}' is not a year between 1970 and 2199"),
                    ));
                };
                f.years.push((a, b));
            }
        }
        f.months = set_of(month, 1, 12).map_err(|m| bad("month", m))? as u16;
        let (day, from_end) = day;
        let days = set_of(day, 1, 31).map_err(|m| bad("day", m))? as u32;
        if from_end {
            f.days = 0;
            f.last_days = days;
        } else {
            f.days = days;
        }
    }
    // Weekdays, first.
    if let Some((at, text)) = tokens.first().cloned() {
        if tokens.len() > 1 {
            let extra = &tokens[1];
            return Err(ScheduleError::at(
                extra.0,
                format!(
                    "unexpected '{}'; write [weekdays] [date] [time] [zone]",
                    extra.1
                ),
            ));
        }
        tokens.clear();
        f.weekdays = 0;
        for term in text.trim_end_matches(',').split(',') {
            let term = term.replace('-', "..");
            let (a, b) = term.split_once("..").unwrap_or((&term, &term));
            let day = |s: &str| {
                let s = s.to_ascii_lowercase();
                WEEKDAYS
                    .iter()
                    .find(|(n, w)| {
                        s.starts_with(n) && format!("{w:?}").to_ascii_lowercase().starts_with(&s)
                    })
                    .map(|(_, w)| w.to_monday_zero_offset())
            };
            let (Some(a), Some(b)) = (day(a), day(b)) else {
                return Err(ScheduleError::at(
                    at,
                    format!("bad weekday '{term}': write Mon, Tue, ... or a range Mon..Fri"),
                ));
            };
            if b < a {
                return Err(ScheduleError::at(at, format!("bad weekday range '{term}'")));
            }
            for d in a..=b {
                // Monday-zero to Sunday-zero bits.
                f.weekdays |= 1 << ((d + 1) % 7);
            }
        }
    }
    Ok((f, tz))
}

fn is_special(t: &str) -> bool {
    SPECIALS.iter().any(|(n, _)| n.eq_ignore_ascii_case(t))
}

/// An OnCalendar component: `*`, `5`, `1,15`, `9..17`, `*/15`, `0/20`, `8..18/2`.
fn set_of(text: &str, lo: u32, hi: u32) -> Result<u64, String> {
    let mut set = 0u64;
    for term in text.split(',') {
        let (range, step) = match term.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .ok()
                    .filter(|&s| s > 0)
                    .ok_or_else(|| format!("'{s}' is not a positive step"))?,
            ),
            None => (term, 1),
        };
        let num = |s: &str| {
            s.parse::<u32>()
                .ok()
                .filter(|v| (lo..=hi).contains(v))
                .ok_or_else(|| format!("'{s}' is not a number from {lo} to {hi}"))
        };
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once("..") {
            let (a, b) = (num(a)?, num(b)?);
            if b < a {
                return Err(format!("'{range}' goes downwards"));
            }
            (a, b)
        } else {
            let a = num(range)?;
            (a, if term.contains('/') { hi } else { a })
        };
        for v in (a..=b).step_by(step as usize) {
            set |= 1 << v;
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
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
        let s =
            Schedule::on_calendar("12:00\nMon 08:00 America/New_York", "Europe/Berlin").unwrap();
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
        let bad =
            serde_json::from_value::<Schedule>(serde_json::json!({"kind": "cron", "value": "x"}));
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
}
