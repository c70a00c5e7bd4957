//! Sessions, logins, one-time links (first-start setup, set-password) and user management.

use std::sync::OnceLock;
use std::time::Duration;

use redb::{ReadableTable, ReadableTableMetadata, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{
    Accounts, AccountsError, ApiToken, Role, User, hash_password, random_hex, secret_hash, store,
    verify_password,
};
use crate::store::{codec, now_ms, run_blocking};

/// The dashboard's session cookie.
pub const SESSION_COOKIE: &str = "hearth_session";

/// A dashboard login as stored (keyed by the sha256 of the cookie's secret).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub user_id: u64,
    pub created_ms: i64,
    pub expires_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LinkKind {
    /// Creates the first owner; valid only while there are no users.
    Setup,
    /// Lets an existing user choose their password.
    SetPassword { user_id: u64 },
}

/// A one-time link token as stored (keyed by its sha256).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkToken {
    pub kind: LinkKind,
    pub created_ms: i64,
    pub expires_ms: i64,
}

/// What a user may change about another user (`None` = leave as is).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    pub role: Option<Role>,
    pub name: Option<String>,
    pub disabled: Option<bool>,
    pub password: Option<String>,
}

/// A password hash nobody knows, checked when the email is unknown so that a wrong email and
/// a wrong password cost the same time.
pub(super) fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        hash_password(&format!("dummy-{}", random_hex(16))).expect("hash a dummy password")
    })
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn get_user(txn: &impl ReadUsers, id: u64) -> Result<Option<User>, AccountsError> {
    txn.user(id)
}

/// Reading a user from either kind of transaction.
trait ReadUsers {
    fn user(&self, id: u64) -> Result<Option<User>, AccountsError>;
}
impl ReadUsers for redb::ReadTransaction {
    fn user(&self, id: u64) -> Result<Option<User>, AccountsError> {
        let t = self.open_table(store::USERS)?;
        Ok(t.get(id)?.map(|v| codec::decode(v.value())).transpose()?)
    }
}
impl ReadUsers for WriteTransaction {
    fn user(&self, id: u64) -> Result<Option<User>, AccountsError> {
        let t = self.open_table(store::USERS)?;
        Ok(t.get(id)?.map(|v| codec::decode(v.value())).transpose()?)
    }
}

fn put_user(txn: &WriteTransaction, user: &User) -> Result<(), AccountsError> {
    txn.open_table(store::USERS)?
        .insert(user.id, codec::encode(user).as_slice())?;
    Ok(())
}

/// Inserts a new user (checking the email is free) inside the caller's transaction.
pub(super) fn insert_user(
    txn: &WriteTransaction,
    email: String,
    name: String,
    role: Role,
    password_hash: Option<String>,
) -> Result<User, AccountsError> {
    let key = email.to_ascii_lowercase();
    let mut by_email = txn.open_table(store::USERS_BY_EMAIL)?;
    if by_email.get(key.as_str())?.is_some() {
        return Err(AccountsError::Conflict(format!(
            "a user with email {email} exists"
        )));
    }
    let id = store::next_id(txn, "user")?;
    let user = User {
        id,
        email,
        name,
        role,
        password_hash,
        created_ms: now_ms(),
        disabled: false,
    };
    by_email.insert(key.as_str(), id)?;
    put_user(txn, &user)?;
    Ok(user)
}

/// Longest address accepted (RFC 5321's path limit).
const MAX_EMAIL: usize = 254;

/// A plausible `local@domain` address, trimmed: one `@` with a non-empty local part of at most
/// 64 bytes and a domain of dot-separated labels (letters, digits, `-`), no whitespace or control
/// characters anywhere (a CR/LF would let the address inject mail headers).
pub fn check_email(email: &str) -> Result<String, AccountsError> {
    let email = email.trim().to_string();
    let invalid = || {
        AccountsError::Invalid(format!(
            "{:?} is not an email address; write it as name@example.com",
            email.chars().take(80).collect::<String>()
        ))
    };
    if email.len() > MAX_EMAIL || email.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(invalid());
    }
    let Some((local, domain)) = email.rsplit_once('@') else {
        return Err(invalid());
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_alphanumeric() || c == '-')
    };
    if local.is_empty()
        || local.len() > 64
        || local.contains('@')
        || local.starts_with('.')
        || local.ends_with('.')
        || local.contains("..")
        || local.chars().any(|c| {
            matches!(
                c,
                '<' | '>' | '(' | ')' | ',' | ';' | ':' | '"' | '\\' | '[' | ']'
            )
        })
        || !domain.split('.').all(label_ok)
    {
        return Err(invalid());
    }
    Ok(email)
}

