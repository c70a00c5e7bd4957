//! Accounts: users and roles, sessions and API tokens, projects and their DSN keys.

pub mod api;
pub mod limit;
pub mod model;
pub mod session;
pub mod store;
mod users_api;

use axum::http::request::Parts;
use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::http::auth::{AuthVia, Authed, LocalSocket};
use crate::http::error::{ApiError, Code};
use crate::store::{Db, StoreError, StoreResult, codec, now_ms};
pub use model::{Project, ProjectKey, Role};
use store::{PROJECT_KEYS, PROJECTS};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub id: u64,
    pub email: String,
    pub name: String,
    pub role: Role,
    /// argon2id PHC string; `None` until the user sets a password.
    pub password_hash: Option<String>,
    pub created_ms: i64,
    pub disabled: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("wrong email or password")]
    InvalidCredentials,
    #[error("too many failed logins; retry in {0:?}")]
    LoginRateLimited(std::time::Duration),
    #[error("session expired")]
    SessionExpired,
    #[error("setup is already done")]
    SetupAlreadyDone,
    #[error("setup link invalid")]
    LinkInvalid,
    #[error("last owner")]
    LastOwner,
}

crate::impl_from_redb!(AccountsError);

impl From<AccountsError> for ApiError {
    fn from(e: AccountsError) -> Self {
        match e {
            // A full disk is 503 + Retry-After (store::space), anything else a 500.
            AccountsError::Store(s) => ApiError::from(s),
            AccountsError::NotFound(what) => ApiError::not_found(what),
            AccountsError::Invalid(m) => ApiError::bad_request(m),
            AccountsError::Conflict(m) => ApiError::new(Code::Conflict, m),
            AccountsError::InvalidCredentials => ApiError::new(
                Code::InvalidCredentials,
                "wrong email or password; check both and try again",
            ),
            AccountsError::LoginRateLimited(wait) => {
                let secs = wait.as_secs().max(1);
                ApiError::new(
                    Code::LoginRateLimited,
                    format!("too many failed sign-ins; wait {secs} seconds and try again"),
                )
                .with_header("retry-after", secs.to_string())
            }
            AccountsError::SessionExpired => ApiError::new(
                Code::SessionExpired,
                "your session has expired; sign in again",
            ),
            AccountsError::SetupAlreadyDone => ApiError::new(
                Code::SetupAlreadyDone,
                "setup is already done; sign in at /login, or ask an owner for an account",
            ),
            AccountsError::LinkInvalid => ApiError::new(
                Code::SetupLinkInvalid,
                "this link is invalid, used or expired; restart hearth for a new setup link, \
                 or ask an owner for a new one",
            ),
            AccountsError::LastOwner => ApiError::new(
                Code::Conflict,
                "this is the last owner; make another user owner first",
            ),
        }
    }
}

/// An API token as stored: only the hash of the secret is kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiToken {
    pub id: u64,
    pub user_id: u64,
    pub name: String,
    pub created_ms: i64,
    pub last_used_ms: Option<i64>,
}

/// Longest DSN key label, in characters.
pub const MAX_KEY_LABEL: usize = 200;

/// Token secrets start with this, so a leaked one is recognisable (and greppable).
pub const TOKEN_PREFIX: &str = "hth_";

/// sha256 of a secret, hex: how tokens and session ids are stored.
pub fn secret_hash(secret: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(secret.as_bytes()))
}

/// The `hearth_session` cookie's value, if the request carries one.
pub fn session_cookie(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, v)| *k == session::SESSION_COOKIE && !v.is_empty())
        .map(|(_, v)| v.to_string())
}

/// The refusal of a cookie-authenticated write that did not come from Hearth's own pages.
pub fn cross_origin() -> ApiError {
    ApiError::new(
        crate::http::error::Code::Forbidden,
        "this request changes data with the session cookie but does not come from Hearth's own \
         pages (Origin / Sec-Fetch-Site); scripts should send an API token instead",
    )
}

/// What ingest learns from a DSN public key.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    pub project_id: u64,
    pub revoked: bool,
}

#[derive(Clone)]
pub struct Accounts {
    db: Db,
    config: std::sync::Arc<Config>,
    limiter: std::sync::Arc<limit::LoginLimiter>,
    /// token id → when its `last_used_ms` was last written (see `touch_token`).
    touched: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<u64, i64>>>,
}

