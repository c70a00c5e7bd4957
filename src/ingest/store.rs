//! Tables for the envelope items that are not error events.

use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::store::{StoreResult, codec};

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
/// (project id, UTC day start ms) → attachment bytes (as sent) stored for the project that day,
/// for `[ingest] max_attachment_bytes_per_project_per_day`.
pub const ATTACHMENT_BYTES: TableDefinition<(u64, i64), u64> =
    TableDefinition::new("ingest_attachment_bytes");
/// (project id, session id) → `SessionState` (codec): the worst state each open session has
/// been counted in, so that an update moves it between counts instead of counting it again.
pub const SESSION_STATES: TableDefinition<(u64, &str), &[u8]> =
    TableDefinition::new("ingest_session_states");
/// (project id, UTC day start ms, reason, category) → quantity: client reports (and items
/// Hearth counts without storing) by day, so retention can prune them. Rows of the older
/// [`CLIENT_REPORTS`] table (0.1.0) are still read and kept.
pub const CLIENT_REPORTS_DAILY: TableDefinition<(u64, i64, &str, &str), u64> =
    TableDefinition::new("ingest_client_reports_daily");
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
    txn.open_table(ATTACHMENT_BYTES)?;
    txn.open_table(SESSION_STATES)?;
    txn.open_table(CLIENT_REPORTS_DAILY)?;
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

/// First byte of an attachment row written by [`encode_attachment`]; rows of 0.1.0 start with
/// the codec's version byte (1) and hold the data uncompressed.
const ATTACHMENT_ZSTD: u8 = 0xA2;

/// An attachment as stored since 0.2: the data zstd-compressed, with the time it arrived (for
/// retention of attachments whose event never arrived).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompressedAttachment {
    pub project_id: u64,
    pub filename: String,
    pub content_type: Option<String>,
    pub attachment_type: Option<String>,
    /// Size as sent; the data holds at most `[ingest] max_attachment_size` of it.
    pub size: u64,
    pub truncated: bool,
    pub received_ms: i64,
    /// Bytes kept (before compression).
    pub stored: u64,
    /// zstd of the kept bytes.
    pub zstd: Vec<u8>,
}

impl CompressedAttachment {
    pub fn new(meta: Attachment, received_ms: i64) -> Self {
        CompressedAttachment {
            project_id: meta.project_id,
            filename: meta.filename,
            content_type: meta.content_type,
            attachment_type: meta.attachment_type,
            size: meta.size,
            truncated: meta.truncated,
            received_ms,
            stored: meta.data.len() as u64,
            zstd: compress(&meta.data),
        }
    }
}

/// Attachments compress well (logs, view hierarchies, minidumps); level 3 costs ~1 ms per MB.
pub fn compress(data: &[u8]) -> Vec<u8> {
    zstd::bulk::compress(data, 3).expect("zstd compress into memory")
}

/// A stored attachment row, either format.
pub enum AttachmentRow {
    Plain(Attachment),
    Compressed(CompressedAttachment),
}

impl AttachmentRow {
    pub fn project_id(&self) -> u64 {
        match self {
            AttachmentRow::Plain(a) => a.project_id,
            AttachmentRow::Compressed(a) => a.project_id,
        }
    }
    pub fn size(&self) -> u64 {
        match self {
            AttachmentRow::Plain(a) => a.size,
            AttachmentRow::Compressed(a) => a.size,
        }
    }
    pub fn received_ms(&self) -> Option<i64> {
        match self {
            AttachmentRow::Plain(_) => None,
            AttachmentRow::Compressed(a) => Some(a.received_ms),
        }
    }
    /// Metadata as the API lists it.
    pub fn meta(&self) -> (&str, Option<&str>, Option<&str>, u64, bool) {
        match self {
            AttachmentRow::Plain(a) => (
                &a.filename,
                a.content_type.as_deref(),
                a.attachment_type.as_deref(),
                a.size,
                a.truncated,
            ),
            AttachmentRow::Compressed(a) => (
                &a.filename,
                a.content_type.as_deref(),
                a.attachment_type.as_deref(),
                a.size,
                a.truncated,
            ),
        }
    }
    pub fn filename(&self) -> &str {
        self.meta().0
    }
    /// The stored bytes (decompressed).
    pub fn into_data(self) -> Result<Vec<u8>, crate::store::StoreError> {
        match self {
            AttachmentRow::Plain(a) => Ok(a.data),
            AttachmentRow::Compressed(a) => zstd::bulk::decompress(&a.zstd, a.stored as usize)
                .map_err(|e| crate::store::StoreError::Codec(e.to_string())),
        }
    }
}

pub fn encode_attachment(a: &CompressedAttachment) -> Vec<u8> {
    let mut out = vec![ATTACHMENT_ZSTD];
    out.extend_from_slice(&codec::encode(a));
    out
}

pub fn decode_attachment(bytes: &[u8]) -> StoreResult<AttachmentRow> {
    match bytes.split_first() {
        Some((&ATTACHMENT_ZSTD, rest)) => Ok(AttachmentRow::Compressed(codec::decode(rest)?)),
        _ => Ok(AttachmentRow::Plain(codec::decode(bytes)?)),
    }
}

