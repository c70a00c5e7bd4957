//! tantivy indexes derived from redb through bus consumers.
//!
//! The events index holds a document per stored event (free text over title, message,
//! exception types/values, culprit and frame functions/files; exact fields for level, release,
//! environment, user and tags), except that an event whose document would repeat one already
//! indexed (same issue and the same searched content) is not indexed again: searches answer
//! with issues, so it could change no result, and repeats are most of an error tracker's
//! events. It is fed by the durable consumer `search.events` on
//! `event.stored` (and `issue.deleted`), which starts at the beginning of the bus log, so the
//! index catches up after a crash. A delivery is acked only after the tantivy commit that made
//! its document durable; commits are batched (a round of deliveries, or `[search]
//! commit_interval` at the latest). `hearth reindex` rebuilds the index from redb.
//!
//! `event.stored` carries ids, not text: the ingest writer hands each event's document to
//! [`Search::prefeed`] as it stores the event, and the delivery picks it up from there. After a
//! restart (or if the indexer fell far behind) the document is rebuilt from the stored event.
//!
//! Issue status and assignment are not indexed: they change without events, so the issue list
//! applies them from redb after the index has narrowed the issues down.

mod collect;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use tantivy::query::{BooleanQuery, Occur, Query, QueryParser, TermQuery};
use tantivy::schema::{FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TEXT};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::app::AppState;
use crate::bus::{ConsumerSpec, Delivery, Outcome, StartAt};
use crate::config::Config;
use crate::issues::model::StoredEvent;
use crate::store::Db;

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("search index: {0}")]
    Index(#[from] tantivy::TantivyError),
    #[error("search index directory: {0}")]
    Dir(#[from] tantivy::directory::error::OpenDirectoryError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("search is not running")]
    Disabled,
    #[error("stored event unreadable: {0}")]
    Stored(String),
}

impl From<crate::store::StoreError> for SearchError {
    fn from(e: crate::store::StoreError) -> Self {
        SearchError::Stored(e.to_string())
    }
}

impl From<SearchError> for crate::http::error::ApiError {
    fn from(e: SearchError) -> Self {
        crate::http::error::ApiError::internal(e)
    }
}

#[derive(Clone, Copy)]
struct Fields {
    event_id: Field,
    project_id: Field,
    issue_id: Field,
    text: Field,
    level: Field,
    release: Field,
    environment: Field,
    user: Field,
    tag: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let f = Fields {
        // Stored, not indexed: nothing searches by event id, and a unique term per event made
        // the term dictionary (FST) the top cost of every commit and merge under load.
        event_id: b.add_text_field("event_id", STORED),
        project_id: b.add_u64_field("project_id", INDEXED),
        issue_id: b.add_u64_field("issue_id", INDEXED | FAST),
        text: b.add_text_field("text", TEXT),
        level: b.add_text_field("level", STRING),
        release: b.add_text_field("release", STRING),
        environment: b.add_text_field("environment", STRING),
        user: b.add_text_field("user", STRING),
        tag: b.add_text_field("tag", STRING),
    };
    (b.build(), f)
}

/// A parsed issue search: `free text is:unresolved level:error release:x environment:y
/// user:z assigned:me key:value`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchQuery {
    pub text: Vec<String>,
    /// `is:` values as written.
    pub is: Vec<String>,
    pub assigned: Option<String>,
    pub level: Vec<String>,
    pub release: Vec<String>,
    pub environment: Vec<String>,
    pub user: Vec<String>,
    pub tags: Vec<(String, String)>,
}

