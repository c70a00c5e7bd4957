//! Internal mail: a durable outbox delivered through an SMTP relay.
//!
//! A message is accepted once it is committed to the outbox (`mail_messages` + a queue row).
//! One worker, woken by a [`Notify`] after every enqueue and by timers for retries, claims ready
//! messages urgent-first (marking them `sending` with one more attempt), hands them to the pooled
//! lettre transport, and commits each outcome in a group commit: `sent`, `failed` (5xx, or
//! transient failures past `[mail] retry_for`) or back to the queue with exponential backoff.
//! `mail.sent` / `mail.failed` are published on the bus in that same commit. A message still
//! marked `sending` when the process stops is re-queued at the next start (at-least-once).

pub mod api;
pub mod model;
pub mod smtp;
pub mod store;
pub mod templates;
mod worker;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use redb::{ReadableTable, ReadableTableMetadata};
use serde::Serialize;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::app::AppState;
use crate::bus::Bus;
use crate::config::Config;
use crate::http::error::{ApiError, Code};
use crate::store::{Db, StoreError, codec, now_ms};
use model::{
    Attachment, AttachmentMeta, Body, Category, LogKind, MessageRecord, NewMessage, Priority,
    Status, Template, TemplateSend,
};

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Invalid(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unavailable(String),
    /// A template render ran out of its instruction or output budget.
    #[error("{0}")]
    TemplateLimit(String),
}

crate::impl_from_redb!(MailError);

impl From<templates::RenderError> for MailError {
    fn from(e: templates::RenderError) -> Self {
        match e {
            templates::RenderError::Invalid(m) => MailError::Invalid(m),
            templates::RenderError::Limit(m) => MailError::TemplateLimit(m),
        }
    }
}

impl From<MailError> for ApiError {
    fn from(e: MailError) -> Self {
        match e {
            MailError::Store(s) => ApiError::internal(s),
            MailError::Invalid(m) => ApiError::bad_request(m),
            MailError::NotFound(what) => ApiError::not_found(what),
            MailError::Conflict(m) => ApiError::new(Code::Conflict, m),
            MailError::Unavailable(m) => ApiError::new(Code::Unavailable, m),
            MailError::TemplateLimit(m) => ApiError::new(Code::TemplateLimitExceeded, m),
        }
    }
}

/// Largest total attachment size per message (relays commonly refuse more than 10-25 MB).
const MAX_ATTACHMENTS_BYTES: usize = 10_000_000;
/// Most messages one bulk request may create.
pub const MAX_BULK: usize = 1000;

pub(crate) struct Inner {
    db: Db,
    bus: Bus,
    config: Arc<Config>,
    /// Wakes the worker after an enqueue, a cancel, a retry or a rate-limit change.
    notify: Notify,
    /// Messages per hour; 0 is unlimited. Starts at `[mail] rate_limit_per_hour`.
    rate_limit: AtomicU32,
    /// Times of attempts in the last hour, for the rate limit.
    window: Mutex<VecDeque<i64>>,
    sent_total: AtomicU64,
    failed_total: AtomicU64,
    deferred_total: AtomicU64,
    inflight: AtomicU64,
    /// Template renders run on blocking threads, at most this many at once (each may hold up
    /// to `[mail] template_max_output`, and spends CPU the async workers need).
    render_permits: Arc<Semaphore>,
    renders_in_flight: AtomicU64,
}

impl Inner {
    /// How many more attempts the rate limit allows now, and when the next slot frees.
    fn allowance(&self, now: i64) -> (usize, Option<i64>) {
        let limit = self.rate_limit.load(Ordering::Relaxed);
        if limit == 0 {
            return (usize::MAX, None);
        }
        let mut w = self.window.lock().expect("mail window");
        while w.front().is_some_and(|t| *t <= now - 3_600_000) {
            w.pop_front();
        }
        let used = w.len();
        let left = (limit as usize).saturating_sub(used);
        (left, w.front().map(|t| t + 3_600_000))
    }

    fn record_attempts(&self, now: i64, n: usize) {
        if self.rate_limit.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut w = self.window.lock().expect("mail window");
        for _ in 0..n {
            w.push_back(now);
        }
    }
}

