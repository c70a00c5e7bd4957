//! Conversations and messages: starting, posting (idempotent by client id), files, email
//! replies to email-channel tickets, and CSAT.

use super::events::{TICKET_CREATED, TicketCreated};
use super::*;

impl Chat {
    // ---- conversations --------------------------------------------------------------------

    pub(super) fn check_body(&self, body: &str) -> ChatResult<()> {
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

    pub(super) fn check_client_id(id: &str) -> ChatResult<()> {
        if id.is_empty() || id.len() > 64 {
            return Err(ChatError::Invalid(
                "client_msg_id must be 1 to 64 characters (a UUID is a good choice)".into(),
            ));
        }
        Ok(())
    }

    pub(super) fn rate_visitor(&self, who: &Who) -> ChatResult<()> {
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
    pub(super) async fn start_conversation_as(
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
                        TICKET_CREATED,
                        BusPriority::Normal,
                        &TicketCreated {
                            conversation_id: id,
                            priority: conv.priority,
                            channel,
                            subject: conv.subject.clone(),
                        },
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

    pub(super) async fn post_inner(
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
    pub(super) async fn mail_reply(&self, conv: &Conversation, entry: &Entry) {
        let visitor = match self.visitor(conv.visitor_id).await {
            Ok(Some(v)) if !v.email.is_empty() => v,
            _ => return,
        };
        // The previous reply that went out by mail, if any: this one answers it.
        let earlier = self
            .entries_after(conv.id, 0, entry.seq.saturating_sub(1) as usize, false)
            .await
            .unwrap_or_default();
        let parent = earlier
            .iter()
            .rev()
            .find(|e| e.seq < entry.seq && e.is_message() && e.author.kind == "agent")
            .map_or_else(
                || format!("hearth-chat.{}", conv.id),
                |e| format!("hearth-chat.{}.{}", conv.id, e.seq),
            );
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
            // Threaded (see mail::smtp::thread_ids): each reply answers the previous one, all
            // under the conversation's root id.
            dedup_key: Some(format!(
                "thread:hearth-chat.{0}:{1}:hearth-chat.{0}.{2}",
                conv.id, parent, entry.seq
            )),
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
}
