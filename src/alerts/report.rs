//! The daily report email and the periodic flush of event counts it is built from.

use std::sync::Arc;
use std::time::Duration;

use redb::ReadableTable;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::{AlertsError, Inner, store};
use crate::app::AppState;
use crate::mail::model::{Category, Priority, TemplateSend};
use crate::store::now_ms;

const DAY_MS: i64 = 86_400_000;
/// Daily counts older than this are deleted.
const KEEP_DAYS: i64 = 35;

/// Writes the in-memory event counts to the daily tables every few seconds (and once more at
/// shutdown), prunes old rows and forgets issues with no recent events.
pub(super) async fn run_flush(inner: Arc<Inner>, shutdown: CancellationToken) {
    loop {
        let stop = tokio::select! {
            _ = shutdown.cancelled() => true,
            _ = tokio::time::sleep(Duration::from_secs(5)) => false,
        };
        if let Err(e) = flush(&inner).await {
            tracing::warn!("alerts: flushing event counts failed: {e}");
        }
        if stop {
            return;
        }
    }
}

pub(super) async fn flush(inner: &Arc<Inner>) -> Result<(), AlertsError> {
    let taken = std::mem::take(&mut *inner.pending.lock().expect("pending counts"));
    {
        let minute = now_ms().div_euclid(60_000);
        let mut freq = inner.freq.lock().expect("freq");
        freq.retain(|_, b| b.back().is_some_and(|(m, _)| *m >= minute - 1440));
    }
    if taken.events.is_empty() && taken.titles.is_empty() {
        return Ok(());
    }
    let today = now_ms().div_euclid(DAY_MS);
    inner
        .db
        .write(move |txn| {
            for (day, n) in &taken.events {
                store::bump_daily(txn, *day, "events", *n)?;
            }
            {
                let mut t = txn.open_table(store::DAILY_ISSUES)?;
                for ((day, issue), n) in &taken.per_issue {
                    let cur = t.get((*day, *issue))?.map(|v| v.value()).unwrap_or(0);
                    t.insert((*day, *issue), cur + n)?;
                }
                let old: Vec<(i64, u64)> = t
                    .range(..(today - KEEP_DAYS, 0))?
                    .map(|r| r.map(|(k, _)| k.value()))
                    .collect::<Result<_, _>>()?;
                for k in old {
                    t.remove(k)?;
                }
            }
            {
                let mut t = txn.open_table(store::ISSUE_TITLES)?;
                for (issue, title) in &taken.titles {
                    t.insert(*issue, title.as_str())?;
                }
            }
            // Event ids are UUIDv7 hex, which sort by time: drop those older than a week.
            {
                let cutoff = format!("{:012x}", (now_ms() - 7 * DAY_MS).max(0));
                let mut t = txn.open_table(store::PROCESSED)?;
                let old: Vec<String> = t
                    .range(..cutoff.as_str())?
                    .take(10_000)
                    .map(|r| r.map(|(k, _)| k.value().to_string()))
                    .collect::<Result<_, _>>()?;
                for k in old {
                    t.remove(k.as_str())?;
                }
            }
            Ok(())
        })
        .await
}

/// Sends the report each day at `[alerts] daily_report_at` (UTC) about the previous day.
pub(super) async fn run_daily(state: AppState, shutdown: CancellationToken) {
    let cfg = &state.config.alerts;
    let Some(at_min) = crate::config::parse_hhmm(&cfg.daily_report_at) else {
        return;
    };
    if cfg.daily_report_to.is_empty() {
        return;
    }
    loop {
        let now = now_ms();
        let next = next_run(now, at_min);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis((next - now) as u64)) => {}
        }
        let day = next.div_euclid(DAY_MS) - 1;
        match send_daily_report(&state, day, &state.config.alerts.daily_report_to).await {
            Ok(id) => tracing::info!(message = id, "daily report queued"),
            Err(e) => tracing::error!("daily report failed: {e}"),
        }
    }
}

