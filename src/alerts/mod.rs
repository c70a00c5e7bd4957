//! Alert rules over bus events, delivered to Slack, email and signed webhooks.
//!
//! Two durable bus consumers:
//! - `alerts` reads `issue.>`, `event.stored`, `$sys.dlq.*`, `monitor.>`, `chat.ticket.>` and `storage.disk_budget`,
//!   matches rules
//!   (WHEN + IF filters + per-rule, per-issue throttle) and, in one write transaction, records
//!   the fired alert in the history and publishes one `alert.deliver` event per channel.
//! - `alerts-delivery` performs each delivery (HTTP for Slack and webhooks, the mail outbox for
//!   email). Failures retry with the bus backoff and land in the bus DLQ after `max_deliver`.
//!   The webhook's `webhook-id` is the `alert.deliver` event id, so it is stable across retries.
//!
//! Frequency windows count `event.stored` per issue in memory (minute buckets): cheap at ingest
//! rates, and a restart only forgets up to one window of counts.

pub mod api;
pub mod deliver;
mod evaluate;
pub mod model;
pub mod report;
pub mod store;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use redb::ReadableTable;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::app::AppState;
use crate::bus::{ConsumerSpec, Delivery};
use crate::config::Config;
use crate::http::error::{ApiError, Code};
use crate::metrics;
use crate::store::{Db, StoreError, now_ms};
pub use evaluate::filters_match;
use model::{Alert, Channel, ChannelKind, DeliveryStatus, Fired, Rule, Trigger};

#[derive(Debug, thiserror::Error)]
pub enum AlertsError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Invalid(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Bus(String),
    #[error("{0}")]
    TargetNotAllowed(String),
}

crate::impl_from_redb!(AlertsError);

impl From<crate::bus::BusError> for AlertsError {
    fn from(e: crate::bus::BusError) -> Self {
        match e {
            crate::bus::BusError::Store(s) => AlertsError::Store(s),
            other => AlertsError::Bus(other.to_string()),
        }
    }
}

impl From<AlertsError> for ApiError {
    fn from(e: AlertsError) -> Self {
        match e {
            AlertsError::Store(s) => ApiError::internal(s),
            AlertsError::Bus(s) => ApiError::internal(s),
            AlertsError::Invalid(m) => ApiError::bad_request(m),
            AlertsError::TargetNotAllowed(m) => ApiError::new(Code::TargetNotAllowed, m),
            AlertsError::NotFound(what) => {
                ApiError::new(Code::NotFound, format!("{what} not found; check the id"))
            }
        }
    }
}

/// Event counts not yet written to the daily tables (flushed every few seconds).
#[derive(Default)]
struct PendingCounts {
    events: HashMap<i64, u64>,
    per_issue: HashMap<(i64, u64), u64>,
    titles: HashMap<u64, String>,
}

pub(crate) struct Inner {
    db: Db,
    config: Arc<Config>,
    /// Enabled rules, reloaded after any change.
    rules: RwLock<Option<Arc<Vec<Rule>>>>,
    /// issue id → (minute, events) buckets within the longest window.
    freq: Mutex<HashMap<u64, VecDeque<(i64, u64)>>>,
    pending: Mutex<PendingCounts>,
    http: crate::net::HttpClient,
    fired_total: AtomicU64,
    delivered_total: AtomicU64,
    delivery_failures_total: AtomicU64,
}

#[derive(Clone)]
pub struct Alerts {
    inner: Arc<Inner>,
}

/// The `alert.deliver` event payload.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DeliverJob {
    pub fired_id: u64,
    pub channel_id: u64,
    pub alert: Alert,
}

impl Alerts {
    pub fn new(db: Db, config: Arc<Config>) -> Result<Alerts, crate::net::NetError> {
        let mut opts = crate::net::ClientOptions::new("[alerts] allow_private_targets");
        opts.allow_private = config.alerts.allow_private_targets;
        let http = crate::net::HttpClient::new(opts)?;
        Ok(Alerts {
            inner: Arc::new(Inner {
                db,
                config,
                rules: RwLock::new(None),
                freq: Mutex::new(HashMap::new()),
                pending: Mutex::new(PendingCounts::default()),
                http,
                fired_total: AtomicU64::new(0),
                delivered_total: AtomicU64::new(0),
                delivery_failures_total: AtomicU64::new(0),
            }),
        })
    }

