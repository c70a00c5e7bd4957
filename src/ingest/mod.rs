//! Sentry wire protocol ingest: envelopes and the legacy store endpoint, Hearth's JSON capture
//! API, decoding with size caps, per-key rate limits and the group-commit writer.
//!
//! A request is authenticated (DSN key, cached briefly), decoded with caps, parsed, and its
//! items prepared (grouped, summarised, compressed) on the request task. The prepared job goes
//! through a bounded channel to the single writer thread, which commits up to
//! `[ingest] max_batch` events per redb transaction and then answers every request of the
//! batch: a 200 means the event is committed and durable (the commit is unsynced; the batch
//! is in the ingest log, see [`wal`], until the next synced checkpoint). A full channel is
//! answered 429 (`backpressure`), never dropped silently.

pub mod api;
mod auto_user;
pub mod capture;
pub mod decode;
pub mod envelope;
pub mod items;
pub mod release_users;
pub mod store;
pub mod wal;

use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redb::{ReadableTable, WriteTransaction};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::accounts::Accounts;
use crate::app::AppState;
use crate::config::Config;
use crate::http::error::{ApiError, Code};
use crate::issues::{EventOutcome, Issues, PreparedEvent, grouping};
use crate::store::{Db, StoreError, codec, now_ms};
use store::*;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(
        "no DSN key: send `X-Sentry-Auth: Sentry sentry_key=<public key>` or `?sentry_key=<public key>`"
    )]
    MissingKey,
    #[error(
        "this DSN key is unknown, revoked or belongs to another project; copy the DSN from the project's settings"
    )]
    BadKey,
    #[error(
        "rate limit of {limit} events per minute for this DSN key reached; retry after {retry_after} s"
    )]
    RateLimited { limit: u32, retry_after: u64 },
    #[error("the ingest queue is full; retry in a second")]
    Backpressure,
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Malformed(String),
    #[error("{0}")]
    InvalidJson(String),
    #[error("{0}")]
    UnsupportedEncoding(String),
    #[error("the server is shutting down; retry shortly")]
    Unavailable,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("storing failed: {0}")]
    Commit(String),
}

crate::impl_from_redb!(IngestError);

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        let msg = e.to_string();
        let err = match e {
            IngestError::MissingKey => ApiError::new(Code::MissingAuth, msg),
            IngestError::BadKey => ApiError::new(Code::ProjectKeyInvalid, msg),
            IngestError::RateLimited { retry_after, .. } => ApiError::new(Code::RateLimited, msg)
                .with_header("retry-after", retry_after.to_string())
                .with_header(
                    "x-sentry-rate-limits",
                    format!("{retry_after}::key:rate_limited"),
                ),
            IngestError::Backpressure => ApiError::new(Code::Backpressure, msg)
                .with_header("retry-after", "1")
                .with_header("x-sentry-rate-limits", "1::key:backpressure"),
            IngestError::TooLarge(_) => ApiError::new(Code::PayloadTooLarge, msg),
            IngestError::Malformed(_) => ApiError::new(Code::MalformedEnvelope, msg),
            IngestError::InvalidJson(_) => ApiError::new(Code::InvalidJson, msg),
            IngestError::UnsupportedEncoding(_) => ApiError::new(Code::UnsupportedEncoding, msg),
            IngestError::Unavailable => ApiError::new(Code::Unavailable, msg),
            // A full disk is 503 + Retry-After (see `store::space`), and SDKs are told to pause
            // every category for that long; anything else a 500.
            IngestError::Store(StoreError::DiskFull) => {
                let secs = crate::store::space::RETRY_AFTER_SECS;
                return ApiError::from(StoreError::DiskFull).with_header(
                    "x-sentry-rate-limits",
                    format!("{secs}::organization:disk_full"),
                );
            }
            IngestError::Store(s) => return ApiError::from(s),
            IngestError::Commit(s) => return ApiError::internal(s),
        };
        let header = err.message.chars().take(200).collect::<String>();
        err.with_header("x-sentry-error", header)
    }
}

/// One unit of work for the writer. Everything but events goes into the ingest log as it is;
/// events go as [`LoggedEvent`] (their reference by issue id).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum Work {
    Transaction {
        project_id: u64,
        row: TransactionRow,
    },
    Session {
        project_id: u64,
        release: String,
        environment: Option<String>,
        started: u64,
        exited: u64,
        errored: u64,
        crashed: u64,
        abnormal: u64,
    },
    ClientReport {
        project_id: u64,
        outcomes: Vec<(String, String, u64)>,
    },
    CheckIn {
        project_id: u64,
        slug: String,
        check_in: CheckIn,
        config: Option<String>,
    },
    Feedback {
        project_id: u64,
        feedback: Feedback,
    },
    /// Written by 0.1 (data uncompressed); still replayed from an older ingest log.
    Attachment {
        event_id: String,
        attachment: Attachment,
    },
    /// One session's update, counted once per session in its worst state.
    SessionUpdate {
        project_id: u64,
        /// Empty when the SDK sent none: then the update counts on its own.
        sid: String,
        release: String,
        environment: Option<String>,
        init: bool,
        /// 0 healthy, 1 errored, 2 abnormal, 3 crashed.
        state: u8,
        exited: bool,
    },
    CompressedAttachment {
        event_id: String,
        attachment: CompressedAttachment,
    },
    /// The user of a session (its `did`, or `ip:ADDRESS`), after its `SessionUpdate`: counted
    /// once per release for crash-free users (dash, issue 16). New variants go here, before
    /// `Event`, so records of an older ingest log still read.
    SessionUser {
        project_id: u64,
        sid: String,
        release: String,
        state: u8,
        user: String,
    },
    /// Last: a skipped variant anywhere else shifts the variant numbers postcard writes
    /// against those it reads.
    #[serde(skip)]
    Event(Box<PreparedEvent>),
}

struct Job {
    works: Vec<Work>,
    reply: oneshot::Sender<Result<Committed, String>>,
}

/// What the writer did with one request's work.
#[derive(Debug, Clone, Default)]
pub struct Committed {
    pub events: Vec<EventOutcome>,
    /// Attachments were dropped over a cap: the Sentry rate-limit reply for the attachment
    /// category, with this many seconds to wait.
    pub attachments_limited: Option<u64>,
    /// Work items stored (events included).
    pub stored: usize,
}

/// An envelope turned into writer work.
pub struct Prepared {
    pub event_id: Option<String>,
    pub works: Vec<Work>,
    /// Attachments over a per-event cap were left out already.
    pub attachments_over: bool,
}

/// Client-report reason under which Hearth counts items it accepts but does not store.
pub const NOT_STORED: &str = "not_stored_by_hearth";

/// A client report's reason or category as a short name (they are stored as keys).
fn report_name(s: &str) -> String {
    let name: String = s
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() {
        "unknown".into()
    } else {
        name
    }
}

/// Distinct (reason, category) client-report rows kept per project and day.
const MAX_REPORT_ROWS_PER_DAY: usize = 200;

/// Seconds an SDK is told to hold attachments back after a per-event cap.
const ATTACHMENT_RETRY_AFTER: u64 = 60;

/// What the writer thread receives: work, or the word to commit what is queued and stop.
enum Msg {
    Job(Job),
    Stop,
}

#[derive(Clone, Copy)]
struct CachedKey {
    project_id: u64,
    valid: bool,
    grouping_version: u32,
    at: Instant,
}

/// Keys are cached this long, so a revoked key stops working within this time.
const KEY_TTL: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Metrics {
    requests: AtomicU64,
    accepted: AtomicU64,
    rejected: AtomicU64,
    rate_limited: AtomicU64,
    backpressure: AtomicU64,
    batches: AtomicU64,
    batch_events: AtomicU64,
    /// Writer time applying batches inside their transactions, and the rest of each write
    /// (commit: page writes, the fsync of checkpoints, framing the log record), in µs.
    apply_us: AtomicU64,
    commit_us: AtomicU64,
    queued: AtomicU64,
    items_other: AtomicU64,
    /// Synced commits (checkpoints) and batches committed again from the log at startup.
    checkpoints: AtomicU64,
    checkpoint_us: AtomicU64,
    log_bytes: AtomicU64,
    replayed: AtomicU64,
}

struct Inner {
    config: Arc<Config>,
    db: Db,
    accounts: Accounts,
    issues: Issues,
    tx: mpsc::Sender<Msg>,
    rx: Mutex<Option<mpsc::Receiver<Msg>>>,
    keys: Mutex<HashMap<String, CachedKey>>,
    /// key → (minute window start, events in it)
    rates: Mutex<HashMap<String, (i64, u32)>>,
    metrics: Arc<Metrics>,
    /// The ingest log, from [`Ingest::recover`] until the writer takes it.
    log: Mutex<Option<Log>>,
    /// Source maps (issue 20), set once by `build`.
    sourcemaps: std::sync::OnceLock<crate::sourcemaps::SourceMaps>,
}

/// The ingest service.
#[derive(Clone, Default)]
pub struct Ingest {
    inner: Option<Arc<Inner>>,
}

/// The reply to an accepted request.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The envelope's event id, when it has one.
    pub id: Option<String>,
    pub outcomes: Vec<EventOutcome>,
    /// Attachments were dropped over a cap; seconds to hold attachments back.
    pub attachments_limited: Option<u64>,
    /// Nothing but over-cap attachments was sent.
    pub nothing_stored: bool,
}

