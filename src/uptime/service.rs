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
use crate::store::{Db, StoreError, codec, now_ms};

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
    /// ping id → (minute window start, pings in it)
    ping_windows: Mutex<HashMap<String, (i64, u32)>>,
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
                ping_windows: Mutex::new(HashMap::new()),
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
        out.push_str(&format!(
            "# HELP hearth_uptime_checks_total Checks run since start.\n# TYPE hearth_uptime_checks_total counter\nhearth_uptime_checks_total {}\n\
             # HELP hearth_uptime_checks_failed_total Checks whose verdict was down since start.\n# TYPE hearth_uptime_checks_failed_total counter\nhearth_uptime_checks_failed_total {}\n\
             # HELP hearth_uptime_notifications_total monitor.<slug>.down/up events published since start.\n# TYPE hearth_uptime_notifications_total counter\nhearth_uptime_notifications_total {}\n\
             # HELP hearth_uptime_checks_in_flight Checks running now.\n# TYPE hearth_uptime_checks_in_flight gauge\nhearth_uptime_checks_in_flight {}\n",
            i.checks_total.load(Ordering::Relaxed),
            i.checks_failed_total.load(Ordering::Relaxed),
            i.notifications_total.load(Ordering::Relaxed),
            i.inflight.lock().expect("inflight").len(),
        ));
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
        let now = now_ms();
        let window = now - now.rem_euclid(60_000);
        let mut map = self.inner.ping_windows.lock().expect("ping windows");
        if map.len() > 100_000 {
            map.retain(|_, (w, _)| *w == window);
        }
        let entry = map.entry(ping_id.to_string()).or_insert((window, 0));
        if entry.0 != window {
            *entry = (window, 0);
        }
        entry.1 += 1;
        entry.1 <= PINGS_PER_MINUTE
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

impl Inner {
    /// The compiled monitor, from the cache or the database; `None` when it no longer exists.
    async fn compiled(self: &Arc<Self>, id: u64) -> Option<Arc<Compiled>> {
        if let Some(c) = self.cache.read().expect("cache").get(&id) {
            return Some(c.clone());
        }
        let m: Option<Monitor> = self
            .db
            .read(move |txn| {
                Ok::<_, StoreError>(match txn.open_table(MONITORS)?.get(id)? {
                    Some(v) => Some(decode_json(v.value())?),
                    None => None,
                })
            })
            .await
            .map_err(|e| tracing::error!(monitor = id, "reading monitor: {e}"))
            .ok()?;
        let m = m?;
        // Stored monitors were accepted, so they compile; one that does not (a newer
        // release's data) is logged and skipped.
        let c = match m.compile() {
            Ok(c) => Arc::new(c),
            Err(e) => {
                tracing::error!(
                    monitor = id,
                    "stored monitor does not compile: {}",
                    e.message
                );
                return None;
            }
        };
        self.cache.write().expect("cache").insert(id, c.clone());
        Some(c)
    }
}

/// Due entries read per scheduler pass.
const DUE_BATCH: usize = 256;
/// Longest sleep between passes (a missed wake-up costs at most this).
const MAX_SLEEP_MS: i64 = 1_000;

