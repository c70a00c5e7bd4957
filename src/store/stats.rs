//! Where the database's bytes go: per-table stored, allocated and fragmented bytes (from redb's
//! own B-tree walk), the file size, and the events stored per project. Read-only: it runs in a
//! read transaction, so ingest goes on while it walks (about a second per GB).

use std::collections::BTreeMap;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata};
use serde::Serialize;

use super::{StoreError, StoreResult};

/// One table's share of the file.
#[derive(Debug, Clone, Serialize)]
pub struct TableStats {
    pub name: String,
    pub rows: u64,
    /// Bytes of keys and values as inserted.
    pub stored_bytes: u64,
    /// Pages the table's B-tree holds, in bytes (leaves and branches).
    pub allocated_bytes: u64,
    /// Branch keys and page headers.
    pub metadata_bytes: u64,
    /// Unused room inside the table's pages.
    pub fragmented_bytes: u64,
    pub leaf_pages: u64,
    pub branch_pages: u64,
    pub tree_height: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct DbStats {
    pub file_bytes: u64,
    /// Pages reachable from the tables (what a compaction would keep, roughly).
    pub used_bytes: u64,
    /// `file_bytes - used_bytes`: free pages and redb's own bookkeeping.
    pub free_bytes: u64,
    pub page_size: u64,
    pub events: u64,
    /// Database file bytes per stored event (0 without events).
    pub file_bytes_per_event: u64,
    pub used_bytes_per_event: u64,
    /// Largest first.
    pub tables: Vec<TableStats>,
    /// project id → events stored.
    pub events_per_project: BTreeMap<u64, u64>,
}

/// redb's page size (it is fixed at 4 KiB for files it creates).
const PAGE_SIZE: u64 = 4096;

/// Walks every table of `db`; `path` is the database file (for its size).
pub fn collect(db: &Database, path: &std::path::Path) -> StoreResult<DbStats> {
    let txn = db.begin_read()?;
    let mut tables = Vec::new();
    for handle in txn.list_tables()? {
        let t = txn.open_untyped_table(handle)?;
        let s = t.stats()?;
        let pages = s.leaf_pages() + s.branch_pages();
        tables.push(TableStats {
            name: redb::TableHandle::name(&t).to_string(),
            rows: t.len()?,
            stored_bytes: s.stored_bytes(),
            allocated_bytes: pages * PAGE_SIZE,
            metadata_bytes: s.metadata_bytes(),
            fragmented_bytes: s.fragmented_bytes(),
            leaf_pages: s.leaf_pages(),
            branch_pages: s.branch_pages(),
            tree_height: s.tree_height(),
        });
    }
    tables.sort_by_key(|t| std::cmp::Reverse(t.allocated_bytes));
    let mut events_per_project = BTreeMap::new();
    {
        let issues = txn.open_table(crate::issues::store::ISSUES)?;
        for row in issues.iter()? {
            let (_, v) = row?;
            let issue: crate::issues::model::Issue = super::codec::decode(v.value())?;
            *events_per_project.entry(issue.project_id).or_insert(0) += issue.stored_events;
        }
    }
    let events: u64 = events_per_project.values().sum();
    let file_bytes = std::fs::metadata(path).map_err(StoreError::Io)?.len();
    let used_bytes: u64 = tables.iter().map(|t| t.allocated_bytes).sum();
    let per = |b: u64| b.checked_div(events).unwrap_or(0);
    Ok(DbStats {
        file_bytes,
        used_bytes,
        free_bytes: file_bytes.saturating_sub(used_bytes),
        page_size: PAGE_SIZE,
        events,
        file_bytes_per_event: per(file_bytes),
        used_bytes_per_event: per(used_bytes),
        tables,
        events_per_project,
    })
}

/// Compacts the database at `path` in place (the server must be stopped): moves pages to the
/// front and truncates the file. Returns the file size before and after.
pub fn compact_offline(path: &std::path::Path) -> StoreResult<(u64, u64)> {
    let before = std::fs::metadata(path)?.len();
    let mut db = Database::builder().open(path)?;
    while db.compact()? {}
    drop(db);
    let after = std::fs::metadata(path)?.len();
    Ok((before, after))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_name_every_table_and_compaction_shrinks_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.redb");
        const T: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("t");
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            crate::issues::store::ensure_tables(&txn).unwrap();
            {
                let mut t = txn.open_table(T).unwrap();
                for i in 0..2_000u64 {
                    t.insert(i, vec![7u8; 1000].as_slice()).unwrap();
                }
            }
            txn.commit().unwrap();
            let s = collect(&db, &path).unwrap();
            let t = s.tables.iter().find(|t| t.name == "t").unwrap();
            assert_eq!(t.rows, 2_000);
            assert!(t.stored_bytes >= 2_000 * 1000, "{t:?}");
            assert!(t.allocated_bytes >= t.stored_bytes);
            assert_eq!(s.tables[0].name, "t", "largest first");
            assert!(s.file_bytes >= s.used_bytes);
            let txn = db.begin_write().unwrap();
            txn.open_table(T)
                .unwrap()
                .retain(|k, _| k % 100 == 0)
                .unwrap();
            txn.commit().unwrap();
        }
        let (before, after) = compact_offline(&path).unwrap();
        assert!(after < before / 2, "{before} -> {after}");
    }
}
