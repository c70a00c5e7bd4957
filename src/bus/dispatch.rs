//! The tasks behind the bus: one dispatcher per durable consumer, the mirror that forwards
//! committed durable events to ephemeral subscribers, and log retention.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use redb::{ReadableTable, ReadableTableMetadata};
use tokio_util::sync::CancellationToken;

use super::events::{DLQ_PREFIX, DeadLettered};
use super::store::{CONSUMERS, DLQ, LANES, LOG, RETRIES};
use super::{
    Attempt, BusError, ConsumerState, DeadLetter, Delivery, Event, EventHead, Handler,
    HeldProgress, Inner, Message, Outcome, Priority, Registered, Retry, StartAt, head_seq_read,
    publish_in, subject,
};
use crate::store::{codec, now_ms};

/// One piece of work picked for delivery.
struct Pick {
    event: Arc<Event>,
    /// Attempts already made (0 for a fresh event).
    attempts: u32,
    history: Vec<Attempt>,
    /// Whether it came from the retry table (else from a lane).
    from_retry: bool,
}

struct Round {
    picks: Vec<Pick>,
    /// Cursors when the round was read; the round only moves a cursor still at this value,
    /// so a replay issued meanwhile is not overwritten.
    start: [u64; 4],
    /// Where this round began reading: `start`, or progress the consumer holds uncommitted.
    from: [u64; 4],
    /// The consumer's replay count when `start` was read.
    epoch: u64,
    /// New cursor per lane after this round.
    cursors: [u64; 4],
    /// Earliest time a not-yet-due retry becomes due.
    next_retry_ms: Option<i64>,
}

/// How long a caught-up reader waits after a commit wakes it before it reads: under ingest
/// load commits come every millisecond or two, and one read then takes in several of them
/// instead of each of ~3 readers doing a read (and a blocking-pool hop) per commit.
const GATHER: Duration = Duration::from_millis(5);

/// Runs one handler call, turning a panic (while building its future or polling it) into a
/// failed attempt: logged and counted, then retried with the consumer's backoff and
/// dead-lettered after `max_deliver` like any failure. One bad delivery never stops a consumer.
async fn handle_caught(
    handler: &dyn Handler,
    delivery: Delivery,
    consumer: &Registered,
) -> Outcome {
    let (seq, attempt) = (delivery.event.seq, delivery.attempt);
    // `handle` is called inside the future so a panic before its first await is caught too.
    let call = std::panic::AssertUnwindSafe(async move { handler.handle(delivery).await });
    match call.catch_unwind().await {
        Ok(outcome) => outcome,
        Err(payload) => {
            let message = panic_message(&*payload);
            consumer.panics.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                consumer = %consumer.spec.name,
                seq,
                attempt,
                "bus handler panicked: {message}; the delivery counts as a failed attempt"
            );
            Outcome::retry(format!("the handler panicked: {message}"))
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".into()
    }
}

/// Waits before restarting a dead dispatcher, by consecutive deaths (the last repeats).
const RESTART_WAITS: [Duration; 5] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(5),
    Duration::from_secs(10),
    Duration::from_secs(30),
];

/// A dispatcher that ran this long before dying starts the restart waits from the first again.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// Runs a consumer's dispatcher until shutdown and restarts it whenever it dies (a panic in the
/// dispatcher itself, or an exit nobody asked for). While it waits to be restarted the consumer
/// is down: `/health/ready` names it. Each restart is logged and counted.
pub(super) async fn supervise(
    inner: Arc<Inner>,
    consumer: Arc<Registered>,
    delivered: Arc<AtomicU64>,
    shutdown: CancellationToken,
) {
    let name = consumer.spec.name.clone();
    let mut deaths = 0usize;
    loop {
        consumer.running.store(true, Ordering::SeqCst);
        let started = std::time::Instant::now();
        let result = tokio::spawn(run_consumer(
            inner.clone(),
            consumer.clone(),
            delivered.clone(),
            shutdown.clone(),
        ))
        .await;
        if shutdown.is_cancelled() {
            return;
        }
        let why = match result {
            Ok(()) => "the dispatcher stopped without being asked to".to_string(),
            Err(e) if e.is_panic() => {
                let payload = e.into_panic();
                let message = format!("the dispatcher panicked: {}", panic_message(&*payload));
                // A payload whose destructor panics must not take the supervisor down too.
                std::mem::forget(payload);
                message
            }
            Err(e) => format!("the dispatcher was cancelled: {e}"),
        };
        if started.elapsed() >= HEALTHY_RUN {
            deaths = 0;
        }
        let wait = RESTART_WAITS[deaths.min(RESTART_WAITS.len() - 1)];
        deaths += 1;
        consumer.running.store(false, Ordering::SeqCst);
        tracing::error!(consumer = %name, "bus consumer down: {why}; restarting in {wait:?}");
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        consumer.restarts.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(consumer = %name, restarts = consumer.restarts.load(Ordering::Relaxed), "bus consumer restarted");
    }
}

