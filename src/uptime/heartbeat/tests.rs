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
                Transition::Record(r) if r.kind == RecordKind::TimedOut => Some("timed out".into()),
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
    assert!(
        err(serde_json::json!({"schedule": {"type": "interval", "value": 1, "unit": "fortnight"}}))
            .contains("unit")
    );
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
    assert!(Sim::notes(&sim.run_until(at("2025-03-30T12:00:00+02:00[Europe/Berlin]"))).is_empty());
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
    assert!(Sim::notes(&sim.run_until(at("2025-10-26T03:00:00+01:00[Europe/Berlin]"))).is_empty());
    assert_eq!(
        sim.state.expected,
        Some(at("2025-10-27T02:30:00+01:00[Europe/Berlin]"))
    );

    // Without the ping, the first 02:30 plus grace is the deadline: 02:40 CEST, an hour
    // before the wall clock shows 02:40 again.
    let mut sim = Sim::new(policy, at("2025-10-25T02:31:00+02:00[Europe/Berlin]"));
    sim.ping(PingKind::Success);
    assert!(Sim::notes(&sim.run_until(at("2025-10-26T02:29:00+02:00[Europe/Berlin]"))).is_empty());
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
