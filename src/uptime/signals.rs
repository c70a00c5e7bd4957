//! Heartbeats: Healthchecks.io pings, Uptime Kuma pushes and Sentry cron check-ins, fed to the
//! one evaluator ([`heartbeat::apply`]) in a write transaction, with the same recording of
//! results, rollups, status changes and bus events as active checks.
//!
//! Ticks come from the due-time queue at [`heartbeat::HeartbeatState::next_wakeup`]; at start
//! the time since the process was last known alive is fed as [`Input::Outage`], so expected
//! times that fell while Hearth was down are recorded unknown, not missed.

use jiff::Timestamp;
use redb::{ReadableTable, ReadableTableMetadata, WriteTransaction};

use super::heartbeat::{self, CheckInStatus, HeartbeatPolicy, HeartbeatState, Input, Transition};
use super::rollup::SampleState;
use super::service::{UptimeError, add_result, context, monitor_event};
use super::store::{
    DUE, MONITORS, Monitor, PINGS, ResultRow, SENTRY, SLUGS, STATE, SentryRef, decode_json,
    encode_json, ms, slugify,
};
use crate::store::StoreError;

/// Applies one input to heartbeat monitor `id`; returns the bus events published. A monitor
/// that no longer exists or is not a heartbeat is ignored.
pub fn apply(
    txn: &WriteTransaction,
    id: u64,
    input: &Input,
    now: Timestamp,
) -> Result<u64, UptimeError> {
    let m: Monitor = match txn.open_table(MONITORS)?.get(id)? {
        Some(v) => decode_json(v.value())?,
        None => return Ok(0),
    };
    let Some(policy) = m.heartbeat.clone() else {
        return Ok(0);
    };
    let state: HeartbeatState = match txn.open_table(STATE)?.get(id)? {
        Some(v) => decode_json(v.value())?,
        None => HeartbeatState::default(),
    };
    let ctx = context(txn, &m, now)?;
    let (next, transitions) = heartbeat::apply(&state, &policy, input, &ctx);
    txn.open_table(STATE)?
        .insert(id, encode_json(&next).as_slice())?;
    let mut published = 0;
    for t in &transitions {
        match t {
            Transition::Record(r) => {
                let row = ResultRow {
                    beat: None,
                    record: Some(r.kind),
                    response_ms: r
                        .duration
                        .map(|d| u32::try_from(d.as_millis().max(0)).unwrap_or(u32::MAX)),
                    status: None,
                    error: r.message.clone(),
                };
                let sample = SampleState::from_record(r.kind, ctx.in_maintenance);
                let rt = r.duration.and_then(|d| d.try_into().ok());
                add_result(txn, id, r.at, &row, sample, rt)?;
            }
            Transition::Late { .. } => {}
            Transition::Monitor(e) => published += monitor_event(txn, &m, e)?,
        }
    }
    reschedule(txn, id, &next, &policy)?;
    Ok(published)
}

fn reschedule(
    txn: &WriteTransaction,
    id: u64,
    state: &HeartbeatState,
    policy: &HeartbeatPolicy,
) -> Result<(), StoreError> {
    match state.next_wakeup(policy) {
        Some(t) if !state.monitor.paused => DUE.set(txn, id, ms(t)),
        _ => DUE.remove(txn, id),
    }
}

/// The monitor a ping id belongs to.
pub fn by_ping_id(
    txn: &impl ReadableTable<&'static str, u64>,
    ping_id: &str,
) -> Result<Option<u64>, StoreError> {
    Ok(txn.get(ping_id)?.map(|v| v.value()))
}

/// Applies a ping or push to the monitor with `ping_id`; `None` when no monitor has it.
pub fn ping(
    txn: &WriteTransaction,
    ping_id: &str,
    input: &Input,
    now: Timestamp,
) -> Result<Option<u64>, UptimeError> {
    let id = by_ping_id(&txn.open_table(PINGS)?, ping_id)?;
    match id {
        Some(id) => apply(txn, id, input, now).map(Some),
        None => Ok(None),
    }
}

/// Most Sentry cron monitors created from check-ins (each project's SDKs can create them).
pub const MAX_SENTRY_MONITORS: u64 = 10_000;

