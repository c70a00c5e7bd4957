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
mod conversations;
pub mod events;
pub mod feedback;
pub mod hours;
pub mod model;
mod records;
mod routing;
pub mod search;
mod sites;
pub mod stats;
pub mod store;
mod team;
mod tickets;
mod timeline;
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
use crate::http::ws::{ConnId, Hub};
use crate::limit::{KeyedWindows, Windows};
use crate::mail::Mail;
use crate::metrics;
use crate::store::{Db, StoreError, codec};
pub use config::ChatConfig;
use model::{Author, Canned, Channel, Conversation, Entry, Priority, Site, Status, Visitor};
use records::*;
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
    #[error("{0}")]
    Unavailable(String),
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
            ChatError::Unavailable(m) => ApiError::new(Code::Unavailable, m.clone()),
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
    /// A committed entry of conversation `conv`, with its wire frame rendered once for every
    /// socket it goes to.
    Entry {
        conv: u64,
        entry: Arc<Entry>,
        frame: Arc<str>,
    },
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
    visitor_messages: KeyedWindows,
    starts_per_ip: KeyedWindows,
    sockets_per_ip: Mutex<HashMap<std::net::IpAddr, u32>>,
    /// The chat search index, opened by `register` (search.rs).
    search: std::sync::OnceLock<Arc<search::ChatIndex>>,
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
                visitor_messages: KeyedWindows::new(
                    60_000,
                    c.visitor_messages_per_minute,
                    Windows::FromFirstHit,
                ),
                starts_per_ip: KeyedWindows::new(
                    3_600_000,
                    c.starts_per_ip_per_hour,
                    Windows::FromFirstHit,
                ),
                sockets_per_ip: Mutex::new(HashMap::new()),
                search: std::sync::OnceLock::new(),
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
        self.register_feedback(state);
        self.register_search(state);
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
        let search = self.start_search(shutdown.clone());
        let mut tasks = vec![tokio::spawn(async move {
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
                        // issue 19: finalise suggestions whose reward window has passed
                        if let Err(e) = chat.inner.suggest.prune(suggest::prune::BATCH).await {
                            tracing::warn!("chat: pruning suggestion joins failed: {e}");
                        }
                    }
                }
            }
        })];
        tasks.extend(search);
        tasks
    }

    pub fn render_metrics(&self, out: &mut String) {
        let hub = &self.inner.hub;
        metrics::gauge(
            out,
            "hearth_chat_sockets",
            "Open chat WebSockets.",
            hub.connections(),
        );
        metrics::counter(
            out,
            "hearth_chat_sockets_dropped_slow_total",
            "Chat sockets dropped because they read too slowly.",
            hub.dropped_slow(),
        );
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

#[cfg(test)]
mod tests;
