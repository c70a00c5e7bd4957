//! The background work: the scheduler that runs due checks, the writer that records them in
//! batches, the alive stamp and retention.

use super::record::{record, tls_expiry};
use super::*;

impl Inner {
    /// The compiled monitor, from the cache or the database; `None` when it no longer exists.
    async fn compiled(self: &Arc<Self>, id: u64) -> Option<Arc<Compiled>> {
        if let Some(c) = self.cache.read().expect("cache").get(&id) {
            return Some(c.clone());
        }
        let m: Option<Monitor> = self
            .db
            .read(move |txn| {
                Ok::<_, StoreError>(match txn.open_table(MONITORS)?.get(id)? {
                    Some(v) => Some(decode_json(v.value())?),
                    None => None,
                })
            })
            .await
            .map_err(|e| tracing::error!(monitor = id, "reading monitor: {e}"))
            .ok()?;
        let m = m?;
        // Stored monitors were accepted, so they compile; one that does not (a newer
        // release's data) is logged and skipped.
        let c = match m.compile() {
            Ok(c) => Arc::new(c),
            Err(e) => {
                tracing::error!(
                    monitor = id,
                    "stored monitor does not compile: {}",
                    e.message
                );
                return None;
            }
        };
        self.cache.write().expect("cache").insert(id, c.clone());
        Some(c)
    }
}

/// Due entries read per scheduler pass.
const DUE_BATCH: usize = 256;
/// Longest sleep between passes (a missed wake-up costs at most this).
const MAX_SLEEP_MS: i64 = 1_000;

pub(super) async fn scheduler(
    inner: Arc<Inner>,
    tx: mpsc::Sender<Completed>,
    shutdown: CancellationToken,
) {
    let limit = Arc::new(Semaphore::new(
        inner.config.uptime.max_concurrent_checks.max(1),
    ));
    loop {
        let now = now_ms();
        let skip: HashSet<u64> = inner.inflight.lock().expect("inflight").clone();
        let read = inner
            .db
            .read(move |txn| DUE.due(txn, now, DUE_BATCH, |k| skip.contains(&k)))
            .await;
        let (due, next) = match read {
            Ok(v) => v,
            Err(e) => {
                tracing::error!("uptime scheduler: reading the due queue: {e}");
                (Vec::new(), Some(now + MAX_SLEEP_MS))
            }
        };
        for (due_ms, id) in due {
            let Some(c) = inner.compiled(id).await else {
                // Deleted meanwhile, or unreadable: drop it from the queue.
                let _ = inner
                    .db
                    .write(move |txn| DUE.remove(txn, id).map_err(UptimeError::from))
                    .await;
                continue;
            };
            let Some(check) = c.monitor.check.clone() else {
                // A heartbeat's expected time (or run deadline) passed: judge it.
                inner.inflight.lock().expect("inflight").insert(id);
                let inner2 = inner.clone();
                tokio::spawn(async move {
                    let r = inner2
                        .db
                        .write(move |txn| {
                            crate::uptime::signals::apply(txn, id, &Input::Tick, Timestamp::now())
                        })
                        .await;
                    match r {
                        Ok(n) => {
                            inner2.notifications_total.fetch_add(n, Ordering::Relaxed);
                        }
                        Err(e) => tracing::error!(monitor = id, "uptime: heartbeat tick: {e}"),
                    }
                    inner2.inflight.lock().expect("inflight").remove(&id);
                    inner2.wake.notify_one();
                });
                continue;
            };
            let permit = tokio::select! {
                p = limit.clone().acquire_owned() => p.expect("semaphore"),
                _ = shutdown.cancelled() => return,
            };
            inner.inflight.lock().expect("inflight").insert(id);
            let tx = tx.clone();
            let inner2 = inner.clone();
            tokio::spawn(async move {
                let started = Timestamp::now();
                let result = checks::run(&check, &inner2.client, started).await;
                let verdict = checks::judge(&check, &result, &c.conditions);
                drop(permit);
                let done = Completed {
                    id,
                    monitor: c.clone(),
                    due_ms,
                    result,
                    verdict,
                };
                if tx.send(done).await.is_err() {
                    inner2.inflight.lock().expect("inflight").remove(&id);
                }
            });
        }
        let sleep_ms = next
            .map(|n| n - now_ms())
            .unwrap_or(MAX_SLEEP_MS)
            .clamp(0, MAX_SLEEP_MS);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = inner.wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(sleep_ms as u64)) => {}
        }
    }
}