fn insert_session(
    txn: &WriteTransaction,
    user_id: u64,
    ttl: Duration,
) -> Result<String, AccountsError> {
    let secret = random_hex(32);
    let now = now_ms();
    let session = Session {
        user_id,
        created_ms: now,
        expires_ms: now.saturating_add(ms(ttl)),
    };
    txn.open_table(store::SESSIONS)?.insert(
        secret_hash(&secret).as_str(),
        codec::encode(&session).as_slice(),
    )?;
    Ok(secret)
}

/// Removes every session and (when `tokens`) every API token of `user_id`, except the one
/// credential whose stored hash is `keep` (the request's own, when a user changes their own
/// password).
fn remove_credentials(
    txn: &WriteTransaction,
    user_id: u64,
    tokens: bool,
    keep: Option<&str>,
) -> Result<(), AccountsError> {
    let mut sessions = txn.open_table(store::SESSIONS)?;
    let dead: Vec<String> = sessions
        .iter()?
        .filter_map(|r| r.ok())
        .filter(|(k, _)| keep != Some(k.value()))
        .filter(|(_, v)| codec::decode::<Session>(v.value()).is_ok_and(|s| s.user_id == user_id))
        .map(|(k, _)| k.value().to_string())
        .collect();
    for k in dead {
        sessions.remove(k.as_str())?;
    }
    if tokens {
        let mut t = txn.open_table(store::API_TOKENS)?;
        let dead: Vec<String> = t
            .iter()?
            .filter_map(|r| r.ok())
            .filter(|(k, _)| keep != Some(k.value()))
            .filter(|(_, v)| {
                codec::decode::<ApiToken>(v.value()).is_ok_and(|t| t.user_id == user_id)
            })
            .map(|(k, _)| k.value().to_string())
            .collect();
        for k in dead {
            t.remove(k.as_str())?;
        }
    }
    Ok(())
}

/// Active owners other than `except`.
fn other_active_owners(txn: &WriteTransaction, except: u64) -> Result<usize, AccountsError> {
    let t = txn.open_table(store::USERS)?;
    let mut n = 0;
    for row in t.iter()? {
        let (id, v) = row?;
        let u: User = codec::decode(v.value())?;
        if id.value() != except && u.role == Role::Owner && !u.disabled {
            n += 1;
        }
    }
    Ok(n)
}

async fn hash_blocking(password: String) -> Result<String, AccountsError> {
    run_blocking(move || hash_password(&password)).await
}

