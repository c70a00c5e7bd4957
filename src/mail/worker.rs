//! The outbox worker: claim ready messages, send them concurrently, group-commit outcomes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redb::ReadableTable;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::model::{LogKind, MessageRecord, Status};
use super::smtp::{self, Attempt};
use super::{Inner, MailError, store};
use crate::bus::Priority;
use crate::metrics;
use crate::store::now_ms;

/// The longest wait between retries, however many attempts came before.
const MAX_RETRY_WAIT_MS: i64 = 3_600_000;

pub(super) async fn run(inner: Arc<Inner>, shutdown: CancellationToken) {
    let recovered = inner
        .db
        .write(|txn| store::recover_interrupted(txn, now_ms()))
        .await;
    match recovered {
        Ok(n) if n > 0 => {
            tracing::warn!(
                messages = n,
                "re-queued mail that was being sent when hearth stopped"
            )
        }
        Ok(_) => {}
        Err(e) => tracing::error!("mail recovery failed: {e}"),
    }
    seed_window(&inner).await;
    let transport = match smtp::Relay::new(&inner.config.smtp) {
        Ok(Some(t)) => Some(Arc::new(t)),
        Ok(None) => {
            tracing::info!("no [smtp] host configured; mail stays queued until one is");
            None
        }
        Err(e) => {
            tracing::error!("cannot set up the SMTP relay, mail stays queued: {e}");
            None
        }
    };
    // lettre's pool opens a fresh connection whenever none is idle and closes any beyond
    // `pool_size` when it is returned, so more sends in flight than pooled connections would
    // mean a connect and QUIT per extra message: cap in-flight sends at the pool size.
    let concurrency = inner
        .config
        .mail
        .concurrency
        .min(inner.config.smtp.pool_size as usize)
        .max(1);
    let (tx, mut rx) = mpsc::channel::<(MessageRecord, Attempt)>(concurrency * 2);
    let mut inflight = 0usize;
    let mut maybe_ready = true;
    let mut next_due: Option<i64> = None;
    let mut held_until: Option<i64> = None;
    // Outcomes waiting to be committed; they share one transaction with the next claim.
    let mut done: Vec<(MessageRecord, Attempt)> = Vec::new();
    let base = inner.config.mail.retry_base.get().as_millis() as i64;
    loop {
        let notified = inner.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let now = now_ms();
        let timer_due = next_due.is_some_and(|t| t <= now) || held_until.is_some_and(|t| t <= now);
        let claimer = transport.as_ref().filter(|_| {
            !shutdown.is_cancelled() && (maybe_ready || timer_due) && inflight < concurrency
        });
        if claimer.is_some() || !done.is_empty() {
            let (allowed, frees_at) = inner.allowance(now);
            let n = if claimer.is_some() {
                (concurrency - inflight).min(allowed)
            } else {
                0
            };
            let batch = std::mem::take(&mut done);
            let bus = inner.bus.clone();
            let round = inner
                .db
                .write(move |txn| {
                    let counts = apply_outcomes(txn, &bus, base, batch)?;
                    let next = store::promote_due(txn, now)?;
                    let claimed = if n > 0 {
                        store::claim(txn, n, now)?
                    } else {
                        Vec::new()
                    };
                    let more = store::has_ready(txn)?;
                    Ok::<_, MailError>((counts, claimed, next, more))
                })
                .await;
            match round {
                Ok(((sent, failed, deferred), claimed, next, more)) => {
                    inner.sent_total.fetch_add(sent, Ordering::Relaxed);
                    inner.failed_total.fetch_add(failed, Ordering::Relaxed);
                    inner.deferred_total.fetch_add(deferred, Ordering::Relaxed);
                    next_due = next;
                    maybe_ready = more && inflight + claimed.len() < concurrency;
                    held_until = if more && allowed <= claimed.len() {
                        frees_at
                    } else {
                        None
                    };
                    inner.record_attempts(now, claimed.len());
                    if let Some(transport) = claimer {
                        for (m, body) in claimed {
                            inflight += 1;
                            inner.inflight.fetch_add(1, Ordering::Relaxed);
                            let tx = tx.clone();
                            let transport = transport.clone();
                            tokio::spawn(async move {
                                let outcome = transport.send(&m, &body).await;
                                let _ = tx.send((m, outcome)).await;
                            });
                        }
                    }
                }
                // Uncommitted outcomes leave their messages `sending`; the next start re-queues
                // them (at-least-once).
                Err(e) => {
                    tracing::error!("mail outbox commit failed: {e}");
                    next_due = Some(now + 1000);
                }
            }
        }
        if shutdown.is_cancelled() && inflight == 0 && done.is_empty() {
            return;
        }
        let wake_at = [next_due, held_until].into_iter().flatten().min();
        let wait = wake_at
            .map(|t| Duration::from_millis((t - now_ms()).clamp(1, MAX_RETRY_WAIT_MS) as u64))
            .unwrap_or(Duration::from_secs(3600));
        tokio::select! {
            _ = &mut notified => maybe_ready = true,
            Some(first) = rx.recv() => {
                done.push(first);
                while let Ok(more) = rx.try_recv() {
                    done.push(more);
                }
                inflight -= done.len();
                inner.inflight.fetch_sub(done.len() as u64, Ordering::Relaxed);
                // A freed slot may take a message that was waiting for one.
                maybe_ready = true;
            }
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.cancelled(), if !shutdown.is_cancelled() => {}
        }
    }
}

