//! Issues: grouping, events, states, comments, assignment, stats and retention.
//!
//! Events are written by ingest's group-commit writer through [`Issues::commit_events`], inside
//! the writer's transaction: the issue upsert, counters, state (regression, unmute), the event
//! row and the durable bus events all commit together or not at all.

pub mod api;
pub mod budget;
pub mod derived;
pub mod events;
pub mod grouping;
pub mod grouping_settings;
pub mod grouping_text;
pub mod grouping_v2;
pub mod model;
// The pruned JSON parser; `project` is its old name, kept until ingest and search use the new one.
pub use pruned_event as project;
pub mod pruned_event;
pub mod rules;
pub mod store;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use redb::{ReadTransaction, ReadableTable, WriteTransaction};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::app::AppState;
use crate::bus::{Bus, BusError, Priority};
use crate::config::Config;
use crate::http::error::ApiError;
use crate::store::{Db, StoreError, codec, now_ms};
pub use grouping::{GROUPING_VERSION, Grouped};
pub use model::{Comment, HistoryEntry, Issue, Status, StatusChange, StoredEvent};
use store::*;

pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 24 * HOUR_MS;

#[derive(Debug, thiserror::Error)]
pub enum IssuesError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
}

crate::impl_from_redb!(IssuesError);

impl From<IssuesError> for ApiError {
    fn from(e: IssuesError) -> Self {
        match e {
            IssuesError::NotFound(what) => ApiError::not_found(what),
            IssuesError::Invalid(m) => ApiError::bad_request(m),
            IssuesError::Conflict(m) => ApiError::new(crate::http::error::Code::Conflict, m),
            other => ApiError::internal(other),
        }
    }
}

/// An event ready to be committed: grouped, summarised and compressed by ingest.
#[derive(Debug, Clone)]
pub struct PreparedEvent {
    pub project_id: u64,
    pub event_id: String,
    pub grouped: Grouped,
    pub grouping_version: u32,
    /// While the project is in transition after a grouping upgrade: the event's hash on the
    /// previous version, which finds the issue when the current hash does not (yet).
    pub secondary_hash: Option<String>,
    /// zstd(JSON) of the event: alone, or against `reference`.
    pub payload: Vec<u8>,
    pub received_ms: i64,
    /// When `payload` was compressed against an issue's reference event: that issue's id and
    /// the reference document (JSON).
    pub reference: Option<(u64, Arc<codec::Reference>)>,
}

/// What happened to one event in [`Issues::commit_events`].
#[derive(Debug, Clone, PartialEq)]
pub enum EventOutcome {
    Stored {
        issue_id: u64,
        new_issue: bool,
    },
    /// The event id was already stored (an SDK retry): acknowledged, not stored twice.
    Duplicate,
    /// The issue was deleted with discard: dropped on purpose.
    Discarded,
}

#[derive(Default)]
struct Metrics {
    events_stored: AtomicU64,
    events_discarded: AtomicU64,
    events_duplicate: AtomicU64,
    events_against_reference: AtomicU64,
    issues_created: AtomicU64,
    regressions: AtomicU64,
    pruned: AtomicU64,
    /// Events removed to stay within `[storage] max_disk_bytes`.
    budget_pruned: AtomicU64,
}

#[derive(Clone, Default)]
pub struct Issues {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    db: Db,
    bus: Bus,
    config: Arc<Config>,
    metrics: Metrics,
    search: crate::search::Search,
    references: Mutex<References>,
    grouping: grouping_settings::Cache,
    /// The disk budget's 80% warning was sent and usage has not fallen back since.
    budget_warned: std::sync::atomic::AtomicBool,
}

/// Reference documents of recently seen issues, by (project id, grouping hash), so ingest can
/// compress a new event against its issue's reference before the writer assigns the issue.
#[derive(Default)]
struct References {
    /// (project id, grouping hash) → (issue id, its reference; `None` when too large to
    /// compress against, so its events stay alone).
    by_hash: HashMap<(u64, String), (u64, CachedReference)>,
    bytes: usize,
}

type CachedReference = Option<Arc<codec::Reference>>;

/// Bounds of the reference cache (the documents: 7.5 MB for 1,000 issues of 7.5 KB events),
/// and the largest event used as a reference.
const REFERENCES_MAX_BYTES: usize = 12 << 20;
const REFERENCE_MAX_DOC: usize = 64 << 10;

impl References {
    fn put(&mut self, key: (u64, String), issue_id: u64, doc: Vec<u8>) {
        let reference =
            (doc.len() <= REFERENCE_MAX_DOC).then(|| Arc::new(codec::Reference::new(doc)));
        let size = |r: &CachedReference| r.as_ref().map_or(64, |r| r.size());
        while self.bytes + size(&reference) > REFERENCES_MAX_BYTES {
            // Evict an arbitrary entry: a miss only costs one event stored without its reference.
            let Some(k) = self.by_hash.keys().next().cloned() else {
                break;
            };
            if let Some((_, r)) = self.by_hash.remove(&k) {
                self.bytes -= size(&r);
            }
        }
        self.bytes += size(&reference);
        if let Some((_, old)) = self.by_hash.insert(key, (issue_id, reference)) {
            self.bytes -= size(&old);
        }
    }
}

/// The issue as the list shows it.
#[derive(Debug, Clone, Serialize)]
pub struct IssueSummary {
    pub id: u64,
    pub project_id: u64,
    pub title: String,
    pub culprit: String,
    pub level: String,
    pub status: &'static str,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    pub count: u64,
    pub user_count: u64,
    pub assignee_id: Option<u64>,
    pub sparkline: Vec<u64>,
    // dash (issue 16): what the list shows to tell look-alike issues apart.
    /// The releases events carried, most events first (at most 3).
    pub releases: Vec<String>,
    /// The environment most events came from.
    pub environment: Option<String>,
    /// Whether any event had an unhandled exception (the derived `handled:no` tag).
    pub unhandled: bool,
    /// Events per day for the last 14 days, oldest first (the list's 14 d sparkline).
    pub sparkline_14d: Vec<u64>,
}

/// dash (issue 16): events per day for the last `days` days, oldest first.
fn daily_counts(
    txn: &ReadTransaction,
    issue_id: u64,
    now: i64,
    days: usize,
) -> Result<Vec<u64>, IssuesError> {
    let t = txn.open_table(ISSUE_HOURLY)?;
    let start = now.div_euclid(DAY_MS) * DAY_MS - (days as i64 - 1) * DAY_MS;
    let mut out = vec![0u64; days];
    for row in t.range((issue_id, start)..=(issue_id, now))? {
        let (k, v) = row?;
        let idx = ((k.value().1 - start) / DAY_MS) as usize;
        if idx < days {
            out[idx] += v.value();
        }
    }
    Ok(out)
}

/// dash (issue 16): an issue's tag values for `key`, most events first.
fn tag_values(
    txn: &ReadTransaction,
    issue_id: u64,
    key: &str,
) -> Result<Vec<(String, u64)>, IssuesError> {
    let t = txn.open_table(TAGS)?;
    let mut out = Vec::new();
    for row in t.range((issue_id, key, "")..=(issue_id, key, "\u{10FFFF}"))? {
        let (k, n) = row?;
        out.push((k.value().2.to_string(), n.value()));
    }
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(out)
}

/// Which issues to list.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Any of these statuses (empty = all).
    pub statuses: Vec<Status>,
    /// `Some(None)`: unassigned; `Some(Some(id))`: assigned to id.
    pub assigned: Option<Option<u64>>,
    /// Only these ids (from search), when set.
    pub ids: Option<HashSet<u64>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    LastSeen,
    FirstSeen,
    Events,
    Users,
}

