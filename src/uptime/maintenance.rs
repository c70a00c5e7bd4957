//! Maintenance windows: one-off (start to end) or recurring (a crontab or OnCalendar schedule
//! in a time zone, each occurrence lasting `duration`). An active window suppresses a
//! monitor's notifications ([`super::monitor::Context::in_maintenance`]) and shows on the status
//! page. Occurrences are computed when asked, never materialized (Uptime Kuma generated endless
//! time slots for recurring maintenance, #2889).

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::schedule::Schedule;

/// Longest single occurrence of a window.
pub const MAX_DURATION: SignedDuration = SignedDuration::from_hours(31 * 24);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Window {
    OneOff {
        start: Timestamp,
        end: Timestamp,
    },
    Recurring {
        /// When each occurrence starts (crontab or OnCalendar; intervals have no anchor).
        schedule: Schedule,
        #[serde(with = "super::duration_text")]
        duration: SignedDuration,
    },
}

/// One occurrence of a window, `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Occurrence {
    pub start: Timestamp,
    pub end: Timestamp,
}

impl Window {
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Window::OneOff { start, end } => {
                if end <= start {
                    return Err("end must be after start".into());
                }
            }
            Window::Recurring { schedule, duration } => {
                if schedule.is_interval() {
                    return Err(
                        "a recurring window needs a crontab or OnCalendar schedule, not an interval"
                            .into(),
                    );
                }
                if duration.is_zero() || duration.is_negative() || *duration > MAX_DURATION {
                    return Err("duration must be between 1s and 31d".into());
                }
            }
        }
        Ok(())
    }

    /// The occurrence that covers `t`, if any.
    pub fn active_at(&self, t: Timestamp) -> Option<Occurrence> {
        match self {
            Window::OneOff { start, end } => (*start <= t && t < *end).then_some(Occurrence {
                start: *start,
                end: *end,
            }),
            Window::Recurring { schedule, duration } => {
                // The first start after `t - duration` is the only one that can still be running.
                let start = schedule.next_after(t.checked_sub(*duration).ok()?)?;
                (start <= t).then(|| Occurrence {
                    start,
                    end: start.saturating_add(*duration).unwrap_or(start),
                })
            }
        }
    }

    /// The first occurrence that starts after `t`.
    pub fn next_after(&self, t: Timestamp) -> Option<Occurrence> {
        match self {
            Window::OneOff { start, end } => (*start > t).then_some(Occurrence {
                start: *start,
                end: *end,
            }),
            Window::Recurring { schedule, duration } => {
                let start = schedule.next_after(t)?;
                Some(Occurrence {
                    start,
                    end: start.saturating_add(*duration).unwrap_or(start),
                })
            }
        }
    }
}

/// Whether any window is active at `t`.
pub fn active(windows: &[Window], t: Timestamp) -> bool {
    windows.iter().any(|w| w.active_at(t).is_some())
}

/// Occurrences running at `now` or starting within `horizon`, earliest first, at most `limit`
/// (the status page's "planned maintenance").
pub fn upcoming(
    windows: &[Window],
    now: Timestamp,
    horizon: SignedDuration,
    limit: usize,
) -> Vec<Occurrence> {
    let until = now.saturating_add(horizon).unwrap_or(now);
    let mut out = Vec::new();
    for w in windows {
        out.extend(w.active_at(now));
        let mut t = now;
        for _ in 0..limit {
            match w.next_after(t) {
                Some(o) if o.start <= until => {
                    out.push(o);
                    t = o.start;
                }
                _ => break,
            }
        }
    }
    out.sort();
    out.dedup();
    out.truncate(limit);
    out
}