    /// Registers the `alerts` and `alerts-delivery` consumers.
    pub fn register(&self, state: &AppState) {
        let st = state.clone();
        state.bus.register(
            ConsumerSpec::new(
                "alerts",
                &[
                    "issue.>",
                    "event.stored",
                    "$sys.dlq.*",
                    "monitor.>",
                    "chat.ticket.>",
                    "storage.disk_budget",
                ],
            ),
            move |d: Delivery| {
                let st = st.clone();
                async move { st.alerts.evaluate(&st, d).await }
            },
        );
        let st = state.clone();
        state.bus.register(
            ConsumerSpec::new("alerts-delivery", &["alert.deliver"]).concurrency(4),
            move |d: Delivery| {
                let st = st.clone();
                async move { deliver::handle(&st, d).await }
            },
        );
    }

    /// Starts the daily report schedule and the flush of event counts.
    pub fn start(&self, state: &AppState, shutdown: CancellationToken) -> Vec<JoinHandle<()>> {
        vec![
            tokio::spawn(report::run_flush(self.inner.clone(), shutdown.clone())),
            tokio::spawn(report::run_daily(state.clone(), shutdown)),
        ]
    }

    pub fn render_metrics(&self, out: &mut String) {
        let i = &self.inner;
        let load = |v: &AtomicU64| v.load(Ordering::Relaxed);
        let fired = "Alerts fired since start.";
        metrics::counter(
            out,
            "hearth_alerts_fired_total",
            fired,
            load(&i.fired_total),
        );
        let delivered = "Alert deliveries that succeeded since start.";
        let delivered_total = load(&i.delivered_total);
        metrics::counter(
            out,
            "hearth_alerts_delivered_total",
            delivered,
            delivered_total,
        );
        let failures = "Alert delivery attempts that failed since start.";
        let failures_total = load(&i.delivery_failures_total);
        let name = "hearth_alerts_delivery_failures_total";
        metrics::counter(out, name, failures, failures_total);
    }

