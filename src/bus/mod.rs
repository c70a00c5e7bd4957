//! The event bus joining Hearth's parts.
//!
//! Two kinds of publish:
//! - **Ephemeral** ([`Bus::publish`]): in-memory, bounded, lossy broadcast for typing, presence
//!   and live UI pings. A slow subscriber skips what it missed.
//! - **Durable** ([`Bus::publish_durable`]): the event is written into the bus log inside the
//!   caller's redb write transaction, so it exists if and only if the caller's change committed.
//!   Named consumers with persisted cursors get every matching event at least once and answer
//!   [`Outcome::Ack`], [`Outcome::Retry`] or [`Outcome::Term`]. Events that run out of attempts,
//!   or are terminated, move to the dead-letter table in the same transaction that clears them,
//!   and a `$sys.dlq.<consumer>` event is published.
//!
//! Every durable event is also forwarded to ephemeral subscribers once committed, so the
//! dashboard can watch `issue.>` live without a consumer of its own.

mod admin;
pub mod api;
mod dispatch;
pub mod events;
pub mod store;
pub mod subject;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redb::{ReadTransaction, ReadableTable, ReadableTableMetadata, WriteTransaction};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::BusConfig;
use crate::store::{Db, StoreError, StoreResult, codec, now_ms};
use store::{CONSUMERS, DLQ, LANES, LOG, META, RETRIES};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Urgent,
    High,
    Normal,
    Low,
}

impl Priority {
    pub const ALL: [Priority; 4] = [
        Priority::Urgent,
        Priority::High,
        Priority::Normal,
        Priority::Low,
    ];

    pub fn lane(self) -> u8 {
        self as u8
    }
}

/// A durable event as stored in the log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    pub seq: u64,
    /// Unique id (UUIDv7, hex): consumers deduplicate on it; webhooks send it as `webhook-id`.
    pub id: String,
    pub subject: String,
    pub priority: Priority,
    pub time_ms: i64,
    /// The payload as JSON text.
    pub payload: String,
}

/// The leading fields of a stored [`Event`] (same order), read to filter on the subject before
/// decoding the whole event.
#[derive(Deserialize)]
pub(crate) struct EventHead<'a> {
    _seq: u64,
    _id: &'a str,
    pub subject: &'a str,
}

impl Event {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.payload).unwrap_or(serde_json::Value::Null)
    }

    /// A JSON view for APIs (payload inlined as JSON).
    pub fn to_view(&self) -> serde_json::Value {
        serde_json::json!({
            "seq": self.seq,
            "id": self.id,
            "subject": self.subject,
            "priority": self.priority,
            "time_ms": self.time_ms,
            "payload": self.json(),
        })
    }
}

/// One delivery attempt that failed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Attempt {
    pub at_ms: i64,
    pub error: String,
}

/// A consumer's persisted position: per priority lane, the last sequence number looked at.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ConsumerState {
    pub cursors: [u64; 4],
    pub created_ms: i64,
}

/// An event delivered at least once and not yet acked by one consumer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Retry {
    pub attempts: u32,
    pub next_at_ms: i64,
    pub history: Vec<Attempt>,
    /// Set when the event came back from the DLQ: the log may have pruned it since.
    pub event: Option<Event>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLetter {
    pub consumer: String,
    pub event: Event,
    pub error: String,
    pub attempts: Vec<Attempt>,
    pub dead_ms: i64,
}

/// What a consumer's handler answers for one delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Done; never deliver again.
    Ack,
    /// Failed; try again after `delay`, or after the consumer's next backoff step when `None`.
    Retry {
        error: String,
        delay: Option<Duration>,
    },
    /// Failed for good; move to the dead-letter queue now.
    Term(String),
}

impl Outcome {
    pub fn retry(error: impl std::fmt::Display) -> Self {
        Outcome::Retry {
            error: error.to_string(),
            delay: None,
        }
    }
}

/// What a handler is given.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub event: Arc<Event>,
    /// 1 for the first delivery.
    pub attempt: u32,
    pub consumer: Arc<str>,
}

pub type HandlerFuture = Pin<Box<dyn Future<Output = Outcome> + Send>>;

