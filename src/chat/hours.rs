//! Business hours: whether a site is open at an instant, and when it opens next.

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::model::{OpenSpan, Site};

/// What the widget shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WidgetState {
    /// An agent is online: live chat.
    Online,
    /// Inside business hours, nobody online: the email form.
    Away,
    /// Outside business hours: the email form and when the team is back.
    Closed,
}

pub fn time_zone(name: &str) -> Option<TimeZone> {
    if name.is_empty() || name == "UTC" {
        return Some(TimeZone::UTC);
    }
    TimeZone::get(name).ok()
}

/// Whether `site` is within its hours at `now_ms` (always, when it has none).
pub fn is_open(site: &Site, now_ms: i64) -> bool {
    if site.hours.is_empty() {
        return true;
    }
    let (Some(tz), Ok(ts)) = (
        time_zone(&site.time_zone),
        Timestamp::from_millisecond(now_ms),
    ) else {
        return true;
    };
    let z = ts.to_zoned(tz);
    let day = z.weekday().to_monday_zero_offset() as u8;
    let min = z.hour() as u16 * 60 + z.minute() as u16;
    site.hours
        .iter()
        .any(|s| s.day == day && s.open_min <= min && min < s.close_min)
}

/// The next opening instant after `now_ms` (ms), within two weeks; `None` without hours.
pub fn next_open(site: &Site, now_ms: i64) -> Option<i64> {
    if site.hours.is_empty() {
        return None;
    }
    let tz = time_zone(&site.time_zone)?;
    let z = Timestamp::from_millisecond(now_ms)
        .ok()?
        .to_zoned(tz.clone());
    let today = z.date();
    let mut best: Option<i64> = None;
    for offset in 0..15i64 {
        let date = today.checked_add(jiff::Span::new().days(offset)).ok()?;
        let day = date.weekday().to_monday_zero_offset() as u8;
        for s in site.hours.iter().filter(|s| s.day == day) {
            let dt = date.at((s.open_min / 60) as i8, (s.open_min % 60) as i8, 0, 0);
            let Ok(at) = dt.to_zoned(tz.clone()) else {
                continue;
            };
            let ms = at.timestamp().as_millisecond();
            if ms > now_ms && best.is_none_or(|b| ms < b) {
                best = Some(ms);
            }
        }
        if best.is_some() {
            return best;
        }
    }
    best
}

/// Longest stretch [`business_ms`] walks day by day (ten years); beyond it the time is clipped.
const MAX_BUSINESS_DAYS: i64 = 3_660;

/// Milliseconds of `[from_ms, to_ms)` that fall inside the site's business hours, in its time
/// zone (daylight-saving days count as they are). A site without hours is always open, so
/// its business time is the wall-clock time.
pub fn business_ms(site: &Site, from_ms: i64, to_ms: i64) -> i64 {
    if to_ms <= from_ms {
        return 0;
    }
    if site.hours.is_empty() {
        return to_ms - from_ms;
    }
    let (Some(tz), Ok(start)) = (
        time_zone(&site.time_zone),
        Timestamp::from_millisecond(from_ms),
    ) else {
        return to_ms - from_ms;
    };
    let mut date = start.to_zoned(tz.clone()).date();
    let mut total = 0;
    for _ in 0..MAX_BUSINESS_DAYS {
        let day = date.weekday().to_monday_zero_offset() as u8;
        for s in site.hours.iter().filter(|s| s.day == day) {
            let at = |min: u16| -> Option<i64> {
                let dt = if min >= 24 * 60 {
                    date.tomorrow().ok()?.at(0, 0, 0, 0)
                } else {
                    date.at((min / 60) as i8, (min % 60) as i8, 0, 0)
                };
                Some(dt.to_zoned(tz.clone()).ok()?.timestamp().as_millisecond())
            };
            let (Some(open), Some(close)) = (at(s.open_min), at(s.close_min)) else {
                continue;
            };
            let (a, b) = (open.max(from_ms), close.min(to_ms));
            if b > a {
                total += b - a;
            }
        }
        let midnight = date
            .to_zoned(tz.clone())
            .map(|z| z.timestamp().as_millisecond())
            .unwrap_or(i64::MAX);
        if midnight >= to_ms {
            break;
        }
        match date.tomorrow() {
            Ok(d) => date = d,
            Err(_) => break,
        }
    }
    total
}

pub fn state(site: &Site, now_ms: i64, agents_online: bool) -> WidgetState {
    if !is_open(site, now_ms) {
        WidgetState::Closed
    } else if agents_online {
        WidgetState::Online
    } else {
        WidgetState::Away
    }
}