impl Ingest {
    pub fn new(config: Arc<Config>, db: Db, accounts: Accounts, issues: Issues) -> Self {
        let (tx, rx) = mpsc::channel(config.ingest.queue_capacity.max(1));
        Ingest {
            inner: Some(Arc::new(Inner {
                config,
                db,
                accounts,
                issues,
                tx,
                rx: Mutex::new(Some(rx)),
                keys: Mutex::new(HashMap::new()),
                rates: Mutex::new(HashMap::new()),
                metrics: Arc::new(Metrics::default()),
                log: Mutex::new(None),
                sourcemaps: std::sync::OnceLock::new(),
            })),
        }
    }

    fn inner(&self) -> &Arc<Inner> {
        self.inner
            .as_ref()
            .expect("Ingest::new was not called in build()")
    }

    pub fn config(&self) -> &Config {
        &self.inner().config
    }

    /// Source maps (issue 20): JavaScript frames are mapped through them before grouping.
    pub fn use_sourcemaps(&self, maps: crate::sourcemaps::SourceMaps) {
        let _ = self.inner().sourcemaps.set(maps);
    }

    /// Registers this part's durable bus consumers; called once while the app is built.
    pub fn register(&self, _state: &AppState) {}

    /// Starts the group-commit writer on a thread of its own. The returned task asks it to
    /// stop on `shutdown` and ends when it has committed what was queued.
    pub fn start(&self, _state: &AppState, shutdown: CancellationToken) -> Vec<JoinHandle<()>> {
        let Some(inner) = self.inner.clone() else {
            return Vec::new();
        };
        let Some(rx) = inner.rx.lock().expect("ingest rx").take() else {
            return Vec::new();
        };
        // The thread holds no sender: once every `Ingest` is gone (a runtime dropped without a
        // shutdown), its queue closes and it ends, releasing the database.
        let writer = Writer {
            config: inner.config.clone(),
            db: inner.db.clone(),
            issues: inner.issues.clone(),
            metrics: inner.metrics.clone(),
            log: inner.log.lock().expect("ingest log").take(),
        };
        let runtime = tokio::runtime::Handle::current();
        let (ended, ended_rx) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("hearth-ingest".into())
            .spawn(move || {
                writer.run(rx, &runtime);
                let _ = ended.send(());
            })
            .expect("cannot start the ingest writer thread");
        let stop = inner.tx.clone();
        drop(inner);
        vec![tokio::spawn(async move {
            shutdown.cancelled().await;
            let _ = stop.send(Msg::Stop).await;
            drop(stop);
            let _ = ended_rx.await;
        })]
    }

