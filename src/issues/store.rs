//! issues tables. Keys are big-endian integers and tuples so ranges come out in id/time order.

use redb::{ReadableTable, TableDefinition, WriteTransaction};

use crate::store::StoreResult;

/// issue id → `Issue` (codec).
pub const ISSUES: TableDefinition<u64, &[u8]> = TableDefinition::new("issues_issues");
/// (project id, issue id) → () : a project's issues.
pub const BY_PROJECT: TableDefinition<(u64, u64), ()> = TableDefinition::new("issues_by_project");
/// (project id, grouping hash) → issue id.
pub const BY_HASH: TableDefinition<(u64, &str), u64> = TableDefinition::new("issues_by_hash");
/// (project id, grouping hash) → deleted-at ms: future events with this hash are discarded.
pub const DISCARDED: TableDefinition<(u64, &str), i64> = TableDefinition::new("issues_discarded");
/// (issue id, event seq) → `StoredEvent` (codec; payload zstd JSON inside).
pub const EVENTS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("issues_events");
/// issue id → zstd(JSON) of the issue's reference event: the issue's later events are stored
/// compressed against it (see `codec::compress_json_against`). Kept while the issue exists.
pub const REFERENCES: TableDefinition<u64, &[u8]> = TableDefinition::new("issues_references");
/// event id (32 hex) → (issue id, event seq).
pub const EVENT_IDS: TableDefinition<&str, (u64, u64)> = TableDefinition::new("issues_event_ids");
/// (issue id, user key) → () : distinct users per issue.
pub const ISSUE_USERS: TableDefinition<(u64, &str), ()> =
    TableDefinition::new("issues_issue_users");
/// (project id, user key) → () : distinct users per project.
pub const PROJECT_USERS: TableDefinition<(u64, &str), ()> =
    TableDefinition::new("issues_project_users");
/// (issue id, tag key, tag value) → count.
pub const TAGS: TableDefinition<(u64, &str, &str), u64> = TableDefinition::new("issues_tags");
/// (project id, hour start ms) → events.
pub const PROJECT_HOURLY: TableDefinition<(u64, i64), u64> =
    TableDefinition::new("issues_project_hourly");
/// (issue id, hour start ms) → events (sparklines).
pub const ISSUE_HOURLY: TableDefinition<(u64, i64), u64> =
    TableDefinition::new("issues_issue_hourly");
/// project id → total events ever accepted.
pub const PROJECT_TOTALS: TableDefinition<u64, u64> = TableDefinition::new("issues_project_totals");
/// (issue id, n) → `HistoryEntry` (codec).
pub const HISTORY: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("issues_history");
/// (issue id, comment id) → `Comment` (codec).
pub const COMMENTS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("issues_comments");
/// counter name → last value.
pub const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("issues_counters");

pub fn ensure_tables(txn: &WriteTransaction) -> StoreResult<()> {
    txn.open_table(ISSUES)?;
    txn.open_table(BY_PROJECT)?;
    txn.open_table(BY_HASH)?;
    txn.open_table(DISCARDED)?;
    txn.open_table(EVENTS)?;
    txn.open_table(EVENT_IDS)?;
    txn.open_table(REFERENCES)?;
    txn.open_table(ISSUE_USERS)?;
    txn.open_table(PROJECT_USERS)?;
    txn.open_table(TAGS)?;
    txn.open_table(PROJECT_HOURLY)?;
    txn.open_table(ISSUE_HOURLY)?;
    txn.open_table(PROJECT_TOTALS)?;
    txn.open_table(HISTORY)?;
    txn.open_table(COMMENTS)?;
    txn.open_table(COUNTERS)?;
    Ok(())
}

/// Takes the next value of counter `name` (1, 2, ...).
pub fn next_id(txn: &WriteTransaction, name: &str) -> StoreResult<u64> {
    crate::store::next_counter(txn, COUNTERS, name)
}

/// Reserves `n` consecutive ids of counter `name`; returns the first.
pub fn reserve_ids(txn: &WriteTransaction, name: &str, n: u64) -> StoreResult<u64> {
    let mut t = txn.open_table(COUNTERS)?;
    let first = t.get(name)?.map(|v| v.value()).unwrap_or(0) + 1;
    t.insert(name, first + n - 1)?;
    Ok(first)
}