#[cfg(test)]
mod tests {
    use jiff::Zoned;

    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse::<Zoned>().unwrap().timestamp()
    }

    #[test]
    fn one_off_covers_start_to_end() {
        let w = Window::OneOff {
            start: at("2025-05-01T10:00:00Z[UTC]"),
            end: at("2025-05-01T12:00:00Z[UTC]"),
        };
        assert!(w.active_at(at("2025-05-01T09:59:59Z[UTC]")).is_none());
        assert!(w.active_at(at("2025-05-01T10:00:00Z[UTC]")).is_some());
        assert!(w.active_at(at("2025-05-01T11:59:59Z[UTC]")).is_some());
        assert!(w.active_at(at("2025-05-01T12:00:00Z[UTC]")).is_none());
        assert!(w.validate().is_ok());
        let backwards = Window::OneOff {
            start: at("2025-05-01T12:00:00Z[UTC]"),
            end: at("2025-05-01T10:00:00Z[UTC]"),
        };
        assert!(backwards.validate().is_err());
    }

    #[test]
    fn recurring_weekday_nights_in_berlin() {
        // Every weekday 02:00-03:00 Berlin time.
        let w = Window::Recurring {
            schedule: Schedule::on_calendar("Mon..Fri 02:00", "Europe/Berlin").unwrap(),
            duration: SignedDuration::from_hours(1),
        };
        assert!(w.validate().is_ok());
        // Tuesday 2025-05-06 02:30 CEST is inside, 03:00 is not; Saturday 02:30 is not.
        let occ = w
            .active_at(at("2025-05-06T02:30:00+02:00[Europe/Berlin]"))
            .unwrap();
        assert_eq!(occ.start, at("2025-05-06T02:00:00+02:00[Europe/Berlin]"));
        assert_eq!(occ.end, at("2025-05-06T03:00:00+02:00[Europe/Berlin]"));
        assert!(
            w.active_at(at("2025-05-06T03:00:00+02:00[Europe/Berlin]"))
                .is_none()
        );
        assert!(
            w.active_at(at("2025-05-10T02:30:00+02:00[Europe/Berlin]"))
                .is_none()
        );
        assert!(active(
            std::slice::from_ref(&w),
            at("2025-05-07T02:00:00+02:00[Europe/Berlin]")
        ));
        // Friday evening: the next one is Monday.
        let next = w
            .next_after(at("2025-05-09T20:00:00+02:00[Europe/Berlin]"))
            .unwrap();
        assert_eq!(next.start, at("2025-05-12T02:00:00+02:00[Europe/Berlin]"));
    }

    #[test]
    fn upcoming_lists_running_and_planned_windows_in_order() {
        let nightly = Window::Recurring {
            schedule: Schedule::cron("0 1 * * *", "UTC").unwrap(),
            duration: SignedDuration::from_mins(30),
        };
        let one_off = Window::OneOff {
            start: at("2025-05-01T12:00:00Z[UTC]"),
            end: at("2025-05-01T13:00:00Z[UTC]"),
        };
        let now = at("2025-05-01T01:10:00Z[UTC]");
        let list = upcoming(&[nightly, one_off], now, SignedDuration::from_hours(48), 10);
        let starts: Vec<Timestamp> = list.iter().map(|o| o.start).collect();
        assert_eq!(
            starts,
            [
                at("2025-05-01T01:00:00Z[UTC]"), // running now
                at("2025-05-01T12:00:00Z[UTC]"),
                at("2025-05-02T01:00:00Z[UTC]"),
                at("2025-05-03T01:00:00Z[UTC]"),
            ]
        );
        assert_eq!(upcoming(&[], now, SignedDuration::from_hours(1), 5), []);
    }

    #[test]
    fn recurring_windows_need_a_calendar_and_a_sane_duration() {
        let every = Window::Recurring {
            schedule: Schedule::every(SignedDuration::from_hours(1)).unwrap(),
            duration: SignedDuration::from_mins(5),
        };
        assert!(every.validate().is_err());
        let long = Window::Recurring {
            schedule: Schedule::cron("0 0 * * *", "UTC").unwrap(),
            duration: SignedDuration::from_hours(24 * 40),
        };
        assert!(long.validate().is_err());
        let json = serde_json::json!({"kind": "recurring", "schedule": {"kind": "cron", "value": "0 0 * * 0", "tz": "UTC"}, "duration": "2h"});
        let w: Window = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(serde_json::to_value(&w).unwrap()["duration"], "7200s");
    }
}
