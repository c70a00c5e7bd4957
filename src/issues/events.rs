//! The bus subjects `issues` publishes, and their payloads as consumers read them.
//!
//! The JSON on the wire is what `issues` writes today; these structs name its fields so a
//! consumer reads one field by one name instead of guessing. (The `event.stored` writer keeps
//! its borrowed form in `issues/mod.rs`; [`EventStored`] is the part of it consumers read.)

use serde::{Deserialize, Serialize};

/// A new issue: `{project_id, issue_id, title, culprit, level, event_id, release, environment}`.
pub const ISSUE_CREATED: &str = "issue.created";
/// An issue came back: the [`IssueStateChanged`] payload with `to: "regressed"`.
pub const ISSUE_REGRESSED: &str = "issue.regressed";
/// An issue's status moved, by an event or by a user: [`IssueStateChanged`].
pub const ISSUE_STATE_CHANGED: &str = "issue.state_changed";
/// An issue was deleted.
pub const ISSUE_DELETED: &str = "issue.deleted";
/// An event was stored in an issue: [`EventStored`].
pub const EVENT_STORED: &str = "event.stored";

/// `issue.state_changed` and `issue.regressed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IssueStateChanged {
    pub project_id: u64,
    pub issue_id: u64,
    pub title: String,
    /// The status before, `unresolved`, `resolved`, `resolved_in_next_release`, `muted`, ...
    pub from: String,
    /// The status after.
    pub to: String,
    /// The user who changed it; `None` when an event did.
    pub user_id: Option<u64>,
    /// The event that changed it (event-driven changes only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
}

/// `event.stored`, the fields a consumer may rely on: the issue, and its title when known.
/// The writer (`EventStored` in `issues/mod.rs`, which borrows from the event) also sends
/// `seq`, `event_id`, `received_ms`, `new_issue`, `level`, `release`, `environment` and
/// `tags` (the facts alert filters read); the search text goes to the indexer directly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventStored {
    pub project_id: u64,
    pub issue_id: u64,
    #[serde(default)]
    pub title: String,
}