async fn scheduler(inner: Arc<Inner>, tx: mpsc::Sender<Completed>, shutdown: CancellationToken) {
    let limit = Arc::new(Semaphore::new(
        inner.config.uptime.max_concurrent_checks.max(1),
    ));
    loop {
        let now = now_ms();
        let skip: HashSet<u64> = inner.inflight.lock().expect("inflight").clone();
        let read = inner
            .db
            .read(move |txn| DUE.due(txn, now, DUE_BATCH, |k| skip.contains(&k)))
            .await;
        let (due, next) = match read {
            Ok(v) => v,
            Err(e) => {
                tracing::error!("uptime scheduler: reading the due queue: {e}");
                (Vec::new(), Some(now + MAX_SLEEP_MS))
            }
        };
        for (due_ms, id) in due {
            let Some(c) = inner.compiled(id).await else {
                // Deleted meanwhile, or unreadable: drop it from the queue.
                let _ = inner
                    .db
                    .write(move |txn| DUE.remove(txn, id).map_err(UptimeError::from))
                    .await;
                continue;
            };
            let Some(check) = c.monitor.check.clone() else {
                // A heartbeat's expected time (or run deadline) passed: judge it.
                inner.inflight.lock().expect("inflight").insert(id);
                let inner2 = inner.clone();
                tokio::spawn(async move {
                    let r = inner2
                        .db
                        .write(move |txn| {
                            super::signals::apply(txn, id, &Input::Tick, Timestamp::now())
                        })
                        .await;
                    match r {
                        Ok(n) => {
                            inner2.notifications_total.fetch_add(n, Ordering::Relaxed);
                        }
                        Err(e) => tracing::error!(monitor = id, "uptime: heartbeat tick: {e}"),
                    }
                    inner2.inflight.lock().expect("inflight").remove(&id);
                    inner2.wake.notify_one();
                });
                continue;
            };
            let permit = tokio::select! {
                p = limit.clone().acquire_owned() => p.expect("semaphore"),
                _ = shutdown.cancelled() => return,
            };
            inner.inflight.lock().expect("inflight").insert(id);
            let tx = tx.clone();
            let inner2 = inner.clone();
            tokio::spawn(async move {
                let started = Timestamp::now();
                let result = checks::run(&check, &inner2.client, started).await;
                let verdict = checks::judge(&check, &result, &c.conditions);
                drop(permit);
                let done = Completed {
                    id,
                    monitor: c.clone(),
                    due_ms,
                    result,
                    verdict,
                };
                if tx.send(done).await.is_err() {
                    inner2.inflight.lock().expect("inflight").remove(&id);
                }
            });
        }
        let sleep_ms = next
            .map(|n| n - now_ms())
            .unwrap_or(MAX_SLEEP_MS)
            .clamp(0, MAX_SLEEP_MS);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = inner.wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(sleep_ms as u64)) => {}
        }
    }
}

/// How long the writer waits for more finished checks before committing a batch.
const BATCH_LINGER: Duration = Duration::from_millis(100);
const MAX_BATCH: usize = 512;

async fn writer(inner: Arc<Inner>, mut rx: mpsc::Receiver<Completed>, shutdown: CancellationToken) {
    loop {
        let first = tokio::select! {
            c = rx.recv() => match c { Some(c) => c, None => return },
            _ = shutdown.cancelled() => return,
        };
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + BATCH_LINGER;
        while batch.len() < MAX_BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(c)) => batch.push(c),
                _ => break,
            }
        }
        let ids: Vec<u64> = batch.iter().map(|c| c.id).collect();
        let n = batch.len() as u64;
        let failed = batch.iter().filter(|c| !c.verdict.up).count() as u64;
        let tls_warning = inner.config.uptime.tls_warning.get().as_millis() as i64;
        let write = inner
            .db
            .write(move |txn| {
                let mut notified = 0u64;
                for c in &batch {
                    notified += record(txn, c)?;
                    notified += tls_expiry(txn, c, tls_warning)?;
                }
                Ok::<_, UptimeError>(notified)
            })
            .await;
        match write {
            Ok(notified) => {
                inner.checks_total.fetch_add(n, Ordering::Relaxed);
                inner
                    .checks_failed_total
                    .fetch_add(failed, Ordering::Relaxed);
                inner
                    .notifications_total
                    .fetch_add(notified, Ordering::Relaxed);
            }
            // Nothing of the batch is committed; the monitors stay due and run again.
            Err(e) => tracing::error!("uptime: recording {n} check result(s): {e}"),
        }
        {
            let mut inflight = inner.inflight.lock().expect("inflight");
            for id in ids {
                inflight.remove(&id);
            }
        }
        inner.wake.notify_one();
    }
}

/// The facts around a monitor at `at`: an active maintenance window, a parent that is down.
pub(crate) fn context(
    txn: &WriteTransaction,
    m: &Monitor,
    now: Timestamp,
) -> Result<Context, UptimeError> {
    let in_maintenance = super::maintenance::active(&m.maintenance, now);
    let parent_down = match &m.parent {
        Some(p) => match txn.open_table(SLUGS)?.get(p.as_str())?.map(|v| v.value()) {
            Some(pid) => match txn.open_table(STATE)?.get(pid)? {
                Some(v) => decode_json::<HeartbeatState>(v.value())?.monitor.status == Status::Down,
                None => false,
            },
            None => false,
        },
        None => false,
    };
    Ok(Context {
        now,
        in_maintenance,
        parent_down,
    })
}

