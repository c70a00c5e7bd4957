//! Finalising logged suggestions once their reward window has passed (issue 19).
//!
//! A conversation's join (its decisions, uses, resolution, rating) can still change its reward
//! until `[chat] suggest_reward_window` after the last of: a decision, a use, the resolution
//! (a reopening within the window takes the resolution back). After that, every decision of
//! the conversation gets its final reward (`outcome`; 0 when nothing resolved it) and the join
//! row is deleted; the model already holds every pull (with reward 0 until credited), so it
//! does not change. Events for the conversation that arrive later find no join and change
//! nothing, as for a conversation that never had suggestions.
//!
//! Which joins to look at comes from [`PENDING`]: `(time, conversation)` reminders written
//! whenever a join is written, at the event's time + the window. A pass takes at most `batch`
//! reminders that are due, oldest first, and for each recomputes the join's real deadline:
//! passed → finalise; not yet → remind again at the real deadline. Joins stored before the
//! reminders existed are given one by a bounded backfill (cursor in [`META`]).

use redb::{ReadableTable, ReadableTableMetadata, WriteTransaction};

use super::{DECISIONS, JOINS, Join, META, PENDING, Suggest, decode_decision};
use crate::chat::{ChatError, ChatResult};
use crate::store::codec;

/// Reminders handled per pass by the chat sweep.
pub const BATCH: usize = 256;
/// `META` key: the last conversation id the backfill gave a reminder (`u64::MAX`: done).
const BACKFILL: &str = "prune_backfill";

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    /// Joins finalised and deleted.
    pub joins: usize,
    /// Decisions given their final reward.
    pub decisions: usize,
    /// Reminders that were due but whose join can still change (reminded again).
    pub postponed: usize,
    /// Older joins given a reminder by the backfill.
    pub backfilled: usize,
}

/// Reminds the pruner to look at conversation `conv_id` at `at_ms`.
pub fn remind(txn: &WriteTransaction, conv_id: u64, at_ms: i64) -> ChatResult<()> {
    txn.open_table(PENDING)?.insert((at_ms, conv_id), ())?;
    Ok(())
}

/// When `j` can no longer change: the window after its last decision, use or resolution.
fn deadline(
    j: &Join,
    decisions: &impl ReadableTable<u64, &'static [u8]>,
    window: i64,
) -> ChatResult<i64> {
    let mut last = j.resolved_ms.unwrap_or(i64::MIN);
    for u in &j.uses {
        last = last.max(u.time_ms);
    }
    for id in &j.decisions {
        if let Some(v) = decisions.get(*id)? {
            last = last.max(decode_decision(v.value())?.time_ms);
        }
    }
    Ok(last.saturating_add(window))
}

impl Suggest {
    /// One bounded pass (at most `batch` due reminders and `batch` backfilled joins).
    pub async fn prune(&self, batch: usize) -> ChatResult<Pruned> {
        let now = self.inner.clock.now_ms();
        let window = self.window_ms();
        self.inner
            .db
            .write(move |txn| {
                let mut out = Pruned::default();
                backfill(txn, batch, window, &mut out)?;
                let due: Vec<(i64, u64)> = {
                    let t = txn.open_table(PENDING)?;
                    let mut v = Vec::new();
                    for row in t.range((i64::MIN, 0)..=(now, u64::MAX))? {
                        v.push(row?.0.value());
                        if v.len() >= batch {
                            break;
                        }
                    }
                    v
                };
                let mut pending = txn.open_table(PENDING)?;
                let mut joins = txn.open_table(JOINS)?;
                let mut decisions = txn.open_table(DECISIONS)?;
                for key in due {
                    pending.remove(key)?;
                    let conv_id = key.1;
                    let Some(j) = joins
                        .get(conv_id)?
                        .map(|v| codec::decode::<Join>(v.value()))
                        .transpose()?
                    else {
                        continue;
                    };
                    let until = deadline(&j, &decisions, window)?;
                    if until > now {
                        pending.insert((until, conv_id), ())?;
                        out.postponed += 1;
                        continue;
                    }
                    for id in &j.decisions {
                        let Some(mut d) = decisions
                            .get(*id)?
                            .map(|v| decode_decision(v.value()))
                            .transpose()?
                        else {
                            continue;
                        };
                        if d.outcome.is_none() {
                            d.outcome = Some(j.reward(d.time_ms, window).0);
                            decisions.insert(*id, codec::encode(&d).as_slice())?;
                            out.decisions += 1;
                        }
                    }
                    joins.remove(conv_id)?;
                    out.joins += 1;
                }
                Ok::<_, ChatError>(out)
            })
            .await
    }
}

/// A database without joins has none from before the reminders: no backfill to do.
pub fn no_backfill_if_empty(txn: &WriteTransaction) -> crate::store::StoreResult<()> {
    let mut meta = txn.open_table(META)?;
    if meta.get(BACKFILL)?.is_none() && txn.open_table(JOINS)?.is_empty()? {
        meta.insert(BACKFILL, u64::MAX)?;
    }
    Ok(())
}

/// Gives up to `batch` joins from before the reminders a reminder at their real deadline.
fn backfill(txn: &WriteTransaction, batch: usize, window: i64, out: &mut Pruned) -> ChatResult<()> {
    let mut meta = txn.open_table(META)?;
    let from = meta.get(BACKFILL)?.map(|v| v.value());
    if from == Some(u64::MAX) {
        return Ok(());
    }
    let joins = txn.open_table(JOINS)?;
    let decisions = txn.open_table(DECISIONS)?;
    let mut pending = txn.open_table(PENDING)?;
    let start = from.map(|f| f + 1).unwrap_or(0);
    let mut last = None;
    for row in joins.range(start..)?.take(batch) {
        let (k, v) = row?;
        let j: Join = codec::decode(v.value())?;
        pending.insert((deadline(&j, &decisions, window)?, k.value()), ())?;
        last = Some(k.value());
        out.backfilled += 1;
    }
    let cursor = match last {
        Some(l) if out.backfilled == batch => l,
        _ => u64::MAX,
    };
    meta.insert(BACKFILL, cursor)?;
    Ok(())
}

#[cfg(test)]
#[path = "prune_tests.rs"]
mod tests;
