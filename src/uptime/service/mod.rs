//! The uptime part wired into the server: the monitors' store, the scheduler that runs due
//! checks, and the writer that records their verdicts.
//!
//! - **Scheduler.** Reads the durable due-time queue ([`store::DUE`]), starts each due check
//!   (at most `[uptime] max_concurrent_checks` at once) and sleeps until the next due time or a
//!   wake-up (a monitor saved). A monitor is never checked twice at once.
//! - **Writer.** Collects finished checks for a moment and records them in one write
//!   transaction each batch: the raw result, the minute/hour/day rollups, the state machine's
//!   new state, status changes, the next due time and, for a notification, the bus event
//!   `monitor.<slug>.down|up` — published in the same transaction as the state change, so an
//!   alert goes out if and only if the change is committed.
//! - **Retention.** Raw results older than `[uptime] raw_retention` and rollups past what the
//!   figures need are deleted every few minutes.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use redb::{ReadableTable, ReadableTableMetadata, WriteTransaction};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::checks::{self, CheckResult, Verdict};
use super::heartbeat::{HeartbeatState, Input};
use super::monitor::{self, Context, Event, MonitorState, NotifyKind, Observation, Status};
use super::rollup::{self, Bucket, Change, Resolution, SampleState};
use super::store::{
    self, CHANGES, Compiled, DUE, Invalid, MONITORS, Monitor, PINGS, RESULTS, ROLLUPS, ResultRow,
    RollupRow, SENTRY, SLUGS, STATE, decode_json, encode_json, ms, ts,
};
use crate::bus::Priority;
use crate::config::{Config, HumanDuration};
use crate::limit::{KeyedWindows, Windows};
use crate::metrics;
use crate::store::{Db, StoreError, codec, now_ms};

pub use record::prune;
pub(crate) use record::{add_result, context, monitor_event};
use run::{alive, retention, scheduler, writer};

mod record;
mod run;

/// `[uptime]` settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UptimeConfig {
    /// Run checks at all (off: monitors are kept but nothing is checked).
    pub enabled: bool,
    /// Most monitors that may exist.
    pub max_monitors: usize,
    /// Most checks running at the same time.
    pub max_concurrent_checks: usize,
    /// How long raw check results are kept; rollups (uptime figures, daily bars) are kept
    /// 90 days regardless.
    pub raw_retention: HumanDuration,
    /// Requests per client address and minute to the public status pages (0: no limit, for
    /// a page behind a caching proxy that limits on its own).
    pub status_page_rate_limit: u32,
    /// A certificate (tls and https monitors) expiring within this publishes
    /// `monitor.<slug>.tls_expiring` once per certificate.
    pub tls_warning: HumanDuration,
}

