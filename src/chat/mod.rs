//! Live chat and support conversations (the Intercom replacement).
//!
//! - **Sites** carry a public site key (in the widget snippet) and an identity secret the site's
//!   backend uses to sign user ids (HMAC-SHA256, hex).
//! - **Visitors** are anonymous until verified; the browser keeps a visitor token (stored here
//!   only as its sha256). The widget credential is site key + visitor token.
//! - **Conversations** hold sequenced **entries** (messages, notes, status changes). Each entry
//!   is committed in one write transaction together with its bus event (`chat.message.created`,
//!   `chat.conversation.*`); the sender is acknowledged after that commit, and the hub fans the
//!   entry out after it. A client that reconnects names its last seq and gets exactly what it
//!   missed (`ws.rs`).
//! - Typing and presence are ephemeral: hub frames only, never stored.

pub mod api;
pub mod assign;
pub mod canned;
pub mod config;
pub mod hours;
pub mod hub;
pub mod limit;
pub mod model;
pub mod stats;
pub mod store;
// issue 19 (bandit): reply suggestions that learn
pub mod suggest;
pub mod upload;
pub mod ws;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use redb::{ReadTransaction, ReadableTable, WriteTransaction};
use serde_json::{Value, json};

use crate::accounts::Accounts;
use crate::bus::{Bus, BusError, Priority as BusPriority};
use crate::config::Config;
use crate::http::error::{ApiError, Code};
use crate::mail::Mail;
use crate::store::{Db, StoreError, codec};
pub use config::ChatConfig;
use hub::Hub;
use limit::Limiter;
use model::{Author, Canned, Channel, Conversation, Entry, Priority, Site, Status, Visitor};
use store::*;

#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("{0}")]
    Invalid(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Auth(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("rate limited")]
    RateLimited { retry_after_ms: i64, what: String },
}

crate::impl_from_redb!(ChatError);

impl From<ChatError> for ApiError {
    fn from(e: ChatError) -> Self {
        e.to_api()
    }
}

impl ChatError {
    fn to_api(&self) -> ApiError {
        match self {
            ChatError::Store(s) => ApiError::internal(s),
            ChatError::Bus(b) => ApiError::internal(b),
            ChatError::Invalid(m) => ApiError::bad_request(m.clone()),
            ChatError::NotFound(what) => ApiError::not_found(what),
            ChatError::Auth(m) => ApiError::new(Code::InvalidAuth, m.clone()),
            ChatError::TooLarge(m) => ApiError::new(Code::PayloadTooLarge, m.clone()),
            ChatError::RateLimited {
                retry_after_ms,
                what,
            } => {
                let secs = (retry_after_ms.max(&0) + 999) / 1000;
                ApiError::new(
                    Code::RateLimited,
                    format!("too many {what}; try again in {secs} s"),
                )
                .with_header("retry-after", secs.to_string())
            }
        }
    }

    /// The error as a WebSocket frame: the HTTP answer's code and message (internal causes
    /// are logged with an id, never sent).
    pub fn frame(&self, client_msg_id: Option<&str>) -> Value {
        let api = self.to_api();
        json!({"t": "error", "client_msg_id": client_msg_id, "code": api.code.as_str(), "message": api.message})
    }
}

pub type ChatResult<T> = Result<T, ChatError>;

/// The time source of everything chat decides by the clock (presence, business hours,
/// timestamps), so tests can move it.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> i64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        crate::store::now_ms()
    }
}

/// A clock tests set by hand.
#[derive(Default)]
pub struct ManualClock(std::sync::atomic::AtomicI64);

impl ManualClock {
    pub fn new(ms: i64) -> Arc<Self> {
        Arc::new(ManualClock(ms.into()))
    }
    pub fn set(&self, ms: i64) {
        self.0.store(ms, std::sync::atomic::Ordering::SeqCst);
    }
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Who is calling: a widget visitor or a signed-in agent.
#[derive(Debug, Clone)]
pub enum Who {
    Visitor { site_id: u64, visitor: Visitor },
    Agent { user_id: u64, name: String },
}

impl Who {
    pub fn author(&self) -> Author {
        match self {
            Who::Visitor { visitor, .. } => Author {
                kind: "visitor".into(),
                id: visitor.id,
                name: visitor.name.clone(),
            },
            Who::Agent { user_id, name } => Author {
                kind: "agent".into(),
                id: *user_id,
                name: name.clone(),
            },
        }
    }

    fn seen_key(&self) -> String {
        match self {
            Who::Visitor { .. } => "visitor".into(),
            Who::Agent { user_id, .. } => format!("agent:{user_id}"),
        }
    }

    pub fn is_agent(&self) -> bool {
        matches!(self, Who::Agent { .. })
    }
}

/// Hub rooms: every socket of one visitor, and every agent socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Room {
    Visitor(u64),
    Agents,
}

