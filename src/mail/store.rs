//! Mail tables and the transactional steps over them. Every function takes the caller's
//! transaction, so the caller decides what commits together.

use redb::{ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};

use super::MailError;
use super::model::{Body, Category, LogKind, MessageRecord, Status, Template};
use crate::store::{StoreResult, codec};

/// id → codec(MessageRecord)
pub const MESSAGES: TableDefinition<u64, &[u8]> = TableDefinition::new("mail_messages");
/// id → codec(Body)
pub const BODIES: TableDefinition<u64, &[u8]> = TableDefinition::new("mail_bodies");
/// (priority lane, id) → (): ready to send now; urgent lane first.
pub const QUEUE: TableDefinition<(u8, u64), ()> = TableDefinition::new("mail_queue");
/// (due ms, id) → priority lane: waiting for a retry.
pub const DELAYED: TableDefinition<(i64, u64), u8> = TableDefinition::new("mail_delayed");
/// (day since epoch, category, status) → count
pub const STATS: TableDefinition<(i64, &str, &str), u64> = TableDefinition::new("mail_stats");
/// name → codec(Template): admin templates and admin overrides of built-ins.
pub const TEMPLATES: TableDefinition<&str, &[u8]> = TableDefinition::new("mail_templates");
/// id → (): messages handed to the relay whose outcome is not committed yet.
pub const SENDING: TableDefinition<u64, ()> = TableDefinition::new("mail_sending");
/// dedup key → message id
pub const DEDUP: TableDefinition<&str, u64> = TableDefinition::new("mail_dedup");
/// counter name → last issued value
pub const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("mail_counters");

pub fn ensure_tables(txn: &WriteTransaction) -> StoreResult<()> {
    txn.open_table(MESSAGES)?;
    txn.open_table(BODIES)?;
    txn.open_table(QUEUE)?;
    txn.open_table(DELAYED)?;
    txn.open_table(STATS)?;
    txn.open_table(TEMPLATES)?;
    txn.open_table(DEDUP)?;
    txn.open_table(SENDING)?;
    txn.open_table(COUNTERS)?;
    Ok(())
}

pub fn day_of(ms: i64) -> i64 {
    ms.div_euclid(86_400_000)
}

pub fn next_id(txn: &WriteTransaction) -> StoreResult<u64> {
    crate::store::next_counter(txn, COUNTERS, "message")
}

pub fn bump_stat(
    txn: &WriteTransaction,
    at_ms: i64,
    category: Category,
    status: &str,
) -> StoreResult<()> {
    let mut t = txn.open_table(STATS)?;
    let key = (day_of(at_ms), category.as_str(), status);
    let n = t.get(key)?.map(|v| v.value()).unwrap_or(0);
    t.insert(key, n + 1)?;
    Ok(())
}

pub fn get(txn: &WriteTransaction, id: u64) -> Result<Option<MessageRecord>, MailError> {
    let t = txn.open_table(MESSAGES)?;
    Ok(t.get(id)?.map(|v| codec::decode(v.value())).transpose()?)
}

pub fn get_read(txn: &ReadTransaction, id: u64) -> Result<Option<MessageRecord>, MailError> {
    let t = txn.open_table(MESSAGES)?;
    Ok(t.get(id)?.map(|v| codec::decode(v.value())).transpose()?)
}

pub fn put(txn: &WriteTransaction, m: &MessageRecord) -> StoreResult<()> {
    txn.open_table(MESSAGES)?
        .insert(m.id, codec::encode(m).as_slice())?;
    Ok(())
}

pub fn put_body(txn: &WriteTransaction, id: u64, body: &Body) -> StoreResult<()> {
    txn.open_table(BODIES)?
        .insert(id, codec::encode(body).as_slice())?;
    Ok(())
}

pub fn body(txn: &WriteTransaction, id: u64) -> Result<Body, MailError> {
    let t = txn.open_table(BODIES)?;
    Ok(t.get(id)?
        .map(|v| codec::decode(v.value()))
        .transpose()?
        .unwrap_or_default())
}

/// Puts a message in the ready queue.
pub fn enqueue_ready(txn: &WriteTransaction, m: &MessageRecord) -> StoreResult<()> {
    txn.open_table(QUEUE)?
        .insert((m.priority.lane(), m.id), ())?;
    Ok(())
}

/// Takes a message out of whichever queue holds it.
pub fn dequeue(txn: &WriteTransaction, m: &MessageRecord) -> StoreResult<()> {
    txn.open_table(QUEUE)?.remove((m.priority.lane(), m.id))?;
    if let Some(due) = m.next_attempt_ms {
        txn.open_table(DELAYED)?.remove((due, m.id))?;
    }
    Ok(())
}

/// Moves retries that are due into the ready queue; returns the earliest retry still waiting.
pub fn promote_due(txn: &WriteTransaction, now: i64) -> StoreResult<Option<i64>> {
    let mut delayed = txn.open_table(DELAYED)?;
    let mut queue = txn.open_table(QUEUE)?;
    let mut due = Vec::new();
    let mut next = None;
    for row in delayed.iter()? {
        let (k, v) = row?;
        let (at, id) = k.value();
        if at > now {
            next = Some(at);
            break;
        }
        due.push((at, id, v.value()));
    }
    for (at, id, lane) in due {
        delayed.remove((at, id))?;
        queue.insert((lane, id), ())?;
    }
    Ok(next)
}