struct DecrementOnDrop<'a>(&'a AtomicU64);

impl Drop for DecrementOnDrop<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The mail service.
#[derive(Clone)]
pub struct Mail {
    inner: Arc<Inner>,
}

/// Filters for listing messages.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MessageQuery {
    pub status: Option<String>,
    /// Substring of any recipient (to, cc, bcc), case-insensitive.
    pub to: Option<String>,
    /// Substring of the subject, case-insensitive.
    pub subject: Option<String>,
    /// Substring of a recipient or the subject.
    pub q: Option<String>,
    pub category: Option<String>,
    /// Only messages with a smaller id (paging: pass the last id seen).
    pub before: Option<u64>,
    pub limit: Option<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DayStats {
    pub date: String,
    pub category: String,
    pub queued: u64,
    pub sent: u64,
    pub failed: u64,
    pub cancelled: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub days: Vec<DayStats>,
    /// Messages ready to send now.
    pub ready: u64,
    /// Messages waiting for a retry.
    pub deferred: u64,
    pub sending: u64,
    pub rate_limit_per_hour: u32,
    pub attempts_last_hour: usize,
    /// Whether the rate limit is holding mail back right now.
    pub held_by_rate_limit: bool,
    /// dash (issue 16): whether `[smtp] host` names a relay (without one, mail stays queued).
    pub relay_configured: bool,
}

fn lower_contains(hay: &str, needle: &str) -> bool {
    hay.to_lowercase().contains(&needle.to_lowercase())
}

impl Mail {
    pub fn new(db: Db, bus: Bus, config: Arc<Config>) -> Mail {
        let rate = config.mail.rate_limit_per_hour;
        Mail {
            inner: Arc::new(Inner {
                db,
                bus,
                config,
                notify: Notify::new(),
                rate_limit: AtomicU32::new(rate),
                window: Mutex::new(VecDeque::new()),
                sent_total: AtomicU64::new(0),
                failed_total: AtomicU64::new(0),
                deferred_total: AtomicU64::new(0),
                inflight: AtomicU64::new(0),
                render_permits: Arc::new(Semaphore::new(
                    std::thread::available_parallelism().map_or(2, |n| n.get().min(4)),
                )),
                renders_in_flight: AtomicU64::new(0),
            }),
        }
    }

    /// Registers this part's durable bus consumers; mail has none (it is woken directly).
    pub fn register(&self, _state: &AppState) {}

    /// Starts the outbox worker.
    pub fn start(&self, _state: &AppState, shutdown: CancellationToken) -> Vec<JoinHandle<()>> {
        vec![tokio::spawn(worker::run(self.inner.clone(), shutdown))]
    }

    /// Appends this part's Prometheus metrics (the outbox worker's counters).
    pub fn render_metrics(&self, out: &mut String) {
        worker::render_metrics(&self.inner, self.renders_in_flight(), out);
    }

    /// Changes the hourly rate limit at run time (0 lifts it) and wakes the worker.
    pub fn set_rate_limit(&self, per_hour: u32) {
        self.inner.rate_limit.store(per_hour, Ordering::Relaxed);
        self.inner.notify.notify_one();
    }