/// What the hub carries to a socket.
#[derive(Debug, Clone)]
pub enum Out {
    /// A committed entry of conversation `conv`.
    Entry { conv: u64, entry: Arc<Entry> },
    /// An ephemeral frame (typing, presence), already JSON.
    Frame(Arc<str>),
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct AgentPresence {
    pub user_id: u64,
    pub name: String,
    /// "online" or "away" as the agent set it.
    pub status: String,
    pub last_beat_ms: i64,
}

#[derive(Clone)]
pub struct Chat {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    bus: Bus,
    config: Arc<Config>,
    accounts: Accounts,
    mail: Mail,
    hub: Arc<Hub<Room, Out>>,
    clock: Arc<dyn Clock>,
    presence: Mutex<HashMap<u64, AgentPresence>>,
    /// user id → when auto-assignment last gave them a conversation.
    last_assigned: Mutex<HashMap<u64, i64>>,
    /// One assignment round at a time, so two rounds never both fill the same free slot.
    assigning: tokio::sync::Mutex<()>,
    visitor_messages: Limiter,
    starts_per_ip: Limiter,
    sockets_per_ip: Mutex<HashMap<std::net::IpAddr, u32>>,
    // issue 19 (bandit): the suggestion learner
    suggest: suggest::Suggest,
}

/// Longest name, email, page URL or user agent kept for a visitor.
const MAX_FIELD: usize = 512;

fn clip(s: &str, max: usize) -> String {
    let s = s.trim();
    if s.len() <= max {
        return s.to_string();
    }
    let mut i = max;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    s[..i].to_string()
}

/// hex(HMAC-SHA256(secret, user_id)): what a site's backend computes for identity verification.
pub fn identity_hash(secret: &str, user_id: &str) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(user_id.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub struct NewSite {
    pub name: String,
    pub require_identity: bool,
    pub hours: Vec<model::OpenSpan>,
    pub time_zone: String,
}

pub struct VisitorHello {
    pub site_key: String,
    pub visitor_token: Option<String>,
    pub user_id: Option<String>,
    pub user_hash: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub page_url: Option<String>,
    pub user_agent: Option<String>,
}

/// Filters for the agent inbox.
#[derive(Debug, Default, Clone)]
pub struct InboxQuery {
    /// "mine", "unassigned" or "all".
    pub view: String,
    pub status: Option<Status>,
    pub priority: Option<Priority>,
    pub assignee: Option<u64>,
    pub tickets_only: bool,
    pub limit: usize,
}

impl Chat {
    pub fn new(db: Db, bus: Bus, config: Arc<Config>, accounts: Accounts, mail: Mail) -> Chat {
        Self::with_clock(db, bus, config, accounts, mail, Arc::new(SystemClock))
    }

    pub fn with_clock(
        db: Db,
        bus: Bus,
        config: Arc<Config>,
        accounts: Accounts,
        mail: Mail,
        clock: Arc<dyn Clock>,
    ) -> Chat {
        let c = &config.chat;
        // issue 19 (bandit)
        let suggest = suggest::Suggest::new(db.clone(), bus.clone(), config.clone(), clock.clone());
        Chat {
            inner: Arc::new(Inner {
                suggest,
                hub: Hub::new(c.socket_queue),
                visitor_messages: Limiter::new(60_000, c.visitor_messages_per_minute),
                starts_per_ip: Limiter::new(3_600_000, c.starts_per_ip_per_hour),
                sockets_per_ip: Mutex::new(HashMap::new()),
                presence: Mutex::new(HashMap::new()),
                last_assigned: Mutex::new(HashMap::new()),
                assigning: tokio::sync::Mutex::new(()),
                db,
                bus,
                config,
                accounts,
                mail,
                clock,
            }),
        }
    }

    pub fn register(&self, state: &crate::app::AppState) {
        // issue 19 (bandit): the reward-join consumer
        self.inner.suggest.register(state);
    }

    /// Reply suggestions (issue 19).
    pub fn suggest(&self) -> &suggest::Suggest {
        &self.inner.suggest
    }

    /// The assignment sweep: agents whose heartbeat stopped drop out, and waiting
    /// conversations are assigned as agents come online or free up.
    pub fn start(
        &self,
        _state: &crate::app::AppState,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let chat = self.clone();
        vec![tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(15));
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tick.tick() => {
                        if let Err(e) = chat.run_assignment().await {
                            tracing::warn!("chat: assignment sweep failed: {e}");
                        }
                        if let Err(e) = chat.check_sla().await {
                            tracing::warn!("chat: SLA check failed: {e}");
                        }
                    }
                }
            }
        })]
    }

    /// Publishes `chat.ticket.sla_breached` once per conversation and target (first response,
    /// resolution) that an active conversation has passed, by `[chat] sla_first_response` and
    /// `sla_resolution` (urgent, high, normal, low). Returns how many breaches it published.
    pub async fn check_sla(&self) -> ChatResult<usize> {
        let c = self.config();
        let target = |v: &[crate::config::HumanDuration], p: Priority| -> Option<i64> {
            let i = p as usize;
            v.get(i)
                .or(v.last())
                .map(|d| d.get().as_millis() as i64)
                .filter(|ms| *ms > 0)
        };
        let (fr, res) = (c.sla_first_response.clone(), c.sla_resolution.clone());
        let now = self.now_ms();
        let bus = self.inner.bus.clone();
        self.inner
            .db
            .write(move |txn| {
                let mut t = txn.open_table(CONVERSATIONS)?;
                let mut due = Vec::new();
                for row in t.iter()? {
                    let c: Conversation = codec::decode(row?.1.value())?;
                    if !c.status.is_active() {
                        continue;
                    }
                    let mut bits = 0u8;
                    if let Some(ms) = target(&fr, c.priority)
                        && c.first_reply_ms.is_none()
                        && c.sla_breached & 1 == 0
                        && now - c.created_ms > ms
                    {
                        bits |= 1;
                    }
                    if let Some(ms) = target(&res, c.priority)
                        && c.sla_breached & 2 == 0
                        && now - c.created_ms > ms
                    {
                        bits |= 2;
                    }
                    if bits != 0 {
                        due.push((c, bits));
                    }
                }
                let n = due.len();
                for (mut c, bits) in due {
                    for (bit, kind, list) in [(1u8, "first_response", &fr), (2, "resolution", &res)] {
                        if bits & bit != 0 {
                            let ms = target(list, c.priority).unwrap_or(0);
                            bus.publish_durable(
                                txn,
                                "chat.ticket.sla_breached",
                                BusPriority::High,
                                &json!({"conversation_id": c.id, "target": kind, "priority": c.priority,
                                        "target_ms": ms, "overdue_ms": now - c.created_ms - ms,
                                        "assignee": c.assignee, "ticket": c.ticket, "subject": c.subject}),
                            )?;
                        }
                    }
                    c.sla_breached |= bits;
                    t.insert(c.id, codec::encode(&c).as_slice())?;
                }
                Ok::<_, ChatError>(n)
            })
            .await
    }

    /// Assigns waiting conversations, oldest first, while an eligible agent exists (see
    /// [`assign::pick`]). Returns how many were assigned.
    pub async fn run_assignment(&self) -> ChatResult<usize> {
        let _round = self.inner.assigning.lock().await;
        let online = self.online_agents();
        if online.is_empty() {
            return Ok(0);
        }
        let cap = self.config().agent_cap;
        let (mut counts, queue) = self
            .inner
            .db
            .read(|txn| {
                let t = txn.open_table(CONVERSATIONS)?;
                let mut counts: HashMap<u64, u32> = HashMap::new();
                let mut queue = Vec::new();
                for row in t.iter()? {
                    let c: Conversation = codec::decode(row?.1.value())?;
                    if !c.status.is_active() {
                        continue;
                    }
                    match c.assignee {
                        Some(a) => *counts.entry(a).or_default() += 1,
                        None => queue.push(c.id),
                    }
                }
                Ok::<_, ChatError>((counts, queue))
            })
            .await?;
        let mut assigned = 0;
        for conv_id in queue {
            let candidates: Vec<assign::Candidate> = {
                let last = self.inner.last_assigned.lock().expect("last assigned");
                online
                    .iter()
                    .map(|p| assign::Candidate {
                        user_id: p.user_id,
                        online: true,
                        open: counts.get(&p.user_id).copied().unwrap_or(0),
                        cap,
                        last_assigned_ms: last.get(&p.user_id).copied().unwrap_or(0),
                    })
                    .collect()
            };
            let Some(uid) = assign::pick(&candidates) else {
                break;
            };
            if self
                .assign_as(Author::system(), conv_id, Some(uid), true)
                .await?
                .assignee
                == Some(uid)
            {
                *counts.entry(uid).or_default() += 1;
                self.inner
                    .last_assigned
                    .lock()
                    .expect("last assigned")
                    .insert(uid, self.now_ms());
                assigned += 1;
            }
        }
        Ok(assigned)
    }

    pub fn render_metrics(&self, out: &mut String) {
        let hub = &self.inner.hub;
        out.push_str(&format!(
            "# HELP hearth_chat_sockets Open chat WebSockets.\n# TYPE hearth_chat_sockets gauge\nhearth_chat_sockets {}\n\
             # HELP hearth_chat_sockets_dropped_slow_total Chat sockets dropped because they read too slowly.\n# TYPE hearth_chat_sockets_dropped_slow_total counter\nhearth_chat_sockets_dropped_slow_total {}\n",
            hub.connections(),
            hub.dropped_slow()
        ));
    }

    pub fn config(&self) -> &ChatConfig {
        &self.inner.config.chat
    }

    pub fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    pub(crate) fn hub(&self) -> &Arc<Hub<Room, Out>> {
        &self.inner.hub
    }

    // ---- sites ----------------------------------------------------------------------------

    pub async fn create_site(&self, new: NewSite) -> ChatResult<Site> {
        let name = clip(&new.name, 200);
        if name.is_empty() {
            return Err(ChatError::Invalid("give the site a name".into()));
        }
        if hours::time_zone(&new.time_zone).is_none() {
            return Err(ChatError::Invalid(format!(
                "unknown time zone {:?}; use an IANA name like Europe/Berlin",
                new.time_zone
            )));
        }
        let now = self.now_ms();
        self.inner
            .db
            .write(move |txn| {
                let id = next_id(txn, "site")?;
                let site = Site {
                    id,
                    name,
                    site_key: format!("hcs_{}", crate::accounts::random_hex(16)),
                    identity_secret: crate::accounts::random_hex(32),
                    require_identity: new.require_identity,
                    hours: new.hours,
                    time_zone: if new.time_zone.is_empty() {
                        "UTC".into()
                    } else {
                        new.time_zone
                    },
                    created_ms: now,
                };
                txn.open_table(SITES)?
                    .insert(id, codec::encode(&site).as_slice())?;
                txn.open_table(SITE_KEYS)?
                    .insert(site.site_key.as_str(), id)?;
                Ok(site)
            })
            .await
    }

    pub async fn update_site(
        &self,
        id: u64,
        patch: impl FnOnce(&mut Site) -> ChatResult<()> + Send + 'static,
    ) -> ChatResult<Site> {
        self.inner
            .db
            .write(move |txn| {
                let mut site =
                    get_site(txn_read_sites(txn)?, id)?.ok_or(ChatError::NotFound("site"))?;
                patch(&mut site)?;
                txn.open_table(SITES)?
                    .insert(id, codec::encode(&site).as_slice())?;
                Ok(site)
            })
            .await
    }

    pub async fn sites(&self) -> ChatResult<Vec<Site>> {
        self.inner
            .db
            .read(|txn| {
                let t = txn.open_table(SITES)?;
                let mut out = Vec::new();
                for row in t.iter()? {
                    out.push(codec::decode(row?.1.value())?);
                }
                Ok(out)
            })
            .await
    }

    pub async fn site_by_key(&self, key: &str) -> ChatResult<Option<Site>> {
        let key = key.to_string();
        self.inner
            .db
            .read(move |txn| site_by_key_in(txn, &key))
            .await
    }

    // ---- visitors -------------------------------------------------------------------------

    /// Starts or resumes a widget session: checks the site key, the identity hash if a user id
    /// is given (a wrong one is refused), and returns the visitor with its token (a new token
    /// only when the given one is unknown).
    pub async fn visitor_session(
        &self,
        hello: VisitorHello,
        ip: Option<std::net::IpAddr>,
    ) -> ChatResult<(Site, Visitor, String)> {
        let site = self
            .site_by_key(&hello.site_key)
            .await?
            .ok_or_else(|| ChatError::Auth(unknown_site_key()))?;
        let verified = match (&hello.user_id, &hello.user_hash) {
            (Some(uid), Some(hash)) if !uid.is_empty() => {
                if uid.len() > 256 {
                    return Err(ChatError::Invalid(
                        "user_id is longer than 256 bytes".into(),
                    ));
                }
                let want = identity_hash(&site.identity_secret, uid);
                if !constant_time_eq(want.as_bytes(), hash.trim().to_ascii_lowercase().as_bytes()) {
                    return Err(ChatError::Auth(
                        "user_hash does not match user_id: compute it on your server as hex(HMAC-SHA256(identity secret, user_id)) with the secret shown for this site".into(),
                    ));
                }
                Some(uid.clone())
            }
            (Some(uid), None) if !uid.is_empty() => {
                return Err(ChatError::Auth(
                    "user_id needs user_hash = hex(HMAC-SHA256(identity secret, user_id)), computed on your server".into(),
                ));
            }
            _ => None,
        };
        if site.require_identity && verified.is_none() {
            return Err(ChatError::Auth(
                "this site only accepts verified visitors: pass user_id and user_hash".into(),
            ));
        }
        let now = self.now_ms();
        let existing_hash = hello
            .visitor_token
            .as_deref()
            .filter(|t| !t.is_empty() && t.len() <= 128)
            .map(crate::accounts::secret_hash);
        if existing_hash.is_none()
            && verified.is_none()
            && let Some(ip) = ip
            && let Err(ms) = self.inner.starts_per_ip.hit(&ip.to_string(), now)
        {
            return Err(ChatError::RateLimited {
                retry_after_ms: ms,
                what: "new chat visitors from this address".into(),
            });
        }
        let site_id = site.id;
        let (visitor, token) = self
            .inner
            .db
            .write(move |txn| {
                let mut tokens = txn.open_table(VISITOR_TOKENS)?;
                let mut visitors = txn.open_table(VISITORS)?;
                let mut found: Option<Visitor> = None;
                if let Some(h) = &existing_hash
                    && let Some(id) = tokens.get(h.as_str())?.map(|v| v.value())
                    && let Some(v) = visitors.get(id)?
                {
                    let v: Visitor = codec::decode(v.value())?;
                    // A token from another site, or of another verified user, is not this visitor.
                    if v.site_id == site_id && (verified.is_none() || v.user_id == verified) {
                        found = Some(v);
                    }
                }
                if found.is_none()
                    && let Some(uid) = &verified
                {
                    let users = txn.open_table(VISITOR_USERS)?;
                    if let Some(id) = users.get((site_id, uid.as_str()))?.map(|v| v.value())
                        && let Some(v) = visitors.get(id)?
                    {
                        found = Some(codec::decode(v.value())?);
                    }
                }
                let mut token = hello.visitor_token.clone().unwrap_or_default();
                let mut v = match found {
                    Some(v) => v,
                    None => {
                        let id = next_id(txn, "visitor")?;
                        token = format!("hcv_{}", crate::accounts::random_hex(24));
                        tokens.insert(crate::accounts::secret_hash(&token).as_str(), id)?;
                        Visitor {
                            id,
                            site_id,
                            name: String::new(),
                            email: String::new(),
                            user_id: verified.clone(),
                            created_ms: now,
                            last_seen_ms: now,
                            page_url: String::new(),
                            user_agent: String::new(),
                        }
                    }
                };
                if let Some(uid) = &verified {
                    txn.open_table(VISITOR_USERS)?
                        .insert((site_id, uid.as_str()), v.id)?;
                    v.user_id = Some(uid.clone());
                }
                if let Some(n) = hello.name.as_deref().filter(|s| !s.trim().is_empty()) {
                    v.name = clip(n, 200);
                }
                if let Some(e) = hello.email.as_deref().filter(|s| !s.trim().is_empty()) {
                    v.email = clip(e, 320);
                }
                if let Some(p) = hello.page_url.as_deref() {
                    v.page_url = clip(p, MAX_FIELD);
                }
                if let Some(u) = hello.user_agent.as_deref() {
                    v.user_agent = clip(u, MAX_FIELD);
                }
                v.last_seen_ms = now;
                visitors.insert(v.id, codec::encode(&v).as_slice())?;
                Ok::<_, ChatError>((v, token))
            })
            .await?;
        Ok((site, visitor, token))
    }

    /// The widget credential: site key + visitor token → the visitor, or why not.
    pub async fn authenticate_visitor(
        &self,
        site_key: &str,
        token: &str,
    ) -> ChatResult<(Site, Visitor)> {
        if site_key.len() > 128 || token.len() > 128 {
            return Err(ChatError::Auth(unknown_site_key()));
        }
        let (key, hash) = (site_key.to_string(), crate::accounts::secret_hash(token));
        self.inner
            .db
            .read(move |txn| {
                let site = site_by_key_in(txn, &key)?
                    .ok_or_else(|| ChatError::Auth(unknown_site_key()))?;
                let bad = || {
                    ChatError::Auth(
                        "unknown visitor token; start a new widget session (POST /api/chat/widget/session)"
                            .into(),
                    )
                };
                let id = txn
                    .open_table(VISITOR_TOKENS)?
                    .get(hash.as_str())?
                    .map(|v| v.value())
                    .ok_or_else(bad)?;
                let v: Visitor = txn
                    .open_table(VISITORS)?
                    .get(id)?
                    .map(|v| codec::decode(v.value()))
                    .transpose()?
                    .ok_or_else(bad)?;
                if v.site_id != site.id {
                    return Err(bad());
                }
                Ok((site, v))
            })
            .await
    }

    pub async fn visitor(&self, id: u64) -> ChatResult<Option<Visitor>> {
        self.inner
            .db
            .read(move |txn| {
                Ok(txn
                    .open_table(VISITORS)?
                    .get(id)?
                    .map(|v| codec::decode(v.value()))
                    .transpose()?)
            })
            .await
    }

    /// Sets a visitor's name and email (what the widget's pre-chat form or the page's JS API
    /// gives); empty values leave the stored ones.
    pub async fn update_visitor(
        &self,
        id: u64,
        name: Option<String>,
        email: Option<String>,
    ) -> ChatResult<Visitor> {
        self.inner
            .db
            .write(move |txn| {
                let mut t = txn.open_table(VISITORS)?;
                let mut v: Visitor = t
                    .get(id)?
                    .map(|v| codec::decode(v.value()))
                    .transpose()?
                    .ok_or(ChatError::NotFound("visitor"))?;
                if let Some(n) = name.filter(|s| !s.trim().is_empty()) {
                    v.name = clip(&n, 200);
                }
                if let Some(e) = email.filter(|s| !s.trim().is_empty()) {
                    v.email = clip(&e, 320);
                }
                t.insert(id, codec::encode(&v).as_slice())?;
                Ok(v)
            })
            .await
    }

    /// Counts one anonymous socket from `ip`; `false` when the address has too many open.
    pub(crate) fn socket_opened(&self, ip: std::net::IpAddr) -> bool {
        let cap = self.config().sockets_per_ip;
        let mut m = self.inner.sockets_per_ip.lock().expect("sockets");
        let n = m.entry(ip).or_insert(0);
        if cap != 0 && *n >= cap {
            return false;
        }
        *n += 1;
        true
    }

    pub(crate) fn socket_closed(&self, ip: std::net::IpAddr) {
        let mut m = self.inner.sockets_per_ip.lock().expect("sockets");
        if let Some(n) = m.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&ip);
            }
        }
    }

    // ---- conversations --------------------------------------------------------------------

    fn check_body(&self, body: &str) -> ChatResult<()> {
        let max = self.config().max_message_size.as_usize();
        if body.len() > max {
            return Err(ChatError::TooLarge(format!(
                "the message is {} bytes; the limit is {max} (send files as uploads)",
                body.len()
            )));
        }
        if body.trim().is_empty() {
            return Err(ChatError::Invalid("the message is empty".into()));
        }
        Ok(())
    }

    fn check_client_id(id: &str) -> ChatResult<()> {
        if id.is_empty() || id.len() > 64 {
            return Err(ChatError::Invalid(
                "client_msg_id must be 1 to 64 characters (a UUID is a good choice)".into(),
            ));
        }
        Ok(())
    }

    fn rate_visitor(&self, who: &Who) -> ChatResult<()> {
        if let Who::Visitor { visitor, .. } = who
            && let Err(ms) = self
                .inner
                .visitor_messages
                .hit(&visitor.id.to_string(), self.now_ms())
        {
            return Err(ChatError::RateLimited {
                retry_after_ms: ms,
                what: "messages".into(),
            });
        }
        Ok(())
    }

    /// A visitor opens a conversation, optionally with a first message. Retrying with the same
    /// `client_id` returns the conversation the first call opened.
    pub async fn start_conversation(
        &self,
        who: &Who,
        channel: Channel,
        first_message: Option<String>,
        client_id: Option<String>,
    ) -> ChatResult<(Conversation, Option<Entry>)> {
        self.start_conversation_as(who, channel, first_message, client_id, None)
            .await
    }

    /// [`Chat::start_conversation`] with the ticket's priority and subject set from the start,
    /// so `chat.ticket.created` carries them.
    async fn start_conversation_as(
        &self,
        who: &Who,
        channel: Channel,
        first_message: Option<String>,
        client_id: Option<String>,
        ticket: Option<(Priority, String)>,
    ) -> ChatResult<(Conversation, Option<Entry>)> {
        let Who::Visitor { site_id, visitor } = who else {
            return Err(ChatError::Invalid(
                "only a widget visitor starts a conversation this way".into(),
            ));
        };
        if let Some(b) = &first_message {
            self.check_body(b)?;
        }
        if let Some(c) = &client_id {
            Self::check_client_id(c)?;
        }
        self.rate_visitor(who)?;
        let (site_id, visitor_id) = (*site_id, visitor.id);
        let author = who.author();
        let now = self.now_ms();
        let bus = self.inner.bus.clone();
        let (conv, entry, created) = self
            .inner
            .db
            .write(move |txn| {
                if let Some(c) = &client_id
                    && let Some(id) = txn
                        .open_table(STARTS)?
                        .get((visitor_id, c.as_str()))?
                        .map(|v| v.value())
                {
                    let conv = load_conv(txn, id)?;
                    let first = read_entries(txn, id, 0, 1, false)?.into_iter().next();
                    return Ok((conv, first, false));
                }
                let id = next_id(txn, "conversation")?;
                let mut conv = Conversation {
                    id,
                    site_id,
                    visitor_id,
                    channel,
                    status: Status::Open,
                    priority: Priority::Normal,
                    assignee: None,
                    subject: first_message
                        .as_deref()
                        .map(|m| clip(m, 120))
                        .unwrap_or_default(),
                    created_ms: now,
                    updated_ms: now,
                    last_seq: 0,
                    first_reply_ms: None,
                    resolved_ms: None,
                    reopened: 0,
                    preview: String::new(),
                    ticket: channel != Channel::Chat,
                    sla_breached: 0,
                };
                if let Some((p, subject)) = &ticket {
                    conv.priority = *p;
                    if !subject.is_empty() {
                        conv.subject = subject.clone();
                    }
                }
                if conv.ticket {
                    bus.publish_durable(
                        txn,
                        "chat.ticket.created",
                        BusPriority::Normal,
                        &json!({"conversation_id": id, "priority": conv.priority, "channel": channel,
                                "subject": conv.subject}),
                    )?;
                }
                txn.open_table(VISITOR_CONVS)?.insert((visitor_id, id), ())?;
                if let Some(c) = &client_id {
                    txn.open_table(STARTS)?.insert((visitor_id, c.as_str()), id)?;
                }
                bus.publish_durable(
                    txn,
                    "chat.conversation.created",
                    BusPriority::Normal,
                    &json!({"conversation_id": id, "site_id": site_id, "visitor_id": visitor_id, "channel": channel}),
                )?;
                let entry = match first_message {
                    Some(body) => {
                        let cid = client_id.clone().map(|c| format!("start:{c}"));
                        Some(append(txn, &bus, &mut conv, "message.created", author, body, false, cid, now)?)
                    }
                    None => None,
                };
                save_conv(txn, &conv)?;
                Ok::<_, ChatError>((conv, entry, true))
            })
            .await?;
        if created && let Some(e) = &entry {
            self.fan_out(&conv, e.clone());
        }
        if created {
            self.run_assignment().await?;
        }
        Ok((conv, entry))
    }

    /// Loads a conversation the caller may see: a visitor only their own.
    pub async fn conversation_for(&self, who: &Who, id: u64) -> ChatResult<Conversation> {
        let conv = self
            .inner
            .db
            .read(move |txn| {
                txn.open_table(CONVERSATIONS)?
                    .get(id)?
                    .map(|v| codec::decode::<Conversation>(v.value()))
                    .transpose()
                    .map_err(ChatError::from)
            })
            .await?
            .ok_or(ChatError::NotFound("conversation"))?;
        match who {
            // Someone else's conversation answers exactly like a missing one.
            Who::Visitor { visitor, .. } if conv.visitor_id != visitor.id => {
                Err(ChatError::NotFound("conversation"))
            }
            _ => Ok(conv),
        }
    }

    /// Posts a message (or, for agents, a private note). Committed with its bus event before
    /// this returns; a retry with the same `client_msg_id` returns the first entry and
    /// `false`, and publishes nothing again.
    pub async fn post(
        &self,
        who: &Who,
        conv_id: u64,
        client_msg_id: String,
        body: String,
        private: bool,
    ) -> ChatResult<(Conversation, Entry, bool)> {
        self.check_body(&body)?;
        self.post_inner(who, conv_id, client_msg_id, body, private, None)
            .await
    }

    /// Posts a message carrying an uploaded file (the body is its name).
    pub async fn post_attachment(
        &self,
        who: &Who,
        conv_id: u64,
        client_msg_id: String,
        attachment: model::Attachment,
    ) -> ChatResult<(Conversation, Entry, bool)> {
        let body = attachment.name.clone();
        self.post_inner(who, conv_id, client_msg_id, body, false, Some(attachment))
            .await
    }

    /// The attachment `id` of conversation `conv`, if one of its (visible) entries has it.
    pub async fn attachment(
        &self,
        conv: u64,
        id: &str,
        include_private: bool,
    ) -> ChatResult<Option<model::Attachment>> {
        let id = id.to_string();
        self.inner
            .db
            .read(move |txn| {
                let t = txn.open_table(ENTRIES)?;
                for row in t.range((conv, 0)..(conv, u64::MAX))? {
                    let e: Entry = codec::decode(row?.1.value())?;
                    if let Some(a) = e.attachment
                        && a.id == id
                        && (include_private || !e.private)
                    {
                        return Ok(Some(a));
                    }
                }
                Ok::<_, ChatError>(None)
            })
            .await
    }

    async fn post_inner(
        &self,
        who: &Who,
        conv_id: u64,
        client_msg_id: String,
        body: String,
        private: bool,
        attachment: Option<model::Attachment>,
    ) -> ChatResult<(Conversation, Entry, bool)> {
        Self::check_client_id(&client_msg_id)?;
        if private && !who.is_agent() {
            return Err(ChatError::Invalid("only agents write private notes".into()));
        }
        // Checked before the rate limit, so probing other conversations costs the prober.
        self.conversation_for(who, conv_id).await?;
        self.rate_visitor(who)?;
        let author = who.author();
        let is_agent = who.is_agent();
        let now = self.now_ms();
        let bus = self.inner.bus.clone();
        let (conv, entry, created) = self
            .inner
            .db
            .write(move |txn| {
                let mut conv = load_conv(txn, conv_id)?;
                if let Some(seq) = txn
                    .open_table(CLIENT_IDS)?
                    .get((conv_id, client_msg_id.as_str()))?
                    .map(|v| v.value())
                {
                    let e = read_entries(txn, conv_id, seq - 1, 1, true)?
                        .into_iter()
                        .next()
                        .ok_or(ChatError::NotFound("message"))?;
                    return Ok((conv, e, false));
                }
                if !is_agent && !conv.status.is_active() {
                    // A visitor writing again reopens the conversation.
                    set_status_in(txn, &bus, &mut conv, Status::Open, Author::system(), now)?;
                }
                let e = append_with(
                    txn,
                    &bus,
                    &mut conv,
                    Entry {
                        seq: 0,
                        kind: "message.created".into(),
                        time_ms: now,
                        author,
                        body,
                        private,
                        client_msg_id: Some(client_msg_id),
                        attachment,
                    },
                )?;
                if is_agent && !private && conv.first_reply_ms.is_none() {
                    conv.first_reply_ms = Some(now);
                }
                if is_agent && !private && conv.status == Status::Open && conv.assignee.is_some() {
                    conv.status = Status::InProgress;
                }
                save_conv(txn, &conv)?;
                Ok::<_, ChatError>((conv, e, true))
            })
            .await?;
        if created {
            // A reopen entry may precede the message: send what the commit added, in order.
            self.fan_out_since(&conv, entry.seq).await;
            if is_agent && !private && conv.channel != Channel::Chat {
                self.mail_reply(&conv, &entry).await;
            }
        }
        Ok((conv, entry, created))
    }

    /// An agent's reply to an email-channel conversation (the widget's offline form) goes out
    /// through the mail outbox; the subject keeps the conversation's number so mail clients
    /// thread the replies. Queued once per entry (the dedup key), so a retried call adds none.
    async fn mail_reply(&self, conv: &Conversation, entry: &Entry) {
        let visitor = match self.visitor(conv.visitor_id).await {
            Ok(Some(v)) if !v.email.is_empty() => v,
            _ => return,
        };
        let subject = if conv.subject.is_empty() {
            format!("Re: your message [#{}]", conv.id)
        } else {
            format!("Re: {} [#{}]", clip(&conv.subject, 80), conv.id)
        };
        let msg = crate::mail::model::NewMessage {
            to: vec![visitor.email.clone()],
            subject,
            text: format!(
                "{}\n\n-- \n{} ({})",
                entry.body,
                entry.author.name,
                self.inner.config.server.base_url()
            ),
            dedup_key: Some(format!("chat-{}-{}", conv.id, entry.seq)),
            ..Default::default()
        };
        if let Err(e) = self.inner.mail.enqueue(msg).await {
            tracing::warn!(
                conversation = conv.id,
                "chat: queueing the email reply failed: {e}"
            );
        }
    }

    /// A visitor rates the latest resolution of their conversation (1–5 and a comment).
    /// Rating again in the same resolution cycle replaces the rating.
    pub async fn submit_csat(
        &self,
        who: &Who,
        conv_id: u64,
        rating: u8,
        comment: String,
    ) -> ChatResult<model::Csat> {
        let Who::Visitor { .. } = who else {
            return Err(ChatError::Invalid(
                "the visitor rates a conversation".into(),
            ));
        };
        if !(1..=5).contains(&rating) {
            return Err(ChatError::Invalid("rating must be 1 to 5".into()));
        }
        if comment.len() > 1000 {
            return Err(ChatError::TooLarge(
                "the comment is longer than 1000 bytes".into(),
            ));
        }
        let conv = self.conversation_for(who, conv_id).await?;
        let Some(resolved) = conv.resolved_ms.filter(|_| conv.status == Status::Resolved) else {
            return Err(ChatError::Invalid(
                "a conversation is rated after it is resolved".into(),
            ));
        };
        let csat = model::Csat {
            conversation_id: conv_id,
            rating,
            comment,
            agent: conv.assignee,
            time_ms: self.now_ms(),
        };
        let bus = self.inner.bus.clone();
        let c = csat.clone();
        self.inner
            .db
            .write(move |txn| {
                txn.open_table(CSAT)?
                    .insert((conv_id, resolved), codec::encode(&c).as_slice())?;
                bus.publish_durable(txn, "chat.csat.submitted", BusPriority::Normal, &c)?;
                Ok::<_, ChatError>(())
            })
            .await?;
        Ok(csat)
    }

    /// Changes a conversation's status (agents any; a visitor may only resolve their own).
    pub async fn set_status(
        &self,
        who: &Who,
        conv_id: u64,
        status: Status,
    ) -> ChatResult<Conversation> {
        self.conversation_for(who, conv_id).await?;
        if !who.is_agent() && status != Status::Resolved {
            return Err(ChatError::Invalid(
                "a visitor can only close their conversation".into(),
            ));
        }
        let author = who.author();
        let now = self.now_ms();
        let bus = self.inner.bus.clone();
        let (conv, first_new) = self
            .inner
            .db
            .write(move |txn| {
                let mut conv = load_conv(txn, conv_id)?;
                let before = conv.last_seq;
                if conv.status != status {
                    set_status_in(txn, &bus, &mut conv, status, author, now)?;
                    save_conv(txn, &conv)?;
                }
                Ok::<_, ChatError>((conv, before + 1))
            })
            .await?;
        self.fan_out_since(&conv, first_new).await;
        if !status.is_active() {
            // A slot freed up.
            self.run_assignment().await?;
        }
        Ok(conv)
    }

    /// Assigns a conversation to an agent (or unassigns with `None`).
    pub async fn assign(
        &self,
        who: &Who,
        conv_id: u64,
        assignee: Option<u64>,
    ) -> ChatResult<Conversation> {
        if !who.is_agent() {
            return Err(ChatError::Invalid(
                "only agents assign conversations".into(),
            ));
        }
        let conv = self
            .assign_as(who.author(), conv_id, assignee, false)
            .await?;
        if assignee.is_none() {
            // Unassigned: back in the queue for whoever is free.
            self.run_assignment().await?;
        }
        Ok(conv)
    }

    /// Assigns `conv_id`; with `only_if_unassigned`, a conversation someone took meanwhile
    /// is left as it is.
    async fn assign_as(
        &self,
        author: Author,
        conv_id: u64,
        assignee: Option<u64>,
        only_if_unassigned: bool,
    ) -> ChatResult<Conversation> {
        let name = match assignee {
            Some(uid) => {
                let u = self
                    .inner
                    .accounts
                    .user(uid)
                    .await
                    .map_err(|e| ChatError::Invalid(e.to_string()))?
                    .filter(|u| !u.disabled && u.role >= crate::accounts::Role::Agent)
                    .ok_or_else(|| {
                        ChatError::Invalid(format!(
                            "user {uid} is not an enabled agent (role agent or higher)"
                        ))
                    })?;
                display_name(&u.name, &u.email)
            }
            None => String::new(),
        };
        let now = self.now_ms();
        let bus = self.inner.bus.clone();
        let (conv, first_new) = self
            .inner
            .db
            .write(move |txn| {
                let mut conv = load_conv(txn, conv_id)?;
                let before = conv.last_seq;
                let taken = only_if_unassigned && conv.assignee.is_some();
                if conv.assignee != assignee && !taken {
                    conv.assignee = assignee;
                    let body = match assignee {
                        Some(_) => format!("assigned to {name}"),
                        None => "unassigned".into(),
                    };
                    append(
                        txn,
                        &bus,
                        &mut conv,
                        "conversation.assigned",
                        author,
                        body,
                        false,
                        None,
                        now,
                    )?;
                    bus.publish_durable(
                        txn,
                        "chat.conversation.assigned",
                        BusPriority::Normal,
                        &json!({"conversation_id": conv.id, "assignee": assignee}),
                    )?;
                    save_conv(txn, &conv)?;
                }
                Ok::<_, ChatError>((conv, before + 1))
            })
            .await?;
        self.fan_out_since(&conv, first_new).await;
        Ok(conv)
    }

    /// Makes a conversation a ticket (a chat that needs follow-up).
    pub async fn make_ticket(
        &self,
        conv_id: u64,
        priority: Option<Priority>,
    ) -> ChatResult<Conversation> {
        let bus = self.inner.bus.clone();
        self.inner
            .db
            .write(move |txn| {
                let mut conv = load_conv(txn, conv_id)?;
                if let Some(p) = priority {
                    conv.priority = p;
                }
                if !conv.ticket {
                    conv.ticket = true;
                    bus.publish_durable(
                        txn,
                        "chat.ticket.created",
                        BusPriority::Normal,
                        &json!({"conversation_id": conv.id, "priority": conv.priority, "channel": conv.channel,
                                "subject": conv.subject}),
                    )?;
                }
                save_conv(txn, &conv)?;
                Ok(conv)
            })
            .await
    }

    /// A ticket opened through the API on behalf of a customer (replies go by email).
    pub async fn create_ticket(
        &self,
        site_id: Option<u64>,
        name: String,
        email: String,
        subject: String,
        message: String,
        priority: Priority,
    ) -> ChatResult<Conversation> {
        let sites = self.sites().await?;
        let site = match site_id {
            Some(id) => sites.into_iter().find(|s| s.id == id),
            None => sites.into_iter().next(),
        }
        .ok_or_else(|| {
            ChatError::Invalid(
                "create a chat site first (POST /api/chat/sites), or give an existing site_id"
                    .into(),
            )
        })?;
        self.check_body(&message)?;
        let now = self.now_ms();
        let visitor = self
            .inner
            .db
            .write(move |txn| {
                let id = next_id(txn, "visitor")?;
                let v = Visitor {
                    id,
                    site_id: site.id,
                    name: clip(&name, 200),
                    email: clip(&email, 320),
                    user_id: None,
                    created_ms: now,
                    last_seen_ms: now,
                    page_url: String::new(),
                    user_agent: String::new(),
                };
                txn.open_table(VISITORS)?
                    .insert(id, codec::encode(&v).as_slice())?;
                Ok::<_, ChatError>(v)
            })
            .await?;
        let who = Who::Visitor {
            site_id: visitor.site_id,
            visitor,
        };
        let body = if subject.trim().is_empty() {
            message
        } else {
            format!("{}\n\n{message}", subject.trim())
        };
        let s = clip(subject.trim(), 120);
        let (conv, _) = self
            .start_conversation_as(&who, Channel::Api, Some(body), None, Some((priority, s)))
            .await?;
        Ok(conv)
    }

    /// Conversations (or tickets) and CSAT rows for the analytics.
    pub async fn stats(
        &self,
        tickets: bool,
        from_ms: i64,
        to_ms: i64,
    ) -> ChatResult<serde_json::Value> {
        let (convs, csats) = self
            .inner
            .db
            .read(move |txn| {
                let t = txn.open_table(CONVERSATIONS)?;
                let mut convs = Vec::new();
                for row in t.iter()? {
                    let c: Conversation = codec::decode(row?.1.value())?;
                    let keep = if tickets {
                        c.ticket
                    } else {
                        c.channel == Channel::Chat
                    };
                    if keep && c.created_ms >= from_ms && c.created_ms < to_ms {
                        convs.push(c);
                    }
                }
                let mut csats = Vec::new();
                for row in txn.open_table(CSAT)?.iter()? {
                    csats.push(codec::decode::<model::Csat>(row?.1.value())?);
                }
                Ok::<_, ChatError>((convs, csats))
            })
            .await?;
        Ok(stats::report(&convs, &csats, from_ms, to_ms))
    }

    pub async fn set_priority(&self, conv_id: u64, priority: Priority) -> ChatResult<Conversation> {
        self.inner
            .db
            .write(move |txn| {
                let mut conv = load_conv(txn, conv_id)?;
                conv.priority = priority;
                save_conv(txn, &conv)?;
                Ok(conv)
            })
            .await
    }

    /// Entries after `after` (at most `limit`, in order); private ones only for agents.
    pub async fn entries_after(
        &self,
        conv: u64,
        after: u64,
        limit: usize,
        include_private: bool,
    ) -> ChatResult<Vec<Entry>> {
        self.inner
            .db
            .read(move |txn| read_entries_r(txn, conv, after, limit, include_private))
            .await
    }

    /// A history page: `before` → up to 20 older entries; `after` → up to 100 newer; neither →
    /// the latest 20. Ascending by seq.
    pub async fn history(
        &self,
        who: &Who,
        conv_id: u64,
        before: Option<u64>,
        after: Option<u64>,
    ) -> ChatResult<(Conversation, Vec<Entry>)> {
        let conv = self.conversation_for(who, conv_id).await?;
        let private = who.is_agent();
        let entries = self
            .inner
            .db
            .read(move |txn| {
                if let Some(a) = after {
                    return read_entries_r(txn, conv_id, a, 100, private);
                }
                let end = before.unwrap_or(u64::MAX);
                let t = txn.open_table(ENTRIES)?;
                let mut out = Vec::new();
                for row in t.range((conv_id, 0)..(conv_id, end))?.rev() {
                    let e: Entry = codec::decode(row?.1.value())?;
                    if private || !e.private {
                        out.push(e);
                        if out.len() == 20 {
                            break;
                        }
                    }
                }
                out.reverse();
                Ok::<_, ChatError>(out)
            })
            .await?;
        Ok((conv, entries))
    }

    /// Records that `who` has seen `conv` up to `seq`.
    pub async fn mark_seen(&self, who: &Who, conv_id: u64, seq: u64) -> ChatResult<u64> {
        let conv = self.conversation_for(who, conv_id).await?;
        let seq = seq.min(conv.last_seq);
        let key = who.seen_key();
        self.inner
            .db
            .write_unsynced(move |txn| {
                let mut t = txn.open_table(SEEN)?;
                let cur = t
                    .get((conv_id, key.as_str()))?
                    .map(|v| v.value())
                    .unwrap_or(0);
                if seq > cur {
                    t.insert((conv_id, key.as_str()), seq)?;
                }
                Ok(seq.max(cur))
            })
            .await
    }

    /// Messages from the other side after `who`'s last-seen mark.
    pub async fn unread(&self, who: &Who, convs: Vec<u64>) -> ChatResult<HashMap<u64, u64>> {
        let key = who.seen_key();
        let agent = who.is_agent();
        self.inner
            .db
            .read(move |txn| {
                let seen = txn.open_table(SEEN)?;
                let entries = txn.open_table(ENTRIES)?;
                let mut out = HashMap::new();
                for c in convs {
                    let mark = seen.get((c, key.as_str()))?.map(|v| v.value()).unwrap_or(0);
                    let mut n = 0;
                    for row in entries.range((c, mark + 1)..(c, u64::MAX))? {
                        let e: Entry = codec::decode(row?.1.value())?;
                        let from_other = if agent {
                            e.author.kind == "visitor"
                        } else {
                            e.author.kind == "agent" && !e.private
                        };
                        if e.is_message() && from_other {
                            n += 1;
                        }
                    }
                    out.insert(c, n);
                }
                Ok::<_, ChatError>(out)
            })
            .await
    }

    /// A visitor's conversations, newest first.
    pub async fn visitor_conversations(&self, visitor_id: u64) -> ChatResult<Vec<Conversation>> {
        let mut v = self
            .inner
            .db
            .read(move |txn| {
                let idx = txn.open_table(VISITOR_CONVS)?;
                let convs = txn.open_table(CONVERSATIONS)?;
                let mut out = Vec::new();
                for row in idx.range((visitor_id, 0)..=(visitor_id, u64::MAX))? {
                    let (_, id) = row?.0.value();
                    if let Some(c) = convs.get(id)? {
                        out.push(codec::decode::<Conversation>(c.value())?);
                    }
                }
                Ok::<_, ChatError>(out)
            })
            .await?;
        v.sort_by_key(|c| std::cmp::Reverse(c.updated_ms));
        Ok(v)
    }

    /// The agent inbox.
    pub async fn inbox(&self, user_id: u64, q: InboxQuery) -> ChatResult<Vec<Conversation>> {
        let limit = if q.limit == 0 { 100 } else { q.limit.min(500) };
        let mut v = self
            .inner
            .db
            .read(move |txn| {
                let convs = txn.open_table(CONVERSATIONS)?;
                let mut out = Vec::new();
                // Newest ids first; a full scan is fine at appliance scale (a search index
                // serves bigger inboxes).
                for row in convs.iter()?.rev() {
                    let c: Conversation = codec::decode(row?.1.value())?;
                    let keep = match q.view.as_str() {
                        "mine" => c.assignee == Some(user_id),
                        "unassigned" => c.assignee.is_none(),
                        _ => true,
                    } && q.status.is_none_or(|s| s == c.status)
                        && q.priority.is_none_or(|p| p == c.priority)
                        && q.assignee.is_none_or(|a| c.assignee == Some(a))
                        && (!q.tickets_only || c.ticket);
                    if keep {
                        out.push(c);
                        if out.len() >= limit {
                            break;
                        }
                    }
                }
                Ok::<_, ChatError>(out)
            })
            .await?;
        v.sort_by_key(|c| std::cmp::Reverse(c.updated_ms));
        Ok(v)
    }

    // ---- fan-out --------------------------------------------------------------------------

    fn fan_out(&self, conv: &Conversation, entry: Entry) {
        let rooms: &[Room] = if entry.private {
            &[Room::Agents]
        } else {
            &[Room::Agents, Room::Visitor(conv.visitor_id)]
        };
        self.inner.hub.send(
            rooms,
            &Out::Entry {
                conv: conv.id,
                entry: Arc::new(entry),
            },
            None,
        );
    }

    /// Fans out every entry of `conv` from `from_seq` on (what one commit added).
    async fn fan_out_since(&self, conv: &Conversation, from_seq: u64) {
        if from_seq > conv.last_seq {
            return;
        }
        match self
            .entries_after(
                conv.id,
                from_seq - 1,
                (conv.last_seq - from_seq + 1) as usize,
                true,
            )
            .await
        {
            Ok(entries) => {
                for e in entries.into_iter().filter(|e| e.seq <= conv.last_seq) {
                    self.fan_out(conv, e);
                }
            }
            // Committed already: sockets catch up by seq when they notice the gap or reconnect.
            Err(e) => tracing::warn!("chat: fan-out read failed: {e}"),
        }
    }

    /// Broadcasts an ephemeral frame (typing) about `conv` to the other side and to other
    /// agents, never to `skip` (the sender's socket).
    pub(crate) fn ephemeral(&self, visitor_id: u64, frame: Value, skip: Option<hub::ConnId>) {
        let text: Arc<str> = Arc::from(frame.to_string());
        self.inner.hub.send(
            &[Room::Agents, Room::Visitor(visitor_id)],
            &Out::Frame(text),
            skip,
        );
    }

    // ---- presence -------------------------------------------------------------------------

    /// An agent's heartbeat: online (or away) as of now.
    pub async fn heartbeat(&self, user_id: u64, status: &str) -> ChatResult<AgentPresence> {
        let name = match self.inner.accounts.user(user_id).await {
            Ok(Some(u)) => display_name(&u.name, &u.email),
            _ => format!("agent {user_id}"),
        };
        let p = AgentPresence {
            user_id,
            name,
            status: status.to_string(),
            last_beat_ms: self.now_ms(),
        };
        let was_online = self.any_agent_online();
        self.inner
            .presence
            .lock()
            .expect("presence")
            .insert(user_id, p.clone());
        if was_online != self.any_agent_online() {
            self.broadcast_availability();
        }
        self.run_assignment().await?;
        Ok(p)
    }

    pub fn go_offline(&self, user_id: u64) {
        let was_online = self.any_agent_online();
        self.inner
            .presence
            .lock()
            .expect("presence")
            .remove(&user_id);
        if was_online != self.any_agent_online() {
            self.broadcast_availability();
        }
    }

    /// Agents online now: status online and a heartbeat within the timeout.
    pub fn online_agents(&self) -> Vec<AgentPresence> {
        let now = self.now_ms();
        let timeout = self.config().presence_timeout.get().as_millis() as i64;
        let mut v: Vec<AgentPresence> = self
            .inner
            .presence
            .lock()
            .expect("presence")
            .values()
            .filter(|p| p.status == "online" && now - p.last_beat_ms <= timeout)
            .cloned()
            .collect();
        v.sort_by_key(|p| p.user_id);
        v
    }

    pub fn any_agent_online(&self) -> bool {
        !self.online_agents().is_empty()
    }

    fn broadcast_availability(&self) {
        let frame = json!({"t": "presence", "agents_online": self.any_agent_online()});
        // Every widget socket cares; visitor rooms are many, so this goes through the agent
        // room plus a scan of visitor rooms in the hub.
        self.inner
            .hub
            .send_all(&Out::Frame(Arc::from(frame.to_string())));
    }

    /// What the widget shows for `site` now.
    pub fn widget_state(&self, site: &Site) -> (hours::WidgetState, Option<i64>) {
        let now = self.now_ms();
        let state = hours::state(site, now, self.any_agent_online());
        let next = match state {
            hours::WidgetState::Closed => hours::next_open(site, now),
            _ => None,
        };
        (state, next)
    }

    // ---- canned responses -----------------------------------------------------------------

    pub async fn canned(&self) -> ChatResult<Vec<Canned>> {
        self.inner
            .db
            .read(|txn| {
                let t = txn.open_table(CANNED)?;
                let mut out = Vec::new();
                for row in t.iter()? {
                    out.push(codec::decode(row?.1.value())?);
                }
                Ok(out)
            })
            .await
    }

    pub async fn save_canned(
        &self,
        shortcut: String,
        title: String,
        body: String,
    ) -> ChatResult<Canned> {
        let shortcut = shortcut.trim().trim_start_matches('/').to_string();
        if shortcut.is_empty()
            || shortcut.len() > 32
            || !shortcut
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(ChatError::Invalid(
                "shortcut must be 1 to 32 letters, digits, - or _ (without the slash)".into(),
            ));
        }
        if body.trim().is_empty() || body.len() > canned::MAX_EXPANDED {
            return Err(ChatError::Invalid(format!(
                "body must be 1 to {} bytes",
                canned::MAX_EXPANDED
            )));
        }
        let now = self.now_ms();
        self.inner
            .db
            .write(move |txn| {
                let mut t = txn.open_table(CANNED)?;
                let mut existing = None;
                for row in t.iter()? {
                    let c: Canned = codec::decode(row?.1.value())?;
                    if c.shortcut == shortcut {
                        existing = Some(c.id);
                    }
                }
                let id = match existing {
                    Some(id) => id,
                    None => next_id(txn, "canned")?,
                };
                let c = Canned {
                    id,
                    shortcut,
                    title: clip(&title, 200),
                    body,
                    created_ms: now,
                };
                t.insert(id, codec::encode(&c).as_slice())?;
                Ok(c)
            })
            .await
    }
}

