//! Status, assignment, tickets, priority and the analytics query.

use super::*;

impl Chat {
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
    pub(super) async fn assign_as(
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
        let (convs, csats, sites) = self
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
                let csats: Vec<model::Csat> = decode_all(&txn.open_table(CSAT)?)?;
                let sites = decode_all::<_, Site>(&txn.open_table(SITES)?)?
                    .into_iter()
                    .map(|s| (s.id, s))
                    .collect();
                Ok::<_, ChatError>((convs, csats, sites))
            })
            .await?;
        Ok(stats::report(&convs, &csats, &sites, from_ms, to_ms))
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
}