impl Default for UptimeConfig {
    fn default() -> Self {
        UptimeConfig {
            enabled: true,
            max_monitors: 10_000,
            max_concurrent_checks: 64,
            raw_retention: HumanDuration::secs(7 * 86_400),
            status_page_rate_limit: 300,
            tls_warning: HumanDuration::secs(14 * 86_400),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UptimeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{}", .0.message)]
    Invalid(Invalid),
    #[error("monitor not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Limit(String),
}

crate::impl_from_redb!(UptimeError);

impl From<Invalid> for UptimeError {
    fn from(i: Invalid) -> Self {
        UptimeError::Invalid(i)
    }
}

/// A finished check on its way to the writer.
struct Completed {
    id: u64,
    /// The monitor as it was checked (from the cache: no decoding per result).
    monitor: Arc<Compiled>,
    due_ms: i64,
    result: CheckResult,
    verdict: Verdict,
}

pub(crate) struct Inner {
    db: Db,
    config: Arc<Config>,
    client: reqwest::Client,
    wake: Notify,
    inflight: Mutex<HashSet<u64>>,
    cache: RwLock<HashMap<u64, Arc<Compiled>>>,
    /// Pings per ping id and clock minute.
    pings: KeyedWindows,
    pages: super::pages::PageCache,
    checks_total: AtomicU64,
    checks_failed_total: AtomicU64,
    notifications_total: AtomicU64,
}

#[derive(Clone)]
pub struct Uptime {
    inner: Arc<Inner>,
}

/// A monitor with its current state, as the API answers.
#[derive(Debug, Clone, Serialize)]
pub struct MonitorView {
    #[serde(flatten)]
    pub monitor: Monitor,
    pub state: MonitorState,
    pub next_check_ms: Option<i64>,
    /// Heartbeats: the Healthchecks-style ping URL (append `/start`, `/fail`, `/log`, `/<exit
    /// status>`) and the Uptime Kuma-style push URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ping_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push_url: Option<String>,
    /// Heartbeats: the next expected signal and the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_signal: Option<Timestamp>,
}

/// The outbound client for checks. Unlike alert deliveries, monitors may target private
/// addresses (watching internal services is the point; only admins create monitors), so this
/// is not `net.rs`'s guarded client; it shares its stance otherwise: rustls with ring, no proxy
/// from the environment, redirects not followed by the client (the HTTP check follows them
/// itself when asked), and the peer certificate kept for `[CERTIFICATE_EXPIRATION]`. Timeouts
/// and the body cap are per check (`checks::http`).
pub fn check_client() -> Result<reqwest::Client, String> {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    reqwest::Client::builder()
        .user_agent(concat!("Hearth-Uptime/", env!("CARGO_PKG_VERSION")))
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .tls_info(true)
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(90))
        .build()
        .map_err(|e| e.to_string())
}

impl Uptime {
    pub fn new(db: Db, config: Arc<Config>) -> Result<Uptime, String> {
        Ok(Uptime {
            inner: Arc::new(Inner {
                db,
                config,
                client: check_client()?,
                wake: Notify::new(),
                inflight: Mutex::new(HashSet::new()),
                cache: RwLock::new(HashMap::new()),
                pings: KeyedWindows::new(60_000, PINGS_PER_MINUTE, Windows::OnTheClock),
                pages: Default::default(),
                checks_total: AtomicU64::new(0),
                checks_failed_total: AtomicU64::new(0),
                notifications_total: AtomicU64::new(0),
            }),
        })
    }

    pub fn register(&self, _state: &crate::app::AppState) {}

    /// Starts the scheduler, the writer and the retention task.
    pub fn start(
        &self,
        _state: &crate::app::AppState,
        shutdown: CancellationToken,
    ) -> Vec<JoinHandle<()>> {
        let (tx, rx) = mpsc::channel(1024);
        // Hearth was not running between the last "alive" stamp and now: heartbeats expected
        // then are unknown, not missed.
        let now = Timestamp::now();
        let outage = self.inner.db.write_blocking(|txn| {
            let last = txn
                .open_table(store::META)?
                .get("alive")?
                .map(|v| v.value());
            let n = match last {
                Some(from) if from < ms(now) => super::signals::outage(txn, ts(from), now)?,
                _ => 0,
            };
            txn.open_table(store::META)?.insert("alive", ms(now))?;
            Ok::<_, UptimeError>(n)
        });
        if let Err(e) = outage {
            tracing::error!("uptime: recording the outage before this start: {e}");
        }
        let mut tasks = vec![
            tokio::spawn(alive(self.inner.clone(), shutdown.clone())),
            tokio::spawn(writer(self.inner.clone(), rx, shutdown.clone())),
            tokio::spawn(retention(self.inner.clone(), shutdown.clone())),
        ];
        if self.inner.config.uptime.enabled {
            tasks.push(tokio::spawn(scheduler(self.inner.clone(), tx, shutdown)));
        }
        tasks
    }

    pub fn pages(&self) -> &super::pages::PageCache {
        &self.inner.pages
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.inner.client
    }

