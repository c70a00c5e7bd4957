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
        } => {
            let body = body.as_ref().map(|b| cut(b, PING_BODY_LIMIT));
            let finish = |up: bool, message: Option<String>| Signal::Finish {
                id: rid.clone(),
                up,
                message,
                duration: None,
            };
            let signal = match kind {
                PingKind::Success | PingKind::Exit(0) => finish(true, body),
                PingKind::Fail => finish(false, body.or(Some("fail signal".into()))),
                PingKind::Exit(n) => finish(false, Some(format!("exit status {n}"))),
                PingKind::Start => Signal::Start { id: rid.clone() },
                PingKind::Log => Signal::Log { message: body },
            };
            (*at, signal)
        }
        Input::Push {
            at,
            up,
            msg,
            ping_ms,
        } => (
            *at,
            Signal::Finish {
                id: None,
                up: *up,
                message: msg
                    .as_ref()
                    .map(|m| cut(m, PING_BODY_LIMIT))
                    .or_else(|| (!up).then(|| "push status down".to_string())),
                duration: ping_ms.and_then(|ms| seconds(ms / 1000.0)),
            },
        ),
        Input::CheckIn {
            at,
            id,
            status,
            duration,
        } => {
            let id = Some(id.clone());
            let signal = match status {
                CheckInStatus::InProgress => Signal::Start { id },
                CheckInStatus::Ok | CheckInStatus::Error => Signal::Finish {
                    id,
                    up: *status == CheckInStatus::Ok,
                    message: (*status == CheckInStatus::Error)
                        .then(|| "check-in error".to_string()),
                    duration: duration.and_then(seconds),
                },
            };
            (*at, signal)
        }
    };
    if s.monitor.paused {
        s.monitor = monitor::resume(&s.monitor);
        s.expected = None;
        s.late = false;
        s.runs.clear();
    }
    // What fell due before this signal is judged first, at its own time.
    advance(&mut s, policy, at, false, ctx, &mut out);
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
            expect_after(&mut s, policy, at);
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
            expect_after(&mut s, policy, at);
            let obs = Observation {
                at,
                up,
                error: (!up).then(|| first_line(message.as_deref().unwrap_or("failure"))),
            };
            observe(&mut s, policy, &obs, ctx, &mut out);
        }
    }
    (s, out)
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
mod tests {
    use jiff::Zoned;

    use super::*;
    use crate::uptime::monitor::{Event, NotifyKind, Status, Suppression};

    fn at(s: &str) -> Timestamp {
        s.parse::<Zoned>().unwrap().timestamp()
    }

    fn mins(n: i64) -> SignedDuration {
        SignedDuration::from_mins(n)
    }

    /// A monitor driven by a controllable clock.
    struct Sim {
        state: HeartbeatState,
        policy: HeartbeatPolicy,
        now: Timestamp,
        log: Vec<Transition>,
        maintenance: bool,
    }

    impl Sim {
        fn new(policy: HeartbeatPolicy, now: Timestamp) -> Sim {
            Sim {
                state: HeartbeatState::default(),
                policy,
                now,
                log: Vec::new(),
                maintenance: false,
            }
        }

        fn ctx(&self) -> Context {
            Context {
                in_maintenance: self.maintenance,
                ..Context::at(self.now)
            }
        }

        fn send(&mut self, input: Input) -> Vec<Transition> {
            let (s, out) = apply(&self.state, &self.policy, &input, &self.ctx());
            self.state = s;
            self.log.extend(out.clone());
            out
        }

        /// Moves the clock to `t`, ticking at every wake-up on the way (as the worker would).
        fn run_until(&mut self, t: Timestamp) -> Vec<Transition> {
            let mut all = Vec::new();
            while let Some(w) = self.state.next_wakeup(&self.policy).filter(|&w| w <= t) {
                self.now = w;
                all.extend(self.send(Input::Tick));
            }
            self.now = t;
            all.extend(self.send(Input::Tick));
            all
        }

