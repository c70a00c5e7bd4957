//! `[storage] max_disk_bytes`: a disk budget for the database and the search index.
//!
//! Checked every [`CHECK_EVERY`]. Below 80% of the budget by file sizes nothing else is done;
//! above, the database's tables are walked for the bytes they really use (freed pages inside
//! the file are reused, so the file size alone overstates it). At 80% a durable
//! `storage.disk_budget` bus event warns (an alert rule `disk_budget` matches it; once per
//! crossing). At 90% the oldest events are removed, across all issues by arrival order, until
//! the estimate is back at 75%: each issue keeps its newest event and its reference event (the
//! reference is its own row), and its counters (`count`, tags, hourly) stay; `stored_events`
//! follows. Pruned pages are reused by later events, so the file stops growing.

use std::sync::atomic::Ordering;
use std::time::Duration;

use redb::ReadableTable;
use serde_json::json;

use super::store::{EVENT_IDS, EVENTS};
use super::{Issues, IssuesError, get_issue_w, put_issue};
use crate::bus::Priority;
use crate::issues::model::StoredEvent;
use crate::store::codec;

/// How often the budget is looked at.
pub const CHECK_EVERY: Duration = Duration::from_secs(30);
/// Per mille of the budget: warn, start pruning, prune down to.
const WARN_AT: u64 = 800;
const PRUNE_AT: u64 = 900;
const PRUNE_TO: u64 = 750;

/// What one check found and did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BudgetCheck {
    pub budget_bytes: u64,
    /// Database bytes in use (or the file size when far below the budget) plus the index.
    pub used_bytes: u64,
    pub warned: bool,
    pub pruned_events: u64,
}

/// Bytes of the files under `dir` (the search index), two levels deep.
fn dir_bytes(dir: &std::path::Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

impl Issues {
    /// One look at the disk budget (see the module docs); does nothing without a budget.
    pub async fn check_disk_budget(&self) -> Result<BudgetCheck, IssuesError> {
        let budget = self.inner().config.storage.max_disk_bytes.bytes();
        self.check_disk_budget_of(budget).await
    }

    /// [`Issues::check_disk_budget`] against `budget` bytes (0: none) instead of the
    /// configured one.
    pub async fn check_disk_budget_of(&self, budget: u64) -> Result<BudgetCheck, IssuesError> {
        let inner = self.inner().clone();
        if budget == 0 {
            return Ok(BudgetCheck::default());
        }
        let index = dir_bytes(&inner.config.storage.data_dir.join("search"));
        let per_mille = |b: u64| (b as u128 * 1000 / budget as u128) as u64;
        let mut out = BudgetCheck {
            budget_bytes: budget,
            used_bytes: inner.db.file_bytes() + index,
            ..Default::default()
        };
        if per_mille(out.used_bytes) < WARN_AT {
            inner.budget_warned.store(false, Ordering::Relaxed);
            return Ok(out);
        }
        let stats = inner.db.stats().await?;
        out.used_bytes = stats.used_bytes + index;
        let level = per_mille(out.used_bytes);
        if level < WARN_AT {
            inner.budget_warned.store(false, Ordering::Relaxed);
            return Ok(out);
        }
        if !inner.budget_warned.swap(true, Ordering::Relaxed) {
            let payload = json!({
                "used_bytes": out.used_bytes, "budget_bytes": budget,
                "percent": level / 10,
            });
            inner
                .db
                .write(move |txn| {
                    crate::bus::publish_in(txn, "storage.disk_budget", Priority::High, &payload)
                        .map_err(|e| IssuesError::Invalid(e.to_string()))
                })
                .await?;
            tracing::warn!(
                used = out.used_bytes,
                budget,
                "the data directory uses {}% of [storage] max_disk_bytes; the oldest events are \
                 removed from {}%",
                level / 10,
                PRUNE_AT / 10
            );
            out.warned = true;
        }
        if level >= PRUNE_AT && stats.events > 0 {
            let per_event = (stats.used_bytes / stats.events).max(1);
            let excess = out.used_bytes - budget * PRUNE_TO / 1000;
            out.pruned_events = self.prune_oldest(excess.div_ceil(per_event)).await?;
            inner
                .metrics
                .budget_pruned
                .fetch_add(out.pruned_events, Ordering::Relaxed);
            tracing::warn!(
                events = out.pruned_events,
                "disk budget: removed the oldest events"
            );
        }
        Ok(out)
    }

    /// Removes about `n` of the oldest stored events (by arrival: the event seq), never an
    /// issue's newest. Returns how many were removed.
    pub async fn prune_oldest(&self, n: u64) -> Result<u64, IssuesError> {
        let inner = self.inner().clone();
        if n == 0 {
            return Ok(0);
        }
        // The n-th smallest seq is the cut; the issues holding events at or below it.
        let (cut, issues) = inner
            .db
            .read(move |txn| {
                let t = txn.open_table(EVENTS)?;
                let mut keys: Vec<(u64, u64)> = Vec::new();
                for row in t.iter()? {
                    let (k, _) = row?;
                    keys.push(k.value());
                }
                if keys.is_empty() {
                    return Ok::<_, IssuesError>((0, Vec::new()));
                }
                let mut seqs: Vec<u64> = keys.iter().map(|k| k.1).collect();
                let nth = (n as usize).min(seqs.len()) - 1;
                let (_, cut, _) = seqs.select_nth_unstable(nth);
                let cut = *cut;
                // `keys` is in (issue, seq) order, so an issue's keys are adjacent.
                let mut issues: Vec<u64> =
                    keys.iter().filter(|k| k.1 <= cut).map(|k| k.0).collect();
                issues.dedup();
                Ok((cut, issues))
            })
            .await?;
        let mut total = 0;
        for chunk in issues.chunks(64) {
            let chunk = chunk.to_vec();
            total += inner
                .db
                .write(move |txn| {
                    let mut removed = 0;
                    for id in chunk {
                        removed += remove_up_to(txn, id, cut)?;
                    }
                    Ok::<_, IssuesError>(removed)
                })
                .await?;
        }
        Ok(total)
    }
}

/// Removes issue `id`'s events with seq ≤ `cut`, except its newest; keeps its counters.
fn remove_up_to(txn: &redb::WriteTransaction, id: u64, cut: u64) -> Result<u64, IssuesError> {
    let Some(mut issue) = get_issue_w(txn, id)? else {
        return Ok(0);
    };
    let mut events = txn.open_table(EVENTS)?;
    let newest = events
        .range((id, 0)..=(id, u64::MAX))?
        .next_back()
        .transpose()?
        .map(|(k, _)| k.value().1);
    let Some(newest) = newest else {
        return Ok(0);
    };
    let mut doomed = Vec::new();
    for row in events.range((id, 0)..=(id, cut.min(newest.saturating_sub(1))))? {
        let (k, v) = row?;
        let e: StoredEvent = codec::decode(v.value())?;
        doomed.push((k.value(), e.event_id));
    }
    if doomed.is_empty() {
        return Ok(0);
    }
    let mut eids = txn.open_table(EVENT_IDS)?;
    for (k, eid) in &doomed {
        events.remove(*k)?;
        eids.remove(eid.as_str())?;
    }
    drop((events, eids));
    let gone: Vec<String> = doomed.into_iter().map(|(_, e)| e).collect();
    crate::ingest::store::forget_events(txn, issue.project_id, None, &gone)?;
    issue.stored_events = issue.stored_events.saturating_sub(gone.len() as u64);
    put_issue(txn, &issue)?;
    Ok(gone.len() as u64)
}