/// The next time (ms) strictly after `now` that is `at_min` minutes past a UTC midnight.
pub fn next_run(now: i64, at_min: u32) -> i64 {
    let next = now.div_euclid(DAY_MS) * DAY_MS + at_min as i64 * 60_000;
    if next <= now { next + DAY_MS } else { next }
}

pub fn date_of(day: i64) -> String {
    jiff::Timestamp::from_millisecond(day * DAY_MS)
        .map(|t| t.strftime("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// The report's numbers for one UTC day (days since the epoch).
pub async fn report_vars(
    state: &AppState,
    day: i64,
) -> Result<serde_json::Map<String, Value>, AlertsError> {
    flush(state.alerts.inner()).await?;
    let base = state.config.server.base_url();
    let (metrics, top) = state
        .db
        .read(move |txn| {
            let daily = txn.open_table(store::DAILY)?;
            let mut metrics = serde_json::Map::new();
            for m in [
                "issues_created",
                "issues_resolved",
                "issues_regressed",
                "events",
            ] {
                let n = daily.get((day, m))?.map(|v| v.value()).unwrap_or(0);
                metrics.insert(m.into(), n.into());
            }
            let per = txn.open_table(store::DAILY_ISSUES)?;
            let mut issues: Vec<(u64, u64)> = Vec::new();
            for row in per.range((day, 0)..=(day, u64::MAX))? {
                let (k, v) = row?;
                issues.push((k.value().1, v.value()));
            }
            issues.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            issues.truncate(10);
            let titles = txn.open_table(store::ISSUE_TITLES)?;
            let mut top = Vec::new();
            for (issue, count) in issues {
                let title = titles
                    .get(issue)?
                    .map(|v| v.value().to_string())
                    .unwrap_or_else(|| format!("Issue {issue}"));
                top.push((issue, title, count));
            }
            Ok::<_, AlertsError>((metrics, top))
        })
        .await?;
    let mut vars = metrics;
    vars.insert("date".into(), date_of(day).into());
    vars.insert(
        "top_issues".into(),
        Value::Array(
            top.into_iter()
                .map(|(id, title, count)| {
                    json!({"id": id, "title": title, "count": count, "url": format!("{base}/#/issues/{id}")})
                })
                .collect(),
        ),
    );
    let (mut sent, mut failed) = (0u64, 0u64);
    if let Ok(stats) = state.mail.stats(2).await {
        let date = date_of(day);
        for d in stats.days.iter().filter(|d| d.date == date) {
            sent += d.sent;
            failed += d.failed;
        }
    }
    vars.insert("mail_sent".into(), sent.into());
    vars.insert("mail_failed".into(), failed.into());
    Ok(vars)
}

/// Queues the daily report for `day`; queuing it twice for the same day is a no-op.
pub async fn send_daily_report(
    state: &AppState,
    day: i64,
    to: &[String],
) -> Result<u64, AlertsError> {
    let vars = report_vars(state, day).await?;
    let req = TemplateSend {
        template: "daily_report".into(),
        vars,
        to: to.to_vec(),
        priority: Some(Priority::Low),
        category: Some(Category::Monitoring),
        dedup_key: Some(format!("daily-report:{}:{}", date_of(day), to.join(","))),
        ..Default::default()
    };
    state
        .mail
        .enqueue_template(req)
        .await
        .map_err(|e| AlertsError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_is_the_next_utc_time_of_day() {
        let day = 20_414 * DAY_MS;
        assert_eq!(date_of(20_414), "2025-11-22");
        let at = 8 * 60;
        assert_eq!(next_run(day + 479 * 60_000, at), day + 480 * 60_000);
        assert_eq!(
            next_run(day + 480 * 60_000, at),
            day + DAY_MS + 480 * 60_000
        );
        assert_eq!(
            next_run(day + 23 * 3_600_000, at),
            day + DAY_MS + 480 * 60_000
        );
    }
}
