//! One evaluator for everything that calls Hearth instead of being called: Healthchecks.io
//! pings, Uptime Kuma pushes and Sentry cron check-ins.
//!
//! `apply(state, policy, input, ctx) -> (state, transitions)` is pure; time comes from the
//! inputs (a signal's own timestamp) and from `ctx.now` for [`Input::Tick`], so tests run on a
//! controllable clock and a replayed signal counts at the time it was received.
//!
//! The model, shared by the three protocols:
//! - **Expected time.** After each signal the next one is expected at
//!   `schedule.next_after(signal)`: `signal + period` for an interval (Healthchecks' simple
//!   checks, Kuma pushes, Sentry interval monitors), the next crontab/OnCalendar time in the
//!   schedule's zone otherwise. Past it the monitor is **late**; `grace` (Sentry's
//!   `checkin_margin`) later, with no signal, that expected time is **missed**, a failure. The
//!   next expected time is then the following one of the schedule, so every missed run counts.
//!   A monitor that never received a signal expects nothing (Healthchecks' "new").
//! - **Runs.** A start (`/start`, `in_progress`) satisfies the expected time and opens a run,
//!   paired with its finish by `rid` / `check_in_id` (overlapping runs are fine). A run still
//!   open `max_runtime` after its start is **timed out**, a failure (Healthchecks: max_runtime =
//!   grace; Sentry: default 30 min).
//! - **Failures and successes** (a fail ping, a non-zero exit status, `status=down`, an `error`
//!   check-in; a success ping, exit status 0, `status=up`, an `ok` check-in) go through
//!   [`monitor::observe`] with the policy's thresholds (Sentry's `failure_issue_threshold` and
//!   `recovery_threshold`, default 1), which decides DOWN/UP and notifications.
//! - **Hearth's own downtime.** [`Input::Outage`] tells the evaluator the process was not
//!   running from `from` to `to`. An expected time whose window `[expected, expected + grace]`
//!   touches an outage, or a run whose `[start, start + max_runtime]` does, is recorded
//!   **unknown** when it passes without a signal, never missed or timed out: the signal may have
//!   been sent while nobody listened (Sentry learnt this the hard way and marks such check-ins
//!   unknown). Signals acknowledged before a crash and replayed afterwards count at their own
//!   time, so a recovery that happened meanwhile still yields its UP.
//! - **Pause.** A paused monitor ignores time; a signal resumes it (Healthchecks), and the
//!   expectation restarts from that signal.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::monitor::{self, Context, MonitorState, Observation, Policy};
use super::schedule::{Schedule, ScheduleKind, ScheduleSpec};

/// Request bodies kept with a ping (Healthchecks' `PING_BODY_LIMIT`).
pub const PING_BODY_LIMIT: usize = 10_000;
/// Open runs kept per monitor; a start beyond this forgets the oldest run.
pub const MAX_RUNS: usize = 32;
/// Outages remembered, most recent last.
pub const MAX_OUTAGES: usize = 8;
/// Missed expected times fed to the thresholds in one step (a larger backlog is still recorded,
/// as one counted record, but stops producing observations and reminders).
pub const MAX_OBSERVED_MISSES: u32 = 100;
/// Longest run id kept (`rid` is a UUID, Sentry's `check_in_id` 32 hex digits).
pub const MAX_RUN_ID: usize = 128;
/// Longest grace, margin or run time (Sentry's 28 days).
pub const MAX_WINDOW: SignedDuration = SignedDuration::from_hours(28 * 24);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatPolicy {
    pub schedule: Schedule,
    #[serde(with = "super::duration_text")]
    pub grace: SignedDuration,
    #[serde(with = "super::duration_text")]
    pub max_runtime: SignedDuration,
    #[serde(default = "Policy::immediate")]
    pub thresholds: Policy,
}

impl HeartbeatPolicy {
    /// A Healthchecks.io check: a run must finish within `grace` of its start.
    pub fn healthchecks(schedule: Schedule, grace: SignedDuration) -> HeartbeatPolicy {
        HeartbeatPolicy {
            schedule,
            grace,
            max_runtime: grace,
            thresholds: Policy::immediate(),
        }
    }