pub fn display_name(name: &str, email: &str) -> String {
    if name.trim().is_empty() {
        email.split('@').next().unwrap_or(email).to_string()
    } else {
        name.trim().to_string()
    }
}

fn unknown_site_key() -> String {
    "unknown site key; copy the widget snippet again from the dashboard (Chat → Sites)".into()
}

fn txn_read_sites(txn: &WriteTransaction) -> ChatResult<redb::Table<'_, u64, &'static [u8]>> {
    Ok(txn.open_table(SITES)?)
}

fn get_site(t: redb::Table<'_, u64, &'static [u8]>, id: u64) -> ChatResult<Option<Site>> {
    Ok(t.get(id)?.map(|v| codec::decode(v.value())).transpose()?)
}

fn site_by_key_in(txn: &ReadTransaction, key: &str) -> ChatResult<Option<Site>> {
    let Some(id) = txn.open_table(SITE_KEYS)?.get(key)?.map(|v| v.value()) else {
        return Ok(None);
    };
    Ok(txn
        .open_table(SITES)?
        .get(id)?
        .map(|v| codec::decode(v.value()))
        .transpose()?)
}

fn load_conv(txn: &WriteTransaction, id: u64) -> ChatResult<Conversation> {
    txn.open_table(CONVERSATIONS)?
        .get(id)?
        .map(|v| codec::decode(v.value()))
        .transpose()?
        .ok_or(ChatError::NotFound("conversation"))
}

