//! Uptime tables and the stored monitor.
//!
//! Monitors, states and status changes hold internally tagged enums (check kinds, maintenance
//! windows), which postcard cannot decode, so they are JSON behind a version byte (as in
//! alerts). Results and rollup buckets, the rows that grow, are postcard through
//! [`crate::store::codec`].

use jiff::{SignedDuration, Timestamp};
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::checks::CheckSpec;
use super::conditions::{self, Condition, ConditionSpec};
use super::heartbeat::{HeartbeatPolicy, RecordKind};
use super::maintenance::Window;
use super::monitor::{Beat, Policy};
use super::queue::DueQueue;
use super::rollup::{Bucket, Resolution};
use super::schedule::MIN_INTERVAL;
use crate::store::{StoreError, StoreResult};

/// id → json(Monitor)
pub const MONITORS: TableDefinition<u64, &[u8]> = TableDefinition::new("uptime_monitors");
/// slug → id
pub const SLUGS: TableDefinition<&str, u64> = TableDefinition::new("uptime_slugs");
/// id → json(HeartbeatState): active monitors use its `monitor` part only.
pub const STATE: TableDefinition<u64, &[u8]> = TableDefinition::new("uptime_state");
/// (id, checked at ms) → codec(ResultRow)
pub const RESULTS: TableDefinition<(u64, i64), &[u8]> = TableDefinition::new("uptime_results");
/// (id, resolution, bucket start ms) → codec(RollupRow)
pub const ROLLUPS: TableDefinition<(u64, u8, i64), &[u8]> = TableDefinition::new("uptime_rollups");
/// (id, at ms) → json(rollup::Change): the status changes incidents are built from.
pub const CHANGES: TableDefinition<(u64, i64), &[u8]> = TableDefinition::new("uptime_changes");
/// ping id → monitor id (heartbeat monitors)
pub const PINGS: TableDefinition<&str, u64> = TableDefinition::new("uptime_pings");
/// (project id, Sentry monitor slug) → monitor id (Sentry cron monitors)
pub const SENTRY: TableDefinition<(u64, &str), u64> = TableDefinition::new("uptime_sentry");
/// name → ms: `alive`, the last time the process is known to have run.
pub const META: TableDefinition<&str, i64> = TableDefinition::new("uptime_meta");
/// monitor id → notAfter (ms) of the certificate already warned about
pub const TLS_WARNED: TableDefinition<u64, i64> = TableDefinition::new("uptime_tls_warned");
/// (monitor id, incident start ms, update at ms) → json(IncidentUpdate): human updates
pub const INCIDENT_UPDATES: TableDefinition<(u64, i64, i64), &[u8]> =
    TableDefinition::new("uptime_incident_updates");
/// counter name → last issued id
pub const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("uptime_counters");
/// When each monitor is next due (checked, or its heartbeat judged).
pub const DUE: DueQueue = DueQueue::new("uptime_due", "uptime_due_by_monitor");

pub fn ensure_tables(txn: &WriteTransaction) -> StoreResult<()> {
    txn.open_table(MONITORS)?;
    txn.open_table(SLUGS)?;
    txn.open_table(STATE)?;
    txn.open_table(RESULTS)?;
    txn.open_table(ROLLUPS)?;
    txn.open_table(CHANGES)?;
    txn.open_table(COUNTERS)?;
    txn.open_table(PINGS)?;
    txn.open_table(SENTRY)?;
    txn.open_table(META)?;
    txn.open_table(super::pages::PAGES)?;
    txn.open_table(TLS_WARNED)?;
    txn.open_table(INCIDENT_UPDATES)?;
    DUE.ensure(txn)?;
    Ok(())
}

const V1: u8 = 1;

pub fn encode_json<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = vec![V1];
    serde_json::to_writer(&mut out, v).expect("JSON into Vec");
    out
}

pub fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
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

