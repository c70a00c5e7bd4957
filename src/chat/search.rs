//! Chat search: free text over conversations, messages and tickets, with filters.
//!
//! A small tantivy index beside the events index (`<data_dir>/search/chat`), fed by the
//! durable bus consumer `chat.search` on `chat.message.created`, `chat.conversation.created`
//! and `chat.ticket.created`. A delivery is acked only after the tantivy commit that made its
//! document durable (commits are batched, every [`COMMIT_EVERY`] at most), so the index
//! survives a restart or a crash and catches up from the bus log. Each document has a unique
//! key (`m:<conv>:<seq>` for a message, `c:<conv>` for a conversation's subject and customer),
//! replaced rather than repeated on a redelivery.
//!
//! Status, priority, assignee and ticket-ness change without a new document, so like the
//! issue list the search narrows conversations down by text in the index and applies those
//! filters from redb.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tantivy::collector::TopDocs;
use tantivy::query::QueryParser;
use tantivy::schema::{Field, INDEXED, STORED, STRING, Schema, TEXT, Value as _};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::model::{Conversation, Entry, Priority, Status, Visitor};
use super::store::{CONVERSATIONS, ENTRIES, VISITORS};
use super::{Chat, ChatError, ChatResult, clip};
use crate::bus::{ConsumerSpec, Delivery, Outcome, StartAt};
use crate::store::codec;

/// Longest wait before added documents are committed (and their deliveries acked).
pub const COMMIT_EVERY: Duration = Duration::from_millis(250);
/// Most index hits looked at per search (then grouped by conversation).
const MAX_HITS: usize = 2_000;
/// Longest free-text query.
pub const MAX_QUERY: usize = 512;

#[derive(Clone, Copy)]
struct Fields {
    key: Field,
    conv: Field,
    seq: Field,
    text: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let f = Fields {
        key: b.add_text_field("key", STRING),
        conv: b.add_u64_field("conv", INDEXED | STORED),
        seq: b.add_u64_field("seq", STORED),
        text: b.add_text_field("text", TEXT),
    };
    (b.build(), f)
}

pub(super) struct ChatIndex {
    index: Index,
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    f: Fields,
    /// Documents added so far (a generation number).
    added: AtomicU64,
    /// The generation the last commit covered.
    committed: watch::Sender<u64>,
    wake: Notify,
}

fn open(dir: &std::path::Path) -> Result<Index, String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let (schema, _) = schema();
    let mmap = tantivy::directory::MmapDirectory::open(dir).map_err(|e| e.to_string())?;
    match Index::open_or_create(mmap, schema.clone()) {
        Ok(i) => Ok(i),
        Err(e) => {
            tracing::warn!("chat search index unreadable ({e}); recreating it");
            std::fs::remove_dir_all(dir).map_err(|e| e.to_string())?;
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
            Index::create_in_dir(dir, schema).map_err(|e| e.to_string())
        }
    }
}

impl ChatIndex {
    fn open(dir: &std::path::Path) -> Result<ChatIndex, String> {
        let index = open(dir)?;
        let writer = index
            .writer_with_num_threads(1, 15_000_000)
            .map_err(|e| e.to_string())?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(|e: tantivy::TantivyError| e.to_string())?;
        Ok(ChatIndex {
            index,
            reader,
            writer: Mutex::new(writer),
            f: schema().1,
            added: AtomicU64::new(0),
            committed: watch::channel(0).0,
            wake: Notify::new(),
        })
    }

    /// Replaces the document `key` (blocking: call off the async threads).
    fn put(&self, key: &str, conv: u64, seq: u64, text: &str) -> Result<u64, String> {
        let f = self.f;
        let w = self.writer.lock().expect("chat search writer");
        w.delete_term(Term::from_field_text(f.key, key));
        let mut doc = TantivyDocument::default();
        doc.add_text(f.key, key);
        doc.add_u64(f.conv, conv);
        doc.add_u64(f.seq, seq);
        doc.add_text(f.text, text);
        w.add_document(doc).map_err(|e| e.to_string())?;
        Ok(self.added.fetch_add(1, Ordering::SeqCst) + 1)
    }

    fn commit(&self) -> Result<(), String> {
        let target = {
            let mut w = self.writer.lock().expect("chat search writer");
            let target = self.added.load(Ordering::SeqCst);
            w.commit().map_err(|e| e.to_string())?;
            target
        };
        self.reader.reload().map_err(|e| e.to_string())?;
        self.committed.send_replace(target);
        Ok(())
    }