    /// A Sentry cron monitor from a check-in's `monitor_config`.
    pub fn sentry(config: &serde_json::Value) -> Result<HeartbeatPolicy, String> {
        let tz = match config.get("timezone") {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => Some(v.as_str().ok_or("timezone must be a string")?.to_string()),
        };
        let schedule = config
            .get("schedule")
            .ok_or("monitor_config.schedule is required")?;
        let spec = match schedule.get("type").and_then(|t| t.as_str()) {
            Some("crontab") => ScheduleSpec {
                kind: ScheduleKind::Cron,
                value: schedule
                    .get("value")
                    .and_then(|v| v.as_str())
                    .ok_or("schedule.value must be a crontab string")?
                    .to_string(),
                tz,
            },
            Some("interval") => {
                let value = schedule
                    .get("value")
                    .and_then(|v| v.as_u64())
                    .filter(|&v| v >= 1)
                    .ok_or("schedule.value must be a positive integer")?;
                let unit = schedule
                    .get("unit")
                    .and_then(|v| v.as_str())
                    .ok_or("schedule.unit must be year, month, week, day, hour or minute")?;
                if !["year", "month", "week", "day", "hour", "minute"].contains(&unit) {
                    return Err(
                        "schedule.unit must be year, month, week, day, hour or minute".into(),
                    );
                }
                ScheduleSpec {
                    kind: ScheduleKind::Interval,
                    value: format!("{value} {unit}"),
                    tz: None,
                }
            }
            _ => return Err("schedule.type must be crontab or interval".into()),
        };
        let schedule = spec.compile().map_err(|e| format!("schedule: {e}"))?;
        let minutes = |key: &str, default: i64| -> Result<SignedDuration, String> {
            match config.get(key) {
                None | Some(serde_json::Value::Null) => Ok(SignedDuration::from_mins(default)),
                Some(v) => {
                    let m = v
                        .as_i64()
                        .filter(|m| (1..=40_320).contains(m))
                        .ok_or(format!(
                            "{key} must be a whole number of minutes from 1 to 40320"
                        ))?;
                    Ok(SignedDuration::from_mins(m))
                }
            }
        };
        let threshold = |key: &str| -> Result<u32, String> {
            match config.get(key) {
                None | Some(serde_json::Value::Null) => Ok(1),
                Some(v) => v
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .filter(|n| (1..=monitor::MAX_THRESHOLD).contains(n))
                    .ok_or(format!(
                        "{key} must be from 1 to {}",
                        monitor::MAX_THRESHOLD
                    )),
            }
        };
        Ok(HeartbeatPolicy {
            schedule,
            grace: minutes("checkin_margin", 1)?,
            max_runtime: minutes("max_runtime", 30)?,
            thresholds: Policy {
                failure_threshold: threshold("failure_issue_threshold")?,
                success_threshold: threshold("recovery_threshold")?,
                reminder_every: None,
            },
        })
    }

    pub fn validate(&self) -> Result<(), String> {
        for (name, d) in [("grace", self.grace), ("max_runtime", self.max_runtime)] {
            if d.is_negative() || d > MAX_WINDOW {
                return Err(format!("{name} must be between 0s and 28d"));
            }
        }
        if self.max_runtime.is_zero() {
            return Err("max_runtime must be at least 1s".into());
        }
        self.thresholds.validate()
    }
}

/// A Healthchecks ping's kind: `/ping/<uuid>[/start|/fail|/log|/<exit-status>]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PingKind {
    Success,
    Start,
    Fail,
    Log,
    Exit(u8),
}

impl PingKind {
    /// Parses the path suffix after the ping id: "", "start", "fail", "log" or 0-255.
    pub fn from_suffix(suffix: &str) -> Option<PingKind> {
        match suffix {
            "" => Some(PingKind::Success),
            "start" => Some(PingKind::Start),
            "fail" => Some(PingKind::Fail),
            "log" => Some(PingKind::Log),
            n if !n.is_empty() && n.len() <= 3 && n.bytes().all(|b| b.is_ascii_digit()) => {
                n.parse().ok().map(PingKind::Exit)
            }
            _ => None,
        }
    }
}

/// A Sentry check-in's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckInStatus {
    InProgress,
    Ok,
    Error,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "input", rename_all = "snake_case")]
