//! Reading conversations: entries, history pages, seen marks and unread counts, the inbox,
//! and the fan-out of committed entries to live sockets.

use super::*;

impl Chat {
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

    pub(super) fn fan_out(&self, conv: &Conversation, entry: Entry) {
        let rooms: &[Room] = if entry.private {
            &[Room::Agents]
        } else {
            &[Room::Agents, Room::Visitor(conv.visitor_id)]
        };
        self.inner.hub.send(
            rooms,
            &Out::Entry {
                conv: conv.id,
                frame: Arc::from(entry.frame(conv.id).to_string()),
                entry: Arc::new(entry),
            },
            None,
        );
    }

    /// Fans out every entry of `conv` from `from_seq` on (what one commit added).
    pub(super) async fn fan_out_since(&self, conv: &Conversation, from_seq: u64) {
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
    pub(crate) fn ephemeral(&self, visitor_id: u64, frame: Value, skip: Option<ConnId>) {
        let text: Arc<str> = Arc::from(frame.to_string());
        self.inner.hub.send(
            &[Room::Agents, Room::Visitor(visitor_id)],
            &Out::Frame(text),
            skip,
        );
    }
}