/// How long the writer waits for more finished checks before committing a batch.
const BATCH_LINGER: Duration = Duration::from_millis(100);
const MAX_BATCH: usize = 512;

pub(super) async fn writer(
    inner: Arc<Inner>,
    mut rx: mpsc::Receiver<Completed>,
    shutdown: CancellationToken,
) {
    loop {
        let first = tokio::select! {
            c = rx.recv() => match c { Some(c) => c, None => return },
            _ = shutdown.cancelled() => return,
        };
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + BATCH_LINGER;
        while batch.len() < MAX_BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(c)) => batch.push(c),
                _ => break,
            }
        }
        let ids: Vec<u64> = batch.iter().map(|c| c.id).collect();
        let n = batch.len() as u64;
        let failed = batch.iter().filter(|c| !c.verdict.up).count() as u64;
        let tls_warning = inner.config.uptime.tls_warning.get().as_millis() as i64;
        let write = inner
            .db
            .write(move |txn| {
                let mut notified = 0u64;
                for c in &batch {
                    notified += record(txn, c)?;
                    notified += tls_expiry(txn, c, tls_warning)?;
                }
                Ok::<_, UptimeError>(notified)
            })
            .await;
        match write {
            Ok(notified) => {
                inner.checks_total.fetch_add(n, Ordering::Relaxed);
                inner
                    .checks_failed_total
                    .fetch_add(failed, Ordering::Relaxed);
                inner
                    .notifications_total
                    .fetch_add(notified, Ordering::Relaxed);
            }
            // Nothing of the batch is committed; the monitors stay due and run again.
            Err(e) => tracing::error!("uptime: recording {n} check result(s): {e}"),
        }
        {
            let mut inflight = inner.inflight.lock().expect("inflight");
            for id in ids {
                inflight.remove(&id);
            }
        }
        inner.wake.notify_one();
    }
}

/// How often the "alive" stamp is written: the precision of outage detection at the next start.
const ALIVE_EVERY: Duration = Duration::from_secs(10);

pub(super) async fn alive(inner: Arc<Inner>, shutdown: CancellationToken) {
    loop {
        let stopping = tokio::select! {
            _ = shutdown.cancelled() => true,
            _ = tokio::time::sleep(ALIVE_EVERY) => false,
        };
        // Unsynced: a crash may lose the last stamp, which only widens the outage (more
        // unknown, never a false missed).
        let r = inner
            .db
            .write_unsynced(|txn| {
                txn.open_table(store::META)?.insert("alive", now_ms())?;
                Ok::<_, StoreError>(())
            })
            .await;
        if let Err(e) = r {
            tracing::warn!("uptime: writing the alive stamp: {e}");
        }
        if stopping {
            return;
        }
    }
}

/// How often old results and rollups are deleted.
const RETENTION_EVERY: Duration = Duration::from_secs(300);

pub(super) async fn retention(inner: Arc<Inner>, shutdown: CancellationToken) {
    loop {
        let keep_raw = inner.config.uptime.raw_retention.get().as_millis() as i64;
        let res = inner
            .db
            .write(move |txn| prune(txn, now_ms(), keep_raw))
            .await;
        match res {
            Ok(0) => {}
            Ok(n) => tracing::debug!("uptime: pruned {n} old result(s) and rollup(s)"),
            Err(e) => tracing::error!("uptime: pruning old results: {e}"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(RETENTION_EVERY) => {}
        }
    }
}