        fn ping(&mut self, kind: PingKind) -> Vec<Transition> {
            self.send(Input::Ping {
                at: self.now,
                kind,
                rid: None,
                body: None,
            })
        }

        fn notes(out: &[Transition]) -> Vec<String> {
            out.iter()
                .filter_map(|t| match t {
                    Transition::Monitor(Event::Notify { kind, .. }) => Some(format!("{kind:?}")),
                    Transition::Monitor(Event::Suppressed { kind, reason, .. }) => {
                        Some(format!("({kind:?} {reason:?})"))
                    }
                    Transition::Late { .. } => Some("late".into()),
                    Transition::Record(r) if r.kind == RecordKind::Missed => {
                        Some(format!("missed x{}", r.count))
                    }
                    Transition::Record(r) if r.kind == RecordKind::Unknown => {
                        Some(format!("unknown x{}", r.count))
                    }
                    Transition::Record(r) if r.kind == RecordKind::TimedOut => {
                        Some("timed out".into())
                    }
                    _ => None,
                })
                .collect()
        }
    }

    fn hourly_hc() -> HeartbeatPolicy {
        HeartbeatPolicy::healthchecks(
            Schedule::every(SignedDuration::from_hours(1)).unwrap(),
            mins(10),
        )
    }

    #[test]
    fn simple_period_and_grace_late_then_down_then_up() {
        let t0 = at("2025-06-01T00:00:00Z[UTC]");
        let mut sim = Sim::new(hourly_hc(), t0);
        // New: nothing is expected, however long we wait.
        assert!(Sim::notes(&sim.run_until(t0 + SignedDuration::from_hours(5))).is_empty());
        let t1 = sim.now;
        sim.ping(PingKind::Success);
        assert_eq!(sim.state.expected, Some(t1 + SignedDuration::from_hours(1)));
        assert!(Sim::notes(&sim.run_until(t1 + mins(59))).is_empty());
        assert_eq!(Sim::notes(&sim.run_until(t1 + mins(60))), ["late"]);
        assert!(Sim::notes(&sim.run_until(t1 + mins(69))).is_empty());
        assert_eq!(
            Sim::notes(&sim.run_until(t1 + mins(70))),
            ["Down", "missed x1"]
        );
        assert_eq!(sim.state.monitor.status, Status::Down);
        // Still nothing: each further hour without a ping is another miss, not another DOWN.
        assert_eq!(
            Sim::notes(&sim.run_until(t1 + mins(130))),
            ["late", "missed x1"]
        );
        sim.now = t1 + mins(135);
        assert_eq!(Sim::notes(&sim.ping(PingKind::Success)), ["Up"]);
        assert_eq!(sim.state.expected, Some(t1 + mins(195)));
    }

    #[test]
    fn fail_exit_status_and_log_pings() {
        let t0 = at("2025-06-01T00:00:00Z[UTC]");
        let mut sim = Sim::new(hourly_hc(), t0);
        sim.ping(PingKind::Success);
        assert_eq!(Sim::notes(&sim.ping(PingKind::Fail)), ["Down"]);
        assert_eq!(Sim::notes(&sim.ping(PingKind::Exit(0))), ["Up"]);
        let out = sim.ping(PingKind::Exit(3));
        assert!(out.iter().any(|t| matches!(t,
            Transition::Monitor(Event::Notify { kind: NotifyKind::Down, error: Some(e), .. }) if e == "exit status 3")));
        let out = sim.send(Input::Ping {
            at: sim.now,
            kind: PingKind::Log,
            rid: None,
            body: Some("hello".into()),
        });
        assert_eq!(out.len(), 1);
        assert!(
            matches!(&out[0], Transition::Record(r) if r.kind == RecordKind::Log && r.message.as_deref() == Some("hello"))
        );
        assert_eq!(sim.state.monitor.status, Status::Down);
        // The body is kept up to the limit.
        let big = "x".repeat(PING_BODY_LIMIT + 50);
        let out = sim.send(Input::Ping {
            at: sim.now,
            kind: PingKind::Success,
            rid: None,
            body: Some(big),
        });
        let Transition::Record(r) = &out[0] else {
            panic!("{out:?}")
        };
        assert_eq!(r.message.as_ref().unwrap().len(), PING_BODY_LIMIT);
    }