    /// Appends this part's Prometheus metrics.
    pub fn render_metrics(&self, out: &mut String) {
        let Some(inner) = &self.inner else { return };
        let m = &inner.metrics;
        for (name, kind, help, v) in [
            (
                "hearth_ingest_requests_total",
                "counter",
                "Ingest requests received.",
                &m.requests,
            ),
            (
                "hearth_ingest_accepted_total",
                "counter",
                "Ingest requests answered 200 after commit.",
                &m.accepted,
            ),
            (
                "hearth_ingest_rejected_total",
                "counter",
                "Ingest requests answered 4xx/5xx.",
                &m.rejected,
            ),
            (
                "hearth_ingest_rate_limited_total",
                "counter",
                "Requests over a key's rate limit.",
                &m.rate_limited,
            ),
            (
                "hearth_ingest_backpressure_total",
                "counter",
                "Requests refused because the writer queue was full.",
                &m.backpressure,
            ),
            (
                "hearth_ingest_batches_total",
                "counter",
                "Write transactions committed by the writer.",
                &m.batches,
            ),
            (
                "hearth_ingest_batch_events_total",
                "counter",
                "Jobs committed by the writer.",
                &m.batch_events,
            ),
            (
                "hearth_ingest_writer_apply_microseconds_total",
                "counter",
                "Writer time spent applying batches inside their transactions.",
                &m.apply_us,
            ),
            (
                "hearth_ingest_writer_commit_microseconds_total",
                "counter",
                "Writer time spent committing batches (page writes, fsync) beyond applying them.",
                &m.commit_us,
            ),
            (
                "hearth_ingest_checkpoints_total",
                "counter",
                "Synced database commits of the writer; between them the ingest log holds batches.",
                &m.checkpoints,
            ),
            (
                "hearth_ingest_checkpoint_microseconds_total",
                "counter",
                "Time the writer spent in its synced commits (a part of the commit time).",
                &m.checkpoint_us,
            ),
            (
                "hearth_ingest_log_bytes_total",
                "counter",
                "Bytes appended to the ingest log.",
                &m.log_bytes,
            ),
            (
                "hearth_ingest_log_replayed_batches_total",
                "counter",
                "Batches committed again from the ingest log at startup (after a crash).",
                &m.replayed,
            ),
            (
                "hearth_ingest_queue_depth",
                "gauge",
                "Jobs waiting for the writer (backlog).",
                &m.queued,
            ),
            (
                "hearth_ingest_other_items_total",
                "counter",
                "Non-event items stored or counted.",
                &m.items_other,
            ),
        ] {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}\n",
                v.load(Ordering::Relaxed)
            ));
        }
    }

    pub fn count_rejected(&self) {
        if let Some(i) = &self.inner {
            i.metrics.rejected.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Checks a DSN public key against the project in the URL (cached for [`KEY_TTL`]) and
    /// applies the per-key rate limit. Returns the project's grouping version.
    pub async fn authorize(&self, key: &str, project_id: u64) -> Result<u32, IngestError> {
        let inner = self.inner();
        inner.metrics.requests.fetch_add(1, Ordering::Relaxed);
        let key = key.trim().to_ascii_lowercase();
        if key.is_empty() || key.len() > 64 {
            return Err(IngestError::BadKey);
        }
        let cached = inner
            .keys
            .lock()
            .expect("key cache")
            .get(&key)
            .copied()
            .filter(|c| c.at.elapsed() < KEY_TTL);
        let entry = match cached {
            Some(c) => c,
            None => {
                let info = inner.accounts.key_info(&key).await?;
                let (pid, valid) = match &info {
                    Some(i) => (i.project_id, !i.revoked),
                    None => (0, false),
                };
                let grouping_version = if valid {
                    inner
                        .accounts
                        .project(pid)
                        .await
                        .ok()
                        .flatten()
                        .map(|p| p.grouping_version)
                        .unwrap_or(grouping::GROUPING_VERSION)
                } else {
                    grouping::GROUPING_VERSION
                };
                let c = CachedKey {
                    project_id: pid,
                    valid,
                    grouping_version,
                    at: Instant::now(),
                };
                let mut keys = inner.keys.lock().expect("key cache");
                if keys.len() > 10_000 {
                    keys.clear();
                }
                keys.insert(key.clone(), c);
                c
            }
        };
        if !entry.valid || entry.project_id != project_id {
            return Err(IngestError::BadKey);
        }
        let limit = inner.config.ingest.rate_limit_per_minute;
        if limit > 0 {
            let now = now_ms();
            let window = now.div_euclid(60_000) * 60_000;
            let mut rates = inner.rates.lock().expect("rate table");
            let slot = rates.entry(key).or_insert((window, 0));
            if slot.0 != window {
                *slot = (window, 0);
            }
            if slot.1 >= limit {
                inner.metrics.rate_limited.fetch_add(1, Ordering::Relaxed);
                let retry_after = ((window + 60_000 - now) / 1000).max(1) as u64;
                return Err(IngestError::RateLimited { limit, retry_after });
            }
            slot.1 += 1;
        }
        Ok(entry.grouping_version)
    }

    /// Prepares an error event: normalises its id, groups it and compresses the payload.
    pub fn prepare_event(
        &self,
        project_id: u64,
        grouping_version: u32,
        raw: &[u8],
        envelope_event_id: Option<&str>,
        client_ip: Option<std::net::IpAddr>,
    ) -> Result<PreparedEvent, IngestError> {
        let max = self.inner().config.ingest.max_event_size.as_usize();
        if raw.len() > max {
            return Err(IngestError::TooLarge(format!(
                "the event is {} bytes; the limit is {max} ([ingest] max_event_size)",
                raw.len()
            )));
        }
        let invalid = |e: serde_json::Error| {
            IngestError::InvalidJson(format!("the event is not valid JSON: {e}"))
        };
        // Source maps (issue 20): JavaScript frames mapped before grouping and culprit; the
        // minified frames stay in the payload as `raw_stacktrace`.
        let symbolicated =
            (self.inner().sourcemaps.get()).and_then(|maps| maps.symbolicate(project_id, raw));
        let raw: &[u8] = symbolicated.as_deref().unwrap_or(raw);
        // Only what grouping reads is parsed into values; the payload is stored as sent.
        let mut event = crate::issues::project::parse_for_grouping(raw).map_err(invalid)?;
        // dash (issue 16): a browser event without a user is the client's address's user.
        let auto_ip = client_ip.filter(|_| auto_user::wants_ip(&event));
        if let Some(ip) = auto_ip {
            auto_user::set_ip(&mut event, ip);
        }
        let Some(obj) = event.as_object() else {
            return Err(IngestError::InvalidJson(
                "the event must be a JSON object".into(),
            ));
        };
        let payload_id = obj
            .get("event_id")
            .and_then(Value::as_str)
            .and_then(envelope::normalize_event_id);
        let event_id = envelope_event_id
            .and_then(envelope::normalize_event_id)
            .or(payload_id.clone())
            .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
        let received_ms = now_ms();
        let (grouped, secondary_hash) =
            self.inner()
                .issues
                .group(project_id, grouping_version, &event);
        let fixed_id = payload_id.as_deref() != Some(event_id.as_str());
        let has_timestamp = obj.contains_key("timestamp");
        // Freed before a full parse below: never two trees of one event at once.
        drop(event);
        let rewritten;
        let json: &[u8] = if fixed_id || !has_timestamp || auto_ip.is_some() {
            // Rare (SDKs send both): rewrite the whole document with the id and time filled in.
            let mut full: Value = serde_json::from_slice(raw).map_err(invalid)?;
            let obj = full.as_object_mut().expect("checked above");
            obj.insert("event_id".into(), Value::String(event_id.clone()));
            obj.entry("timestamp")
                .or_insert_with(|| Value::from(received_ms as f64 / 1000.0));
            if let Some(ip) = auto_ip {
                auto_user::set_ip(&mut full, ip);
            }
            rewritten = serde_json::to_vec(&full).map_err(invalid)?;
            &rewritten
        } else {
            raw
        };
        let (payload, reference) =
            self.inner()
                .issues
                .compress_event(project_id, &grouped.hash, json);
        Ok(PreparedEvent {
            project_id,
            event_id,
            grouped,
            grouping_version,
            secondary_hash,
            payload,
            received_ms,
            reference,
        })
    }

    /// Reads an envelope's items from `stream` one at a time and turns them into writer work:
    /// only one item's payload is held at once (attachments over a cap are read past, not
    /// kept). Every JSON item is capped at `[ingest] max_event_size` and read into the few
    /// fields Hearth keeps (see [`items`]).
    pub fn prepare_stream<R: std::io::BufRead>(
        &self,
        project_id: u64,
        grouping_version: u32,
        header: &envelope::EnvelopeHeader,
        stream: &mut envelope::Stream<R>,
        client_ip: Option<std::net::IpAddr>,
    ) -> Result<Prepared, IngestError> {
        let mut prep = Prep {
            ingest: self,
            client_ip,
            project_id,
            grouping_version,
            header_id: header
                .event_id
                .get()
                .and_then(|s| envelope::normalize_event_id(s)),
            event_id: None,
            works: Vec::new(),
            attachments_over: false,
            att_count: 0,
            att_bytes: 0,
            not_stored: Vec::new(),
            now: now_ms(),
            held: 0,
        };
        prep.event_id = prep.header_id.clone();
        while let Some(item) = stream.next_item(|h| prep.keep(h)).map_err(stream_error)? {
            let before = prep.works.len();
            prep.item(&item)?;
            if prep.works.len() > before {
                prep.hold()?;
            }
        }
        let Prep {
            event_id,
            mut works,
            attachments_over,
            not_stored,
            ..
        } = prep;
        if !not_stored.is_empty() {
            works.push(Work::ClientReport {
                project_id,
                outcomes: not_stored
                    .into_iter()
                    .map(|(c, q)| (NOT_STORED.to_string(), c, q))
                    .collect(),
            });
        }
        Ok(Prepared {
            event_id,
            works,
            attachments_over,
        })
    }

    /// Hands `works` to the writer and waits until they are committed.
    pub async fn submit(&self, works: Vec<Work>) -> Result<Committed, IngestError> {
        let inner = self.inner();
        if works.is_empty() {
            return Ok(Committed::default());
        }
        if let Some(full) = storage_full(&inner.db, false) {
            return Err(full);
        }
        let (reply, rx) = oneshot::channel();
        match inner.tx.try_send(Msg::Job(Job { works, reply })) {
            Ok(()) => {
                inner.metrics.queued.fetch_add(1, Ordering::Relaxed);
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                inner.metrics.backpressure.fetch_add(1, Ordering::Relaxed);
                return Err(IngestError::Backpressure);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(IngestError::Unavailable),
        }
        match rx.await {
            Ok(Ok(committed)) => {
                inner.metrics.accepted.fetch_add(1, Ordering::Relaxed);
                Ok(committed)
            }
            Ok(Err(e)) => Err(storage_full(&inner.db, true).unwrap_or(IngestError::Commit(e))),
            Err(_) => Err(IngestError::Unavailable),
        }
    }

    /// Reads, prepares and commits an envelope whose header was read already. A large body
    /// is read (decompressed, parsed, events grouped, attachments compressed) on the blocking
    /// pool, so it never holds up the async workers that answer other requests.
    pub async fn prepare_envelope(
        &self,
        project_id: u64,
        grouping_version: u32,
        header: envelope::EnvelopeHeader,
        stream: envelope::Stream<Box<dyn std::io::BufRead + Send>>,
        large: bool,
        client_ip: Option<std::net::IpAddr>,
    ) -> Result<Prepared, IngestError> {
        let this = self.clone();
        let prepare = move || {
            let mut stream = stream;
            this.prepare_stream(
                project_id,
                grouping_version,
                &header,
                &mut stream,
                client_ip,
            )
        };
        if large {
            crate::store::run_blocking(prepare).await
        } else {
            prepare()
        }
    }

    /// Commits a prepared envelope; the reply says what was stored.
    pub async fn submit_envelope(&self, prepared: Prepared) -> Result<Accepted, IngestError> {
        let only_attachments = !prepared.works.is_empty()
            && prepared
                .works
                .iter()
                .all(|w| matches!(w, Work::CompressedAttachment { .. }));
        let sent_any = !prepared.works.is_empty();
        let committed = self.submit(prepared.works).await?;
        let limited = committed
            .attachments_limited
            .or(prepared.attachments_over.then_some(ATTACHMENT_RETRY_AFTER));
        Ok(Accepted {
            id: prepared.event_id,
            outcomes: committed.events,
            attachments_limited: limited,
            nothing_stored: limited.is_some()
                && committed.stored == 0
                && (only_attachments || !sent_any),
        })
    }

    /// The DSN key named in an envelope header's `dsn`, if any.
    pub fn key_from_envelope_header(header: &envelope::EnvelopeHeader) -> Option<String> {
        let url = url::Url::parse(header.dsn.get()?).ok()?;
        (!url.username().is_empty()).then(|| url.username().to_string())
    }
}

/// The one hook of disk-full handling (`store::space`) in ingest: while the data directory is
/// full, or after a commit or log write failed (`failed`) because it just filled, the request
/// is answered 503 with Retry-After instead of being queued or called a 500.
fn storage_full(db: &Db, failed: bool) -> Option<IngestError> {
    let full = if failed {
        db.space().check_now()
    } else {
        db.space().refuse_write(true)
    };
    full.then_some(IngestError::Store(StoreError::DiskFull))
}

/// Turns envelope items into writer work, one at a time (see [`Ingest::prepare_stream`]).
struct Prep<'i> {
    ingest: &'i Ingest,
    /// The client's address, for events that get an IP-based user (`auto_user`).
    client_ip: Option<std::net::IpAddr>,
    project_id: u64,
    grouping_version: u32,
    header_id: Option<String>,
    event_id: Option<String>,
    works: Vec<Work>,
    attachments_over: bool,
    att_count: u64,
    att_bytes: u64,
    /// Items accepted but not stored, by client-report category.
    not_stored: Vec<(String, u64)>,
    now: i64,
    /// Bytes the prepared work holds (compressed payloads).
    held: usize,
}

impl Prep<'_> {
    /// What one envelope's prepared work may hold: a full event's worth of attachments and a
    /// few events or transactions (all compressed, so usually far less).
    fn held_limit(&self) -> usize {
        let cfg = &self.ingest.inner().config.ingest;
        cfg.max_attachment_bytes_per_event.as_usize() + 4 * cfg.max_event_size.as_usize()
    }

    /// Counts what the last prepared work holds; past [`Prep::held_limit`] the envelope is
    /// refused rather than held.
    fn hold(&mut self) -> Result<(), IngestError> {
        let held = match self.works.last() {
            Some(Work::Event(e)) => e.payload.len(),
            Some(Work::Transaction { row, .. }) => row.payload.len(),
            Some(Work::CompressedAttachment { attachment, .. }) => attachment.zstd.len(),
            _ => 0,
        };
        self.held += held;
        let limit = self.held_limit();
        if self.held > limit {
            return Err(IngestError::TooLarge(format!(
                "the envelope's items take more than {limit} bytes even compressed; send events \
                 in envelopes of their own"
            )));
        }
        Ok(())
    }
}

fn stream_error(e: envelope::StreamError) -> IngestError {
    match e {
        envelope::StreamError::Envelope(e) => IngestError::Malformed(e.to_string()),
        envelope::StreamError::TooLarge(m) => {
            IngestError::TooLarge(format!("{m} ([ingest] max_decompressed_size)"))
        }
        envelope::StreamError::ItemTooLarge { ty, limit } => IngestError::TooLarge(format!(
            "the {ty} item is larger than {limit} bytes ([ingest] max_event_size)"
        )),
        envelope::StreamError::Io(m) => IngestError::Malformed(m),
    }
}