    pub fn render_metrics(&self, out: &mut String) {
        let i = &self.inner;
        let load = |v: &AtomicU64| v.load(Ordering::Relaxed);
        let checks = "Checks run since start.";
        metrics::counter(
            out,
            "hearth_uptime_checks_total",
            checks,
            load(&i.checks_total),
        );
        let failed = "Checks whose verdict was down since start.";
        let failed_total = load(&i.checks_failed_total);
        metrics::counter(
            out,
            "hearth_uptime_checks_failed_total",
            failed,
            failed_total,
        );
        let sent = "monitor.<slug>.down/up events published since start.";
        let sent_total = load(&i.notifications_total);
        metrics::counter(out, "hearth_uptime_notifications_total", sent, sent_total);
        let inflight = i.inflight.lock().expect("inflight").len();
        let running = "Checks running now.";
        metrics::gauge(out, "hearth_uptime_checks_in_flight", running, inflight);
    }

    fn forget(&self, id: u64) {
        self.inner.cache.write().expect("cache").remove(&id);
        self.inner.wake.notify_one();
    }

    // ---- monitors ---------------------------------------------------------------------------

    pub async fn list(&self) -> Result<Vec<MonitorView>, UptimeError> {
        let base = self.inner.config.server.base_url();
        self.inner
            .db
            .read(move |txn| {
                let monitors = txn.open_table(MONITORS)?;
                let states = txn.open_table(STATE)?;
                let due = txn.open_table(DUE.by_key)?;
                let mut out = Vec::new();
                for entry in monitors.iter()? {
                    let (k, v) = entry?;
                    let id = k.value();
                    let monitor: Monitor = decode_json(v.value())?;
                    out.push(view(&base, monitor, &states, &due, id)?);
                }
                Ok(out)
            })
            .await
    }

    pub async fn get(&self, id: u64) -> Result<MonitorView, UptimeError> {
        let base = self.inner.config.server.base_url();
        self.inner
            .db
            .read(move |txn| {
                let monitors = txn.open_table(MONITORS)?;
                let monitor: Monitor = match monitors.get(id)? {
                    Some(v) => decode_json(v.value())?,
                    None => return Err(UptimeError::NotFound),
                };
                view(
                    &base,
                    monitor,
                    &txn.open_table(STATE)?,
                    &txn.open_table(DUE.by_key)?,
                    id,
                )
            })
            .await
    }

