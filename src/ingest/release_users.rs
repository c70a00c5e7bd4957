//! dash (issue 16): crash-free users per release. A session names its user by `did` (or by
//! `attrs.ip_address = "{{auto}}"`, the client's address); each user counts once per release,
//! in the worst state any of its sessions there reached, as Sentry's release health counts
//! users. Crashed and abnormal sessions make a user not crash-free, as they make a session not
//! crash-free in [`super::store::ReleaseHealth`].
//!
//! New tables only (created on every start by [`ensure_tables`]).

use redb::{ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};

use super::IngestError;
use super::store::{SESSION_STATES, SessionState};
use crate::store::{StoreResult, codec};

/// (project id, release, user) → the worst session state the user reached in the release.
pub const RELEASE_USERS: TableDefinition<(u64, &str, &str), u64> =
    TableDefinition::new("ingest_release_users");
/// (project id, release, "users" | "crashed") → how many users.
pub const RELEASE_USER_COUNTS: TableDefinition<(u64, &str, &str), u64> =
    TableDefinition::new("ingest_release_user_counts");

pub fn ensure_tables(txn: &WriteTransaction) -> StoreResult<()> {
    txn.open_table(RELEASE_USERS)?;
    txn.open_table(RELEASE_USER_COUNTS)?;
    Ok(())
}

/// Abnormal (2) or crashed (3).
fn crashed(state: u64) -> bool {
    state >= 2
}

/// A session's user, after the session's own update was counted in the same transaction: the
/// session's release and worst state are the ones stored for it (`sid`), else the update's own.
pub fn commit(
    txn: &WriteTransaction,
    project_id: u64,
    sid: &str,
    release: &str,
    state: u8,
    user: &str,
) -> Result<(), IngestError> {
    let stored: Option<SessionState> = if sid.is_empty() {
        None
    } else {
        let states = txn.open_table(SESSION_STATES)?;
        let row = states.get((project_id, sid))?;
        row.map(|v| codec::decode(v.value())).transpose()?
    };
    let (release, worst) = match &stored {
        Some(s) => (s.release.as_str(), u64::from(s.worst.max(state))),
        None => (release, u64::from(state)),
    };
    let mut users = txn.open_table(RELEASE_USERS)?;
    let old = users.get((project_id, release, user))?.map(|v| v.value());
    let mut counts = txn.open_table(RELEASE_USER_COUNTS)?;
    let mut add = |kind: &str| -> Result<(), IngestError> {
        let n = counts
            .get((project_id, release, kind))?
            .map_or(0, |v| v.value());
        counts.insert((project_id, release, kind), n + 1)?;
        Ok(())
    };
    match old {
        None => {
            add("users")?;
            if crashed(worst) {
                add("crashed")?;
            }
        }
        Some(o) if worst > o => {
            if crashed(worst) && !crashed(o) {
                add("crashed")?;
            }
        }
        Some(_) => return Ok(()),
    }
    users.insert((project_id, release, user), worst)?;
    Ok(())
}

/// (users, users with a crashed or abnormal session) of one release.
pub fn counts(
    txn: &ReadTransaction,
    project_id: u64,
    release: &str,
) -> Result<(u64, u64), IngestError> {
    let t = txn.open_table(RELEASE_USER_COUNTS)?;
    let get = |kind: &str| -> Result<u64, IngestError> {
        Ok(t.get((project_id, release, kind))?.map_or(0, |v| v.value()))
    };
    Ok((get("users")?, get("crashed")?))
}

#[cfg(test)]
mod tests {
    use super::super::Work;

    /// The ingest log writes work with postcard, which numbers enum variants: the new variant
    /// reads back, and the variants an older log holds keep their numbers.
    #[test]
    fn session_users_go_through_the_ingest_log_and_old_variants_keep_their_numbers() {
        let w = Work::SessionUser {
            project_id: 3,
            sid: "s1".into(),
            release: "web@1".into(),
            state: 3,
            user: "ip:203.0.113.7".into(),
        };
        let bytes = postcard::to_stdvec(&w).unwrap();
        match postcard::from_bytes::<Work>(&bytes).unwrap() {
            Work::SessionUser { user, state, .. } => {
                assert_eq!((user.as_str(), state), ("ip:203.0.113.7", 3));
            }
            other => panic!("{other:?}"),
        }
        let update = Work::SessionUpdate {
            project_id: 3,
            sid: "s1".into(),
            release: "web@1".into(),
            environment: None,
            init: true,
            state: 0,
            exited: false,
        };
        assert_eq!(postcard::to_stdvec(&update).unwrap()[0], 6);
        assert_eq!(bytes[0], 8);
    }
}