/// Item types whose payload is JSON that Hearth reads (each at most `max_event_size`).
const JSON_ITEMS: &[&str] = &[
    "event",
    "error",
    "security",
    "transaction",
    "session",
    "sessions",
    "client_report",
    "check_in",
    "user_report",
    "feedback",
];

impl Prep<'_> {
    /// What to keep of an item's payload, from its header.
    fn keep(&self, h: &envelope::ItemHeader) -> envelope::Keep {
        let cfg = &self.ingest.inner().config.ingest;
        let ty = h.ty.get().map_or("", String::as_str);
        if JSON_ITEMS.contains(&ty) {
            return envelope::Keep {
                bytes: cfg.max_event_size.as_usize(),
                error_over: true,
            };
        }
        if ty == "attachment" {
            let len = h.length.get().copied().unwrap_or(0);
            let over = self.att_count + 1 > u64::from(cfg.max_attachments_per_event)
                || self.att_bytes + len > cfg.max_attachment_bytes_per_event.0;
            return envelope::Keep {
                bytes: if over {
                    0
                } else {
                    cfg.max_attachment_size.as_usize()
                },
                error_over: false,
            };
        }
        // Counted, not stored: nothing of it is kept.
        envelope::Keep {
            bytes: 0,
            error_over: false,
        }
    }

    fn item(&mut self, item: &envelope::OwnedItem) -> Result<(), IngestError> {
        let cfg = &self.ingest.inner().config.ingest;
        let (project_id, grouping_version, now) =
            (self.project_id, self.grouping_version, self.now);
        let max_item = cfg.max_event_size.as_usize();
        let header_id = self.header_id.clone();
        let event_id = &mut self.event_id;
        let works = &mut self.works;
        let not_stored = &mut self.not_stored;
        fn parse<'a, T: serde::Deserialize<'a>>(
            item: &'a envelope::OwnedItem,
            max_item: usize,
        ) -> Result<T, IngestError> {
            if item.payload.len() > max_item {
                return Err(IngestError::TooLarge(format!(
                    "the {} item is {} bytes; the limit is {max_item} ([ingest] max_event_size)",
                    item.ty(),
                    item.payload.len()
                )));
            }
            items::parse(&item.payload).map_err(|e| {
                IngestError::InvalidJson(format!("the {} item is not valid JSON: {e}", item.ty()))
            })
        }
        match item.ty() {
            "event" | "error" | "security" => {
                let ev = self.ingest.prepare_event(
                    project_id,
                    grouping_version,
                    &item.payload,
                    header_id.as_deref(),
                    self.client_ip,
                )?;
                event_id.get_or_insert_with(|| ev.event_id.clone());
                works.push(Work::Event(Box::new(ev)));
            }
            "transaction" => {
                let v: items::Transaction = parse(item, max_item)?;
                let eid = header_id
                    .clone()
                    .or_else(|| items::text(&v.event_id))
                    .unwrap_or_default();
                event_id.get_or_insert_with(|| eid.clone());
                let start = v.start_timestamp.get().map(|m| m.0);
                let end = v.timestamp.get().map(|m| m.0);
                works.push(Work::Transaction {
                    project_id,
                    row: TransactionRow {
                        event_id: eid,
                        name: items::text(&v.transaction).unwrap_or_default(),
                        op: v
                            .contexts
                            .as_ref()
                            .and_then(|c| c.trace.as_ref())
                            .and_then(|t| items::text(&t.op)),
                        duration_ms: match (start, end) {
                            (Some(s), Some(e)) => Some((e - s) as f64),
                            _ => None,
                        },
                        span_count: v.spans.0,
                        received_ms: now,
                        payload: codec::compress_json(&item.payload),
                    },
                });
            }
            "session" => {
                let v: items::Session = parse(item, max_item)?;
                let attrs = v.attrs.unwrap_or_default();
                let Some(release) = items::text(&attrs.release) else {
                    return Ok(());
                };
                let status = items::text(&v.status).unwrap_or_else(|| "ok".into());
                let errors = v.errors.get().copied().unwrap_or(0);
                // Sentry's order: crashed and abnormal are worse than errored.
                let state = match status.as_str() {
                    "crashed" => 3,
                    "abnormal" => 2,
                    "errored" => 1,
                    _ if errors > 0 => 1,
                    _ => 0,
                };
                let sid: String = items::text(&v.sid)
                    .map(|s| s.chars().take(64).collect())
                    .unwrap_or_default();
                let release: String = release.chars().take(200).collect();
                let user = match items::text(&v.did) {
                    Some(did) => Some(did.chars().take(200).collect::<String>()),
                    None if items::text(&attrs.ip_address).as_deref() == Some("{{auto}}") => {
                        self.client_ip.map(|ip| format!("ip:{ip}"))
                    }
                    None => None,
                };
                works.push(Work::SessionUpdate {
                    project_id,
                    sid: sid.clone(),
                    release: release.clone(),
                    environment: items::text(&attrs.environment),
                    init: v.init.get().copied().unwrap_or(false),
                    state,
                    exited: status == "exited",
                });
                if let Some(user) = user {
                    works.push(Work::SessionUser {
                        project_id,
                        sid,
                        release,
                        state,
                        user,
                    });
                }
            }
            "sessions" => {
                let v: items::Sessions = parse(item, max_item)?;
                let attrs = v.attrs.unwrap_or_default();
                let Some(release) = items::text(&attrs.release) else {
                    return Ok(());
                };
                for agg in &v.aggregates.0 {
                    let n = |f: &items::Lenient<u64>| f.get().copied().unwrap_or(0);
                    let (ex, er, ab, cr) = (
                        n(&agg.exited),
                        n(&agg.errored),
                        n(&agg.abnormal),
                        n(&agg.crashed),
                    );
                    works.push(Work::Session {
                        project_id,
                        release: release.chars().take(200).collect(),
                        environment: items::text(&attrs.environment),
                        started: ex + er + ab + cr,
                        exited: ex,
                        errored: er,
                        crashed: cr,
                        abnormal: ab,
                    });
                    // dash (issue 16): a bucket with a distinct id is that user's sessions.
                    if let Some(did) = items::text(&agg.did) {
                        let state = match (cr, ab, er) {
                            (1.., _, _) => 3,
                            (0, 1.., _) => 2,
                            (0, 0, 1..) => 1,
                            _ => 0,
                        };
                        works.push(Work::SessionUser {
                            project_id,
                            sid: String::new(),
                            release: release.chars().take(200).collect(),
                            state,
                            user: did.chars().take(200).collect(),
                        });
                    }
                }
            }
            "client_report" => {
                let v: items::ClientReport = parse(item, max_item)?;
                let mut outcomes = Vec::new();
                for (key, list) in [
                    ("discarded_events", &v.discarded_events),
                    ("rate_limited_events", &v.rate_limited_events),
                    ("filtered_events", &v.filtered_events),
                ] {
                    for d in &list.0 {
                        outcomes.push((
                            report_name(items::text(&d.reason).as_deref().unwrap_or(key)),
                            report_name(items::text(&d.category).as_deref().unwrap_or("")),
                            d.quantity.get().copied().unwrap_or(0),
                        ));
                    }
                }
                works.push(Work::ClientReport {
                    project_id,
                    outcomes,
                });
            }
            "check_in" => {
                let v: items::CheckIn = parse(item, max_item)?;
                let Some(slug) = items::text(&v.monitor_slug) else {
                    return Ok(());
                };
                let id = items::text(&v.check_in_id)
                    .and_then(|s| envelope::normalize_event_id(&s))
                    .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
                works.push(Work::CheckIn {
                    project_id,
                    slug: slug.chars().take(128).collect(),
                    check_in: CheckIn {
                        check_in_id: id,
                        status: items::text(&v.status).unwrap_or_else(|| "ok".into()),
                        duration_s: v.duration.get().copied(),
                        started_ms: now,
                        updated_ms: now,
                        environment: items::text(&v.environment),
                        release: items::text(&v.release),
                    },
                    // A monitor's config is a few hundred bytes; a huge one is not kept.
                    config: v
                        .monitor_config
                        .map(|c| c.get())
                        .filter(|c| c.len() <= 16 * 1024)
                        .map(str::to_string),
                });
            }
            "user_report" => {
                let v: items::UserReport = parse(item, max_item)?;
                works.push(Work::Feedback {
                    project_id,
                    feedback: Feedback {
                        id: 0,
                        kind: "user_report".into(),
                        event_id: items::text(&v.event_id)
                            .and_then(|s| envelope::normalize_event_id(&s)),
                        issue_id: None,
                        name: items::text(&v.name),
                        email: items::text(&v.email),
                        message: items::text(&v.comments).unwrap_or_default(),
                        url: None,
                        received_ms: now,
                    },
                });
            }
            "feedback" => {
                let v: items::Feedback = parse(item, max_item)?;
                let fb = v.contexts.and_then(|c| c.feedback).unwrap_or_default();
                works.push(Work::Feedback {
                    project_id,
                    feedback: Feedback {
                        id: 0,
                        kind: "feedback".into(),
                        event_id: items::text(&fb.associated_event_id)
                            .and_then(|s| envelope::normalize_event_id(&s)),
                        issue_id: None,
                        name: items::text(&fb.name),
                        email: items::text(&fb.contact_email),
                        message: items::text(&fb.message)
                            .unwrap_or_default()
                            .chars()
                            .take(4096)
                            .collect(),
                        url: items::text(&fb.url),
                        received_ms: now,
                    },
                });
            }
            "attachment" => {
                let Some(eid) = event_id.clone().or(header_id.clone()) else {
                    return Ok(());
                };
                let size = item.size;
                // Over a per-event cap within this envelope: not kept at all (see `keep`). The
                // writer checks again against what the event already has, and the day's.
                self.att_count += 1;
                self.att_bytes += size;
                if self.att_count > u64::from(cfg.max_attachments_per_event)
                    || self.att_bytes > cfg.max_attachment_bytes_per_event.0
                {
                    self.attachments_over = true;
                    return Ok(());
                }
                let cap = cfg.max_attachment_size.0;
                let h = &item.header;
                let meta = Attachment {
                    project_id,
                    filename: h
                        .filename
                        .get()
                        .map_or("attachment", String::as_str)
                        .chars()
                        .take(255)
                        .collect(),
                    content_type: h.content_type.get().map(|s| s.chars().take(255).collect()),
                    attachment_type: h
                        .attachment_type
                        .get()
                        .map(|s| s.chars().take(255).collect()),
                    size,
                    truncated: size > cap,
                    data: Vec::new(),
                };
                let mut stored = CompressedAttachment::new(meta, now);
                stored.stored = item.payload.len() as u64;
                stored.zstd = store::compress(&item.payload);
                works.push(Work::CompressedAttachment {
                    event_id: eid,
                    attachment: stored,
                });
            }
            // Span v2 streams (the Node SDK's default), profiles, replays, logs, metrics
            // and unknown types are accepted but not stored; they are counted where client
            // reports are, as reason `not_stored_by_hearth`, so the loss is visible.
            other => {
                let category = match other {
                    "span" => "span",
                    "profile" | "profile_chunk" => "profile",
                    "replay_event" | "replay_recording" | "replay_video" => "replay",
                    "log" => "log_item",
                    "statsd" | "metric_buckets" => "metric_bucket",
                    "" => "unknown",
                    _ => "unknown",
                };
                let n = item.header.item_count.get().copied().unwrap_or(1).max(1);
                match not_stored.iter_mut().find(|(c, _)| c == category) {
                    Some((_, q)) => *q += n,
                    None => not_stored.push((category.to_string(), n)),
                }
            }
        }
        Ok(())
    }
}