impl Sort {
    pub fn parse(s: &str) -> Option<Sort> {
        Some(match s {
            "" | "last_seen" | "date" => Sort::LastSeen,
            "first_seen" | "new" => Sort::FirstSeen,
            "events" | "freq" => Sort::Events,
            "users" | "user" => Sort::Users,
            _ => return None,
        })
    }
}

fn hour_of(ms: i64) -> i64 {
    ms.div_euclid(HOUR_MS) * HOUR_MS
}

fn get_issue(txn: &ReadTransaction, id: u64) -> Result<Option<Issue>, IssuesError> {
    let t = txn.open_table(ISSUES)?;
    Ok(t.get(id)?.map(|v| codec::decode(v.value())).transpose()?)
}

fn get_issue_w(txn: &WriteTransaction, id: u64) -> Result<Option<Issue>, IssuesError> {
    let t = txn.open_table(ISSUES)?;
    Ok(t.get(id)?.map(|v| codec::decode(v.value())).transpose()?)
}

fn put_issue(txn: &WriteTransaction, issue: &Issue) -> Result<(), IssuesError> {
    txn.open_table(ISSUES)?
        .insert(issue.id, codec::encode(issue).as_slice())?;
    Ok(())
}

fn add_history(
    txn: &WriteTransaction,
    issue_id: u64,
    entry: &HistoryEntry,
) -> Result<(), IssuesError> {
    let mut t = txn.open_table(HISTORY)?;
    let n = t
        .range((issue_id, 0)..=(issue_id, u64::MAX))?
        .next_back()
        .transpose()?
        .map(|(k, _)| k.value().1 + 1)
        .unwrap_or(1);
    t.insert((issue_id, n), codec::encode(entry).as_slice())?;
    Ok(())
}

fn sparkline(txn: &ReadTransaction, issue_id: u64, now: i64) -> Result<Vec<u64>, IssuesError> {
    let t = txn.open_table(ISSUE_HOURLY)?;
    let end = hour_of(now);
    let start = end - 23 * HOUR_MS;
    let mut out = vec![0u64; 24];
    for row in t.range((issue_id, start)..=(issue_id, end))? {
        let (k, v) = row?;
        let idx = ((k.value().1 - start) / HOUR_MS) as usize;
        if idx < 24 {
            out[idx] += v.value();
        }
    }
    Ok(out)
}

pub fn summary(txn: &ReadTransaction, i: &Issue, now: i64) -> Result<IssueSummary, IssuesError> {
    Ok(IssueSummary {
        id: i.id,
        project_id: i.project_id,
        title: i.title.clone(),
        culprit: i.culprit.clone(),
        level: i.level.clone(),
        status: i.status.as_str(),
        first_seen_ms: i.first_seen_ms,
        last_seen_ms: i.last_seen_ms,
        count: i.count,
        user_count: i.user_count,
        assignee_id: i.assignee_id,
        sparkline: sparkline(txn, i.id, now)?,
        releases: tag_values(txn, i.id, "release")?
            .into_iter()
            .take(3)
            .map(|(v, _)| v)
            .collect(),
        environment: tag_values(txn, i.id, "environment")?
            .into_iter()
            .next()
            .map(|(v, _)| v),
        unhandled: tag_values(txn, i.id, "handled")?
            .iter()
            .any(|(v, _)| v == "no"),
        sparkline_14d: daily_counts(txn, i.id, now, 14)?,
    })
}

/// `event.stored`'s payload: ids and the facts alert filters read (the search text goes to the
/// indexer directly).
#[derive(Serialize)]
struct EventStored<'a> {
    project_id: u64,
    issue_id: u64,
    seq: u64,
    event_id: &'a str,
    received_ms: i64,
    new_issue: bool,
    title: &'a str,
    level: &'a str,
    release: Option<&'a str>,
    environment: Option<&'a str>,
    tags: TagMap<'a>,
}

/// Tags as a JSON object.
struct TagMap<'a>(&'a [(String, String)]);

impl Serialize for TagMap<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

/// The payload to store for `ev` in `issue_id`, keeping the issue's reference event in place:
/// an event compressed against its issue's reference is stored as it is (the reference row is
/// written if this is its first use); one compressed against another issue's reference (its
/// issue was deleted meanwhile) is recompressed alone; one compressed alone becomes the issue's
/// reference if it has none, and the cache learns the issue's reference either way.
fn stored_payload(
    inner: &Inner,
    references: &mut redb::Table<u64, &[u8]>,
    ev: &PreparedEvent,
    issue_id: u64,
) -> Result<Vec<u8>, IssuesError> {
    let alone = match &ev.reference {
        Some((rid, reference)) if *rid == issue_id => {
            if references.get(issue_id)?.is_none() {
                references.insert(issue_id, codec::compress_json(reference.doc()).as_slice())?;
            }
            inner
                .metrics
                .events_against_reference
                .fetch_add(1, Ordering::Relaxed);
            return Ok(ev.payload.clone());
        }
        Some((_, reference)) => codec::compress_json(&codec::decompress_json_against(
            &ev.payload,
            reference.doc(),
        )?),
        None => ev.payload.clone(),
    };
    let key = (ev.project_id, ev.grouped.hash.clone());
    let cached = inner
        .references
        .lock()
        .expect("references")
        .by_hash
        .get(&key)
        .is_some_and(|(id, _)| *id == issue_id);
    if !cached {
        let stored = references
            .get(issue_id)?
            .map(|v| codec::decompress_json(v.value()))
            .transpose()?;
        let doc = match stored {
            Some(doc) => doc,
            None => {
                references.insert(issue_id, alone.as_slice())?;
                codec::decompress_json(&alone)?
            }
        };
        inner
            .references
            .lock()
            .expect("references")
            .put(key, issue_id, doc);
    }
    Ok(alone)
}

/// The JSON of a stored event, through its issue's reference when it was stored against one.
/// `last` keeps the last reference read, as (issue id, document), for a caller that reads many
/// events of one issue in a row.
fn payload_json(
    references: &impl ReadableTable<u64, &'static [u8]>,
    e: &StoredEvent,
    last: &mut Option<(u64, Vec<u8>)>,
) -> Result<Vec<u8>, IssuesError> {
    if !codec::needs_reference(&e.payload) {
        return Ok(codec::decompress_json(&e.payload)?);
    }
    if last.as_ref().is_none_or(|(id, _)| *id != e.issue_id) {
        let reference = references
            .get(e.issue_id)?
            .ok_or_else(|| IssuesError::Invalid("stored event's reference is missing".into()))?;
        *last = Some((e.issue_id, codec::decompress_json(reference.value())?));
    }
    let (_, doc) = last.as_ref().expect("just set");
    Ok(codec::decompress_json_against(&e.payload, doc)?)
}

fn event_view(e: &StoredEvent) -> Value {
    json!({
        "event_id": e.event_id,
        "received_ms": e.received_ms,
        "message": e.message,
        "level": e.level,
        "release": e.release,
        "environment": e.environment,
        "user": e.user,
    })
}

impl Issues {
    pub fn new(db: Db, bus: Bus, config: Arc<Config>, search: crate::search::Search) -> Self {
        Issues {
            inner: Some(Arc::new(Inner {
                db,
                bus,
                config,
                metrics: Metrics::default(),
                search,
                references: Mutex::new(References::default()),
                grouping: grouping_settings::Cache::default(),
                budget_warned: std::sync::atomic::AtomicBool::new(false),
            })),
        }
    }