pub trait Handler: Send + Sync + 'static {
    fn handle(&self, delivery: Delivery) -> HandlerFuture;
}

impl<F, Fut> Handler for F
where
    F: Fn(Delivery) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    fn handle(&self, delivery: Delivery) -> HandlerFuture {
        Box::pin(self(delivery))
    }
}

/// Where a consumer seen for the first time starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// Every event still in the log (indexers).
    Beginning,
    /// Only events published from now on (notifications).
    Now,
}

#[derive(Clone)]
pub struct ConsumerSpec {
    pub name: String,
    /// Subject patterns; an event matching any is delivered.
    pub filter: Vec<String>,
    pub start: StartAt,
    /// Attempts before dead-lettering; `None` takes `[bus] max_deliver`.
    pub max_deliver: Option<u32>,
    /// Waits between attempts (the last repeats); `None` takes `[bus] backoff`.
    pub backoff: Option<Vec<Duration>>,
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// Events fetched per round.
    pub batch: usize,
}

impl ConsumerSpec {
    pub fn new(name: &str, filter: &[&str]) -> Self {
        ConsumerSpec {
            name: name.to_string(),
            filter: filter.iter().map(|s| s.to_string()).collect(),
            start: StartAt::Now,
            max_deliver: None,
            backoff: None,
            concurrency: 1,
            batch: 512,
        }
    }

    pub fn start_at(mut self, start: StartAt) -> Self {
        self.start = start;
        self
    }

    pub fn max_deliver(mut self, n: u32) -> Self {
        self.max_deliver = Some(n);
        self
    }

    pub fn backoff(mut self, b: Vec<Duration>) -> Self {
        self.backoff = Some(b);
        self
    }

    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("invalid subject {0:?}: use dot-separated tokens without wildcards")]
    BadSubject(String),
    #[error("payload is not serializable: {0}")]
    Payload(String),
    #[error("no consumer named {0:?}")]
    UnknownConsumer(String),
    #[error("no dead letter {1} for consumer {0:?}")]
    UnknownDeadLetter(String, u64),
}

crate::impl_from_redb!(BusError);