/// Parses `{"mon": "09:00-17:00", "tue": "09:00-12:00,13:00-17:00", ...}`.
pub fn parse_hours(v: &serde_json::Value) -> Result<Vec<OpenSpan>, String> {
    const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let Some(obj) = v.as_object() else {
        return Err(
            "hours must be an object like {\"mon\": \"09:00-17:00\"}, days mon..sun".into(),
        );
    };
    let mut out = Vec::new();
    for (k, spans) in obj {
        let day =
            DAYS.iter().position(|d| d == k).ok_or_else(|| {
                format!("unknown day {k:?}; use mon, tue, wed, thu, fri, sat, sun")
            })? as u8;
        let text = spans
            .as_str()
            .ok_or_else(|| format!("hours for {k} must be a string like \"09:00-17:00\""))?;
        for span in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (a, b) = span
                .split_once('-')
                .ok_or_else(|| format!("{span:?}: write a span as HH:MM-HH:MM"))?;
            let (open_min, close_min) = (minutes(a)?, minutes(b)?);
            if close_min <= open_min {
                return Err(format!("{span:?}: the span must close after it opens"));
            }
            out.push(OpenSpan {
                day,
                open_min,
                close_min,
            });
        }
    }
    if out.len() > 50 {
        return Err("at most 50 spans".into());
    }
    Ok(out)
}

fn minutes(s: &str) -> Result<u16, String> {
    let bad = || format!("{s:?} is not a time; write HH:MM (24:00 closes at midnight)");
    let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
    let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if m >= 60 || h > 24 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(tz: &str, hours: serde_json::Value) -> Site {
        Site {
            id: 1,
            name: "s".into(),
            site_key: "k".into(),
            identity_secret: "s".into(),
            require_identity: false,
            hours: parse_hours(&hours).unwrap(),
            time_zone: tz.into(),
            created_ms: 0,
        }
    }

    fn ms(s: &str) -> i64 {
        s.parse::<Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn open_closed_and_next_opening_in_the_sites_zone() {
        let s = site(
            "Europe/Berlin",
            serde_json::json!({"mon": "09:00-17:00", "fri": "09:00-12:00"}),
        );
        // Monday 2026-11-30 08:30 UTC = 09:30 in Berlin (CET, UTC+1).
        assert!(is_open(&s, ms("2026-11-30T08:30:00Z")));
        assert!(!is_open(&s, ms("2026-11-30T16:30:00Z")));
        assert_eq!(
            state(&s, ms("2026-11-30T08:30:00Z"), false),
            WidgetState::Away
        );
        assert_eq!(
            state(&s, ms("2026-11-30T08:30:00Z"), true),
            WidgetState::Online
        );
        assert_eq!(
            state(&s, ms("2026-11-30T16:30:00Z"), true),
            WidgetState::Closed
        );
        // Monday evening → Friday 09:00 Berlin = 08:00 UTC.
        assert_eq!(
            next_open(&s, ms("2026-11-30T16:30:00Z")),
            Some(ms("2026-12-04T08:00:00Z"))
        );
        // Friday after noon → next Monday.
        assert_eq!(
            next_open(&s, ms("2026-12-04T12:00:00Z")),
            Some(ms("2026-12-07T08:00:00Z"))
        );
    }

    #[test]
    fn business_time_counts_only_open_hours_in_the_sites_zone() {
        let s = site(
            "Europe/Berlin",
            serde_json::json!({"mon": "09:00-17:00", "fri": "09:00-12:00"}),
        );
        // Monday 2026-11-30: open 08:00-16:00 UTC. 07:00 → 10:00 UTC is 2 h of business time.
        assert_eq!(
            business_ms(&s, ms("2026-11-30T07:00:00Z"), ms("2026-11-30T10:00:00Z")),
            2 * 3_600_000
        );
        // Monday 15:00 UTC → Friday 09:00 UTC: 1 h Monday + 1 h Friday (08:00-09:00 UTC).
        assert_eq!(
            business_ms(&s, ms("2026-11-30T15:00:00Z"), ms("2026-12-04T09:00:00Z")),
            2 * 3_600_000
        );
        // A whole week: 8 h + 3 h.
        assert_eq!(
            business_ms(&s, ms("2026-11-30T00:00:00Z"), ms("2026-12-07T00:00:00Z")),
            11 * 3_600_000
        );
        // Outside hours only: nothing; empty or reversed spans: nothing.
        assert_eq!(
            business_ms(&s, ms("2026-12-01T00:00:00Z"), ms("2026-12-03T23:00:00Z")),
            0
        );
        assert_eq!(business_ms(&s, 10, 10), 0);
        // No hours: wall-clock time.
        let always = site("UTC", serde_json::json!({}));
        assert_eq!(business_ms(&always, 1_000, 61_000), 60_000);
        // Until midnight ("24:00"), across the daylight-saving change in Berlin (2026-03-29).
        let sun = site("Europe/Berlin", serde_json::json!({"sun": "00:00-24:00"}));
        assert_eq!(
            business_ms(&sun, ms("2026-03-28T00:00:00Z"), ms("2026-03-30T00:00:00Z")),
            23 * 3_600_000
        );
    }

    #[test]
    fn no_hours_is_always_open_and_bad_hours_are_refused() {
        let s = site("UTC", serde_json::json!({}));
        assert!(is_open(&s, 0));
        assert_eq!(next_open(&s, 0), None);
        for bad in [
            serde_json::json!({"mon": "9-17"}),
            serde_json::json!({"xyz": "09:00-17:00"}),
            serde_json::json!({"mon": "17:00-09:00"}),
            serde_json::json!({"mon": "09:00-24:30"}),
        ] {
            assert!(parse_hours(&bad).is_err(), "{bad}");
        }
    }
}
