//! Upgrades never lose data.
//!
//! `every_released_database_upgrades_without_losing_anything` starts the current `hearth`
//! binary on a copy of every database a release wrote (`tests/fixtures/upgrade/<release>/`,
//! made by that release's own binary with `make-fixture.sh`) and checks, through the API and
//! real clients, everything its manifest recorded. The other tests cover what happens around
//! a migration: the copy kept before it, a migration that fails, a database from a newer
//! release.

use std::path::{Path, PathBuf};

use hearth::store::{CURRENT_VERSION, Db, META, SCHEMA_VERSION_KEY, codec};
use sha2::{Digest, Sha256};

use crate::binary::Hearth;

const PW: &str = "a long enough password";

fn sha256_file(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

/// A database at schema version 1 (as the first development builds wrote it) holding one
/// user whose stored record is `user_bytes`.
fn database_at_v1(data: &Path, user_bytes: Vec<u8>) -> PathBuf {
    use hearth::accounts::store;
    std::fs::create_dir_all(data).unwrap();
    let path = data.join("hearth.redb");
    let db = Db::open_at_version(&path, 1).unwrap();
    assert_eq!(db.schema_version().unwrap(), 1);
    db.write_blocking(|txn| {
        txn.open_table(store::USERS)?
            .insert(1, user_bytes.as_slice())?;
        txn.open_table(store::COUNTERS)?.insert("user", 1)?;
        hearth::store::StoreResult::Ok(())
    })
    .unwrap();
    path
}

fn owner_record() -> Vec<u8> {
    codec::encode(&hearth::accounts::User {
        id: 1,
        email: "Early.Adopter@Example.com".into(),
        name: "Early".into(),
        role: hearth::accounts::Role::Owner,
        password_hash: Some(hearth::accounts::hash_password(PW).unwrap()),
        created_ms: 1,
        disabled: false,
    })
}

/// Schema version stored in the database file at `path` (read without migrating it).
fn stored_version(path: &Path) -> u64 {
    use redb::{ReadableDatabase, ReadableTable};
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_read().unwrap();
    let meta = txn.open_table(META).unwrap();
    meta.get(SCHEMA_VERSION_KEY).unwrap().unwrap().value()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_database_is_copied_aside_before_it_is_migrated() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let db = database_at_v1(&data, owner_record());
    let before = sha256_file(&db);
    // A copy left by an earlier upgrade: only the newest one is kept.
    std::fs::write(data.join("hearth.redb.v0.bak"), b"an older copy").unwrap();

    let h = Hearth::start_in(tmp.path(), "", &[]).await;
    let backup = data.join("hearth.redb.v1.bak");
    let line = h.wait_log("a copy of it as it was is at").await;
    assert!(
        line.contains(&backup.display().to_string())
            && line.contains(&format!("from schema version 1 to {CURRENT_VERSION}")),
        "the log names the versions and the copy: {line}"
    );
    assert_eq!(
        sha256_file(&backup),
        before,
        "the copy is the database exactly as it was before the migration"
    );
    assert!(
        !data.join("hearth.redb.v0.bak").exists(),
        "the older copy is removed once the new one is written"
    );
    // The migrated database works: the user signs in by email (schema v2's index).
    h.sign_in("early.adopter@example.com", PW)
        .await
        .expect("sign-in after the migration");
    assert!(h.stop().await, "graceful stop");
    assert_eq!(stored_version(&db), CURRENT_VERSION);
    assert_eq!(stored_version(&backup), 1, "the copy is still at version 1");

    // A start without a migration writes no copy.
    let h = Hearth::start_in(tmp.path(), "", &[]).await;
    assert!(h.stop().await);
    let copies: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".bak"))
        .collect();
    assert_eq!(copies, vec!["hearth.redb.v1.bak".to_string()]);
}

/// Regression: the runner committed new tables, then each step on its own, so a step that
/// failed left a half-migrated database and a bare "stored value is corrupt".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_migration_leaves_the_database_as_it_was_and_says_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // Migration 2 indexes users by email; a user record it cannot decode makes it fail.
    let db = database_at_v1(&data, b"\x01not a user record".to_vec());
    let before = sha256_file(&db);

    let out = Hearth::start_expecting_exit(tmp.path(), "").await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "hearth started anyway:\n{stderr}");
    let backup = data.join("hearth.redb.v1.bak");
    for needle in [
        "migrating the database from schema version 1 failed at step 2 (accounts: index users by email)",
        "The database was left as it was (schema version 1)",
        &format!("a copy of it is at {}", backup.display()),
        "Run the release you upgraded from again",
    ] {
        assert!(
            stderr.contains(needle),
            "the error should say {needle:?}; it said:\n{stderr}"
        );
    }
    assert_eq!(
        sha256_file(&db),
        before,
        "the database file is byte for byte what it was"
    );
    assert_eq!(sha256_file(&backup), before);
    assert_eq!(stored_version(&db), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_from_a_newer_release_is_refused_and_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let path = data.join("hearth.redb");
    let newer = CURRENT_VERSION + 1;
    {
        let db = Db::open(&path, 1 << 20).unwrap();
        db.write_blocking(|txn| {
            txn.open_table(META)?.insert(SCHEMA_VERSION_KEY, newer)?;
            hearth::store::StoreResult::Ok(())
        })
        .unwrap();
    }
    let before = sha256_file(&path);

    let out = Hearth::start_expecting_exit(tmp.path(), "").await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "hearth started anyway:\n{stderr}");
    for needle in [
        format!("its schema version is {newer}"),
        format!(
            "this hearth {} reads schema versions up to {CURRENT_VERSION}",
            env!("CARGO_PKG_VERSION")
        ),
        "Nothing was changed".to_string(),
        "Run the newer release again".to_string(),
    ] {
        assert!(
            stderr.contains(&needle),
            "the refusal should say {needle:?}; it said:\n{stderr}"
        );
    }
    assert_eq!(sha256_file(&path), before, "the database file is untouched");
    let names: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        vec!["hearth.redb".to_string()],
        "nothing else written"
    );
}