impl Accounts {
    /// Checks email and password (rate-limited per IP and per account) and opens a session.
    /// Returns the user and the session secret for the cookie.
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        ip: Option<std::net::IpAddr>,
    ) -> Result<(User, String), AccountsError> {
        let ip = ip.map(|i| i.to_string());
        if let Err(wait) = self.limiter.try_attempt(ip.as_deref(), email) {
            return Err(AccountsError::LoginRateLimited(wait));
        }
        let key = email.trim().to_ascii_lowercase();
        let user = self
            .db
            .read(move |txn| {
                let by_email = txn.open_table(store::USERS_BY_EMAIL)?;
                let Some(id) = by_email.get(key.as_str())?.map(|v| v.value()) else {
                    return Ok(None);
                };
                get_user(txn, id)
            })
            .await?;
        let phc = user.as_ref().and_then(|u| u.password_hash.clone());
        let password = password.to_string();
        // Always verify, even for an unknown email, so timing does not reveal which emails exist.
        let matches = run_blocking(move || {
            let phc = phc.as_deref().unwrap_or_else(|| dummy_hash());
            verify_password(&password, phc)
        })
        .await;
        let user = match user {
            Some(u) if matches && u.password_hash.is_some() && !u.disabled => u,
            _ => return Err(AccountsError::InvalidCredentials),
        };
        self.limiter.succeeded(ip.as_deref(), email);
        let ttl = self.config.auth.session_ttl.get();
        let id = user.id;
        let secret = self
            .db
            .write(move |txn| insert_session(txn, id, ttl))
            .await?;
        Ok((user, secret))
    }

    /// Ends the session whose cookie secret is `secret` (no error if it is already gone).
    pub async fn logout(&self, secret: &str) -> Result<(), AccountsError> {
        let hash = secret_hash(secret);
        self.db
            .write(move |txn| {
                txn.open_table(store::SESSIONS)?.remove(hash.as_str())?;
                Ok(())
            })
            .await
    }

    /// The user behind a session cookie. `Err(SessionExpired)` for an expired one,
    /// `Ok(None)` for an unknown one or a disabled/deleted user.
    pub async fn session_user(&self, secret: &str) -> Result<Option<User>, AccountsError> {
        let hash = secret_hash(secret);
        let (session, user) = self
            .db
            .read(move |txn| {
                let t = txn.open_table(store::SESSIONS)?;
                let Some(v) = t.get(hash.as_str())? else {
                    return Ok((None, None));
                };
                let s: Session = codec::decode(v.value())?;
                let user = get_user(txn, s.user_id)?;
                Ok::<_, AccountsError>((Some(s), user))
            })
            .await?;
        let Some(session) = session else {
            return Ok(None);
        };
        if session.expires_ms <= now_ms() {
            // Drop it now rather than wait for the pruner; the answer does not depend on it.
            let _ = self.logout(secret).await;
            return Err(AccountsError::SessionExpired);
        }
        Ok(user.filter(|u| !u.disabled))
    }

    pub async fn user_count(&self) -> Result<u64, AccountsError> {
        self.db
            .read(|txn| Ok(txn.open_table(store::USERS)?.len()?))
            .await
    }

    async fn create_link(&self, kind: LinkKind) -> Result<String, AccountsError> {
        let token = random_hex(24);
        let now = now_ms();
        let link = LinkToken {
            kind,
            created_ms: now,
            expires_ms: now.saturating_add(ms(self.config.auth.setup_link_ttl.get())),
        };
        let hash = secret_hash(&token);
        self.db
            .write(move |txn| {
                txn.open_table(store::LINK_TOKENS)?
                    .insert(hash.as_str(), codec::encode(&link).as_slice())?;
                Ok::<_, AccountsError>(())
            })
            .await?;
        Ok(token)
    }

    /// Issues a one-time first-start setup token (stored hashed) and returns it.
    pub async fn create_setup_token(&self) -> Result<String, AccountsError> {
        self.create_link(LinkKind::Setup).await
    }

    /// Issues a one-time link token with which `user_id` sets their password.
    pub async fn create_password_token(&self, user_id: u64) -> Result<String, AccountsError> {
        self.create_link(LinkKind::SetPassword { user_id }).await
    }

    /// The page a link token leads to: `<base>/setup?token=<token>`.
    pub fn link_url(&self, token: &str) -> String {
        format!("{}/setup?token={token}", self.config.server.base_url())
    }

    /// What a still-valid link token is for (and the user's email for a set-password link).
    pub async fn link_info(
        &self,
        token: &str,
    ) -> Result<Option<(LinkKind, Option<String>)>, AccountsError> {
        let hash = secret_hash(token);
        self.db
            .read(move |txn| {
                let t = txn.open_table(store::LINK_TOKENS)?;
                let Some(v) = t.get(hash.as_str())? else {
                    return Ok(None);
                };
                let link: LinkToken = codec::decode(v.value())?;
                if link.expires_ms <= now_ms() {
                    return Ok(None);
                }
                let email = match link.kind {
                    LinkKind::Setup => None,
                    LinkKind::SetPassword { user_id } => match get_user(txn, user_id)? {
                        Some(u) => Some(u.email),
                        None => return Ok(None),
                    },
                };
                Ok(Some((link.kind, email)))
            })
            .await
    }

    /// Creates the first owner with a setup token, consuming it (and every other setup
    /// token), and signs them in. Works exactly once.
    pub async fn complete_setup(
        &self,
        token: &str,
        email: &str,
        name: &str,
        password: &str,
    ) -> Result<(User, String), AccountsError> {
        let email = check_email(email)?;
        let name = name.trim().to_string();
        // Refuse cheaply before paying for a password hash (the route is public).
        if self.user_count().await? > 0 {
            return Err(AccountsError::SetupAlreadyDone);
        }
        if !matches!(self.link_info(token).await?, Some((LinkKind::Setup, _))) {
            return Err(AccountsError::LinkInvalid);
        }
        let hash = hash_blocking(password.to_string()).await?;
        let token_hash = secret_hash(token);
        let ttl = self.config.auth.session_ttl.get();
        self.db
            .write(move |txn| {
                if txn.open_table(store::USERS)?.len()? > 0 {
                    return Err(AccountsError::SetupAlreadyDone);
                }
                let mut links = txn.open_table(store::LINK_TOKENS)?;
                let valid = match links.get(token_hash.as_str())? {
                    Some(v) => {
                        let l: LinkToken = codec::decode(v.value())?;
                        l.kind == LinkKind::Setup && l.expires_ms > now_ms()
                    }
                    None => false,
                };
                if !valid {
                    return Err(AccountsError::LinkInvalid);
                }
                let setup: Vec<String> = links
                    .iter()?
                    .filter_map(|r| r.ok())
                    .filter(|(_, v)| {
                        codec::decode::<LinkToken>(v.value())
                            .is_ok_and(|l| l.kind == LinkKind::Setup)
                    })
                    .map(|(k, _)| k.value().to_string())
                    .collect();
                for k in setup {
                    links.remove(k.as_str())?;
                }
                drop(links);
                let user = insert_user(txn, email, name, Role::Owner, Some(hash))?;
                let secret = insert_session(txn, user.id, ttl)?;
                Ok((user, secret))
            })
            .await
    }

    /// Sets a user's password with a set-password link token, consuming it, and signs them in.
    pub async fn use_password_token(
        &self,
        token: &str,
        password: &str,
    ) -> Result<(User, String), AccountsError> {
        // Refuse cheaply before paying for a password hash (the route is public).
        if !matches!(
            self.link_info(token).await?,
            Some((LinkKind::SetPassword { .. }, _))
        ) {
            return Err(AccountsError::LinkInvalid);
        }
        let hash = hash_blocking(password.to_string()).await?;
        let token_hash = secret_hash(token);
        let ttl = self.config.auth.session_ttl.get();
        self.db
            .write(move |txn| {
                let link: Option<LinkToken> = txn
                    .open_table(store::LINK_TOKENS)?
                    .remove(token_hash.as_str())?
                    .map(|v| codec::decode(v.value()))
                    .transpose()?;
                let user_id = match link {
                    Some(LinkToken {
                        kind: LinkKind::SetPassword { user_id },
                        expires_ms,
                        ..
                    }) if expires_ms > now_ms() => user_id,
                    _ => return Err(AccountsError::LinkInvalid),
                };
                let Some(mut user) = get_user(txn, user_id)? else {
                    return Err(AccountsError::LinkInvalid);
                };
                if user.disabled {
                    return Err(AccountsError::LinkInvalid);
                }
                user.password_hash = Some(hash);
                put_user(txn, &user)?;
                // A new password ends everything the old one opened (see `update_user`).
                remove_credentials(txn, user.id, true, None)?;
                let secret = insert_session(txn, user.id, ttl)?;
                Ok((user, secret))
            })
            .await
    }

    pub async fn list_users(&self) -> Result<Vec<User>, AccountsError> {
        self.db
            .read(|txn| {
                let t = txn.open_table(store::USERS)?;
                let mut out = Vec::new();
                for row in t.iter()? {
                    let (_, v) = row?;
                    out.push(codec::decode(v.value())?);
                }
                Ok(out)
            })
            .await
    }

    pub async fn user(&self, id: u64) -> Result<Option<User>, AccountsError> {
        self.db.read(move |txn| get_user(txn, id)).await
    }

    /// Changes a user. The last active owner can be neither demoted nor disabled. Disabling a
    /// user ends their sessions (their tokens stop working while they are disabled).
    ///
    /// A new password ends the user's sessions and revokes their API tokens: changing a
    /// password is what one does after it leaked, and whoever held it could have opened a
    /// session and made a token with it, so nothing the old password opened may outlive it.
    /// `keep` is the stored hash of the request's own credential (session or token), kept when
    /// users change their own password so the change does not sign them out mid-request.
    pub async fn update_user(
        &self,
        id: u64,
        patch: UserPatch,
        keep: Option<String>,
    ) -> Result<User, AccountsError> {
        let hash = match patch.password.clone() {
            Some(p) => Some(hash_blocking(p).await?),
            None => None,
        };
        self.db
            .write(move |txn| {
                let Some(mut user) = get_user(txn, id)? else {
                    return Err(AccountsError::NotFound("user"));
                };
                let demoted = patch.role.is_some_and(|r| r != Role::Owner);
                let disabled = patch.disabled == Some(true);
                if user.role == Role::Owner
                    && !user.disabled
                    && (demoted || disabled)
                    && other_active_owners(txn, id)? == 0
                {
                    return Err(AccountsError::LastOwner);
                }
                if let Some(r) = patch.role {
                    user.role = r;
                }
                if let Some(n) = patch.name {
                    user.name = n.trim().to_string();
                }
                if let Some(d) = patch.disabled {
                    user.disabled = d;
                }
                let new_password = hash.is_some();
                if new_password {
                    user.password_hash = hash;
                    remove_credentials(txn, id, true, keep.as_deref())?;
                }
                if user.disabled {
                    remove_credentials(txn, id, false, None)?;
                }
                put_user(txn, &user)?;
                Ok(user)
            })
            .await
    }

    /// Deletes a user with their sessions and API tokens. The last active owner cannot be
    /// deleted.
    pub async fn delete_user(&self, id: u64) -> Result<User, AccountsError> {
        self.db
            .write(move |txn| {
                let Some(user) = get_user(txn, id)? else {
                    return Err(AccountsError::NotFound("user"));
                };
                if user.role == Role::Owner && !user.disabled && other_active_owners(txn, id)? == 0
                {
                    return Err(AccountsError::LastOwner);
                }
                remove_credentials(txn, id, true, None)?;
                txn.open_table(store::USERS_BY_EMAIL)?
                    .remove(user.email.to_ascii_lowercase().as_str())?;
                txn.open_table(store::USERS)?.remove(id)?;
                Ok(user)
            })
            .await
    }

    /// API tokens of `user_id`, oldest first.
    pub async fn list_tokens(&self, user_id: u64) -> Result<Vec<ApiToken>, AccountsError> {
        self.db
            .read(move |txn| {
                let t = txn.open_table(store::API_TOKENS)?;
                let mut out: Vec<ApiToken> = Vec::new();
                for row in t.iter()? {
                    let (_, v) = row?;
                    let tok: ApiToken = codec::decode(v.value())?;
                    if tok.user_id == user_id {
                        out.push(tok);
                    }
                }
                out.sort_by_key(|t| t.id);
                Ok(out)
            })
            .await
    }

    /// Revokes token `id`. `owner_of` limits it to that user's tokens (`None`: any token).
    pub async fn delete_token(
        &self,
        id: u64,
        owner_of: Option<u64>,
    ) -> Result<ApiToken, AccountsError> {
        self.db
            .write(move |txn| {
                let mut t = txn.open_table(store::API_TOKENS)?;
                let mut found = None;
                for row in t.iter()? {
                    let (k, v) = row?;
                    let tok: ApiToken = codec::decode(v.value())?;
                    if tok.id == id && owner_of.is_none_or(|u| u == tok.user_id) {
                        found = Some((k.value().to_string(), tok));
                        break;
                    }
                }
                let Some((key, tok)) = found else {
                    return Err(AccountsError::NotFound("token"));
                };
                t.remove(key.as_str())?;
                Ok(tok)
            })
            .await
    }

    /// Records that token `id` was just used, at most once a minute per token so that
    /// authenticating stays a read.
    pub(super) fn touch_token(&self, id: u64, hash: String) {
        let now = now_ms();
        {
            let mut seen = self.touched.lock().expect("token touch map");
            if seen.get(&id).is_some_and(|t| now - *t < 60_000) {
                return;
            }
            if seen.len() > 10_000 {
                seen.clear();
            }
            seen.insert(id, now);
        }
        let db = self.db.clone();
        tokio::spawn(async move {
            let r = db
                .write(move |txn| {
                    let mut t = txn.open_table(store::API_TOKENS)?;
                    let tok: Option<ApiToken> = t
                        .get(hash.as_str())?
                        .map(|v| codec::decode(v.value()))
                        .transpose()?;
                    if let Some(mut tok) = tok {
                        tok.last_used_ms = Some(now);
                        t.insert(hash.as_str(), codec::encode(&tok).as_slice())?;
                    }
                    Ok::<_, AccountsError>(())
                })
                .await;
            if let Err(e) = r {
                tracing::warn!("cannot record API token use: {e}");
            }
        });
    }

    /// Deletes expired sessions and link tokens. Returns how many.
    pub async fn prune_expired(&self) -> Result<u64, AccountsError> {
        self.db
            .write(|txn| {
                let now = now_ms();
                let mut sessions = txn.open_table(store::SESSIONS)?;
                let before = sessions.len()?;
                sessions.retain(|_, v| {
                    !codec::decode::<Session>(v).is_ok_and(|s| s.expires_ms <= now)
                })?;
                let mut links = txn.open_table(store::LINK_TOKENS)?;
                let before = before + links.len()?;
                links.retain(|_, v| {
                    !codec::decode::<LinkToken>(v).is_ok_and(|l| l.expires_ms <= now)
                })?;
                let n = before - sessions.len()? - links.len()?;
                Ok::<_, AccountsError>(n)
            })
            .await
    }
}
