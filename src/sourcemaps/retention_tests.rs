//! Retention (`[sourcemaps] retention`, `chunk_ttl`): [`SourceMaps::prune`] driven with an
//! explicit `now`; bundle and chunk ages are set by back-dating their stored timestamps, so
//! nothing waits on the wall clock.

use std::io::Write;

use super::*;

const DAY_MS: i64 = 24 * 3600 * 1000;
const PROJECT: u64 = 1;
const OLD_ID: &str = "11111111-1111-4111-8111-111111111111";
const YOUNG_ID: &str = "22222222-2222-4222-8222-222222222222";
/// The same map in both bundles: stored once, with two references.
const SHARED_MAP: &[u8] = br#"{"version":3,"sources":["a.js"],"names":[],"mappings":"AAAA"}"#;
const OLD_JS: &[u8] = b"old()";
const YOUNG_JS: &[u8] = b"young()";

struct Fixture {
    sm: SourceMaps,
    db: Db,
    _dir: tempfile::TempDir,
}

fn fixture(retention: HumanDuration, chunk_ttl: HumanDuration) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.storage.data_dir = dir.path().to_path_buf();
    config.sourcemaps.retention = retention;
    config.sourcemaps.chunk_ttl = chunk_ttl;
    let config = Arc::new(config);
    let db = Db::open(&config.db_path(), 1 << 20).unwrap();
    Fixture {
        sm: SourceMaps::new(db.clone(), config),
        db,
        _dir: dir,
    }
}

