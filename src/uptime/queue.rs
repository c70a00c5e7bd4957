//! A durable due-time queue: each key is due at one instant, kept in a redb table ordered by
//! due time, with a reverse index so a key is rescheduled or removed without a scan.
//!
//! Generic over nothing but two table names, so the shared-pieces refactor (issue 13) can lift
//! it into `store/queue.rs` as it is. Entries survive a restart: what was due while the process
//! was down is due at once when it comes back.

use redb::{ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};

use crate::store::StoreResult;

/// Entries due now, `(due ms, key)`, and the due time of the next later entry.
pub type Due = (Vec<(i64, u64)>, Option<i64>);

/// One queue: `(due ms, key) → ()` plus `key → due ms`.
#[derive(Clone, Copy)]
pub struct DueQueue {
    pub by_due: TableDefinition<'static, (i64, u64), ()>,
    pub by_key: TableDefinition<'static, u64, i64>,
}

impl DueQueue {
    pub const fn new(by_due: &'static str, by_key: &'static str) -> DueQueue {
        DueQueue {
            by_due: TableDefinition::new(by_due),
            by_key: TableDefinition::new(by_key),
        }
    }

    pub fn ensure(&self, txn: &WriteTransaction) -> StoreResult<()> {
        txn.open_table(self.by_due)?;
        txn.open_table(self.by_key)?;
        Ok(())
    }

    /// Makes `key` due at `due_ms`, replacing any earlier due time.
    pub fn set(&self, txn: &WriteTransaction, key: u64, due_ms: i64) -> StoreResult<()> {
        let mut by_key = txn.open_table(self.by_key)?;
        let mut by_due = txn.open_table(self.by_due)?;
        if let Some(old) = by_key.insert(key, due_ms)? {
            by_due.remove((old.value(), key))?;
        }
        by_due.insert((due_ms, key), ())?;
        Ok(())
    }

    /// Makes `key` due at `due_ms` unless it is already due sooner.
    pub fn set_earlier(&self, txn: &WriteTransaction, key: u64, due_ms: i64) -> StoreResult<()> {
        let current = txn.open_table(self.by_key)?.get(key)?.map(|v| v.value());
        match current {
            Some(c) if c <= due_ms => Ok(()),
            _ => self.set(txn, key, due_ms),
        }
    }

    pub fn remove(&self, txn: &WriteTransaction, key: u64) -> StoreResult<()> {
        let mut by_key = txn.open_table(self.by_key)?;
        if let Some(old) = by_key.remove(key)? {
            txn.open_table(self.by_due)?.remove((old.value(), key))?;
        }
        Ok(())
    }

    pub fn due_of(&self, txn: &ReadTransaction, key: u64) -> StoreResult<Option<i64>> {
        Ok(txn.open_table(self.by_key)?.get(key)?.map(|v| v.value()))
    }

    /// Entries due at or before `now_ms` (earliest first, at most `limit`, skipping `skip`),
    /// and the due time of the first later entry not skipped, to sleep until.
    pub fn due(
        &self,
        txn: &ReadTransaction,
        now_ms: i64,
        limit: usize,
        skip: impl Fn(u64) -> bool,
    ) -> StoreResult<Due> {
        let table = txn.open_table(self.by_due)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (k, _) = entry?;
            let (due, key) = k.value();
            if skip(key) {
                continue;
            }
            if due > now_ms {
                return Ok((out, Some(due)));
            }
            if out.len() >= limit {
                return Ok((out, Some(due)));
            }
            out.push((due, key));
        }
        Ok((out, None))
    }
}