impl Accounts {
    pub fn new(db: Db, config: std::sync::Arc<Config>) -> Self {
        let a = &config.auth;
        let limiter = limit::LoginLimiter::new(
            a.login_window.get(),
            a.login_attempts_per_ip,
            a.login_attempts_per_account,
            a.login_max_delay.get(),
        );
        Accounts {
            db,
            config,
            limiter: std::sync::Arc::new(limiter),
            touched: Default::default(),
        }
    }

    /// Identifies the caller of an admin route, or says why not.
    pub async fn authenticate(&self, parts: &Parts) -> Result<Authed, ApiError> {
        if parts.extensions.get::<LocalSocket>().is_some() {
            return Ok(Authed {
                user_id: 0,
                email: "local-admin-socket".into(),
                role: Role::Owner,
                via: AuthVia::LocalSocket,
                credential: None,
            });
        }
        if let Some(value) = parts.headers.get(axum::http::header::AUTHORIZATION) {
            let token = value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim)
                .ok_or_else(|| {
                    ApiError::new(
                        crate::http::error::Code::InvalidAuth,
                        "the Authorization header must be `Bearer <api token>`",
                    )
                })?;
            return self.authenticate_token(token).await;
        }
        if let Some(secret) = session_cookie(&parts.headers) {
            let user = match self.session_user(&secret).await? {
                Some(u) => u,
                None => {
                    return Err(ApiError::new(
                        crate::http::error::Code::InvalidAuth,
                        "your session has ended; sign in again",
                    ));
                }
            };
            // The cookie rides along on any request the browser makes to this host, also one
            // that another site's page triggers: a write authenticated by it must come from
            // Hearth's own pages (cross-site request forgery).
            if crate::http::auth::is_write(&parts.method)
                && !crate::http::auth::same_origin(&parts.headers, &self.config.server.base_url())
            {
                return Err(cross_origin());
            }
            return Ok(Authed {
                user_id: user.id,
                email: user.email,
                role: user.role,
                via: AuthVia::Session,
                credential: Some(secret_hash(&secret)),
            });
        }
        Err(ApiError::missing_auth())
    }

    async fn authenticate_token(&self, token: &str) -> Result<Authed, ApiError> {
        let invalid = || {
            ApiError::new(
                crate::http::error::Code::InvalidAuth,
                "this API token is unknown or revoked; create a new one under System → API tokens",
            )
        };
        if !token.starts_with(TOKEN_PREFIX) {
            return Err(invalid());
        }
        let hash = secret_hash(token);
        let found = self
            .db
            .read(move |txn| {
                let tokens = txn.open_table(store::API_TOKENS)?;
                let Some(v) = tokens.get(hash.as_str())? else {
                    return Ok::<_, AccountsError>(None);
                };
                let t: ApiToken = codec::decode(v.value())?;
                let users = txn.open_table(store::USERS)?;
                let user: Option<User> = users
                    .get(t.user_id)?
                    .map(|v| codec::decode(v.value()))
                    .transpose()?;
                Ok(user.map(|u| (t.id, u)))
            })
            .await?;
        match found {
            Some((token_id, u)) if !u.disabled => {
                self.touch_token(token_id, secret_hash(token));
                Ok(Authed {
                    user_id: u.id,
                    email: u.email,
                    role: u.role,
                    via: AuthVia::Token,
                    credential: Some(secret_hash(token)),
                })
            }
            _ => Err(invalid()),
        }
    }

    /// Creates a user. `password` may be `None` (they set it later through a link).
    pub async fn create_user(
        &self,
        email: &str,
        name: &str,
        role: Role,
        password: Option<&str>,
    ) -> Result<User, AccountsError> {
        let email = session::check_email(email)?;
        let hash = match password {
            Some(p) => {
                let p = p.to_string();
                Some(crate::store::run_blocking(move || hash_password(&p)).await?)
            }
            None => None,
        };
        let name = name.trim().to_string();
        self.db
            .write(move |txn| session::insert_user(txn, email, name, role, hash))
            .await
    }

    /// Issues an API token for `user_id`; the secret is returned once and stored only hashed.
    pub async fn create_api_token(
        &self,
        user_id: u64,
        name: &str,
    ) -> Result<(ApiToken, String), AccountsError> {
        let name = name.trim().to_string();
        self.db
            .write(move |txn| {
                if txn.open_table(store::USERS)?.get(user_id)?.is_none() {
                    return Err(AccountsError::NotFound("user"));
                }
                let secret = format!("{TOKEN_PREFIX}{}", random_hex(24));
                let token = ApiToken {
                    id: store::next_id(txn, "token")?,
                    user_id,
                    name,
                    created_ms: now_ms(),
                    last_used_ms: None,
                };
                txn.open_table(store::API_TOKENS)?.insert(
                    secret_hash(&secret).as_str(),
                    codec::encode(&token).as_slice(),
                )?;
                Ok((token, secret))
            })
            .await
    }

    pub async fn create_project(&self, name: &str) -> Result<(Project, ProjectKey), AccountsError> {
        let name = name.trim().to_string();
        if name.is_empty() || name.len() > 200 {
            return Err(AccountsError::Invalid(
                "a project name must be 1 to 200 characters".into(),
            ));
        }
        self.db
            .write(move |txn| {
                let id = store::next_id(txn, "project")?;
                let project = Project {
                    id,
                    name,
                    created_ms: now_ms(),
                    grouping_version: crate::issues::GROUPING_VERSION,
                };
                txn.open_table(PROJECTS)?
                    .insert(id, codec::encode(&project).as_slice())?;
                let key = insert_key(txn, id, "Default")?;
                Ok::<_, AccountsError>((project, key))
            })
            .await
    }

    pub async fn create_key(
        &self,
        project_id: u64,
        label: &str,
    ) -> Result<ProjectKey, AccountsError> {
        let label = label.trim().to_string();
        if label.chars().count() > MAX_KEY_LABEL || label.chars().any(char::is_control) {
            return Err(AccountsError::Invalid(format!(
                "a key label may have at most {MAX_KEY_LABEL} characters and no control characters"
            )));
        }
        self.db
            .write(move |txn| {
                if txn.open_table(PROJECTS)?.get(project_id)?.is_none() {
                    return Err(AccountsError::NotFound("project"));
                }
                Ok(insert_key(txn, project_id, &label)?)
            })
            .await
    }

    pub async fn revoke_key(
        &self,
        project_id: u64,
        public_key: &str,
    ) -> Result<ProjectKey, AccountsError> {
        let public_key = public_key.to_string();
        self.db
            .write(move |txn| {
                let mut t = txn.open_table(PROJECT_KEYS)?;
                let mut key: ProjectKey = match t.get(public_key.as_str())? {
                    Some(v) => codec::decode(v.value())?,
                    None => return Err(AccountsError::NotFound("key")),
                };
                if key.project_id != project_id {
                    return Err(AccountsError::NotFound("key"));
                }
                key.revoked_ms.get_or_insert_with(now_ms);
                t.insert(public_key.as_str(), codec::encode(&key).as_slice())?;
                Ok(key)
            })
            .await
    }

    pub async fn project(&self, id: u64) -> Result<Option<Project>, AccountsError> {
        self.db
            .read(move |txn| {
                let t = txn.open_table(PROJECTS)?;
                let p = t.get(id)?.map(|v| codec::decode(v.value())).transpose()?;
                Ok(p)
            })
            .await
    }

    pub async fn list_projects(&self) -> Result<Vec<Project>, AccountsError> {
        self.db
            .read(|txn| {
                let t = txn.open_table(PROJECTS)?;
                let mut out = Vec::new();
                for row in t.iter().map_err(StoreError::from)? {
                    let (_, v) = row.map_err(StoreError::from)?;
                    out.push(codec::decode(v.value())?);
                }
                Ok(out)
            })
            .await
    }

    pub async fn list_keys(&self, project_id: u64) -> Result<Vec<ProjectKey>, AccountsError> {
        self.db
            .read(move |txn| {
                let t = txn.open_table(PROJECT_KEYS)?;
                let mut out = Vec::new();
                for row in t.iter().map_err(StoreError::from)? {
                    let (_, v) = row.map_err(StoreError::from)?;
                    let key: ProjectKey = codec::decode(v.value())?;
                    if key.project_id == project_id {
                        out.push(key);
                    }
                }
                Ok(out)
            })
            .await
    }

    /// Looks up a DSN public key (blocking; ingest calls it from its own blocking context or
    /// caches it).
    pub fn key_info_blocking(&self, public_key: &str) -> StoreResult<Option<KeyInfo>> {
        self.db.read_blocking(|txn| {
            let t = txn.open_table(PROJECT_KEYS)?;
            let Some(v) = t.get(public_key)? else {
                return Ok(None);
            };
            let key: ProjectKey = codec::decode(v.value())?;
            Ok(Some(KeyInfo {
                project_id: key.project_id,
                revoked: key.revoked_ms.is_some(),
            }))
        })
    }

    pub async fn key_info(&self, public_key: &str) -> StoreResult<Option<KeyInfo>> {
        let this = self.clone();
        let public_key = public_key.to_string();
        crate::store::run_blocking(move || this.key_info_blocking(&public_key)).await
    }
}