/// A bundle as sentry-cli builds it: a minified file and its map, both with `debug_id`.
fn bundle_zip(release: &str, debug_id: &str, name: &str, js: &[u8]) -> Vec<u8> {
    let manifest = serde_json::json!({
        "release": release,
        "files": {
            format!("files/_/_/{name}"): {
                "type": "minified_source", "url": format!("~/{name}"),
                "headers": {"debug-id": debug_id, "Sourcemap": format!("{name}.map")}
            },
            format!("files/_/_/{name}.map"): {
                "type": "source_map", "url": format!("~/{name}.map"),
                "headers": {"debug-id": debug_id}
            }
        }
    });
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default();
    for (path, data) in [
        (
            "manifest.json".to_string(),
            manifest.to_string().into_bytes(),
        ),
        (format!("files/_/_/{name}"), js.to_vec()),
        (format!("files/_/_/{name}.map"), SHARED_MAP.to_vec()),
    ] {
        w.start_file(path, opts).unwrap();
        w.write_all(&data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// Uploads and assembles a bundle the way the API does; returns its id.
async fn upload(sm: &SourceMaps, zip: Vec<u8>) -> u64 {
    let sum = sha1_hex(&zip);
    sm.put_chunks(vec![(sum.clone(), zip)]).await.unwrap();
    let state = sm
        .assemble(vec![PROJECT], sum.clone(), vec![sum.clone()], None, None)
        .await
        .unwrap();
    assert_eq!(state.state, "ok", "{:?}", state.detail);
    let list = sm.list(PROJECT).await.unwrap();
    list.iter().find(|b| b.checksum == sum).unwrap().id
}

/// Sets a stored bundle's creation time.
fn backdate_bundle(db: &Db, id: u64, created_ms: i64) {
    db.write_blocking(|txn| {
        let mut t = txn.open_table(store::BUNDLES)?;
        let mut b: Bundle = store::decode(t.get((PROJECT, id))?.unwrap().value())?;
        b.created_ms = created_ms;
        t.insert((PROJECT, id), store::encode(&b).as_slice())?;
        Ok::<_, SourceMapsError>(())
    })
    .unwrap();
}

/// Sets a stored chunk's receive time.
fn backdate_chunk(db: &Db, sum: &str, received_ms: i64) {
    db.write_blocking(|txn| {
        let mut t = txn.open_table(store::CHUNKS)?;
        let z = t.get(sum)?.unwrap().value().1.to_vec();
        t.insert(sum, (received_ms, z.as_slice()))?;
        Ok::<_, SourceMapsError>(())
    })
    .unwrap();
}

fn has_chunk(db: &Db, sum: &str) -> bool {
    db.read_blocking(|txn| {
        Ok::<_, SourceMapsError>(txn.open_table(store::CHUNKS)?.get(sum)?.is_some())
    })
    .unwrap()
}

/// (content stored, reference count) of a file.
fn blob(db: &Db, content: &[u8]) -> (bool, u64) {
    let sum = sha1_hex(content);
    db.read_blocking(|txn| {
        let stored = txn.open_table(store::BLOBS)?.get(sum.as_str())?.is_some();
        let refs = txn
            .open_table(store::BLOB_REFS)?
            .get(sum.as_str())?
            .map(|v| v.value())
            .unwrap_or(0);
        Ok::<_, SourceMapsError>((stored, refs))
    })
    .unwrap()
}

fn found_sha1(f: Option<symbolicate::Found>) -> Option<String> {
    f.map(|f| f.sha1)
}

#[tokio::test]
async fn prune_deletes_bundles_past_retention_and_stale_chunks() {
    let f = fixture(
        HumanDuration::secs(30 * 24 * 3600),
        HumanDuration::secs(3600),
    );
    let now = now_ms();
    let old = upload(&f.sm, bundle_zip("1.0", OLD_ID, "old.js", OLD_JS)).await;
    let young = upload(&f.sm, bundle_zip("2.0", YOUNG_ID, "young.js", YOUNG_JS)).await;
    backdate_bundle(&f.db, old, now - 31 * DAY_MS);
    backdate_bundle(&f.db, young, now - 29 * DAY_MS);
    assert_eq!(blob(&f.db, SHARED_MAP), (true, 2));
    assert_eq!(blob(&f.db, OLD_JS), (true, 1));

    // Chunks that no assembly used: one past chunk_ttl, one within it.
    let (stale, fresh) = (b"stale chunk".to_vec(), b"fresh chunk".to_vec());
    let (stale_sum, fresh_sum) = (sha1_hex(&stale), sha1_hex(&fresh));
    f.sm.put_chunks(vec![(stale_sum.clone(), stale), (fresh_sum.clone(), fresh)])
        .await
        .unwrap();
    backdate_chunk(&f.db, &stale_sum, now - 3600 * 1000 - 1);
    backdate_chunk(&f.db, &fresh_sum, now - 60 * 1000);

    // Lookups match before (and are cached, which pruning must invalidate).
    let old_js = Some(sha1_hex(OLD_JS));
    let map = Some(sha1_hex(SHARED_MAP));
    assert_eq!(
        found_sha1(f.sm.by_debug_id(PROJECT, OLD_ID, FileKind::MinifiedSource)),
        old_js
    );
    assert_eq!(
        found_sha1(f.sm.by_debug_id(PROJECT, OLD_ID, FileKind::SourceMap)),
        map
    );
    assert_eq!(found_sha1(f.sm.by_url(PROJECT, "1.0", "~/old.js")), old_js);

    assert_eq!(f.sm.prune(now).await.unwrap(), (1, 1));

    // The old bundle is gone, with its index entries and the file only it held.
    let ids: Vec<u64> =
        f.sm.list(PROJECT)
            .await
            .unwrap()
            .iter()
            .map(|b| b.id)
            .collect();
    assert_eq!(ids, vec![young]);
    assert_eq!(blob(&f.db, OLD_JS), (false, 0));
    assert!(
        f.sm.by_debug_id(PROJECT, OLD_ID, FileKind::MinifiedSource)
            .is_none()
    );
    assert!(
        f.sm.by_debug_id(PROJECT, OLD_ID, FileKind::SourceMap)
            .is_none()
    );
    assert!(f.sm.by_url(PROJECT, "1.0", "~/old.js").is_none());
    assert!(f.sm.by_url(PROJECT, "1.0", "~/old.js.map").is_none());
    // Its checksum is forgotten: uploading it again stores it again.
    let old_sum = sha1_hex(&bundle_zip("1.0", OLD_ID, "old.js", OLD_JS));
    let known =
        f.db.read_blocking(|txn| {
            let t = txn.open_table(store::BUNDLE_SUMS)?;
            Ok::<_, SourceMapsError>(t.get((PROJECT, old_sum.as_str()))?.is_some())
        })
        .unwrap();
    assert!(!known);

    // The file shared with the younger bundle survives, with one reference left.
    assert_eq!(blob(&f.db, SHARED_MAP), (true, 1));
    assert_eq!(blob(&f.db, YOUNG_JS), (true, 1));
    assert_eq!(
        found_sha1(f.sm.by_debug_id(PROJECT, YOUNG_ID, FileKind::SourceMap)),
        map
    );
    assert_eq!(
        found_sha1(f.sm.by_url(PROJECT, "2.0", "~/young.js")),
        Some(sha1_hex(YOUNG_JS))
    );
    assert!(
        f.sm.load(&sha1_hex(SHARED_MAP), FileKind::SourceMap)
            .is_ok()
    );

    // Chunks: the stale one is dropped, the fresh one kept.
    assert!(!has_chunk(&f.db, &stale_sum));
    assert!(has_chunk(&f.db, &fresh_sum));

    // Nothing else is old enough yet; once the young bundle passes the retention it goes too,
    // and the shared file with it.
    assert_eq!(f.sm.prune(now).await.unwrap(), (0, 0));
    assert_eq!(f.sm.prune(now + 2 * DAY_MS).await.unwrap(), (1, 1));
    assert!(f.sm.list(PROJECT).await.unwrap().is_empty());
    assert_eq!(blob(&f.db, SHARED_MAP), (false, 0));
    assert_eq!(blob(&f.db, YOUNG_JS), (false, 0));
    assert!(
        f.sm.by_debug_id(PROJECT, YOUNG_ID, FileKind::SourceMap)
            .is_none()
    );
    assert!(!has_chunk(&f.db, &fresh_sum));
}

#[tokio::test]
async fn retention_zero_keeps_bundles() {
    let f = fixture(HumanDuration::secs(0), HumanDuration::secs(3600));
    let now = now_ms();
    let id = upload(&f.sm, bundle_zip("1.0", OLD_ID, "old.js", OLD_JS)).await;
    backdate_bundle(&f.db, id, 0);
    let stale = b"stale chunk".to_vec();
    let stale_sum = sha1_hex(&stale);
    f.sm.put_chunks(vec![(stale_sum.clone(), stale)])
        .await
        .unwrap();
    backdate_chunk(&f.db, &stale_sum, 0);

    // Far in the future: bundles stay, while unused chunks still expire.
    assert_eq!(f.sm.prune(now + 10_000 * DAY_MS).await.unwrap(), (0, 1));
    let ids: Vec<u64> =
        f.sm.list(PROJECT)
            .await
            .unwrap()
            .iter()
            .map(|b| b.id)
            .collect();
    assert_eq!(ids, vec![id]);
    assert_eq!(blob(&f.db, OLD_JS), (true, 1));
    assert_eq!(
        found_sha1(f.sm.by_debug_id(PROJECT, OLD_ID, FileKind::MinifiedSource)),
        Some(sha1_hex(OLD_JS))
    );
    assert_eq!(
        found_sha1(f.sm.by_url(PROJECT, "1.0", "~/old.js")),
        Some(sha1_hex(OLD_JS))
    );
    assert!(!has_chunk(&f.db, &stale_sum));
}