/// Stores one raw result and adds it to its rollups (`sample` `None`: not a result for the
/// figures, such as a start or a log ping).
pub(crate) fn add_result(
    txn: &WriteTransaction,
    id: u64,
    at: Timestamp,
    row: &ResultRow,
    sample: Option<SampleState>,
    response_time: Option<Duration>,
) -> Result<(), StoreError> {
    let mut results = txn.open_table(RESULTS)?;
    // Two results in the same millisecond (a start and its finish) both stay.
    let mut key = ms(at);
    for _ in 0..16 {
        if results.get((id, key))?.is_none() {
            break;
        }
        key += 1;
    }
    results.insert((id, key), codec::encode(row).as_slice())?;
    drop(results);
    if let Some(sample) = sample {
        add_to_rollups(txn, id, at, sample, response_time)?;
    }
    Ok(())
}

/// Records a state machine event: status changes for incidents, notifications as bus events
/// in this transaction. Returns how many events were published.
pub(crate) fn monitor_event(
    txn: &WriteTransaction,
    m: &Monitor,
    e: &Event,
) -> Result<u64, UptimeError> {
    match e {
        Event::Beat { .. } => Ok(0),
        Event::StatusChanged {
            at,
            to,
            streak_started,
            error,
            ..
        } => {
            let change = Change {
                at: *at,
                to: *to,
                streak_started: *streak_started,
                error: error.clone(),
            };
            txn.open_table(CHANGES)?
                .insert((m.id, ms(*at)), encode_json(&change).as_slice())?;
            Ok(0)
        }
        Event::Notify { at, kind, error } => {
            let bus_err = |e: crate::bus::BusError| StoreError::Codec(e.to_string());
            let mut p = crate::bus::Publisher::new(txn).map_err(bus_err)?;
            let (subject, payload) = notification(m, *kind, *at, error.as_deref());
            p.publish(&subject, Priority::High, &payload)
                .map_err(bus_err)?;
            Ok(1)
        }
        Event::Suppressed { kind, reason, .. } => {
            tracing::info!(monitor = %m.slug, ?kind, ?reason, "notification held back");
            Ok(0)
        }
    }
}

/// Records one finished check in `txn`; returns how many bus events it published.
fn record(txn: &WriteTransaction, c: &Completed) -> Result<u64, UptimeError> {
    if txn.open_table(MONITORS)?.get(c.id)?.is_none() {
        // Deleted while it ran.
        return Ok(0);
    }
    let m = &c.monitor.monitor;
    let mut state: HeartbeatState = match txn.open_table(STATE)?.get(c.id)? {
        Some(v) => decode_json(v.value())?,
        None => HeartbeatState::default(),
    };
    let at = c.result.checked_at;
    let now = Timestamp::now();
    let mut ctx = context(txn, m, at)?;
    ctx.now = now;
    let obs = if c.verdict.up {
        Observation::up(at)
    } else {
        Observation::down(at, c.verdict.reason())
    };
    let was_paused = state.monitor.paused;
    let (next, events) = monitor::observe(&state.monitor, &m.policy(), &obs, &ctx);
    state.monitor = next;
    txn.open_table(STATE)?
        .insert(c.id, encode_json(&state).as_slice())?;

    let mut published = 0;
    for e in &events {
        if let Event::Beat { beat, .. } = e {
            let row = ResultRow {
                beat: Some(*beat),
                record: None,
                response_ms: c
                    .result
                    .response_time
                    .map(|d| u32::try_from(d.as_millis()).unwrap_or(u32::MAX)),
                status: c.result.status,
                error: (!c.verdict.up).then(|| c.verdict.reason()),
            };
            let sample = SampleState::from_beat(*beat, ctx.in_maintenance);
            add_result(txn, c.id, at, &row, Some(sample), c.result.response_time)?;
        } else {
            published += monitor_event(txn, m, e)?;
        }
    }
    if !was_paused {
        let interval = m.interval.as_millis() as i64;
        let now_ms = ms(now);
        let mut next_due = c.due_ms + interval;
        if next_due <= now_ms {
            // Late (a slow check, a busy machine, a restart): skip the slots already passed.
            let behind = (now_ms - next_due) / interval + 1;
            next_due += behind * interval;
        }
        DUE.set(txn, c.id, next_due)?;
    }
    Ok(published)
}