    #[test]
    fn rid_pairs_overlapping_runs_and_measures_them() {
        let t0 = at("2025-06-01T00:00:00Z[UTC]");
        let mut sim = Sim::new(hourly_hc(), t0);
        let ping = |sim: &mut Sim, kind, rid: &str| {
            sim.send(Input::Ping {
                at: sim.now,
                kind,
                rid: Some(rid.into()),
                body: None,
            })
        };
        ping(&mut sim, PingKind::Start, "a");
        sim.now = t0 + mins(1);
        ping(&mut sim, PingKind::Start, "b");
        sim.now = t0 + mins(3);
        let out = ping(&mut sim, PingKind::Success, "a");
        let Transition::Record(r) = &out[0] else {
            panic!()
        };
        assert_eq!((r.run.as_deref(), r.duration), (Some("a"), Some(mins(3))));
        sim.now = t0 + mins(5);
        let out = ping(&mut sim, PingKind::Success, "b");
        let Transition::Record(r) = &out[0] else {
            panic!()
        };
        assert_eq!((r.run.as_deref(), r.duration), (Some("b"), Some(mins(4))));
        assert!(sim.state.runs.is_empty());
    }

    #[test]
    fn a_started_run_that_never_finishes_times_out() {
        // Healthchecks: a started run must finish within grace (10 min).
        let t0 = at("2025-06-01T00:00:00Z[UTC]");
        let mut sim = Sim::new(hourly_hc(), t0);
        sim.ping(PingKind::Success);
        sim.now = t0 + mins(60);
        sim.ping(PingKind::Start);
        // The start satisfied the expected time: no late, no missed; the run times out.
        assert_eq!(
            Sim::notes(&sim.run_until(t0 + mins(70))),
            ["timed out", "Down"]
        );
        assert!(sim.state.runs.is_empty());
    }

    #[test]
    fn kuma_push_up_and_down() {
        let policy = HeartbeatPolicy {
            thresholds: Policy::immediate(),
            ..HeartbeatPolicy::healthchecks(
                Schedule::every(SignedDuration::from_secs(60)).unwrap(),
                SignedDuration::ZERO,
            )
        };
        let t0 = at("2025-06-01T00:00:00Z[UTC]");
        let mut sim = Sim::new(policy, t0);
        let out = sim.send(Input::Push {
            at: t0,
            up: true,
            msg: Some("OK".into()),
            ping_ms: Some(12.0),
        });
        let Transition::Record(r) = &out[0] else {
            panic!()
        };
        assert_eq!(
            (r.kind, r.duration),
            (RecordKind::Success, Some(SignedDuration::from_millis(12)))
        );
        sim.now = t0 + mins(1) - SignedDuration::from_secs(1);
        let out = sim.send(Input::Push {
            at: sim.now,
            up: false,
            msg: Some("disk full".into()),
            ping_ms: None,
        });
        assert!(out.iter().any(|t| matches!(t,
            Transition::Monitor(Event::Notify { kind: NotifyKind::Down, error: Some(e), .. }) if e == "disk full")));
        // No push within the interval: missed right at the expected time (no grace).
        sim.send(Input::Push {
            at: sim.now,
            up: true,
            msg: None,
            ping_ms: None,
        });
        let due = sim.state.expected.unwrap();
        assert_eq!(Sim::notes(&sim.run_until(due)), ["Down", "missed x1"]);
    }

