//! Alert rules over bus events, delivered to Slack, email and signed webhooks.
//!
//! Two durable bus consumers:
//! - `alerts` reads `issue.>`, `event.stored`, `$sys.dlq.*`, `monitor.>` and `chat.ticket.>`,
//!   matches rules
//!   (WHEN + IF filters + per-rule, per-issue throttle) and, in one write transaction, records
//!   the fired alert in the history and publishes one `alert.deliver` event per channel.
//! - `alerts-delivery` performs each delivery (HTTP for Slack and webhooks, the mail outbox for
//!   email). Failures retry with the bus backoff and land in the bus DLQ after `max_deliver`.
//!   The webhook's `webhook-id` is the `alert.deliver` event id, so it is stable across retries.
//!
//! Frequency windows count `event.stored` per issue in memory (minute buckets): cheap at ingest
//! rates, and a restart only forgets up to one window of counts.

pub mod api;
pub mod deliver;
pub mod model;
pub mod report;
pub mod store;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use redb::ReadableTable;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::app::AppState;
use crate::bus::{ConsumerSpec, Delivery, Outcome, Priority};
use crate::config::Config;
use crate::http::error::{ApiError, Code};
use crate::store::{Db, StoreError, now_ms};
use model::{Alert, Channel, ChannelDelivery, ChannelKind, DeliveryStatus, Fired, Rule, Trigger};

#[derive(Debug, thiserror::Error)]
pub enum AlertsError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Invalid(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Bus(String),
    #[error("{0}")]
    TargetNotAllowed(String),
}

crate::impl_from_redb!(AlertsError);

impl From<crate::bus::BusError> for AlertsError {
    fn from(e: crate::bus::BusError) -> Self {
        match e {
            crate::bus::BusError::Store(s) => AlertsError::Store(s),
            other => AlertsError::Bus(other.to_string()),
        }
    }
}

impl From<AlertsError> for ApiError {
    fn from(e: AlertsError) -> Self {
        match e {
            AlertsError::Store(s) => ApiError::internal(s),
            AlertsError::Bus(s) => ApiError::internal(s),
            AlertsError::Invalid(m) => ApiError::bad_request(m),
            AlertsError::TargetNotAllowed(m) => ApiError::new(Code::TargetNotAllowed, m),
            AlertsError::NotFound(what) => {
                ApiError::new(Code::NotFound, format!("{what} not found; check the id"))
            }
        }
    }
}

/// Event counts not yet written to the daily tables (flushed every few seconds).
#[derive(Default)]
struct PendingCounts {
    events: HashMap<i64, u64>,
    per_issue: HashMap<(i64, u64), u64>,
    titles: HashMap<u64, String>,
}

pub(crate) struct Inner {
    db: Db,
    config: Arc<Config>,
    /// Enabled rules, reloaded after any change.
    rules: RwLock<Option<Arc<Vec<Rule>>>>,
    /// issue id → (minute, events) buckets within the longest window.
    freq: Mutex<HashMap<u64, VecDeque<(i64, u64)>>>,
    pending: Mutex<PendingCounts>,
    http: crate::net::HttpClient,
    fired_total: AtomicU64,
    delivered_total: AtomicU64,
    delivery_failures_total: AtomicU64,
}

#[derive(Clone)]
pub struct Alerts {
    inner: Arc<Inner>,
}

