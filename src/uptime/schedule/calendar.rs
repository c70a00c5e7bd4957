//! systemd `OnCalendar=` expressions to [`Fields`].

use super::*;

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

pub(super) fn parse_oncalendar(
    value: &str,
) -> Result<Vec<(Fields, Option<TimeZone>)>, ScheduleError> {
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
    let mut tokens = calendar_tokens(line, base);
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
        calendar_time(&mut f, at, &text)?;
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
        calendar_date(&mut f, at, &text)?;
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
        calendar_weekdays(&mut f, at, &text)?;
    }
    Ok((f, tz))
}

/// The line's tokens with their byte offsets in the whole value.
fn calendar_tokens(line: &str, base: usize) -> Vec<(usize, String)> {
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
    tokens
}

/// The time, `HH:MM[:SS]`, each a component such as `*/15` or `9..17`.
fn calendar_time(f: &mut Fields, at: usize, text: &str) -> Result<(), ScheduleError> {
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
    Ok(())
}

/// The date, `[YYYY-]MM-DD` or `MM~DD` (days from the month's end).
fn calendar_date(f: &mut Fields, at: usize, text: &str) -> Result<(), ScheduleError> {
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
    let bad = |what: &str, m: String| ScheduleError::at(at, format!("bad {what} in '{text}': {m}"));
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
    Ok(())
}

/// The weekdays, `Mon,Wed` or `Mon..Fri`.
fn calendar_weekdays(f: &mut Fields, at: usize, text: &str) -> Result<(), ScheduleError> {
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
    Ok(())
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