    #[test]
    fn sentry_thresholds_and_monitor_config_from_the_python_sdk() {
        // The monitor_config a sentry-python 2.75 check-in carried (fixtures/sentry/py_check_in.1).
        let config: serde_json::Value = serde_json::from_str(
            r#"{"schedule":{"type":"crontab","value":"0 3 * * *"},"timezone":"Europe/Vienna","checkin_margin":5,"max_runtime":30,"failure_issue_threshold":2,"recovery_threshold":1}"#,
        )
        .unwrap();
        let policy = HeartbeatPolicy::sentry(&config).unwrap();
        assert_eq!(policy.grace, mins(5));
        assert_eq!(policy.max_runtime, mins(30));
        assert_eq!(policy.thresholds.failure_threshold, 2);
        assert_eq!(policy.schedule.spec().tz.as_deref(), Some("Europe/Vienna"));
        let t0 = at("2026-11-22T03:00:05+01:00[Europe/Vienna]");
        let mut sim = Sim::new(policy, t0);
        let checkin = |sim: &mut Sim, id: &str, status| {
            sim.send(Input::CheckIn {
                at: sim.now,
                id: id.into(),
                status,
                duration: None,
            })
        };
        checkin(&mut sim, "7162ce7c", CheckInStatus::InProgress);
        sim.now = t0 + SignedDuration::from_millis(200);
        let out = checkin(&mut sim, "7162ce7c", CheckInStatus::Ok);
        let Transition::Record(r) = &out[0] else {
            panic!()
        };
        assert_eq!(r.duration, Some(SignedDuration::from_millis(200)));
        assert_eq!(
            sim.state.expected,
            Some(at("2026-11-23T03:00:00+01:00[Europe/Vienna]"))
        );
        // One error is below the threshold of 2; the missed run the next night is the second.
        sim.now = t0 + mins(1);
        assert!(Sim::notes(&checkin(&mut sim, "e1", CheckInStatus::Error)).is_empty());
        assert_eq!(
            Sim::notes(&sim.run_until(at("2026-11-23T03:05:00+01:00[Europe/Vienna]"))),
            ["late", "Down", "missed x1"]
        );
        // A run that starts and is still in progress after max_runtime times out.
        sim.now = at("2026-11-24T03:00:00+01:00[Europe/Vienna]");
        checkin(&mut sim, "r3", CheckInStatus::InProgress);
        let out = sim.run_until(at("2026-11-24T03:30:00+01:00[Europe/Vienna]"));
        assert_eq!(Sim::notes(&out), ["timed out"]);
    }

    #[test]
    fn sentry_config_defaults_intervals_and_errors() {
        let p = HeartbeatPolicy::sentry(
            &serde_json::json!({"schedule": {"type": "interval", "value": 2, "unit": "hour"}}),
        )
        .unwrap();
        assert_eq!(p.schedule.interval(), Some(SignedDuration::from_hours(2)));
        assert_eq!((p.grace, p.max_runtime), (mins(1), mins(30)));
        assert_eq!(
            (
                p.thresholds.failure_threshold,
                p.thresholds.success_threshold
            ),
            (1, 1)
        );
        let err = |v: serde_json::Value| HeartbeatPolicy::sentry(&v).unwrap_err();
        assert!(err(serde_json::json!({})).contains("schedule is required"));
        assert!(
            err(serde_json::json!({"schedule": {"type": "crontab", "value": "61 * * * *"}}))
                .starts_with("schedule:")
        );
        assert!(err(serde_json::json!({"schedule": {"type": "interval", "value": 1, "unit": "fortnight"}})).contains("unit"));
        assert!(err(serde_json::json!({"schedule": {"type": "crontab", "value": "@daily"}, "timezone": "Nowhere/City"})).contains("time zone"));
        assert!(err(serde_json::json!({"schedule": {"type": "crontab", "value": "@daily"}, "checkin_margin": 0})).contains("checkin_margin"));
        assert!(err(serde_json::json!({"schedule": {"type": "crontab", "value": "@daily"}, "failure_issue_threshold": 721})).contains("failure_issue_threshold"));
        let monthly = HeartbeatPolicy::sentry(
            &serde_json::json!({"schedule": {"type": "interval", "value": 1, "unit": "month"}}),
        )
        .unwrap();
        assert_eq!(
            monthly.schedule.next_after(at("2025-01-31T00:00:00Z[UTC]")),
            Some(at("2025-02-28T00:00:00Z[UTC]"))
        );
    }