/// A monitor as stored and as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Monitor {
    pub id: u64,
    /// Names the bus subjects (`monitor.<slug>.down`) and alert rules; lowercase letters,
    /// digits, `-` and `_`.
    pub slug: String,
    pub name: String,
    /// What an active monitor checks (http, tcp, tls, dns); `None` for heartbeats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckSpec>,
    /// A heartbeat or cron monitor: when signals are expected; `None` for active checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<HeartbeatPolicy>,
    /// The secret id of the ping URLs (`/ping/<id>`, `/api/push/<id>`) of a heartbeat monitor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ping_id: Option<String>,
    /// A Sentry cron monitor: the project and the SDK's monitor slug.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sentry: Option<SentryRef>,
    /// Time between checks (active monitors).
    #[serde(with = "super::duration_text")]
    pub interval: SignedDuration,
    pub conditions: Vec<ConditionSpec>,
    pub failure_threshold: u32,
    pub success_threshold: u32,
    /// Remind every N failing checks while down.
    pub reminder_every: Option<u32>,
    /// The slug of a parent monitor: while it is down, this one records but does not notify.
    pub parent: Option<String>,
    pub maintenance: Vec<Window>,
    /// The status page group it is shown in, if any.
    pub group: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentryRef {
    pub project_id: u64,
    pub monitor_slug: String,
}

/// Longest interval between checks.
pub const MAX_INTERVAL: SignedDuration = SignedDuration::from_hours(24);
/// Conditions per monitor.
pub const MAX_CONDITIONS: usize = 32;
/// Maintenance windows per monitor.
pub const MAX_WINDOWS: usize = 32;
pub const MAX_NAME: usize = 200;
pub const MAX_SLUG: usize = 64;

/// Why a monitor cannot be saved: the field, the message and, for conditions and schedules,
/// the byte position in that field's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub code: &'static str,
    pub field: String,
    pub message: String,
    pub position: Option<usize>,
}

impl Invalid {
    pub fn field(field: &str, message: impl Into<String>) -> Invalid {
        Invalid {
            code: "bad_request",
            field: field.to_string(),
            message: message.into(),
            position: None,
        }
    }
}

pub fn valid_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_SLUG
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// A slug from a name: lowercase ASCII letters and digits, other runs become `-`.
pub fn slugify(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
        if out.len() >= MAX_SLUG {
            break;
        }
    }
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() {
        "monitor".into()
    } else {
        out
    }
}

/// A monitor parsed for use: conditions compiled, thresholds gathered.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub monitor: Monitor,
    pub conditions: Vec<Condition>,
    pub policy: Policy,
}

impl Monitor {
    pub fn policy(&self) -> Policy {
        if let Some(hb) = &self.heartbeat {
            return hb.thresholds;
        }
        Policy {
            failure_threshold: self.failure_threshold,
            success_threshold: self.success_threshold,
            reminder_every: self.reminder_every,
        }
    }

    /// Checks everything about a monitor that does not need the database.
    pub fn compile(&self) -> Result<Compiled, Invalid> {
        let name = self.name.trim();
        if name.is_empty() || name.len() > MAX_NAME {
            return Err(Invalid::field(
                "name",
                format!("name must be 1 to {MAX_NAME} bytes"),
            ));
        }
        if !valid_slug(&self.slug) {
            return Err(Invalid::field(
                "slug",
                format!(
                    "slug must be 1 to {MAX_SLUG} lowercase letters, digits, '-' or '_' (it names the bus subject monitor.<slug>.down)"
                ),
            ));
        }
        match (&self.check, &self.heartbeat) {
            (Some(check), None) => check
                .validate()
                .map_err(|m| Invalid::field("check", format!("check: {m}")))?,
            (None, Some(hb)) => hb
                .validate()
                .map_err(|m| Invalid::field("heartbeat", format!("heartbeat: {m}")))?,
            _ => {
                return Err(Invalid::field(
                    "check",
                    "give either check (an active http, tcp, tls or dns check) or heartbeat (a schedule the monitored job pings on)",
                ));
            }
        }
        if self.interval < MIN_INTERVAL || self.interval > MAX_INTERVAL {
            return Err(Invalid::field(
                "interval",
                "interval must be between 1s and 24h",
            ));
        }
        if self.conditions.len() > MAX_CONDITIONS {
            return Err(Invalid::field(
                "conditions",
                format!("at most {MAX_CONDITIONS} conditions"),
            ));
        }
        let conditions = conditions::parse_all(&self.conditions).map_err(|(i, e)| Invalid {
            code: conditions::ConditionError::CODE,
            field: format!("conditions[{i}]"),
            message: format!(
                "conditions[{i}] '{}': {} at byte {}",
                self.conditions[i].condition, e.message, e.position
            ),
            position: Some(e.position),
        })?;
        let policy = self.policy();
        policy
            .validate()
            .map_err(|m| Invalid::field("failure_threshold", m))?;
        if let Some(p) = &self.parent
            && (!valid_slug(p) || *p == self.slug)
        {
            return Err(Invalid::field(
                "parent",
                "parent must be the slug of another monitor",
            ));
        }
        if self.maintenance.len() > MAX_WINDOWS {
            return Err(Invalid::field(
                "maintenance",
                format!("at most {MAX_WINDOWS} maintenance windows"),
            ));
        }
        for (i, w) in self.maintenance.iter().enumerate() {
            w.validate()
                .map_err(|m| Invalid::field(&format!("maintenance[{i}]"), m))?;
        }
        if let Some(g) = &self.group
            && !valid_slug(g)
        {
            return Err(Invalid::field(
                "group",
                "group must be 1 to 64 lowercase letters, digits, '-' or '_'",
            ));
        }
        Ok(Compiled {
            monitor: self.clone(),
            conditions,
            policy,
        })
    }
}