fn tokens(q: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in q.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

impl SearchQuery {
    pub fn parse(q: &str) -> SearchQuery {
        let mut out = SearchQuery::default();
        for tok in tokens(q) {
            let filter = tok.split_once(':').filter(|(k, v)| {
                !k.is_empty()
                    && !v.is_empty()
                    && !v.starts_with("//")
                    && k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
            });
            match filter {
                Some(("is", v)) => out.is.push(v.to_ascii_lowercase()),
                Some(("assigned", v)) => out.assigned = Some(v.to_string()),
                Some(("level", v)) => out.level.push(v.to_ascii_lowercase()),
                Some(("release", v)) => out.release.push(v.to_string()),
                Some(("environment" | "env", v)) => out.environment.push(v.to_string()),
                Some(("user", v)) => out.user.push(v.to_string()),
                Some((k, v)) => out.tags.push((k.to_string(), v.to_string())),
                None => out.text.push(tok),
            }
        }
        out
    }

    /// Whether the index is needed (anything beyond status and assignment).
    pub fn needs_index(&self) -> bool {
        !(self.text.is_empty()
            && self.level.is_empty()
            && self.release.is_empty()
            && self.environment.is_empty()
            && self.user.is_empty()
            && self.tags.is_empty())
    }
}

struct Inner {
    index: Index,
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    fields: Fields,
    /// Deliveries waiting for the next commit. `None` once the committer has stopped: a
    /// delivery that arrives during shutdown is answered at once instead of waiting forever.
    waiting: Mutex<Option<Vec<oneshot::Sender<bool>>>>,
    last_add: Mutex<Instant>,
    wake: Notify,
    commit_interval: Duration,
    indexed: AtomicU64,
    commits: AtomicU64,
    /// Content keys ([`EventDoc::content_key`]) of documents added since start: an event whose
    /// document would repeat one of them adds nothing to any search and is not indexed again.
    seen: Mutex<HashSet<u64>>,
    /// Events covered by a document already indexed, and events acknowledged as searchable
    /// (their document, or an identical one, committed).
    deduplicated: AtomicU64,
    searchable: AtomicU64,
    /// Documents the ingest writer handed over, by event seq, until their delivery.
    prefed: Mutex<BTreeMap<u64, EventDoc>>,
    /// Deliveries whose document had to be rebuilt from the stored event.
    rebuilt: AtomicU64,
    db: OnceLock<Db>,
}

/// Content keys remembered at most (8 bytes each); when full the set starts over, which only
/// costs indexing some repeated documents again.
const SEEN_CAP: usize = 1 << 17;

/// How many handed-over documents wait at most; beyond, the oldest are dropped and rebuilt
/// from redb when their delivery comes (about 1 KB each).
const PREFEED_CAP: usize = 16_384;

/// The search service.
#[derive(Clone, Default)]
pub struct Search {
    inner: Option<Arc<Inner>>,
}

fn open_index(dir: &Path) -> Result<Index, SearchError> {
    std::fs::create_dir_all(dir)?;
    let (schema, _) = schema();
    let mmap = tantivy::directory::MmapDirectory::open(dir)?;
    match Index::open_or_create(mmap, schema.clone()) {
        Ok(i) => Ok(i),
        Err(e) => {
            // The index is derived data: when it is unreadable (or from an older schema),
            // start over; `hearth reindex` refills it from redb.
            tracing::warn!(
                "search index unreadable ({e}); recreating it — run `hearth reindex` to refill"
            );
            std::fs::remove_dir_all(dir)?;
            std::fs::create_dir_all(dir)?;
            Ok(Index::create_in_dir(dir, schema)?)
        }
    }
}

/// One event's search document.
#[derive(Debug, Clone, PartialEq)]
pub struct EventDoc {
    pub project_id: u64,
    pub issue_id: u64,
    pub event_id: String,
    pub level: String,
    pub release: Option<String>,
    pub environment: Option<String>,
    pub user: Vec<String>,
    /// `key:value` pairs.
    pub tags: Vec<String>,
    pub text: String,
}

impl EventDoc {
    pub fn new(
        project_id: u64,
        issue_id: u64,
        event_id: &str,
        g: &crate::issues::Grouped,
    ) -> EventDoc {
        EventDoc {
            project_id,
            issue_id,
            event_id: event_id.to_string(),
            level: g.level.clone(),
            release: g.release.clone(),
            environment: g.environment.clone(),
            user: g.user_terms.clone(),
            tags: g.tags.iter().map(|(k, v)| format!("{k}:{v}")).collect(),
            text: g.search_text.clone(),
        }
    }

    /// What the document is searched by, hashed: everything but the event id (stored only).
    /// Searches answer with issues, so a second document with the same key changes no result.
    pub fn content_key(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (
            self.project_id,
            self.issue_id,
            &self.level,
            &self.release,
            &self.environment,
            &self.user,
            &self.tags,
            &self.text,
        )
            .hash(&mut h);
        h.finish()
    }

    /// Rebuilds the document of a stored event (after a restart, and for reindex).
    pub fn from_stored(e: &StoredEvent, json: &[u8]) -> Result<EventDoc, SearchError> {
        let v = crate::issues::project::parse_for_grouping(json)
            .map_err(|x| SearchError::Stored(x.to_string()))?;
        let g = crate::issues::grouping::group(&v, crate::issues::GROUPING_VERSION);
        Ok(EventDoc::new(e.project_id, e.issue_id, &e.event_id, &g))
    }

    fn to_tantivy(&self, f: &Fields) -> TantivyDocument {
        let mut doc = TantivyDocument::default();
        doc.add_text(f.event_id, &self.event_id);
        doc.add_u64(f.project_id, self.project_id);
        doc.add_u64(f.issue_id, self.issue_id);
        doc.add_text(f.text, &self.text);
        if !self.level.is_empty() {
            doc.add_text(f.level, &self.level);
        }
        if let Some(r) = &self.release {
            doc.add_text(f.release, r);
        }
        if let Some(e) = &self.environment {
            doc.add_text(f.environment, e);
        }
        for u in &self.user {
            doc.add_text(f.user, u);
        }
        for t in &self.tags {
            doc.add_text(f.tag, t);
        }
        doc
    }
}

impl Search {
    /// Opens (or creates) the index under `config.search_dir()`.
    pub fn open(config: &Config) -> Result<Search, SearchError> {
        let dir = config.search_dir().join("events");
        let index = open_index(&dir)?;
        let (_, fields) = schema();
        let writer = index
            .writer_with_num_threads(1, config.search.writer_memory.as_usize().max(15_000_000))?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(Search {
            inner: Some(Arc::new(Inner {
                index,
                reader,
                writer: Mutex::new(writer),
                fields,
                waiting: Mutex::new(Some(Vec::new())),
                last_add: Mutex::new(Instant::now()),
                wake: Notify::new(),
                commit_interval: config.search.commit_interval.get(),
                indexed: AtomicU64::new(0),
                commits: AtomicU64::new(0),
                seen: Mutex::new(HashSet::new()),
                deduplicated: AtomicU64::new(0),
                searchable: AtomicU64::new(0),
                prefed: Mutex::new(BTreeMap::new()),
                rebuilt: AtomicU64::new(0),
                db: OnceLock::new(),
            })),
        })
    }

    /// Registers the indexer as a durable bus consumer.
    pub fn register(&self, state: &AppState) {
        let Some(inner) = self.inner.clone() else {
            return;
        };
        let _ = inner.db.set(state.db.clone());
        let mut spec = ConsumerSpec::new("search.events", &["event.stored", "issue.deleted"])
            .start_at(StartAt::Beginning)
            .concurrency(8192);
        spec.batch = 8192;
        state.bus.register(spec, move |d: Delivery| {
            let inner = inner.clone();
            async move { handle(inner, d).await }
        });
    }

    /// Starts the committer.
    pub fn start(&self, _state: &AppState, shutdown: CancellationToken) -> Vec<JoinHandle<()>> {
        let Some(inner) = self.inner.clone() else {
            return Vec::new();
        };
        vec![tokio::spawn(run_committer(inner, shutdown))]
    }

    /// Appends this part's Prometheus metrics.
    pub fn render_metrics(&self, out: &mut String) {
        let Some(inner) = &self.inner else { return };
        let docs = inner.reader.searcher().num_docs();
        out.push_str(&format!(
            "# HELP hearth_search_indexed_total Documents added to the search index since start.\n# TYPE hearth_search_indexed_total counter\nhearth_search_indexed_total {}\n\
             # HELP hearth_search_commits_total Search index commits since start.\n# TYPE hearth_search_commits_total counter\nhearth_search_commits_total {}\n\
             # HELP hearth_search_rebuilt_total Documents rebuilt from stored events (not handed over by ingest).\n# TYPE hearth_search_rebuilt_total counter\nhearth_search_rebuilt_total {}\n\
             # HELP hearth_search_deduplicated_total Events not indexed because an identical document (same issue, text, level, release, environment, users and tags) already was.\n# TYPE hearth_search_deduplicated_total counter\nhearth_search_deduplicated_total {}\n\
             # HELP hearth_search_events_searchable_total Events acknowledged as searchable: their document, or an identical one, is committed.\n# TYPE hearth_search_events_searchable_total counter\nhearth_search_events_searchable_total {}\n\
             # HELP hearth_search_docs Searchable documents.\n# TYPE hearth_search_docs gauge\nhearth_search_docs {docs}\n",
            inner.indexed.load(Ordering::Relaxed),
            inner.commits.load(Ordering::Relaxed),
            inner.rebuilt.load(Ordering::Relaxed),
            inner.deduplicated.load(Ordering::Relaxed),
            inner.searchable.load(Ordering::Relaxed),
        ));
    }

    /// Hands the document of event `seq` to the indexer ahead of its `event.stored` delivery.
    /// Called by the ingest writer inside its transaction: should that transaction fail, the
    /// entry is replaced when the seq is reused, and a delivery only takes a document whose
    /// event id matches.
    pub fn prefeed(&self, seq: u64, doc: EventDoc) {
        let Some(inner) = &self.inner else { return };
        let mut m = inner.prefed.lock().expect("search prefeed");
        m.insert(seq, doc);
        while m.len() > PREFEED_CAP {
            m.pop_first();
        }
    }

    /// Searchable documents right now.
    pub fn num_docs(&self) -> u64 {
        self.inner
            .as_ref()
            .map_or(0, |i| i.reader.searcher().num_docs())
    }

    /// The ids of `project_id`'s issues with at least one event matching `q` (status and
    /// assignment are not checked here).
    pub async fn matching_issues(
        &self,
        project_id: u64,
        q: &SearchQuery,
    ) -> Result<HashSet<u64>, SearchError> {
        let inner = self.inner.clone().ok_or(SearchError::Disabled)?;
        let q = q.clone();
        crate::store::run_blocking(move || inner.matching(project_id, &q)).await
    }
}

impl Inner {
    fn matching(&self, project_id: u64, q: &SearchQuery) -> Result<HashSet<u64>, SearchError> {
        let f = &self.fields;
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let mut any_of = |field: Field, values: &[String]| {
            if values.is_empty() {
                return;
            }
            let qs: Vec<(Occur, Box<dyn Query>)> = values
                .iter()
                .map(|v| {
                    (
                        Occur::Should,
                        Box::new(TermQuery::new(
                            Term::from_field_text(field, v),
                            IndexRecordOption::Basic,
                        )) as Box<dyn Query>,
                    )
                })
                .collect();
            clauses.push((Occur::Must, Box::new(BooleanQuery::new(qs))));
        };
        any_of(f.level, &q.level);
        any_of(f.release, &q.release);
        any_of(f.environment, &q.environment);
        any_of(f.user, &q.user);
        for (k, v) in &q.tags {
            any_of(f.tag, &[format!("{k}:{v}")]);
        }
        if !q.text.is_empty() {
            let mut parser = QueryParser::for_index(&self.index, vec![f.text]);
            parser.set_conjunction_by_default();
            // Quote every word so query syntax in user text cannot break the query.
            let text: Vec<String> = q
                .text
                .iter()
                .map(|w| format!("\"{}\"", w.replace(['"', '\\'], " ")))
                .collect();
            let (parsed, _) = parser.parse_query_lenient(&text.join(" "));
            clauses.push((Occur::Must, parsed));
        }
        // The project's issues from redb (a range of ~1,000 keys) replace the project term:
        // intersecting with a posting list as long as the index cost more than the query.
        let in_project = match self.db.get() {
            Some(db) if !clauses.is_empty() => Some(project_issue_ids(db, project_id)?),
            _ => None,
        };
        if in_project.is_none() {
            clauses.push((
                Occur::Must,
                Box::new(TermQuery::new(
                    Term::from_field_u64(f.project_id, project_id),
                    IndexRecordOption::Basic,
                )),
            ));
        }
        let searcher = self.reader.searcher();
        let mut out = searcher.search(&BooleanQuery::new(clauses), &collect::IssueIds)?;
        if let Some(ids) = in_project {
            out.retain(|id| ids.contains(id));
        }
        Ok(out)
    }
}

/// The ids of `project_id`'s issues.
fn project_issue_ids(db: &Db, project_id: u64) -> Result<HashSet<u64>, SearchError> {
    let store = |e: crate::store::StoreError| SearchError::Stored(e.to_string());
    db.read_blocking(|txn| {
        let t = txn
            .open_table(crate::issues::store::BY_PROJECT)
            .map_err(|e| store(e.into()))?;
        let mut ids = HashSet::new();
        for row in t
            .range((project_id, 0)..=(project_id, u64::MAX))
            .map_err(|e| store(e.into()))?
        {
            ids.insert(row.map_err(|e| store(e.into()))?.0.value().1);
        }
        Ok(ids)
    })
}

async fn handle(inner: Arc<Inner>, d: Delivery) -> Outcome {
    let payload = d.event.json();
    let f = inner.fields;
    let doc = match d.event.subject.as_str() {
        "issue.deleted" => None,
        _ => match document(&inner, &payload).await {
            Ok(Some(doc)) => Some(doc),
            // The event is gone (deleted or pruned): nothing to index.
            Ok(None) => return Outcome::Ack,
            Err(e) => return e,
        },
    };
    {
        let writer = inner.writer.lock().expect("search writer");
        match doc {
            None => {
                if let Some(id) = payload.get("issue_id").and_then(Value::as_u64) {
                    writer.delete_term(Term::from_field_u64(f.issue_id, id));
                }
            }
            Some(doc) => {
                let key = doc.content_key();
                if inner.seen.lock().expect("search seen").contains(&key) {
                    inner.deduplicated.fetch_add(1, Ordering::Relaxed);
                } else {
                    if let Err(e) = writer.add_document(doc.to_tantivy(&f)) {
                        return Outcome::retry(format!("indexing failed: {e}"));
                    }
                    inner.indexed.fetch_add(1, Ordering::Relaxed);
                    let mut seen = inner.seen.lock().expect("search seen");
                    if seen.len() >= SEEN_CAP {
                        seen.clear();
                    }
                    seen.insert(key);
                }
            }
        }
    }
    let (tx, rx) = oneshot::channel();
    match inner.waiting.lock().expect("search waiters").as_mut() {
        Some(waiting) => waiting.push(tx),
        None => return Outcome::retry("the search indexer is stopping"),
    }
    *inner.last_add.lock().expect("search clock") = Instant::now();
    inner.wake.notify_one();
    // A covered event waits for the same commit as the rest: its twin may be in it.
    match rx.await {
        Ok(true) => {
            inner.searchable.fetch_add(1, Ordering::Relaxed);
            Outcome::Ack
        }
        _ => Outcome::retry("search commit failed"),
    }
}

/// The document for an `event.stored` payload: handed over by the writer, or rebuilt from the
/// stored event (`None` when that is gone).
async fn document(inner: &Arc<Inner>, p: &Value) -> Result<Option<EventDoc>, Outcome> {
    let ids = (
        p.get("seq").and_then(Value::as_u64),
        p.get("issue_id").and_then(Value::as_u64),
        p.get("event_id").and_then(Value::as_str),
    );
    let (Some(seq), Some(issue_id), Some(event_id)) = ids else {
        return Err(Outcome::Term(
            "event.stored payload lacks seq/issue_id/event_id".into(),
        ));
    };
    let handed = inner.prefed.lock().expect("search prefeed").remove(&seq);
    if let Some(doc) = handed.filter(|d| d.event_id == event_id) {
        return Ok(Some(doc));
    }
    let Some(db) = inner.db.get().cloned() else {
        return Err(Outcome::retry("search is not registered yet"));
    };
    inner.rebuilt.fetch_add(1, Ordering::Relaxed);
    let read = crate::store::run_blocking(move || {
        crate::issues::Issues::stored_event_blocking(&db, issue_id, seq)
    })
    .await;
    match read {
        Ok(Some((e, json))) => EventDoc::from_stored(&e, &json)
            .map(Some)
            .map_err(|x| Outcome::Term(x.to_string())),
        Ok(None) => Ok(None),
        Err(x) => Err(Outcome::retry(format!("reading the stored event: {x}"))),
    }
}

/// Commits when the deliveries of a round have all been added (no add for 2 ms), or after
/// `commit_interval` at the latest, then acks them.
async fn run_committer(inner: Arc<Inner>, shutdown: CancellationToken) {
    let mut last_commit = Instant::now() - inner.commit_interval;
    loop {
        tokio::select! {
            _ = inner.wake.notified() => {}
            _ = shutdown.cancelled() => {
                let waiting = inner.waiting.lock().expect("search waiters").take();
                for w in waiting.into_iter().flatten() { let _ = w.send(false); }
                return;
            }
        }
        let started = Instant::now();
        // Commits are spaced `commit_interval` apart: each one writes a segment (and later
        // merges it) and sets up a fresh segment writer, so under load a few big segments cost
        // far less than one per delivery round. A round that follows a quiet spell is
        // committed as soon as its last document is added.
        let min_gap = inner.commit_interval;
        loop {
            let idle = inner.last_add.lock().expect("search clock").elapsed();
            let since_commit = last_commit.elapsed();
            if (idle >= Duration::from_millis(2) && since_commit >= min_gap)
                || started.elapsed() >= inner.commit_interval
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let waiting = inner
            .waiting
            .lock()
            .expect("search waiters")
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        if waiting.is_empty() {
            continue;
        }
        let i = inner.clone();
        let ok = crate::store::run_blocking(move || {
            let r = i.writer.lock().expect("search writer").commit();
            match r {
                Ok(_) => i.reader.reload().is_ok(),
                Err(e) => {
                    // Retried every commit interval: on a full disk this would repeat twice a
                    // second (see store::space).
                    static LOG: std::sync::LazyLock<crate::limit::LogEvery> =
                        std::sync::LazyLock::new(|| {
                            crate::limit::LogEvery::new(crate::store::space::LOG_EVERY)
                        });
                    if let Some(held) = LOG.allow() {
                        tracing::error!("search commit failed: {e} ({held} more not logged)");
                    }
                    false
                }
            }
        })
        .await;
        last_commit = Instant::now();
        if ok {
            inner.commits.fetch_add(1, Ordering::Relaxed);
        } else {
            // What the failed commit held may be lost: nothing counts as indexed any more.
            inner.seen.lock().expect("search seen").clear();
        }
        for w in waiting {
            let _ = w.send(ok);
        }
    }
}

/// Rebuilds the events index from redb (the server must not be running). Returns the number
/// of events read; identical documents are indexed once.
pub fn reindex(config: &Config) -> Result<u64, Box<dyn std::error::Error + Send + Sync>> {
    let db = crate::store::Db::open(&config.db_path(), config.storage.cache_size.as_usize())?;
    let dir = config.search_dir().join("events");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    let index = open_index(&dir)?;
    let (_, f) = schema();
    let mut writer: IndexWriter =
        index.writer_with_num_threads(1, config.search.writer_memory.as_usize().max(15_000_000))?;
    let mut err: Option<String> = None;
    let mut seen = HashSet::new();
    let n =
        crate::issues::Issues::for_each_event_blocking(
            &db,
            |e, json| match EventDoc::from_stored(e, json) {
                Ok(doc) => {
                    if seen.insert(doc.content_key())
                        && let Err(x) = writer.add_document(doc.to_tantivy(&f))
                    {
                        err.get_or_insert(x.to_string());
                    }
                }
                Err(x) => {
                    err.get_or_insert(x.to_string());
                }
            },
        )?;
    writer.commit()?;
    if let Some(e) = err {
        return Err(e.into());
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_syntax() {
        let q = SearchQuery::parse(
            r#"division "by zero" is:unresolved level:error release:shop@1.4 env:prod user:a@b.c browser:Firefox assigned:me"#,
        );
        assert_eq!(q.text, vec!["division", "by zero"]);
        assert_eq!(q.is, vec!["unresolved"]);
        assert_eq!(q.level, vec!["error"]);
        assert_eq!(q.release, vec!["shop@1.4"]);
        assert_eq!(q.environment, vec!["prod"]);
        assert_eq!(q.user, vec!["a@b.c"]);
        assert_eq!(q.tags, vec![("browser".into(), "Firefox".into())]);
        assert_eq!(q.assigned.as_deref(), Some("me"));
        assert!(q.needs_index());
        assert!(!SearchQuery::parse("is:resolved assigned:none").needs_index());
        // A colon inside a word that isn't key:value stays text.
        assert_eq!(SearchQuery::parse("http://x").text, vec!["http://x"]);
    }
}