    #[test]
    fn cron_schedule_over_the_spring_and_fall_changes_in_berlin() {
        let policy = HeartbeatPolicy::healthchecks(
            Schedule::cron("30 2 * * *", "Europe/Berlin").unwrap(),
            mins(10),
        );
        let mut sim = Sim::new(
            policy.clone(),
            at("2025-03-29T02:31:00+01:00[Europe/Berlin]"),
        );
        sim.ping(PingKind::Success);
        // 02:30 does not exist on 2025-03-30: the run is expected when the gap ends, 03:00 CEST.
        assert_eq!(
            sim.state.expected,
            Some(at("2025-03-30T03:00:00+02:00[Europe/Berlin]"))
        );
        assert_eq!(
            Sim::notes(&sim.run_until(at("2025-03-30T03:00:00+02:00[Europe/Berlin]"))),
            ["late"]
        );
        sim.now = at("2025-03-30T03:04:00+02:00[Europe/Berlin]");
        sim.ping(PingKind::Success);
        assert!(
            Sim::notes(&sim.run_until(at("2025-03-30T12:00:00+02:00[Europe/Berlin]"))).is_empty()
        );
        assert_eq!(
            sim.state.expected,
            Some(at("2025-03-31T02:30:00+02:00[Europe/Berlin]"))
        );

        // Fall back on 2025-10-26: 02:30 happens twice and is expected once, at the first.
        let mut sim = Sim::new(
            policy.clone(),
            at("2025-10-25T02:31:00+02:00[Europe/Berlin]"),
        );
        sim.ping(PingKind::Success);
        assert_eq!(
            sim.state.expected,
            Some(at("2025-10-26T02:30:00+02:00[Europe/Berlin]"))
        );
        sim.now = at("2025-10-26T02:31:00+02:00[Europe/Berlin]");
        sim.ping(PingKind::Success);
        // The second 02:30 (CET) passes without a ping and without a miss.
        assert!(
            Sim::notes(&sim.run_until(at("2025-10-26T03:00:00+01:00[Europe/Berlin]"))).is_empty()
        );
        assert_eq!(
            sim.state.expected,
            Some(at("2025-10-27T02:30:00+01:00[Europe/Berlin]"))
        );

        // Without the ping, the first 02:30 plus grace is the deadline: 02:40 CEST, an hour
        // before the wall clock shows 02:40 again.
        let mut sim = Sim::new(policy, at("2025-10-25T02:31:00+02:00[Europe/Berlin]"));
        sim.ping(PingKind::Success);
        assert!(
            Sim::notes(&sim.run_until(at("2025-10-26T02:29:00+02:00[Europe/Berlin]"))).is_empty()
        );
        assert_eq!(
            Sim::notes(&sim.run_until(at("2025-10-26T02:40:00+02:00[Europe/Berlin]"))),
            ["late", "Down", "missed x1"]
        );
    }

    #[test]
    fn oncalendar_in_new_york_expects_local_nine_across_the_change() {
        let policy = HeartbeatPolicy::healthchecks(
            Schedule::on_calendar("Mon..Fri 09:00", "America/New_York").unwrap(),
            mins(15),
        );
        let mut sim = Sim::new(policy, at("2025-03-07T09:01:00-05:00[America/New_York]"));
        sim.ping(PingKind::Success);
        // Friday's run done; Monday 09:00 is in EDT now (13:00 UTC instead of 14:00).
        assert_eq!(sim.state.expected, Some(at("2025-03-10T13:00:00Z[UTC]")));
        assert_eq!(
            Sim::notes(&sim.run_until(at("2025-03-10T09:15:00-04:00[America/New_York]"))),
            ["late", "Down", "missed x1"]
        );
    }

