//! Bus tables. Keys are big-endian integers (redb's u64 keys sort numerically), so the log comes
//! out in publish order.

use redb::{TableDefinition, WriteTransaction};

use crate::store::StoreResult;

/// seq → codec(Event)
pub const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("bus_log");
/// (priority, seq) → () — lets a consumer that is behind take urgent events first.
pub const LANES: TableDefinition<(u8, u64), ()> = TableDefinition::new("bus_lanes");
/// name → value: `next_seq`.
pub const META: TableDefinition<&str, u64> = TableDefinition::new("bus_meta");
/// consumer name → codec(ConsumerState)
pub const CONSUMERS: TableDefinition<&str, &[u8]> = TableDefinition::new("bus_consumers");
/// (consumer, seq) → codec(Retry): events delivered at least once and not yet acked.
pub const RETRIES: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("bus_retries");
/// (consumer, seq) → codec(DeadLetter)
pub const DLQ: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("bus_dlq");

pub fn ensure_tables(txn: &WriteTransaction) -> StoreResult<()> {
    txn.open_table(LOG)?;
    txn.open_table(LANES)?;
    txn.open_table(META)?;
    txn.open_table(CONSUMERS)?;
    txn.open_table(RETRIES)?;
    txn.open_table(DLQ)?;
    Ok(())
}