    /// Compresses an event for storage: against its issue's reference event when ingest has
    /// seen the issue (by project and grouping hash) since it started, else alone.
    pub fn compress_event(
        &self,
        project_id: u64,
        hash: &str,
        json: &[u8],
    ) -> (Vec<u8>, Option<(u64, Arc<codec::Reference>)>) {
        let found = self.inner.as_ref().and_then(|i| {
            i.references
                .lock()
                .expect("references")
                .by_hash
                .get(&(project_id, hash.to_string()))
                .cloned()
        });
        match found {
            Some((issue_id, Some(reference))) => (
                codec::compress_json_against(json, &reference),
                Some((issue_id, reference)),
            ),
            _ => (codec::compress_json(json), None),
        }
    }

    /// Groups an event for `project_id` on grouping `version` with the project's rules; also
    /// returns its hash on the previous version while the project is in transition.
    pub fn group(&self, project_id: u64, version: u32, event: &Value) -> (Grouped, Option<String>) {
        let Some(inner) = self.inner.as_ref() else {
            return (grouping::group(event, version), None);
        };
        let settings = inner.grouping.get(&inner.db, project_id);
        let (g, _) = grouping::group_with(event, version, &settings.rules);
        let secondary = settings
            .transition(version, now_ms())
            .map(|prev| grouping::hash_on(event, prev, &settings.rules))
            .filter(|h| *h != g.hash);
        (g, secondary)
    }

    /// The hash of `event` on the previous grouping version of `project_id` if the project was
    /// in transition at `at_ms` and it differs from `hash` (an event replayed from the ingest
    /// log after a crash gets the secondary hash it had when it was received).
    /// `event` is read only then.
    pub fn secondary_hash(
        &self,
        project_id: u64,
        version: u32,
        at_ms: i64,
        hash: &str,
        event: impl FnOnce() -> Option<Value>,
    ) -> Option<String> {
        let inner = self.inner.as_ref()?;
        let settings = inner.grouping.get(&inner.db, project_id);
        let prev = settings.transition(version, at_ms)?;
        Some(grouping::hash_on(&event()?, prev, &settings.rules)).filter(|h| h != hash)
    }

    /// Drops the cached grouping settings of a project after they changed.
    pub fn forget_grouping(&self, project_id: u64) {
        if let Some(inner) = &self.inner {
            inner.grouping.forget(project_id);
        }
    }

    /// How `event` is grouped for `project_id` on `version`: the explanation the event page
    /// shows, with which of its hashes leads to `issue_id` (the issue it is stored in).
    pub async fn explain(
        &self,
        project_id: u64,
        version: u32,
        event: Value,
        issue_id: u64,
    ) -> Value {
        let inner = self.inner().clone();
        let work = move || {
            let settings = inner.grouping.get(&inner.db, project_id);
            let (g, analysis) = grouping::group_with(&event, version, &settings.rules);
            let previous = settings.transition(version, now_ms()).map(|prev| {
                json!({"version": prev, "hash": grouping::hash_on(&event, prev, &settings.rules)})
            });
            let leads_to_issue = |hash: &str| {
                inner
                    .db
                    .read_blocking(|txn| {
                        let t = txn.open_table(BY_HASH)?;
                        Ok::<_, IssuesError>(t.get((project_id, hash))?.map(|v| v.value()))
                    })
                    .ok()
                    .flatten()
                    == Some(issue_id)
            };
            let matched = if leads_to_issue(&g.hash) {
                Some("hash")
            } else if previous
                .as_ref()
                .and_then(|p| p["hash"].as_str())
                .is_some_and(leads_to_issue)
            {
                Some("previous version's hash")
            } else {
                None
            };
            let (grouped_by, fingerprint, parts) = match analysis {
                Some(a) => (a.grouped_by, json!(a.fingerprint), json!(a.parts)),
                None => (
                    "grouping version 1 (upgrade the project's grouping for Sentry's rules and                      a detailed explanation)"
                        .to_string(),
                    Value::Null,
                    json!(g
                        .components
                        .iter()
                        .map(|c| {
                            let (kind, label) = c.split_once(':').unwrap_or(("component", c));
                            json!({"kind": kind, "label": label, "contributes": true})
                        })
                        .collect::<Vec<_>>()),
                ),
            };
            json!({
                "version": version,
                "hash": g.hash,
                "grouped_by": grouped_by,
                "fingerprint": fingerprint,
                "components": parts,
                "previous": previous,
                "matches_issue": matched,
            })
        };
        tokio::task::spawn_blocking(work)
            .await
            .unwrap_or_else(|e| json!({"error": e.to_string()}))
    }

    fn inner(&self) -> &Arc<Inner> {
        self.inner
            .as_ref()
            .expect("Issues::new was not called in build()")
    }

    /// Registers this part's durable bus consumers; called once while the app is built.
    pub fn register(&self, _state: &AppState) {}

