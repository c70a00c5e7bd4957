//! Chat records as stored (postcard behind the store's version byte) and as shown.

use serde::{Deserialize, Serialize};

/// A website the widget runs on. The site key is public (it is in the page); the identity
/// secret signs user ids server-side and is shown only to admins.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Site {
    pub id: u64,
    pub name: String,
    pub site_key: String,
    pub identity_secret: String,
    /// "Verified only": a visitor without a valid `user_id` + `user_hash` is refused.
    pub require_identity: bool,
    /// Business hours; empty means always open.
    pub hours: Vec<OpenSpan>,
    /// IANA time zone the hours are in.
    pub time_zone: String,
    pub created_ms: i64,
}

/// One opening span: weekday 0 = Monday .. 6 = Sunday, minutes since local midnight.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct OpenSpan {
    pub day: u8,
    pub open_min: u16,
    pub close_min: u16,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Visitor {
    pub id: u64,
    pub site_id: u64,
    pub name: String,
    pub email: String,
    /// Set only when the site's HMAC of it was verified.
    pub user_id: Option<String>,
    pub created_ms: i64,
    pub last_seen_ms: i64,
    pub page_url: String,
    pub user_agent: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Open,
    InProgress,
    Resolved,
    Closed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::InProgress => "in_progress",
            Status::Resolved => "resolved",
            Status::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        [
            Status::Open,
            Status::InProgress,
            Status::Resolved,
            Status::Closed,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }

    /// Still waiting on the team.
    pub fn is_active(self) -> bool {
        matches!(self, Status::Open | Status::InProgress)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Urgent,
    High,
    Normal,
    Low,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Urgent => "urgent",
            Priority::High => "high",
            Priority::Normal => "normal",
            Priority::Low => "low",
        }
    }

    pub fn parse(s: &str) -> Option<Priority> {
        [
            Priority::Urgent,
            Priority::High,
            Priority::Normal,
            Priority::Low,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

/// Where a conversation came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Chat,
    /// The widget's offline form: replies go out by email.
    Email,
    Api,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Conversation {
    pub id: u64,
    pub site_id: u64,
    pub visitor_id: u64,
    pub channel: Channel,
    pub status: Status,
    pub priority: Priority,
    /// Agent user id.
    pub assignee: Option<u64>,
    pub subject: String,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// The last sequence number issued in this conversation.
    pub last_seq: u64,
    pub first_reply_ms: Option<i64>,
    pub resolved_ms: Option<i64>,
    pub reopened: u32,
    /// The newest visible message, for inbox lists.
    pub preview: String,
    /// Tracked as a support ticket (email and API conversations are; a chat becomes one).
    pub ticket: bool,
    /// SLA targets already reported as breached: 1 first response, 2 resolution.
    pub sla_breached: u8,
}

/// Who wrote an entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Author {
    /// "visitor", "agent" or "system".
    pub kind: String,
    pub id: u64,
    pub name: String,
}

impl Author {
    pub fn system() -> Author {
        Author {
            kind: "system".into(),
            id: 0,
            name: "Hearth".into(),
        }
    }
}

/// A file shared in a conversation (stored under `<data_dir>/chat-uploads/<id>`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Attachment {
    /// 32 hex characters.
    pub id: String,
    pub name: String,
    pub content_type: String,
    pub size: u64,
}

/// One durable, sequenced entry of a conversation: a message or an activity (status change,
/// assignment). Private entries (notes) are never sent to the visitor.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    pub seq: u64,
    /// "message.created", "conversation.status", "conversation.assigned".
    pub kind: String,
    pub time_ms: i64,
    pub author: Author,
    pub body: String,
    pub private: bool,
    pub client_msg_id: Option<String>,
    pub attachment: Option<Attachment>,
}

impl Entry {
    pub fn is_message(&self) -> bool {
        self.kind == "message.created"
    }

    /// The wire frame for this entry (`{"t":"ev",...}`).
    pub fn frame(&self, conv: u64) -> serde_json::Value {
        serde_json::json!({
            "t": "ev",
            "conv": conv,
            "seq": self.seq,
            "type": self.kind,
            "data": self.view(),
        })
    }

    pub fn view(&self) -> serde_json::Value {
        serde_json::json!({
            "seq": self.seq,
            "kind": self.kind,
            "time_ms": self.time_ms,
            "author": {"kind": self.author.kind, "id": self.author.id, "name": self.author.name},
            "body": self.body,
            "private": self.private,
            "client_msg_id": self.client_msg_id,
            "attachment": self.attachment,
        })
    }
}

/// A visitor's rating of one resolution.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Csat {
    pub conversation_id: u64,
    pub rating: u8,
    pub comment: String,
    /// The agent credited (the assignee at resolution).
    pub agent: Option<u64>,
    pub time_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Canned {
    pub id: u64,
    /// Without the slash: "greeting".
    pub shortcut: String,
    pub title: String,
    pub body: String,
    pub created_ms: i64,
}
