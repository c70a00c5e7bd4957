//! Recording a check's result: state machine, results, rollups and the notifications it
//! publishes, in the writer's transaction; and pruning old rows.

use super::*;
use crate::uptime::events::{MONITOR_PREFIX, MonitorChanged};

/// The facts around a monitor at `at`: an active maintenance window, a parent that is down.
pub(crate) fn context(
    txn: &WriteTransaction,
    m: &Monitor,
    now: Timestamp,
) -> Result<Context, UptimeError> {
    let in_maintenance = crate::uptime::maintenance::active(&m.maintenance, now);
    let parent_down = match &m.parent {
        Some(p) => match txn.open_table(SLUGS)?.get(p.as_str())?.map(|v| v.value()) {
            Some(pid) => match txn.open_table(STATE)?.get(pid)? {
                Some(v) => decode_json::<HeartbeatState>(v.value())?.monitor.status == Status::Down,
                None => false,
            },
            None => false,
        },
        None => false,
    };
    Ok(Context {
        now,
        in_maintenance,
        parent_down,
    })
}

/// Stores one raw result and adds it to its rollups (`sample` `None`: not a result for the
/// figures, such as a start or a log ping).
pub(crate) fn add_result(
    txn: &WriteTransaction,
    id: u64,
    at: Timestamp,
    row: &ResultRow,
    sample: Option<SampleState>,
    response_time: Option<Duration>,
) -> Result<(), StoreError> {
    let mut results = txn.open_table(RESULTS)?;
    // Two results in the same millisecond (a start and its finish) both stay.
    let mut key = ms(at);
    for _ in 0..16 {
        if results.get((id, key))?.is_none() {
            break;
        }
        key += 1;
    }
    results.insert((id, key), codec::encode(row).as_slice())?;
    drop(results);
    if let Some(sample) = sample {
        add_to_rollups(txn, id, at, sample, response_time)?;
    }
    Ok(())
}

/// Records a state machine event: status changes for incidents, notifications as bus events
/// in this transaction. Returns how many events were published.
pub(crate) fn monitor_event(
    txn: &WriteTransaction,
    m: &Monitor,
    e: &Event,
) -> Result<u64, UptimeError> {
    match e {
        Event::Beat { .. } => Ok(0),
        Event::StatusChanged {
            at,
            to,
            streak_started,
            error,
            ..
        } => {
            let change = Change {
                at: *at,
                to: *to,
                streak_started: *streak_started,
                error: error.clone(),
            };
            txn.open_table(CHANGES)?
                .insert((m.id, ms(*at)), encode_json(&change).as_slice())?;
            Ok(0)
        }
        Event::Notify { at, kind, error } => {
            let bus_err = |e: crate::bus::BusError| StoreError::Codec(e.to_string());
            let mut p = crate::bus::Publisher::new(txn).map_err(bus_err)?;
            let (subject, payload) = notification(m, *kind, *at, error.as_deref());
            p.publish(&subject, Priority::High, &payload)
                .map_err(bus_err)?;
            Ok(1)
        }
        Event::Suppressed { kind, reason, .. } => {
            tracing::info!(monitor = %m.slug, ?kind, ?reason, "notification held back");
            Ok(0)
        }
    }
}

/// Records one finished check in `txn`; returns how many bus events it published.
pub(super) fn record(txn: &WriteTransaction, c: &Completed) -> Result<u64, UptimeError> {
    if txn.open_table(MONITORS)?.get(c.id)?.is_none() {
        // Deleted while it ran.
        return Ok(0);
    }
    let m = &c.monitor.monitor;
    let mut state: HeartbeatState = match txn.open_table(STATE)?.get(c.id)? {
        Some(v) => decode_json(v.value())?,
        None => HeartbeatState::default(),
    };
    let at = c.result.checked_at;
    let now = Timestamp::now();
    let mut ctx = context(txn, m, at)?;
    ctx.now = now;
    let obs = if c.verdict.up {
        Observation::up(at)
    } else {
        Observation::down(at, c.verdict.reason())
    };
    let was_paused = state.monitor.paused;
    let (next, events) = monitor::observe(&state.monitor, &m.policy(), &obs, &ctx);
    state.monitor = next;
    txn.open_table(STATE)?
        .insert(c.id, encode_json(&state).as_slice())?;

    let mut published = 0;
    for e in &events {
        if let Event::Beat { beat, .. } = e {
            let row = ResultRow {
                beat: Some(*beat),
                record: None,
                response_ms: c
                    .result
                    .response_time
                    .map(|d| u32::try_from(d.as_millis()).unwrap_or(u32::MAX)),
                status: c.result.status,
                error: (!c.verdict.up).then(|| c.verdict.reason()),
            };
            let sample = SampleState::from_beat(*beat, ctx.in_maintenance);
            add_result(txn, c.id, at, &row, Some(sample), c.result.response_time)?;
        } else {
            published += monitor_event(txn, m, e)?;
        }
    }
    if !was_paused {
        let interval = m.interval.as_millis() as i64;
        let now_ms = ms(now);
        let mut next_due = c.due_ms + interval;
        if next_due <= now_ms {
            // Late (a slow check, a busy machine, a restart): skip the slots already passed.
            let behind = (now_ms - next_due) / interval + 1;
            next_due += behind * interval;
        }
        DUE.set(txn, c.id, next_due)?;
    }
    Ok(published)
}

