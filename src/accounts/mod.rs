//! Accounts: users and roles, sessions and API tokens, projects and their DSN keys.

pub mod api;
pub mod model;
pub mod store;

use axum::http::request::Parts;
use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::http::auth::{AuthVia, Authed, LocalSocket};
use crate::http::error::ApiError;
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
}

crate::impl_from_redb!(AccountsError);

impl From<AccountsError> for ApiError {
    fn from(e: AccountsError) -> Self {
        match e {
            AccountsError::Store(s) => ApiError::internal(s),
            AccountsError::NotFound(what) => ApiError::not_found(what),
            AccountsError::Invalid(m) => ApiError::bad_request(m),
        }
    }
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
}

impl Accounts {
    pub fn new(db: Db, config: std::sync::Arc<Config>) -> Self {
        Accounts { db, config }
    }

    /// Identifies the caller of an admin route, or says why not.
    pub async fn authenticate(&self, parts: &Parts) -> Result<Authed, ApiError> {
        if parts.extensions.get::<LocalSocket>().is_some() {
            return Ok(Authed {
                user_id: 0,
                email: "local-admin-socket".into(),
                role: Role::Owner,
                via: AuthVia::LocalSocket,
            });
        }
        let _ = &self.config;
        Err(ApiError::missing_auth())
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
                    grouping_version: 1,
                };
                txn.open_table(PROJECTS)?
                    .insert(id, codec::encode(&project).as_slice())?;
                let key = insert_key(txn, id, "Default")?;
                Ok::<_, AccountsError>((project, key))
            })
            .await
    }

    pub async fn create_key(&self, project_id: u64, label: &str) -> Result<ProjectKey, AccountsError> {
        let label = label.to_string();
        self.db
            .write(move |txn| {
                if txn.open_table(PROJECTS)?.get(project_id)?.is_none() {
                    return Err(AccountsError::NotFound("project"));
                }
                Ok(insert_key(txn, project_id, &label)?)
            })
            .await
    }

    pub async fn revoke_key(&self, project_id: u64, public_key: &str) -> Result<ProjectKey, AccountsError> {
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

    /// Starts accounts' background work: the first-start setup link.
    pub fn start(
        &self,
        _state: &crate::app::AppState,
        _shutdown: tokio_util::sync::CancellationToken,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        Vec::new()
    }
}
