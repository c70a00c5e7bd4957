//! Sites (site key, identity secret, business hours) and widget visitors.

use super::*;

impl Chat {
    // ---- sites ----------------------------------------------------------------------------

    pub async fn create_site(&self, new: NewSite) -> ChatResult<Site> {
        let name = clip(&new.name, 200);
        if name.is_empty() {
            return Err(ChatError::Invalid("give the site a name".into()));
        }
        if hours::time_zone(&new.time_zone).is_none() {
            return Err(ChatError::Invalid(format!(
                "unknown time zone {:?}; use an IANA name like Europe/Berlin",
                new.time_zone
            )));
        }
        let now = self.now_ms();
        self.inner
            .db
            .write(move |txn| {
                let id = next_id(txn, "site")?;
                let site = Site {
                    id,
                    name,
                    site_key: format!("hcs_{}", crate::accounts::random_hex(16)),
                    identity_secret: crate::accounts::random_hex(32),
                    require_identity: new.require_identity,
                    hours: new.hours,
                    time_zone: if new.time_zone.is_empty() {
                        "UTC".into()
                    } else {
                        new.time_zone
                    },
                    created_ms: now,
                };
                txn.open_table(SITES)?
                    .insert(id, codec::encode(&site).as_slice())?;
                txn.open_table(SITE_KEYS)?
                    .insert(site.site_key.as_str(), id)?;
                Ok(site)
            })
            .await
    }

    pub async fn update_site(
        &self,
        id: u64,
        patch: impl FnOnce(&mut Site) -> ChatResult<()> + Send + 'static,
    ) -> ChatResult<Site> {
        self.inner
            .db
            .write(move |txn| {
                let mut site =
                    get_site(txn_read_sites(txn)?, id)?.ok_or(ChatError::NotFound("site"))?;
                patch(&mut site)?;
                txn.open_table(SITES)?
                    .insert(id, codec::encode(&site).as_slice())?;
                Ok(site)
            })
            .await
    }

    pub async fn sites(&self) -> ChatResult<Vec<Site>> {
        self.inner
            .db
            .read(|txn| Ok(decode_all(&txn.open_table(SITES)?)?))
            .await
    }

    pub async fn site_by_key(&self, key: &str) -> ChatResult<Option<Site>> {
        let key = key.to_string();
        self.inner
            .db
            .read(move |txn| site_by_key_in(txn, &key))
            .await
    }

    // ---- visitors -------------------------------------------------------------------------

    /// Starts or resumes a widget session: checks the site key, the identity hash if a user id
    /// is given (a wrong one is refused), and returns the visitor with its token (a new token
    /// only when the given one is unknown).
    pub async fn visitor_session(
        &self,
        hello: VisitorHello,
        ip: Option<std::net::IpAddr>,
    ) -> ChatResult<(Site, Visitor, String)> {
        let site = self
            .site_by_key(&hello.site_key)
            .await?
            .ok_or_else(|| ChatError::Auth(unknown_site_key()))?;
        let verified = match (&hello.user_id, &hello.user_hash) {
            (Some(uid), Some(hash)) if !uid.is_empty() => {
                if uid.len() > 256 {
                    return Err(ChatError::Invalid(
                        "user_id is longer than 256 bytes".into(),
                    ));
                }
                let want = identity_hash(&site.identity_secret, uid);
                if !constant_time_eq(want.as_bytes(), hash.trim().to_ascii_lowercase().as_bytes()) {
                    return Err(ChatError::Auth(
                        "user_hash does not match user_id: compute it on your server as hex(HMAC-SHA256(identity secret, user_id)) with the secret shown for this site".into(),
                    ));
                }
                Some(uid.clone())
            }
            (Some(uid), None) if !uid.is_empty() => {
                return Err(ChatError::Auth(
                    "user_id needs user_hash = hex(HMAC-SHA256(identity secret, user_id)), computed on your server".into(),
                ));
            }
            _ => None,
        };
        if site.require_identity && verified.is_none() {
            return Err(ChatError::Auth(
                "this site only accepts verified visitors: pass user_id and user_hash".into(),
            ));
        }
        let now = self.now_ms();
        let existing_hash = hello
            .visitor_token
            .as_deref()
            .filter(|t| !t.is_empty() && t.len() <= 128)
            .map(crate::accounts::secret_hash);
        if existing_hash.is_none()
            && verified.is_none()
            && let Some(ip) = ip
            && let Err(ms) = self.inner.starts_per_ip.hit(&ip.to_string(), now)
        {
            return Err(ChatError::RateLimited {
                retry_after_ms: ms,
                what: "new chat visitors from this address".into(),
            });
        }
        let site_id = site.id;
        let (visitor, token) = self
            .inner
            .db
            .write(move |txn| {
                let mut tokens = txn.open_table(VISITOR_TOKENS)?;
                let mut visitors = txn.open_table(VISITORS)?;
                let mut found: Option<Visitor> = None;
                if let Some(h) = &existing_hash
                    && let Some(id) = tokens.get(h.as_str())?.map(|v| v.value())
                    && let Some(v) = visitors.get(id)?
                {
                    let v: Visitor = codec::decode(v.value())?;
                    // A token from another site, or of another verified user, is not this visitor.
                    if v.site_id == site_id && (verified.is_none() || v.user_id == verified) {
                        found = Some(v);
                    }
                }
                if found.is_none()
                    && let Some(uid) = &verified
                {
                    let users = txn.open_table(VISITOR_USERS)?;
                    if let Some(id) = users.get((site_id, uid.as_str()))?.map(|v| v.value())
                        && let Some(v) = visitors.get(id)?
                    {
                        found = Some(codec::decode(v.value())?);
                    }
                }
                let mut token = hello.visitor_token.clone().unwrap_or_default();
                let mut v = match found {
                    Some(v) => v,
                    None => {
                        let id = next_id(txn, "visitor")?;
                        token = format!("hcv_{}", crate::accounts::random_hex(24));
                        tokens.insert(crate::accounts::secret_hash(&token).as_str(), id)?;
                        Visitor {
                            id,
                            site_id,
                            name: String::new(),
                            email: String::new(),
                            user_id: verified.clone(),
                            created_ms: now,
                            last_seen_ms: now,
                            page_url: String::new(),
                            user_agent: String::new(),
                        }
                    }
                };
                if let Some(uid) = &verified {
                    txn.open_table(VISITOR_USERS)?
                        .insert((site_id, uid.as_str()), v.id)?;
                    v.user_id = Some(uid.clone());
                }
                if let Some(n) = hello.name.as_deref().filter(|s| !s.trim().is_empty()) {
                    v.name = clip(n, 200);
                }
                if let Some(e) = hello.email.as_deref().filter(|s| !s.trim().is_empty()) {
                    v.email = clip(e, 320);
                }
                if let Some(p) = hello.page_url.as_deref() {
                    v.page_url = clip(p, MAX_FIELD);
                }
                if let Some(u) = hello.user_agent.as_deref() {
                    v.user_agent = clip(u, MAX_FIELD);
                }
                v.last_seen_ms = now;
                visitors.insert(v.id, codec::encode(&v).as_slice())?;
                Ok::<_, ChatError>((v, token))
            })
            .await?;
        Ok((site, visitor, token))
    }

