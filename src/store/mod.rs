//! The one redb database: opening, schema migrations, and the blocking-call bridge.
//!
//! Each part declares its own tables in its `store.rs`; this module only knows about `meta`
//! and the ordered list of migrations. Everything that touches redb goes through
//! [`Db::read`] / [`Db::write`], which run the closure on the blocking pool so the async runtime
//! never stalls on disk I/O.

pub mod codec;
mod migrations;
pub mod space;
pub mod stats;
pub mod upgrade;

use std::path::Path;
use std::sync::{Arc, RwLock};

use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction,
};
use tokio::sync::watch;

pub use migrations::{CURRENT_VERSION, MIGRATIONS, Migration};

/// `meta`: small named values, among them the schema version.
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub const SCHEMA_VERSION_KEY: &str = "schema_version";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] redb::Error),
    #[error("the database is in use by another hearth process (is `hearth serve` running?)")]
    Locked,
    #[error(
        "the database was written by a newer Hearth: its schema version is {found}, and this hearth {} reads schema versions up to {supported}. Nothing was changed. Run the newer release again, or, to go back to this one, restore the copy of the database that upgrade left next to it (hearth.redb.v{supported}.bak or older; see \"Upgrading\" in the README)",
        env!("CARGO_PKG_VERSION")
    )]
    TooNew { found: u64, supported: u64 },
    #[error(
        "migrating the database from schema version {from} failed at step {version} ({name}): {error}"
    )]
    MigrationFailed {
        from: u64,
        version: u64,
        name: &'static str,
        error: String,
    },
    #[error(
        "{cause}. The database was left as it was (schema version {from}); a copy of it is at {}. Run the release you upgraded from again (it opens the database as before) and report this error",
        backup.display()
    )]
    Upgrade {
        from: u64,
        backup: std::path::PathBuf,
        cause: Box<StoreError>,
    },
    #[error(
        "cannot copy the database to {} before migrating it from schema version {from}: {error}. Nothing was changed; the copy needs as much free space as the database",
        path.display()
    )]
    Backup {
        from: u64,
        path: std::path::PathBuf,
        error: std::io::Error,
    },
    #[error("stored value is corrupt: {0}")]
    Codec(String),
    #[error(
        "the data directory is full: writes are refused until space is freed; retry in {} seconds",
        space::RETRY_AFTER_SECS
    )]
    DiskFull,
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self { StoreError::Db(e.into()) }
        }
    )*};
}
from_redb!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::CompactionError
);