pub enum Input {
    /// A Healthchecks ping; `body` is what the request carried, cut to [`PING_BODY_LIMIT`].
    Ping {
        at: Timestamp,
        kind: PingKind,
        rid: Option<String>,
        body: Option<String>,
    },
    /// An Uptime Kuma push: `?status=up|down&msg=&ping=` (ping in ms).
    Push {
        at: Timestamp,
        up: bool,
        msg: Option<String>,
        ping_ms: Option<f64>,
    },
    /// A Sentry check-in (`duration` in seconds).
    CheckIn {
        at: Timestamp,
        id: String,
        status: CheckInStatus,
        duration: Option<f64>,
    },
    /// Time passed: judge what is due at `ctx.now`.
    Tick,
    /// Hearth itself was not running from `from` to `to`.
    Outage { from: Timestamp, to: Timestamp },
}

/// A run in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    pub id: Option<String>,
    pub started: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outage {
    pub from: Timestamp,
    pub to: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HeartbeatState {
    pub monitor: MonitorState,
    pub last_signal: Option<Timestamp>,
    /// The next expected time; `None` until the first signal.
    pub expected: Option<Timestamp>,
    /// `Late` was emitted for `expected`.
    pub late: bool,
    pub runs: Vec<Run>,
    pub outages: Vec<Outage>,
}

/// One row of history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub at: Timestamp,
    pub kind: RecordKind,
    /// `rid` / `check_in_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// Run time (from the pairing, or as reported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<SignedDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Missed / Unknown: the (first) expected time, and how many in a row this record stands for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<Timestamp>,
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub count: u32,
}