/// Fills the rate-limit window with attempts made in the last hour, so a restart does not
/// reset the limit.
/// The worker's counters as Prometheus metrics, with the template renders running now.
pub(super) fn render_metrics(i: &Inner, renders_in_flight: u64, out: &mut String) {
    let load = |v: &AtomicU64| v.load(Ordering::Relaxed);
    let sent = "Messages the relay accepted since start.";
    metrics::counter(out, "hearth_mail_sent_total", sent, load(&i.sent_total));
    let failed = "Messages that ended failed since start.";
    metrics::counter(
        out,
        "hearth_mail_failed_total",
        failed,
        load(&i.failed_total),
    );
    let deferred = "Attempts that failed transiently and were rescheduled.";
    let deferred_total = load(&i.deferred_total);
    metrics::counter(out, "hearth_mail_deferred_total", deferred, deferred_total);
    let inflight = "Messages being handed to the relay.";
    metrics::gauge(out, "hearth_mail_inflight", inflight, load(&i.inflight));
    let renders = "Template renders running on blocking threads.";
    let name = "hearth_mail_template_renders_in_flight";
    metrics::gauge(out, name, renders, renders_in_flight);
}

async fn seed_window(inner: &Arc<Inner>) {
    let since = now_ms() - 3_600_000;
    let times = inner
        .db
        .read(move |txn| {
            let t = txn.open_table(store::MESSAGES)?;
            let mut times = Vec::new();
            // Newest messages only: an hour's worth is bounded by the limit itself.
            for row in t.iter()?.rev().take(20_000) {
                let (_, v) = row?;
                let m: MessageRecord = crate::store::codec::decode(v.value())?;
                for l in &m.log {
                    if l.at_ms > since
                        && matches!(l.kind, LogKind::Sent | LogKind::Deferred | LogKind::Failed)
                        && l.attempt > 0
                    {
                        times.push(l.at_ms);
                    }
                }
            }
            times.sort_unstable();
            Ok::<_, MailError>(times)
        })
        .await
        .unwrap_or_default();
    inner.window.lock().expect("mail window").extend(times);
}

fn backoff_ms(base_ms: i64, attempts: u32) -> i64 {
    let shift = attempts.saturating_sub(1).min(30);
    base_ms.saturating_mul(1i64 << shift).min(MAX_RETRY_WAIT_MS)
}

