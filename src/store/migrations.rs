//! Ordered schema migrations.
//!
//! Tables are created by each part's `ensure_tables` on every start (opening a redb table in a
//! write transaction creates it). Migrations are for changes to data already stored: each one
//! runs once, in order. All the steps a start needs run inside one write transaction together
//! with the version bump, so a failing step or a crash mid-migration leaves the old version
//! intact. Before migrating, [`super::Db::open`] copies the database aside (`upgrade.rs`).

use redb::{Database, ReadTransaction, ReadableTable, WriteTransaction};

use super::{META, SCHEMA_VERSION_KEY, StoreResult};

#[derive(Clone, Copy)]
pub struct Migration {
    pub version: u64,
    pub name: &'static str,
    pub run: fn(&WriteTransaction) -> StoreResult<()>,
}

/// Every part's table set, created (if missing) at each start.
const TABLE_SETS: &[fn(&WriteTransaction) -> StoreResult<()>] = &[
    crate::bus::store::ensure_tables,
    crate::accounts::store::ensure_tables,
    crate::issues::store::ensure_tables,
    crate::issues::grouping_settings::ensure_tables,
    crate::ingest::store::ensure_tables,
    crate::ingest::release_users::ensure_tables,
    crate::mail::store::ensure_tables,
    crate::alerts::store::ensure_tables,
    crate::chat::store::ensure_tables,
    // issue 19 (bandit): suggestion model, decisions, reward joins
    crate::chat::suggest::ensure_tables,
    crate::uptime::store::ensure_tables,
    crate::sourcemaps::store::ensure_tables,
];

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial schema",
        run: |_| Ok(()),
    },
    Migration {
        version: 2,
        name: "accounts: index users by email",
        run: crate::accounts::store::migrate_v2_email_index,
    },
    // Nothing to convert (older rows stay readable), but events stored from now on may be
    // compressed against their issue's reference event, which older releases cannot read: the
    // version bump makes them refuse the database instead of failing on those events.
    Migration {
        version: 3,
        name: "issues: events compressed against issue references",
        run: |_| Ok(()),
    },
    // Nothing to convert, but after a crash the newest acknowledged events may be only in the
    // ingest log, which older releases do not read: they would open the database without them.
    Migration {
        version: 4,
        name: "ingest: batches between synced commits live in the ingest log",
        run: |_| Ok(()),
    },
    // Nothing to convert (projects keep their grouping version), but projects may now be on
    // grouping version 2 with rules in their own table, which older releases would group
    // with version 1's algorithm and split their issues.
    Migration {
        version: 5,
        name: "issues: grouping version 2 and per-project grouping rules",
        run: |_| Ok(()),
    },
    // Chat's tables are new (created above); this step adds the six default canned responses.
    // The bump keeps an older release from opening a database whose conversations it would
    // not know about.
    Migration {
        version: 6,
        name: "chat: conversations, sites and default canned responses",
        run: crate::chat::store::migrate_default_canned,
    },
    // Uptime monitoring: new tables only (created by `ensure_tables`), nothing to convert. The
    // bump makes older releases refuse a database whose monitors they would silently ignore.
    Migration {
        version: 7,
        name: "uptime: monitors, results, rollups and the due-time queue",
        run: |_| Ok(()),
    },
    // New tables only (created by `ensure_tables`): source-map artifacts, the reply-suggestion
    // model and its logged decisions, tickets opened from Sentry feedback. The bump makes older
    // releases refuse a database whose source maps and learning they would silently ignore.
    Migration {
        version: 8,
        name: "source maps, reply suggestions and feedback tickets",
        run: |_| Ok(()),
    },
    // New tables only (created by `ensure_tables`): users per release for crash-free users, the
    // reply-suggestion reward reminders. Nothing to convert, but the ingest log may now hold
    // session-user records and alert rules may have the `disk_budget` trigger, which older
    // releases cannot read: the bump makes them refuse the database instead.
    Migration {
        version: 9,
        name: "release users, suggestion reward reminders, disk budget alerts",
        run: |_| Ok(()),
    },
];

pub const CURRENT_VERSION: u64 = 9;

pub(super) fn version_in(txn: &ReadTransaction) -> StoreResult<u64> {
    match txn.open_table(META) {
        Ok(t) => Ok(t.get(SCHEMA_VERSION_KEY)?.map(|v| v.value()).unwrap_or(0)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
        Err(e) => Err(e.into()),
    }
}

/// Creates missing tables and runs every step newer than the stored version, all in one write
/// transaction with the version bump: a step that fails (or a crash) leaves the database as
/// it was, at its old version, never half migrated.
pub(super) fn run(db: &Database, steps: &[Migration]) -> StoreResult<()> {
    let txn = db.begin_write()?;
    let found = {
        let meta = txn.open_table(META)?;
        meta.get(SCHEMA_VERSION_KEY)?
            .map(|v| v.value())
            .unwrap_or(0)
    };
    if found > CURRENT_VERSION {
        return Err(super::StoreError::TooNew {
            found,
            supported: CURRENT_VERSION,
        });
    }
    for ensure in TABLE_SETS {
        ensure(&txn)?;
    }
    for m in steps.iter().filter(|m| m.version > found) {
        tracing::info!(version = m.version, name = m.name, "running migration");
        (m.run)(&txn).map_err(|e| super::StoreError::MigrationFailed {
            from: found,
            version: m.version,
            name: m.name,
            error: e.to_string(),
        })?;
        txn.open_table(META)?
            .insert(SCHEMA_VERSION_KEY, m.version)?;
    }
    txn.commit()?;
    Ok(())
}