/// The worst state a session was counted in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionState {
    pub release: String,
    /// 0 healthy, 1 errored, 2 abnormal, 3 crashed (the order of Sentry's release health).
    pub worst: u8,
    /// Counted as exited (ended healthy).
    pub exited: bool,
    pub updated_ms: i64,
}

pub const DAY_MS: i64 = 24 * 3600 * 1000;

pub fn day_of(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS) * DAY_MS
}

/// Removes what belongs to events that are gone: their attachments, and (when `issue` names
/// the deleted issue of `project_id`) the feedback stored against it. Called by issue deletion
/// and event retention in the same transaction that removes the events.
pub fn forget_events(
    txn: &WriteTransaction,
    project_id: u64,
    issue: Option<u64>,
    event_ids: &[String],
) -> StoreResult<()> {
    let mut t = txn.open_table(ATTACHMENTS)?;
    for eid in event_ids {
        t.retain_in((eid.as_str(), 0)..=(eid.as_str(), u64::MAX), |_, _| false)?;
    }
    if let Some(issue_id) = issue {
        let mut fb = txn.open_table(FEEDBACK)?;
        fb.retain_in((project_id, 0)..=(project_id, u64::MAX), |_, v| {
            codec::decode::<Feedback>(v).map_or(true, |f| f.issue_id != Some(issue_id))
        })?;
    }
    Ok(())
}

/// How long a session's state is kept after its last update (Sentry ends sessions idle for
/// longer than a day).
pub const SESSION_STATE_TTL_MS: i64 = 2 * DAY_MS;

/// An attachment whose event has not arrived after this long is removed.
pub const ORPHAN_ATTACHMENT_MS: i64 = DAY_MS;

