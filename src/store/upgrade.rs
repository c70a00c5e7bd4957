//! The copy of the database an upgrade keeps: written before the first migration of a start,
//! put back if a migration fails, and the file an operator restores to roll back.
//!
//! `<db>.v<N>.bak` holds the database exactly as schema version N left it (the release before
//! the upgrade can open it). Only the newest such copy is kept: each one is as large as the
//! database, and an older one is useless once a newer upgrade went through.

use std::io;
use std::path::{Path, PathBuf};

use redb::ReadableDatabase;

use super::StoreResult;

/// The schema version of the database file at `path`, read without writing to it (`None`:
/// no database there yet). A file a crash left unrecovered is recovered first, as any start
/// recovers it.
pub(super) fn stored_version(path: &Path) -> StoreResult<Option<u64>> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
        Ok(m) if m.len() == 0 => return Ok(None),
        Ok(_) => {}
    }
    match redb::ReadOnlyDatabase::open(path) {
        Ok(db) => {
            let version = super::migrations::version_in(&db.begin_read()?)?;
            db.close()?;
            Ok(Some(version))
        }
        Err(redb::DatabaseError::RepairAborted) => {
            let db = redb::Database::create(path)?;
            let version = super::migrations::version_in(&db.begin_read()?)?;
            db.close()?;
            Ok(Some(version))
        }
        Err(e) => Err(e.into()),
    }
}

/// Where the copy of `db` at schema `version` goes: beside it, `hearth.redb.v3.bak`.
pub fn backup_path(db: &Path, version: u64) -> PathBuf {
    let name = db.file_name().unwrap_or_default().to_string_lossy();
    db.with_file_name(format!("{name}.v{version}.bak"))
}

/// Copies the (closed) database file to its backup path, durably, then removes older copies.
pub(super) fn write_backup(db: &Path, version: u64) -> io::Result<PathBuf> {
    let dest = backup_path(db, version);
    copy_durably(db, &dest)?;
    for old in backups(db)? {
        if old != dest {
            std::fs::remove_file(&old)?;
        }
    }
    Ok(dest)
}

/// Puts the backup back in place of the database (which must be closed): one rename, so the
/// database file is at every moment either what the failed migration left or the copy.
pub(super) fn restore(backup: &Path, db: &Path) -> io::Result<()> {
    let tmp = db.with_extension("restoring");
    std::fs::copy(backup, &tmp)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, db)?;
    sync_dir(db)
}

/// The backups of `db` present now (`<name>.v<N>.bak`), for messages and pruning.
pub fn backups(db: &Path) -> io::Result<Vec<PathBuf>> {
    let name = db
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let dir = match db.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let prefix = format!("{name}.v");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let file = entry.file_name().to_string_lossy().into_owned();
        let is_backup = file
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".bak"))
            .is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()));
        if is_backup {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

fn copy_durably(src: &Path, dest: &Path) -> io::Result<()> {
    let tmp = dest.with_extension("partial");
    let result = (|| {
        std::fs::copy(src, &tmp)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, dest)?;
        sync_dir(dest)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Makes a rename in `path`'s directory durable.
fn sync_dir(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => std::fs::File::open(d)?.sync_all(),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_replaces_older_ones_and_leaves_other_files() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("hearth.redb");
        std::fs::write(&db, b"v3 database").unwrap();
        for other in [
            "hearth.redb.v1.bak",
            "hearth.redb.vx.bak",
            "ingest.wal",
            "notes.bak",
        ] {
            std::fs::write(dir.path().join(other), b"x").unwrap();
        }
        let b = write_backup(&db, 3).unwrap();
        assert_eq!(b, dir.path().join("hearth.redb.v3.bak"));
        assert_eq!(std::fs::read(&b).unwrap(), b"v3 database");
        assert_eq!(backups(&db).unwrap(), vec![b.clone()]);
        for kept in ["hearth.redb.vx.bak", "ingest.wal", "notes.bak"] {
            assert!(dir.path().join(kept).exists(), "{kept} was removed");
        }
        std::fs::write(&db, b"half migrated").unwrap();
        restore(&b, &db).unwrap();
        assert_eq!(std::fs::read(&db).unwrap(), b"v3 database");
        assert!(!dir.path().join("hearth.restoring").exists());
    }
}