/// One stored check result (the monitor and time are the key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultRow {
    /// Active checks: how the check counted.
    pub beat: Option<Beat>,
    /// Heartbeats: what the record is (success, failure, started, missed, unknown, ...).
    pub record: Option<RecordKind>,
    pub response_ms: Option<u32>,
    pub status: Option<u16>,
    /// Why it failed (the first failing criterion or condition), empty when up.
    pub error: Option<String>,
}

/// A rollup bucket without its start (which is in the key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollupRow {
    pub up: u32,
    pub down: u32,
    pub unknown: u32,
    pub maintenance: u32,
    pub rt_count: u32,
    pub rt_sum_ms: u64,
    pub rt_min_ms: u32,
    pub rt_max_ms: u32,
}

impl RollupRow {
    pub fn from_bucket(b: &Bucket) -> RollupRow {
        RollupRow {
            up: b.up,
            down: b.down,
            unknown: b.unknown,
            maintenance: b.maintenance,
            rt_count: b.rt_count,
            rt_sum_ms: b.rt_sum_ms,
            rt_min_ms: b.rt_min_ms,
            rt_max_ms: b.rt_max_ms,
        }
    }

    pub fn into_bucket(self, start: Timestamp) -> Bucket {
        Bucket {
            start,
            up: self.up,
            down: self.down,
            unknown: self.unknown,
            maintenance: self.maintenance,
            rt_count: self.rt_count,
            rt_sum_ms: self.rt_sum_ms,
            rt_min_ms: self.rt_min_ms,
            rt_max_ms: self.rt_max_ms,
        }
    }
}

pub fn resolution_code(r: Resolution) -> u8 {
    match r {
        Resolution::Minute => 0,
        Resolution::Hour => 1,
        Resolution::Day => 2,
    }
}

pub fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

pub fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Reads the buckets of one monitor at one resolution from `from_ms` on.
pub fn read_buckets(
    table: &impl ReadableTable<(u64, u8, i64), &'static [u8]>,
    id: u64,
    resolution: Resolution,
    from_ms: i64,
) -> StoreResult<Vec<Bucket>> {
    let code = resolution_code(resolution);
    let mut out = Vec::new();
    for entry in table.range((id, code, from_ms)..=(id, code, i64::MAX))? {
        let (k, v) = entry?;
        let row: RollupRow = crate::store::codec::decode(v.value())?;
        out.push(row.into_bucket(ts(k.value().2)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_come_from_names() {
        assert_eq!(slugify("API — health (EU)"), "api-health-eu");
        assert_eq!(slugify("!!!"), "monitor");
        assert!(valid_slug("api-health_2"));
        assert!(!valid_slug("Api"));
        assert!(!valid_slug("a.b"));
    }
}
