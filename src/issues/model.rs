//! Issues, events, history and comments as stored and as the API shows them.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Unresolved,
    Resolved,
    /// Resolved; an event from a release other than the one current at resolution regresses it.
    ResolvedNextRelease,
    Muted,
    /// A resolved issue that saw a new event.
    Regressed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Unresolved => "unresolved",
            Status::Resolved => "resolved",
            Status::ResolvedNextRelease => "resolved_next_release",
            Status::Muted => "muted",
            Status::Regressed => "regressed",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "unresolved" => Status::Unresolved,
            "resolved" => Status::Resolved,
            "resolved_next_release" | "resolved_in_next_release" => Status::ResolvedNextRelease,
            "muted" | "ignored" | "archived" => Status::Muted,
            "regressed" => Status::Regressed,
            _ => return None,
        })
    }

    pub fn is_resolved(self) -> bool {
        matches!(self, Status::Resolved | Status::ResolvedNextRelease)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Issue {
    pub id: u64,
    pub project_id: u64,
    pub hash: String,
    pub fingerprint: Vec<String>,
    pub grouping_version: u32,
    pub title: String,
    pub culprit: String,
    pub level: String,
    pub status: Status,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    pub count: u64,
    pub user_count: u64,
    pub assignee_id: Option<u64>,
    /// The newest release an event carried.
    pub last_release: Option<String>,
    /// For `ResolvedNextRelease`: the release current when it was resolved.
    pub resolved_in_release: Option<String>,
    /// For `Muted`: unmute after this time.
    pub mute_until_ms: Option<i64>,
    /// For `Muted`: unmute after this many more events.
    pub mute_events_left: Option<u64>,
    pub last_event_id: String,
    /// Events currently stored (retention prunes; `count` keeps counting).
    pub stored_events: u64,
}

/// One event row: the summary the event list shows, plus the zstd-compressed JSON payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredEvent {
    pub event_id: String,
    pub project_id: u64,
    pub issue_id: u64,
    pub received_ms: i64,
    pub level: String,
    pub message: String,
    pub release: Option<String>,
    pub environment: Option<String>,
    pub user: Option<String>,
    /// zstd(JSON) of the normalised event, alone or against the issue's reference event
    /// (read it through `Issues`, which resolves the reference).
    pub payload: Vec<u8>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub at_ms: i64,
    /// `None` when the system did it (regression, unmute, first seen).
    pub user_id: Option<u64>,
    pub action: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comment {
    pub id: u64,
    pub user_id: u64,
    pub at_ms: i64,
    pub text: String,
}

/// A state change requested through the API.
#[derive(Debug, Clone, Deserialize)]
pub struct StatusChange {
    pub status: String,
    #[serde(default)]
    pub mute_until_ms: Option<i64>,
    #[serde(default)]
    pub mute_for_events: Option<u64>,
}