/// The writer's side of the ingest log (see [`wal`]).
struct Log {
    wal: wal::Wal,
    next_seq: u64,
    /// Bytes appended since the log last started over, and when the last synced commit was.
    cycle_bytes: u64,
    last_checkpoint: Instant,
    /// The next record starts the log over (the commit before it was synced).
    restart: bool,
    /// Issues whose reference document a record of this cycle already holds.
    logged_references: HashSet<u64>,
    /// Records of this cycle whose commit failed: replay skips them.
    aborted: Vec<u64>,
}

/// A batch's jobs, each the work of one request.
type Batch = Vec<Vec<Work>>;

/// Format of a logged batch; a log of another format is refused rather than misread.
const LOG_FORMAT: u8 = 1;

/// A batch as the ingest log holds it.
#[derive(serde::Serialize, serde::Deserialize)]
struct LoggedBatch<'a> {
    format: u8,
    aborted: Vec<u64>,
    /// Reference documents (JSON) this cycle's events are compressed against, each logged once
    /// per cycle, by issue id.
    #[serde(borrow)]
    references: Vec<(u64, Cow<'a, [u8]>)>,
    jobs: Vec<Vec<LoggedWork<'a>>>,
}

#[derive(serde::Serialize, serde::Deserialize)]
enum LoggedWork<'a> {
    #[serde(borrow)]
    Event(LoggedEvent<'a>),
    Other(Cow<'a, Work>),
}

#[derive(serde::Serialize, serde::Deserialize)]
struct LoggedEvent<'a> {
    project_id: u64,
    event_id: Cow<'a, str>,
    grouped: Cow<'a, grouping::Grouped>,
    grouping_version: u32,
    payload: Cow<'a, [u8]>,
    received_ms: i64,
    /// The issue whose reference the payload is compressed against.
    reference: Option<u64>,
}

impl Log {
    /// This batch's record; references not yet in this cycle go in with it.
    fn record(&mut self, jobs: &[Vec<Work>]) -> Vec<u8> {
        let mut references = Vec::new();
        let jobs = jobs
            .iter()
            .map(|job| {
                job.iter()
                    .map(|w| match w {
                        Work::Event(e) => {
                            if let Some((id, r)) = &e.reference
                                && self.logged_references.insert(*id)
                            {
                                references.push((*id, Cow::Borrowed(r.doc())));
                            }
                            LoggedWork::Event(LoggedEvent {
                                project_id: e.project_id,
                                event_id: Cow::Borrowed(&e.event_id),
                                grouped: Cow::Borrowed(&e.grouped),
                                grouping_version: e.grouping_version,
                                payload: Cow::Borrowed(&e.payload),
                                received_ms: e.received_ms,
                                reference: e.reference.as_ref().map(|(id, _)| *id),
                            })
                        }
                        other => LoggedWork::Other(Cow::Borrowed(other)),
                    })
                    .collect()
            })
            .collect();
        let batch = LoggedBatch {
            format: LOG_FORMAT,
            aborted: self.aborted.clone(),
            references,
            jobs,
        };
        postcard::to_stdvec(&batch).expect("a batch serializes")
    }

    fn checkpoint_due(&self, interval: Duration) -> bool {
        self.last_checkpoint.elapsed() >= interval || self.cycle_bytes >= wal::CHECKPOINT_BYTES
    }
}

/// The batches of a log cycle after `applied`, as work again (aborted ones left out).
/// `stored_reference` reads an issue's reference document from the database, for an event
/// whose reference the log lacks (the record that held it failed to write).
fn replayable(
    records: &[wal::Record],
    applied: u64,
    stored_reference: impl Fn(u64) -> Option<Vec<u8>>,
) -> Result<Vec<(u64, Batch)>, IngestError> {
    // After a clean stop every record is in the database: nothing to decode.
    if records.last().is_none_or(|r| r.seq <= applied) {
        return Ok(Vec::new());
    }
    // Reference documents as logged, prepared for decompression only when an event uses one.
    let mut docs: HashMap<u64, Vec<u8>> = HashMap::new();
    let mut references: HashMap<u64, Arc<codec::Reference>> = HashMap::new();
    let mut aborted: HashSet<u64> = HashSet::new();
    let mut batches = Vec::new();
    for r in records {
        let batch = match postcard::from_bytes::<LoggedBatch>(&r.payload) {
            Ok(b) if b.format == LOG_FORMAT => b,
            _ if r.seq <= applied => continue,
            _ => {
                return Err(IngestError::Commit(format!(
                    "the ingest log's record {} was written by another version of Hearth; \
                     start that version once so it commits the log, then upgrade",
                    r.seq
                )));
            }
        };
        aborted.extend(&batch.aborted);
        for (id, doc) in batch.references {
            docs.insert(id, doc.into_owned());
        }
        if r.seq <= applied {
            continue;
        }
        let mut jobs = Vec::with_capacity(batch.jobs.len());
        for job in batch.jobs {
            let mut works = Vec::with_capacity(job.len());
            for w in job {
                works.push(match w {
                    LoggedWork::Other(w) => w.into_owned(),
                    LoggedWork::Event(e) => {
                        let reference = match e.reference {
                            None => None,
                            Some(id) => {
                                if let Entry::Vacant(v) = references.entry(id)
                                    && let Some(doc) =
                                        docs.remove(&id).or_else(|| stored_reference(id))
                                {
                                    v.insert(Arc::new(codec::Reference::new(doc)));
                                }
                                let Some(reference) = references.get(&id) else {
                                    tracing::error!(
                                        event_id = %e.event_id,
                                        "the ingest log's record {} holds an event compressed \
                                         against a reference that neither the log nor the \
                                         database has; it cannot be restored",
                                        r.seq
                                    );
                                    continue;
                                };
                                Some((id, reference.clone()))
                            }
                        };
                        Work::Event(Box::new(PreparedEvent {
                            project_id: e.project_id,
                            event_id: e.event_id.into_owned(),
                            grouped: e.grouped.into_owned(),
                            grouping_version: e.grouping_version,
                            // Not logged: recomputed from the payload by `recover` when
                            // the project was in a grouping transition.
                            secondary_hash: None,
                            payload: e.payload.into_owned(),
                            received_ms: e.received_ms,
                            reference,
                        }))
                    }
                });
            }
            jobs.push(works);
        }
        batches.push((r.seq, jobs));
    }
    // The log continues the database only if its first record the database lacks is the one
    // right after the database's last; otherwise (a restored backup, say) it is another history.
    if batches.first().is_some_and(|(seq, _)| *seq != applied + 1) {
        tracing::warn!(
            "the ingest log starts at record {} but the database ends at {applied}; not replaying it",
            batches[0].0
        );
        return Ok(Vec::new());
    }
    batches.retain(|(seq, _)| !aborted.contains(seq));
    Ok(batches)
}