    /// (conversation, seq) of the best hits for `text`; seq 0 is the conversation itself.
    fn hits(&self, text: &str) -> Result<Vec<(u64, u64)>, String> {
        let mut parser = QueryParser::for_index(&self.index, vec![self.f.text]);
        // Every word must match, as in the issue search.
        parser.set_conjunction_by_default();
        let (query, _) = parser.parse_query_lenient(text);
        let searcher = self.reader.searcher();
        let top = searcher
            .search(&query, &TopDocs::with_limit(MAX_HITS).order_by_score())
            .map_err(|e| e.to_string())?;
        let mut out = Vec::with_capacity(top.len());
        for (_, addr) in top {
            let doc: TantivyDocument = searcher.doc(addr).map_err(|e| e.to_string())?;
            let conv = doc.get_first(self.f.conv).and_then(|v| v.as_u64());
            let seq = doc.get_first(self.f.seq).and_then(|v| v.as_u64());
            if let (Some(c), Some(s)) = (conv, seq) {
                out.push((c, s));
            }
        }
        Ok(out)
    }
}

/// Filters of a chat search; text empty means every conversation that passes the filters.
#[derive(Debug, Default, Clone)]
pub struct SearchParams {
    pub text: String,
    pub status: Option<Status>,
    pub priority: Option<Priority>,
    pub assignee: Option<u64>,
    pub tickets: Option<bool>,
    pub limit: usize,
}

impl Chat {
    fn search_index(&self) -> Option<&Arc<ChatIndex>> {
        self.inner.search.get()
    }

    /// Opens the index and registers `chat.search`. Without an index (unwritable directory)
    /// chat runs and search answers 503.
    pub(super) fn register_search(&self, state: &crate::app::AppState) {
        let dir = self.inner.config.search_dir().join("chat");
        let index = match ChatIndex::open(&dir) {
            Ok(i) => Arc::new(i),
            Err(e) => {
                tracing::warn!("chat search is off: opening {} failed: {e}", dir.display());
                return;
            }
        };
        let _ = self.inner.search.set(index);
        let chat = self.clone();
        state.bus.register(
            ConsumerSpec::new(
                "chat.search",
                &[
                    "chat.message.created",
                    "chat.conversation.created",
                    "chat.ticket.created",
                ],
            )
            .start_at(StartAt::Beginning)
            .concurrency(256),
            move |d: Delivery| {
                let chat = chat.clone();
                async move {
                    match chat.index_delivery(&d).await {
                        Ok(()) => Outcome::Ack,
                        Err(e) => Outcome::retry(e),
                    }
                }
            },
        );
    }

    /// The committer: commits added documents every [`COMMIT_EVERY`] (and at shutdown).
    pub(super) fn start_search(
        &self,
        shutdown: CancellationToken,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let idx = self.search_index()?.clone();
        Some(tokio::spawn(async move {
            loop {
                let stop = tokio::select! {
                    _ = shutdown.cancelled() => true,
                    _ = idx.wake.notified() => false,
                };
                if !stop {
                    tokio::time::sleep(COMMIT_EVERY).await;
                }
                if idx.added.load(Ordering::SeqCst) > *idx.committed.borrow() {
                    let i = idx.clone();
                    match crate::store::run_blocking(move || i.commit()).await {
                        Ok(()) => {}
                        Err(e) => tracing::warn!("chat search commit failed: {e}"),
                    }
                }
                if stop {
                    return;
                }
            }
        }))
    }