/// Claims up to `n` ready messages, urgent first, marking each `Sending` with one more attempt.
pub fn claim(
    txn: &WriteTransaction,
    n: usize,
    now: i64,
) -> Result<Vec<(MessageRecord, Body)>, MailError> {
    let keys: Vec<(u8, u64)> = {
        let queue = txn.open_table(QUEUE)?;
        queue
            .iter()?
            .take(n)
            .map(|r| r.map(|(k, _)| k.value()))
            .collect::<Result<_, _>>()?
    };
    let mut out = Vec::with_capacity(keys.len());
    let mut queue = txn.open_table(QUEUE)?;
    let mut sending = txn.open_table(SENDING)?;
    for (lane, id) in keys {
        queue.remove((lane, id))?;
        let Some(mut m) = get(txn, id)? else { continue };
        if m.status != Status::Queued {
            continue;
        }
        m.status = Status::Sending;
        m.attempts += 1;
        m.next_attempt_ms = None;
        m.updated_ms = now;
        put(txn, &m)?;
        sending.insert(id, ())?;
        let b = body(txn, id)?;
        out.push((m, b));
    }
    Ok(out)
}

/// Whether any message is ready to send.
pub fn has_ready(txn: &WriteTransaction) -> StoreResult<bool> {
    Ok(txn.open_table(QUEUE)?.first()?.is_some())
}

/// At start: messages left `Sending` by a process that stopped mid-attempt go back to the queue.
pub fn recover_interrupted(txn: &WriteTransaction, now: i64) -> Result<u64, MailError> {
    let ids: Vec<u64> = {
        let t = txn.open_table(SENDING)?;
        t.iter()?
            .map(|r| r.map(|(k, _)| k.value()))
            .collect::<Result<_, _>>()?
    };
    let mut interrupted = Vec::new();
    for id in ids {
        txn.open_table(SENDING)?.remove(id)?;
        if let Some(m) = get(txn, id)?
            && m.status == Status::Sending
        {
            interrupted.push(m);
        }
    }
    let n = interrupted.len() as u64;
    for mut m in interrupted {
        m.status = Status::Queued;
        let attempt = m.attempts;
        m.push_log(
            now,
            LogKind::Interrupted,
            attempt,
            "hearth stopped during this attempt; the message went back to the queue".into(),
            None,
        );
        put(txn, &m)?;
        enqueue_ready(txn, &m)?;
    }
    Ok(n)
}

pub fn template(txn: &ReadTransaction, name: &str) -> Result<Option<Template>, MailError> {
    let t = txn.open_table(TEMPLATES)?;
    Ok(t.get(name)?.map(|v| codec::decode(v.value())).transpose()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::model::{Category, Priority};
    use crate::store::Db;

    fn record(id: u64, priority: Priority) -> MessageRecord {
        MessageRecord {
            id,
            status: Status::Queued,
            priority,
            category: Category::Internal,
            from: "a@test.invalid".into(),
            to: vec!["b@test.invalid".into()],
            cc: vec![],
            bcc: vec![],
            subject: "s".into(),
            template: None,
            attachments: vec![],
            created_ms: 0,
            updated_ms: 0,
            deadline_ms: i64::MAX,
            next_attempt_ms: None,
            attempts: 0,
            sent_ms: None,
            last_error: None,
            last_code: None,
            dedup_key: None,
            log: vec![],
        }
    }

    #[test]
    fn claims_urgent_first_and_requeues_interrupted_attempts() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("t.redb"), 1 << 20).unwrap();
        let claimed = db
            .write_blocking(|txn| {
                for (id, p) in [
                    (1, Priority::Low),
                    (2, Priority::Normal),
                    (3, Priority::Urgent),
                ] {
                    let m = record(id, p);
                    put(txn, &m)?;
                    put_body(txn, id, &Body::default())?;
                    enqueue_ready(txn, &m)?;
                }
                claim(txn, 2, 10)
            })
            .unwrap();
        let ids: Vec<u64> = claimed.iter().map(|(m, _)| m.id).collect();
        assert_eq!(ids, [3, 2]);
        assert!(
            claimed
                .iter()
                .all(|(m, _)| m.status == Status::Sending && m.attempts == 1)
        );

        // The process "dies" here: both stay `sending` until the next start re-queues them.
        let n = db
            .write_blocking(|txn| recover_interrupted(txn, 20))
            .unwrap();
        assert_eq!(n, 2);
        let again = db.write_blocking(|txn| claim(txn, 10, 30)).unwrap();
        let ids: Vec<u64> = again.iter().map(|(m, _)| m.id).collect();
        assert_eq!(ids, [3, 2, 1]);
        let m3 = &again[0].0;
        assert_eq!(m3.attempts, 2);
        assert_eq!(m3.log[0].kind, LogKind::Interrupted);
        assert_eq!(m3.log[0].attempt, 1);
    }
}
