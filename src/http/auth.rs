//! Auth extractors: the role a handler needs is visible in its signature,
//! e.g. `async fn purge(Admin(user): Admin, ...)`.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::error::ApiError;
use crate::accounts::model::Role;
use crate::app::AppState;

/// How the caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthVia {
    Session,
    Token,
    /// The local admin socket in the data directory (file permissions are the credential).
    LocalSocket,
}

/// An authenticated caller.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Authed {
    pub user_id: u64,
    pub email: String,
    pub role: Role,
    pub via: AuthVia,
}

/// Marker inserted into requests that arrived over the local admin socket.
#[derive(Debug, Clone, Copy)]
pub struct LocalSocket;

async fn require(parts: &mut Parts, state: &AppState, needed: Role) -> Result<Authed, ApiError> {
    if let Some(a) = parts.extensions.get::<Authed>() {
        return check(a.clone(), needed);
    }
    let authed = state.accounts.authenticate(parts).await?;
    parts.extensions.insert(authed.clone());
    check(authed, needed)
}

fn check(a: Authed, needed: Role) -> Result<Authed, ApiError> {
    if a.role >= needed {
        Ok(a)
    } else {
        Err(ApiError::forbidden(needed.as_str()))
    }
}

macro_rules! role_extractor {
    ($(#[$doc:meta])* $name:ident, $role:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name(pub Authed);

        impl FromRequestParts<AppState> for $name {
            type Rejection = ApiError;
            async fn from_request_parts(
                parts: &mut Parts,
                state: &AppState,
            ) -> Result<Self, Self::Rejection> {
                require(parts, state, $role).await.map($name)
            }
        }
    };
}

role_extractor!(
    /// Any signed-in user (viewer or above): read-only access.
    Viewer,
    Role::Viewer
);
role_extractor!(
    /// Agent or above: may work issues, conversations and tickets.
    Agent,
    Role::Agent
);
role_extractor!(
    /// Admin or above: projects, keys, alert rules, mail, the bus.
    Admin,
    Role::Admin
);
role_extractor!(
    /// Owner only: users and roles, backups.
    Owner,
    Role::Owner
);