    fn prepare(
        &self,
        msg: NewMessage,
        template: Option<String>,
    ) -> Result<(MessageRecord, Body), MailError> {
        let clean = |v: Vec<String>| -> Result<Vec<String>, MailError> {
            let mut out = Vec::new();
            for a in v {
                let a = a.trim().to_string();
                if a.is_empty() {
                    continue;
                }
                smtp::check_address(&a).map_err(MailError::Invalid)?;
                out.push(a);
            }
            Ok(out)
        };
        let to = clean(msg.to)?;
        let cc = clean(msg.cc)?;
        let bcc = clean(msg.bcc)?;
        if to.is_empty() && cc.is_empty() && bcc.is_empty() {
            return Err(MailError::Invalid(
                "give at least one recipient in \"to\" (or cc/bcc)".into(),
            ));
        }
        let subject = msg.subject.replace(['\r', '\n'], " ").trim().to_string();
        if subject.is_empty() {
            return Err(MailError::Invalid("give a non-empty \"subject\"".into()));
        }
        if msg.text.is_empty() && msg.html.is_none() {
            return Err(MailError::Invalid(
                "give a \"text\" body (and optionally \"html\")".into(),
            ));
        }
        let mut attachments = Vec::new();
        let mut total = 0usize;
        for a in msg.attachments {
            let data = base64::engine::general_purpose::STANDARD
                .decode(a.content_base64.trim())
                .map_err(|e| {
                    MailError::Invalid(format!(
                        "attachment {:?}: content_base64 is not base64: {e}",
                        a.filename
                    ))
                })?;
            total += data.len();
            let filename = a.filename.replace(['\r', '\n', '"', '/', '\\'], "_");
            if filename.trim().is_empty() {
                return Err(MailError::Invalid(
                    "every attachment needs a filename".into(),
                ));
            }
            let content_type = a
                .content_type
                .filter(|c| lettre::message::header::ContentType::parse(c).is_ok())
                .unwrap_or_else(|| {
                    mime_guess::from_path(&filename)
                        .first_or_octet_stream()
                        .to_string()
                });
            attachments.push(Attachment {
                filename,
                content_type,
                data,
            });
        }
        if total > MAX_ATTACHMENTS_BYTES {
            return Err(MailError::Invalid(format!(
                "attachments total {total} bytes; the limit is {MAX_ATTACHMENTS_BYTES}"
            )));
        }
        let now = now_ms();
        let record = MessageRecord {
            id: 0,
            status: Status::Queued,
            priority: msg.priority.unwrap_or(Priority::Normal),
            category: msg.category.unwrap_or_default(),
            from: self.inner.config.smtp.from.clone(),
            to,
            cc,
            bcc,
            subject,
            template,
            attachments: attachments
                .iter()
                .map(|a| AttachmentMeta {
                    filename: a.filename.clone(),
                    content_type: a.content_type.clone(),
                    size: a.data.len() as u64,
                })
                .collect(),
            created_ms: now,
            updated_ms: now,
            deadline_ms: now + self.inner.config.mail.retry_for.get().as_millis() as i64,
            next_attempt_ms: None,
            attempts: 0,
            sent_ms: None,
            last_error: None,
            last_code: None,
            dedup_key: msg.dedup_key.filter(|k| !k.is_empty()),
            log: Vec::new(),
        };
        let body = Body {
            text: msg.text,
            html: msg.html,
            attachments,
        };
        Ok((record, body))
    }

    /// Queues one message; returns its id once it is committed.
    pub async fn enqueue(&self, msg: NewMessage) -> Result<u64, MailError> {
        let prepared = self.prepare(msg, None)?;
        Ok(self.commit_new(vec![prepared]).await?[0])
    }

    /// Queues a message rendered from a template.
    pub async fn enqueue_template(&self, req: TemplateSend) -> Result<u64, MailError> {
        let msg = self.render_send(&req).await?;
        let prepared = self.prepare(msg, Some(req.template))?;
        Ok(self.commit_new(vec![prepared]).await?[0])
    }

    /// Queues many messages in one transaction; all or none are accepted.
    pub async fn enqueue_bulk(
        &self,
        msgs: Vec<(NewMessage, Option<String>)>,
    ) -> Result<Vec<u64>, MailError> {
        if msgs.is_empty() {
            return Err(MailError::Invalid(
                "a bulk send needs at least one message".into(),
            ));
        }
        if msgs.len() > MAX_BULK {
            return Err(MailError::Invalid(format!(
                "a bulk send takes at most {MAX_BULK} messages; split the request"
            )));
        }
        let mut prepared = Vec::with_capacity(msgs.len());
        for (i, (m, t)) in msgs.into_iter().enumerate() {
            prepared.push(
                self.prepare(m, t)
                    .map_err(|e| MailError::Invalid(format!("message {i}: {e}")))?,
            );
        }
        self.commit_new(prepared).await
    }