/// The `alert.deliver` event payload.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DeliverJob {
    pub fired_id: u64,
    pub channel_id: u64,
    pub alert: Alert,
}

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
    pub fn new(db: Db, config: Arc<Config>) -> Result<Alerts, crate::net::NetError> {
        let mut opts = crate::net::ClientOptions::new("[alerts] allow_private_targets");
        opts.allow_private = config.alerts.allow_private_targets;
        let http = crate::net::HttpClient::new(opts)?;
        Ok(Alerts {
            inner: Arc::new(Inner {
                db,
                config,
                rules: RwLock::new(None),
                freq: Mutex::new(HashMap::new()),
                pending: Mutex::new(PendingCounts::default()),
                http,
                fired_total: AtomicU64::new(0),
                delivered_total: AtomicU64::new(0),
                delivery_failures_total: AtomicU64::new(0),
            }),
        })
    }

    /// Registers the `alerts` and `alerts-delivery` consumers.
    pub fn register(&self, state: &AppState) {
        let st = state.clone();
        state.bus.register(
            ConsumerSpec::new(
                "alerts",
                &[
                    "issue.>",
                    "event.stored",
                    "$sys.dlq.*",
                    "monitor.>",
                    "chat.ticket.>",
                    "storage.disk_budget",
                ],
            ),
            move |d: Delivery| {
                let st = st.clone();
                async move { st.alerts.evaluate(&st, d).await }
            },
        );
        let st = state.clone();
        state.bus.register(
            ConsumerSpec::new("alerts-delivery", &["alert.deliver"]).concurrency(4),
            move |d: Delivery| {
                let st = st.clone();
                async move { deliver::handle(&st, d).await }
            },
        );
    }

    /// Starts the daily report schedule and the flush of event counts.
    pub fn start(&self, state: &AppState, shutdown: CancellationToken) -> Vec<JoinHandle<()>> {
        vec![
            tokio::spawn(report::run_flush(self.inner.clone(), shutdown.clone())),
            tokio::spawn(report::run_daily(state.clone(), shutdown)),
        ]
    }

    pub fn render_metrics(&self, out: &mut String) {
        let i = &self.inner;
        out.push_str(&format!(
            "# HELP hearth_alerts_fired_total Alerts fired since start.\n# TYPE hearth_alerts_fired_total counter\nhearth_alerts_fired_total {}\n\
             # HELP hearth_alerts_delivered_total Alert deliveries that succeeded since start.\n# TYPE hearth_alerts_delivered_total counter\nhearth_alerts_delivered_total {}\n\
             # HELP hearth_alerts_delivery_failures_total Alert delivery attempts that failed since start.\n# TYPE hearth_alerts_delivery_failures_total counter\nhearth_alerts_delivery_failures_total {}\n",
            i.fired_total.load(Ordering::Relaxed),
            i.delivered_total.load(Ordering::Relaxed),
            i.delivery_failures_total.load(Ordering::Relaxed),
        ));
    }

    pub(crate) fn http(&self) -> &crate::net::HttpClient {
        &self.inner.http
    }

    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }

    async fn rules(&self) -> Result<Arc<Vec<Rule>>, AlertsError> {
        if let Some(r) = self.inner.rules.read().expect("rules cache").clone() {
            return Ok(r);
        }
        let all = self.list_rules().await?;
        let enabled: Arc<Vec<Rule>> = Arc::new(all.into_iter().filter(|r| r.enabled).collect());
        *self.inner.rules.write().expect("rules cache") = Some(enabled.clone());
        Ok(enabled)
    }

    pub(crate) fn invalidate_rules(&self) {
        *self.inner.rules.write().expect("rules cache") = None;
    }

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
    async fn evaluate(&self, state: &AppState, d: Delivery) -> Outcome {
        match self.evaluate_inner(state, &d).await {
            Ok(()) => Outcome::Ack,
            Err(e) => Outcome::retry(e),
        }
    }

    async fn evaluate_inner(&self, state: &AppState, d: &Delivery) -> Result<(), AlertsError> {
        let ev = &d.event;
        let p = ev.json();
        let now = now_ms();
        let day = now.div_euclid(86_400_000);
        let subject = ev.subject.as_str();
        let mut daily: Option<&'static str> = None;
        let seen = match subject {
            "issue.created" => {
                daily = Some("issues_created");
                Seen::IssueCreated
            }
            "issue.regressed" => {
                daily = Some("issues_regressed");
                Seen::IssueRegressed
            }
            "issue.state_changed" => {
                let to = ["status", "state", "to", "new_status"]
                    .iter()
                    .find_map(|k| str_field(&p, k))
                    .unwrap_or_default();
                if to.starts_with("resolved") {
                    daily = Some("issues_resolved");
                }
                Seen::Nothing
            }
            "event.stored" => match u64_field(&p, "issue_id") {
                Some(issue) => {
                    {
                        let mut pending = self.inner.pending.lock().expect("pending counts");
                        *pending.events.entry(day).or_default() += 1;
                        *pending.per_issue.entry((day, issue)).or_default() += 1;
                        if let Some(t) = str_field(&p, "title") {
                            pending.titles.insert(issue, t);
                        }
                    }
                    Seen::Event {
                        count_in: self.count_event(issue, now),
                    }
                }
                None => Seen::Nothing,
            },
            s if s.starts_with("$sys.dlq.") => Seen::Dlq {
                consumer: s.trim_start_matches("$sys.dlq.").to_string(),
            },
            s if s.starts_with("monitor.") && (s.ends_with(".down") || s.ends_with(".up")) => {
                let down = s.ends_with(".down");
                let name = s
                    .trim_start_matches("monitor.")
                    .trim_end_matches(if down { ".down" } else { ".up" })
                    .to_string();
                Seen::Monitor { name, down }
            }
            "chat.ticket.created" | "chat.ticket.sla_breached" => {
                match u64_field(&p, "conversation_id") {
                    Some(id) => Seen::Ticket {
                        id,
                        priority: str_field(&p, "priority").unwrap_or_else(|| "normal".into()),
                        breach: (subject == "chat.ticket.sla_breached")
                            .then(|| str_field(&p, "target").unwrap_or_else(|| "sla".into())),
                    },
                    None => Seen::Nothing,
                }
            }
            "storage.disk_budget" => Seen::DiskBudget {
                percent: u64_field(&p, "percent").unwrap_or(80),
            },
            _ => Seen::Nothing,
        };
        let rules = self.rules().await?;
        let base = self.inner.config.server.base_url();
        let issue_id = u64_field(&p, "issue_id");
        let mut candidates: Vec<(Rule, Alert, String)> = Vec::new();
        for rule in rules.iter() {
            let (reason, count, key) = match (&rule.when, &seen) {
                (Trigger::DiskBudget, Seen::DiskBudget { percent }) => (
                    format!("The data directory uses {percent}% of its disk budget"),
                    None,
                    Some("disk_budget".to_string()),
                ),
                (Trigger::IssueCreated, Seen::IssueCreated) => {
                    ("New issue".to_string(), None, None)
                }
                (Trigger::IssueRegressed, Seen::IssueRegressed) => {
                    ("Regression".to_string(), None, None)
                }
                (Trigger::Frequency { count, window }, Seen::Event { count_in }) => {
                    let Some(ms) = model::window_ms(window) else {
                        continue;
                    };
                    let n = count_in(ms);
                    if n <= *count {
                        continue;
                    }
                    (
                        format!("Seen more than {count} times in {window}"),
                        Some(n),
                        None,
                    )
                }
                (Trigger::DlqGrowth { consumer }, Seen::Dlq { consumer: c }) => {
                    if consumer.as_ref().is_some_and(|want| want != c) {
                        continue;
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
                        continue;
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
                    },
                ) => {
                    if !priority_at_least(priority, min_priority) {
                        continue;
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
                    },
                ) => {
                    if !priority_at_least(priority, min_priority) {
                        continue;
                    }
                    let what = target.replace('_', " ");
                    (
                        format!("SLA breached ({what}) on {priority} ticket #{id}"),
                        None,
                        Some(format!("ticket:{id}:{target}")),
                    )
                }
                _ => continue,
            };
            if !filters_match(&rule.filters, &p) {
                continue;
            }
            let key = key.unwrap_or_else(|| match issue_id {
                Some(i) => format!("issue:{i}"),
                None => format!("subject:{subject}"),
            });
            let kind = serde_json::to_value(&rule.when)
                .ok()
                .and_then(|v| v["type"].as_str().map(str::to_string))
                .unwrap_or_default();
            let monitor = match &seen {
                Seen::Monitor { name, .. } => Some(name.clone()),
                _ => None,
            };
            let title = str_field(&p, "title").unwrap_or_else(|| match &seen {
                Seen::Dlq { consumer } => format!(
                    "{} event(s) dead-lettered by {consumer}: {}",
                    1,
                    str_field(&p, "error").unwrap_or_default()
                ),
                Seen::Monitor { .. } => reason.clone(),
                Seen::Ticket { id, .. } => str_field(&p, "subject")
                    .map(|s| s.chars().take(200).collect())
                    .unwrap_or_else(|| format!("Ticket #{id}")),
                _ => subject.to_string(),
            });
            let (ticket_id, priority) = match &seen {
                Seen::Ticket { id, priority, .. } => (Some(*id), Some(priority.clone())),
                _ => (None, None),
            };
            let url = match issue_id {
                Some(i) => format!("{base}/#/issues/{i}"),
                None => match &seen {
                    Seen::Dlq { consumer } => format!("{base}/#/bus/dlq/{consumer}"),
                    Seen::Monitor { name, .. } => format!("{base}/#/monitors/{name}"),
                    Seen::Ticket { id, .. } => format!("{base}/#/chat/{id}"),
                    _ => format!("{base}/#/alerts"),
                },
            };
            let alert = Alert {
                fired_id: 0,
                rule_id: rule.id,
                rule_name: rule.name.clone(),
                kind,
                reason,
                title,
                level: str_field(&p, "level"),
                project_id: u64_field(&p, "project_id"),
                environment: str_field(&p, "environment"),
                release: str_field(&p, "release"),
                issue_id,
                monitor,
                count,
                ticket_id,
                priority,
                url,
                at_ms: now,
                subject: subject.to_string(),
                payload: p.clone(),
            };
            candidates.push((rule.clone(), alert, key));
        }
        if candidates.is_empty() && daily.is_none() {
            return Ok(());
        }
        let default_throttle = self.inner.config.alerts.default_throttle.get().as_millis() as i64;
        let event_id = ev.id.clone();
        let bus = state.bus.clone();
        let title_for_issue = (subject == "issue.created")
            .then(|| issue_id.zip(str_field(&p, "title")))
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
        self.inner.fired_total.fetch_add(fired, Ordering::Relaxed);
        Ok(())
    }

    // ---- rules and channels ---------------------------------------------------------------

    pub async fn list_rules(&self) -> Result<Vec<Rule>, AlertsError> {
        self.inner
            .db
            .read(|txn| {
                let t = txn.open_table(store::RULES)?;
                let mut out = Vec::new();
                for row in t.iter()? {
                    out.push(store::decode(row?.1.value())?);
                }
                Ok(out)
            })
            .await
    }

    pub async fn get_rule(&self, id: u64) -> Result<Rule, AlertsError> {
        self.inner
            .db
            .read(move |txn| {
                let t = txn.open_table(store::RULES)?;
                match t.get(id)? {
                    Some(v) => Ok(store::decode(v.value())?),
                    None => Err(AlertsError::NotFound("rule")),
                }
            })
            .await
    }

    async fn validate_rule(&self, r: &Rule) -> Result<(), AlertsError> {
        if r.name.trim().is_empty() {
            return Err(AlertsError::Invalid("a rule needs a name".into()));
        }
        if let Trigger::Frequency { window, .. } = &r.when
            && model::window_ms(window).is_none()
        {
            return Err(AlertsError::Invalid(format!(
                "window {window:?} is not one of 1m, 5m, 15m, 1h, 1d"
            )));
        }
        if let Trigger::TicketCreated { min_priority } | Trigger::TicketSlaBreached { min_priority } =
            &r.when
            && let Some(m) = min_priority
            && model::priority_rank(m).is_none()
        {
            return Err(AlertsError::Invalid(format!(
                "min_priority {m:?} is not one of urgent, high, normal, low (or leave it out for any)"
            )));
        }
        if r.channels.is_empty() {
            return Err(AlertsError::Invalid(
                "a rule needs at least one channel id in \"channels\"".into(),
            ));
        }
        let channels = self.list_channels().await?;
        for c in &r.channels {
            if !channels.iter().any(|x| x.id == *c) {
                return Err(AlertsError::Invalid(format!(
                    "channel {c} does not exist; create it first (POST /api/alerts/channels)"
                )));
            }
        }
        Ok(())
    }

    /// Creates (`id == 0`) or replaces a rule.
    pub async fn save_rule(&self, mut r: Rule) -> Result<Rule, AlertsError> {
        self.validate_rule(&r).await?;
        let now = now_ms();
        r.updated_ms = now;
        let saved = self
            .inner
            .db
            .write(move |txn| {
                if r.id == 0 {
                    r.id = store::next_id(txn, "rule")?;
                    r.created_ms = now;
                } else {
                    let t = txn.open_table(store::RULES)?;
                    let old: Rule = match t.get(r.id)? {
                        Some(v) => store::decode(v.value())?,
                        None => return Err(AlertsError::NotFound("rule")),
                    };
                    r.created_ms = old.created_ms;
                }
                txn.open_table(store::RULES)?
                    .insert(r.id, store::encode(&r).as_slice())?;
                Ok(r)
            })
            .await?;
        self.invalidate_rules();
        Ok(saved)
    }

    pub async fn delete_rule(&self, id: u64) -> Result<(), AlertsError> {
        self.inner
            .db
            .write(move |txn| {
                if txn.open_table(store::RULES)?.remove(id)?.is_none() {
                    return Err(AlertsError::NotFound("rule"));
                }
                Ok(())
            })
            .await?;
        self.invalidate_rules();
        Ok(())
    }

    pub async fn list_channels(&self) -> Result<Vec<Channel>, AlertsError> {
        self.inner
            .db
            .read(|txn| {
                let t = txn.open_table(store::CHANNELS)?;
                let mut out = Vec::new();
                for row in t.iter()? {
                    out.push(store::decode(row?.1.value())?);
                }
                Ok(out)
            })
            .await
    }

    pub async fn get_channel(&self, id: u64) -> Result<Channel, AlertsError> {
        self.inner
            .db
            .read(move |txn| {
                let t = txn.open_table(store::CHANNELS)?;
                match t.get(id)? {
                    Some(v) => Ok(store::decode(v.value())?),
                    None => Err(AlertsError::NotFound("channel")),
                }
            })
            .await
    }

    /// Creates (`id == 0`) or replaces a channel. A webhook keeps its secret unless
    /// `rotate_secret`; a new webhook gets a fresh `whsec_` secret.
    pub async fn save_channel(
        &self,
        mut c: Channel,
        rotate_secret: bool,
    ) -> Result<Channel, AlertsError> {
        if c.name.trim().is_empty() {
            return Err(AlertsError::Invalid("a channel needs a name".into()));
        }
        match &c.kind {
            ChannelKind::Email { to } => {
                if to.is_empty() {
                    return Err(AlertsError::Invalid(
                        "an email channel needs \"to\" addresses".into(),
                    ));
                }
                for a in to {
                    crate::mail::smtp::check_address(a).map_err(AlertsError::Invalid)?;
                }
            }
            ChannelKind::Slack { url } | ChannelKind::Webhook { url, .. } => {
                match self.inner.http.check_target(url).await {
                    Ok(()) => {}
                    Err(crate::net::NetError::Refused(r)) => {
                        return Err(AlertsError::TargetNotAllowed(format!(
                            "the channel's URL is refused: {r}"
                        )));
                    }
                    Err(_) => {
                        return Err(AlertsError::Invalid(format!(
                            "{} is not an http(s) URL with a host",
                            crate::net::redact_url(url)
                        )));
                    }
                }
            }
        }
        if let ChannelKind::Webhook { secret, .. } = &c.kind
            && !secret.is_empty()
            && deliver::secret_key(secret).is_none()
        {
            return Err(AlertsError::Invalid(
                "a webhook secret is \"whsec_\" followed by base64 (or leave it empty to get one)"
                    .into(),
            ));
        }
        let now = now_ms();
        c.updated_ms = now;
        self.inner
            .db
            .write(move |txn| {
                let old: Option<Channel> = if c.id == 0 {
                    None
                } else {
                    let t = txn.open_table(store::CHANNELS)?;
                    match t.get(c.id)? {
                        Some(v) => Some(store::decode(v.value())?),
                        None => return Err(AlertsError::NotFound("channel")),
                    }
                };
                if c.id == 0 {
                    c.id = store::next_id(txn, "channel")?;
                    c.created_ms = now;
                } else if let Some(o) = &old {
                    c.created_ms = o.created_ms;
                }
                if let ChannelKind::Webhook { secret, .. } = &mut c.kind
                    && secret.is_empty()
                {
                    *secret = match (&old, rotate_secret) {
                        (
                            Some(Channel {
                                kind: ChannelKind::Webhook { secret: s, .. },
                                ..
                            }),
                            false,
                        ) => s.clone(),
                        _ => deliver::new_secret(),
                    };
                }
                txn.open_table(store::CHANNELS)?
                    .insert(c.id, store::encode(&c).as_slice())?;
                Ok(c)
            })
            .await
    }

    pub async fn delete_channel(&self, id: u64) -> Result<(), AlertsError> {
        let in_use: Vec<u64> = self
            .list_rules()
            .await?
            .into_iter()
            .filter(|r| r.channels.contains(&id))
            .map(|r| r.id)
            .collect();
        if !in_use.is_empty() {
            return Err(AlertsError::Invalid(format!(
                "channel {id} is used by rule(s) {in_use:?}; remove it from them first"
            )));
        }
        self.inner
            .db
            .write(move |txn| {
                if txn.open_table(store::CHANNELS)?.remove(id)?.is_none() {
                    return Err(AlertsError::NotFound("channel"));
                }
                Ok(())
            })
            .await
    }

    /// Fired alerts, newest first.
    pub async fn history(
        &self,
        rule_id: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Fired>, AlertsError> {
        let limit = limit.clamp(1, 500);
        self.inner
            .db
            .read(move |txn| {
                let t = txn.open_table(store::HISTORY)?;
                let mut out = Vec::new();
                for row in t.iter()?.rev() {
                    let f: Fired = store::decode(row?.1.value())?;
                    if rule_id.is_some_and(|r| r != f.alert.rule_id) {
                        continue;
                    }
                    out.push(f);
                    if out.len() >= limit {
                        break;
                    }
                }
                Ok(out)
            })
            .await
    }

    /// Records a delivery attempt's result in the fired alert's history.
    pub(crate) async fn record_delivery(
        &self,
        fired_id: u64,
        channel_id: u64,
        status: DeliveryStatus,
        attempts: u32,
        error: Option<String>,
        reply: Option<String>,
    ) -> Result<(), AlertsError> {
        match status {
            DeliveryStatus::Delivered => self.inner.delivered_total.fetch_add(1, Ordering::Relaxed),
            _ => self
                .inner
                .delivery_failures_total
                .fetch_add(1, Ordering::Relaxed),
        };
        self.inner
            .db
            .write(move |txn| {
                let mut t = txn.open_table(store::HISTORY)?;
                let mut f: Fired = match t.get(fired_id)? {
                    Some(v) => store::decode(v.value())?,
                    None => return Ok(()),
                };
                if let Some(d) = f.deliveries.iter_mut().find(|d| d.channel_id == channel_id) {
                    d.status = status;
                    d.attempts = attempts;
                    d.last_error = error;
                    d.reply = reply;
                    d.updated_ms = now_ms();
                }
                t.insert(fired_id, store::encode(&f).as_slice())?;
                Ok(())
            })
            .await
    }
}