/// A replayed event's hash on the previous grouping version, as it had when received: while
/// its project was in transition after a grouping upgrade, the event must still find the issue
/// of its previous-version hash (the log holds the current hash only). The payload is read
/// again only for a project in transition.
fn restore_secondary_hash(issues: &Issues, e: &mut PreparedEvent) {
    let (payload, reference) = (&e.payload, &e.reference);
    e.secondary_hash = issues.secondary_hash(
        e.project_id,
        e.grouping_version,
        e.received_ms,
        &e.grouped.hash,
        || {
            let json = match reference {
                Some((_, r)) => codec::decompress_json_against(payload, r.doc()),
                None => codec::decompress_json(payload),
            }
            .ok()?;
            crate::issues::project::parse_for_grouping(&json).ok()
        },
    );
}

const WAL_APPLIED: &str = "wal_applied";
const WAL_ID: &str = "wal_id";

impl Ingest {
    /// Opens the ingest log and commits again every batch it holds that the database lost in a
    /// crash (committed unsynced, acknowledged once the log had it). Called once by `build()`,
    /// before anything serves; the writer then appends to the same log.
    pub fn recover(&self) -> Result<u64, IngestError> {
        let inner = self.inner();
        let (id, applied) = inner.db.read_blocking(|txn| {
            let t = txn.open_table(COUNTERS)?;
            let get = |k| Ok::<_, IngestError>(t.get(k)?.map(|v| v.value()));
            Ok::<_, IngestError>((get(WAL_ID)?, get(WAL_APPLIED)?.unwrap_or(0)))
        })?;
        // The log's id is durable before the log is written under it.
        let id = match id {
            Some(id) => id,
            None => inner.db.write_blocking(|txn| {
                let id = rand::random::<u64>().max(1);
                txn.open_table(COUNTERS)?.insert(WAL_ID, id)?;
                Ok::<_, IngestError>(id)
            })?,
        };
        let path = inner.config.storage.data_dir.join("ingest.wal");
        let (wal, records) = wal::Wal::open(&path, id)
            .map_err(|e| IngestError::Commit(format!("{}: {e}", path.display())))?;
        let last = records.last().map_or(0, |r| r.seq);
        let batches = replayable(&records, applied, |issue_id| {
            let row = inner.db.read_blocking(|txn| {
                let t = txn.open_table(crate::issues::store::REFERENCES)?;
                Ok::<_, StoreError>(t.get(issue_id)?.map(|v| v.value().to_vec()))
            });
            codec::decompress_json(&row.ok()??).ok()
        })?;
        let replayed = batches.len() as u64;
        let mut batches = batches;
        for (_, jobs) in &mut batches {
            for w in jobs.iter_mut().flatten() {
                if let Work::Event(e) = w {
                    restore_secondary_hash(&inner.issues, e);
                }
            }
        }
        for (seq, jobs) in batches {
            inner.db.write_blocking_with(false, |txn| {
                commit_batch(&inner.issues, &inner.metrics, &inner.config, txn, &jobs)?;
                txn.open_table(COUNTERS)?.insert(WAL_APPLIED, seq)?;
                Ok::<_, IngestError>(())
            })?;
        }
        if replayed > 0 {
            // One synced commit makes the replayed ones durable before the log is reused.
            inner.db.write_blocking(|_| Ok::<_, IngestError>(()))?;
            tracing::warn!("committed {replayed} batches again from the ingest log after a crash");
        }
        inner
            .metrics
            .replayed
            .fetch_add(replayed, Ordering::Relaxed);
        if inner.config.ingest.checkpoint_interval.get().is_zero() {
            // Every batch commits synced; the log was only read (a crash while it was on).
            return Ok(replayed);
        }
        *inner.log.lock().expect("ingest log") = Some(Log {
            wal,
            next_seq: applied.max(last) + 1,
            cycle_bytes: 0,
            last_checkpoint: Instant::now(),
            restart: true,
            logged_references: HashSet::new(),
            aborted: Vec::new(),
        });
        Ok(replayed)
    }
}

/// The group-commit writer: a thread of its own, so that committing batch after batch does not
/// wait for a turn on the async workers (which are busy preparing requests) twice per batch.
struct Writer {
    config: Arc<Config>,
    db: Db,
    issues: Issues,
    metrics: Arc<Metrics>,
    /// Without the log (`checkpoint_interval` 0, or recover() not called) every commit is synced.
    log: Option<Log>,
}

type Reply = oneshot::Sender<Result<Committed, String>>;

/// A batch smaller than [`LINGER_BELOW`] events waits [`LINGER`] once for more before it
/// commits. Each commit has a fixed cost (tables opened, issue rows and counters rewritten, a
/// log record, redb's commit), so under load ~10-event batches take less CPU per event than
/// ~5-event ones; measured on 2 cores at 32 connections: +7% events per CPU-second and +2-6%
/// throughput. When the writer is the bottleneck its queue fills batches and it never waits;
/// a lone request waits 0.3 ms more.
const LINGER: Duration = Duration::from_micros(300);
const LINGER_BELOW: usize = 8;

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Msg>, runtime: &tokio::runtime::Handle) {
        let max_batch = self.config.ingest.max_batch.max(1);
        loop {
            let first = match rx.blocking_recv() {
                Some(Msg::Job(j)) => j,
                // Refuse new work, but commit what was already accepted into the queue.
                Some(Msg::Stop) => {
                    rx.close();
                    continue;
                }
                None => break,
            };
            let mut events = first.works.len();
            let mut batch = vec![first];
            let mut lingered = false;
            while events < max_batch {
                match rx.try_recv() {
                    Ok(Msg::Job(j)) => {
                        events += j.works.len();
                        batch.push(j);
                    }
                    Ok(Msg::Stop) => rx.close(),
                    Err(_) if !lingered && events < LINGER_BELOW => {
                        lingered = true;
                        std::thread::sleep(LINGER);
                    }
                    Err(_) => break,
                }
            }
            self.metrics
                .queued
                .fetch_sub(batch.len() as u64, Ordering::Relaxed);
            let (works, replies): (Vec<Vec<Work>>, Vec<Reply>) =
                batch.into_iter().map(|j| (j.works, j.reply)).unzip();
            self.commit(works, replies, runtime);
        }
        // Stopping: one synced commit, so a restart has nothing to replay.
        if self.log.is_some() {
            let _ = self.db.write_blocking(|_| Ok::<_, StoreError>(()));
        }
    }

    /// Commits one batch and answers its requests once the log has its record too; the next
    /// batch need not wait for that.
    fn commit(&mut self, works: Batch, replies: Vec<Reply>, runtime: &tokio::runtime::Handle) {
        let started = Instant::now();
        let interval = self.config.ingest.checkpoint_interval.get();
        let log_failed = self.log.as_mut().is_some_and(|l| {
            let failed = l.wal.take_failure();
            if failed {
                l.logged_references.clear();
            }
            failed
        });
        let synced = log_failed || self.log.as_ref().is_none_or(|l| l.checkpoint_due(interval));
        // The record goes to the log thread first, so its fsync overlaps this commit.
        let logged = self.log.as_mut().map(|l| {
            let seq = l.next_seq;
            l.next_seq += 1;
            let record = wal::frame(seq, &l.record(&works));
            l.cycle_bytes += record.len() as u64;
            self.metrics
                .log_bytes
                .fetch_add(record.len() as u64, Ordering::Relaxed);
            let restart = std::mem::take(&mut l.restart);
            (seq, l.wal.append(record, restart))
        });
        let seq = logged.as_ref().map(|(seq, _)| *seq);
        let commit_started = Instant::now();
        let mut apply_us = 0;
        let result = self.db.write_blocking_with(synced, |txn| {
            let t = Instant::now();
            let out = commit_batch(&self.issues, &self.metrics, &self.config, txn, &works);
            if let (Ok(_), Some(seq)) = (&out, seq) {
                txn.open_table(COUNTERS)?.insert(WAL_APPLIED, seq)?;
            }
            apply_us = t.elapsed().as_micros() as u64;
            out
        });
        let m = &self.metrics;
        if let Some(l) = self.log.as_mut() {
            match (&result, seq) {
                (Ok(_), _) if synced => {
                    m.checkpoints.fetch_add(1, Ordering::Relaxed);
                    m.checkpoint_us.fetch_add(
                        commit_started.elapsed().as_micros() as u64,
                        Ordering::Relaxed,
                    );
                    l.restart = true;
                    l.cycle_bytes = 0;
                    l.last_checkpoint = Instant::now();
                    l.logged_references.clear();
                    l.aborted.clear();
                }
                (Err(_), Some(seq)) => l.aborted.push(seq),
                _ => {}
            }
        }
        m.apply_us.fetch_add(apply_us, Ordering::Relaxed);
        let total = started.elapsed().as_micros() as u64;
        m.commit_us
            .fetch_add(total.saturating_sub(apply_us), Ordering::Relaxed);
        m.batches.fetch_add(1, Ordering::Relaxed);
        m.batch_events
            .fetch_add(replies.len() as u64, Ordering::Relaxed);
        let result = result.map_err(|e| e.to_string());
        match logged.map(|(_, done)| done) {
            None => answer(replies, result, Ok(())),
            // Usually the log's sync has finished while the batch committed.
            Some(mut done) => match done.try_recv() {
                Ok(logged) => answer(replies, result, logged),
                Err(oneshot::error::TryRecvError::Empty) => {
                    runtime.spawn(async move {
                        let logged = done
                            .await
                            .unwrap_or_else(|_| Err("ingest log stopped".into()));
                        answer(replies, result, logged);
                    });
                }
                Err(oneshot::error::TryRecvError::Closed) => {
                    answer(replies, result, Err("ingest log stopped".into()))
                }
            },
        }
    }
}

