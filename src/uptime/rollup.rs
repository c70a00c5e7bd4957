//! Rollups of results into minute, hour and day buckets (UTC-aligned), the uptime figures and
//! daily bars computed from them, and incidents derived from status changes.
//!
//! Every result is added to its minute, hour and day bucket when it is stored, so reading a
//! figure never scans raw results: 24 h comes from minute buckets, 7 d and 30 d from hour
//! buckets (to the hour), 90 d and the 90 daily bars from day buckets (UTC days). Keeping
//! minute buckets for [`RETAIN_MINUTES`], hour buckets for [`RETAIN_HOURS`] and day buckets
//! for [`RETAIN_DAYS`] is enough for all of them.
//!
//! Uptime is `up / (up + down)`: unknown results (Hearth was down) and results during
//! maintenance count in neither.

use std::time::Duration;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};
use serde::{Deserialize, Serialize};

use super::heartbeat::RecordKind;
use super::monitor::{Beat, Status};

pub const RETAIN_MINUTES: SignedDuration = SignedDuration::from_hours(25);
pub const RETAIN_HOURS: SignedDuration = SignedDuration::from_hours(31 * 24);
pub const RETAIN_DAYS: SignedDuration = SignedDuration::from_hours(92 * 24);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    Minute,
    Hour,
    Day,
}

impl Resolution {
    pub const ALL: [Resolution; 3] = [Resolution::Minute, Resolution::Hour, Resolution::Day];

    pub fn seconds(self) -> i64 {
        match self {
            Resolution::Minute => 60,
            Resolution::Hour => 3_600,
            Resolution::Day => 86_400,
        }
    }

    /// The start of the bucket holding `t`.
    pub fn bucket_start(self, t: Timestamp) -> Timestamp {
        let s = self.seconds();
        Timestamp::from_second(t.as_second().div_euclid(s) * s).expect("aligned timestamp in range")
    }
}

/// How one result counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SampleState {
    Up,
    Down,
    Unknown,
    Maintenance,
}

impl SampleState {
    /// An active check's beat; during maintenance every beat counts as maintenance. A retry
    /// counts as up (the monitor is still up), a success while recovering as down.
    pub fn from_beat(beat: Beat, in_maintenance: bool) -> SampleState {
        if in_maintenance {
            return SampleState::Maintenance;
        }
        match beat {
            Beat::Up | Beat::Retrying => SampleState::Up,
            Beat::Down | Beat::Recovering => SampleState::Down,
        }
    }

    /// A heartbeat record; starts and logs are not results.
    pub fn from_record(kind: RecordKind, in_maintenance: bool) -> Option<SampleState> {
        let state = match kind {
            RecordKind::Success => SampleState::Up,
            RecordKind::Failure | RecordKind::Missed | RecordKind::TimedOut => SampleState::Down,
            RecordKind::Unknown => SampleState::Unknown,
            RecordKind::Started | RecordKind::Log => return None,
        };
        Some(if in_maintenance && state != SampleState::Unknown {
            SampleState::Maintenance
        } else {
            state
        })
    }
}

/// Counts and response times of one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    pub start: Timestamp,
    pub up: u32,
    pub down: u32,
    pub unknown: u32,
    pub maintenance: u32,
    /// Response times: how many, their sum, the smallest and the largest, in ms.
    pub rt_count: u32,
    pub rt_sum_ms: u64,
    pub rt_min_ms: u32,
    pub rt_max_ms: u32,
}

impl Bucket {
    pub fn empty(start: Timestamp) -> Bucket {
        Bucket {
            start,
            up: 0,
            down: 0,
            unknown: 0,
            maintenance: 0,
            rt_count: 0,
            rt_sum_ms: 0,
            rt_min_ms: u32::MAX,
            rt_max_ms: 0,
        }
    }

    pub fn add(&mut self, state: SampleState, response_time: Option<Duration>) {
        let n = match state {
            SampleState::Up => &mut self.up,
            SampleState::Down => &mut self.down,
            SampleState::Unknown => &mut self.unknown,
            SampleState::Maintenance => &mut self.maintenance,
        };
        *n = n.saturating_add(1);
        if let Some(rt) = response_time {
            let ms = u32::try_from(rt.as_millis()).unwrap_or(u32::MAX);
            self.rt_count = self.rt_count.saturating_add(1);
            self.rt_sum_ms = self.rt_sum_ms.saturating_add(u64::from(ms));
            self.rt_min_ms = self.rt_min_ms.min(ms);
            self.rt_max_ms = self.rt_max_ms.max(ms);
        }
    }