    /// Starts retention pruning.
    pub fn start(&self, _state: &AppState, shutdown: CancellationToken) -> Vec<JoinHandle<()>> {
        let Some(inner) = self.inner.clone() else {
            return Vec::new();
        };
        let this = self.clone();
        let budget = self.clone();
        let stop = shutdown.clone();
        let budget_task = tokio::spawn(async move {
            if inner.config.storage.max_disk_bytes.bytes() == 0 {
                return;
            }
            loop {
                if let Err(e) = budget.check_disk_budget().await {
                    tracing::warn!("disk budget check failed, will retry: {e}");
                }
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(budget::CHECK_EVERY) => {}
                }
            }
        });
        let Some(inner) = self.inner.clone() else {
            return Vec::new();
        };
        vec![
            budget_task,
            tokio::spawn(async move {
                let every = inner.config.issues.prune_interval.get();
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(every) => {}
                    }
                    match this.prune().await {
                        Ok(n) if n > 0 => tracing::info!(events = n, "retention pruned events"),
                        Ok(_) => {}
                        Err(e) => tracing::warn!("retention failed, will retry: {e}"),
                    }
                }
            }),
        ]
    }

    /// Appends this part's Prometheus metrics.
    pub fn render_metrics(&self, out: &mut String) {
        let Some(inner) = &self.inner else { return };
        let m = &inner.metrics;
        for (name, help, v) in [
            (
                "hearth_issues_events_stored_total",
                "Events stored.",
                &m.events_stored,
            ),
            (
                "hearth_issues_events_discarded_total",
                "Events dropped because their issue was deleted with discard.",
                &m.events_discarded,
            ),
            (
                "hearth_issues_events_duplicate_total",
                "Events whose id was already stored.",
                &m.events_duplicate,
            ),
            (
                "hearth_issues_events_against_reference_total",
                "Events stored compressed against their issue's reference event.",
                &m.events_against_reference,
            ),
            (
                "hearth_issues_created_total",
                "Issues created.",
                &m.issues_created,
            ),
            (
                "hearth_issues_regressions_total",
                "Resolved issues that regressed.",
                &m.regressions,
            ),
            (
                "hearth_issues_pruned_events_total",
                "Events removed by retention.",
                &m.pruned,
            ),
            (
                "hearth_storage_budget_pruned_events_total",
                "Oldest events removed to stay within [storage] max_disk_bytes.",
                &m.budget_pruned,
            ),
        ] {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                v.load(Ordering::Relaxed)
            ));
        }
    }

    // ---- write path (inside ingest's writer transaction) ----------------------------------

    /// Stores `events` inside `txn`: grouping lookup, issue upsert and state, counters, event
    /// rows and the durable bus events. Returns one outcome per event, in order.
    pub fn commit_events(
        &self,
        txn: &WriteTransaction,
        events: &[&PreparedEvent],
    ) -> Result<Vec<EventOutcome>, IssuesError> {
        let inner = self.inner();
        let bus = &inner.bus;
        let now = now_ms();
        let mut outcomes = Vec::with_capacity(events.len());
        let mut touched: HashMap<u64, Issue> = HashMap::new();
        let mut tag_counts: HashMap<(u64, String, String), u64> = HashMap::new();
        let mut issue_hourly: HashMap<(u64, i64), u64> = HashMap::new();
        let mut project_hourly: HashMap<(u64, i64), u64> = HashMap::new();
        let mut project_totals: HashMap<u64, u64> = HashMap::new();
        let mut seen_ids: HashSet<&str> = HashSet::new();
        let first_seq = reserve_ids(txn, "event", events.len().max(1) as u64)?;
        {
            let mut by_hash = txn.open_table(BY_HASH)?;
            let discarded = txn.open_table(DISCARDED)?;
            let mut event_ids = txn.open_table(EVENT_IDS)?;
            let mut rows = txn.open_table(EVENTS)?;
            let mut issue_users = txn.open_table(ISSUE_USERS)?;
            let mut project_users = txn.open_table(PROJECT_USERS)?;
            let mut by_project = txn.open_table(BY_PROJECT)?;
            let mut references = txn.open_table(REFERENCES)?;
            let issues_t = txn.open_table(ISSUES)?;
            let mut publisher = bus.publisher(txn)?;
            for (i, ev) in events.iter().enumerate() {
                let seq = first_seq + i as u64;
                let g = &ev.grouped;
                let pid = ev.project_id;
                if !seen_ids.insert(ev.event_id.as_str())
                    || event_ids.get(ev.event_id.as_str())?.is_some()
                {
                    inner
                        .metrics
                        .events_duplicate
                        .fetch_add(1, Ordering::Relaxed);
                    outcomes.push(EventOutcome::Duplicate);
                    continue;
                }
                let secondary = ev.secondary_hash.as_deref();
                if discarded.get((pid, g.hash.as_str()))?.is_some()
                    || (by_hash.get((pid, g.hash.as_str()))?.is_none()
                        && secondary
                            .is_some_and(|h| discarded.get((pid, h)).ok().flatten().is_some()))
                {
                    inner
                        .metrics
                        .events_discarded
                        .fetch_add(1, Ordering::Relaxed);
                    outcomes.push(EventOutcome::Discarded);
                    continue;
                }
                let mut existing = by_hash.get((pid, g.hash.as_str()))?.map(|v| v.value());
                // During a grouping transition the previous version's hash finds the issue,
                // and the current hash joins it, so upgrading never splits an issue.
                if existing.is_none()
                    && let Some(h) = secondary
                {
                    let found = by_hash.get((pid, h))?.map(|v| v.value());
                    if let Some(id) = found {
                        by_hash.insert((pid, g.hash.as_str()), id)?;
                        existing = Some(id);
                    }
                }
                let mut new_issue = false;
                let issue_id = match existing {
                    Some(id) => {
                        if let std::collections::hash_map::Entry::Vacant(e) = touched.entry(id) {
                            match issues_t.get(id)? {
                                Some(v) => {
                                    e.insert(codec::decode(v.value())?);
                                }
                                None => return Err(IssuesError::NotFound("issue")),
                            }
                        }
                        id
                    }
                    None => {
                        let id = next_id(txn, "issue")?;
                        by_hash.insert((pid, g.hash.as_str()), id)?;
                        by_project.insert((pid, id), ())?;
                        new_issue = true;
                        touched.insert(
                            id,
                            Issue {
                                id,
                                project_id: pid,
                                hash: g.hash.clone(),
                                fingerprint: g.components.clone(),
                                grouping_version: ev.grouping_version,
                                title: g.title.clone(),
                                culprit: g.culprit.clone(),
                                level: g.level.clone(),
                                status: Status::Unresolved,
                                first_seen_ms: ev.received_ms,
                                last_seen_ms: ev.received_ms,
                                count: 0,
                                user_count: 0,
                                assignee_id: None,
                                last_release: None,
                                resolved_in_release: None,
                                mute_until_ms: None,
                                mute_events_left: None,
                                last_event_id: String::new(),
                                stored_events: 0,
                            },
                        );
                        id
                    }
                };
                let issue = touched.get_mut(&issue_id).expect("touched issue");
                issue.count += 1;
                issue.stored_events += 1;
                issue.last_seen_ms = issue.last_seen_ms.max(ev.received_ms);
                issue.level = g.level.clone();
                issue.last_event_id = ev.event_id.clone();
                if g.release.is_some() {
                    issue.last_release = g.release.clone();
                }
                if let Some(u) = &g.user_key {
                    if issue_users.insert((issue_id, u.as_str()), ())?.is_none() {
                        issue.user_count += 1;
                    }
                    project_users.insert((pid, u.as_str()), ())?;
                }
                // State: a resolved issue regresses; a mute may run out.
                let from = issue.status;
                let mut to = from;
                match from {
                    Status::Resolved => to = Status::Regressed,
                    Status::ResolvedNextRelease
                        if g.release.is_some() && g.release != issue.resolved_in_release =>
                    {
                        to = Status::Regressed;
                    }
                    Status::Muted => {
                        if issue.mute_until_ms.is_some_and(|t| now >= t) {
                            to = Status::Unresolved;
                        }
                        if let Some(n) = issue.mute_events_left.as_mut() {
                            *n = n.saturating_sub(1);
                            if *n == 0 {
                                to = Status::Unresolved;
                            }
                        }
                    }
                    _ => {}
                }
                if to != from {
                    issue.status = to;
                    issue.mute_until_ms = None;
                    issue.mute_events_left = None;
                    issue.resolved_in_release = None;
                    let action = if to == Status::Regressed {
                        "regressed"
                    } else {
                        "unmuted"
                    };
                    add_history(
                        txn,
                        issue_id,
                        &HistoryEntry {
                            at_ms: now,
                            user_id: None,
                            action: action.into(),
                            from: Some(from.as_str().into()),
                            to: Some(to.as_str().into()),
                            detail: Some(format!("event {}", ev.event_id)),
                        },
                    )?;
                    let payload = json!({
                        "project_id": pid, "issue_id": issue_id, "title": issue.title,
                        "from": from.as_str(), "to": to.as_str(), "user_id": Value::Null,
                        "event_id": ev.event_id, "release": g.release, "level": g.level,
                    });
                    if to == Status::Regressed {
                        inner.metrics.regressions.fetch_add(1, Ordering::Relaxed);
                        publisher.publish("issue.regressed", Priority::High, &payload)?;
                    }
                    publisher.publish("issue.state_changed", Priority::Normal, &payload)?;
                }
                if new_issue {
                    inner.metrics.issues_created.fetch_add(1, Ordering::Relaxed);
                    add_history(
                        txn,
                        issue_id,
                        &HistoryEntry {
                            at_ms: now,
                            user_id: None,
                            action: "first_seen".into(),
                            from: None,
                            to: Some("unresolved".into()),
                            detail: Some(format!("event {}", ev.event_id)),
                        },
                    )?;
                    publisher.publish(
                        "issue.created",
                        Priority::High,
                        &json!({
                            "project_id": pid, "issue_id": issue_id, "title": g.title,
                            "culprit": g.culprit, "level": g.level, "event_id": ev.event_id,
                            "release": g.release, "environment": g.environment,
                        }),
                    )?;
                }
                let row = StoredEvent {
                    event_id: ev.event_id.clone(),
                    project_id: pid,
                    issue_id,
                    received_ms: ev.received_ms,
                    level: g.level.clone(),
                    message: if g.message.is_empty() {
                        g.title.clone()
                    } else {
                        g.message.clone()
                    },
                    release: g.release.clone(),
                    environment: g.environment.clone(),
                    user: g.user_key.clone(),
                    payload: stored_payload(inner, &mut references, ev, issue_id)?,
                };
                rows.insert((issue_id, seq), codec::encode(&row).as_slice())?;
                event_ids.insert(ev.event_id.as_str(), (issue_id, seq))?;
                for (k, v) in &g.tags {
                    *tag_counts
                        .entry((issue_id, k.clone(), v.clone()))
                        .or_default() += 1;
                }
                let h = hour_of(ev.received_ms);
                *issue_hourly.entry((issue_id, h)).or_default() += 1;
                *project_hourly.entry((pid, h)).or_default() += 1;
                *project_totals.entry(pid).or_default() += 1;
                // Ids and the facts alert filters read; the search text goes to the indexer
                // directly, so the bus log holds ~300 bytes per event instead of ~1 KB.
                inner.search.prefeed(
                    seq,
                    crate::search::EventDoc::new(pid, issue_id, &ev.event_id, g),
                );
                let payload = EventStored {
                    project_id: pid,
                    issue_id,
                    seq,
                    event_id: &ev.event_id,
                    received_ms: ev.received_ms,
                    new_issue,
                    title: &g.title,
                    level: &g.level,
                    release: g.release.as_deref(),
                    environment: g.environment.as_deref(),
                    tags: TagMap(&g.tags),
                };
                publisher.publish("event.stored", Priority::Low, &payload)?;
                inner.metrics.events_stored.fetch_add(1, Ordering::Relaxed);
                outcomes.push(EventOutcome::Stored {
                    issue_id,
                    new_issue,
                });
            }
        }
        for issue in touched.values() {
            put_issue(txn, issue)?;
        }
        {
            let mut t = txn.open_table(TAGS)?;
            for ((id, k, v), n) in tag_counts {
                let old = t.get((id, k.as_str(), v.as_str()))?.map(|g| g.value());
                t.insert((id, k.as_str(), v.as_str()), old.unwrap_or(0) + n)?;
            }
            let mut t = txn.open_table(ISSUE_HOURLY)?;
            for (k, n) in issue_hourly {
                let old = t.get(k)?.map(|g| g.value());
                t.insert(k, old.unwrap_or(0) + n)?;
            }
            let mut t = txn.open_table(PROJECT_HOURLY)?;
            for (k, n) in project_hourly {
                let old = t.get(k)?.map(|g| g.value());
                t.insert(k, old.unwrap_or(0) + n)?;
            }
            let mut t = txn.open_table(PROJECT_TOTALS)?;
            for (k, n) in project_totals {
                let old = t.get(k)?.map(|g| g.value());
                t.insert(k, old.unwrap_or(0) + n)?;
            }
        }
        Ok(outcomes)
    }

    // ---- reads ----------------------------------------------------------------------------

    /// A project's issues, filtered and sorted; `cursor` is the offset to continue from.
    pub async fn list(
        &self,
        project_id: u64,
        filter: ListFilter,
        sort: Sort,
        limit: usize,
        cursor: usize,
    ) -> Result<(Vec<IssueSummary>, Option<String>), IssuesError> {
        self.inner()
            .db
            .read(move |txn| {
                let mut all = project_issues(txn, project_id)?;
                all.retain(|i| {
                    (filter.statuses.is_empty() || filter.statuses.contains(&i.status))
                        && filter.assigned.is_none_or(|a| a == i.assignee_id)
                        && filter.ids.as_ref().is_none_or(|ids| ids.contains(&i.id))
                });
                sort_issues(&mut all, sort);
                let now = now_ms();
                let page: Vec<IssueSummary> = all
                    .iter()
                    .skip(cursor)
                    .take(limit)
                    .map(|i| summary(txn, i, now))
                    .collect::<Result<_, _>>()?;
                let next =
                    (cursor + page.len() < all.len()).then(|| (cursor + page.len()).to_string());
                Ok((page, next))
            })
            .await
    }

    pub async fn issue(&self, id: u64) -> Result<Issue, IssuesError> {
        self.inner()
            .db
            .read(move |txn| get_issue(txn, id)?.ok_or(IssuesError::NotFound("issue")))
            .await
    }

    /// The issue with everything the detail page shows.
    pub async fn detail(&self, id: u64) -> Result<Value, IssuesError> {
        self.inner()
            .db
            .read(move |txn| {
                let issue = get_issue(txn, id)?.ok_or(IssuesError::NotFound("issue"))?;
                let mut v = serde_json::to_value(summary(txn, &issue, now_ms())?)
                    .map_err(|e| IssuesError::Invalid(e.to_string()))?;
                let mut tags: HashMap<String, Vec<(String, u64)>> = HashMap::new();
                for row in txn
                    .open_table(TAGS)?
                    .range((id, "", "")..(id + 1, "", ""))?
                {
                    let (k, n) = row?;
                    let (_, key, value) = k.value();
                    tags.entry(key.to_string())
                        .or_default()
                        .push((value.to_string(), n.value()));
                }
                let mut tag_json = serde_json::Map::new();
                let mut releases = Vec::new();
                let mut environments = Vec::new();
                for (key, mut values) in tags {
                    values.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                    if key == "release" {
                        releases = values.iter().map(|(v, _)| v.clone()).collect();
                    }
                    if key == "environment" {
                        environments = values.iter().map(|(v, _)| v.clone()).collect();
                    }
                    values.truncate(20);
                    tag_json.insert(
                        key,
                        values
                            .into_iter()
                            .map(|(value, count)| json!({"value": value, "count": count}))
                            .collect(),
                    );
                }
                let mut history = Vec::new();
                for row in txn.open_table(HISTORY)?.range((id, 0)..=(id, u64::MAX))? {
                    let (_, v) = row?;
                    let h: HistoryEntry = codec::decode(v.value())?;
                    history.push(h);
                }
                let mut comments = Vec::new();
                for row in txn.open_table(COMMENTS)?.range((id, 0)..=(id, u64::MAX))? {
                    let (_, v) = row?;
                    let c: Comment = codec::decode(v.value())?;
                    comments.push(c);
                }
                let o = v.as_object_mut().expect("summary is an object");
                o.insert("fingerprint".into(), json!(issue.fingerprint));
                o.insert("hash".into(), json!(issue.hash));
                o.insert("grouping_version".into(), json!(issue.grouping_version));
                o.insert("releases".into(), json!(releases));
                o.insert("environments".into(), json!(environments));
                o.insert("tags".into(), Value::Object(tag_json));
                o.insert("history".into(), json!(history));
                o.insert("comments".into(), json!(comments));
                o.insert("last_release".into(), json!(issue.last_release));
                o.insert(
                    "resolved_in_release".into(),
                    json!(issue.resolved_in_release),
                );
                o.insert("mute_until_ms".into(), json!(issue.mute_until_ms));
                o.insert("mute_events_left".into(), json!(issue.mute_events_left));
                o.insert("stored_events".into(), json!(issue.stored_events));
                // dash (issue 16): events per day for the last 30 days, oldest first.
                o.insert("daily".into(), json!(daily_counts(txn, id, now_ms(), 30)?));
                Ok(v)
            })
            .await
    }

    /// An issue's events, newest first; `cursor` is the event seq to continue below.
    pub async fn events(
        &self,
        id: u64,
        cursor: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<Value>, Option<String>), IssuesError> {
        self.inner()
            .db
            .read(move |txn| {
                get_issue(txn, id)?.ok_or(IssuesError::NotFound("issue"))?;
                let t = txn.open_table(EVENTS)?;
                let upper = cursor.map(|c| c.saturating_sub(1)).unwrap_or(u64::MAX);
                let mut out = Vec::new();
                let mut last_seq = None;
                let mut more = false;
                for row in t.range((id, 0)..=(id, upper))?.rev() {
                    let (k, v) = row?;
                    if out.len() == limit {
                        more = true;
                        break;
                    }
                    let e: StoredEvent = codec::decode(v.value())?;
                    out.push(event_view(&e));
                    last_seq = Some(k.value().1);
                }
                Ok((
                    out,
                    if more {
                        last_seq.map(|s| s.to_string())
                    } else {
                        None
                    },
                ))
            })
            .await
    }

    /// One event with its full payload, and its neighbours within the issue. `event_id`
    /// `None` is the latest.
    pub async fn event(&self, id: u64, event_id: Option<String>) -> Result<Value, IssuesError> {
        self.inner()
            .db
            .read(move |txn| {
                let t = txn.open_table(EVENTS)?;
                let seq = match &event_id {
                    Some(eid) => {
                        let ids = txn.open_table(EVENT_IDS)?;
                        match ids.get(eid.replace('-', "").to_ascii_lowercase().as_str())? {
                            Some(v) if v.value().0 == id => v.value().1,
                            _ => return Err(IssuesError::NotFound("event")),
                        }
                    }
                    None => match t.range((id, 0)..=(id, u64::MAX))?.next_back() {
                        Some(row) => row?.0.value().1,
                        None => return Err(IssuesError::NotFound("event")),
                    },
                };
                let row: StoredEvent = match t.get((id, seq))? {
                    Some(v) => codec::decode(v.value())?,
                    None => return Err(IssuesError::NotFound("event")),
                };
                let id_of = |v: redb::AccessGuard<&[u8]>| -> Result<String, IssuesError> {
                    Ok(codec::decode::<StoredEvent>(v.value())?.event_id)
                };
                let prev = match seq {
                    0 => None,
                    _ => t
                        .range((id, 0)..=(id, seq - 1))?
                        .next_back()
                        .transpose()?
                        .map(|(_, v)| id_of(v))
                        .transpose()?,
                };
                let next = t
                    .range((id, seq + 1)..=(id, u64::MAX))?
                    .next()
                    .transpose()?
                    .map(|(_, v)| id_of(v))
                    .transpose()?;
                let json = payload_json(&txn.open_table(REFERENCES)?, &row, &mut None)?;
                let event: Value = serde_json::from_slice(&json)
                    .map_err(|e| IssuesError::Invalid(format!("stored event unreadable: {e}")))?;
                Ok(json!({
                    "event": event,
                    "issue_id": id,
                    "received_ms": row.received_ms,
                    "prev_event_id": prev,
                    "next_event_id": next,
                }))
            })
            .await
    }

    /// Which issue stored `event_id`, if any.
    pub async fn issue_of_event(&self, event_id: &str) -> Result<Option<u64>, IssuesError> {
        let eid = event_id.replace('-', "").to_ascii_lowercase();
        self.inner()
            .db
            .read(move |txn| {
                let t = txn.open_table(EVENT_IDS)?;
                Ok(t.get(eid.as_str())?.map(|v| v.value().0))
            })
            .await
    }

    // ---- workflow -------------------------------------------------------------------------

    /// Changes the status of `ids`; records history and publishes `issue.state_changed`.
    pub async fn set_status(
        &self,
        ids: Vec<u64>,
        user_id: u64,
        change: StatusChange,
    ) -> Result<Vec<Issue>, IssuesError> {
        let to = Status::parse(&change.status).ok_or_else(|| {
            IssuesError::Invalid(format!(
                "unknown status {:?}; use unresolved, resolved, resolved_next_release or muted",
                change.status
            ))
        })?;
        if to == Status::Regressed {
            return Err(IssuesError::Invalid(
                "regressed is set by new events, not by hand; use unresolved".into(),
            ));
        }
        let bus = self.inner().bus.clone();
        self.inner()
            .db
            .write(move |txn| {
                let mut out = Vec::new();
                for id in ids {
                    let mut issue = get_issue_w(txn, id)?.ok_or(IssuesError::NotFound("issue"))?;
                    let from = issue.status;
                    issue.status = to;
                    issue.mute_until_ms = None;
                    issue.mute_events_left = None;
                    issue.resolved_in_release = None;
                    let mut detail = None;
                    match to {
                        Status::Muted => {
                            issue.mute_until_ms = change.mute_until_ms;
                            issue.mute_events_left = change.mute_for_events.filter(|n| *n > 0);
                            detail = match (issue.mute_until_ms, issue.mute_events_left) {
                                (Some(t), _) => Some(format!("until {t}")),
                                (_, Some(n)) => Some(format!("for {n} events")),
                                _ => Some("forever".into()),
                            };
                        }
                        Status::ResolvedNextRelease => {
                            issue.resolved_in_release = issue.last_release.clone();
                            detail = issue
                                .last_release
                                .as_ref()
                                .map(|r| format!("current release {r}"));
                        }
                        _ => {}
                    }
                    put_issue(txn, &issue)?;
                    add_history(
                        txn,
                        id,
                        &HistoryEntry {
                            at_ms: now_ms(),
                            user_id: Some(user_id),
                            action: "status".into(),
                            from: Some(from.as_str().into()),
                            to: Some(to.as_str().into()),
                            detail,
                        },
                    )?;
                    bus.publish_durable(
                        txn,
                        "issue.state_changed",
                        Priority::Normal,
                        &json!({
                            "project_id": issue.project_id, "issue_id": id, "title": issue.title,
                            "from": from.as_str(), "to": to.as_str(), "user_id": user_id,
                        }),
                    )?;
                    out.push(issue);
                }
                Ok(out)
            })
            .await
    }

    pub async fn comment(
        &self,
        id: u64,
        user_id: u64,
        text: String,
    ) -> Result<Comment, IssuesError> {
        let text = text.trim().to_string();
        if text.is_empty() || text.len() > 10_000 {
            return Err(IssuesError::Invalid(
                "a comment needs 1 to 10000 characters of text".into(),
            ));
        }
        self.inner()
            .db
            .write(move |txn| {
                get_issue_w(txn, id)?.ok_or(IssuesError::NotFound("issue"))?;
                let c = Comment {
                    id: next_id(txn, "comment")?,
                    user_id,
                    at_ms: now_ms(),
                    text,
                };
                txn.open_table(COMMENTS)?
                    .insert((id, c.id), codec::encode(&c).as_slice())?;
                add_history(
                    txn,
                    id,
                    &HistoryEntry {
                        at_ms: c.at_ms,
                        user_id: Some(user_id),
                        action: "comment".into(),
                        from: None,
                        to: None,
                        detail: Some(format!("comment {}", c.id)),
                    },
                )?;
                Ok(c)
            })
            .await
    }

    pub async fn assign(
        &self,
        id: u64,
        by: u64,
        assignee: Option<u64>,
    ) -> Result<Issue, IssuesError> {
        let db = self.inner().db.clone();
        if let Some(uid) = assignee {
            let exists = db
                .read(move |txn| {
                    let t = txn.open_table(crate::accounts::store::USERS)?;
                    Ok::<_, IssuesError>(t.get(uid)?.is_some())
                })
                .await?;
            if !exists {
                return Err(IssuesError::Invalid(format!("no user with id {uid}")));
            }
        }
        db.write(move |txn| {
            let mut issue = get_issue_w(txn, id)?.ok_or(IssuesError::NotFound("issue"))?;
            let from = issue.assignee_id;
            issue.assignee_id = assignee;
            put_issue(txn, &issue)?;
            add_history(
                txn,
                id,
                &HistoryEntry {
                    at_ms: now_ms(),
                    user_id: Some(by),
                    action: "assign".into(),
                    from: from.map(|u| u.to_string()),
                    to: assignee.map(|u| u.to_string()),
                    detail: None,
                },
            )?;
            Ok(issue)
        })
        .await
    }

    /// Deletes an issue and its events. With `discard`, future events of its fingerprint are
    /// dropped at ingest.
    pub async fn delete(&self, id: u64, by: u64, discard: bool) -> Result<u64, IssuesError> {
        let bus = self.inner().bus.clone();
        self.inner()
            .db
            .write(move |txn| {
                let issue = get_issue_w(txn, id)?.ok_or(IssuesError::NotFound("issue"))?;
                let pid = issue.project_id;
                txn.open_table(ISSUES)?.remove(id)?;
                txn.open_table(BY_PROJECT)?.remove((pid, id))?;
                // Every hash of the issue: its own and those that joined it in a transition.
                let hashes: Vec<String> = {
                    let mut t = txn.open_table(BY_HASH)?;
                    let hashes: Vec<String> = t
                        .range((pid, "")..(pid + 1, ""))?
                        .filter_map(|r| r.ok())
                        .filter(|(_, v)| v.value() == id)
                        .map(|(k, _)| k.value().1.to_string())
                        .collect();
                    t.remove((pid, issue.hash.as_str()))?;
                    for h in &hashes {
                        t.remove((pid, h.as_str()))?;
                    }
                    hashes
                };
                txn.open_table(REFERENCES)?.remove(id)?;
                if discard {
                    let mut t = txn.open_table(DISCARDED)?;
                    t.insert((pid, issue.hash.as_str()), now_ms())?;
                    for h in &hashes {
                        t.insert((pid, h.as_str()), now_ms())?;
                    }
                }
                let mut removed = 0u64;
                {
                    let mut events = txn.open_table(EVENTS)?;
                    let mut ids = txn.open_table(EVENT_IDS)?;
                    let rows: Vec<((u64, u64), String)> = events
                        .range((id, 0)..=(id, u64::MAX))?
                        .map(|r| {
                            let (k, v) = r?;
                            let e: StoredEvent = codec::decode(v.value())?;
                            Ok::<_, IssuesError>((k.value(), e.event_id))
                        })
                        .collect::<Result<_, _>>()?;
                    for (k, eid) in &rows {
                        events.remove(*k)?;
                        ids.remove(eid.as_str())?;
                        removed += 1;
                    }
                    drop((events, ids));
                    // The events' attachments and the issue's feedback go with it.
                    let eids: Vec<String> = rows.into_iter().map(|(_, e)| e).collect();
                    crate::ingest::store::forget_events(txn, pid, Some(id), &eids)?;
                }
                txn.open_table(ISSUE_HOURLY)?
                    .retain_in((id, i64::MIN)..=(id, i64::MAX), |_, _| false)?;
                remove_range2(txn, HISTORY, id)?;
                remove_range2(txn, COMMENTS, id)?;
                {
                    let mut t = txn.open_table(ISSUE_USERS)?;
                    let keys: Vec<String> = t
                        .range((id, "")..(id + 1, ""))?
                        .map(|r| r.map(|(k, _)| k.value().1.to_string()))
                        .collect::<Result<_, _>>()?;
                    for k in keys {
                        t.remove((id, k.as_str()))?;
                    }
                    let mut t = txn.open_table(TAGS)?;
                    let keys: Vec<(String, String)> = t
                        .range((id, "", "")..(id + 1, "", ""))?
                        .map(|r| r.map(|(k, _)| (k.value().1.to_string(), k.value().2.to_string())))
                        .collect::<Result<_, _>>()?;
                    for (a, b) in keys {
                        t.remove((id, a.as_str(), b.as_str()))?;
                    }
                }
                bus.publish_durable(
                    txn,
                    "issue.deleted",
                    Priority::Normal,
                    &json!({"project_id": pid, "issue_id": id, "discard": discard, "user_id": by, "title": issue.title}),
                )?;
                Ok(removed)
            })
            .await
    }

    // ---- stats ----------------------------------------------------------------------------

    pub async fn stats(&self, project_id: u64) -> Result<Value, IssuesError> {
        self.inner()
            .db
            .read(move |txn| {
                let now = now_ms();
                let this_hour = hour_of(now);
                let hourly_t = txn.open_table(PROJECT_HOURLY)?;
                let start_h = this_hour - 167 * HOUR_MS;
                let mut hourly = vec![0u64; 168];
                let today = now.div_euclid(DAY_MS) * DAY_MS;
                let start_d = today - 29 * DAY_MS;
                let mut daily = vec![0u64; 30];
                for row in hourly_t.range((project_id, start_d.min(start_h))..=(project_id, this_hour))? {
                    let (k, v) = row?;
                    let t = k.value().1;
                    if t >= start_h {
                        hourly[((t - start_h) / HOUR_MS) as usize] += v.value();
                    }
                    if t >= start_d {
                        let i = ((t - start_d) / DAY_MS) as usize;
                        if i < 30 {
                            daily[i] += v.value();
                        }
                    }
                }
                let issues = project_issues(txn, project_id)?;
                let mut by_count = issues.clone();
                sort_issues(&mut by_count, Sort::Events);
                let mut by_users = issues.clone();
                sort_issues(&mut by_users, Sort::Users);
                let top = |v: &[Issue]| -> Result<Vec<IssueSummary>, IssuesError> {
                    v.iter().take(10).map(|i| summary(txn, i, now)).collect()
                };
                let events = txn
                    .open_table(PROJECT_TOTALS)?
                    .get(project_id)?
                    .map(|v| v.value())
                    .unwrap_or(0);
                let users = txn
                    .open_table(PROJECT_USERS)?
                    .range((project_id, "")..(project_id + 1, ""))?
                    .count();
                Ok(json!({
                    "hourly": hourly.iter().enumerate().map(|(i, c)| json!({"t_ms": start_h + i as i64 * HOUR_MS, "count": c})).collect::<Vec<_>>(),
                    "daily": daily.iter().enumerate().map(|(i, c)| json!({"t_ms": start_d + i as i64 * DAY_MS, "count": c})).collect::<Vec<_>>(),
                    "top_by_count": top(&by_count)?,
                    "top_by_users": top(&by_users)?,
                    "totals": {"events": events, "issues": issues.len(), "users": users},
                }))
            })
            .await
    }

    // ---- retention ------------------------------------------------------------------------

    /// Removes events beyond `[issues] max_events_per_issue` per issue and older than
    /// `max_event_age`; counters stay. Returns how many events were removed.
    pub async fn prune(&self) -> Result<u64, IssuesError> {
        let inner = self.inner().clone();
        let max_per_issue = inner.config.issues.max_events_per_issue.max(1);
        let cutoff = now_ms() - inner.config.issues.max_event_age.get().as_millis() as i64;
        let ids: Vec<u64> = inner
            .db
            .read(|txn| {
                let t = txn.open_table(ISSUES)?;
                let mut out = Vec::new();
                for row in t.iter()? {
                    let (k, _) = row?;
                    out.push(k.value());
                }
                Ok::<_, IssuesError>(out)
            })
            .await?;
        let mut total = 0;
        // One short transaction per chunk of issues keeps the ingest writer moving.
        for chunk in ids.chunks(64) {
            let chunk = chunk.to_vec();
            let n = inner
                .db
                .write(move |txn| {
                    let mut removed = 0u64;
                    for id in chunk {
                        let Some(mut issue) = get_issue_w(txn, id)? else {
                            continue;
                        };
                        let mut events = txn.open_table(EVENTS)?;
                        let mut eids = txn.open_table(EVENT_IDS)?;
                        let stored = events.range((id, 0)..=(id, u64::MAX))?.count() as u64;
                        let mut excess = stored.saturating_sub(max_per_issue);
                        let mut doomed = Vec::new();
                        for row in events.range((id, 0)..=(id, u64::MAX))? {
                            let (k, v) = row?;
                            let e: StoredEvent = codec::decode(v.value())?;
                            if excess > 0 || e.received_ms < cutoff {
                                excess = excess.saturating_sub(1);
                                doomed.push((k.value(), e.event_id));
                            } else {
                                break;
                            }
                        }
                        for (k, eid) in &doomed {
                            events.remove(*k)?;
                            eids.remove(eid.as_str())?;
                        }
                        drop(events);
                        drop(eids);
                        if !doomed.is_empty() {
                            let gone: Vec<String> = doomed.iter().map(|(_, e)| e.clone()).collect();
                            crate::ingest::store::forget_events(
                                txn,
                                issue.project_id,
                                None,
                                &gone,
                            )?;
                        }
                        if !doomed.is_empty() {
                            issue.stored_events = stored - doomed.len() as u64;
                            put_issue(txn, &issue)?;
                            removed += doomed.len() as u64;
                        }
                    }
                    // Hourly rows older than the 30-day stats window are no longer shown.
                    let old = now_ms() - 31 * DAY_MS;
                    let mut t = txn.open_table(ISSUE_HOURLY)?;
                    let stale: Vec<(u64, i64)> = t
                        .iter()?
                        .filter_map(|r| r.ok())
                        .map(|(k, _)| k.value())
                        .filter(|(_, h)| *h < old)
                        .take(10_000)
                        .collect();
                    for k in stale {
                        t.remove(k)?;
                    }
                    Ok::<_, IssuesError>(removed)
                })
                .await?;
            total += n;
        }
        // Transactions, check-ins, feedback, client reports and attachments whose event is gone.
        let now = now_ms();
        let items = inner
            .db
            .write(move |txn| Ok::<_, IssuesError>(crate::ingest::store::prune(txn, cutoff, now)?))
            .await?;
        if items > 0 {
            tracing::info!(rows = items, "retention pruned non-event items");
        }
        inner.metrics.pruned.fetch_add(total, Ordering::Relaxed);
        Ok(total)
    }

    /// Every stored event's payload, for `hearth reindex` (blocking).
    /// The stored event `(issue_id, seq)`, if it is still there.
    pub fn stored_event_blocking(
        db: &Db,
        issue_id: u64,
        seq: u64,
    ) -> Result<Option<(StoredEvent, Vec<u8>)>, IssuesError> {
        db.read_blocking(|txn| {
            let t = txn.open_table(EVENTS)?;
            let Some(v) = t.get((issue_id, seq))? else {
                return Ok(None);
            };
            let e: StoredEvent = codec::decode(v.value())?;
            let json = payload_json(&txn.open_table(REFERENCES)?, &e, &mut None)?;
            Ok(Some((e, json)))
        })
    }

    /// Every stored event with its JSON, in (issue, seq) order (blocking).
    pub fn for_each_event_blocking(
        db: &Db,
        mut f: impl FnMut(&StoredEvent, &[u8]),
    ) -> Result<u64, IssuesError> {
        db.read_blocking(|txn| {
            let t = txn.open_table(EVENTS)?;
            let references = txn.open_table(REFERENCES)?;
            // Events come issue by issue: the current issue's reference is read once.
            let mut last = None;
            let mut n = 0;
            for row in t.iter()? {
                let (_, v) = row?;
                let e: StoredEvent = codec::decode(v.value())?;
                let json = payload_json(&references, &e, &mut last)?;
                f(&e, &json);
                n += 1;
            }
            Ok(n)
        })
    }
}

