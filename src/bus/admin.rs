//! The operator's side of the bus: statistics, the dead-letter queue, replays, reading one
//! event, consumer health and retention on demand.

use super::*;
use crate::metrics::{self, Kind};

impl Bus {
    pub async fn stats(&self) -> Result<BusStats, BusError> {
        let inner = self.inner.clone();
        let delivered: HashMap<String, u64> = inner
            .delivered
            .lock()
            .expect("bus counters")
            .iter()
            .map(|(k, v)| (k.clone(), v.load(Ordering::Relaxed)))
            .collect();
        let specs: Vec<(ConsumerSpec, Option<HeldProgress>, [u64; 2], bool)> = inner
            .consumers
            .lock()
            .expect("bus registry")
            .iter()
            .map(|c| {
                (
                    c.spec.clone(),
                    *c.held.lock().expect("held cursors"),
                    [
                        c.restarts.load(Ordering::Relaxed),
                        c.panics.load(Ordering::Relaxed),
                    ],
                    c.running.load(Ordering::SeqCst),
                )
            })
            .collect();
        let subscribers = inner.ephemeral.receiver_count();
        inner
            .db
            .read(move |txn| {
                let head = head_seq_read(txn)?;
                let log_len = txn.open_table(LOG)?.len()?;
                let dlq = txn.open_table(DLQ)?;
                let dlq_len = dlq.len()?;
                let retries = txn.open_table(RETRIES)?;
                let states = txn.open_table(CONSUMERS)?;
                let lanes = txn.open_table(LANES)?;
                let mut consumers = Vec::new();
                for (spec, held, [restarts, handler_panics], running) in specs {
                    let name = spec.name.as_str();
                    let stored = match states.get(name)? {
                        Some(v) => codec::decode::<ConsumerState>(v.value())?.cursors,
                        None => [head; 4],
                    };
                    let cursors = match held {
                        Some(h) if h.stored == stored => h.cursors,
                        _ => stored,
                    };
                    let mut lag = 0u64;
                    for (lane, cursor) in cursors.iter().enumerate() {
                        // Counting is linear; cap it so a huge backlog cannot stall a scrape.
                        lag += lanes
                            .range((lane as u8, cursor + 1)..=(lane as u8, u64::MAX))?
                            .take(1_000_000)
                            .count() as u64;
                    }
                    let pending = retries.range((name, 0)..=(name, u64::MAX))?.count() as u64;
                    let dead = dlq.range((name, 0)..=(name, u64::MAX))?.count() as u64;
                    consumers.push(ConsumerStats {
                        delivered: delivered.get(name).copied().unwrap_or(0),
                        name: spec.name,
                        filter: spec.filter,
                        lag,
                        pending,
                        dead_letters: dead,
                        cursors,
                        running,
                        restarts,
                        handler_panics,
                    });
                }
                Ok::<_, BusError>(BusStats {
                    head_seq: head,
                    log_len,
                    dlq_len,
                    consumers,
                    ephemeral_subscribers: subscribers,
                })
            })
            .await
    }