/// A Sentry check-in, handed over by ingest in its own write transaction: creates or updates
/// the cron monitor from `monitor_config` and feeds the check-in to the evaluator. A check-in
/// for a monitor that does not exist and carries no config is only stored by ingest (Sentry
/// ignores those too). Problems with the config are logged, never fail the ingest batch.
#[allow(clippy::too_many_arguments)]
pub fn sentry_check_in(
    txn: &WriteTransaction,
    project_id: u64,
    monitor_slug: &str,
    check_in_id: &str,
    status: &str,
    duration_s: Option<f64>,
    config: Option<&str>,
    at_ms: i64,
) -> Result<(), StoreError> {
    let status = match status {
        "in_progress" => CheckInStatus::InProgress,
        "ok" => CheckInStatus::Ok,
        "error" => CheckInStatus::Error,
        other => {
            tracing::debug!(
                project_id,
                monitor_slug,
                "check-in status {other:?} ignored"
            );
            return Ok(());
        }
    };
    let policy = match config.map(serde_json::from_str::<serde_json::Value>) {
        Some(Ok(v)) => match HeartbeatPolicy::sentry(&v) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!(
                    project_id,
                    monitor_slug,
                    "check-in monitor_config refused: {e}"
                );
                None
            }
        },
        Some(Err(_)) | None => None,
    };
    let existing = txn
        .open_table(SENTRY)?
        .get((project_id, monitor_slug))?
        .map(|v| v.value());
    let id = match (existing, policy) {
        (Some(id), Some(policy)) => {
            let mut monitors = txn.open_table(MONITORS)?;
            let current: Option<Monitor> = match monitors.get(id)? {
                Some(v) => Some(decode_json(v.value())?),
                None => None,
            };
            if let Some(mut m) = current
                && m.heartbeat.as_ref() != Some(&policy)
            {
                m.heartbeat = Some(policy);
                m.failure_threshold = m.policy().failure_threshold;
                m.success_threshold = m.policy().success_threshold;
                m.updated_ms = at_ms;
                monitors.insert(id, encode_json(&m).as_slice())?;
            }
            id
        }
        (Some(id), None) => id,
        (None, Some(policy)) => {
            if txn.open_table(SENTRY)?.len()? >= MAX_SENTRY_MONITORS {
                tracing::warn!(
                    project_id,
                    monitor_slug,
                    "too many Sentry cron monitors; not created"
                );
                return Ok(());
            }
            create_sentry_monitor(txn, project_id, monitor_slug, policy, at_ms)?
        }
        (None, None) => return Ok(()),
    };
    let input = Input::CheckIn {
        at: super::store::ts(at_ms),
        id: check_in_id.to_string(),
        status,
        duration: duration_s,
    };
    match apply(txn, id, &input, Timestamp::now()) {
        Ok(_) => Ok(()),
        Err(UptimeError::Store(e)) => Err(e),
        Err(e) => {
            tracing::warn!(project_id, monitor_slug, "check-in not evaluated: {e}");
            Ok(())
        }
    }
}

fn create_sentry_monitor(
    txn: &WriteTransaction,
    project_id: u64,
    monitor_slug: &str,
    policy: HeartbeatPolicy,
    at_ms: i64,
) -> Result<u64, StoreError> {
    let id = super::store::next_id(txn, "monitor")?;
    let mut slugs = txn.open_table(SLUGS)?;
    let base = slugify(monitor_slug);
    let mut slug = base.clone();
    if slugs.get(slug.as_str())?.is_some() {
        slug = format!("{}-p{project_id}", &base[..base.len().min(50)]);
        if slugs.get(slug.as_str())?.is_some() {
            slug = format!("cron-{id}");
        }
    }
    let thresholds = policy.thresholds;
    let m = Monitor {
        id,
        slug: slug.clone(),
        name: monitor_slug.chars().take(200).collect(),
        check: None,
        heartbeat: Some(policy),
        ping_id: None,
        sentry: Some(SentryRef {
            project_id,
            monitor_slug: monitor_slug.to_string(),
        }),
        interval: jiff::SignedDuration::from_secs(60),
        conditions: Vec::new(),
        failure_threshold: thresholds.failure_threshold,
        success_threshold: thresholds.success_threshold,
        reminder_every: None,
        parent: None,
        maintenance: Vec::new(),
        group: None,
        created_ms: at_ms,
        updated_ms: at_ms,
    };
    txn.open_table(MONITORS)?
        .insert(id, encode_json(&m).as_slice())?;
    slugs.insert(slug.as_str(), id)?;
    txn.open_table(SENTRY)?
        .insert((project_id, monitor_slug), id)?;
    txn.open_table(STATE)?
        .insert(id, encode_json(&HeartbeatState::default()).as_slice())?;
    tracing::info!(
        project_id,
        monitor_slug,
        slug,
        "Sentry cron monitor created"
    );
    Ok(id)
}

/// At start: every heartbeat monitor learns that Hearth was not running from `from` to `to`.
pub fn outage(txn: &WriteTransaction, from: Timestamp, to: Timestamp) -> Result<u64, UptimeError> {
    let ids: Vec<u64> = {
        let t = txn.open_table(MONITORS)?;
        let mut ids = Vec::new();
        for e in t.iter()? {
            let (k, v) = e?;
            let m: Monitor = decode_json(v.value())?;
            if m.heartbeat.is_some() {
                ids.push(k.value());
            }
        }
        ids
    };
    let mut n = 0;
    for id in ids {
        n += apply(txn, id, &Input::Outage { from, to }, to)?;
    }
    Ok(n)
}