/// An ephemeral message.
#[derive(Debug, Clone, Serialize)]
pub struct Message {
    pub subject: String,
    pub payload: serde_json::Value,
    pub time_ms: i64,
    /// Set when the message mirrors a committed durable event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

/// A subscription to ephemeral subjects.
pub struct Subscription {
    rx: broadcast::Receiver<Arc<Message>>,
    patterns: Vec<String>,
    missed: u64,
}

impl Subscription {
    /// The next matching message; `None` once the bus is gone. Messages the subscriber was too
    /// slow for are skipped and counted in [`Subscription::missed`].
    pub async fn recv(&mut self) -> Option<Arc<Message>> {
        loop {
            match self.rx.recv().await {
                Ok(m) if subject::matches_any(&self.patterns, &m.subject) => return Some(m),
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(n)) => self.missed += n,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    pub fn missed(&self) -> u64 {
        self.missed
    }
}

/// Cursor progress a dispatcher holds without committing it: `stored` is what the consumer's
/// row held (at replay count `epoch`) when the progress began, `cursors` where delivery has got
/// to, `since` when it began.
#[derive(Clone, Copy)]
pub(crate) struct HeldProgress {
    pub stored: [u64; 4],
    pub cursors: [u64; 4],
    pub epoch: u64,
    pub since: std::time::Instant,
}

pub(crate) struct Registered {
    spec: ConsumerSpec,
    handler: Arc<dyn Handler>,
    /// Progress the dispatcher holds (its only copy); stats read it so lag is exact between
    /// commits, and a replay clears it.
    held: std::sync::Mutex<Option<HeldProgress>>,
    /// Bumped inside every replay's write transaction. The dispatcher moves stored cursors only
    /// if it is unchanged since it read them, so a replay is never overwritten by progress made
    /// before it — even one that sets the cursors to the very values already stored.
    replays: AtomicU64,
    /// Whether the dispatcher task is running (false while it waits to be restarted).
    running: std::sync::atomic::AtomicBool,
    /// Times the dispatcher was restarted after dying.
    restarts: AtomicU64,
    /// Handler calls that panicked (each counted as a failed attempt).
    panics: AtomicU64,
}

/// Per-consumer figures for metrics and the admin API.
#[derive(Debug, Clone, Serialize)]
pub struct ConsumerStats {
    pub name: String,
    pub filter: Vec<String>,
    /// Matching or not, how many logged events it has not looked at yet.
    pub lag: u64,
    /// Delivered but not yet acked (waiting for a retry).
    pub pending: u64,
    pub dead_letters: u64,
    pub delivered: u64,
    pub cursors: [u64; 4],
    /// Whether its dispatcher is running (false while it waits to be restarted after dying).
    pub running: bool,
    pub restarts: u64,
    pub handler_panics: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BusStats {
    pub head_seq: u64,
    pub log_len: u64,
    pub dlq_len: u64,
    pub consumers: Vec<ConsumerStats>,
    pub ephemeral_subscribers: usize,
}

pub(crate) struct Inner {
    db: Db,
    config: BusConfig,
    ephemeral: broadcast::Sender<Arc<Message>>,
    consumers: Mutex<Vec<Arc<Registered>>>,
    delivered: Mutex<HashMap<String, Arc<AtomicU64>>>,
    started: std::sync::atomic::AtomicBool,
}

#[derive(Clone)]
pub struct Bus {
    inner: Arc<Inner>,
}

impl Bus {
    pub fn new(db: Db, config: BusConfig) -> Bus {
        let (tx, _) = broadcast::channel(config.ephemeral_capacity.max(16));
        Bus {
            inner: Arc::new(Inner {
                db,
                config,
                ephemeral: tx,
                consumers: Mutex::new(Vec::new()),
                delivered: Mutex::new(HashMap::new()),
                started: false.into(),
            }),
        }
    }

    // ---- ephemeral ------------------------------------------------------------------------

    /// Broadcasts to current subscribers; lossy, never persisted. Returns how many receivers
    /// the message was handed to (before pattern filtering).
    pub fn publish(&self, subject: &str, payload: serde_json::Value) -> usize {
        let msg = Message {
            subject: subject.to_string(),
            payload,
            time_ms: now_ms(),
            seq: None,
        };
        self.inner.ephemeral.send(Arc::new(msg)).unwrap_or(0)
    }

    pub fn subscribe(&self, patterns: &[&str]) -> Subscription {
        Subscription {
            rx: self.inner.ephemeral.subscribe(),
            patterns: patterns.iter().map(|s| s.to_string()).collect(),
            missed: 0,
        }
    }

    // ---- durable --------------------------------------------------------------------------

    /// Writes an event into the log inside `txn`. It is delivered once `txn` commits (through
    /// [`Db::write`], which wakes the dispatcher) and never if it does not.
    pub fn publish_durable<T: Serialize + ?Sized>(
        &self,
        txn: &WriteTransaction,
        subject: &str,
        priority: Priority,
        payload: &T,
    ) -> Result<u64, BusError> {
        publish_in(txn, subject, priority, payload)
    }

    /// A [`Publisher`] for many events in one transaction (tables opened once).
    pub fn publisher<'txn>(
        &self,
        txn: &'txn WriteTransaction,
    ) -> Result<Publisher<'txn>, BusError> {
        Publisher::new(txn)
    }

    /// Registers a durable consumer; call before [`Bus::start`].
    pub fn register(&self, spec: ConsumerSpec, handler: impl Handler) {
        assert!(
            spec.filter.iter().all(|p| subject::valid_pattern(p)),
            "consumer {} has an invalid filter {:?}",
            spec.name,
            spec.filter
        );
        // The persisted state is created now, so `StartAt::Now` means "from registration":
        // events published between registration and `start` are not missed.
        if let Err(e) = dispatch::init_state_blocking(&self.inner.db, &spec) {
            panic!("cannot initialise bus consumer {}: {e}", spec.name);
        }
        let mut consumers = self.inner.consumers.lock().expect("bus registry");
        assert!(
            consumers.iter().all(|c| c.spec.name != spec.name),
            "consumer {} registered twice",
            spec.name
        );
        consumers.push(Arc::new(Registered {
            spec,
            handler: Arc::new(handler),
            held: std::sync::Mutex::new(None),
            replays: AtomicU64::new(0),
            running: false.into(),
            restarts: AtomicU64::new(0),
            panics: AtomicU64::new(0),
        }));
    }

    /// Starts the dispatchers (each supervised: restarted if it dies), the ephemeral mirror of
    /// durable events, and retention.
    pub fn start(&self, shutdown: CancellationToken) -> Vec<JoinHandle<()>> {
        let already = self.inner.started.swap(true, Ordering::SeqCst);
        assert!(!already, "bus started twice");
        let consumers = self.inner.consumers.lock().expect("bus registry").clone();
        let mut tasks = Vec::new();
        for c in consumers {
            let counter = self.delivered_counter(&c.spec.name);
            c.running.store(true, Ordering::SeqCst);
            tasks.push(tokio::spawn(dispatch::supervise(
                self.inner.clone(),
                c,
                counter,
                shutdown.clone(),
            )));
        }
        tasks.push(tokio::spawn(dispatch::run_mirror(
            self.inner.clone(),
            shutdown.clone(),
        )));
        tasks.push(tokio::spawn(dispatch::run_retention(
            self.inner.clone(),
            shutdown,
        )));
        tasks
    }

    fn delivered_counter(&self, name: &str) -> Arc<AtomicU64> {
        self.inner
            .delivered
            .lock()
            .expect("bus counters")
            .entry(name.to_string())
            .or_default()
            .clone()
    }

    /// Drops the registered handlers. Handlers hold the app state, which holds the bus: this
    /// breaks that cycle at shutdown so the database closes.
    pub fn clear(&self) {
        self.inner.consumers.lock().expect("bus registry").clear();
    }
}

pub(crate) fn publish_in<T: Serialize + ?Sized>(
    txn: &WriteTransaction,
    subject: &str,
    priority: Priority,
    payload: &T,
) -> Result<u64, BusError> {
    Publisher::new(txn)?.publish(subject, priority, payload)
}

/// Publishes many durable events into one write transaction with the bus tables opened once
/// (the group-commit writers publish hundreds per transaction).
pub struct Publisher<'txn> {
    meta: redb::Table<'txn, &'static str, u64>,
    log: redb::Table<'txn, u64, &'static [u8]>,
    lanes: redb::Table<'txn, (u8, u64), ()>,
    next: u64,
}

impl<'txn> Publisher<'txn> {
    pub fn new(txn: &'txn WriteTransaction) -> Result<Self, BusError> {
        let meta = txn.open_table(META)?;
        let next = meta.get("next_seq")?.map(|v| v.value()).unwrap_or(1);
        Ok(Publisher {
            meta,
            log: txn.open_table(LOG)?,
            lanes: txn.open_table(LANES)?,
            next,
        })
    }

    pub fn publish<T: Serialize + ?Sized>(
        &mut self,
        subject: &str,
        priority: Priority,
        payload: &T,
    ) -> Result<u64, BusError> {
        if !subject::valid_subject(subject) {
            return Err(BusError::BadSubject(subject.to_string()));
        }
        let payload =
            serde_json::to_string(payload).map_err(|e| BusError::Payload(e.to_string()))?;
        let seq = self.next;
        let event = Event {
            seq,
            id: uuid::Uuid::now_v7().simple().to_string(),
            subject: subject.to_string(),
            priority,
            time_ms: now_ms(),
            payload,
        };
        self.log.insert(seq, codec::encode(&event).as_slice())?;
        self.lanes.insert((priority.lane(), seq), ())?;
        // Written with every event, so there is no "finish" step to forget.
        self.meta.insert("next_seq", seq + 1)?;
        self.next = seq + 1;
        Ok(seq)
    }
}

/// The last sequence number issued (0 when none).
pub(crate) fn head_seq_read(txn: &ReadTransaction) -> StoreResult<u64> {
    let meta = txn.open_table(META)?;
    Ok(meta.get("next_seq")?.map(|v| v.value()).unwrap_or(1) - 1)
}