/// Retention for the non-event items: transactions, check-ins, feedback and client reports
/// older than `cutoff_ms` (`[issues] max_event_age`), attachments whose event is gone, and the
/// bookkeeping rows of sessions and attachment quotas. Returns the rows removed.
pub fn prune(txn: &WriteTransaction, cutoff_ms: i64, now_ms: i64) -> StoreResult<u64> {
    #[derive(Deserialize)]
    struct TxHead<'a> {
        _event_id: &'a str,
        _name: &'a str,
        _op: Option<&'a str>,
        _duration_ms: Option<f64>,
        _span_count: u64,
        received_ms: i64,
    }
    let mut removed = 0u64;
    let mut count = |kept: bool| {
        if !kept {
            removed += 1;
        }
        kept
    };
    txn.open_table(TRANSACTIONS)?.retain(|_, v| {
        count(codec::decode_prefix::<TxHead>(v).map_or(true, |t| t.received_ms >= cutoff_ms))
    })?;
    txn.open_table(CHECK_INS)?.retain(|_, v| {
        count(codec::decode::<CheckIn>(v).map_or(true, |c| c.updated_ms >= cutoff_ms))
    })?;
    txn.open_table(FEEDBACK)?.retain(|_, v| {
        count(codec::decode::<Feedback>(v).map_or(true, |f| f.received_ms >= cutoff_ms))
    })?;
    let cutoff_day = day_of(cutoff_ms);
    txn.open_table(CLIENT_REPORTS_DAILY)?
        .retain(|k, _| count(k.1 >= cutoff_day))?;
    let day = day_of(now_ms);
    txn.open_table(ATTACHMENT_BYTES)?
        .retain(|k, _| k.1 >= day - DAY_MS)?;
    let stale = now_ms - SESSION_STATE_TTL_MS;
    txn.open_table(SESSION_STATES)?
        .retain(|_, v| codec::decode::<SessionState>(v).is_ok_and(|s| s.updated_ms >= stale))?;
    // Attachments: kept while their event is stored; one whose event never arrived is kept a
    // day (the event may come in a later envelope), then removed.
    let events = txn.open_table(crate::issues::store::EVENT_IDS)?;
    let mut doomed: Vec<(String, u64)> = Vec::new();
    {
        let t = txn.open_table(ATTACHMENTS)?;
        let mut last: Option<(String, bool)> = None;
        for row in t.iter()? {
            let (k, v) = row?;
            let (eid, n) = k.value();
            let known = match &last {
                Some((e, known)) if e == eid => *known,
                _ => {
                    let known = events.get(eid)?.is_some();
                    last = Some((eid.to_string(), known));
                    known
                }
            };
            if known {
                continue;
            }
            let young = decode_attachment(v.value())
                .ok()
                .and_then(|a| a.received_ms())
                .is_some_and(|at| at >= now_ms - ORPHAN_ATTACHMENT_MS && at >= cutoff_ms);
            if !young {
                doomed.push((eid.to_string(), n));
            }
        }
    }
    let mut t = txn.open_table(ATTACHMENTS)?;
    for (eid, n) in &doomed {
        t.remove((eid.as_str(), *n))?;
    }
    Ok(removed + doomed.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::ReadableTableMetadata;

    fn attachment(received_ms: i64) -> Vec<u8> {
        let meta = Attachment {
            project_id: 1,
            filename: "a.txt".into(),
            content_type: None,
            attachment_type: None,
            size: 5,
            truncated: false,
            data: b"hello".to_vec(),
        };
        encode_attachment(&CompressedAttachment::new(meta, received_ms))
    }

    #[test]
    fn retention_prunes_old_items_and_attachments_whose_event_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let db = redb::Database::create(dir.path().join("t.redb")).unwrap();
        let now = 100 * DAY_MS + 5_000;
        let cutoff = now - 10 * DAY_MS;
        let (old, young) = (cutoff - 1, cutoff + 1);
        let txn = db.begin_write().unwrap();
        ensure_tables(&txn).unwrap();
        {
            let row = |at| TransactionRow {
                event_id: "e".into(),
                name: "GET /".into(),
                op: None,
                duration_ms: None,
                span_count: 0,
                received_ms: at,
                payload: vec![],
            };
            let mut t = txn.open_table(TRANSACTIONS).unwrap();
            t.insert((1, 1), codec::encode(&row(old)).as_slice())
                .unwrap();
            t.insert((1, 2), codec::encode(&row(young)).as_slice())
                .unwrap();
            let mut t = txn.open_table(CLIENT_REPORTS_DAILY).unwrap();
            t.insert((1, day_of(old) - DAY_MS, "r", "error"), 3)
                .unwrap();
            t.insert((1, day_of(now), "r", "error"), 4).unwrap();
            let fb = |at| Feedback {
                id: 1,
                kind: "feedback".into(),
                event_id: None,
                issue_id: Some(7),
                name: None,
                email: None,
                message: "m".into(),
                url: None,
                received_ms: at,
            };
            let mut t = txn.open_table(FEEDBACK).unwrap();
            t.insert((1, 1), codec::encode(&fb(old)).as_slice())
                .unwrap();
            t.insert((1, 2), codec::encode(&fb(young)).as_slice())
                .unwrap();
            let ci = |at| CheckIn {
                check_in_id: "c".into(),
                status: "ok".into(),
                duration_s: None,
                started_ms: at,
                updated_ms: at,
                environment: None,
                release: None,
            };
            let mut t = txn.open_table(CHECK_INS).unwrap();
            t.insert((1, "m", "a"), codec::encode(&ci(old)).as_slice())
                .unwrap();
            t.insert((1, "m", "b"), codec::encode(&ci(young)).as_slice())
                .unwrap();
            let mut t = txn.open_table(ATTACHMENTS).unwrap();
            // The event is stored: kept whatever its age. Orphans: kept a day.
            t.insert(("stored", 0), attachment(old).as_slice()).unwrap();
            t.insert(("orphan-old", 0), attachment(now - 2 * DAY_MS).as_slice())
                .unwrap();
            t.insert(("orphan-new", 0), attachment(now - 1000).as_slice())
                .unwrap();
            txn.open_table(crate::issues::store::EVENT_IDS)
                .unwrap()
                .insert("stored", (1, 1))
                .unwrap();
        }
        let removed = prune(&txn, cutoff, now).unwrap();
        assert_eq!(removed, 5);
        let keys = |t: &redb::Table<(&str, u64), &[u8]>| -> Vec<String> {
            t.iter()
                .unwrap()
                .map(|r| r.unwrap().0.value().0.to_string())
                .collect()
        };
        assert_eq!(
            keys(&txn.open_table(ATTACHMENTS).unwrap()),
            ["orphan-new", "stored"]
        );
        assert_eq!(txn.open_table(TRANSACTIONS).unwrap().len().unwrap(), 1);
        assert_eq!(txn.open_table(FEEDBACK).unwrap().len().unwrap(), 1);
        assert_eq!(txn.open_table(CHECK_INS).unwrap().len().unwrap(), 1);
        assert_eq!(
            txn.open_table(CLIENT_REPORTS_DAILY).unwrap().len().unwrap(),
            1
        );
        // Deleting issue 7 takes its feedback and the attachments of its events.
        forget_events(&txn, 1, Some(7), &["stored".to_string()]).unwrap();
        assert_eq!(txn.open_table(FEEDBACK).unwrap().len().unwrap(), 0);
        assert_eq!(keys(&txn.open_table(ATTACHMENTS).unwrap()), ["orphan-new"]);
        // 0.1.0's rows (uncompressed) still read.
        let plain = codec::encode(&Attachment {
            project_id: 1,
            filename: "old.txt".into(),
            content_type: None,
            attachment_type: None,
            size: 3,
            truncated: false,
            data: b"abc".to_vec(),
        });
        let row = decode_attachment(&plain).unwrap();
        assert_eq!(row.received_ms(), None);
        assert_eq!(row.into_data().unwrap(), b"abc");
        let row = decode_attachment(&attachment(now)).unwrap();
        assert_eq!(row.into_data().unwrap(), b"hello");
    }
}
