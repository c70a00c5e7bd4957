//! The `alerts` consumer's rule evaluation, in three steps: classify (what the event means for
//! the rules), match (which enabled rules it triggers and passes the filters of) and fire (one
//! write transaction: history, throttle and one `alert.deliver` per channel).

use std::sync::atomic::Ordering;

use redb::ReadableTable;
use serde::Deserialize;
use serde_json::Value;

use super::model::{self, Alert, ChannelDelivery, DeliveryStatus, Fired, Rule, Trigger};
use super::{Alerts, AlertsError, DeliverJob, store};
use crate::app::AppState;
use crate::bus::events::{DLQ_PREFIX, DeadLettered};
use crate::bus::{Delivery, Outcome, Priority};
use crate::chat::events::{TICKET_CREATED, TICKET_SLA_BREACHED, TicketCreated, TicketSlaBreached};
use crate::issues::events::{
    EVENT_STORED, EventStored, ISSUE_CREATED, ISSUE_REGRESSED, ISSUE_STATE_CHANGED,
    IssueStateChanged,
};
use crate::store::now_ms;
use crate::uptime::events::MONITOR_PREFIX;

fn str_field(p: &Value, k: &str) -> Option<String> {
    match &p[k] {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn u64_field(p: &Value, k: &str) -> Option<u64> {
    match &p[k] {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// A tag's value from a payload's `tags`: an object, or Sentry's list of `[key, value]` pairs.
fn tag_value(p: &Value, key: &str) -> Option<String> {
    match &p["tags"] {
        Value::Object(m) => m.get(key).and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }),
        Value::Array(a) => a.iter().find_map(|pair| {
            let pair = pair.as_array()?;
            (pair.first()?.as_str()? == key).then(|| pair.get(1)?.as_str().map(str::to_string))?
        }),
        _ => None,
    }
}

/// Whether a payload passes a rule's IF filters.
pub fn filters_match(f: &model::Filters, p: &Value) -> bool {
    if !f.project_ids.is_empty()
        && !u64_field(p, "project_id").is_some_and(|id| f.project_ids.contains(&id))
    {
        return false;
    }
    if !f.environments.is_empty()
        && !str_field(p, "environment").is_some_and(|e| f.environments.contains(&e))
    {
        return false;
    }
    if !f.levels.is_empty()
        && !str_field(p, "level")
            .is_some_and(|l| f.levels.iter().any(|x| x.eq_ignore_ascii_case(&l)))
    {
        return false;
    }
    f.tags
        .iter()
        .all(|(k, v)| tag_value(p, k).is_some_and(|got| got == *v))
}

/// What an event means for the rules.
enum Seen {
    IssueCreated,
    IssueRegressed,
    Event {
        count_in: Box<dyn Fn(i64) -> u64 + Send>,
    },
    Dlq {
        consumer: String,
        /// The dead event's last error.
        error: String,
    },
    Monitor {
        name: String,
        down: bool,
    },
    /// `chat.ticket.created` (`breach: None`) or `chat.ticket.sla_breached` (`breach`: the
    /// target passed, `first_response` or `resolution`).
    Ticket {
        id: u64,
        priority: String,
        subject: String,
        breach: Option<String>,
    },
    /// `storage.disk_budget`: percent of the budget in use.
    DiskBudget {
        percent: u64,
    },
    Nothing,
}

/// Whether a ticket of `priority` is at or above a rule's `min_priority`.
fn priority_at_least(priority: &str, min: &Option<String>) -> bool {
    match min {
        None => true,
        Some(m) => match (model::priority_rank(priority), model::priority_rank(m)) {
            (Some(p), Some(m)) => p <= m,
            _ => false,
        },
    }
}

impl Alerts {
    /// Counts one stored event for its issue; returns a counter over the last `ms`.
    fn count_event(&self, issue: u64, now: i64) -> Box<dyn Fn(i64) -> u64 + Send> {
        let minute = now.div_euclid(60_000);
        let mut freq = self.inner.freq.lock().expect("freq");
        let buckets = freq.entry(issue).or_default();
        match buckets.back_mut() {
            Some((m, n)) if *m == minute => *n += 1,
            _ => buckets.push_back((minute, 1)),
        }
        while buckets.front().is_some_and(|(m, _)| *m < minute - 1440) {
            buckets.pop_front();
        }
        let snapshot: Vec<(i64, u64)> = buckets.iter().copied().collect();
        Box::new(move |window_ms: i64| {
            // Whole minutes: a 1m window is the current minute and the previous one's share
            // is left out, which errs toward firing later rather than spuriously.
            let from = minute - window_ms / 60_000 + 1;
            snapshot
                .iter()
                .filter(|(m, _)| *m >= from)
                .map(|(_, n)| n)
                .sum()
        })
    }

    /// The `alerts` consumer: evaluate one event against the rules.
    pub(super) async fn evaluate(&self, state: &AppState, d: Delivery) -> Outcome {
        match self.evaluate_inner(state, &d).await {
            Ok(()) => Outcome::Ack,
            Err(e) => Outcome::retry(e),
        }
    }

    /// classify → match → fire.
    async fn evaluate_inner(&self, state: &AppState, d: &Delivery) -> Result<(), AlertsError> {
        let ev = &d.event;
        let p = ev.json();
        let now = now_ms();
        let day = now.div_euclid(86_400_000);
        let subject = ev.subject.as_str();
        let (seen, daily) = self.classify(subject, &p, now, day);
        let rules = self.rules().await?;
        let candidates = self.match_rules(&rules, subject, &p, &seen, now);
        if candidates.is_empty() && daily.is_none() {
            return Ok(());
        }
        let fired = self
            .fire(state, ev.id.clone(), subject, &p, candidates, daily, now)
            .await?;
        self.inner.fired_total.fetch_add(fired, Ordering::Relaxed);
        Ok(())
    }

    /// What the event means for the rules, and the daily figure it counts toward; a stored
    /// event is counted for its issue's frequency windows here.
    fn classify(
        &self,
        subject: &str,
        p: &Value,
        now: i64,
        day: i64,
    ) -> (Seen, Option<&'static str>) {
        let mut daily: Option<&'static str> = None;
        let seen = match subject {
            ISSUE_CREATED => {
                daily = Some("issues_created");
                Seen::IssueCreated
            }
            ISSUE_REGRESSED => {
                daily = Some("issues_regressed");
                Seen::IssueRegressed
            }
            ISSUE_STATE_CHANGED => {
                if IssueStateChanged::deserialize(p).is_ok_and(|c| c.to.starts_with("resolved")) {
                    daily = Some("issues_resolved");
                }
                Seen::Nothing
            }
            EVENT_STORED => match EventStored::deserialize(p) {
                Ok(stored) => {
                    let issue = stored.issue_id;
                    {
                        let mut pending = self.inner.pending.lock().expect("pending counts");
                        *pending.events.entry(day).or_default() += 1;
                        *pending.per_issue.entry((day, issue)).or_default() += 1;
                        if !stored.title.is_empty() {
                            pending.titles.insert(issue, stored.title);
                        }
                    }
                    Seen::Event {
                        count_in: self.count_event(issue, now),
                    }
                }
                Err(_) => Seen::Nothing,
            },
            s if s.starts_with(DLQ_PREFIX) => Seen::Dlq {
                consumer: s.trim_start_matches(DLQ_PREFIX).to_string(),
                error: DeadLettered::deserialize(p)
                    .map(|d| d.error)
                    .unwrap_or_default(),
            },
            s if s.starts_with(MONITOR_PREFIX) && (s.ends_with(".down") || s.ends_with(".up")) => {
                let down = s.ends_with(".down");
                let name = s
                    .trim_start_matches(MONITOR_PREFIX)
                    .trim_end_matches(if down { ".down" } else { ".up" })
                    .to_string();
                Seen::Monitor { name, down }
            }
            TICKET_CREATED => match TicketCreated::deserialize(p) {
                Ok(t) => Seen::Ticket {
                    id: t.conversation_id,
                    priority: t.priority.as_str().to_string(),
                    subject: t.subject,
                    breach: None,
                },
                Err(_) => Seen::Nothing,
            },
            TICKET_SLA_BREACHED => match TicketSlaBreached::deserialize(p) {
                Ok(t) => Seen::Ticket {
                    id: t.conversation_id,
                    priority: t.priority.as_str().to_string(),
                    subject: t.subject,
                    breach: Some(t.target),
                },
                Err(_) => Seen::Nothing,
            },
            "storage.disk_budget" => Seen::DiskBudget {
                percent: u64_field(p, "percent").unwrap_or(80),
            },
            _ => Seen::Nothing,
        };
        (seen, daily)
    }

    /// The rules the event triggers and passes the filters of, each with its alert and its
    /// throttle key.
    fn match_rules(
        &self,
        rules: &[Rule],
        subject: &str,
        p: &Value,
        seen: &Seen,
        now: i64,
    ) -> Vec<(Rule, Alert, String)> {
        let base = self.inner.config.server.base_url();
        let issue_id = u64_field(p, "issue_id");
        let mut candidates: Vec<(Rule, Alert, String)> = Vec::new();
        for rule in rules.iter() {
            let Some((reason, count, key)) = triggered(rule, seen) else {
                continue;
            };
            if !filters_match(&rule.filters, p) {
                continue;
            }
            let key = key.unwrap_or_else(|| match issue_id {
                Some(i) => format!("issue:{i}"),
                None => format!("subject:{subject}"),
            });
            let alert = alert_for(rule, reason, count, subject, p, seen, &base, now);
            candidates.push((rule.clone(), alert, key));
        }
        candidates
    }

    /// In one write transaction: skips an event already processed, bumps the daily figure,
    /// applies each rule's throttle, records the fired alerts and publishes one
    /// `alert.deliver` per channel. Returns how many alerts fired.
    #[allow(clippy::too_many_arguments)]
    async fn fire(
        &self,
        state: &AppState,
        event_id: String,
        subject: &str,
        p: &Value,
        candidates: Vec<(Rule, Alert, String)>,
        daily: Option<&'static str>,
        now: i64,
    ) -> Result<u64, AlertsError> {
        let day = now.div_euclid(86_400_000);
        let issue_id = u64_field(p, "issue_id");
        let default_throttle = self.inner.config.alerts.default_throttle.get().as_millis() as i64;
        let bus = state.bus.clone();
        let title_for_issue = (subject == ISSUE_CREATED)
            .then(|| issue_id.zip(str_field(p, "title")))
            .flatten();
        let fired = self
            .inner
            .db
            .write(move |txn| {
                {
                    let mut processed = txn.open_table(store::PROCESSED)?;
                    if processed.get(event_id.as_str())?.is_some() {
                        return Ok(0u64);
                    }
                    processed.insert(event_id.as_str(), ())?;
                }
                if let Some(metric) = daily {
                    store::bump_daily(txn, day, metric, 1)?;
                }
                if let Some((issue, title)) = &title_for_issue {
                    txn.open_table(store::ISSUE_TITLES)?
                        .insert(*issue, title.as_str())?;
                }
                let mut fired = 0;
                for (rule, mut alert, key) in candidates {
                    let throttle = rule
                        .throttle_minutes
                        .map(|m| m as i64 * 60_000)
                        .unwrap_or(default_throttle);
                    {
                        let mut t = txn.open_table(store::THROTTLE)?;
                        let last = t.get((rule.id, key.as_str()))?.map(|v| v.value());
                        if throttle > 0 && last.is_some_and(|l| now - l < throttle) {
                            continue;
                        }
                        t.insert((rule.id, key.as_str()), now)?;
                    }
                    let id = store::next_id(txn, "fired")?;
                    alert.fired_id = id;
                    let record = Fired {
                        id,
                        alert: alert.clone(),
                        deliveries: rule
                            .channels
                            .iter()
                            .map(|c| ChannelDelivery {
                                channel_id: *c,
                                status: DeliveryStatus::Pending,
                                attempts: 0,
                                last_error: None,
                                reply: None,
                                updated_ms: now,
                            })
                            .collect(),
                    };
                    txn.open_table(store::HISTORY)?
                        .insert(id, store::encode(&record).as_slice())?;
                    for c in &rule.channels {
                        let job = DeliverJob {
                            fired_id: id,
                            channel_id: *c,
                            alert: alert.clone(),
                        };
                        bus.publish_durable(txn, "alert.deliver", Priority::High, &job)?;
                    }
                    fired += 1;
                }
                Ok::<_, AlertsError>(fired)
            })
            .await?;
        Ok(fired)
    }
}

/// Whether a rule's trigger matches what the event means: the reason, the count that crossed
/// a frequency window, and a throttle key of its own (else the issue's or the subject's).
fn triggered(rule: &Rule, seen: &Seen) -> Option<(String, Option<u64>, Option<String>)> {
    Some(match (&rule.when, seen) {
        (Trigger::DiskBudget, Seen::DiskBudget { percent }) => (
            format!("The data directory uses {percent}% of its disk budget"),
            None,
            Some("disk_budget".to_string()),
        ),
        (Trigger::IssueCreated, Seen::IssueCreated) => ("New issue".to_string(), None, None),
        (Trigger::IssueRegressed, Seen::IssueRegressed) => ("Regression".to_string(), None, None),
        (Trigger::Frequency { count, window }, Seen::Event { count_in }) => {
            let ms = model::window_ms(window)?;
            let n = count_in(ms);
            if n <= *count {
                return None;
            }
            (
                format!("Seen more than {count} times in {window}"),
                Some(n),
                None,
            )
        }
        (Trigger::DlqGrowth { consumer }, Seen::Dlq { consumer: c, .. }) => {
            if consumer.as_ref().is_some_and(|want| want != c) {
                return None;
            }
            (
                format!("Dead letters in bus consumer {c}"),
                None,
                Some(format!("dlq:{c}")),
            )
        }
        (Trigger::MonitorDown { monitor }, Seen::Monitor { name, down: true })
        | (Trigger::MonitorUp { monitor }, Seen::Monitor { name, down: false }) => {
            if monitor.as_ref().is_some_and(|want| want != name) {
                return None;
            }
            let what = if matches!(rule.when, Trigger::MonitorDown { .. }) {
                "down"
            } else {
                "up"
            };
            (
                format!("Monitor {name} is {what}"),
                None,
                Some(format!("monitor:{name}")),
            )
        }
        (
            Trigger::TicketCreated { min_priority },
            Seen::Ticket {
                id,
                priority,
                breach: None,
                ..
            },
        ) => {
            if !priority_at_least(priority, min_priority) {
                return None;
            }
            (
                format!("New {priority} ticket #{id}"),
                None,
                Some(format!("ticket:{id}")),
            )
        }
        (
            Trigger::TicketSlaBreached { min_priority },
            Seen::Ticket {
                id,
                priority,
                breach: Some(target),
                ..
            },
        ) => {
            if !priority_at_least(priority, min_priority) {
                return None;
            }
            let what = target.replace('_', " ");
            (
                format!("SLA breached ({what}) on {priority} ticket #{id}"),
                None,
                Some(format!("ticket:{id}:{target}")),
            )
        }
        _ => return None,
    })
}

/// The alert a triggered rule fires: title, links and the facts the channels show.
#[allow(clippy::too_many_arguments)]
fn alert_for(
    rule: &Rule,
    reason: String,
    count: Option<u64>,
    subject: &str,
    p: &Value,
    seen: &Seen,
    base: &str,
    now: i64,
) -> Alert {
    let issue_id = u64_field(p, "issue_id");
    let kind = serde_json::to_value(&rule.when)
        .ok()
        .and_then(|v| v["type"].as_str().map(str::to_string))
        .unwrap_or_default();
    let monitor = match seen {
        Seen::Monitor { name, .. } => Some(name.clone()),
        _ => None,
    };
    let title = str_field(p, "title").unwrap_or_else(|| match seen {
        Seen::Dlq { consumer, error } => {
            format!("{} event(s) dead-lettered by {consumer}: {error}", 1)
        }
        Seen::Monitor { .. } => reason.clone(),
        Seen::Ticket { id, subject, .. } => Some(subject)
            .filter(|s| !s.is_empty())
            .map(|s| s.chars().take(200).collect())
            .unwrap_or_else(|| format!("Ticket #{id}")),
        _ => subject.to_string(),
    });
    let (ticket_id, priority) = match seen {
        Seen::Ticket { id, priority, .. } => (Some(*id), Some(priority.clone())),
        _ => (None, None),
    };
    let url = match issue_id {
        Some(i) => format!("{base}/#/issues/{i}"),
        None => match seen {
            Seen::Dlq { consumer, .. } => format!("{base}/#/bus/dlq/{consumer}"),
            Seen::Monitor { name, .. } => format!("{base}/#/monitors/{name}"),
            Seen::Ticket { id, .. } => format!("{base}/#/chat/{id}"),
            _ => format!("{base}/#/alerts"),
        },
    };
    Alert {
        fired_id: 0,
        rule_id: rule.id,
        rule_name: rule.name.clone(),
        kind,
        reason,
        title,
        level: str_field(p, "level"),
        project_id: u64_field(p, "project_id"),
        environment: str_field(p, "environment"),
        release: str_field(p, "release"),
        issue_id,
        monitor,
        count,
        ticket_id,
        priority,
        url,
        at_ms: now,
        subject: subject.to_string(),
        payload: p.clone(),
    }
}