pub(super) async fn run_consumer(
    inner: Arc<Inner>,
    consumer: Arc<Registered>,
    delivered: Arc<AtomicU64>,
    shutdown: CancellationToken,
) {
    let name: Arc<str> = Arc::from(consumer.spec.name.as_str());
    let mut commits = inner.db.commits();
    let backoff: Vec<Duration> = consumer
        .spec
        .backoff
        .clone()
        .unwrap_or_else(|| inner.config.backoff.iter().map(|d| d.get()).collect());
    let max_deliver = consumer
        .spec
        .max_deliver
        .unwrap_or(inner.config.max_deliver)
        .max(1);
    loop {
        // No new round once shutdown is signalled (it may come during a wait's gather sleep):
        // handlers may depend on tasks that have stopped by then.
        if shutdown.is_cancelled() {
            persist_held(&inner, &consumer, &name).await;
            return;
        }
        // Mark the current commit as seen *before* reading, so a commit that lands while we
        // read wakes the wait below instead of being lost.
        commits.borrow_and_update();
        let mut round = match pick_round(&inner, &consumer).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(consumer = %name, "bus read failed: {e}");
                tokio::select! {
                    _ = shutdown.cancelled() => {
                        persist_held(&inner, &consumer, &name).await;
                        return;
                    }
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        if round.picks.is_empty() {
            if round.cursors != round.from {
                // Only non-matching events were scanned: hold the cursors and go on.
                hold(&consumer, &round);
                persist_if_due(&inner, &consumer, &name).await;
                continue;
            }
            let mut wait = round
                .next_retry_ms
                .map(|t| Duration::from_millis((t - now_ms()).max(1) as u64))
                .unwrap_or(Duration::from_secs(3600));
            if let Some(d) = until_due(&consumer) {
                wait = wait.min(d);
            }
            tokio::select! {
                _ = shutdown.cancelled() => {
                    persist_held(&inner, &consumer, &name).await;
                    return;
                }
                _ = commits.changed() => tokio::time::sleep(GATHER).await,
                _ = tokio::time::sleep(wait) => {
                    persist_if_due(&inner, &consumer, &name).await;
                }
            }
            continue;
        }
        let results = handle_picks(&consumer, &name, std::mem::take(&mut round.picks)).await;
        let acked = results.iter().filter(|(_, o)| *o == Outcome::Ack).count() as u64;
        let only_cursors = results
            .iter()
            .all(|(p, o)| *o == Outcome::Ack && !p.from_retry);
        if only_cursors && !shutdown.is_cancelled() {
            delivered.fetch_add(acked, Ordering::Relaxed);
            hold(&consumer, &round);
            persist_if_due(&inner, &consumer, &name).await;
            continue;
        }
        // Outcomes are committed even during shutdown: the work was done.
        if let Err(e) = commit_round(
            &inner,
            &consumer,
            &name,
            (round.start, round.cursors, round.epoch),
            results,
            max_deliver,
            &backoff,
        )
        .await
        {
            // A full data directory is logged, rate-limited, by store::space; wait quietly.
            let full = inner.db.space().is_full();
            if !full {
                tracing::error!(consumer = %name, "bus commit failed, the round will be redelivered: {e}");
            }
            tokio::time::sleep(Duration::from_millis(if full { 1000 } else { 200 })).await;
        } else {
            delivered.fetch_add(acked, Ordering::Relaxed);
            *consumer.held.lock().expect("held cursors") = None;
        }
        if shutdown.is_cancelled() {
            return;
        }
    }
}

/// Runs the handler on a round's picks, `concurrency` at a time, answers in pick order.
async fn handle_picks(
    consumer: &Arc<Registered>,
    name: &Arc<str>,
    picks: Vec<Pick>,
) -> Vec<(Pick, Outcome)> {
    let concurrency = consumer.spec.concurrency;
    let handler = consumer.handler.clone();
    futures_util::stream::iter(picks)
        .map(|pick| {
            let handler = handler.clone();
            let delivery = Delivery {
                event: pick.event.clone(),
                attempt: pick.attempts + 1,
                consumer: name.clone(),
            };
            let consumer = consumer.clone();
            async move {
                let outcome = handle_caught(&*handler, delivery, &consumer).await;
                (pick, outcome)
            }
        })
        .buffered(concurrency)
        .collect()
        .await
}

/// How long a consumer may hold cursor progress in memory before committing it. Cursor moves
/// that carry nothing else (events skipped by the filter, or acked on their first delivery) are
/// held in the consumer's registry entry instead of committed once per round: a consumer would
/// otherwise take the single writer lock after every ingest commit. A crash loses at most this
/// much cursor progress, and those events are delivered again (at least once, as the bus
/// promises anyway).
const CURSOR_PERSIST_EVERY: Duration = Duration::from_millis(500);

/// How long until held progress is due for committing (zero when due), if any is held.
fn until_due(consumer: &Registered) -> Option<Duration> {
    let held = consumer.held.lock().expect("held cursors");
    held.map(|h| CURSOR_PERSIST_EVERY.saturating_sub(h.since.elapsed()))
}

async fn persist_if_due(inner: &Arc<Inner>, consumer: &Arc<Registered>, name: &Arc<str>) {
    if until_due(consumer).is_some_and(|d| d.is_zero()) {
        persist_held(inner, consumer, name).await;
    }
}

/// Holds the cursor moves of `round`, continuing the held progress if it began from the same
/// stored cursors, before the same replay count.
fn hold(consumer: &Registered, round: &Round) {
    let mut held = consumer.held.lock().expect("held cursors");
    match held.as_mut() {
        Some(h) if h.stored == round.start && h.epoch == round.epoch => h.cursors = round.cursors,
        _ => {
            *held = Some(HeldProgress {
                stored: round.start,
                cursors: round.cursors,
                epoch: round.epoch,
                since: std::time::Instant::now(),
            })
        }
    }
}

/// Commits held cursor progress. A replay that moved the stored cursors meanwhile wins (the
/// commit only moves a cursor still at its stored value, before any later replay).
async fn persist_held(inner: &Arc<Inner>, consumer: &Arc<Registered>, name: &Arc<str>) {
    let Some(h) = consumer.held.lock().expect("held cursors").take() else {
        return;
    };
    let moved = (h.stored, h.cursors, h.epoch);
    if let Err(e) = commit_round(inner, consumer, name, moved, Vec::new(), 1, &[]).await
        && !inner.db.space().is_full()
    {
        tracing::error!(consumer = %name, "bus cursor commit failed, events will be redelivered: {e}");
    }
}

pub(super) fn init_state_blocking(
    db: &crate::store::Db,
    spec: &super::ConsumerSpec,
) -> Result<(), BusError> {
    let name = spec.name.clone();
    let start = spec.start;
    db.write_blocking(move |txn| {
        let head = {
            let meta = txn.open_table(super::store::META)?;
            meta.get("next_seq")?.map(|v| v.value()).unwrap_or(1) - 1
        };
        let mut t = txn.open_table(CONSUMERS)?;
        if t.get(name.as_str())?.is_none() {
            let cursor = match start {
                StartAt::Beginning => 0,
                StartAt::Now => head,
            };
            let state = ConsumerState {
                cursors: [cursor; 4],
                created_ms: now_ms(),
            };
            t.insert(name.as_str(), codec::encode(&state).as_slice())?;
        }
        Ok(())
    })
}

/// Reads the next round. Delivery continues from held progress unless the stored cursors
/// changed since it began (a replay), in which case the stored ones win.
async fn pick_round(inner: &Arc<Inner>, consumer: &Arc<Registered>) -> Result<Round, BusError> {
    let consumer = consumer.clone();
    // Read before the cursors: a replay committed after this read bumps it, so the round's
    // cursor moves are then dropped (see `commit_round`).
    let epoch = consumer.replays.load(Ordering::SeqCst);
    let held = consumer
        .held
        .lock()
        .expect("held cursors")
        .filter(|h| h.epoch == epoch)
        .map(|h| (h.stored, h.cursors));
    inner
        .db
        .read(move |txn| {
            let spec = &consumer.spec;
            let name = spec.name.as_str();
            let now = now_ms();
            let state: ConsumerState = match txn.open_table(CONSUMERS)?.get(name)? {
                Some(v) => codec::decode(v.value())?,
                None => return Err(BusError::UnknownConsumer(name.to_string())),
            };
            let log = txn.open_table(LOG)?;
            let mut picks = Vec::new();
            let mut next_retry_ms: Option<i64> = None;
            let mut retrying = HashSet::new();
            let retries = txn.open_table(RETRIES)?;
            for row in retries.range((name, 0)..=(name, u64::MAX))? {
                let (k, v) = row?;
                let seq = k.value().1;
                retrying.insert(seq);
                let retry: Retry = codec::decode(v.value())?;
                if retry.next_at_ms > now {
                    next_retry_ms =
                        Some(next_retry_ms.map_or(retry.next_at_ms, |t| t.min(retry.next_at_ms)));
                    continue;
                }
                if picks.len() >= spec.batch {
                    continue;
                }
                let event = match retry.event {
                    Some(e) => e,
                    None => match log.get(seq)? {
                        Some(v) => codec::decode(v.value())?,
                        // Pruned while pending cannot happen (retention keeps pending events);
                        // if it does, there is nothing left to deliver.
                        None => continue,
                    },
                };
                picks.push(Pick {
                    event: Arc::new(event),
                    attempts: retry.attempts,
                    history: retry.history,
                    from_retry: true,
                });
            }
            // Fresh events: urgent lane first, so a consumer that is behind serves them first.
            let lanes = txn.open_table(LANES)?;
            let from = match held {
                Some((stored, cursors)) if stored == state.cursors => cursors,
                _ => state.cursors,
            };
            let mut cursors = from;
            for p in Priority::ALL {
                let lane = p.lane();
                if picks.len() >= spec.batch {
                    break;
                }
                let first = cursors[lane as usize] + 1;
                for row in lanes.range((lane, first)..=(lane, u64::MAX))? {
                    if picks.len() >= spec.batch {
                        break;
                    }
                    let (k, _) = row?;
                    let seq = k.value().1;
                    cursors[lane as usize] = seq;
                    if retrying.contains(&seq) {
                        continue;
                    }
                    let Some(v) = log.get(seq)? else { continue };
                    let head: EventHead = codec::decode_prefix(v.value())?;
                    if !subject::matches_any(&spec.filter, head.subject) {
                        continue;
                    }
                    let event: Event = codec::decode(v.value())?;
                    picks.push(Pick {
                        event: Arc::new(event),
                        attempts: 0,
                        history: Vec::new(),
                        from_retry: false,
                    });
                }
            }
            Ok(Round {
                picks,
                start: state.cursors,
                from,
                epoch,
                cursors,
                next_retry_ms,
            })
        })
        .await
}

/// Commits a round's outcomes and moves the consumer's cursors from `start` to `cursors`
/// (`moved` is (start, cursors, epoch)), unless a replay came in since `start` was read.
async fn commit_round(
    inner: &Arc<Inner>,
    consumer: &Arc<Registered>,
    name: &Arc<str>,
    moved: ([u64; 4], [u64; 4], u64),
    results: Vec<(Pick, Outcome)>,
    max_deliver: u32,
    backoff: &[Duration],
) -> Result<(), BusError> {
    let name = name.clone();
    let backoff = backoff.to_vec();
    let consumer = consumer.clone();
    let (start, cursors, epoch) = moved;
    // Unsynced: a crash may roll a round back, and then it is delivered again (at least once);
    // the events themselves were committed durably by their publishers.
    inner
        .db
        .write_unsynced(move |txn| {
            let name = &*name;
            let now = now_ms();
            {
                let mut states = txn.open_table(CONSUMERS)?;
                let mut state: ConsumerState = match states.get(name)? {
                    Some(v) => codec::decode(v.value())?,
                    None => return Err(BusError::UnknownConsumer(name.to_string())),
                };
                // A replay may have moved a cursor while we delivered; keep the replay. The
                // epoch catches a replay that wrote the values already stored.
                let replayed = consumer.replays.load(Ordering::SeqCst) != epoch;
                for lane in 0..4 {
                    if !replayed && state.cursors[lane] == start[lane] {
                        state.cursors[lane] = cursors[lane];
                    }
                }
                states.insert(name, codec::encode(&state).as_slice())?;
            }
            let mut dead = Vec::new();
            {
                let mut retries = txn.open_table(RETRIES)?;
                let mut dlq = txn.open_table(DLQ)?;
                for (pick, outcome) in results {
                    let seq = pick.event.seq;
                    let attempts = pick.attempts + 1;
                    let mut history = pick.history;
                    let (error, delay, terminal) = match outcome {
                        Outcome::Ack => {
                            if pick.from_retry {
                                retries.remove((name, seq))?;
                            }
                            continue;
                        }
                        Outcome::Retry { error, delay } => (error, delay, false),
                        Outcome::Term(error) => (error, None, true),
                    };
                    history.push(Attempt {
                        at_ms: now,
                        error: error.clone(),
                    });
                    if terminal || attempts >= max_deliver {
                        retries.remove((name, seq))?;
                        let letter = DeadLetter {
                            consumer: name.to_string(),
                            event: (*pick.event).clone(),
                            error,
                            attempts: history,
                            dead_ms: now,
                        };
                        dlq.insert((name, seq), codec::encode(&letter).as_slice())?;
                        dead.push(letter);
                    } else {
                        let wait = delay.unwrap_or_else(|| {
                            let i = (attempts as usize - 1).min(backoff.len().saturating_sub(1));
                            backoff.get(i).copied().unwrap_or(Duration::from_secs(1))
                        });
                        let retry = Retry {
                            attempts,
                            next_at_ms: now + wait.as_millis() as i64,
                            history,
                            event: if pick.from_retry {
                                // Keep a DLQ-replayed copy; the log may no longer have it.
                                retries
                                    .get((name, seq))?
                                    .map(|v| codec::decode::<Retry>(v.value()))
                                    .transpose()?
                                    .and_then(|r| r.event)
                            } else {
                                None
                            },
                        };
                        retries.insert((name, seq), codec::encode(&retry).as_slice())?;
                    }
                }
            }
            for letter in dead {
                tracing::warn!(
                    consumer = name,
                    seq = letter.event.seq,
                    subject = %letter.event.subject,
                    attempts = letter.attempts.len(),
                    "event moved to the dead-letter queue: {}",
                    letter.error
                );
                // A failure while handling a DLQ notice must not breed more notices.
                if !letter.event.subject.starts_with(DLQ_PREFIX) {
                    publish_in(
                        txn,
                        &format!("{DLQ_PREFIX}{name}"),
                        Priority::High,
                        &DeadLettered {
                            consumer: name.to_string(),
                            seq: letter.event.seq,
                            event_id: letter.event.id.clone(),
                            subject: letter.event.subject.clone(),
                            error: letter.error.clone(),
                            attempts: letter.attempts.len(),
                        },
                    )?;
                }
            }
            Ok(())
        })
        .await
}

/// Forwards committed durable events to ephemeral subscribers (live dashboard).
pub(super) async fn run_mirror(inner: Arc<Inner>, shutdown: CancellationToken) {
    let mut commits = inner.db.commits();
    let mut last = match inner
        .db
        .read(|txn| Ok::<_, BusError>(head_seq_read(txn)?))
        .await
    {
        Ok(h) => h,
        Err(e) => {
            tracing::error!("bus mirror cannot start: {e}");
            return;
        }
    };
    loop {
        commits.borrow_and_update();
        if inner.ephemeral.receiver_count() > 0 {
            let from = last;
            let read = inner
                .db
                .read(move |txn| {
                    let log = txn.open_table(LOG)?;
                    let mut out = Vec::new();
                    for row in log.range(from + 1..)?.take(1024) {
                        let (_, v) = row?;
                        out.push(codec::decode::<Event>(v.value())?);
                    }
                    let head = head_seq_read(txn)?;
                    Ok::<_, BusError>((out, head))
                })
                .await;
            match read {
                Ok((events, head)) => {
                    let full = events.len() == 1024;
                    for ev in events {
                        last = ev.seq;
                        let msg = Message {
                            payload: ev.json(),
                            subject: ev.subject,
                            time_ms: ev.time_ms,
                            seq: Some(ev.seq),
                        };
                        let _ = inner.ephemeral.send(Arc::new(msg));
                    }
                    if full {
                        continue;
                    }
                    last = last.max(head);
                }
                Err(e) => tracing::warn!("bus mirror read failed: {e}"),
            }
        } else if let Ok(h) = inner
            .db
            .read(|txn| Ok::<_, BusError>(head_seq_read(txn)?))
            .await
        {
            last = h;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = commits.changed() => tokio::time::sleep(GATHER).await,
        }
    }
}

/// Log entries removed per retention transaction (keeps the writer lock short).
const PRUNE_BATCH: usize = 50_000;
/// Subject trimmed as soon as every consumer has passed it (see [`prune_once`]).
const TRIMMED_SUBJECT: &str = "event.stored";

pub(super) async fn run_retention(inner: Arc<Inner>, shutdown: CancellationToken) {
    loop {
        // A pass that found work runs again soon, so `event.stored` is trimmed while ingest
        // goes on (its pages are reused instead of growing the file).
        let pause = match prune_once(&inner).await {
            Ok(n) if n as usize >= PRUNE_BATCH => Duration::from_millis(100),
            Ok(n) if n > 0 => {
                tracing::debug!(pruned = n, "bus retention");
                Duration::from_secs(5)
            }
            Ok(_) => Duration::from_secs(5),
            Err(e) => {
                tracing::warn!("bus retention failed: {e}");
                Duration::from_secs(60)
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

/// Deletes log entries that are too old or beyond the count limit, but only those every
/// registered consumer has moved past and none still has pending.
pub(super) async fn prune_once(inner: &Arc<Inner>) -> Result<u64, BusError> {
    let names: Vec<String> = inner
        .consumers
        .lock()
        .expect("bus registry")
        .iter()
        .map(|c| c.spec.name.clone())
        .collect();
    let max_age = inner.config.retention_max_age.get().as_millis() as i64;
    let max_events = inner.config.retention_max_events;
    let keep_recent = inner.config.retention_keep_recent;
    inner
        .db
        .write(move |txn| {
            let mut safe = [u64::MAX; 4];
            {
                let states = txn.open_table(CONSUMERS)?;
                for name in &names {
                    if let Some(v) = states.get(name.as_str())? {
                        let s: ConsumerState = codec::decode(v.value())?;
                        for (lane, c) in safe.iter_mut().zip(s.cursors) {
                            *lane = (*lane).min(c);
                        }
                    } else {
                        // A registered consumer that has not started yet: keep everything.
                        safe = [0; 4];
                    }
                }
            }
            let pending: HashSet<u64> = {
                let retries = txn.open_table(RETRIES)?;
                retries
                    .iter()?
                    .map(|r| r.map(|(k, _)| k.value().1))
                    .collect::<Result<_, _>>()?
            };
            let mut log = txn.open_table(LOG)?;
            let mut lanes = txn.open_table(LANES)?;
            let mut len = log.len()?;
            let cutoff = now_ms() - max_age;
            let mut doomed = Vec::new();
            // storage (issue 18): `event.stored` (one per stored event, ~0.5 KB) goes as soon as
            // every consumer has passed it, whatever its age; the scan stops at the first entry
            // no consumer cursor has passed.
            let horizon = safe.iter().copied().max().unwrap_or(0);
            // The newest entries stay for replays (`[bus] retention_keep_recent`, ~5 MB).
            let newest = log.last()?.map(|(k, _)| k.value()).unwrap_or(0);
            for row in log.iter()? {
                if doomed.len() >= PRUNE_BATCH {
                    break;
                }
                let (k, v) = row?;
                let seq = k.value();
                if seq > horizon {
                    break;
                }
                let ev: Event = codec::decode(v.value())?;
                let over_count = len > max_events;
                let young = ev.time_ms >= cutoff && !over_count;
                // From the first young entry among the newest `keep_recent`, every later entry
                // is younger and kept too: stop instead of decoding the rest on every pass.
                if young && seq.saturating_add(keep_recent) > newest {
                    break;
                }
                if young
                    && (ev.subject != TRIMMED_SUBJECT || seq.saturating_add(keep_recent) > newest)
                {
                    continue;
                }
                if seq <= safe[ev.priority.lane() as usize] && !pending.contains(&seq) {
                    doomed.push((seq, ev.priority.lane()));
                    len -= 1;
                }
            }
            for (seq, lane) in &doomed {
                log.remove(*seq)?;
                lanes.remove((*lane, *seq))?;
            }
            Ok(doomed.len() as u64)
        })
        .await
}