    #[test]
    fn an_expected_time_during_a_restart_is_unknown_not_missed() {
        let policy =
            HeartbeatPolicy::healthchecks(Schedule::cron("0 * * * *", "UTC").unwrap(), mins(5));
        let mut sim = Sim::new(policy, at("2025-06-01T00:00:30Z[UTC]"));
        sim.ping(PingKind::Success);
        // Hearth is down from 00:50 to 01:20; 01:00 (+5 min grace) falls inside.
        sim.send(Input::Outage {
            from: at("2025-06-01T00:50:00Z[UTC]"),
            to: at("2025-06-01T01:20:00Z[UTC]"),
        });
        sim.now = at("2025-06-01T01:20:00Z[UTC]");
        let out = sim.send(Input::Tick);
        assert_eq!(Sim::notes(&out), ["unknown x1"]);
        assert_eq!(sim.state.monitor.status, Status::Up);
        // The next hour is judged normally.
        assert_eq!(
            Sim::notes(&sim.run_until(at("2025-06-01T02:05:00Z[UTC]"))),
            ["late", "Down", "missed x1"]
        );
        // An expected time just before the outage whose grace runs into it is unknown too:
        // the ping could have come at 02:59-03:05 while nobody listened.
        sim.now = at("2025-06-01T02:10:00Z[UTC]");
        sim.ping(PingKind::Success);
        sim.send(Input::Outage {
            from: at("2025-06-01T03:02:00Z[UTC]"),
            to: at("2025-06-01T03:30:00Z[UTC]"),
        });
        sim.now = at("2025-06-01T03:30:00Z[UTC]");
        assert_eq!(Sim::notes(&sim.send(Input::Tick)), ["unknown x1"]);
    }

    #[test]
    fn a_recovery_replayed_after_a_restart_still_sends_its_up() {
        let policy =
            HeartbeatPolicy::healthchecks(Schedule::cron("0 * * * *", "UTC").unwrap(), mins(5));
        let mut sim = Sim::new(policy, at("2025-06-01T00:00:30Z[UTC]"));
        sim.ping(PingKind::Success);
        assert_eq!(
            Sim::notes(&sim.run_until(at("2025-06-01T01:05:00Z[UTC]"))),
            ["late", "Down", "missed x1"]
        );
        // The state is persisted; a ping at 01:20 was acknowledged, then Hearth crashed before
        // applying it. After the restart: the outage, the replayed ping, then time.
        let stored = serde_json::to_string(&sim.state).unwrap();
        sim.state = serde_json::from_str(&stored).unwrap();
        sim.now = at("2025-06-01T02:10:00Z[UTC]");
        sim.send(Input::Outage {
            from: at("2025-06-01T01:21:00Z[UTC]"),
            to: at("2025-06-01T02:10:00Z[UTC]"),
        });
        let out = sim.send(Input::Ping {
            at: at("2025-06-01T01:20:00Z[UTC]"),
            kind: PingKind::Success,
            rid: None,
            body: None,
        });
        assert_eq!(Sim::notes(&out), ["Up"]);
        // 02:00 fell in the outage: unknown, and no false DOWN.
        assert_eq!(Sim::notes(&sim.send(Input::Tick)), ["unknown x1"]);
        assert_eq!(sim.state.monitor.status, Status::Up);
    }

    #[test]
    fn a_run_spanning_an_outage_is_unknown_not_timed_out() {
        let t0 = at("2025-06-01T00:00:00Z[UTC]");
        let mut sim = Sim::new(hourly_hc(), t0);
        sim.ping(PingKind::Start);
        sim.send(Input::Outage {
            from: t0 + mins(2),
            to: t0 + mins(15),
        });
        sim.now = t0 + mins(15);
        assert_eq!(Sim::notes(&sim.send(Input::Tick)), ["unknown x1"]);
        assert!(sim.state.runs.is_empty());
        assert_eq!(sim.state.monitor.status, Status::Pending);
    }

    #[test]
    fn a_late_signal_first_records_the_miss_it_comes_after() {
        let t0 = at("2025-06-01T00:00:00Z[UTC]");
        let mut sim = Sim::new(hourly_hc(), t0);
        sim.ping(PingKind::Success);
        // No tick ran; the ping at 01:30 arrives after the 01:10 deadline.
        sim.now = t0 + mins(90);
        assert_eq!(
            Sim::notes(&sim.ping(PingKind::Success)),
            ["Down", "missed x1", "Up"]
        );
    }

