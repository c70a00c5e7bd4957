//! Source map tables. Files are stored once per content checksum (zstd, with a reference
//! count), bundles per project, and two indexes point frames at files: by debug id and by
//! release + URL (the legacy, release-based flow).

use redb::{ReadableTable, TableDefinition, WriteTransaction};

use crate::store::{StoreError, StoreResult};

/// sha1 hex of an uploaded chunk → (received ms, zstd(chunk)); removed when assembled or
/// after `[sourcemaps] chunk_ttl`.
pub const CHUNKS: TableDefinition<&str, (i64, &[u8])> = TableDefinition::new("sourcemaps_chunks");
/// sha1 hex of a file's content → (uncompressed length, zstd(content))
pub const BLOBS: TableDefinition<&str, (u64, &[u8])> = TableDefinition::new("sourcemaps_blobs");
/// sha1 hex of a file's content → bundles holding it
pub const BLOB_REFS: TableDefinition<&str, u64> = TableDefinition::new("sourcemaps_blob_refs");
/// (project id, bundle id) → json(Bundle) behind a version byte
pub const BUNDLES: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("sourcemaps_bundles");
/// (project id, bundle checksum) → bundle id: an upload of the same bundle is stored once.
pub const BUNDLE_SUMS: TableDefinition<(u64, &str), u64> =
    TableDefinition::new("sourcemaps_bundle_sums");
/// (project id, debug id, file type) → "bundle id:file sha1"
pub const DEBUG_IDS: TableDefinition<(u64, &str, &str), &str> =
    TableDefinition::new("sourcemaps_debug_ids");
/// (project id, release, url "~/path") → "bundle id:file sha1:file type:Sourcemap header"
pub const RELEASE_FILES: TableDefinition<(u64, &str, &str), &str> =
    TableDefinition::new("sourcemaps_release_files");
/// counter name → last issued id
pub const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("sourcemaps_counters");

pub fn ensure_tables(txn: &WriteTransaction) -> StoreResult<()> {
    txn.open_table(CHUNKS)?;
    txn.open_table(BLOBS)?;
    txn.open_table(BLOB_REFS)?;
    txn.open_table(BUNDLES)?;
    txn.open_table(BUNDLE_SUMS)?;
    txn.open_table(DEBUG_IDS)?;
    txn.open_table(RELEASE_FILES)?;
    txn.open_table(COUNTERS)?;
    Ok(())
}

const V1: u8 = 1;

pub fn encode<T: serde::Serialize>(v: &T) -> Vec<u8> {
    let mut out = vec![V1];
    serde_json::to_writer(&mut out, v).expect("JSON into Vec");
    out
}

pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&V1, rest)) => {
            serde_json::from_slice(rest).map_err(|e| StoreError::Codec(e.to_string()))
        }
        Some((v, _)) => Err(StoreError::Codec(format!("unknown value version {v}"))),
        None => Err(StoreError::Codec("empty value".into())),
    }
}

pub fn next_id(txn: &WriteTransaction, counter: &str) -> StoreResult<u64> {
    crate::store::next_counter(txn, COUNTERS, counter)
}

/// Stores `content` under `sha1` (once) and counts one more reference to it.
pub fn put_blob(txn: &WriteTransaction, sha1: &str, content: &[u8]) -> StoreResult<()> {
    let mut refs = txn.open_table(BLOB_REFS)?;
    let n = refs.get(sha1)?.map(|v| v.value()).unwrap_or(0);
    if n == 0 {
        let z = zstd::bulk::compress(content, 3).map_err(StoreError::Io)?;
        txn.open_table(BLOBS)?
            .insert(sha1, (content.len() as u64, z.as_slice()))?;
    }
    refs.insert(sha1, n + 1)?;
    Ok(())
}

/// Drops one reference to `sha1`, and the content with the last one.
pub fn release_blob(txn: &WriteTransaction, sha1: &str) -> StoreResult<()> {
    let mut refs = txn.open_table(BLOB_REFS)?;
    let n = refs.get(sha1)?.map(|v| v.value()).unwrap_or(0);
    if n <= 1 {
        refs.remove(sha1)?;
        txn.open_table(BLOBS)?.remove(sha1)?;
    } else {
        refs.insert(sha1, n - 1)?;
    }
    Ok(())
}

/// The content stored under `sha1`, at most `cap` bytes long.
pub fn read_blob<T: ReadableTable<&'static str, (u64, &'static [u8])>>(
    blobs: &T,
    sha1: &str,
    cap: usize,
) -> Result<Option<Vec<u8>>, StoreError> {
    let Some(v) = blobs.get(sha1)? else {
        return Ok(None);
    };
    let (len, z) = v.value();
    let len = (len as usize).min(cap);
    zstd::bulk::decompress(z, len)
        .map(Some)
        .map_err(|e| StoreError::Codec(format!("source map file {sha1}: {e}")))
}