/// Publishes `monitor.<slug>.tls_expiring` the first time a check sees a certificate that
/// expires within `warning_ms` (once per certificate: a renewed one is warned about again).
fn tls_expiry(txn: &WriteTransaction, c: &Completed, warning_ms: i64) -> Result<u64, UptimeError> {
    let Some(expires) = c.result.cert_expires_at else {
        return Ok(0);
    };
    let left = ms(expires) - ms(c.result.checked_at);
    if left > warning_ms {
        return Ok(0);
    }
    let mut warned = txn.open_table(store::TLS_WARNED)?;
    if warned.get(c.id)?.map(|v| v.value()) == Some(ms(expires)) {
        return Ok(0);
    }
    warned.insert(c.id, ms(expires))?;
    drop(warned);
    let m = &c.monitor.monitor;
    let days = left.max(0) / 86_400_000;
    let bus_err = |e: crate::bus::BusError| StoreError::Codec(e.to_string());
    crate::bus::Publisher::new(txn)
        .map_err(bus_err)?
        .publish(
            &format!("monitor.{}.tls_expiring", m.slug),
            Priority::Normal,
            &json!({
                "name": m.slug,
                "monitor_id": m.id,
                "monitor_name": m.name,
                "title": format!("The certificate of {} expires in {days} day(s), at {expires}", m.name),
                "expires_at": expires,
                "days_left": days,
            }),
        )
        .map_err(bus_err)?;
    Ok(1)
}

