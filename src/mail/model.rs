//! Mail types: what is stored per message and what the API accepts.

use serde::{Deserialize, Serialize};

pub use crate::bus::Priority;

/// Where a message is in its life. The end states are `Sent`, `Failed` and `Cancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Waiting in the outbox (new, deferred after a transient failure, or held by the rate limit).
    Queued,
    /// Handed to the relay right now.
    Sending,
    Sent,
    Failed,
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Sending => "sending",
            Status::Sent => "sent",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "queued" => Status::Queued,
            "sending" => Status::Sending,
            "sent" => Status::Sent,
            "failed" => Status::Failed,
            "cancelled" => Status::Cancelled,
            _ => return None,
        })
    }
}

/// A tag for filtering and stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Monitoring,
    Admin,
    #[default]
    Internal,
    Development,
}

impl Category {
    pub const ALL: [Category; 4] = [
        Category::Monitoring,
        Category::Admin,
        Category::Internal,
        Category::Development,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Monitoring => "monitoring",
            Category::Admin => "admin",
            Category::Internal => "internal",
            Category::Development => "development",
        }
    }

    pub fn parse(s: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogKind {
    Queued,
    /// An attempt the relay answered with a transient failure, or that could not connect.
    Deferred,
    /// The rate limit kept the message waiting.
    Held,
    /// An attempt that was running when the process stopped; the message went back to the queue.
    Interrupted,
    Sent,
    Failed,
    Cancelled,
    /// An admin asked for another try.
    Retried,
}

/// One line of a message's delivery log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LogEntry {
    pub at_ms: i64,
    pub kind: LogKind,
    /// Attempt number this line is about (0 for lines that are not about an attempt).
    pub attempt: u32,
    /// The relay's reply or the error, as text.
    pub detail: String,
    pub smtp_code: Option<u16>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AttachmentMeta {
    pub filename: String,
    pub content_type: String,
    pub size: u64,
}

/// A message's envelope, state and log (its body is stored apart, see [`Body`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MessageRecord {
    pub id: u64,
    pub status: Status,
    pub priority: Priority,
    pub category: Category,
    pub from: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    pub subject: String,
    pub template: Option<String>,
    pub attachments: Vec<AttachmentMeta>,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// Transient failures are retried until this time, then the message fails.
    pub deadline_ms: i64,
    /// Set while the message waits for a retry.
    pub next_attempt_ms: Option<i64>,
    pub attempts: u32,
    pub sent_ms: Option<i64>,
    pub last_error: Option<String>,
    pub last_code: Option<u16>,
    pub dedup_key: Option<String>,
    pub log: Vec<LogEntry>,
}

impl MessageRecord {
    pub fn push_log(
        &mut self,
        at_ms: i64,
        kind: LogKind,
        attempt: u32,
        detail: String,
        code: Option<u16>,
    ) {
        self.log.push(LogEntry {
            at_ms,
            kind,
            attempt,
            detail,
            smtp_code: code,
        });
        self.updated_ms = at_ms;
    }

    pub fn recipients(&self) -> impl Iterator<Item = &String> {
        self.to.iter().chain(&self.cc).chain(&self.bcc)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Attachment {
    pub filename: String,
    pub content_type: String,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Body {
    pub text: String,
    pub html: Option<String>,
    pub attachments: Vec<Attachment>,
}

/// An attachment as the API takes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAttachment {
    pub filename: String,
    #[serde(default)]
    pub content_type: Option<String>,
    /// The file, base64 (standard alphabet).
    pub content_base64: String,
}

/// A message to queue, as the API and other parts hand it over.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NewMessage {
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    pub attachments: Vec<NewAttachment>,
    pub priority: Option<Priority>,
    pub category: Option<Category>,
    /// Queuing the same key twice returns the first message instead of a second one (for
    /// retried callers such as alert deliveries).
    pub dedup_key: Option<String>,
}

/// A message from a template: the template renders subject, text and HTML.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TemplateSend {
    pub template: String,
    pub vars: serde_json::Map<String, serde_json::Value>,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    pub attachments: Vec<NewAttachment>,
    pub priority: Option<Priority>,
    pub category: Option<Category>,
    pub dedup_key: Option<String>,
}

/// A stored template. Subject and text render without escaping, HTML with HTML escaping.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Template {
    pub name: String,
    pub description: String,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    pub builtin: bool,
    pub updated_ms: i64,
}