    /// Adds another bucket's counts (for coarser views built from finer buckets).
    pub fn merge(&mut self, other: &Bucket) {
        self.up = self.up.saturating_add(other.up);
        self.down = self.down.saturating_add(other.down);
        self.unknown = self.unknown.saturating_add(other.unknown);
        self.maintenance = self.maintenance.saturating_add(other.maintenance);
        self.rt_count = self.rt_count.saturating_add(other.rt_count);
        self.rt_sum_ms = self.rt_sum_ms.saturating_add(other.rt_sum_ms);
        self.rt_min_ms = self.rt_min_ms.min(other.rt_min_ms);
        self.rt_max_ms = self.rt_max_ms.max(other.rt_max_ms);
    }

    pub fn uptime(&self) -> Option<f64> {
        ratio(u64::from(self.up), u64::from(self.down))
    }

    pub fn avg_response_ms(&self) -> Option<f64> {
        (self.rt_count > 0).then(|| self.rt_sum_ms as f64 / f64::from(self.rt_count))
    }
}

fn ratio(up: u64, down: u64) -> Option<f64> {
    (up + down > 0).then(|| up as f64 / (up + down) as f64)
}

/// The bucket starts one result at `t` updates, finest first.
pub fn buckets_for(t: Timestamp) -> [(Resolution, Timestamp); 3] {
    Resolution::ALL.map(|r| (r, r.bucket_start(t)))
}

/// Uptime over the buckets that start in `[from, to)` (`from` rounded down to the bucket).
pub fn uptime(
    buckets: &[Bucket],
    resolution: Resolution,
    from: Timestamp,
    to: Timestamp,
) -> Option<f64> {
    let from = resolution.bucket_start(from);
    let (up, down) = buckets
        .iter()
        .filter(|b| b.start >= from && b.start < to)
        .fold((0u64, 0u64), |(u, d), b| {
            (u + u64::from(b.up), d + u64::from(b.down))
        });
    ratio(up, down)
}

/// The four uptime figures of a monitor.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct UptimeFigures {
    pub h24: Option<f64>,
    pub d7: Option<f64>,
    pub d30: Option<f64>,
    pub d90: Option<f64>,
}

/// 24 h from minute buckets, 7 d and 30 d from hour buckets, 90 d from day buckets.
pub fn figures(
    minutes: &[Bucket],
    hours: &[Bucket],
    days: &[Bucket],
    now: Timestamp,
) -> UptimeFigures {
    let back = |h: i64| {
        now.saturating_sub(SignedDuration::from_hours(h))
            .unwrap_or(now)
    };
    let end = now
        .saturating_add(SignedDuration::from_secs(1))
        .unwrap_or(now);
    UptimeFigures {
        h24: uptime(minutes, Resolution::Minute, back(24), end),
        d7: uptime(hours, Resolution::Hour, back(7 * 24), end),
        d30: uptime(hours, Resolution::Hour, back(30 * 24), end),
        // 90 UTC days including today.
        d90: uptime(days, Resolution::Day, back(89 * 24), end),
    }
}

/// How a day looks on the status page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BarLevel {
    NoData,
    Operational,
    /// Some downtime, at most 5 % of the day's results.
    Degraded,
    /// More than 5 % down.
    Outage,
    /// Only maintenance.
    Maintenance,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DayBar {
    pub date: Date,
    pub uptime: Option<f64>,
    pub level: BarLevel,
    pub down: u32,
}

/// The last `n` UTC days up to and including the day of `now`, oldest first.
pub fn daily_bars(days: &[Bucket], now: Timestamp, n: usize) -> Vec<DayBar> {
    let today = now.to_zoned(TimeZone::UTC).date();
    (0..n as i64)
        .rev()
        .map(|back| {
            let date = today.checked_sub(back.days()).unwrap_or(today);
            let start = date
                .to_zoned(TimeZone::UTC)
                .map(|z| z.timestamp())
                .unwrap_or(Timestamp::UNIX_EPOCH);
            let bucket = days.iter().find(|b| b.start == start);
            let uptime = bucket.and_then(Bucket::uptime);
            let level = match (bucket, uptime) {
                (_, Some(u)) if u >= 1.0 => BarLevel::Operational,
                (_, Some(u)) if u >= 0.95 => BarLevel::Degraded,
                (_, Some(_)) => BarLevel::Outage,
                (Some(b), None) if b.maintenance > 0 => BarLevel::Maintenance,
                _ => BarLevel::NoData,
            };
            DayBar {
                date,
                uptime,
                level,
                down: bucket.map_or(0, |b| b.down),
            }
        })
        .collect()
}