    /// Creates (`id == 0`) or replaces a monitor. Validation that needs no database happens in
    /// [`Monitor::compile`]; here the slug's uniqueness, the parent's existence and the limit.
    pub async fn save(&self, mut m: Monitor) -> Result<MonitorView, UptimeError> {
        m.compile()?;
        let max = self.inner.config.uptime.max_monitors;
        let now = now_ms();
        let saved = self
            .inner
            .db
            .write(move |txn| {
                let mut monitors = txn.open_table(MONITORS)?;
                let mut slugs = txn.open_table(SLUGS)?;
                if let Some(owner) = slugs.get(m.slug.as_str())?.map(|v| v.value())
                    && owner != m.id
                {
                    return Err(UptimeError::Conflict(format!(
                        "a monitor with slug '{}' exists; choose another slug",
                        m.slug
                    )));
                }
                if let Some(p) = &m.parent
                    && slugs.get(p.as_str())?.is_none()
                {
                    return Err(Invalid::field(
                        "parent",
                        format!("no monitor has the slug '{p}'; create the parent first"),
                    )
                    .into());
                }
                if m.id == 0 {
                    if monitors.len()? as usize >= max {
                        return Err(UptimeError::Limit(format!(
                            "this server allows at most {max} monitors ([uptime] max_monitors)"
                        )));
                    }
                    m.id = store::next_id(txn, "monitor")?;
                    m.created_ms = now;
                } else {
                    let old: Monitor = match monitors.get(m.id)? {
                        Some(v) => decode_json(v.value())?,
                        None => return Err(UptimeError::NotFound),
                    };
                    m.created_ms = old.created_ms;
                    m.sentry = old.sentry.clone();
                    if m.ping_id.is_none() {
                        m.ping_id = old.ping_id.clone();
                    }
                    if old.slug != m.slug {
                        slugs.remove(old.slug.as_str())?;
                    }
                }
                if m.heartbeat.is_some() && m.sentry.is_none() && m.ping_id.is_none() {
                    m.ping_id = Some(uuid::Uuid::new_v4().to_string());
                }
                if let Some(p) = &m.ping_id {
                    txn.open_table(PINGS)?.insert(p.as_str(), m.id)?;
                }
                m.updated_ms = now;
                monitors.insert(m.id, encode_json(&m).as_slice())?;
                slugs.insert(m.slug.as_str(), m.id)?;
                let mut states = txn.open_table(STATE)?;
                let existing: Option<HeartbeatState> = match states.get(m.id)? {
                    Some(v) => Some(decode_json(v.value())?),
                    None => None,
                };
                let state = match existing {
                    Some(s) => s,
                    None => {
                        let s = HeartbeatState::default();
                        states.insert(m.id, encode_json(&s).as_slice())?;
                        s
                    }
                };
                drop((monitors, slugs, states));
                if !state.monitor.paused {
                    // A new or edited monitor is checked within one interval (at most a
                    // minute), spread by its id so a bulk import does not fire in bursts.
                    let spread = (m.interval.as_millis() as i64).clamp(1, 60_000);
                    let offset = (m.id.wrapping_mul(2_654_435_761) % spread as u64) as i64;
                    DUE.set(txn, m.id, now + offset)?;
                }
                Ok(m.id)
            })
            .await?;
        self.forget(saved);
        self.get(saved).await
    }

    pub async fn delete(&self, id: u64) -> Result<(), UptimeError> {
        self.inner
            .db
            .write(move |txn| {
                let m: Monitor = match txn.open_table(MONITORS)?.remove(id)? {
                    Some(v) => decode_json(v.value())?,
                    None => return Err(UptimeError::NotFound),
                };
                txn.open_table(SLUGS)?.remove(m.slug.as_str())?;
                txn.open_table(STATE)?.remove(id)?;
                if let Some(p) = &m.ping_id {
                    txn.open_table(PINGS)?.remove(p.as_str())?;
                }
                if let Some(s) = &m.sentry {
                    txn.open_table(SENTRY)?
                        .remove((s.project_id, s.monitor_slug.as_str()))?;
                }
                DUE.remove(txn, id)?;
                txn.open_table(RESULTS)?
                    .retain_in((id, i64::MIN)..=(id, i64::MAX), |_, _| false)?;
                txn.open_table(CHANGES)?
                    .retain_in((id, i64::MIN)..=(id, i64::MAX), |_, _| false)?;
                txn.open_table(store::INCIDENT_UPDATES)?.retain_in(
                    (id, i64::MIN, i64::MIN)..=(id, i64::MAX, i64::MAX),
                    |_, _| false,
                )?;
                txn.open_table(ROLLUPS)?
                    .retain_in((id, 0u8, i64::MIN)..=(id, u8::MAX, i64::MAX), |_, _| false)?;
                Ok(())
            })
            .await?;
        self.forget(id);
        Ok(())
    }