    /// Dead letters, newest last; `consumer` narrows to one consumer.
    pub async fn dlq_list(
        &self,
        consumer: Option<String>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, BusError> {
        self.inner
            .db
            .read(move |txn| {
                let t = txn.open_table(DLQ)?;
                let mut out = Vec::new();
                let iter = match &consumer {
                    Some(c) => t.range((c.as_str(), 0)..=(c.as_str(), u64::MAX))?,
                    None => t.range::<(&str, u64)>(..)?,
                };
                for row in iter {
                    let (_, v) = row?;
                    out.push(codec::decode(v.value())?);
                    if out.len() >= limit {
                        break;
                    }
                }
                Ok::<_, BusError>(out)
            })
            .await
    }

    pub async fn dlq_get(&self, consumer: &str, seq: u64) -> Result<DeadLetter, BusError> {
        let consumer = consumer.to_string();
        self.inner
            .db
            .read(move |txn| {
                let t = txn.open_table(DLQ)?;
                match t.get((consumer.as_str(), seq))? {
                    Some(v) => Ok(codec::decode(v.value())?),
                    None => Err(BusError::UnknownDeadLetter(consumer, seq)),
                }
            })
            .await
    }

    /// Sends dead letters back to their consumer: one (`seq`), or all of that consumer's.
    /// Returns how many were re-queued.
    pub async fn dlq_replay(&self, consumer: &str, seq: Option<u64>) -> Result<u64, BusError> {
        let consumer = consumer.to_string();
        self.inner
            .db
            .write(move |txn| {
                let mut dlq = txn.open_table(DLQ)?;
                let keys: Vec<u64> = match seq {
                    Some(s) => {
                        if dlq.get((consumer.as_str(), s))?.is_none() {
                            return Err(BusError::UnknownDeadLetter(consumer, s));
                        }
                        vec![s]
                    }
                    None => dlq
                        .range((consumer.as_str(), 0)..=(consumer.as_str(), u64::MAX))?
                        .map(|r| r.map(|(k, _)| k.value().1))
                        .collect::<Result<_, _>>()?,
                };
                let mut retries = txn.open_table(RETRIES)?;
                for s in &keys {
                    let dead: DeadLetter = match dlq.remove((consumer.as_str(), *s))? {
                        Some(v) => codec::decode(v.value())?,
                        None => continue,
                    };
                    let retry = Retry {
                        attempts: 0,
                        next_at_ms: 0,
                        history: dead.attempts,
                        event: Some(dead.event),
                    };
                    retries.insert((consumer.as_str(), *s), codec::encode(&retry).as_slice())?;
                }
                Ok(keys.len() as u64)
            })
            .await
    }

    /// Deletes dead letters: one, all of a consumer's, or every one. Returns how many.
    pub async fn dlq_purge(
        &self,
        consumer: Option<String>,
        seq: Option<u64>,
    ) -> Result<u64, BusError> {
        self.inner
            .db
            .write(move |txn| {
                let mut dlq = txn.open_table(DLQ)?;
                let keys: Vec<(String, u64)> = {
                    let iter = match (&consumer, seq) {
                        (Some(c), Some(s)) => dlq.range((c.as_str(), s)..=(c.as_str(), s))?,
                        (Some(c), None) => dlq.range((c.as_str(), 0)..=(c.as_str(), u64::MAX))?,
                        (None, _) => dlq.range::<(&str, u64)>(..)?,
                    };
                    iter.map(|r| r.map(|(k, _)| (k.value().0.to_string(), k.value().1)))
                        .collect::<Result<_, _>>()?
                };
                for (c, s) in &keys {
                    dlq.remove((c.as_str(), *s))?;
                }
                Ok::<_, BusError>(keys.len() as u64)
            })
            .await
    }

    /// Re-delivers a consumer's events from sequence `from_seq` on (inclusive).
    pub async fn replay_from_seq(&self, consumer: &str, from_seq: u64) -> Result<(), BusError> {
        let registered = self
            .inner
            .consumers
            .lock()
            .expect("bus registry")
            .iter()
            .find(|c| c.spec.name == consumer)
            .cloned();
        let consumer = consumer.to_string();
        self.inner
            .db
            .write(move |txn| {
                if let Some(r) = &registered {
                    r.replays.fetch_add(1, Ordering::SeqCst);
                    *r.held.lock().expect("held cursors") = None;
                }
                let mut states = txn.open_table(CONSUMERS)?;
                let mut state: ConsumerState = match states.get(consumer.as_str())? {
                    Some(v) => codec::decode(v.value())?,
                    None => return Err(BusError::UnknownConsumer(consumer)),
                };
                state.cursors = [from_seq.saturating_sub(1); 4];
                states.insert(consumer.as_str(), codec::encode(&state).as_slice())?;
                Ok(())
            })
            .await
    }

    /// Re-delivers a consumer's events published at or after `time_ms`.
    pub async fn replay_from_time(&self, consumer: &str, time_ms: i64) -> Result<u64, BusError> {
        let first = self
            .inner
            .db
            .read(move |txn| {
                let log = txn.open_table(LOG)?;
                for row in log.iter()? {
                    let (seq, v) = row?;
                    let ev: Event = codec::decode(v.value())?;
                    if ev.time_ms >= time_ms {
                        return Ok::<_, BusError>(seq.value());
                    }
                }
                Ok(head_seq_read(txn)? + 1)
            })
            .await?;
        self.replay_from_seq(consumer, first).await?;
        Ok(first)
    }

    /// The event with sequence number `seq`, if the log still has it.
    pub async fn event(&self, seq: u64) -> Result<Option<Event>, BusError> {
        self.inner
            .db
            .read(move |txn| {
                let log = txn.open_table(LOG)?;
                Ok(log
                    .get(seq)?
                    .map(|v| codec::decode(v.value()))
                    .transpose()?)
            })
            .await
    }

    /// Consumers whose dispatcher has died and waits to be restarted (for `/health/ready`; the
    /// log says why). Empty before [`Bus::start`] as after it while all run.
    pub fn down_consumers(&self) -> Vec<String> {
        if !self.inner.started.load(Ordering::SeqCst) {
            return Vec::new();
        }
        self.inner
            .consumers
            .lock()
            .expect("bus registry")
            .iter()
            .filter(|c| !c.running.load(Ordering::SeqCst))
            .map(|c| c.spec.name.clone())
            .collect()
    }

    /// Names of registered consumers.
    pub fn consumer_names(&self) -> Vec<String> {
        self.inner
            .consumers
            .lock()
            .expect("bus registry")
            .iter()
            .map(|c| c.spec.name.clone())
            .collect()
    }

    /// Runs one retention pass now (the server runs it periodically).
    pub async fn prune(&self) -> Result<u64, BusError> {
        dispatch::prune_once(&self.inner).await
    }
}

impl BusStats {
    /// Appends the bus's Prometheus metrics: per-consumer progress, dead letters and log size.
    pub fn render_metrics(&self, out: &mut String) {
        type Field = fn(&ConsumerStats) -> u64;
        let per_consumer: [(&str, Kind, &str, Field); 6] = [
            (
                "hearth_bus_consumer_lag",
                Kind::Gauge,
                "Durable events a consumer has not looked at yet.",
                |c| c.lag,
            ),
            (
                "hearth_bus_consumer_pending",
                Kind::Gauge,
                "Delivered but unacked events.",
                |c| c.pending,
            ),
            (
                "hearth_bus_consumer_delivered_total",
                Kind::Counter,
                "Events acked since start.",
                |c| c.delivered,
            ),
            (
                "hearth_bus_consumer_up",
                Kind::Gauge,
                "Whether a consumer's dispatcher runs (0 while it waits to be restarted).",
                |c| c.running as u64,
            ),
            (
                "hearth_bus_consumer_restarts_total",
                Kind::Counter,
                "Dispatcher restarts after it died.",
                |c| c.restarts,
            ),
            (
                "hearth_bus_handler_panics_total",
                Kind::Counter,
                "Handler calls that panicked (each a failed attempt).",
                |c| c.handler_panics,
            ),
        ];
        for (name, kind, help, field) in per_consumer {
            let samples = self.consumers.iter().map(|c| (&c.name, field(c)));
            metrics::by_label(out, (name, kind, help), "consumer", samples);
        }
        metrics::gauge(out, "hearth_bus_dlq_size", "Dead letters.", self.dlq_len);
        let log = "hearth_bus_log_size";
        metrics::gauge(out, log, "Durable events in the log.", self.log_len);
    }
}