/// argon2id with the crate's recommended parameters and a random salt (PHC string).
pub fn hash_password(password: &str) -> Result<String, AccountsError> {
    use argon2::PasswordHasher;
    check_password(password)?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| AccountsError::Invalid(format!("cannot hash password: {e}")))
}

/// Fewest characters (not bytes: "ééééé" is 5) a password may have, and the most.
pub const MIN_PASSWORD_CHARS: usize = 10;
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// Refuses a password that is too short counted in characters, too long to be worth hashing,
/// or made only of whitespace.
pub fn check_password(password: &str) -> Result<(), AccountsError> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_CHARS {
        return Err(AccountsError::Invalid(format!(
            "a password needs at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if n > MAX_PASSWORD_CHARS {
        return Err(AccountsError::Invalid(format!(
            "a password may have at most {MAX_PASSWORD_CHARS} characters"
        )));
    }
    if password.trim().is_empty() {
        return Err(AccountsError::Invalid(
            "a password cannot be only spaces; use words or other characters too".into(),
        ));
    }
    Ok(())
}

/// Checks `password` against a stored PHC string.
pub fn verify_password(password: &str, phc: &str) -> bool {
    use argon2::PasswordVerifier;
    let Ok(parsed) = argon2::password_hash::phc::PasswordHash::new(phc) else {
        return false;
    };
    argon2::Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

fn insert_key(txn: &WriteTransaction, project_id: u64, label: &str) -> StoreResult<ProjectKey> {
    let key = ProjectKey {
        public_key: random_hex(16),
        project_id,
        label: label.to_string(),
        created_ms: now_ms(),
        revoked_ms: None,
    };
    txn.open_table(PROJECT_KEYS)?
        .insert(key.public_key.as_str(), codec::encode(&key).as_slice())?;
    Ok(key)
}

/// `n` random bytes as lowercase hex.
pub fn random_hex(n: usize) -> String {
    let bytes: Vec<u8> = (0..n).map(|_| rand::random::<u8>()).collect();
    hex::encode(bytes)
}

impl Accounts {
    /// Registers accounts' bus consumers (none yet).
    pub fn register(&self, _state: &crate::app::AppState) {}

    /// Starts accounts' background work: the first-start setup link, and pruning of expired
    /// sessions and links.
    pub fn start(
        &self,
        _state: &crate::app::AppState,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        // Compute the dummy hash now, so the first login with an unknown email is not the
        // slow one.
        tokio::task::spawn_blocking(|| {
            session::dummy_hash();
        });
        let this = self.clone();
        let setup = tokio::spawn(async move {
            if let Err(e) = this.announce_setup_link().await {
                tracing::error!("cannot create the first-start setup link: {e}");
            }
        });
        let this = self.clone();
        let pruner = tokio::spawn(async move {
            // First prune an hour after start: expired rows are refused on read anyway.
            let hour = std::time::Duration::from_secs(3600);
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + hour, hour);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tick.tick() => {
                        if let Err(e) = this.prune_expired().await {
                            tracing::warn!("cannot prune expired sessions: {e}");
                        }
                    }
                }
            }
        });
        vec![setup, pruner]
    }

    /// With no users yet, prints a one-time link that creates the owner. A restart prints a
    /// new one; earlier ones stay valid until they expire or setup is done.
    async fn announce_setup_link(&self) -> Result<(), AccountsError> {
        if self.user_count().await? > 0 {
            return Ok(());
        }
        let token = self.create_setup_token().await?;
        tracing::warn!(
            "no users yet: open {} to create the owner account (valid for {:?}, works once)",
            self.link_url(&token),
            self.config.auth.setup_link_ttl.get()
        );
        Ok(())
    }
}