/// `monitor.<slug>.down` (also for reminders) or `monitor.<slug>.up`, with what the alert
/// rules and their templates show.
fn notification(
    m: &Monitor,
    kind: NotifyKind,
    at: Timestamp,
    error: Option<&str>,
) -> (String, Value) {
    let (word, title) = match kind {
        NotifyKind::Down => ("down", format!("{} is down", m.name)),
        NotifyKind::Reminder => ("down", format!("{} is still down", m.name)),
        NotifyKind::Up => ("up", format!("{} is up again", m.name)),
    };
    let title = match error {
        Some(e) if !e.is_empty() => format!("{title}: {}", truncate(e, 300)),
        _ => title,
    };
    (
        format!("monitor.{}.{word}", m.slug),
        json!({
            "name": m.slug,
            "monitor_id": m.id,
            "monitor_name": m.name,
            "title": title,
            "error": error,
            "reminder": kind == NotifyKind::Reminder,
            "at": at,
        }),
    )
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn add_to_rollups(
    txn: &WriteTransaction,
    id: u64,
    at: Timestamp,
    sample: SampleState,
    response_time: Option<Duration>,
) -> Result<(), StoreError> {
    let mut t = txn.open_table(ROLLUPS)?;
    for (res, start) in rollup::buckets_for(at) {
        let key = (id, store::resolution_code(res), ms(start));
        let mut bucket = match t.get(key)? {
            Some(v) => codec::decode::<RollupRow>(v.value())?.into_bucket(start),
            None => Bucket::empty(start),
        };
        bucket.add(sample, response_time);
        t.insert(
            key,
            codec::encode(&RollupRow::from_bucket(&bucket)).as_slice(),
        )?;
    }
    Ok(())
}

/// How often the "alive" stamp is written: the precision of outage detection at the next start.
const ALIVE_EVERY: Duration = Duration::from_secs(10);

async fn alive(inner: Arc<Inner>, shutdown: CancellationToken) {
    loop {
        let stopping = tokio::select! {
            _ = shutdown.cancelled() => true,
            _ = tokio::time::sleep(ALIVE_EVERY) => false,
        };
        // Unsynced: a crash may lose the last stamp, which only widens the outage (more
        // unknown, never a false missed).
        let r = inner
            .db
            .write_unsynced(|txn| {
                txn.open_table(store::META)?.insert("alive", now_ms())?;
                Ok::<_, StoreError>(())
            })
            .await;
        if let Err(e) = r {
            tracing::warn!("uptime: writing the alive stamp: {e}");
        }
        if stopping {
            return;
        }
    }
}

/// How often old results and rollups are deleted.
const RETENTION_EVERY: Duration = Duration::from_secs(300);

async fn retention(inner: Arc<Inner>, shutdown: CancellationToken) {
    loop {
        let keep_raw = inner.config.uptime.raw_retention.get().as_millis() as i64;
        let res = inner
            .db
            .write(move |txn| prune(txn, now_ms(), keep_raw))
            .await;
        match res {
            Ok(0) => {}
            Ok(n) => tracing::debug!("uptime: pruned {n} old result(s) and rollup(s)"),
            Err(e) => tracing::error!("uptime: pruning old results: {e}"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(RETENTION_EVERY) => {}
        }
    }
}

/// Deletes raw results older than `keep_raw_ms` and rollups older than what the figures read.
pub fn prune(txn: &WriteTransaction, now: i64, keep_raw_ms: i64) -> Result<u64, UptimeError> {
    let ids: Vec<u64> = {
        let t = txn.open_table(MONITORS)?;
        t.iter()?
            .map(|e| e.map(|(k, _)| k.value()))
            .collect::<Result<_, _>>()?
    };
    let mut n = 0u64;
    let mut results = txn.open_table(RESULTS)?;
    let mut rollups = txn.open_table(ROLLUPS)?;
    let keep = [
        (Resolution::Minute, rollup::RETAIN_MINUTES),
        (Resolution::Hour, rollup::RETAIN_HOURS),
        (Resolution::Day, rollup::RETAIN_DAYS),
    ];
    for id in ids {
        results.retain_in((id, i64::MIN)..(id, now - keep_raw_ms), |_, _| {
            n += 1;
            false
        })?;
        for (res, d) in keep {
            let code = store::resolution_code(res);
            let before = now - d.as_millis() as i64;
            rollups.retain_in((id, code, i64::MIN)..(id, code, before), |_, _| {
                n += 1;
                false
            })?;
        }
    }
    Ok(n)
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
mod tests {
    use super::*;

    #[test]
    fn prune_drops_raw_results_past_retention_and_rollups_past_their_figures() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("t.redb"), 1 << 20).unwrap();
        let day = 86_400_000i64;
        let now = 100 * day;
        db.write_blocking(|txn| {
            txn.open_table(MONITORS)?.insert(7, b"x".as_slice())?;
            let mut r = txn.open_table(RESULTS)?;
            let mut u = txn.open_table(ROLLUPS)?;
            for age in [0, 6, 8, 40, 95] {
                r.insert((7, now - age * day), b"r".as_slice())?;
                for code in 0..3u8 {
                    u.insert((7, code, now - age * day), b"b".as_slice())?;
                }
            }
            Ok::<_, StoreError>(())
        })
        .unwrap();
        let n = db.write_blocking(|txn| prune(txn, now, 7 * day)).unwrap();
        let left = db
            .read_blocking(|txn| {
                let r: Vec<i64> = txn
                    .open_table(RESULTS)?
                    .iter()?
                    .map(|e| e.map(|(k, _)| (now - k.value().1) / day))
                    .collect::<Result<_, _>>()?;
                let u: Vec<(u8, i64)> = txn
                    .open_table(ROLLUPS)?
                    .iter()?
                    .map(|e| e.map(|(k, _)| (k.value().1, (now - k.value().2) / day)))
                    .collect::<Result<_, _>>()?;
                Ok::<_, StoreError>((r, u))
            })
            .unwrap();
        // Raw: 7 days. Minutes: 25 h, hours: 31 d, days: 92 d.
        let mut raw = left.0.clone();
        raw.sort();
        assert_eq!(raw, vec![0, 6]);
        let mut rollups = left.1.clone();
        rollups.sort();
        assert_eq!(
            rollups,
            vec![
                (0, 0),
                (1, 0),
                (1, 6),
                (1, 8),
                (2, 0),
                (2, 6),
                (2, 8),
                (2, 40)
            ]
        );
        assert_eq!(n, 3 + 4 + 2 + 1);
    }
}