    async fn index_delivery(&self, d: &Delivery) -> Result<(), String> {
        let Some(idx) = self.search_index().cloned() else {
            return Ok(());
        };
        let p: Value = serde_json::from_str(&d.event.payload).map_err(|e| e.to_string())?;
        let conv = p["conversation_id"].as_u64().ok_or("no conversation_id")?;
        let doc = if d.event.subject == "chat.message.created" {
            let seq = p["seq"].as_u64().ok_or("no seq")?;
            let text = format!(
                "{} {} {}",
                p["body"].as_str().unwrap_or(""),
                p["author"]["name"].as_str().unwrap_or(""),
                p["attachment"]["name"].as_str().unwrap_or("")
            );
            (format!("m:{conv}:{seq}"), seq, text)
        } else {
            // The conversation's own document: subject and customer, read as they are now.
            let (c, v) = self
                .inner
                .db
                .read(move |txn| {
                    let c = txn
                        .open_table(CONVERSATIONS)?
                        .get(conv)?
                        .map(|v| codec::decode::<Conversation>(v.value()))
                        .transpose()?;
                    let v = match &c {
                        Some(c) => txn
                            .open_table(VISITORS)?
                            .get(c.visitor_id)?
                            .map(|v| codec::decode::<Visitor>(v.value()))
                            .transpose()?,
                        None => None,
                    };
                    Ok::<_, ChatError>((c, v))
                })
                .await
                .map_err(|e| e.to_string())?;
            let Some(c) = c else { return Ok(()) };
            let text = match v {
                Some(v) => format!("{} {} {}", c.subject, v.name, v.email),
                None => c.subject,
            };
            (format!("c:{conv}"), 0, text)
        };
        let i = idx.clone();
        let generation =
            crate::store::run_blocking(move || i.put(&doc.0, conv, doc.1, &doc.2)).await?;
        idx.wake.notify_one();
        let mut rx = idx.committed.subscribe();
        rx.wait_for(|c| *c >= generation)
            .await
            .map_err(|_| "shutting down before the commit".to_string())?;
        Ok(())
    }

    /// Searches conversations, messages and tickets. Results: conversations (best match
    /// first; newest first without text) that pass the filters, each with up to 3 matching
    /// messages (`seq`, `snippet`).
    pub async fn search(&self, p: SearchParams) -> ChatResult<Vec<Value>> {
        if p.text.len() > MAX_QUERY {
            return Err(ChatError::Invalid(format!(
                "the search text is limited to {MAX_QUERY} bytes; shorten it"
            )));
        }
        let limit = p.limit.clamp(1, 200);
        let text = p.text.trim().to_string();
        // conversation id → matching message seqs, in rank order.
        let mut order: Vec<u64> = Vec::new();
        let mut matches: HashMap<u64, Vec<u64>> = HashMap::new();
        if !text.is_empty() {
            let idx = self
                .search_index()
                .cloned()
                .ok_or_else(|| ChatError::Unavailable("chat search is not running".into()))?;
            let hits = crate::store::run_blocking(move || idx.hits(&text))
                .await
                .map_err(ChatError::Invalid)?;
            for (conv, seq) in hits {
                let m = matches.entry(conv).or_insert_with(|| {
                    order.push(conv);
                    Vec::new()
                });
                if seq > 0 && m.len() < 3 {
                    m.push(seq);
                }
            }
        }
        let by_text = !p.text.trim().is_empty();
        let rows = self
            .inner
            .db
            .read(move |txn| {
                let convs = txn.open_table(CONVERSATIONS)?;
                let entries = txn.open_table(ENTRIES)?;
                let keep = |c: &Conversation| {
                    p.status.is_none_or(|s| c.status == s)
                        && p.priority.is_none_or(|x| c.priority == x)
                        && p.assignee.is_none_or(|a| c.assignee == Some(a))
                        && p.tickets.is_none_or(|t| c.ticket == t)
                };
                let mut out: Vec<(Conversation, Vec<Entry>)> = Vec::new();
                if by_text {
                    for id in order {
                        if out.len() >= limit {
                            break;
                        }
                        let Some(v) = convs.get(id)? else { continue };
                        let c: Conversation = codec::decode(v.value())?;
                        if !keep(&c) {
                            continue;
                        }
                        let mut es = Vec::new();
                        for seq in matches.get(&id).into_iter().flatten() {
                            if let Some(e) = entries.get((id, *seq))? {
                                es.push(codec::decode::<Entry>(e.value())?);
                            }
                        }
                        out.push((c, es));
                    }
                } else {
                    let mut all: Vec<Conversation> = super::store::decode_all(&convs)?;
                    all.retain(|c| keep(c));
                    all.sort_by_key(|c| std::cmp::Reverse(c.updated_ms));
                    out.extend(all.into_iter().take(limit).map(|c| (c, Vec::new())));
                }
                Ok::<_, ChatError>(out)
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|(c, es)| {
                json!({
                    "conversation": super::api::conversation_view(&c),
                    "matches": es.iter().map(|e| json!({
                        "seq": e.seq,
                        "private": e.private,
                        "author": e.author.name,
                        "snippet": clip(&e.body, 200),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect())
    }
}