    /// Renders `t` once for each set of variables, on a blocking thread within the
    /// `[mail] template_*` limits; the first failure is the answer (its index in the message).
    pub async fn render_all(
        &self,
        t: Template,
        vars: Vec<serde_json::Map<String, serde_json::Value>>,
    ) -> Result<Vec<templates::Rendered>, MailError> {
        // The permit and the gauge go with the blocking task: a request that gives up does not
        // free a slot while its render still runs.
        let permit = self
            .inner
            .render_permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| MailError::Unavailable("the server is shutting down".into()))?;
        let limits = templates::Limits::from_config(&self.inner.config.mail);
        let inner = self.inner.clone();
        let several = vars.len() > 1;
        let done = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            inner.renders_in_flight.fetch_add(1, Ordering::Relaxed);
            let _gauge = DecrementOnDrop(&inner.renders_in_flight);
            vars.iter()
                .enumerate()
                .map(|(i, v)| {
                    templates::render(&t, v, &limits).map_err(|e| {
                        if several {
                            e.prefixed(&format!("recipient {i}"))
                        } else {
                            e
                        }
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .await;
        match done {
            Ok(r) => Ok(r?),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(MailError::Unavailable("the server is shutting down".into())),
        }
    }

    /// Template renders running now (a gauge in `/metrics`).
    pub fn renders_in_flight(&self) -> u64 {
        self.inner.renders_in_flight.load(Ordering::Relaxed)
    }

    /// Renders a template send into a plain message.
    pub async fn render_send(&self, req: &TemplateSend) -> Result<NewMessage, MailError> {
        let t = self.template(&req.template).await?;
        let r = self
            .render_all(t, vec![req.vars.clone()])
            .await?
            .pop()
            .expect("one render per set of variables");
        Ok(NewMessage {
            to: req.to.clone(),
            cc: req.cc.clone(),
            bcc: req.bcc.clone(),
            subject: r.subject,
            text: r.text,
            html: r.html,
            attachments: req.attachments.clone(),
            priority: req.priority,
            category: req.category,
            dedup_key: req.dedup_key.clone(),
        })
    }

    async fn commit_new(
        &self,
        prepared: Vec<(MessageRecord, Body)>,
    ) -> Result<Vec<u64>, MailError> {
        let ids = self
            .inner
            .db
            .write(move |txn| {
                let mut ids = Vec::with_capacity(prepared.len());
                for (mut m, body) in prepared {
                    if let Some(key) = &m.dedup_key {
                        let existing = txn
                            .open_table(store::DEDUP)?
                            .get(key.as_str())?
                            .map(|v| v.value());
                        if let Some(id) = existing {
                            ids.push(id);
                            continue;
                        }
                    }
                    m.id = store::next_id(txn)?;
                    let (now, n) = (m.created_ms, m.recipients().count());
                    m.push_log(
                        now,
                        LogKind::Queued,
                        0,
                        format!("queued for {n} recipient(s)"),
                        None,
                    );
                    if let Some(key) = &m.dedup_key {
                        txn.open_table(store::DEDUP)?.insert(key.as_str(), m.id)?;
                    }
                    store::put(txn, &m)?;
                    store::put_body(txn, m.id, &body)?;
                    store::enqueue_ready(txn, &m)?;
                    store::bump_stat(txn, now, m.category, "queued")?;
                    ids.push(m.id);
                }
                Ok::<_, MailError>(ids)
            })
            .await?;
        self.inner.notify.notify_one();
        Ok(ids)
    }

    pub async fn get(&self, id: u64) -> Result<MessageRecord, MailError> {
        self.inner
            .db
            .read(move |txn| store::get_read(txn, id)?.ok_or(MailError::NotFound("message")))
            .await
    }

    /// Newest first.
    pub async fn list(&self, q: MessageQuery) -> Result<Vec<MessageRecord>, MailError> {
        let status = match q.status.as_deref().filter(|s| !s.is_empty()) {
            Some(s) => Some(Status::parse(s).ok_or_else(|| {
                MailError::Invalid(format!(
                    "unknown status {s:?}; use queued, sending, sent, failed or cancelled"
                ))
            })?),
            None => None,
        };
        let category = match q.category.as_deref().filter(|s| !s.is_empty()) {
            Some(c) => Some(Category::parse(c).ok_or_else(|| {
                MailError::Invalid(format!(
                    "unknown category {c:?}; use monitoring, admin, internal or development"
                ))
            })?),
            None => None,
        };
        let limit = q.limit.unwrap_or(50).clamp(1, 500);
        self.inner
            .db
            .read(move |txn| {
                let t = txn.open_table(store::MESSAGES)?;
                let upper = q.before.unwrap_or(u64::MAX);
                let mut out = Vec::new();
                // A search over a huge log stops after this many rows; page with `before`.
                for row in t.range(..upper)?.rev().take(200_000) {
                    let (_, v) = row?;
                    let m: MessageRecord = codec::decode(v.value())?;
                    if status.is_some_and(|s| s != m.status)
                        || category.is_some_and(|c| c != m.category)
                    {
                        continue;
                    }
                    if let Some(to) = q.to.as_deref().filter(|s| !s.is_empty())
                        && !m.recipients().any(|r| lower_contains(r, to))
                    {
                        continue;
                    }
                    if let Some(s) = q.subject.as_deref().filter(|s| !s.is_empty())
                        && !lower_contains(&m.subject, s)
                    {
                        continue;
                    }
                    if let Some(s) = q.q.as_deref().filter(|s| !s.is_empty())
                        && !(lower_contains(&m.subject, s)
                            || m.recipients().any(|r| lower_contains(r, s)))
                    {
                        continue;
                    }
                    out.push(m);
                    if out.len() >= limit {
                        break;
                    }
                }
                Ok::<_, MailError>(out)
            })
            .await
    }

    /// Cancels a message still waiting in the outbox.
    pub async fn cancel(&self, id: u64) -> Result<MessageRecord, MailError> {
        self.inner
            .db
            .write(move |txn| {
                let mut m = store::get(txn, id)?.ok_or(MailError::NotFound("message"))?;
                if m.status != Status::Queued {
                    return Err(MailError::Conflict(format!(
                        "message {id} is {}; only queued messages can be cancelled",
                        m.status.as_str()
                    )));
                }
                store::dequeue(txn, &m)?;
                let now = now_ms();
                m.status = Status::Cancelled;
                m.next_attempt_ms = None;
                let attempt = m.attempts;
                m.push_log(
                    now,
                    LogKind::Cancelled,
                    attempt,
                    "cancelled by an admin".into(),
                    None,
                );
                store::put(txn, &m)?;
                store::bump_stat(txn, now, m.category, "cancelled")?;
                Ok(m)
            })
            .await
    }

    /// Sends a deferred message now, or gives a failed one a fresh retry period.
    pub async fn retry(&self, id: u64) -> Result<MessageRecord, MailError> {
        let retry_for = self.inner.config.mail.retry_for.get().as_millis() as i64;
        let m = self
            .inner
            .db
            .write(move |txn| {
                let mut m = store::get(txn, id)?.ok_or(MailError::NotFound("message"))?;
                if !matches!(m.status, Status::Queued | Status::Failed) {
                    return Err(MailError::Conflict(format!(
                        "message {id} is {}; only queued or failed messages can be retried",
                        m.status.as_str()
                    )));
                }
                store::dequeue(txn, &m)?;
                let now = now_ms();
                m.status = Status::Queued;
                m.next_attempt_ms = None;
                m.deadline_ms = now + retry_for;
                let attempt = m.attempts;
                m.push_log(
                    now,
                    LogKind::Retried,
                    attempt,
                    "retry requested by an admin".into(),
                    None,
                );
                store::put(txn, &m)?;
                store::enqueue_ready(txn, &m)?;
                Ok(m)
            })
            .await?;
        self.inner.notify.notify_one();
        Ok(m)
    }

    /// Per-day, per-category counts for the last `days` days (UTC), and the queue now.
    pub async fn stats(&self, days: u32) -> Result<Stats, MailError> {
        let days = days.clamp(1, 366) as i64;
        let today = store::day_of(now_ms());
        let (rate, (left, _)) = (
            self.inner.rate_limit.load(Ordering::Relaxed),
            self.inner.allowance(now_ms()),
        );
        let used = if rate == 0 {
            0
        } else {
            rate as usize - left.min(rate as usize)
        };
        let relay_configured = !self.inner.config.smtp.host.is_empty();
        self.inner
            .db
            .read(move |txn| {
                let t = txn.open_table(store::STATS)?;
                let mut map: std::collections::BTreeMap<(i64, String), DayStats> =
                    Default::default();
                for row in t.range((today - days + 1, "", "")..)? {
                    let (k, v) = row?;
                    let (day, cat, status) = k.value();
                    let date = jiff::Timestamp::from_millisecond(day * 86_400_000)
                        .map(|t| t.strftime("%Y-%m-%d").to_string())
                        .unwrap_or_default();
                    let e = map
                        .entry((day, cat.to_string()))
                        .or_insert_with(|| DayStats {
                            date,
                            category: cat.to_string(),
                            queued: 0,
                            sent: 0,
                            failed: 0,
                            cancelled: 0,
                        });
                    let n = v.value();
                    match status {
                        "queued" => e.queued += n,
                        "sent" => e.sent += n,
                        "failed" => e.failed += n,
                        "cancelled" => e.cancelled += n,
                        _ => {}
                    }
                }
                let ready = txn.open_table(store::QUEUE)?.len()?;
                let deferred = txn.open_table(store::DELAYED)?.len()?;
                let sending = txn.open_table(store::SENDING)?.len()?;
                Ok::<_, MailError>(Stats {
                    days: map.into_values().collect(),
                    ready,
                    deferred,
                    sending,
                    rate_limit_per_hour: rate,
                    attempts_last_hour: used,
                    held_by_rate_limit: rate != 0 && left == 0 && ready > 0,
                    relay_configured,
                })
            })
            .await
    }

    // ---- templates ----------------------------------------------------------------------

    /// A template by name: an admin's version first, else the built-in.
    pub async fn template(&self, name: &str) -> Result<Template, MailError> {
        let n = name.to_string();
        let stored = self
            .inner
            .db
            .read(move |txn| store::template(txn, &n))
            .await?;
        stored
            .or_else(|| templates::builtin(name))
            .ok_or(MailError::NotFound("template"))
    }

    pub async fn templates(&self) -> Result<Vec<Template>, MailError> {
        let stored: Vec<Template> = self
            .inner
            .db
            .read(|txn| {
                let t = txn.open_table(store::TEMPLATES)?;
                let mut v = Vec::new();
                for row in t.iter()? {
                    let (_, bytes) = row?;
                    v.push(codec::decode(bytes.value())?);
                }
                Ok::<_, MailError>(v)
            })
            .await?;
        let mut all: Vec<Template> = templates::builtins()
            .into_iter()
            .filter(|b| !stored.iter().any(|s| s.name == b.name))
            .collect();
        all.extend(stored);
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }

    /// Creates (`create = true`, refusing an existing name) or updates a template. Updating a
    /// built-in stores an override of it.
    pub async fn save_template(
        &self,
        mut t: Template,
        create: bool,
    ) -> Result<Template, MailError> {
        let valid_name = !t.name.is_empty()
            && t.name.len() <= 64
            && t.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid_name {
            return Err(MailError::Invalid(
                "a template name is 1-64 letters, digits, '_' or '-'".into(),
            ));
        }
        if t.subject.trim().is_empty() || (t.text.trim().is_empty() && t.html.is_none()) {
            return Err(MailError::Invalid(
                "a template needs a subject and a text (or html) body".into(),
            ));
        }
        templates::validate(&t)
            .map_err(|e| MailError::Invalid(format!("template does not compile: {e}")))?;
        t.builtin = templates::builtin(&t.name).is_some();
        t.updated_ms = now_ms();
        self.inner
            .db
            .write(move |txn| {
                let mut table = txn.open_table(store::TEMPLATES)?;
                let exists = table.get(t.name.as_str())?.is_some() || t.builtin;
                if create && exists {
                    return Err(MailError::Conflict(format!(
                        "a template named {:?} exists; update it with PUT",
                        t.name
                    )));
                }
                if !create && !exists {
                    return Err(MailError::NotFound("template"));
                }
                table.insert(t.name.as_str(), codec::encode(&t).as_slice())?;
                Ok(t)
            })
            .await
    }

    /// Sends a test message straight through the relay (not through the outbox).
    pub async fn send_test(&self, to: &str) -> Result<String, MailError> {
        smtp::send_test_email(&self.inner.config.smtp, to)
            .await
            .map_err(MailError::Unavailable)
    }
}
