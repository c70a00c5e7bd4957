//! Tables for the envelope items that are not error events.

use redb::{TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::store::StoreResult;

/// (project id, seq) → `TransactionRow` (codec): performance transactions, stored compressed.
pub const TRANSACTIONS: TableDefinition<(u64, u64), &[u8]> =
    TableDefinition::new("ingest_transactions");
/// (project id, release) → `ReleaseHealth` (codec).
pub const RELEASE_HEALTH: TableDefinition<(u64, &str), &[u8]> =
    TableDefinition::new("ingest_release_health");
/// (project id, reason, category) → quantity discarded client-side.
pub const CLIENT_REPORTS: TableDefinition<(u64, &str, &str), u64> =
    TableDefinition::new("ingest_client_reports");
/// (project id, monitor slug) → `Monitor` (codec).
pub const MONITORS: TableDefinition<(u64, &str), &[u8]> = TableDefinition::new("ingest_monitors");
/// (project id, monitor slug, check-in id) → `CheckIn` (codec).
pub const CHECK_INS: TableDefinition<(u64, &str, &str), &[u8]> =
    TableDefinition::new("ingest_check_ins");
/// (project id, seq) → `Feedback` (codec).
pub const FEEDBACK: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("ingest_feedback");
/// (event id, index) → `Attachment` (codec).
pub const ATTACHMENTS: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("ingest_attachments");
/// counter name → last value.
pub const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("ingest_counters");

pub fn ensure_tables(txn: &WriteTransaction) -> StoreResult<()> {
    txn.open_table(TRANSACTIONS)?;
    txn.open_table(RELEASE_HEALTH)?;
    txn.open_table(CLIENT_REPORTS)?;
    txn.open_table(MONITORS)?;
    txn.open_table(CHECK_INS)?;
    txn.open_table(FEEDBACK)?;
    txn.open_table(ATTACHMENTS)?;
    txn.open_table(COUNTERS)?;
    Ok(())
}

pub fn next_id(txn: &WriteTransaction, name: &str) -> StoreResult<u64> {
    crate::store::next_counter(txn, COUNTERS, name)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TransactionRow {
    pub event_id: String,
    pub name: String,
    pub op: Option<String>,
    pub duration_ms: Option<f64>,
    pub span_count: u64,
    pub received_ms: i64,
    /// zstd(JSON)
    pub payload: Vec<u8>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReleaseHealth {
    /// Sessions started (`init: true`, or aggregate buckets).
    pub sessions: u64,
    /// Sessions that ended without error.
    pub exited: u64,
    /// Sessions that saw at least one error.
    pub errored: u64,
    pub crashed: u64,
    pub abnormal: u64,
    pub last_seen_ms: i64,
    pub environments: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Monitor {
    pub slug: String,
    /// `monitor_config` as the SDK sent it (JSON text).
    pub config: Option<String>,
    pub last_status: String,
    pub last_check_in_ms: i64,
    pub created_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckIn {
    pub check_in_id: String,
    pub status: String,
    pub duration_s: Option<f64>,
    pub started_ms: i64,
    pub updated_ms: i64,
    pub environment: Option<String>,
    pub release: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Feedback {
    pub id: u64,
    /// `user_report` (legacy) or `feedback`.
    pub kind: String,
    pub event_id: Option<String>,
    pub issue_id: Option<u64>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub message: String,
    pub url: Option<String>,
    pub received_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attachment {
    pub project_id: u64,
    pub filename: String,
    pub content_type: Option<String>,
    pub attachment_type: Option<String>,
    /// Size as sent; `data` holds at most `[ingest] max_attachment_size` of it.
    pub size: u64,
    pub truncated: bool,
    pub data: Vec<u8>,
}