/// A stored status change (from [`super::monitor::Event::StatusChanged`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub at: Timestamp,
    pub to: Status,
    /// For DOWN: when the failure streak began.
    pub streak_started: Option<Timestamp>,
    pub error: Option<String>,
}

/// A DOWN→UP pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    /// The first failure of the streak that went DOWN.
    pub start: Timestamp,
    /// When DOWN was declared (after the failure threshold).
    pub detected: Timestamp,
    /// When it came back UP; `None` while open.
    pub end: Option<Timestamp>,
    /// To `end`, or to `now` while open.
    pub duration: SignedDuration,
    pub first_error: Option<String>,
}

/// Incidents from status changes in time order, oldest first.
pub fn incidents(changes: &[Change], now: Timestamp) -> Vec<Incident> {
    let mut out: Vec<Incident> = Vec::new();
    let mut open: Option<Incident> = None;
    for c in changes {
        match c.to {
            Status::Down if open.is_none() => {
                let start = c.streak_started.unwrap_or(c.at);
                open = Some(Incident {
                    start,
                    detected: c.at,
                    end: None,
                    duration: SignedDuration::ZERO,
                    first_error: c.error.clone(),
                });
            }
            Status::Up => {
                if let Some(mut i) = open.take() {
                    i.end = Some(c.at);
                    i.duration = c.at.duration_since(i.start);
                    out.push(i);
                }
            }
            // A DOWN while one is open (resumed after a pause, say) continues it; PENDING
            // (resumed) neither opens nor closes one.
            _ => {}
        }
    }
    if let Some(mut i) = open {
        i.duration = now.duration_since(i.start);
        out.push(i);
    }
    out
}