fn save_conv(txn: &WriteTransaction, c: &Conversation) -> ChatResult<()> {
    txn.open_table(CONVERSATIONS)?
        .insert(c.id, codec::encode(c).as_slice())?;
    Ok(())
}

fn read_entries(
    txn: &WriteTransaction,
    conv: u64,
    after: u64,
    limit: usize,
    include_private: bool,
) -> ChatResult<Vec<Entry>> {
    let t = txn.open_table(ENTRIES)?;
    let mut out = Vec::new();
    for row in t.range((conv, after + 1)..(conv, u64::MAX))? {
        let e: Entry = codec::decode(row?.1.value())?;
        if include_private || !e.private {
            out.push(e);
            if out.len() >= limit {
                break;
            }
        }
    }
    Ok(out)
}

fn read_entries_r(
    txn: &ReadTransaction,
    conv: u64,
    after: u64,
    limit: usize,
    include_private: bool,
) -> ChatResult<Vec<Entry>> {
    let t = txn.open_table(ENTRIES)?;
    let mut out = Vec::new();
    for row in t.range((conv, after.saturating_add(1))..(conv, u64::MAX))? {
        let e: Entry = codec::decode(row?.1.value())?;
        if include_private || !e.private {
            out.push(e);
            if out.len() >= limit {
                break;
            }
        }
    }
    Ok(out)
}

