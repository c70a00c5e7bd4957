//! The team: agent presence by heartbeat, and canned responses.

use super::*;

impl Chat {
    // ---- presence -------------------------------------------------------------------------

    /// An agent's heartbeat: online (or away) as of now.
    pub async fn heartbeat(&self, user_id: u64, status: &str) -> ChatResult<AgentPresence> {
        let name = match self.inner.accounts.user(user_id).await {
            Ok(Some(u)) => display_name(&u.name, &u.email),
            _ => format!("agent {user_id}"),
        };
        let p = AgentPresence {
            user_id,
            name,
            status: status.to_string(),
            last_beat_ms: self.now_ms(),
        };
        let was_online = self.any_agent_online();
        self.inner
            .presence
            .lock()
            .expect("presence")
            .insert(user_id, p.clone());
        if was_online != self.any_agent_online() {
            self.broadcast_availability();
        }
        self.run_assignment().await?;
        Ok(p)
    }

    pub fn go_offline(&self, user_id: u64) {
        let was_online = self.any_agent_online();
        self.inner
            .presence
            .lock()
            .expect("presence")
            .remove(&user_id);
        if was_online != self.any_agent_online() {
            self.broadcast_availability();
        }
    }

    /// Agents online now: status online and a heartbeat within the timeout.
    pub fn online_agents(&self) -> Vec<AgentPresence> {
        let now = self.now_ms();
        let timeout = self.config().presence_timeout.get().as_millis() as i64;
        let mut v: Vec<AgentPresence> = self
            .inner
            .presence
            .lock()
            .expect("presence")
            .values()
            .filter(|p| p.status == "online" && now - p.last_beat_ms <= timeout)
            .cloned()
            .collect();
        v.sort_by_key(|p| p.user_id);
        v
    }

    pub fn any_agent_online(&self) -> bool {
        !self.online_agents().is_empty()
    }

    pub(super) fn broadcast_availability(&self) {
        let frame = json!({"t": "presence", "agents_online": self.any_agent_online()});
        // Every widget socket cares; visitor rooms are many, so this goes through the agent
        // room plus a scan of visitor rooms in the hub.
        self.inner
            .hub
            .send_all(&Out::Frame(Arc::from(frame.to_string())));
    }

    /// What the widget shows for `site` now.
    pub fn widget_state(&self, site: &Site) -> (hours::WidgetState, Option<i64>) {
        let now = self.now_ms();
        let state = hours::state(site, now, self.any_agent_online());
        let next = match state {
            hours::WidgetState::Closed => hours::next_open(site, now),
            _ => None,
        };
        (state, next)
    }

    // ---- canned responses -----------------------------------------------------------------

    pub async fn canned(&self) -> ChatResult<Vec<Canned>> {
        self.inner
            .db
            .read(|txn| Ok(decode_all(&txn.open_table(CANNED)?)?))
            .await
    }

    pub async fn save_canned(
        &self,
        shortcut: String,
        title: String,
        body: String,
    ) -> ChatResult<Canned> {
        let shortcut = shortcut.trim().trim_start_matches('/').to_string();
        if shortcut.is_empty()
            || shortcut.len() > 32
            || !shortcut
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(ChatError::Invalid(
                "shortcut must be 1 to 32 letters, digits, - or _ (without the slash)".into(),
            ));
        }
        if body.trim().is_empty() || body.len() > canned::MAX_EXPANDED {
            return Err(ChatError::Invalid(format!(
                "body must be 1 to {} bytes",
                canned::MAX_EXPANDED
            )));
        }
        let now = self.now_ms();
        self.inner
            .db
            .write(move |txn| {
                let mut t = txn.open_table(CANNED)?;
                let mut existing = None;
                for row in t.iter()? {
                    let c: Canned = codec::decode(row?.1.value())?;
                    if c.shortcut == shortcut {
                        existing = Some(c.id);
                    }
                }
                let id = match existing {
                    Some(id) => id,
                    None => next_id(txn, "canned")?,
                };
                let c = Canned {
                    id,
                    shortcut,
                    title: clip(&title, 200),
                    body,
                    created_ms: now,
                };
                t.insert(id, codec::encode(&c).as_slice())?;
                Ok(c)
            })
            .await
    }
}
