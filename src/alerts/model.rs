//! Alert rules, channels and the history of fired alerts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// WHEN a rule fires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Trigger {
    /// A new issue is created (`issue.created`).
    IssueCreated,
    /// A resolved issue comes back (`issue.regressed`).
    IssueRegressed,
    /// An issue is seen more than `count` times within `window` (1m, 5m, 15m, 1h, 1d).
    Frequency { count: u64, window: String },
    /// A bus consumer dead-letters an event (`$sys.dlq.<consumer>`); any consumer if `None`.
    DlqGrowth {
        #[serde(default)]
        consumer: Option<String>,
    },
    /// A monitor goes down (`monitor.<name>.down`); any monitor if `None`.
    MonitorDown {
        #[serde(default)]
        monitor: Option<String>,
    },
    /// A monitor comes back up (`monitor.<name>.up`).
    MonitorUp {
        #[serde(default)]
        monitor: Option<String>,
    },
    /// A support ticket is opened (`chat.ticket.created`), optionally only at or above
    /// `min_priority` (urgent, high, normal, low): "urgent ticket" is `min_priority: "urgent"`.
    TicketCreated {
        #[serde(default)]
        min_priority: Option<String>,
    },
    /// A ticket passes its first-response or resolution target (`chat.ticket.sla_breached`),
    /// optionally only at or above `min_priority`.
    TicketSlaBreached {
        #[serde(default)]
        min_priority: Option<String>,
    },
    /// storage (issue 18): the data directory passes 80% of `[storage] max_disk_bytes`
    /// (`storage.disk_budget`).
    DiskBudget,
}

/// Ticket priorities, most urgent first (as chat orders them).
pub const PRIORITIES: &[&str] = &["urgent", "high", "normal", "low"];

/// A priority's rank: 0 is urgent; `None` for an unknown name.
pub fn priority_rank(p: &str) -> Option<usize> {
    PRIORITIES.iter().position(|x| *x == p)
}

pub const WINDOWS: &[(&str, i64)] = &[
    ("1m", 60_000),
    ("5m", 300_000),
    ("15m", 900_000),
    ("1h", 3_600_000),
    ("1d", 86_400_000),
];

pub fn window_ms(w: &str) -> Option<i64> {
    WINDOWS.iter().find(|(n, _)| *n == w).map(|(_, ms)| *ms)
}

/// IF: every non-empty filter must match.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Filters {
    pub project_ids: Vec<u64>,
    pub environments: Vec<String>,
    pub levels: Vec<String>,
    /// Every tag listed must be present with this value.
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub id: u64,
    pub name: String,
    pub enabled: bool,
    pub when: Trigger,
    pub filters: Filters,
    /// THEN: the channels notified.
    pub channels: Vec<u64>,
    /// At most one alert per issue (or monitor, or consumer) every this many minutes;
    /// `None` takes `[alerts] default_throttle`, 0 disables throttling.
    pub throttle_minutes: Option<u64>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChannelKind {
    /// Mail through the outbox.
    Email { to: Vec<String> },
    /// A Slack incoming webhook URL.
    Slack { url: String },
    /// A generic webhook signed per Standard Webhooks with `secret` (`whsec_<base64>`).
    Webhook {
        url: String,
        #[serde(default)]
        secret: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Channel {
    pub id: u64,
    pub name: String,
    #[serde(flatten)]
    pub kind: ChannelKind,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// What an alert says; delivered to every channel of the rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub fired_id: u64,
    pub rule_id: u64,
    pub rule_name: String,
    /// The trigger type, e.g. `issue_created`.
    pub kind: String,
    /// A short human reason, e.g. "New issue" or "Seen more than 10 times in 5m".
    pub reason: String,
    pub title: String,
    pub level: Option<String>,
    pub project_id: Option<u64>,
    pub environment: Option<String>,
    pub release: Option<String>,
    pub issue_id: Option<u64>,
    pub monitor: Option<String>,
    pub count: Option<u64>,
    /// The ticket (chat conversation) id, for ticket triggers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_id: Option<u64>,
    /// The ticket's priority, for ticket triggers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<String>,
    /// Link back to the dashboard.
    pub url: String,
    pub at_ms: i64,
    /// The bus event that triggered the alert.
    pub subject: String,
    pub payload: serde_json::Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    /// Still being retried.
    Retrying,
    /// Out of attempts: in the bus dead-letter queue (`alerts-delivery`).
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelDelivery {
    pub channel_id: u64,
    pub status: DeliveryStatus,
    pub attempts: u32,
    /// Why the last attempt failed, with the target URL reduced to scheme and host.
    pub last_error: Option<String>,
    /// The start of the receiver's last answer to a failed attempt. It may echo secrets, so
    /// only admins see it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
    pub updated_ms: i64,
}

impl Fired {
    /// This record as a user below admin may see it: no receiver replies, and any URL in an
    /// error reduced to scheme and host (records written before errors were redacted at the
    /// source may hold a full one).
    pub fn redacted(mut self) -> Self {
        for d in &mut self.deliveries {
            d.reply = None;
            d.last_error = d.last_error.as_deref().map(crate::net::redact_urls_in);
        }
        self
    }
}

/// One fired alert, for the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fired {
    pub id: u64,
    pub alert: Alert,
    pub deliveries: Vec<ChannelDelivery>,
}
