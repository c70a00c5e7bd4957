//! Users, roles, projects and DSN keys.

use serde::{Deserialize, Serialize};

/// Roles are ordered: each includes every permission of the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Agent,
    Admin,
    Owner,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Agent, Role::Admin, Role::Owner];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Agent => "agent",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role {s:?}; use owner, admin, agent or viewer"))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Project {
    pub id: u64,
    pub name: String,
    pub created_ms: i64,
    /// The grouping algorithm this project's issues were grouped with; bumped only on purpose
    /// so a new release never silently splits existing issues.
    pub grouping_version: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProjectKey {
    /// 32 lowercase hex characters; the DSN's user part.
    pub public_key: String,
    pub project_id: u64,
    pub label: String,
    pub created_ms: i64,
    pub revoked_ms: Option<i64>,
}

impl ProjectKey {
    pub fn dsn(&self, base_url: &str) -> String {
        let (scheme, rest) = base_url.split_once("://").unwrap_or(("http", base_url));
        format!("{scheme}://{}@{rest}/{}", self.public_key, self.project_id)
    }
}
