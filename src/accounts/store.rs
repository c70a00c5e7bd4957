//! Accounts tables.

use redb::{ReadableTable, TableDefinition, WriteTransaction};

use crate::store::StoreResult;

/// user id → codec(User)
pub const USERS: TableDefinition<u64, &[u8]> = TableDefinition::new("accounts_users");
/// lowercase email → user id (schema v2)
pub const USERS_BY_EMAIL: TableDefinition<&str, u64> =
    TableDefinition::new("accounts_users_by_email");
/// project id → codec(Project)
pub const PROJECTS: TableDefinition<u64, &[u8]> = TableDefinition::new("accounts_projects");
/// public key → codec(ProjectKey)
pub const PROJECT_KEYS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("accounts_project_keys");
/// sha256(token) hex → codec(ApiToken)
pub const API_TOKENS: TableDefinition<&str, &[u8]> = TableDefinition::new("accounts_api_tokens");
/// sha256(session secret) hex → codec(Session)
pub const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("accounts_sessions");
/// sha256(link token) hex → codec(LinkToken): first-start setup and set-password links
pub const LINK_TOKENS: TableDefinition<&str, &[u8]> = TableDefinition::new("accounts_link_tokens");
/// counter name → last issued id
pub const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("accounts_counters");

pub fn ensure_tables(txn: &WriteTransaction) -> StoreResult<()> {
    txn.open_table(USERS)?;
    txn.open_table(USERS_BY_EMAIL)?;
    txn.open_table(API_TOKENS)?;
    txn.open_table(PROJECTS)?;
    txn.open_table(PROJECT_KEYS)?;
    txn.open_table(COUNTERS)?;
    txn.open_table(SESSIONS)?;
    txn.open_table(LINK_TOKENS)?;
    Ok(())
}

/// Issues the next id of the named counter (ids start at 1).
pub fn next_id(txn: &WriteTransaction, counter: &str) -> StoreResult<u64> {
    crate::store::next_counter(txn, COUNTERS, counter)
}

/// Schema v2: users are looked up by email at every login, so index them.
pub fn migrate_v2_email_index(txn: &WriteTransaction) -> StoreResult<()> {
    let users = txn.open_table(USERS)?;
    let mut by_email = txn.open_table(USERS_BY_EMAIL)?;
    for row in users.iter()? {
        let (id, bytes) = row?;
        let user: super::User = crate::store::codec::decode(bytes.value())?;
        by_email.insert(user.email.to_ascii_lowercase().as_str(), id.value())?;
    }
    Ok(())
}
