//! Chat tables. Values go through [`crate::store::codec`] (version byte + postcard).
//!
//! A conversation's entries are keyed `(conversation, seq)`, so a resume or a history page is
//! one range read, in order.

use redb::{ReadableTable, TableDefinition, WriteTransaction};

use crate::store::StoreResult;

/// id → Site
pub const SITES: TableDefinition<u64, &[u8]> = TableDefinition::new("chat_sites");
/// site key → site id
pub const SITE_KEYS: TableDefinition<&str, u64> = TableDefinition::new("chat_site_keys");
/// id → Visitor
pub const VISITORS: TableDefinition<u64, &[u8]> = TableDefinition::new("chat_visitors");
/// sha256(visitor token) → visitor id
pub const VISITOR_TOKENS: TableDefinition<&str, u64> = TableDefinition::new("chat_visitor_tokens");
/// (site id, verified user id) → visitor id: a verified user is one visitor on every device.
pub const VISITOR_USERS: TableDefinition<(u64, &str), u64> =
    TableDefinition::new("chat_visitor_users");
/// id → Conversation
pub const CONVERSATIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("chat_conversations");
/// (visitor id, conversation id) → ()
pub const VISITOR_CONVS: TableDefinition<(u64, u64), ()> =
    TableDefinition::new("chat_visitor_conversations");
/// (conversation id, seq) → Entry
pub const ENTRIES: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("chat_entries");
/// (conversation id, client message id) → seq: a retried send returns the first one.
pub const CLIENT_IDS: TableDefinition<(u64, &str), u64> = TableDefinition::new("chat_client_ids");
/// (visitor id, client start id) → conversation id: a retried start opens no second one.
pub const STARTS: TableDefinition<(u64, &str), u64> = TableDefinition::new("chat_starts");
/// (conversation id, participant: "visitor" or "agent:<user id>") → last seen seq
pub const SEEN: TableDefinition<(u64, &str), u64> = TableDefinition::new("chat_seen");
/// id → Canned
pub const CANNED: TableDefinition<u64, &[u8]> = TableDefinition::new("chat_canned");
/// (conversation id, resolved_ms of the resolution rated) → Csat: one rating per cycle.
pub const CSAT: TableDefinition<(u64, i64), &[u8]> = TableDefinition::new("chat_csat");
/// (project id, feedback id) → the visitor its ticket was opened for (feedback.rs).
pub const FEEDBACK_VISITORS: TableDefinition<(u64, u64), u64> =
    TableDefinition::new("chat_feedback_visitors");
/// conversation id → IssueLink: the Sentry event and issue a feedback ticket came from.
pub const ISSUE_LINKS: TableDefinition<u64, &[u8]> = TableDefinition::new("chat_issue_links");
/// counter name → last issued id
pub const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("chat_counters");

pub fn ensure_tables(txn: &WriteTransaction) -> StoreResult<()> {
    txn.open_table(SITES)?;
    txn.open_table(SITE_KEYS)?;
    txn.open_table(VISITORS)?;
    txn.open_table(VISITOR_TOKENS)?;
    txn.open_table(VISITOR_USERS)?;
    txn.open_table(CONVERSATIONS)?;
    txn.open_table(VISITOR_CONVS)?;
    txn.open_table(ENTRIES)?;
    txn.open_table(CLIENT_IDS)?;
    txn.open_table(STARTS)?;
    txn.open_table(SEEN)?;
    txn.open_table(CANNED)?;
    txn.open_table(CSAT)?;
    txn.open_table(COUNTERS)?;
    txn.open_table(FEEDBACK_VISITORS)?;
    txn.open_table(ISSUE_LINKS)?;
    Ok(())
}

/// Creates the six default canned responses in a new database (and in one upgraded to chat).
pub fn migrate_default_canned(txn: &WriteTransaction) -> StoreResult<()> {
    let mut t = txn.open_table(CANNED)?;
    if t.first()?.is_some() {
        return Ok(());
    }
    let now = crate::store::now_ms();
    for (shortcut, title, body) in super::canned::DEFAULTS {
        let id = next_id(txn, "canned")?;
        let c = super::model::Canned {
            id,
            shortcut: shortcut.to_string(),
            title: title.to_string(),
            body: body.to_string(),
            created_ms: now,
        };
        t.insert(id, crate::store::codec::encode(&c).as_slice())?;
    }
    Ok(())
}

/// Every value of a table of encoded records, in key order.
pub fn decode_all<K: redb::Key + 'static, T: serde::de::DeserializeOwned>(
    t: &impl ReadableTable<K, &'static [u8]>,
) -> StoreResult<Vec<T>> {
    let mut out = Vec::new();
    for row in t.iter()? {
        out.push(crate::store::codec::decode(row?.1.value())?);
    }
    Ok(out)
}

pub fn next_id(txn: &WriteTransaction, counter: &str) -> StoreResult<u64> {
    crate::store::next_counter(txn, COUNTERS, counter)
}