    /// Pauses, resumes or snoozes (`until`) a monitor.
    pub async fn set_paused(
        &self,
        id: u64,
        action: PauseAction,
    ) -> Result<MonitorView, UptimeError> {
        let now = Timestamp::now();
        self.inner
            .db
            .write(move |txn| {
                if txn.open_table(MONITORS)?.get(id)?.is_none() {
                    return Err(UptimeError::NotFound);
                }
                let mut states = txn.open_table(STATE)?;
                let mut s: HeartbeatState = match states.get(id)? {
                    Some(v) => decode_json(v.value())?,
                    None => HeartbeatState::default(),
                };
                let mut reschedule = None;
                match action {
                    PauseAction::Pause => {
                        s.monitor = monitor::pause(&s.monitor);
                    }
                    PauseAction::Resume => {
                        if s.monitor.paused {
                            s.monitor = monitor::resume(&s.monitor);
                        }
                        reschedule = Some(ms(now));
                    }
                    PauseAction::Snooze(until) => {
                        s.monitor = monitor::snooze(&s.monitor, until);
                    }
                }
                states.insert(id, encode_json(&s).as_slice())?;
                drop(states);
                if s.monitor.paused {
                    DUE.remove(txn, id)?;
                } else if let Some(at) = reschedule {
                    DUE.set_earlier(txn, id, at)?;
                }
                Ok(())
            })
            .await?;
        self.forget(id);
        self.get(id).await
    }

    /// Raw results, newest first: `(at ms, row)`.
    pub async fn results(
        &self,
        id: u64,
        before_ms: Option<i64>,
        limit: usize,
    ) -> Result<Vec<(i64, ResultRow)>, UptimeError> {
        self.inner
            .db
            .read(move |txn| {
                if txn.open_table(MONITORS)?.get(id)?.is_none() {
                    return Err(UptimeError::NotFound);
                }
                let t = txn.open_table(RESULTS)?;
                let end = before_ms.unwrap_or(i64::MAX);
                let mut out = Vec::new();
                for entry in t.range((id, i64::MIN)..(id, end))?.rev() {
                    let (k, v) = entry?;
                    out.push((k.value().1, codec::decode(v.value())?));
                    if out.len() >= limit {
                        break;
                    }
                }
                Ok(out)
            })
            .await
    }

    /// Incidents (DOWN→UP pairs), newest first, and the uptime figures, from stored changes and
    /// rollups.
    pub async fn summary(&self, id: u64) -> Result<Value, UptimeError> {
        let now = Timestamp::now();
        self.inner
            .db
            .read(move |txn| {
                if txn.open_table(MONITORS)?.get(id)?.is_none() {
                    return Err(UptimeError::NotFound);
                }
                let changes_t = txn.open_table(CHANGES)?;
                let mut changes = Vec::new();
                for entry in changes_t.range((id, i64::MIN)..=(id, i64::MAX))? {
                    let (_, v) = entry?;
                    let c: Change = decode_json(v.value())?;
                    changes.push(c);
                }
                let mut found = rollup::incidents(&changes, now);
                found.reverse();
                let updates_t = txn.open_table(store::INCIDENT_UPDATES)?;
                let mut incidents = Vec::new();
                for i in found {
                    let updates = incident_updates(&updates_t, id, ms(i.start))?;
                    let mut v = serde_json::to_value(&i).unwrap_or(Value::Null);
                    v["id"] = json!(ms(i.start));
                    v["updates"] = serde_json::to_value(updates).unwrap_or(Value::Null);
                    incidents.push(v);
                }
                let rollups = txn.open_table(ROLLUPS)?;
                let (minutes, hours, days) = figures_buckets(&rollups, id, now)?;
                let figures = rollup::figures(&minutes, &hours, &days, now);
                let bars = rollup::daily_bars(&days, now, 90);
                let hourly: Vec<Value> = hours
                    .iter()
                    .filter(|b| b.start >= now - SignedDuration::from_hours(48))
                    .map(|b| {
                        json!({"start": b.start, "uptime": b.uptime(), "avg_response_ms": b.avg_response_ms(),
                               "min_response_ms": (b.rt_count > 0).then_some(b.rt_min_ms),
                               "max_response_ms": (b.rt_count > 0).then_some(b.rt_max_ms)})
                    })
                    .collect();
                Ok(json!({
                    "figures": figures,
                    "incidents": incidents,
                    "daily": bars,
                    "hourly": hourly,
                }))
            })
            .await
    }
}

impl Uptime {
    /// A ping or push for `ping_id`, rate-limited per id; `Ok(false)` when no monitor has it.
    pub async fn signal(&self, ping_id: &str, input: Input) -> Result<bool, SignalError> {
        if !self.allow_ping(ping_id) {
            return Err(SignalError::RateLimited);
        }
        let ping_id = ping_id.to_string();
        let r = self
            .inner
            .db
            .write(move |txn| super::signals::ping(txn, &ping_id, &input, Timestamp::now()))
            .await;
        match r {
            Ok(Some(_)) => {
                self.inner.wake.notify_one();
                Ok(true)
            }
            Ok(None) => Ok(false),
            Err(e) => Err(SignalError::Failed(e)),
        }
    }