/// Records the outcomes of a batch of attempts; returns (sent, failed, deferred).
fn apply_outcomes(
    txn: &redb::WriteTransaction,
    bus: &crate::bus::Bus,
    base: i64,
    batch: Vec<(MessageRecord, Attempt)>,
) -> Result<(u64, u64, u64), MailError> {
    let now = now_ms();
    let (mut sent, mut failed, mut deferred) = (0u64, 0u64, 0u64);
    for (claimed, outcome) in batch {
        txn.open_table(store::SENDING)?.remove(claimed.id)?;
        let Some(mut m) = store::get(txn, claimed.id)? else {
            continue;
        };
        if m.status != Status::Sending {
            continue;
        }
        let attempt = m.attempts;
        match outcome {
            Attempt::Sent { code, reply } => {
                m.status = Status::Sent;
                m.sent_ms = Some(now);
                m.last_code = code;
                m.last_error = None;
                m.push_log(now, LogKind::Sent, attempt, reply.clone(), code);
                store::bump_stat(txn, now, m.category, "sent")?;
                publish(bus, txn, "mail.sent", &m, Some(&reply))?;
                sent += 1;
            }
            Attempt::Permanent { code, error } => {
                fail(txn, bus, &mut m, now, attempt, error, code)?;
                failed += 1;
            }
            Attempt::Transient { code, error } => {
                let due = now + backoff_ms(base, attempt);
                if due > m.deadline_ms {
                    let msg = format!(
                        "gave up after {attempt} attempt(s) over the retry period ([mail] retry_for); last error: {error}"
                    );
                    fail(txn, bus, &mut m, now, attempt, msg, code)?;
                    failed += 1;
                } else {
                    m.status = Status::Queued;
                    m.next_attempt_ms = Some(due);
                    m.last_error = Some(error.clone());
                    m.last_code = code;
                    let wait = (due - now) as f64 / 1000.0;
                    m.push_log(
                        now,
                        LogKind::Deferred,
                        attempt,
                        format!("{error} (next attempt in {wait:.1}s)"),
                        code,
                    );
                    txn.open_table(store::DELAYED)?
                        .insert((due, m.id), m.priority.lane())?;
                    deferred += 1;
                }
            }
        }
        store::put(txn, &m)?;
    }
    Ok((sent, failed, deferred))
}

fn fail(
    txn: &redb::WriteTransaction,
    bus: &crate::bus::Bus,
    m: &mut MessageRecord,
    now: i64,
    attempt: u32,
    error: String,
    code: Option<u16>,
) -> Result<(), MailError> {
    m.status = Status::Failed;
    m.last_error = Some(error.clone());
    m.last_code = code;
    m.push_log(now, LogKind::Failed, attempt, error.clone(), code);
    store::bump_stat(txn, now, m.category, "failed")?;
    publish(bus, txn, "mail.failed", m, Some(&error))?;
    Ok(())
}

fn publish(
    bus: &crate::bus::Bus,
    txn: &redb::WriteTransaction,
    subject: &str,
    m: &MessageRecord,
    reply: Option<&str>,
) -> Result<(), MailError> {
    bus.publish_durable(
        txn,
        subject,
        Priority::Low,
        &serde_json::json!({
            "id": m.id,
            "to": m.to,
            "cc": m.cc,
            "subject": m.subject,
            "category": m.category,
            "attempts": m.attempts,
            "status": m.status,
            "reply": reply,
            "smtp_code": m.last_code,
        }),
    )
    .map_err(|e| match e {
        crate::bus::BusError::Store(s) => MailError::Store(s),
        other => MailError::Invalid(other.to_string()),
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(super::backoff_ms(1000, 1), 1000);
        assert_eq!(super::backoff_ms(1000, 2), 2000);
        assert_eq!(super::backoff_ms(1000, 4), 8000);
        assert_eq!(super::backoff_ms(1000, 60), super::MAX_RETRY_WAIT_MS);
    }
}
