//! Crontab expressions (five fields, names and Sentry's nicknames) to [`Fields`].

use super::*;

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

pub(super) fn parse_cron(expr: &str) -> Result<Fields, ScheduleError> {
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
    let parts = fields_with_offsets(line);
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
        for term in text.split(',') {
            cron_term(&mut f, kind, at, text, term)?;
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

/// The line's whitespace-separated fields with their byte offsets, for error positions.
fn fields_with_offsets(line: &str) -> Vec<(usize, &str)> {
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
    parts
}

/// Adds one comma-separated term of a field (`5`, `1-5`, `*/15`, `L`, `MON#2`, `FRIL`) to `f`.
fn cron_term(
    f: &mut Fields,
    kind: CronField,
    at: usize,
    text: &str,
    term: &str,
) -> Result<(), ScheduleError> {
    let bad =
        |msg: &str| ScheduleError::at(at, format!("bad {} field '{text}': {msg}", kind.name()));
    let mut values: Vec<u32> = Vec::new();
    let upper = term.to_ascii_uppercase();
    if kind == CronField::Day && upper == "L" {
        f.last_days |= 1 << 1;
        return Ok(());
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
            return Ok(());
        }
        if let Some(day) = upper.strip_suffix('L').filter(|d| !d.is_empty()) {
            let day = kind
                .value(day)
                .ok_or_else(|| bad("expected a weekday before L"))?;
            f.last_weekdays |= 1 << (day % 7);
            return Ok(());
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
    Ok(())
}
