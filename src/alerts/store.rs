//! Alerts tables.
//!
//! Rules, channels and history hold internally tagged enums (`{"type": "issue_created"}`),
//! which postcard cannot decode, so their values are JSON behind the same kind of version byte
//! as [`crate::store::codec`].

use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::store::{StoreError, StoreResult};

/// id → json(Rule)
pub const RULES: TableDefinition<u64, &[u8]> = TableDefinition::new("alerts_rules");
/// id → json(Channel)
pub const CHANNELS: TableDefinition<u64, &[u8]> = TableDefinition::new("alerts_channels");
/// id → json(Fired)
pub const HISTORY: TableDefinition<u64, &[u8]> = TableDefinition::new("alerts_history");
/// (rule id, throttle key) → last fired ms
pub const THROTTLE: TableDefinition<(u64, &str), i64> = TableDefinition::new("alerts_throttle");
/// bus event id (UUIDv7 hex, so time-ordered) → () : events already evaluated.
pub const PROCESSED: TableDefinition<&str, ()> = TableDefinition::new("alerts_processed");
/// (day since epoch, metric) → count: issues_created, issues_resolved, issues_regressed, events.
pub const DAILY: TableDefinition<(i64, &str), u64> = TableDefinition::new("alerts_daily");
/// (day since epoch, issue id) → events that day
pub const DAILY_ISSUES: TableDefinition<(i64, u64), u64> =
    TableDefinition::new("alerts_daily_issues");
/// issue id → last known title
pub const ISSUE_TITLES: TableDefinition<u64, &str> = TableDefinition::new("alerts_issue_titles");
/// counter name → last issued id
pub const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("alerts_counters");

pub fn ensure_tables(txn: &WriteTransaction) -> StoreResult<()> {
    txn.open_table(RULES)?;
    txn.open_table(CHANNELS)?;
    txn.open_table(HISTORY)?;
    txn.open_table(THROTTLE)?;
    txn.open_table(PROCESSED)?;
    txn.open_table(DAILY)?;
    txn.open_table(DAILY_ISSUES)?;
    txn.open_table(ISSUE_TITLES)?;
    txn.open_table(COUNTERS)?;
    Ok(())
}

const V1: u8 = 1;

pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = vec![V1];
    serde_json::to_writer(&mut out, v).expect("JSON into Vec");
    out
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&V1, rest)) => {
            serde_json::from_slice(rest).map_err(|e| StoreError::Codec(e.to_string()))
        }
        Some((v, _)) => Err(StoreError::Codec(format!("unknown value version {v}"))),
        None => Err(StoreError::Codec("empty value".into())),
    }
}

pub fn next_id(txn: &WriteTransaction, counter: &str) -> StoreResult<u64> {
    crate::store::next_counter(txn, COUNTERS, counter)
}

pub fn bump_daily(txn: &WriteTransaction, day: i64, metric: &str, n: u64) -> StoreResult<()> {
    let mut t = txn.open_table(DAILY)?;
    let cur = t.get((day, metric))?.map(|v| v.value()).unwrap_or(0);
    t.insert((day, metric), cur + n)?;
    Ok(())
}
