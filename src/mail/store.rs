//! mail tables.

use redb::WriteTransaction;

use crate::store::StoreResult;

pub fn ensure_tables(_txn: &WriteTransaction) -> StoreResult<()> {
    Ok(())
}
