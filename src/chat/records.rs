//! Transaction helpers shared by the chat files: sites, conversations, entries, status.

use super::*;

pub(super) fn txn_read_sites(
    txn: &WriteTransaction,
) -> ChatResult<redb::Table<'_, u64, &'static [u8]>> {
    Ok(txn.open_table(SITES)?)
}

pub(super) fn get_site(
    t: redb::Table<'_, u64, &'static [u8]>,
    id: u64,
) -> ChatResult<Option<Site>> {
    Ok(t.get(id)?.map(|v| codec::decode(v.value())).transpose()?)
}

pub(super) fn site_by_key_in(txn: &ReadTransaction, key: &str) -> ChatResult<Option<Site>> {
    let Some(id) = txn.open_table(SITE_KEYS)?.get(key)?.map(|v| v.value()) else {
        return Ok(None);
    };
    Ok(txn
        .open_table(SITES)?
        .get(id)?
        .map(|v| codec::decode(v.value()))
        .transpose()?)
}

pub(super) fn load_conv(txn: &WriteTransaction, id: u64) -> ChatResult<Conversation> {
    txn.open_table(CONVERSATIONS)?
        .get(id)?
        .map(|v| codec::decode(v.value()))
        .transpose()?
        .ok_or(ChatError::NotFound("conversation"))
}

pub(super) fn save_conv(txn: &WriteTransaction, c: &Conversation) -> ChatResult<()> {
    txn.open_table(CONVERSATIONS)?
        .insert(c.id, codec::encode(c).as_slice())?;
    Ok(())
}

pub(super) fn read_entries(
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

pub(super) fn read_entries_r(
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
pub(super) fn append(
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
pub(super) fn append_with(
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

pub(super) fn finish_append(
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

pub(super) fn set_status_in(
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