    /// A fixed window per ping id (also for unknown ids, so guessing costs the same).
    fn allow_ping(&self, ping_id: &str) -> bool {
        self.inner.pings.hit(ping_id, now_ms()).is_ok()
    }
}

impl Uptime {
    /// A Sentry HTTP check-in for an existing cron monitor; `Ok(false)` when there is none.
    pub async fn sentry_http_check_in(
        &self,
        project_id: u64,
        monitor_slug: String,
        check_in_id: String,
        status: super::heartbeat::CheckInStatus,
        duration: Option<f64>,
    ) -> Result<bool, UptimeError> {
        if !self.allow_ping(&format!("sentry:{project_id}:{monitor_slug}")) {
            return Err(UptimeError::Limit(
                "too many check-ins for this monitor; at most 60 a minute".into(),
            ));
        }
        self.inner
            .db
            .write(move |txn| {
                let id = txn
                    .open_table(SENTRY)?
                    .get((project_id, monitor_slug.as_str()))?
                    .map(|v| v.value());
                let Some(id) = id else { return Ok(false) };
                let now = Timestamp::now();
                let input = Input::CheckIn {
                    at: now,
                    id: check_in_id,
                    status,
                    duration,
                };
                super::signals::apply(txn, id, &input, now)?;
                Ok(true)
            })
            .await
    }
}

/// Pings accepted per ping id and minute (Healthchecks-style jobs ping a few times a run).
pub const PINGS_PER_MINUTE: u32 = 60;

#[derive(Debug)]
pub enum SignalError {
    RateLimited,
    Failed(UptimeError),
}

/// Human updates of one incident, newest first.
pub fn incident_updates(
    table: &impl ReadableTable<(u64, i64, i64), &'static [u8]>,
    id: u64,
    start_ms: i64,
) -> Result<Vec<super::status_page::IncidentUpdate>, StoreError> {
    let mut out = Vec::new();
    for e in table
        .range((id, start_ms, i64::MIN)..=(id, start_ms, i64::MAX))?
        .rev()
    {
        let (_, v) = e?;
        out.push(decode_json(v.value())?);
    }
    Ok(out)
}

/// Most updates per incident.
pub const MAX_INCIDENT_UPDATES: usize = 100;

impl Uptime {
    /// Adds a human update (investigating / identified / monitoring / resolved) to the incident
    /// of monitor `id` that started at `start_ms`.
    pub async fn add_incident_update(
        &self,
        id: u64,
        start_ms: i64,
        update: super::status_page::IncidentUpdate,
    ) -> Result<(), UptimeError> {
        let now = Timestamp::now();
        self.inner
            .db
            .write(move |txn| {
                if txn.open_table(MONITORS)?.get(id)?.is_none() {
                    return Err(UptimeError::NotFound);
                }
                let mut changes = Vec::new();
                for e in txn
                    .open_table(CHANGES)?
                    .range((id, i64::MIN)..=(id, i64::MAX))?
                {
                    let (_, v) = e?;
                    changes.push(decode_json::<Change>(v.value())?);
                }
                if !rollup::incidents(&changes, now)
                    .iter()
                    .any(|i| ms(i.start) == start_ms)
                {
                    return Err(UptimeError::NotFound);
                }
                let mut t = txn.open_table(store::INCIDENT_UPDATES)?;
                if incident_updates(&t, id, start_ms)?.len() >= MAX_INCIDENT_UPDATES {
                    return Err(UptimeError::Limit(format!(
                        "an incident takes at most {MAX_INCIDENT_UPDATES} updates"
                    )));
                }
                t.insert(
                    (id, start_ms, ms(update.at)),
                    encode_json(&update).as_slice(),
                )?;
                Ok(())
            })
            .await?;
        self.inner.pages.invalidate();
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
pub enum PauseAction {
    Pause,
    Resume,
    Snooze(Option<Timestamp>),
}

fn view(
    base: &str,
    monitor: Monitor,
    states: &impl ReadableTable<u64, &'static [u8]>,
    due: &impl ReadableTable<u64, i64>,
    id: u64,
) -> Result<MonitorView, UptimeError> {
    let state: HeartbeatState = match states.get(id)? {
        Some(v) => decode_json(v.value())?,
        None => HeartbeatState::default(),
    };
    let ping_url = monitor.ping_id.as_ref().map(|p| format!("{base}/ping/{p}"));
    let push_url = monitor
        .ping_id
        .as_ref()
        .map(|p| format!("{base}/api/push/{p}?status=up&msg=OK&ping="));
    Ok(MonitorView {
        monitor,
        state: state.monitor,
        next_check_ms: due.get(id)?.map(|v| v.value()),
        ping_url,
        push_url,
        expected: state.expected,
        last_signal: state.last_signal,
    })
}

/// Minute, hour and day buckets.
pub type FigureBuckets = (Vec<Bucket>, Vec<Bucket>, Vec<Bucket>);

/// Minute buckets of the last 24 h, hour buckets of the last 30 d, day buckets of the last 90 d.
pub fn figures_buckets(
    rollups: &impl ReadableTable<(u64, u8, i64), &'static [u8]>,
    id: u64,
    now: Timestamp,
) -> Result<FigureBuckets, StoreError> {
    let back = |h: i64| ms(now) - h * 3_600_000;
    Ok((
        store::read_buckets(rollups, id, Resolution::Minute, back(25))?,
        store::read_buckets(rollups, id, Resolution::Hour, back(31 * 24))?,
        store::read_buckets(rollups, id, Resolution::Day, back(92 * 24))?,
    ))
}

/// What a "test now" answers: the check's result and the verdict, condition by condition.
pub async fn test_now(client: &reqwest::Client, c: &Compiled) -> Value {
    let Some(check) = &c.monitor.check else {
        return json!({"up": null, "reason": "a heartbeat monitor has nothing to test; it waits for pings"});
    };
    let result = checks::run(check, client, Timestamp::now()).await;
    let verdict = checks::judge(check, &result, &c.conditions);
    json!({
        "up": verdict.up,
        "reason": (!verdict.up).then(|| verdict.reason()),
        "outcomes": verdict.outcomes,
        "result": {
            "checked_at": result.checked_at,
            "connected": result.connected,
            "error": result.error,
            "ip": result.ip,
            "response_ms": result.response_time.map(|d| d.as_millis() as u64),
            "status": result.status,
            "body_excerpt": result.body_excerpt(2048),
            "body_truncated": result.body_truncated,
            "cert_expires_at": result.cert_expires_at,
            "cert_valid": result.cert_valid,
            "cert_error": result.cert_error,
            "dns_rcode": result.dns_rcode,
            "dns_answers": result.dns_answers,
        }
    })
}

pub fn ts_or_none(ms_value: Option<i64>) -> Option<Timestamp> {
    ms_value.map(ts)
}

#[cfg(test)]
mod tests;
