//! The monitor state machine: observations (a check's verdict, a heartbeat's success or miss)
//! in, status changes and notification decisions out. Pure; the caller persists the state and
//! publishes `Event::Notify` as `monitor.<slug>.down|up` in the same transaction.
//!
//! - **Thresholds** (Gatus): `failure_threshold` consecutive failures (default 3) turn an up
//!   monitor DOWN, `success_threshold` consecutive successes (default 2) turn a down monitor UP.
//!   A new (pending) monitor is UP on its first success. Failures below the threshold are
//!   retries: recorded, never notified.
//! - **Notifications** compare the status with the last status notified ([`Alerting`]), not
//!   with the previous status. So a change that happened while notifications were suppressed is
//!   notified when the suppression ends if it still holds, a change that undid itself meanwhile
//!   is never notified, and after a restart a recovery still sends its UP.
//! - **Suppression**: paused, snoozed and in-maintenance monitors notify nothing; while a parent
//!   monitor is down, a child's DOWN and reminders are held (its UP is not: good news about a
//!   child the user was told about is never held back by another monitor).
//! - **Reminders**: while notified DOWN, every `reminder_every`-th further failing observation
//!   sends a reminder (Uptime Kuma's resend interval).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// No verdict yet (new, or resumed after a pause).
    Pending,
    Up,
    Down,
}

/// Thresholds and reminders of one monitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    pub failure_threshold: u32,
    pub success_threshold: u32,
    /// Remind every N failing observations while down; `None` never.
    pub reminder_every: Option<u32>,
}

impl Default for Policy {
    /// The active-check defaults: 3 failures before DOWN, 2 successes before UP.
    fn default() -> Policy {
        Policy {
            failure_threshold: 3,
            success_threshold: 2,
            reminder_every: None,
        }
    }
}

impl Policy {
    /// Heartbeats and cron monitors: one miss is DOWN, one success is UP (Healthchecks, and
    /// Sentry's threshold defaults).
    pub fn immediate() -> Policy {
        Policy {
            failure_threshold: 1,
            success_threshold: 1,
            reminder_every: None,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("failure_threshold", self.failure_threshold),
            ("success_threshold", self.success_threshold),
        ] {
            if !(1..=MAX_THRESHOLD).contains(&v) {
                return Err(format!("{name} must be between 1 and {MAX_THRESHOLD}"));
            }
        }
        if self.reminder_every == Some(0) {
            return Err("reminder_every must be at least 1 (or left out)".into());
        }
        Ok(())
    }
}

/// Highest threshold (Sentry's limit for its failure and recovery thresholds).
pub const MAX_THRESHOLD: u32 = 720;

/// What has been notified, kept with the state so it survives a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alerting {
    /// The last status notified (a new monitor counts as notified UP: its first UP is news to
    /// nobody).
    pub notified: Status,
    /// Failing observations since DOWN was notified, for reminders.
    pub down_observations: u32,
}

/// Persistent state of one monitor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorState {
    pub status: Status,
    /// When `status` was entered.
    pub since: Option<Timestamp>,
    pub consecutive_failures: u32,
    pub consecutive_successes: u32,
    /// First failure of the current failure streak: the incident's start and first error.
    pub streak_started: Option<Timestamp>,
    pub streak_error: Option<String>,
    pub paused: bool,
    pub snoozed_until: Option<Timestamp>,
    pub alerting: Alerting,
}

impl Default for MonitorState {
    fn default() -> MonitorState {
        MonitorState {
            status: Status::Pending,
            since: None,
            consecutive_failures: 0,
            consecutive_successes: 0,
            streak_started: None,
            streak_error: None,
            paused: false,
            snoozed_until: None,
            alerting: Alerting {
                notified: Status::Up,
                down_observations: 0,
            },
        }
    }
}

/// One check's verdict (or a heartbeat's success, failure or miss).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub at: Timestamp,
    pub up: bool,
    /// Why it failed (the verdict's reason, "no ping by ...").
    pub error: Option<String>,
}

