//! Bus benchmark: durable publish → deliver throughput, and ephemeral fan-out.
//!
//! `cargo bench --bench bus` runs the full measurement; under `cargo test` (no `--bench`
//! argument) it runs a tiny smoke version so the target stays buildable and correct.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hearth::bus::{Bus, ConsumerSpec, Delivery, Outcome, Priority, StartAt};
use hearth::config::BusConfig;
use hearth::store::Db;
use tokio_util::sync::CancellationToken;

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (events, batch, subscribers, messages) = if full {
        (200_000u64, 100u64, 1000usize, 2_000u64)
    } else {
        (2_000, 100, 50, 50)
    };
    // HEARTH_BENCH_BATCH overrides the events per transaction, to see the per-commit cost.
    let batch = std::env::var("HEARTH_BENCH_BATCH")
        .ok()
        .and_then(|b| b.parse().ok())
        .unwrap_or(batch);
    rt.block_on(durable(events, batch));
    rt.block_on(fan_out(subscribers, messages));
}

async fn durable(total: u64, batch: u64) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&dir.path().join("hearth.redb"), 64 << 20).unwrap();
    let bus = Bus::new(db.clone(), BusConfig::default());
    let delivered = Arc::new(AtomicU64::new(0));
    let done = Arc::new(tokio::sync::Notify::new());
    let (d, n) = (delivered.clone(), done.clone());
    bus.register(
        ConsumerSpec::new("bench", &["bench.>"]).start_at(StartAt::Beginning),
        move |_del: Delivery| {
            if d.fetch_add(1, Ordering::Relaxed) + 1 == total {
                n.notify_one();
            }
            std::future::ready(Outcome::Ack)
        },
    );
    let token = CancellationToken::new();
    let tasks = bus.start(token.clone());
    let payload = serde_json::json!({"project_id": 1, "issue_id": 42, "level": "error", "release": "shop@1.4.2", "environment": "production", "title": "ZeroDivisionError: division by zero"});
    let start = Instant::now();
    let mut published = 0;
    while published < total {
        let b = bus.clone();
        let p = payload.clone();
        db.write(move |txn| {
            let mut publisher = b.publisher(txn)?;
            for _ in 0..batch {
                publisher.publish("bench.event.stored", Priority::Normal, &p)?;
            }
            Ok::<_, hearth::bus::BusError>(())
        })
        .await
        .unwrap();
        published += batch;
    }
    let publish_secs = start.elapsed().as_secs_f64();
    tokio::time::timeout(Duration::from_secs(600), done.notified())
        .await
        .expect("all events delivered");
    let total_secs = start.elapsed().as_secs_f64();
    println!(
        "durable: {total} events in batches of {batch}/txn: published {:.0}/s, published+delivered {:.0}/s ({total_secs:.2}s)",
        total as f64 / publish_secs,
        total as f64 / total_secs
    );
    token.cancel();
    for t in tasks {
        t.await.unwrap();
    }
    bus.clear();
}

async fn fan_out(subscribers: usize, messages: u64) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&dir.path().join("hearth.redb"), 4 << 20).unwrap();
    let bus = Bus::new(
        db,
        BusConfig {
            ephemeral_capacity: messages as usize + 16,
            ..BusConfig::default()
        },
    );
    let received = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for _ in 0..subscribers {
        let mut sub = bus.subscribe(&["chat.*.typing"]);
        let r = received.clone();
        handles.push(tokio::spawn(async move {
            let mut got = 0;
            while got < messages {
                sub.recv().await.unwrap();
                got += 1;
                r.fetch_add(1, Ordering::Relaxed);
            }
            sub.missed()
        }));
    }
    let start = Instant::now();
    for i in 0..messages {
        bus.publish("chat.7.typing", serde_json::json!({"visitor": i}));
    }
    let mut missed = 0;
    for h in handles {
        missed += h.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let deliveries = received.load(Ordering::Relaxed);
    println!(
        "ephemeral: {messages} messages to {subscribers} subscribers: {deliveries} deliveries in {secs:.3}s = {:.0} deliveries/s, {:.0} messages/s fanned out, {missed} missed",
        deliveries as f64 / secs,
        messages as f64 / secs
    );
}