/// Appends one entry to `conv` inside `txn`, with its bus event in the same transaction.
/// The caller saves `conv`.
#[allow(clippy::too_many_arguments)] // one call shape for every entry kind
fn append(
    txn: &WriteTransaction,
    bus: &Bus,
    conv: &mut Conversation,
    kind: &str,
    author: Author,
    body: String,
    private: bool,
    client_msg_id: Option<String>,
    now: i64,
) -> ChatResult<Entry> {
    append_with(
        txn,
        bus,
        conv,
        Entry {
            seq: 0,
            kind: kind.to_string(),
            time_ms: now,
            author,
            body,
            private,
            client_msg_id,
            attachment: None,
        },
    )
}

/// [`append`] for a prepared entry (its seq is assigned here).
fn append_with(
    txn: &WriteTransaction,
    bus: &Bus,
    conv: &mut Conversation,
    mut entry: Entry,
) -> ChatResult<Entry> {
    conv.last_seq += 1;
    entry.seq = conv.last_seq;
    let now = entry.time_ms;
    let private = entry.private;
    finish_append(txn, bus, conv, entry, now, private)
}

fn finish_append(
    txn: &WriteTransaction,
    bus: &Bus,
    conv: &mut Conversation,
    entry: Entry,
    now: i64,
    private: bool,
) -> ChatResult<Entry> {
    txn.open_table(ENTRIES)?
        .insert((conv.id, entry.seq), codec::encode(&entry).as_slice())?;
    if let Some(c) = &entry.client_msg_id {
        txn.open_table(CLIENT_IDS)?
            .insert((conv.id, c.as_str()), entry.seq)?;
    }
    conv.updated_ms = now;
    if entry.is_message() {
        if !private {
            conv.preview = clip(&entry.body, 140);
        }
        bus.publish_durable(
            txn,
            "chat.message.created",
            BusPriority::Normal,
            &json!({
                "conversation_id": conv.id,
                "site_id": conv.site_id,
                "visitor_id": conv.visitor_id,
                "seq": entry.seq,
                "author": {"kind": entry.author.kind, "id": entry.author.id, "name": entry.author.name},
                "body": entry.body,
                "private": entry.private,
                "attachment": entry.attachment,
            }),
        )?;
    }
    Ok(entry)
}