    /// The widget credential: site key + visitor token → the visitor, or why not.
    pub async fn authenticate_visitor(
        &self,
        site_key: &str,
        token: &str,
    ) -> ChatResult<(Site, Visitor)> {
        if site_key.len() > 128 || token.len() > 128 {
            return Err(ChatError::Auth(unknown_site_key()));
        }
        let (key, hash) = (site_key.to_string(), crate::accounts::secret_hash(token));
        self.inner
            .db
            .read(move |txn| {
                let site = site_by_key_in(txn, &key)?
                    .ok_or_else(|| ChatError::Auth(unknown_site_key()))?;
                let bad = || {
                    ChatError::Auth(
                        "unknown visitor token; start a new widget session (POST /api/chat/widget/session)"
                            .into(),
                    )
                };
                let id = txn
                    .open_table(VISITOR_TOKENS)?
                    .get(hash.as_str())?
                    .map(|v| v.value())
                    .ok_or_else(bad)?;
                let v: Visitor = txn
                    .open_table(VISITORS)?
                    .get(id)?
                    .map(|v| codec::decode(v.value()))
                    .transpose()?
                    .ok_or_else(bad)?;
                if v.site_id != site.id {
                    return Err(bad());
                }
                Ok((site, v))
            })
            .await
    }

    pub async fn visitor(&self, id: u64) -> ChatResult<Option<Visitor>> {
        self.inner
            .db
            .read(move |txn| {
                Ok(txn
                    .open_table(VISITORS)?
                    .get(id)?
                    .map(|v| codec::decode(v.value()))
                    .transpose()?)
            })
            .await
    }

    /// Sets a visitor's name and email (what the widget's pre-chat form or the page's JS API
    /// gives); empty values leave the stored ones.
    pub async fn update_visitor(
        &self,
        id: u64,
        name: Option<String>,
        email: Option<String>,
    ) -> ChatResult<Visitor> {
        self.inner
            .db
            .write(move |txn| {
                let mut t = txn.open_table(VISITORS)?;
                let mut v: Visitor = t
                    .get(id)?
                    .map(|v| codec::decode(v.value()))
                    .transpose()?
                    .ok_or(ChatError::NotFound("visitor"))?;
                if let Some(n) = name.filter(|s| !s.trim().is_empty()) {
                    v.name = clip(&n, 200);
                }
                if let Some(e) = email.filter(|s| !s.trim().is_empty()) {
                    v.email = clip(&e, 320);
                }
                t.insert(id, codec::encode(&v).as_slice())?;
                Ok(v)
            })
            .await
    }

    /// Counts one anonymous socket from `ip`; `false` when the address has too many open.
    pub(crate) fn socket_opened(&self, ip: std::net::IpAddr) -> bool {
        let cap = self.config().sockets_per_ip;
        let mut m = self.inner.sockets_per_ip.lock().expect("sockets");
        let n = m.entry(ip).or_insert(0);
        if cap != 0 && *n >= cap {
            return false;
        }
        *n += 1;
        true
    }

    pub(crate) fn socket_closed(&self, ip: std::net::IpAddr) {
        let mut m = self.inner.sockets_per_ip.lock().expect("sockets");
        if let Some(n) = m.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&ip);
            }
        }
    }
}