/// Answers a batch's requests: committed and logged, or why not.
fn answer(
    replies: Vec<Reply>,
    committed: Result<Vec<Committed>, String>,
    logged: Result<(), String>,
) {
    match (committed, logged) {
        (Ok(per_job), Ok(())) => {
            for (reply, outcomes) in replies.into_iter().zip(per_job) {
                let _ = reply.send(Ok(outcomes));
            }
        }
        (Err(e), _) => {
            tracing::error!("ingest batch commit failed: {e}");
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
        (Ok(_), Err(e)) => {
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}

/// Commits one batch of jobs in `txn`; returns what was done per job.
fn commit_batch(
    issues: &Issues,
    metrics: &Metrics,
    config: &Config,
    txn: &WriteTransaction,
    jobs: &[Vec<Work>],
) -> Result<Vec<Committed>, IngestError> {
    let events: Vec<&PreparedEvent> = jobs
        .iter()
        .flatten()
        .filter_map(|w| match w {
            Work::Event(e) => Some(&**e),
            _ => None,
        })
        .collect();
    let mut outcomes = issues
        .commit_events(txn, &events)
        .map_err(|e| IngestError::Commit(e.to_string()))?
        .into_iter();
    let mut per_job = Vec::with_capacity(jobs.len());
    for job in jobs {
        let mut mine = Committed::default();
        for w in job {
            if matches!(w, Work::Event(_)) {
                mine.events
                    .push(outcomes.next().unwrap_or(EventOutcome::Duplicate));
                mine.stored += 1;
            } else {
                metrics.items_other.fetch_add(1, Ordering::Relaxed);
                match commit_other(txn, config, w)? {
                    // Refused (an attachment for another project's event): not a rate limit.
                    Some(0) => {}
                    Some(retry_after) => {
                        mine.attachments_limited =
                            Some(mine.attachments_limited.unwrap_or(0).max(retry_after));
                    }
                    None => mine.stored += 1,
                }
            }
        }
        per_job.push(mine);
    }
    Ok(per_job)
}

/// The project of a stored event, if the event is stored.
fn event_project(txn: &WriteTransaction, event_id: &str) -> Result<Option<u64>, IngestError> {
    let Some((issue_id, _)) = txn
        .open_table(crate::issues::store::EVENT_IDS)?
        .get(event_id)?
        .map(|v| v.value())
    else {
        return Ok(None);
    };
    #[derive(serde::Deserialize)]
    struct IssueHead {
        _id: u64,
        project_id: u64,
    }
    let issues = txn.open_table(crate::issues::store::ISSUES)?;
    let Some(row) = issues.get(issue_id)? else {
        return Ok(None);
    };
    let head: IssueHead = codec::decode_prefix(row.value())?;
    Ok(Some(head.project_id))
}

/// Stores an attachment unless it is over a cap or its event belongs to another project.
/// Returns the seconds to hold attachments back when it was dropped over a cap, `Some(0)`
/// when it was refused for naming another project's event.
fn commit_attachment(
    txn: &WriteTransaction,
    config: &Config,
    event_id: &str,
    a: &CompressedAttachment,
) -> Result<Option<u64>, IngestError> {
    let cfg = &config.ingest;
    match event_project(txn, event_id)? {
        Some(pid) if pid != a.project_id => {
            tracing::warn!(
                event_id,
                project_id = a.project_id,
                "an attachment names an event of another project; not stored"
            );
            return Ok(Some(0));
        }
        _ => {}
    }
    let mut t = txn.open_table(ATTACHMENTS)?;
    let (mut count, mut bytes, mut last) = (0u64, 0u64, None);
    for row in t.range((event_id, 0)..=(event_id, u64::MAX))? {
        let (k, v) = row?;
        count += 1;
        bytes += decode_attachment(v.value())?.size();
        last = Some(k.value().1);
    }
    if count >= u64::from(cfg.max_attachments_per_event)
        || bytes + a.size > cfg.max_attachment_bytes_per_event.0
    {
        return Ok(Some(ATTACHMENT_RETRY_AFTER));
    }
    let now = now_ms();
    let day = day_of(now);
    let per_day = cfg.max_attachment_bytes_per_project_per_day.0;
    let mut daily = txn.open_table(ATTACHMENT_BYTES)?;
    let today = daily
        .get((a.project_id, day))?
        .map(|v| v.value())
        .unwrap_or(0);
    if per_day > 0 && today + a.size > per_day {
        let until_tomorrow = ((day + DAY_MS - now) / 1000).max(1) as u64;
        return Ok(Some(until_tomorrow));
    }
    daily.insert((a.project_id, day), today + a.size)?;
    let n = last.map_or(0, |n| n + 1);
    t.insert((event_id, n), encode_attachment(a).as_slice())?;
    Ok(None)
}

/// Commits one non-event work item; `Some(retry_after)` when it was dropped over a cap.
fn commit_other(
    txn: &WriteTransaction,
    config: &Config,
    w: &Work,
) -> Result<Option<u64>, IngestError> {
    match w {
        Work::Event(_) => {}
        Work::Transaction { project_id, row } => {
            let seq = next_id(txn, "transaction")?;
            txn.open_table(TRANSACTIONS)?
                .insert((*project_id, seq), codec::encode(row).as_slice())?;
        }
        Work::Session {
            project_id,
            release,
            environment,
            started,
            exited,
            errored,
            crashed,
            abnormal,
        } => {
            let mut t = txn.open_table(RELEASE_HEALTH)?;
            let key = (*project_id, release.as_str());
            let mut h: ReleaseHealth = match t.get(key)? {
                Some(v) => codec::decode(v.value())?,
                None => ReleaseHealth::default(),
            };
            h.sessions += started;
            h.exited += exited;
            h.errored += errored;
            h.crashed += crashed;
            h.abnormal += abnormal;
            h.last_seen_ms = now_ms();
            if let Some(env) = environment
                && !h.environments.contains(env)
                && h.environments.len() < 50
            {
                h.environments.push(env.clone());
            }
            t.insert(key, codec::encode(&h).as_slice())?;
        }
        Work::ClientReport {
            project_id,
            outcomes,
        } => {
            let mut t = txn.open_table(CLIENT_REPORTS_DAILY)?;
            let day = day_of(now_ms());
            for (reason, category, qty) in outcomes {
                let mut key = (*project_id, day, reason.as_str(), category.as_str());
                let mut old = t.get(key)?.map(|v| v.value());
                // Reasons and categories are a short list in every SDK; past that many rows a
                // day, new names are counted together rather than growing the table.
                if old.is_none()
                    && t.range((*project_id, day, "", "")..(*project_id, day + 1, "", ""))?
                        .count()
                        >= MAX_REPORT_ROWS_PER_DAY
                {
                    key = (*project_id, day, "other", "other");
                    old = t.get(key)?.map(|v| v.value());
                }
                t.insert(key, old.unwrap_or(0).saturating_add(*qty))?;
            }
        }
        Work::CheckIn {
            project_id,
            slug,
            check_in,
            config,
        } => {
            // A check-in already applied with this status, or one already finished, is not
            // applied again: the same record replayed from the ingest log after a crash, or an
            // SDK's retry, would otherwise count twice toward the monitor's thresholds (and a
            // late update could reopen a finished run). Sentry ignores updates to a finished
            // check-in too.
            let ckey = (*project_id, slug.as_str(), check_in.check_in_id.as_str());
            let old: Option<CheckIn> = match txn.open_table(CHECK_INS)?.get(ckey)? {
                Some(v) => Some(codec::decode(v.value())?),
                None => None,
            };
            if old.as_ref().is_some_and(|o| {
                o.status == check_in.status || matches!(o.status.as_str(), "ok" | "error")
            }) {
                tracing::debug!(
                    project_id,
                    slug,
                    check_in_id = check_in.check_in_id,
                    "check-in already applied; not evaluated again"
                );
                return Ok(None);
            }
            let mut monitors = txn.open_table(MONITORS)?;
            let key = (*project_id, slug.as_str());
            let mut m: Monitor = match monitors.get(key)? {
                Some(v) => codec::decode(v.value())?,
                None => Monitor {
                    slug: slug.clone(),
                    config: None,
                    last_status: String::new(),
                    last_check_in_ms: 0,
                    created_ms: now_ms(),
                },
            };
            if config.is_some() {
                m.config = config.clone();
            }
            m.last_status = check_in.status.clone();
            m.last_check_in_ms = check_in.updated_ms;
            monitors.insert(key, codec::encode(&m).as_slice())?;
            let mut cis = txn.open_table(CHECK_INS)?;
            let merged = match old {
                Some(mut old) => {
                    old.status = check_in.status.clone();
                    old.updated_ms = check_in.updated_ms;
                    old.duration_s = check_in.duration_s.or(old.duration_s);
                    old
                }
                None => check_in.clone(),
            };
            cis.insert(ckey, codec::encode(&merged).as_slice())?;
            drop((monitors, cis));
            // Uptime evaluates it in this transaction (cron monitors: late, missed, timed out).
            crate::uptime::signals::sentry_check_in(
                txn,
                *project_id,
                slug,
                &check_in.check_in_id,
                &check_in.status,
                check_in.duration_s,
                config.as_deref(),
                check_in.updated_ms,
            )?;
        }
        Work::Feedback {
            project_id,
            feedback,
        } => {
            let mut fb = feedback.clone();
            fb.id = next_id(txn, "feedback")?;
            if let Some(eid) = &fb.event_id {
                fb.issue_id = txn
                    .open_table(crate::issues::store::EVENT_IDS)?
                    .get(eid.as_str())?
                    .map(|v| v.value().0);
            }
            txn.open_table(FEEDBACK)?
                .insert((*project_id, fb.id), codec::encode(&fb).as_slice())?;
            // ---- chat: user feedback opens a support ticket (issue 14) ----
            // Published in the same transaction, so a stored feedback is never lost to chat.
            crate::bus::publish_in(
                txn,
                "feedback.received",
                crate::bus::Priority::Normal,
                &serde_json::json!({"project_id": project_id, "feedback_id": fb.id,
                    "kind": fb.kind, "event_id": fb.event_id, "issue_id": fb.issue_id,
                    "name": fb.name, "email": fb.email, "message": fb.message, "url": fb.url}),
            )
            .map_err(|e| IngestError::Commit(e.to_string()))?;
            // ---- end chat ----
        }
        Work::Attachment {
            event_id,
            attachment,
        } => {
            let a = CompressedAttachment::new(attachment.clone(), now_ms());
            return commit_attachment(txn, config, event_id, &a);
        }
        Work::CompressedAttachment {
            event_id,
            attachment,
        } => return commit_attachment(txn, config, event_id, attachment),
        Work::SessionUpdate {
            project_id,
            sid,
            release,
            environment,
            init,
            state,
            exited,
        } => commit_session(
            txn,
            *project_id,
            sid,
            release,
            environment.as_deref(),
            *init,
            *state,
            *exited,
        )?,
        Work::SessionUser {
            project_id,
            sid,
            release,
            state,
            user,
        } => release_users::commit(txn, *project_id, sid, release, *state, user)?,
    }
    Ok(None)
}

/// Counts a session update as Sentry's release health does: a session counts once, in the
/// worst state it has reported (healthy < errored < abnormal/crashed), so an update moves it
/// from one count to another instead of adding to both.
#[allow(clippy::too_many_arguments)]
fn commit_session(
    txn: &WriteTransaction,
    project_id: u64,
    sid: &str,
    release: &str,
    environment: Option<&str>,
    init: bool,
    state: u8,
    exited: bool,
) -> Result<(), IngestError> {
    let now = now_ms();
    let mut states = txn.open_table(SESSION_STATES)?;
    let old: Option<SessionState> = if sid.is_empty() {
        None
    } else {
        states
            .get((project_id, sid))?
            .map(|v| codec::decode(v.value()))
            .transpose()?
    };
    // A session's release is fixed by its first update.
    let release = old
        .as_ref()
        .map_or(release, |o| o.release.as_str())
        .to_string();
    let (old_worst, old_exited) = old.as_ref().map_or((0, false), |o| (o.worst, o.exited));
    let worst = old_worst.max(state);
    let now_exited = (old_exited || exited) && worst == 0;
    let mut t = txn.open_table(RELEASE_HEALTH)?;
    let key = (project_id, release.as_str());
    let mut h: ReleaseHealth = match t.get(key)? {
        Some(v) => codec::decode(v.value())?,
        None => ReleaseHealth::default(),
    };
    if init && old.is_none() {
        h.sessions += 1;
    }
    if worst != old_worst {
        bump(&mut h, old_worst, false);
        bump(&mut h, worst, true);
    }
    if now_exited != old_exited {
        if now_exited {
            h.exited += 1;
        } else {
            h.exited = h.exited.saturating_sub(1);
        }
    }
    h.last_seen_ms = now;
    if let Some(env) = environment
        && !h.environments.iter().any(|e| e == env)
        && h.environments.len() < 50
    {
        h.environments.push(env.chars().take(64).collect());
    }
    t.insert(key, codec::encode(&h).as_slice())?;
    if !sid.is_empty() {
        let row = SessionState {
            release,
            worst,
            exited: now_exited,
            updated_ms: now,
        };
        states.insert((project_id, sid), codec::encode(&row).as_slice())?;
    }
    Ok(())
}

/// Adds a session to (or takes it from) the count of state `s` (0, healthy, has none).
fn bump(h: &mut ReleaseHealth, s: u8, add: bool) {
    let n = match s {
        0 => return,
        1 => &mut h.errored,
        2 => &mut h.abnormal,
        _ => &mut h.crashed,
    };
    *n = if add { *n + 1 } else { n.saturating_sub(1) };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, reference: Option<u64>) -> LoggedWork<'static> {
        let grouped = grouping::group(&serde_json::json!({"message": "boom 42"}), 1);
        LoggedWork::Event(LoggedEvent {
            project_id: 1,
            event_id: Cow::Owned(id.into()),
            grouped: Cow::Owned(grouped),
            grouping_version: 1,
            payload: Cow::Owned(vec![1, 2, 3]),
            received_ms: 1_000,
            reference,
        })
    }

    fn record(seq: u64, batch: LoggedBatch) -> wal::Record {
        wal::Record {
            seq,
            payload: postcard::to_stdvec(&batch).unwrap(),
        }
    }

    #[test]
    fn replay_takes_records_after_the_applied_one_skips_aborted_ones_and_resolves_references() {
        let doc = br#"{"message":"boom 1"}"#.to_vec();
        let records = [
            // Already in the database, but it holds the reference later records use.
            record(
                1,
                LoggedBatch {
                    format: LOG_FORMAT,
                    aborted: vec![],
                    references: vec![(5, Cow::Owned(doc.clone()))],
                    jobs: vec![vec![event("a", Some(5))]],
                },
            ),
            // Its commit failed (record 3 says so): not committed again.
            record(
                2,
                LoggedBatch {
                    format: LOG_FORMAT,
                    aborted: vec![],
                    references: vec![],
                    jobs: vec![vec![event("b", None)]],
                },
            ),
            record(
                3,
                LoggedBatch {
                    format: LOG_FORMAT,
                    aborted: vec![2],
                    references: vec![],
                    jobs: vec![vec![
                        event("c", Some(5)),
                        LoggedWork::Other(Cow::Owned(Work::ClientReport {
                            project_id: 1,
                            outcomes: vec![("filtered".into(), "error".into(), 2)],
                        })),
                    ]],
                },
            ),
        ];
        let none = |_| None;
        let batches = replayable(&records, 1, none).unwrap();
        assert_eq!(batches.len(), 1);
        // A log that does not continue the database (records missing in between) is not
        // replayed: it belongs to another history, such as the one before a restored backup.
        let later = [record(
            7,
            LoggedBatch {
                format: LOG_FORMAT,
                aborted: vec![],
                references: vec![],
                jobs: vec![vec![event("d", None)]],
            },
        )];
        assert!(replayable(&later, 5, none).unwrap().is_empty());
        assert_eq!(replayable(&later, 6, none).unwrap().len(), 1);
        let (seq, jobs) = &batches[0];
        assert_eq!(*seq, 3);
        assert_eq!(jobs.len(), 1);
        match &jobs[0][..] {
            [Work::Event(e), Work::ClientReport { outcomes, .. }] => {
                assert_eq!(e.event_id, "c");
                let (id, r) = e.reference.as_ref().expect("reference resolved");
                assert_eq!((*id, r.doc()), (5, doc.as_slice()));
                assert_eq!(outcomes[0].2, 2);
            }
            other => panic!("unexpected work {other:?}"),
        }
        // A reference the log lacks (the record that held it failed to write) is read from the
        // database; an event whose reference is nowhere cannot be restored and is left out.
        let from_db = replayable(&records[1..], 1, |id| (id == 5).then(|| doc.clone())).unwrap();
        match &from_db[0].1[0][..] {
            [Work::Event(e), ..] => assert_eq!(e.reference.as_ref().unwrap().1.doc(), doc),
            other => panic!("unexpected work {other:?}"),
        }
        let lost = replayable(&records[1..], 1, none).unwrap();
        assert!(matches!(&lost[0].1[0][..], [Work::ClientReport { .. }]));
        // Another format is refused too, unless the database already has the record.
        let mut foreign = records[2].payload.clone();
        foreign[0] = LOG_FORMAT + 1;
        let foreign = [wal::Record {
            seq: 3,
            payload: foreign,
        }];
        assert!(replayable(&foreign, 2, none).is_err());
        assert!(replayable(&foreign, 3, none).unwrap().is_empty());
    }
}