impl From<redb::DatabaseError> for StoreError {
    fn from(e: redb::DatabaseError) -> Self {
        match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked,
            other => StoreError::Db(other.into()),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Lets `?` turn redb's error types into a part's error enum (which must be
/// `From<StoreError>`), so closures passed to [`Db::read`]/[`Db::write`] stay terse.
#[macro_export]
macro_rules! impl_from_redb {
    ($t:ty) => {
        impl From<redb::TableError> for $t {
            fn from(e: redb::TableError) -> Self {
                <$t>::from($crate::store::StoreError::from(e))
            }
        }
        impl From<redb::StorageError> for $t {
            fn from(e: redb::StorageError) -> Self {
                <$t>::from($crate::store::StoreError::from(e))
            }
        }
    };
}

/// A handle to the database, cheap to clone.
#[derive(Clone)]
pub struct Db {
    /// The open database; `None` only while it is being opened again after an I/O error
    /// (see [`space`]). Every transaction clones the `Arc` out and lets go of the lock.
    slot: Arc<RwLock<Option<Arc<Database>>>>,
    cache_bytes: usize,
    path: Arc<std::path::PathBuf>,
    /// Bumped after every write transaction commits, so the bus dispatcher sees new durable
    /// events without polling (a watch, unlike a Notify, cannot lose a wake-up).
    committed: Arc<watch::Sender<u64>>,
    space: Arc<space::Space>,
    /// Bytes the tables' pages took at the last [`Db::stats`] walk (0: not walked yet).
    used_bytes: Arc<std::sync::atomic::AtomicU64>,
}

impl Db {
    fn wrap(db: Database, path: &Path, cache_bytes: usize) -> Db {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        Db {
            slot: Arc::new(RwLock::new(Some(Arc::new(db)))),
            cache_bytes,
            path: Arc::new(path.to_path_buf()),
            committed: Arc::new(watch::channel(0).0),
            space: Arc::new(space::Space::new(dir)),
            used_bytes: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        }
    }

    /// The data directory's free-space state.
    pub fn space(&self) -> &space::Space {
        &self.space
    }

    /// The open database, or [`StoreError::DiskFull`] while it is being opened again.
    fn database(&self) -> StoreResult<Arc<Database>> {
        let slot = self.slot.read().unwrap_or_else(|p| p.into_inner());
        slot.clone().ok_or(StoreError::DiskFull)
    }

    /// `e`, or [`StoreError::DiskFull`] when it is a lack of space (noted for recovery).
    fn noted(&self, e: StoreError) -> StoreError {
        if self.space.note(&e) {
            StoreError::DiskFull
        } else {
            e
        }
    }

    /// Opens the database again after an I/O error latched it (redb refuses everything until
    /// then). Waits at most a few seconds for running transactions to let go of the old one.
    fn reopen(&self) -> StoreResult<()> {
        let mut slot = self.slot.write().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = slot.take() {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while Arc::strong_count(&old) > 1 {
                if std::time::Instant::now() > deadline {
                    *slot = Some(old);
                    return Err(StoreError::DiskFull);
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            drop(old);
        }
        let db = Database::builder()
            .set_cache_size(self.cache_bytes)
            .create(self.path.as_path())?;
        *slot = Some(Arc::new(db));
        Ok(())
    }

    /// Looks at the free space every [`space::CHECK_EVERY`] while the data directory is full
    /// and, once there is enough again, reopens the database if redb needs it and lets writes
    /// resume. Runs until `shutdown`.
    pub async fn watch_space(self, shutdown: tokio_util::sync::CancellationToken) {
        let mut tick = tokio::time::interval(space::CHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            if !self.space.is_full() {
                continue;
            }
            let Some(free) = self.space.look() else {
                continue;
            };
            if free <= self.space.min_free() {
                continue;
            }
            if self.space.needs_reopen() {
                let db = self.clone();
                match run_blocking(move || db.reopen()).await {
                    Ok(()) => tracing::warn!("database opened again after the disk was full"),
                    Err(e) => {
                        tracing::debug!("cannot open the database again yet: {e}");
                        continue;
                    }
                }
            }
            self.space.clear();
        }
    }

    /// Opens (or creates) the database at `path` and brings its schema up to date.
    ///
    /// A database from a newer release is refused before anything is written. One from an
    /// older release is first copied to `<path>.v<old>.bak` (see [`upgrade`]); if a migration
    /// then fails, the copy is put back, so the database is exactly as it was.
    pub fn open(path: &Path, cache_bytes: usize) -> StoreResult<Db> {
        Self::open_db(path, cache_bytes).map(|db| Self::wrap(db, path, cache_bytes))
    }

    fn open_db(path: &Path, cache_bytes: usize) -> StoreResult<Database> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let found = upgrade::stored_version(path)?;
        if let Some(found) = found.filter(|v| *v > CURRENT_VERSION) {
            return Err(StoreError::TooNew {
                found,
                supported: CURRENT_VERSION,
            });
        }
        let open = || Database::builder().set_cache_size(cache_bytes).create(path);
        let db = match found {
            Some(found) if found != 0 && found < CURRENT_VERSION => {
                // The file is closed and clean: the copy is exactly the database as it was.
                let backup =
                    upgrade::write_backup(path, found).map_err(|error| StoreError::Backup {
                        from: found,
                        path: upgrade::backup_path(path, found),
                        error,
                    })?;
                tracing::warn!(
                    "upgrading the database from schema version {found} to {CURRENT_VERSION}; \
                     a copy of it as it was is at {} (kept until the next upgrade)",
                    backup.display()
                );
                let db = open()?;
                if let Err(e) = migrations::run(&db, MIGRATIONS) {
                    // The failed transaction was not committed, so the database is unchanged
                    // whatever happens here; putting the copy back also undoes what redb may
                    // have written to the file meanwhile.
                    let restored = db
                        .close()
                        .map_err(StoreError::from)
                        .and_then(|()| Ok(upgrade::restore(&backup, path)?));
                    if let Err(r) = restored {
                        tracing::error!("could not put {} back: {r}", backup.display());
                    }
                    return Err(StoreError::Upgrade {
                        from: found,
                        backup,
                        cause: Box::new(e),
                    });
                }
                db
            }
            _ => {
                let db = open()?;
                migrations::run(&db, MIGRATIONS)?;
                db
            }
        };
        Ok(db)
    }

    /// Opens the database applying only migrations up to `version` (for migration tests).
    #[doc(hidden)]
    pub fn open_at_version(path: &Path, version: u64) -> StoreResult<Db> {
        let db = Database::create(path)?;
        let steps: Vec<Migration> = MIGRATIONS
            .iter()
            .copied()
            .filter(|m| m.version <= version)
            .collect();
        migrations::run(&db, &steps)?;
        Ok(Self::wrap(db, path, 1 << 20))
    }

    pub fn schema_version(&self) -> StoreResult<u64> {
        let txn = self.database()?.begin_read()?;
        migrations::version_in(&txn)
    }

    /// The raw database, for code already on a blocking thread.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open database (for code already on a blocking thread).
    pub fn raw(&self) -> StoreResult<Arc<Database>> {
        self.database()
    }

    /// Changes after each commit made through [`Db::write`] or [`Db::write_blocking`].
    pub fn commits(&self) -> watch::Receiver<u64> {
        self.committed.subscribe()
    }

    /// Runs `f` in a read transaction on the blocking pool.
    pub async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&ReadTransaction) -> Result<T, E> + Send + 'static,
    {
        let db = self.clone();
        run_blocking(move || db.read_blocking(f)).await
    }

    /// Runs `f` in a write transaction on the blocking pool and commits if it returns `Ok`.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<T, E> + Send + 'static,
    {
        let db = self.clone();
        run_blocking(move || db.write_blocking(f)).await
    }

    /// Like [`Db::write`], but the commit is not flushed to disk: it becomes durable with the
    /// next ordinary commit, and a crash before that rolls it back. Only for state that may
    /// safely roll back — bus consumer cursors and acks (a crash then redelivers: at least
    /// once) — so it neither waits for an fsync nor holds the single writer lock through one,
    /// which ingest's group commit would otherwise queue behind.
    pub async fn write_unsynced<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<T, E> + Send + 'static,
    {
        let db = self.clone();
        run_blocking(move || db.write_blocking_with(false, f)).await
    }

    pub fn read_blocking<T, E, F>(&self, f: F) -> Result<T, E>
    where
        E: From<StoreError>,
        F: FnOnce(&ReadTransaction) -> Result<T, E>,
    {
        let db = self.database()?;
        let txn = db
            .begin_read()
            .map_err(|e| self.noted(StoreError::from(e)))?;
        f(&txn)
    }

    pub fn write_blocking<T, E, F>(&self, f: F) -> Result<T, E>
    where
        E: From<StoreError>,
        F: FnOnce(&WriteTransaction) -> Result<T, E>,
    {
        self.write_blocking_with(true, f)
    }

    /// A write transaction, synced to disk at commit or not (see [`Db::write_unsynced`]).
    pub fn write_blocking_with<T, E, F>(&self, synced: bool, f: F) -> Result<T, E>
    where
        E: From<StoreError>,
        F: FnOnce(&WriteTransaction) -> Result<T, E>,
    {
        // Refused before redb sees it while the data directory is full (see `space`).
        if self.space.refuse_write(false) {
            return Err(StoreError::DiskFull.into());
        }
        let db = self.database()?;
        let mut txn = db
            .begin_write()
            .map_err(|e| self.noted(StoreError::from(e)))?;
        if !synced {
            txn.set_durability(redb::Durability::None)
                .map_err(|e| StoreError::Db(redb::Error::from(e)))?;
        }
        let out = match f(&txn) {
            Ok(out) => out,
            Err(e) => {
                // redb may have hit the disk inside `f` (spilling dirty pages) and latched the
                // error; a read tells, and gets the directory marked for recovery.
                drop(txn);
                if let Err(probe) = db.begin_read() {
                    self.noted(StoreError::from(probe));
                }
                return Err(e);
            }
        };
        txn.commit().map_err(|e| self.noted(StoreError::from(e)))?;
        self.committed.send_modify(|n| *n = n.wrapping_add(1));
        Ok(out)
    }

    /// Writes a consistent copy of the database to `dest` while the server keeps running.
    ///
    /// Holding a write transaction (without writing) keeps every other writer out while the
    /// committed file is copied, so the copy is exactly the last committed state. Readers go on.
    /// Where the bytes go (see [`stats`]); walks every table in a read transaction.
    pub async fn stats(&self) -> StoreResult<stats::DbStats> {
        let db = self.clone();
        run_blocking(move || {
            let raw = db.database()?;
            let s = stats::collect(&raw, &db.path)?;
            db.used_bytes
                .store(s.used_bytes, std::sync::atomic::Ordering::Relaxed);
            Ok(s)
        })
        .await
    }

    /// The database file's size now.
    pub fn file_bytes(&self) -> u64 {
        std::fs::metadata(self.path.as_path()).map_or(0, |m| m.len())
    }

    /// Bytes in use at the last [`Db::stats`] walk (0 before the first).
    pub fn used_bytes(&self) -> u64 {
        self.used_bytes.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub async fn backup_to(&self, dest: std::path::PathBuf) -> StoreResult<u64> {
        let db = self.clone();
        let src = (*self.path).clone();
        run_blocking(move || {
            // An empty synced commit first makes every earlier unsynced one durable, so the
            // copy holds all acknowledged data.
            let raw = db.database()?;
            raw.begin_write()?.commit()?;
            let txn = raw.begin_write()?;
            let tmp = dest.with_extension("partial");
            let n = std::fs::copy(&src, &tmp)?;
            std::fs::File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, &dest)?;
            txn.abort()?;
            Ok(n)
        })
        .await
    }
}

/// Makes the data directory private to the user Hearth runs as, also where no systemd unit
/// does (a container, a manual start, `hearth serve` from a shell with umask 022): the
/// directory and those below it 0700, files in them 0600 (two levels: `search/` holds the
/// index). Files created later inside are out of reach of other users through the directory.
pub fn make_private(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // Goes on past a file it cannot change and reports the first error at the end.
        fn walk(dir: &Path, depth: u32, first: &mut Option<std::io::Error>) {
            let mut note = |r: std::io::Result<()>| {
                if let Err(e) = r {
                    first.get_or_insert(e);
                }
            };
            note(std::fs::set_permissions(
                dir,
                std::fs::Permissions::from_mode(0o700),
            ));
            let entries = match std::fs::read_dir(dir) {
                Ok(e) => e,
                Err(e) => {
                    first.get_or_insert(e);
                    return;
                }
            };
            for entry in entries.flatten() {
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                if kind.is_dir() && depth > 0 {
                    walk(&entry.path(), depth - 1, first);
                } else if kind.is_file() {
                    let r = std::fs::set_permissions(
                        entry.path(),
                        std::fs::Permissions::from_mode(0o600),
                    );
                    if let Err(e) = r {
                        first.get_or_insert(e);
                    }
                }
            }
        }
        let mut first = None;
        walk(dir, 2, &mut first);
        if let Some(e) = first {
            return Err(e);
        }
    }
    Ok(())
}

/// Runs blocking work on tokio's blocking pool, re-raising a panic instead of swallowing it.
pub async fn run_blocking<T, F>(f: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("blocking task cancelled: {e}"),
    }
}

/// Takes the next value (1, 2, ...) of counter `name` in a part's counters table.
pub fn next_counter(
    txn: &WriteTransaction,
    table: TableDefinition<&str, u64>,
    name: &str,
) -> StoreResult<u64> {
    let mut t = txn.open_table(table)?;
    let next = t.get(name)?.map(|v| v.value()).unwrap_or(0) + 1;
    t.insert(name, next)?;
    Ok(next)
}

/// Milliseconds since the Unix epoch, the time unit of every stored timestamp.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