fn one() -> u32 {
    1
}
fn is_one(n: &u32) -> bool {
    *n == 1
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    Success,
    Failure,
    Started,
    Log,
    Missed,
    TimedOut,
    /// Expected (or running) while Hearth was down: no verdict.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "transition", rename_all = "snake_case")]
pub enum Transition {
    Record(Record),
    /// Past the expected time, within grace (shown, not notified).
    Late {
        expected: Timestamp,
        deadline: Timestamp,
    },
    /// Status changes and notifications, as for active checks.
    Monitor(monitor::Event),
}

impl Record {
    fn new(at: Timestamp, kind: RecordKind) -> Record {
        Record {
            at,
            kind,
            run: None,
            duration: None,
            message: None,
            expected: None,
            count: 1,
        }
    }
}

/// A signal, whatever protocol carried it.
enum Signal {
    Start {
        id: Option<String>,
    },
    Finish {
        id: Option<String>,
        up: bool,
        message: Option<String>,
        duration: Option<SignedDuration>,
    },
    Log {
        message: Option<String>,
    },
}

/// A reported duration in seconds, to the microsecond; nonsense (negative, NaN, beyond 28
/// days) is dropped.
fn seconds(s: f64) -> Option<SignedDuration> {
    (s.is_finite() && (0.0..=MAX_WINDOW.as_secs_f64()).contains(&s))
        .then(|| SignedDuration::from_micros((s * 1e6).round() as i64))
}

/// Applies one input.
pub fn apply(
    state: &HeartbeatState,
    policy: &HeartbeatPolicy,
    input: &Input,
    ctx: &Context,
) -> (HeartbeatState, Vec<Transition>) {
    let mut s = state.clone();
    let mut out = Vec::new();
    let (at, signal) = match input {
        Input::Tick => {
            advance(&mut s, policy, ctx.now, true, ctx, &mut out);
            return (s, out);
        }
        Input::Outage { from, to } => {
            if from < to {
                s.outages.push(Outage {
                    from: *from,
                    to: *to,
                });
                let excess = s.outages.len().saturating_sub(MAX_OUTAGES);
                s.outages.drain(..excess);
            }
            return (s, out);
        }
        Input::Ping {
            at,
            kind,
            rid,
            body,
        } => (*at, ping_signal(*kind, rid, body)),
        Input::Push {
            at,
            up,
            msg,
            ping_ms,
        } => (*at, push_signal(*up, msg, *ping_ms)),
        Input::CheckIn {
            at,
            id,
            status,
            duration,
        } => (*at, check_in_signal(id, *status, *duration)),
    };
    if s.monitor.paused {
        s.monitor = monitor::resume(&s.monitor);
        s.expected = None;
        s.late = false;
        s.runs.clear();
    }
    // What fell due before this signal is judged first, at its own time.
    advance(&mut s, policy, at, false, ctx, &mut out);
    take_signal(&mut s, policy, at, signal, ctx, &mut out);
    (s, out)
}

/// A Healthchecks ping as a signal.
fn ping_signal(kind: PingKind, rid: &Option<String>, body: &Option<String>) -> Signal {
    let body = body.as_ref().map(|b| cut(b, PING_BODY_LIMIT));
    let finish = |up: bool, message: Option<String>| Signal::Finish {
        id: rid.clone(),
        up,
        message,
        duration: None,
    };
    match kind {
        PingKind::Success | PingKind::Exit(0) => finish(true, body),
        PingKind::Fail => finish(false, body.or(Some("fail signal".into()))),
        PingKind::Exit(n) => finish(false, Some(format!("exit status {n}"))),
        PingKind::Start => Signal::Start { id: rid.clone() },
        PingKind::Log => Signal::Log { message: body },
    }
}

/// An Uptime Kuma push as a signal.
fn push_signal(up: bool, msg: &Option<String>, ping_ms: Option<f64>) -> Signal {
    Signal::Finish {
        id: None,
        up,
        message: msg
            .as_ref()
            .map(|m| cut(m, PING_BODY_LIMIT))
            .or_else(|| (!up).then(|| "push status down".to_string())),
        duration: ping_ms.and_then(|ms| seconds(ms / 1000.0)),
    }
}

/// A Sentry check-in as a signal.
fn check_in_signal(id: &str, status: CheckInStatus, duration: Option<f64>) -> Signal {
    let id = Some(id.to_string());
    match status {
        CheckInStatus::InProgress => Signal::Start { id },
        CheckInStatus::Ok | CheckInStatus::Error => Signal::Finish {
            id,
            up: status == CheckInStatus::Ok,
            message: (status == CheckInStatus::Error).then(|| "check-in error".to_string()),
            duration: duration.and_then(seconds),
        },
    }
}

/// What a signal does once what fell due before it was judged: a log line, a run started, or
/// a run finished (up or down), which the monitor then observes.
fn take_signal(
    s: &mut HeartbeatState,
    policy: &HeartbeatPolicy,
    at: Timestamp,
    signal: Signal,
    ctx: &Context,
    out: &mut Vec<Transition>,
) {
    match signal {
        Signal::Log { message } => {
            out.push(Transition::Record(Record {
                message,
                ..Record::new(at, RecordKind::Log)
            }));
        }
        Signal::Start { id } => {
            if s.runs.len() >= MAX_RUNS {
                s.runs.remove(0);
            }
            s.runs.push(Run {
                id: id.clone(),
                started: at,
            });
            out.push(Transition::Record(Record {
                run: id,
                ..Record::new(at, RecordKind::Started)
            }));
            expect_after(s, policy, at);
        }
        Signal::Finish {
            id,
            up,
            message,
            duration,
        } => {
            let run = match &id {
                Some(id) => s.runs.iter().rposition(|r| r.id.as_deref() == Some(id)),
                None => s.runs.iter().rposition(|r| r.id.is_none()),
            }
            .map(|i| s.runs.remove(i));
            let duration = duration.or_else(|| run.map(|r| at.duration_since(r.started)));
            out.push(Transition::Record(Record {
                run: id,
                duration,
                message: message.clone(),
                ..Record::new(
                    at,
                    if up {
                        RecordKind::Success
                    } else {
                        RecordKind::Failure
                    },
                )
            }));
            s.last_signal = Some(at);
            expect_after(s, policy, at);
            let obs = Observation {
                at,
                up,
                error: (!up).then(|| first_line(message.as_deref().unwrap_or("failure"))),
            };
            observe(s, policy, &obs, ctx, out);
        }
    }
}

fn expect_after(s: &mut HeartbeatState, policy: &HeartbeatPolicy, at: Timestamp) {
    s.expected = policy.schedule.next_after(at);
    s.late = false;
}

fn observe(
    s: &mut HeartbeatState,
    policy: &HeartbeatPolicy,
    obs: &Observation,
    ctx: &Context,
    out: &mut Vec<Transition>,
) {
    let (m, events) = monitor::observe(&s.monitor, &policy.thresholds, obs, ctx);
    s.monitor = m;
    out.extend(
        events
            .into_iter()
            .filter(|e| !matches!(e, monitor::Event::Beat { .. }))
            .map(Transition::Monitor),
    );
}

fn overlaps_outage(s: &HeartbeatState, from: Timestamp, to: Timestamp) -> bool {
    s.outages.iter().any(|o| from <= o.to && to >= o.from)
}

/// Judges runs and expected times that are due at `to`.
fn advance(
    s: &mut HeartbeatState,
    policy: &HeartbeatPolicy,
    to: Timestamp,
    tick: bool,
    ctx: &Context,
    out: &mut Vec<Transition>,
) {
    if s.monitor.paused {
        return;
    }
    // Runs past their maximum run time.
    let mut i = 0;
    while i < s.runs.len() {
        let deadline = s.runs[i]
            .started
            .saturating_add(policy.max_runtime)
            .unwrap_or(to);
        if deadline > to {
            i += 1;
            continue;
        }
        let run = s.runs.remove(i);
        if overlaps_outage(s, run.started, deadline) {
            out.push(Transition::Record(Record {
                run: run.id,
                message: Some("Hearth was down while this run could have finished".into()),
                ..Record::new(deadline, RecordKind::Unknown)
            }));
            continue;
        }
        let message = format!(
            "still running {} after its start",
            super::format_duration(policy.max_runtime)
        );
        out.push(Transition::Record(Record {
            run: run.id,
            duration: Some(deadline.duration_since(run.started)),
            message: Some(message.clone()),
            ..Record::new(deadline, RecordKind::TimedOut)
        }));
        observe(s, policy, &Observation::down(deadline, message), ctx, out);
    }
    // Expected times past their grace. Consecutive ones of a kind make one counted record.
    let mut pending: Option<Record> = None;
    let mut observed = 0u32;
    let mut steps = 0u32;
    while let Some(expected) = s.expected {
        let deadline = expected.saturating_add(policy.grace).unwrap_or(expected);
        if deadline > to {
            if tick && !s.late && expected <= to {
                s.late = true;
                out.push(Transition::Late { expected, deadline });
            }
            break;
        }
        let kind = if overlaps_outage(s, expected, deadline) {
            RecordKind::Unknown
        } else {
            RecordKind::Missed
        };
        match &mut pending {
            Some(r) if r.kind == kind => r.count += 1,
            _ => {
                if let Some(r) = pending.take() {
                    out.push(Transition::Record(r));
                }
                pending = Some(Record {
                    expected: Some(expected),
                    ..Record::new(deadline, kind)
                });
            }
        }
        if kind == RecordKind::Missed && observed < MAX_OBSERVED_MISSES {
            observed += 1;
            let error = format!("no signal by {deadline} (expected at {expected})");
            observe(s, policy, &Observation::down(deadline, error), ctx, out);
        }
        s.expected = policy.schedule.next_after(expected);
        s.late = false;
        steps += 1;
        if steps >= 100_000 {
            // A backlog this long only comes from a clock jump: skip to the first time that is
            // not yet due.
            s.expected = policy
                .schedule
                .next_after(to.saturating_sub(policy.grace).unwrap_or(to));
        }
    }
    if let Some(r) = pending {
        out.push(Transition::Record(r));
    }
}

impl HeartbeatState {
    /// When the next [`Input::Tick`] has something to judge: the expected time (to mark it
    /// late), its deadline, or a run's timeout. `None` while new or paused.
    pub fn next_wakeup(&self, policy: &HeartbeatPolicy) -> Option<Timestamp> {
        if self.monitor.paused {
            return None;
        }
        let expected = self.expected.into_iter().flat_map(|e| {
            let deadline = e.saturating_add(policy.grace).unwrap_or(e);
            [(!self.late).then_some(e), Some(deadline)]
        });
        let runs = self.runs.iter().map(|r| {
            Some(
                r.started
                    .saturating_add(policy.max_runtime)
                    .unwrap_or(r.started),
            )
        });
        expected.chain(runs).flatten().min()
    }

    /// Pauses the monitor (the API's pause); the next signal resumes it.
    pub fn pause(&self) -> HeartbeatState {
        HeartbeatState {
            monitor: monitor::pause(&self.monitor),
            ..self.clone()
        }
    }
}

fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

fn first_line(s: &str) -> String {
    cut(s.lines().next().unwrap_or(""), 200)
}

#[cfg(test)]
mod tests;