/// Publishes `monitor.<slug>.tls_expiring` the first time a check sees a certificate that
/// expires within `warning_ms` (once per certificate: a renewed one is warned about again).
pub(super) fn tls_expiry(
    txn: &WriteTransaction,
    c: &Completed,
    warning_ms: i64,
) -> Result<u64, UptimeError> {
    let Some(expires) = c.result.cert_expires_at else {
        return Ok(0);
    };
    let left = ms(expires) - ms(c.result.checked_at);
    if left > warning_ms {
        return Ok(0);
    }
    let mut warned = txn.open_table(store::TLS_WARNED)?;
    if warned.get(c.id)?.map(|v| v.value()) == Some(ms(expires)) {
        return Ok(0);
    }
    warned.insert(c.id, ms(expires))?;
    drop(warned);
    let m = &c.monitor.monitor;
    let days = left.max(0) / 86_400_000;
    let bus_err = |e: crate::bus::BusError| StoreError::Codec(e.to_string());
    crate::bus::Publisher::new(txn)
        .map_err(bus_err)?
        .publish(
            &format!("monitor.{}.tls_expiring", m.slug),
            Priority::Normal,
            &json!({
                "name": m.slug,
                "monitor_id": m.id,
                "monitor_name": m.name,
                "title": format!("The certificate of {} expires in {days} day(s), at {expires}", m.name),
                "expires_at": expires,
                "days_left": days,
            }),
        )
        .map_err(bus_err)?;
    Ok(1)
}

/// `monitor.<slug>.down` (also for reminders) or `monitor.<slug>.up`, with what the alert
/// rules and their templates show.
fn notification(
    m: &Monitor,
    kind: NotifyKind,
    at: Timestamp,
    error: Option<&str>,
) -> (String, MonitorChanged) {
    let (word, title) = match kind {
        NotifyKind::Down => ("down", format!("{} is down", m.name)),
        NotifyKind::Reminder => ("down", format!("{} is still down", m.name)),
        NotifyKind::Up => ("up", format!("{} is up again", m.name)),
    };
    let title = match error {
        Some(e) if !e.is_empty() => format!("{title}: {}", truncate(e, 300)),
        _ => title,
    };
    (
        format!("{MONITOR_PREFIX}{}.{word}", m.slug),
        MonitorChanged {
            name: m.slug.clone(),
            monitor_id: m.id,
            monitor_name: m.name.clone(),
            title,
            error: error.map(str::to_string),
            reminder: kind == NotifyKind::Reminder,
            at,
        },
    )
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn add_to_rollups(
    txn: &WriteTransaction,
    id: u64,
    at: Timestamp,
    sample: SampleState,
    response_time: Option<Duration>,
) -> Result<(), StoreError> {
    let mut t = txn.open_table(ROLLUPS)?;
    for (res, start) in rollup::buckets_for(at) {
        let key = (id, store::resolution_code(res), ms(start));
        let mut bucket = match t.get(key)? {
            Some(v) => codec::decode::<RollupRow>(v.value())?.into_bucket(start),
            None => Bucket::empty(start),
        };
        bucket.add(sample, response_time);
        t.insert(
            key,
            codec::encode(&RollupRow::from_bucket(&bucket)).as_slice(),
        )?;
    }
    Ok(())
}

/// Deletes raw results older than `keep_raw_ms` and rollups older than what the figures read.
pub fn prune(txn: &WriteTransaction, now: i64, keep_raw_ms: i64) -> Result<u64, UptimeError> {
    let ids: Vec<u64> = {
        let t = txn.open_table(MONITORS)?;
        t.iter()?
            .map(|e| e.map(|(k, _)| k.value()))
            .collect::<Result<_, _>>()?
    };
    let mut n = 0u64;
    let mut results = txn.open_table(RESULTS)?;
    let mut rollups = txn.open_table(ROLLUPS)?;
    let keep = [
        (Resolution::Minute, rollup::RETAIN_MINUTES),
        (Resolution::Hour, rollup::RETAIN_HOURS),
        (Resolution::Day, rollup::RETAIN_DAYS),
    ];
    for id in ids {
        results.retain_in((id, i64::MIN)..(id, now - keep_raw_ms), |_, _| {
            n += 1;
            false
        })?;
        for (res, d) in keep {
            let code = store::resolution_code(res);
            let before = now - d.as_millis() as i64;
            rollups.retain_in((id, code, i64::MIN)..(id, code, before), |_, _| {
                n += 1;
                false
            })?;
        }
    }
    Ok(n)
}