fn remove_range2<V: redb::Value + 'static>(
    txn: &WriteTransaction,
    def: redb::TableDefinition<(u64, u64), V>,
    id: u64,
) -> Result<(), IssuesError> {
    let mut t = txn.open_table(def)?;
    t.retain_in((id, 0)..=(id, u64::MAX), |_, _| false)?;
    Ok(())
}

fn project_issues(txn: &ReadTransaction, project_id: u64) -> Result<Vec<Issue>, IssuesError> {
    let idx = txn.open_table(BY_PROJECT)?;
    let issues = txn.open_table(ISSUES)?;
    let mut out = Vec::new();
    for row in idx.range((project_id, 0)..=(project_id, u64::MAX))? {
        let (k, _) = row?;
        if let Some(v) = issues.get(k.value().1)? {
            out.push(codec::decode::<Issue>(v.value())?);
        }
    }
    Ok(out)
}

fn sort_issues(v: &mut [Issue], sort: Sort) {
    match sort {
        Sort::LastSeen => {
            v.sort_by(|a, b| b.last_seen_ms.cmp(&a.last_seen_ms).then(b.id.cmp(&a.id)))
        }
        Sort::FirstSeen => {
            v.sort_by(|a, b| b.first_seen_ms.cmp(&a.first_seen_ms).then(b.id.cmp(&a.id)))
        }
        Sort::Events => v.sort_by(|a, b| b.count.cmp(&a.count).then(b.id.cmp(&a.id))),
        Sort::Users => {
            v.sort_by(|a, b| b.user_count.cmp(&a.user_count).then(b.count.cmp(&a.count)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_cache_is_bounded_and_marks_documents_too_large_to_use() {
        let mut refs = References::default();
        refs.put((1, "big".into()), 7, vec![b'x'; REFERENCE_MAX_DOC + 1]);
        assert!(
            matches!(refs.by_hash.get(&(1, "big".into())), Some((7, None))),
            "a large reference is remembered as unusable, not re-read for every event"
        );
        let doc = serde_json::to_vec(&json!({"exception": "x".repeat(4000)})).unwrap();
        for n in 0..4000 {
            refs.put((1, format!("h{n}")), n, doc.clone());
            assert!(refs.bytes <= REFERENCES_MAX_BYTES);
            if n == 1500 {
                // Issue 18: a project's 1,000+ issues of 7.5 KB events all keep a reference.
                assert_eq!(
                    refs.by_hash.len(),
                    1502,
                    "nothing evicted yet (with the large one)"
                );
            }
        }
        assert!(refs.by_hash.len() < 4000, "older entries were evicted");
        let total: usize = refs
            .by_hash
            .values()
            .map(|(_, r)| r.as_ref().map_or(64, |r| r.size()))
            .sum();
        assert_eq!(total, refs.bytes, "the byte count matches what is held");
    }
}