impl Observation {
    pub fn up(at: Timestamp) -> Observation {
        Observation {
            at,
            up: true,
            error: None,
        }
    }

    pub fn down(at: Timestamp, error: impl Into<String>) -> Observation {
        Observation {
            at,
            up: false,
            error: Some(error.into()),
        }
    }
}

/// Facts from outside the monitor, evaluated by the caller at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    pub now: Timestamp,
    /// A maintenance window of this monitor is active ([`super::maintenance::active`]).
    pub in_maintenance: bool,
    /// The parent monitor is DOWN.
    pub parent_down: bool,
}

impl Context {
    pub fn at(now: Timestamp) -> Context {
        Context {
            now,
            in_maintenance: false,
            parent_down: false,
        }
    }
}

/// How one observation counts in the history (Uptime Kuma's beat status).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Beat {
    Up,
    Down,
    /// A failure below the failure threshold.
    Retrying,
    /// A success below the success threshold while down.
    Recovering,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyKind {
    Down,
    Up,
    Reminder,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Suppression {
    Paused,
    Snoozed,
    Maintenance,
    ParentDown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The observation as recorded.
    Beat { at: Timestamp, beat: Beat },
    /// The status changed (always recorded; DOWN→UP pairs are incidents).
    StatusChanged {
        at: Timestamp,
        from: Status,
        to: Status,
        /// For DOWN: when the failure streak began, and its first error.
        streak_started: Option<Timestamp>,
        error: Option<String>,
    },
    /// Publish `monitor.<slug>.down` (`Down`, `Reminder`) or `monitor.<slug>.up`.
    Notify {
        at: Timestamp,
        kind: NotifyKind,
        error: Option<String>,
    },
    /// A notification that was due but held back.
    Suppressed {
        at: Timestamp,
        kind: NotifyKind,
        reason: Suppression,
    },
}

fn suppression(state: &MonitorState, ctx: &Context, kind: NotifyKind) -> Option<Suppression> {
    if state.paused {
        Some(Suppression::Paused)
    } else if state.snoozed_until.is_some_and(|u| ctx.now < u) {
        Some(Suppression::Snoozed)
    } else if ctx.in_maintenance {
        Some(Suppression::Maintenance)
    } else if ctx.parent_down && kind != NotifyKind::Up {
        Some(Suppression::ParentDown)
    } else {
        None
    }
}

/// Applies one observation. A paused monitor ignores observations (none are scheduled for it).
pub fn observe(
    state: &MonitorState,
    policy: &Policy,
    obs: &Observation,
    ctx: &Context,
) -> (MonitorState, Vec<Event>) {
    let mut s = state.clone();
    let mut events = Vec::new();
    if s.paused {
        return (s, events);
    }
    let before = s.status;
    if obs.up {
        s.consecutive_successes = s.consecutive_successes.saturating_add(1);
        s.consecutive_failures = 0;
        let recovered = match s.status {
            Status::Pending | Status::Up => true,
            Status::Down => s.consecutive_successes >= policy.success_threshold,
        };
        if recovered {
            s.status = Status::Up;
            s.streak_started = None;
            s.streak_error = None;
        }
        let beat = if recovered {
            Beat::Up
        } else {
            Beat::Recovering
        };
        events.push(Event::Beat { at: obs.at, beat });
    } else {
        s.consecutive_failures = s.consecutive_failures.saturating_add(1);
        s.consecutive_successes = 0;
        if s.consecutive_failures == 1 || s.streak_started.is_none() {
            s.streak_started = Some(obs.at);
            s.streak_error = obs.error.clone();
        }
        if s.status == Status::Down || s.consecutive_failures >= policy.failure_threshold {
            s.status = Status::Down;
            events.push(Event::Beat {
                at: obs.at,
                beat: Beat::Down,
            });
        } else {
            events.push(Event::Beat {
                at: obs.at,
                beat: Beat::Retrying,
            });
        }
    }
    if s.status != before {
        s.since = Some(obs.at);
        events.push(Event::StatusChanged {
            at: obs.at,
            from: before,
            to: s.status,
            streak_started: (s.status == Status::Down)
                .then_some(s.streak_started)
                .flatten(),
            error: (s.status == Status::Down)
                .then(|| s.streak_error.clone())
                .flatten(),
        });
    }
    let counted_down = !obs.up && s.status == Status::Down && s.alerting.notified == Status::Down;
    let changed = s.status != before;
    notify(
        &mut s,
        policy,
        ctx,
        obs.at,
        changed,
        counted_down,
        &mut events,
    );
    (s, events)
}

/// Sends what suppression held back, when nothing new was observed: call it when a
/// maintenance window ends, a snooze runs out or a parent recovers.
pub fn reconcile(
    state: &MonitorState,
    policy: &Policy,
    ctx: &Context,
) -> (MonitorState, Vec<Event>) {
    let mut s = state.clone();
    let mut events = Vec::new();
    notify(&mut s, policy, ctx, ctx.now, false, false, &mut events);
    (s, events)
}

fn notify(
    s: &mut MonitorState,
    policy: &Policy,
    ctx: &Context,
    at: Timestamp,
    changed: bool,
    counted_down: bool,
    events: &mut Vec<Event>,
) {
    if s.status != Status::Pending && s.status != s.alerting.notified {
        let kind = if s.status == Status::Down {
            NotifyKind::Down
        } else {
            NotifyKind::Up
        };
        match suppression(s, ctx, kind) {
            // Said once, when the change happens; it goes out when the suppression ends.
            Some(reason) if changed => events.push(Event::Suppressed { at, kind, reason }),
            Some(_) => {}
            None => {
                events.push(Event::Notify {
                    at,
                    kind,
                    error: (kind == NotifyKind::Down)
                        .then(|| s.streak_error.clone())
                        .flatten(),
                });
                s.alerting.notified = s.status;
                s.alerting.down_observations = 0;
            }
        }
        return;
    }
    if counted_down {
        s.alerting.down_observations = s.alerting.down_observations.saturating_add(1);
        if let Some(n) = policy.reminder_every
            && s.alerting.down_observations.is_multiple_of(n)
        {
            let kind = NotifyKind::Reminder;
            events.push(match suppression(s, ctx, kind) {
                Some(reason) => Event::Suppressed { at, kind, reason },
                None => Event::Notify {
                    at,
                    kind,
                    error: s.streak_error.clone(),
                },
            });
        }
    }
}

/// Pauses: no observations count and nothing is notified until [`resume`].
pub fn pause(state: &MonitorState) -> MonitorState {
    MonitorState {
        paused: true,
        ..state.clone()
    }
}

/// Resumes a paused monitor as pending; what was notified before the pause is kept, so a
/// monitor that was notified DOWN and comes back healthy sends its UP.
pub fn resume(state: &MonitorState) -> MonitorState {
    MonitorState {
        status: Status::Pending,
        since: None,
        consecutive_failures: 0,
        consecutive_successes: 0,
        streak_started: None,
        streak_error: None,
        paused: false,
        snoozed_until: state.snoozed_until,
        alerting: state.alerting,
    }
}

/// Holds notifications back until `until` (the API's "snooze for N minutes").
pub fn snooze(state: &MonitorState, until: Option<Timestamp>) -> MonitorState {
    MonitorState {
        snoozed_until: until,
        ..state.clone()
    }
}

#[cfg(test)]
mod tests {
    use jiff::SignedDuration;

    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    /// Feeds a string of observations (`+` up, `-` down) one minute apart, returning the state
    /// and every notification as "kind@minute".
    fn run(
        mut s: MonitorState,
        policy: &Policy,
        pattern: &str,
        ctx: impl Fn(i64) -> Context,
    ) -> (MonitorState, Vec<String>) {
        let mut notes = Vec::new();
        for (i, c) in pattern.chars().enumerate() {
            let at = t(i as i64 * 60);
            let obs = if c == '+' {
                Observation::up(at)
            } else {
                Observation::down(at, format!("failure {i}"))
            };
            let (next, events) = observe(&s, policy, &obs, &ctx(i as i64));
            s = next;
            for e in events {
                match e {
                    Event::Notify { kind, .. } => notes.push(format!("{kind:?}@{i}")),
                    Event::Suppressed { kind, reason, .. } => {
                        notes.push(format!("({kind:?} {reason:?})@{i}"))
                    }
                    _ => {}
                }
            }
        }
        (s, notes)
    }

    fn plain(i: i64) -> Context {
        Context::at(t(i * 60))
    }

    #[test]
    fn thresholds_hold_back_retries_and_blips() {
        let p = Policy::default();
        let (s, notes) = run(MonitorState::default(), &p, "++--+--+", plain);
        assert_eq!(s.status, Status::Up);
        assert!(notes.is_empty(), "{notes:?}");
        let (s, notes) = run(MonitorState::default(), &p, "+---", plain);
        assert_eq!(s.status, Status::Down);
        assert_eq!(notes, ["Down@3"]);
        // One success is not enough to come back, two are.
        let (s, notes) = run(s, &p, "+-++", plain);
        assert_eq!(s.status, Status::Up);
        assert_eq!(notes, ["Up@3"]);
    }

    #[test]
    fn a_new_monitor_is_up_on_its_first_success_without_a_notification() {
        let (s, notes) = run(MonitorState::default(), &Policy::default(), "+", plain);
        assert_eq!(s.status, Status::Up);
        assert!(notes.is_empty());
        // And DOWN from pending after the threshold.
        let (s, notes) = run(MonitorState::default(), &Policy::default(), "---", plain);
        assert_eq!(
            (s.status, notes),
            (Status::Down, vec!["Down@2".to_string()])
        );
    }

    #[test]
    fn the_down_change_carries_the_streak_start_and_first_error() {
        let p = Policy::default();
        let mut s = MonitorState::default();
        let mut all = Vec::new();
        for (i, up) in [true, false, false, false].into_iter().enumerate() {
            let obs = if up {
                Observation::up(t(i as i64))
            } else {
                Observation::down(t(i as i64), format!("e{i}"))
            };
            let (n, ev) = observe(&s, &p, &obs, &Context::at(t(i as i64)));
            s = n;
            all.extend(ev);
        }
        assert!(all.contains(&Event::StatusChanged {
            at: t(3),
            from: Status::Up,
            to: Status::Down,
            streak_started: Some(t(1)),
            error: Some("e1".into()),
        }));
        assert!(all.contains(&Event::Notify {
            at: t(3),
            kind: NotifyKind::Down,
            error: Some("e1".into())
        }));
        let beats: Vec<Beat> = all
            .iter()
            .filter_map(|e| match e {
                Event::Beat { beat, .. } => Some(*beat),
                _ => None,
            })
            .collect();
        assert_eq!(
            beats,
            [Beat::Up, Beat::Retrying, Beat::Retrying, Beat::Down]
        );
    }

    #[test]
    fn reminders_every_n_failing_checks_while_down() {
        let p = Policy {
            reminder_every: Some(2),
            ..Policy::immediate()
        };
        let (_, notes) = run(MonitorState::default(), &p, "+------+", plain);
        assert_eq!(notes, ["Down@1", "Reminder@3", "Reminder@5", "Up@7"]);
    }

    #[test]
    fn maintenance_holds_notifications_and_releases_what_still_holds() {
        let p = Policy::immediate();
        // Down during maintenance (minutes 1-3), still down after it: DOWN at minute 4.
        let in_window = |i: i64| Context {
            in_maintenance: (1..=3).contains(&i),
            ..plain(i)
        };
        let (_, notes) = run(MonitorState::default(), &p, "+----", in_window);
        assert_eq!(notes, ["(Down Maintenance)@1", "Down@4"]);
        // Down and back up inside the window: nothing at all.
        let (_, notes) = run(MonitorState::default(), &p, "+-+++", in_window);
        assert_eq!(notes, ["(Down Maintenance)@1"]);
    }

    #[test]
    fn a_down_parent_holds_its_childs_down_but_not_its_up() {
        let p = Policy::immediate();
        let parent_down = |i: i64| Context {
            parent_down: i >= 2,
            ..plain(i)
        };
        // The child was already notified down at minute 1; the parent goes down at minute 2; the
        // child recovers at minute 4 and its UP goes out.
        let (_, notes) = run(MonitorState::default(), &p, "+--++", parent_down);
        assert_eq!(notes, ["Down@1", "Up@3"]);
        // A child that fails while the parent is down records but does not notify; once the
        // parent is back and the child still fails, its DOWN goes out.
        let parent = |i: i64| Context {
            parent_down: (1..=3).contains(&i),
            ..plain(i)
        };
        let (s, notes) = run(MonitorState::default(), &p, "+----", parent);
        assert_eq!(s.status, Status::Down);
        assert_eq!(notes, ["(Down ParentDown)@1", "Down@4"]);
    }

    #[test]
    fn reconcile_releases_a_held_notification_without_a_new_check() {
        let p = Policy::immediate();
        let ctx = Context {
            in_maintenance: true,
            ..Context::at(t(0))
        };
        let (s, ev) = observe(
            &MonitorState::default(),
            &p,
            &Observation::down(t(0), "x"),
            &ctx,
        );
        assert!(matches!(
            ev.last(),
            Some(Event::Suppressed {
                kind: NotifyKind::Down,
                ..
            })
        ));
        let (s, ev) = reconcile(&s, &p, &ctx);
        assert!(ev.is_empty(), "{ev:?}");
        let (s, ev) = reconcile(&s, &p, &Context::at(t(600)));
        assert_eq!(
            ev,
            [Event::Notify {
                at: t(600),
                kind: NotifyKind::Down,
                error: Some("x".into())
            }]
        );
        // Nothing more to say.
        assert!(reconcile(&s, &p, &Context::at(t(700))).1.is_empty());
    }

    #[test]
    fn snooze_holds_until_it_runs_out() {
        let p = Policy::immediate();
        let s = snooze(&MonitorState::default(), Some(t(5 * 60)));
        let (s, notes) = run(s, &p, "+---------", plain);
        assert_eq!(notes, ["(Down Snoozed)@1", "Down@5"]);
        assert_eq!(s.alerting.notified, Status::Down);
    }

    #[test]
    fn pause_ignores_observations_and_resume_sends_the_recovery() {
        let p = Policy::immediate();
        let (s, notes) = run(MonitorState::default(), &p, "+-", plain);
        assert_eq!(notes, ["Down@1"]);
        let paused = pause(&s);
        let (after, ev) = observe(&paused, &p, &Observation::up(t(999)), &Context::at(t(999)));
        assert_eq!(after, paused);
        assert!(ev.is_empty());
        let resumed = resume(&paused);
        assert_eq!(resumed.status, Status::Pending);
        let (s, ev) = observe(
            &resumed,
            &p,
            &Observation::up(t(1000)),
            &Context::at(t(1000)),
        );
        assert_eq!(s.status, Status::Up);
        assert!(ev.contains(&Event::Notify {
            at: t(1000),
            kind: NotifyKind::Up,
            error: None
        }));
    }

    #[test]
    fn state_survives_serialization_and_a_restart_still_sends_up() {
        let p = Policy::immediate();
        let (s, _) = run(MonitorState::default(), &p, "+-", plain);
        let stored = serde_json::to_string(&s).unwrap();
        let restored: MonitorState = serde_json::from_str(&stored).unwrap();
        assert_eq!(restored, s);
        let later = t(3600) + SignedDuration::from_secs(1);
        let (_, ev) = observe(&restored, &p, &Observation::up(later), &Context::at(later));
        assert!(ev.contains(&Event::Notify {
            at: later,
            kind: NotifyKind::Up,
            error: None
        }));
    }

    #[test]
    fn policy_validation() {
        assert!(Policy::default().validate().is_ok());
        assert!(
            Policy {
                failure_threshold: 0,
                ..Policy::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            Policy {
                success_threshold: 721,
                ..Policy::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            Policy {
                reminder_every: Some(0),
                ..Policy::default()
            }
            .validate()
            .is_err()
        );
    }
}