    #[test]
    fn a_backlog_of_misses_is_one_counted_record_and_one_down() {
        let policy = HeartbeatPolicy::healthchecks(
            Schedule::every(SignedDuration::from_secs(60)).unwrap(),
            SignedDuration::ZERO,
        );
        let t0 = at("2025-06-01T00:00:00Z[UTC]");
        let mut sim = Sim::new(policy, t0);
        sim.ping(PingKind::Success);
        sim.now = t0 + mins(10);
        assert_eq!(Sim::notes(&sim.send(Input::Tick)), ["Down", "missed x10"]);
    }

    #[test]
    fn paused_monitors_ignore_time_and_a_ping_resumes_them() {
        let t0 = at("2025-06-01T00:00:00Z[UTC]");
        let mut sim = Sim::new(hourly_hc(), t0);
        sim.ping(PingKind::Success);
        sim.state = sim.state.pause();
        assert_eq!(sim.state.next_wakeup(&sim.policy), None);
        sim.now = t0 + SignedDuration::from_hours(10);
        assert!(sim.send(Input::Tick).is_empty());
        let out = sim.ping(PingKind::Success);
        assert!(Sim::notes(&out).is_empty(), "{out:?}");
        assert!(!sim.state.monitor.paused);
        assert_eq!(
            sim.state.expected,
            Some(sim.now + SignedDuration::from_hours(1))
        );
    }

    #[test]
    fn maintenance_holds_the_down_of_a_missed_run() {
        let t0 = at("2025-06-01T00:00:00Z[UTC]");
        let mut sim = Sim::new(hourly_hc(), t0);
        sim.ping(PingKind::Success);
        sim.maintenance = true;
        let notes = Sim::notes(&sim.run_until(t0 + mins(70)));
        assert_eq!(notes, ["late", "(Down Maintenance)", "missed x1"]);
        assert!(sim.log.iter().any(|t| matches!(
            t,
            Transition::Monitor(Event::Suppressed {
                reason: Suppression::Maintenance,
                ..
            })
        )));
    }

    #[test]
    fn next_wakeup_is_the_earliest_due_judgement() {
        let t0 = at("2025-06-01T00:00:00Z[UTC]");
        let mut sim = Sim::new(hourly_hc(), t0);
        assert_eq!(sim.state.next_wakeup(&sim.policy), None);
        sim.ping(PingKind::Success);
        assert_eq!(sim.state.next_wakeup(&sim.policy), Some(t0 + mins(60)));
        sim.now = t0 + mins(60);
        sim.send(Input::Tick);
        assert_eq!(sim.state.next_wakeup(&sim.policy), Some(t0 + mins(70)));
        sim.now = t0 + mins(61);
        sim.ping(PingKind::Start);
        assert_eq!(sim.state.next_wakeup(&sim.policy), Some(t0 + mins(71)));
    }

    #[test]
    fn ping_suffixes_parse() {
        assert_eq!(PingKind::from_suffix(""), Some(PingKind::Success));
        assert_eq!(PingKind::from_suffix("start"), Some(PingKind::Start));
        assert_eq!(PingKind::from_suffix("0"), Some(PingKind::Exit(0)));
        assert_eq!(PingKind::from_suffix("255"), Some(PingKind::Exit(255)));
        assert_eq!(PingKind::from_suffix("256"), None);
        assert_eq!(PingKind::from_suffix("-1"), None);
        assert_eq!(PingKind::from_suffix("stop"), None);
    }

    #[test]
    fn policy_serde_and_validation() {
        let p = hourly_hc();
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["grace"], "600s");
        let back: HeartbeatPolicy = serde_json::from_value(json).unwrap();
        assert_eq!(back, p);
        assert!(p.validate().is_ok());
        let bad = HeartbeatPolicy {
            grace: SignedDuration::from_hours(24 * 29),
            ..p
        };
        assert!(bad.validate().is_err());
    }
}