    pub(crate) fn http(&self) -> &crate::net::HttpClient {
        &self.inner.http
    }

    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }

    async fn rules(&self) -> Result<Arc<Vec<Rule>>, AlertsError> {
        if let Some(r) = self.inner.rules.read().expect("rules cache").clone() {
            return Ok(r);
        }
        let all = self.list_rules().await?;
        let enabled: Arc<Vec<Rule>> = Arc::new(all.into_iter().filter(|r| r.enabled).collect());
        *self.inner.rules.write().expect("rules cache") = Some(enabled.clone());
        Ok(enabled)
    }

    pub(crate) fn invalidate_rules(&self) {
        *self.inner.rules.write().expect("rules cache") = None;
    }

    // ---- rules and channels ---------------------------------------------------------------

    pub async fn list_rules(&self) -> Result<Vec<Rule>, AlertsError> {
        self.inner
            .db
            .read(|txn| {
                let t = txn.open_table(store::RULES)?;
                let mut out = Vec::new();
                for row in t.iter()? {
                    out.push(store::decode(row?.1.value())?);
                }
                Ok(out)
            })
            .await
    }

    pub async fn get_rule(&self, id: u64) -> Result<Rule, AlertsError> {
        self.inner
            .db
            .read(move |txn| {
                let t = txn.open_table(store::RULES)?;
                match t.get(id)? {
                    Some(v) => Ok(store::decode(v.value())?),
                    None => Err(AlertsError::NotFound("rule")),
                }
            })
            .await
    }

    async fn validate_rule(&self, r: &Rule) -> Result<(), AlertsError> {
        if r.name.trim().is_empty() {
            return Err(AlertsError::Invalid("a rule needs a name".into()));
        }
        if let Trigger::Frequency { window, .. } = &r.when
            && model::window_ms(window).is_none()
        {
            return Err(AlertsError::Invalid(format!(
                "window {window:?} is not one of 1m, 5m, 15m, 1h, 1d"
            )));
        }
        if let Trigger::TicketCreated { min_priority } | Trigger::TicketSlaBreached { min_priority } =
            &r.when
            && let Some(m) = min_priority
            && model::priority_rank(m).is_none()
        {
            return Err(AlertsError::Invalid(format!(
                "min_priority {m:?} is not one of urgent, high, normal, low (or leave it out for any)"
            )));
        }
        if r.channels.is_empty() {
            return Err(AlertsError::Invalid(
                "a rule needs at least one channel id in \"channels\"".into(),
            ));
        }
        let channels = self.list_channels().await?;
        for c in &r.channels {
            if !channels.iter().any(|x| x.id == *c) {
                return Err(AlertsError::Invalid(format!(
                    "channel {c} does not exist; create it first (POST /api/alerts/channels)"
                )));
            }
        }
        Ok(())
    }

    /// Creates (`id == 0`) or replaces a rule.
    pub async fn save_rule(&self, mut r: Rule) -> Result<Rule, AlertsError> {
        self.validate_rule(&r).await?;
        let now = now_ms();
        r.updated_ms = now;
        let saved = self
            .inner
            .db
            .write(move |txn| {
                if r.id == 0 {
                    r.id = store::next_id(txn, "rule")?;
                    r.created_ms = now;
                } else {
                    let t = txn.open_table(store::RULES)?;
                    let old: Rule = match t.get(r.id)? {
                        Some(v) => store::decode(v.value())?,
                        None => return Err(AlertsError::NotFound("rule")),
                    };
                    r.created_ms = old.created_ms;
                }
                txn.open_table(store::RULES)?
                    .insert(r.id, store::encode(&r).as_slice())?;
                Ok(r)
            })
            .await?;
        self.invalidate_rules();
        Ok(saved)
    }

    pub async fn delete_rule(&self, id: u64) -> Result<(), AlertsError> {
        self.inner
            .db
            .write(move |txn| {
                if txn.open_table(store::RULES)?.remove(id)?.is_none() {
                    return Err(AlertsError::NotFound("rule"));
                }
                Ok(())
            })
            .await?;
        self.invalidate_rules();
        Ok(())
    }

    pub async fn list_channels(&self) -> Result<Vec<Channel>, AlertsError> {
        self.inner
            .db
            .read(|txn| {
                let t = txn.open_table(store::CHANNELS)?;
                let mut out = Vec::new();
                for row in t.iter()? {
                    out.push(store::decode(row?.1.value())?);
                }
                Ok(out)
            })
            .await
    }

    pub async fn get_channel(&self, id: u64) -> Result<Channel, AlertsError> {
        self.inner
            .db
            .read(move |txn| {
                let t = txn.open_table(store::CHANNELS)?;
                match t.get(id)? {
                    Some(v) => Ok(store::decode(v.value())?),
                    None => Err(AlertsError::NotFound("channel")),
                }
            })
            .await
    }

    /// Creates (`id == 0`) or replaces a channel. A webhook keeps its secret unless
    /// `rotate_secret`; a new webhook gets a fresh `whsec_` secret.
    pub async fn save_channel(
        &self,
        mut c: Channel,
        rotate_secret: bool,
    ) -> Result<Channel, AlertsError> {
        if c.name.trim().is_empty() {
            return Err(AlertsError::Invalid("a channel needs a name".into()));
        }
        match &c.kind {
            ChannelKind::Email { to } => {
                if to.is_empty() {
                    return Err(AlertsError::Invalid(
                        "an email channel needs \"to\" addresses".into(),
                    ));
                }
                for a in to {
                    crate::mail::smtp::check_address(a).map_err(AlertsError::Invalid)?;
                }
            }
            ChannelKind::Slack { url } | ChannelKind::Webhook { url, .. } => {
                match self.inner.http.check_target(url).await {
                    Ok(()) => {}
                    Err(crate::net::NetError::Refused(r)) => {
                        return Err(AlertsError::TargetNotAllowed(format!(
                            "the channel's URL is refused: {r}"
                        )));
                    }
                    Err(_) => {
                        return Err(AlertsError::Invalid(format!(
                            "{} is not an http(s) URL with a host",
                            crate::net::redact_url(url)
                        )));
                    }
                }
            }
        }
        if let ChannelKind::Webhook { secret, .. } = &c.kind
            && !secret.is_empty()
            && deliver::secret_key(secret).is_none()
        {
            return Err(AlertsError::Invalid(
                "a webhook secret is \"whsec_\" followed by base64 (or leave it empty to get one)"
                    .into(),
            ));
        }
        let now = now_ms();
        c.updated_ms = now;
        self.inner
            .db
            .write(move |txn| {
                let old: Option<Channel> = if c.id == 0 {
                    None
                } else {
                    let t = txn.open_table(store::CHANNELS)?;
                    match t.get(c.id)? {
                        Some(v) => Some(store::decode(v.value())?),
                        None => return Err(AlertsError::NotFound("channel")),
                    }
                };
                if c.id == 0 {
                    c.id = store::next_id(txn, "channel")?;
                    c.created_ms = now;
                } else if let Some(o) = &old {
                    c.created_ms = o.created_ms;
                }
                if let ChannelKind::Webhook { secret, .. } = &mut c.kind
                    && secret.is_empty()
                {
                    *secret = match (&old, rotate_secret) {
                        (
                            Some(Channel {
                                kind: ChannelKind::Webhook { secret: s, .. },
                                ..
                            }),
                            false,
                        ) => s.clone(),
                        _ => deliver::new_secret(),
                    };
                }
                txn.open_table(store::CHANNELS)?
                    .insert(c.id, store::encode(&c).as_slice())?;
                Ok(c)
            })
            .await
    }

    pub async fn delete_channel(&self, id: u64) -> Result<(), AlertsError> {
        let in_use: Vec<u64> = self
            .list_rules()
            .await?
            .into_iter()
            .filter(|r| r.channels.contains(&id))
            .map(|r| r.id)
            .collect();
        if !in_use.is_empty() {
            return Err(AlertsError::Invalid(format!(
                "channel {id} is used by rule(s) {in_use:?}; remove it from them first"
            )));
        }
        self.inner
            .db
            .write(move |txn| {
                if txn.open_table(store::CHANNELS)?.remove(id)?.is_none() {
                    return Err(AlertsError::NotFound("channel"));
                }
                Ok(())
            })
            .await
    }

    /// Fired alerts, newest first.
    pub async fn history(
        &self,
        rule_id: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Fired>, AlertsError> {
        let limit = limit.clamp(1, 500);
        self.inner
            .db
            .read(move |txn| {
                let t = txn.open_table(store::HISTORY)?;
                let mut out = Vec::new();
                for row in t.iter()?.rev() {
                    let f: Fired = store::decode(row?.1.value())?;
                    if rule_id.is_some_and(|r| r != f.alert.rule_id) {
                        continue;
                    }
                    out.push(f);
                    if out.len() >= limit {
                        break;
                    }
                }
                Ok(out)
            })
            .await
    }

    /// Records a delivery attempt's result in the fired alert's history.
    pub(crate) async fn record_delivery(
        &self,
        fired_id: u64,
        channel_id: u64,
        status: DeliveryStatus,
        attempts: u32,
        error: Option<String>,
        reply: Option<String>,
    ) -> Result<(), AlertsError> {
        match status {
            DeliveryStatus::Delivered => self.inner.delivered_total.fetch_add(1, Ordering::Relaxed),
            _ => self
                .inner
                .delivery_failures_total
                .fetch_add(1, Ordering::Relaxed),
        };
        self.inner
            .db
            .write(move |txn| {
                let mut t = txn.open_table(store::HISTORY)?;
                let mut f: Fired = match t.get(fired_id)? {
                    Some(v) => store::decode(v.value())?,
                    None => return Ok(()),
                };
                if let Some(d) = f.deliveries.iter_mut().find(|d| d.channel_id == channel_id) {
                    d.status = status;
                    d.attempts = attempts;
                    d.last_error = error;
                    d.reply = reply;
                    d.updated_ms = now_ms();
                }
                t.insert(fired_id, store::encode(&f).as_slice())?;
                Ok(())
            })
            .await
    }
}
