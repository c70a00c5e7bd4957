//! The background sweep: auto-assignment of waiting conversations and SLA breaches.

use super::events::{TICKET_SLA_BREACHED, TicketSlaBreached};
use super::*;

impl Chat {
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
                    for (bit, kind, list) in [(1u8, "first_response", &fr), (2, "resolution", &res)]
                    {
                        if bits & bit != 0 {
                            let ms = target(list, c.priority).unwrap_or(0);
                            bus.publish_durable(
                                txn,
                                TICKET_SLA_BREACHED,
                                BusPriority::High,
                                &TicketSlaBreached {
                                    conversation_id: c.id,
                                    target: kind.to_string(),
                                    priority: c.priority,
                                    target_ms: ms,
                                    overdue_ms: now - c.created_ms - ms,
                                    assignee: c.assignee,
                                    ticket: c.ticket,
                                    subject: c.subject.clone(),
                                },
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
}