#[cfg(test)]
mod tests {
    use jiff::Zoned;

    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse::<Zoned>().unwrap().timestamp()
    }

    /// Buckets of all three resolutions from (time, state, rt ms) samples.
    fn roll(samples: &[(Timestamp, SampleState, Option<u64>)]) -> [Vec<Bucket>; 3] {
        let mut out: [Vec<Bucket>; 3] = Default::default();
        for &(t, state, rt) in samples {
            for (i, (_, start)) in buckets_for(t).into_iter().enumerate() {
                let list = &mut out[i];
                let b = match list.iter_mut().find(|b| b.start == start) {
                    Some(b) => b,
                    None => {
                        list.push(Bucket::empty(start));
                        list.last_mut().unwrap()
                    }
                };
                b.add(state, rt.map(Duration::from_millis));
            }
        }
        out
    }

    #[test]
    fn buckets_count_and_track_response_times() {
        let t = at("2025-06-01T10:15:30Z[UTC]");
        assert_eq!(
            Resolution::Minute.bucket_start(t),
            at("2025-06-01T10:15:00Z[UTC]")
        );
        assert_eq!(
            Resolution::Hour.bucket_start(t),
            at("2025-06-01T10:00:00Z[UTC]")
        );
        assert_eq!(
            Resolution::Day.bucket_start(t),
            at("2025-06-01T00:00:00Z[UTC]")
        );
        let mut b = Bucket::empty(Resolution::Minute.bucket_start(t));
        b.add(SampleState::Up, Some(Duration::from_millis(100)));
        b.add(SampleState::Up, Some(Duration::from_millis(300)));
        b.add(SampleState::Down, None);
        b.add(SampleState::Unknown, None);
        b.add(SampleState::Maintenance, None);
        assert_eq!((b.up, b.down, b.unknown, b.maintenance), (2, 1, 1, 1));
        assert_eq!(
            (b.rt_min_ms, b.rt_max_ms, b.avg_response_ms()),
            (100, 300, Some(200.0))
        );
        assert_eq!(b.uptime(), Some(2.0 / 3.0));
        let mut merged = Bucket::empty(b.start);
        merged.merge(&b);
        merged.merge(&b);
        assert_eq!((merged.up, merged.rt_count, merged.rt_min_ms), (4, 4, 100));
        assert_eq!(Bucket::empty(b.start).uptime(), None);
    }

    #[test]
    fn figures_come_from_the_right_resolution_and_window() {
        let now = at("2025-06-30T12:00:00Z[UTC]");
        let mut samples = Vec::new();
        // One check a minute for the last 24 h: all up but 36 down minutes (97.5 %).
        for m in 0..1440 {
            let t = now - SignedDuration::from_mins(1440 - m);
            let state = if m < 36 {
                SampleState::Down
            } else {
                SampleState::Up
            };
            samples.push((t, state, Some(50)));
        }
        // Ten days ago a full down day (hourly samples), and 40 days ago too (outside 30 d).
        for back in [10, 40] {
            for h in 0..24 {
                let t = now - SignedDuration::from_hours(back * 24 + h);
                samples.push((t, SampleState::Down, None));
            }
        }
        let [minutes, hours, days] = roll(&samples);
        let f = figures(&minutes, &hours, &days, now);
        assert_eq!(f.h24, Some(1404.0 / 1440.0));
        assert_eq!(f.d7, f.h24, "only the last day has data within 7 d");
        assert_eq!(f.d30, Some(1404.0 / (1440.0 + 24.0)));
        assert_eq!(f.d90, Some(1404.0 / (1440.0 + 48.0)));
        // Unknown and maintenance count in neither direction.
        let [m, h, d] = roll(&[
            (now, SampleState::Up, None),
            (now, SampleState::Unknown, None),
            (now, SampleState::Maintenance, None),
        ]);
        assert_eq!(figures(&m, &h, &d, now).h24, Some(1.0));
        assert_eq!(figures(&[], &[], &[], now).d90, None);
    }

    #[test]
    fn ninety_daily_bars_oldest_first_with_levels() {
        let now = at("2025-06-30T12:00:00Z[UTC]");
        let day = |back: i64| now - SignedDuration::from_hours(24 * back);
        let mut samples = vec![(day(0), SampleState::Up, None)];
        samples.extend((0..99).map(|_| (day(1), SampleState::Up, None)));
        samples.push((day(1), SampleState::Down, None)); // 99 %: degraded
        samples.extend((0..5).map(|_| (day(2), SampleState::Down, None))); // outage
        samples.push((day(3), SampleState::Maintenance, None));
        let [_, _, days] = roll(&samples);
        let bars = daily_bars(&days, now, 90);
        assert_eq!(bars.len(), 90);
        assert_eq!(bars[0].date, jiff::civil::date(2025, 4, 2));
        assert_eq!(bars[89].date, jiff::civil::date(2025, 6, 30));
        let levels: Vec<BarLevel> = bars[86..].iter().map(|b| b.level).collect();
        assert_eq!(
            levels,
            [
                BarLevel::Maintenance,
                BarLevel::Outage,
                BarLevel::Degraded,
                BarLevel::Operational
            ]
        );
        assert_eq!(bars[88].uptime, Some(0.99));
        assert_eq!(bars[88].down, 1);
        assert_eq!(bars[10].level, BarLevel::NoData);
    }

    #[test]
    fn incidents_pair_down_and_up() {
        let t = |m: i64| at("2025-06-01T00:00:00Z[UTC]") + SignedDuration::from_mins(m);
        let changes = vec![
            Change {
                at: t(0),
                to: Status::Up,
                streak_started: None,
                error: None,
            },
            Change {
                at: t(10),
                to: Status::Down,
                streak_started: Some(t(8)),
                error: Some("503".into()),
            },
            Change {
                at: t(25),
                to: Status::Up,
                streak_started: None,
                error: None,
            },
            Change {
                at: t(40),
                to: Status::Down,
                streak_started: Some(t(38)),
                error: Some("timeout".into()),
            },
            Change {
                at: t(45),
                to: Status::Pending,
                streak_started: None,
                error: None,
            },
            Change {
                at: t(47),
                to: Status::Down,
                streak_started: Some(t(46)),
                error: Some("again".into()),
            },
        ];
        let list = incidents(&changes, t(60));
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].start, t(8));
        assert_eq!(list[0].detected, t(10));
        assert_eq!(list[0].end, Some(t(25)));
        assert_eq!(list[0].duration, SignedDuration::from_mins(17));
        assert_eq!(list[0].first_error.as_deref(), Some("503"));
        // Still open: runs to now, keeps its first error.
        assert_eq!(list[1].end, None);
        assert_eq!(list[1].duration, SignedDuration::from_mins(22));
        assert_eq!(list[1].first_error.as_deref(), Some("timeout"));
    }

    #[test]
    fn samples_from_beats_and_records() {
        assert_eq!(
            SampleState::from_beat(Beat::Retrying, false),
            SampleState::Up
        );
        assert_eq!(
            SampleState::from_beat(Beat::Recovering, false),
            SampleState::Down
        );
        assert_eq!(
            SampleState::from_beat(Beat::Down, true),
            SampleState::Maintenance
        );
        assert_eq!(
            SampleState::from_record(RecordKind::Missed, false),
            Some(SampleState::Down)
        );
        assert_eq!(
            SampleState::from_record(RecordKind::Unknown, true),
            Some(SampleState::Unknown)
        );
        assert_eq!(SampleState::from_record(RecordKind::Log, false), None);
    }
}