fn set_status_in(
    txn: &WriteTransaction,
    bus: &Bus,
    conv: &mut Conversation,
    status: Status,
    author: Author,
    now: i64,
) -> ChatResult<()> {
    let from = conv.status;
    conv.status = status;
    if status == Status::Resolved {
        conv.resolved_ms = Some(now);
    }
    let reopened = !from.is_active() && status.is_active();
    if reopened {
        conv.reopened += 1;
    }
    append(
        txn,
        bus,
        conv,
        "conversation.status",
        author,
        status.as_str().to_string(),
        false,
        None,
        now,
    )?;
    let subject = if reopened {
        "chat.conversation.reopened".to_string()
    } else {
        format!("chat.conversation.{}", status.as_str())
    };
    bus.publish_durable(
        txn,
        &subject,
        BusPriority::Normal,
        &json!({"conversation_id": conv.id, "from": from, "to": status, "seq": conv.last_seq}),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixture {
        chat: Chat,
        clock: Arc<ManualClock>,
        site: Site,
        agents: Vec<u64>,
        _dir: tempfile::TempDir,
    }

    async fn fixture(cap: u32) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.storage.data_dir = dir.path().to_path_buf();
        config.chat.agent_cap = cap;
        config.chat.presence_timeout = crate::config::HumanDuration::secs(60);
        let config = Arc::new(config);
        let db = Db::open(&config.db_path(), 1 << 20).unwrap();
        let bus = Bus::new(db.clone(), config.bus.clone());
        let accounts = Accounts::new(db.clone(), config.clone());
        let mail = Mail::new(db.clone(), bus.clone(), config.clone());
        let clock = ManualClock::new(1_000_000);
        let chat = Chat::with_clock(db, bus, config, accounts.clone(), mail, clock.clone());
        let mut agents = Vec::new();
        for name in ["ann", "bob"] {
            let u = accounts
                .create_user(
                    &format!("{name}@example.com"),
                    name,
                    crate::accounts::Role::Agent,
                    None,
                )
                .await
                .unwrap();
            agents.push(u.id);
        }
        let site = chat
            .create_site(NewSite {
                name: "s".into(),
                require_identity: false,
                hours: Vec::new(),
                time_zone: "UTC".into(),
            })
            .await
            .unwrap();
        Fixture {
            chat,
            clock,
            site,
            agents,
            _dir: dir,
        }
    }

    async fn new_conversation(f: &Fixture) -> Conversation {
        let (_, v, _) = f
            .chat
            .visitor_session(
                VisitorHello {
                    site_key: f.site.site_key.clone(),
                    visitor_token: None,
                    user_id: None,
                    user_hash: None,
                    name: None,
                    email: None,
                    page_url: None,
                    user_agent: None,
                },
                None,
            )
            .await
            .unwrap();
        let who = Who::Visitor {
            site_id: f.site.id,
            visitor: v,
        };
        let (c, _) = f
            .chat
            .start_conversation(&who, Channel::Chat, Some("help".into()), None)
            .await
            .unwrap();
        f.chat.conversation_for(&who, c.id).await.unwrap()
    }

    #[tokio::test]
    async fn presence_times_out_by_the_clock() {
        let f = fixture(5).await;
        f.chat.heartbeat(f.agents[0], "online").await.unwrap();
        assert_eq!(f.chat.online_agents().len(), 1);
        f.clock.advance(60_000);
        assert_eq!(
            f.chat.online_agents().len(),
            1,
            "at the timeout still online"
        );
        f.clock.advance(1);
        assert!(
            f.chat.online_agents().is_empty(),
            "a silent agent goes offline"
        );
        f.chat.heartbeat(f.agents[0], "away").await.unwrap();
        assert!(f.chat.online_agents().is_empty(), "away is not online");
    }

    #[tokio::test]
    async fn auto_assignment_balances_respects_caps_and_queues() {
        let f = fixture(2).await;
        let (ann, bob) = (f.agents[0], f.agents[1]);
        // Nobody online: the conversation waits.
        let c1 = new_conversation(&f).await;
        assert_eq!(c1.assignee, None);
        // Ann comes online and takes the waiting one.
        f.chat.heartbeat(ann, "online").await.unwrap();
        let c1 = f.chat.conversation_for(&agent(ann), c1.id).await.unwrap();
        assert_eq!(c1.assignee, Some(ann));
        // Bob online: he has fewer open, so he gets the next.
        f.chat.heartbeat(bob, "online").await.unwrap();
        f.clock.advance(1000);
        assert_eq!(new_conversation(&f).await.assignee, Some(bob));
        // One each: the tie goes to the one assigned least recently (Ann).
        f.clock.advance(1000);
        assert_eq!(new_conversation(&f).await.assignee, Some(ann));
        f.clock.advance(1000);
        assert_eq!(new_conversation(&f).await.assignee, Some(bob));
        // Both at their cap of 2: the next waits in the queue.
        f.clock.advance(1000);
        let queued = new_conversation(&f).await;
        assert_eq!(queued.assignee, None);
        // Ann resolves one: the queued conversation is hers.
        f.chat
            .set_status(&agent(ann), c1.id, Status::Resolved)
            .await
            .unwrap();
        let q = f
            .chat
            .conversation_for(&agent(ann), queued.id)
            .await
            .unwrap();
        assert_eq!(q.assignee, Some(ann));
        // Bob's heartbeat stops: offline agents are never assigned, even with free slots.
        f.chat.heartbeat(ann, "online").await.unwrap();
        f.clock.advance(61_000);
        f.chat.heartbeat(ann, "online").await.unwrap();
        f.chat
            .set_status(&agent(ann), q.id, Status::Resolved)
            .await
            .unwrap();
        let bobs: Vec<u64> = f
            .chat
            .inbox(
                bob,
                InboxQuery {
                    view: "mine".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .iter()
            .filter(|c| c.status.is_active())
            .map(|c| c.id)
            .collect();
        assert_eq!(bobs.len(), 2);
        f.chat
            .set_status(&agent(bob), bobs[0], Status::Resolved)
            .await
            .unwrap();
        f.clock.advance(1000);
        assert_eq!(new_conversation(&f).await.assignee, Some(ann));
    }

    #[tokio::test]
    async fn sla_breaches_are_published_once_by_the_clock() {
        let f = fixture(5).await;
        let c = new_conversation(&f).await; // normal: first response 4 h, resolution 3 d
        assert_eq!(f.chat.check_sla().await.unwrap(), 0);
        f.clock.advance(4 * 3600 * 1000);
        assert_eq!(
            f.chat.check_sla().await.unwrap(),
            0,
            "at the target, not past it"
        );
        f.clock.advance(1);
        assert_eq!(f.chat.check_sla().await.unwrap(), 1);
        assert_eq!(f.chat.check_sla().await.unwrap(), 0, "published once");
        let c = f
            .chat
            .conversation_for(&agent(f.agents[0]), c.id)
            .await
            .unwrap();
        assert_eq!(c.sla_breached, 1);
        let subjects: Vec<String> = f
            .chat
            .inner
            .db
            .read(|txn| {
                let t = txn.open_table(crate::bus::store::LOG)?;
                let mut v = Vec::new();
                for row in t.iter()? {
                    let e: crate::bus::Event = codec::decode(row?.1.value())?;
                    v.push(e.subject);
                }
                Ok::<_, ChatError>(v)
            })
            .await
            .unwrap();
        assert_eq!(
            subjects
                .iter()
                .filter(|s| *s == "chat.ticket.sla_breached")
                .count(),
            1
        );
        // Past the resolution target: that breach, once.
        f.clock.advance(3 * 24 * 3600 * 1000);
        assert_eq!(f.chat.check_sla().await.unwrap(), 1);
        let c = f
            .chat
            .conversation_for(&agent(f.agents[0]), c.id)
            .await
            .unwrap();
        assert_eq!(c.sla_breached, 3);
    }

    fn agent(id: u64) -> Who {
        Who::Agent {
            user_id: id,
            name: format!("agent {id}"),
        }
    }
}
