//! The event bus against a real redb file: durable delivery across restarts, retries with
//! backoff into the dead-letter queue, replay, priorities, retention, and a SIGKILL crash test.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hearth::bus::{Bus, ConsumerSpec, Delivery, Outcome, Priority, StartAt};
use hearth::config::{BusConfig, HumanDuration};
use hearth::store::Db;
use tokio_util::sync::CancellationToken;

use crate::common::wait_for;

fn open(dir: &Path) -> (Db, Bus) {
    let db = Db::open(&dir.join("hearth.redb"), 4 << 20).unwrap();
    let bus = Bus::new(db.clone(), BusConfig::default());
    (db, bus)
}

async fn publish(db: &Db, bus: &Bus, subject: &str, priority: Priority, n: u64) -> Vec<u64> {
    let bus = bus.clone();
    let subject = subject.to_string();
    db.write(move |txn| {
        let mut seqs = Vec::new();
        for i in 0..n {
            seqs.push(bus.publish_durable(
                txn,
                &subject,
                priority,
                &serde_json::json!({ "i": i }),
            )?);
        }
        Ok::<_, hearth::bus::BusError>(seqs)
    })
    .await
    .unwrap()
}

type Seen = Arc<Mutex<Vec<(u64, String, u32)>>>;

fn recorder(
    seen: &Seen,
) -> impl Fn(Delivery) -> std::future::Ready<Outcome> + Send + Sync + 'static {
    let seen = seen.clone();
    move |d: Delivery| {
        seen.lock()
            .unwrap()
            .push((d.event.seq, d.event.subject.clone(), d.attempt));
        std::future::ready(Outcome::Ack)
    }
}

async fn stop(token: CancellationToken, tasks: Vec<tokio::task::JoinHandle<()>>, bus: Bus) {
    token.cancel();
    for t in tasks {
        t.await.unwrap();
    }
    bus.clear();
}

#[tokio::test]
async fn ephemeral_fan_out_filters_by_pattern() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, bus) = open(dir.path());
    let mut typing = bus.subscribe(&["chat.*.typing"]);
    let mut all = bus.subscribe(&[">"]);
    bus.publish("chat.42.typing", serde_json::json!({"who": "ann"}));
    bus.publish("issue.created", serde_json::json!({}));
    let m = typing.recv().await.unwrap();
    assert_eq!(m.subject, "chat.42.typing");
    assert_eq!(all.recv().await.unwrap().subject, "chat.42.typing");
    assert_eq!(all.recv().await.unwrap().subject, "issue.created");
    // Nothing else is queued for the typing subscriber.
    bus.publish("chat.42.typing", serde_json::json!({"who": "bob"}));
    assert_eq!(typing.recv().await.unwrap().payload["who"], "bob");
}

#[tokio::test]
async fn durable_event_exists_only_if_the_transaction_commits() {
    let dir = tempfile::tempdir().unwrap();
    let (db, bus) = open(dir.path());
    let b = bus.clone();
    let r: Result<(), hearth::bus::BusError> = db
        .write(move |txn| {
            b.publish_durable(txn, "issue.created", Priority::Normal, &1)?;
            Err(hearth::bus::BusError::Payload(
                "caller's change failed".into(),
            ))
        })
        .await;
    assert!(r.is_err());
    assert_eq!(
        bus.stats().await.unwrap().head_seq,
        0,
        "an aborted transaction published nothing"
    );
    publish(&db, &bus, "issue.created", Priority::Normal, 1).await;
    assert_eq!(bus.stats().await.unwrap().head_seq, 1);
}

#[tokio::test]
async fn durable_delivery_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let seen: Seen = Default::default();
    {
        let (db, bus) = open(dir.path());
        bus.register(
            ConsumerSpec::new("indexer", &["issue.>"]).start_at(StartAt::Beginning),
            recorder(&seen),
        );
        let token = CancellationToken::new();
        let tasks = bus.start(token.clone());
        publish(&db, &bus, "issue.created", Priority::Normal, 3).await;
        publish(&db, &bus, "mail.sent", Priority::Normal, 2).await;
        wait_for(
            "first three deliveries",
            Duration::from_secs(10),
            || async { (seen.lock().unwrap().len() == 3).then_some(()) },
        )
        .await;
        stop(token, tasks, bus).await;
        // Published while the consumer is down.
        let (db2, bus2) = (db.clone(), Bus::new(db.clone(), BusConfig::default()));
        publish(&db2, &bus2, "issue.regressed", Priority::Normal, 2).await;
    }
    let (_db, bus) = open(dir.path());
    bus.register(
        ConsumerSpec::new("indexer", &["issue.>"]).start_at(StartAt::Beginning),
        recorder(&seen),
    );
    let token = CancellationToken::new();
    let tasks = bus.start(token.clone());
    wait_for(
        "deliveries after restart",
        Duration::from_secs(10),
        || async { (seen.lock().unwrap().len() >= 5).then_some(()) },
    )
    .await;
    let got = seen.lock().unwrap().clone();
    let subjects: Vec<&str> = got.iter().map(|(_, s, _)| s.as_str()).collect();
    assert_eq!(
        subjects,
        [
            "issue.created",
            "issue.created",
            "issue.created",
            "issue.regressed",
            "issue.regressed"
        ],
        "acked events are not redelivered after restart and non-matching ones are skipped"
    );
    stop(token, tasks, bus).await;
}

#[tokio::test]
async fn failing_consumer_dead_letters_after_max_deliver_with_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let (db, bus) = open(dir.path());
    let attempts: Arc<Mutex<Vec<(u32, Instant)>>> = Default::default();
    let a = attempts.clone();
    let backoff = vec![Duration::from_millis(100), Duration::from_millis(300)];
    bus.register(
        ConsumerSpec::new("webhooks", &["alert.>"])
            .max_deliver(4)
            .backoff(backoff),
        move |d: Delivery| {
            a.lock().unwrap().push((d.attempt, Instant::now()));
            std::future::ready(Outcome::retry(format!(
                "receiver answered 500 (attempt {})",
                d.attempt
            )))
        },
    );
    let mut dlq_notices = bus.subscribe(&["$sys.dlq.*"]);
    let token = CancellationToken::new();
    let tasks = bus.start(token.clone());
    let seq = publish(&db, &bus, "alert.deliver", Priority::High, 1).await[0];
    let letter = wait_for("the dead letter", Duration::from_secs(20), || async {
        bus.dlq_get("webhooks", seq).await.ok()
    })
    .await;
    assert_eq!(letter.attempts.len(), 4);
    assert_eq!(letter.error, "receiver answered 500 (attempt 4)");
    assert_eq!(letter.event.subject, "alert.deliver");
    let times = attempts.lock().unwrap().clone();
    assert_eq!(times.iter().map(|t| t.0).collect::<Vec<_>>(), [1, 2, 3, 4]);
    // The waits follow the backoff list (the last entry repeats); a nak never retries at once.
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1].1 - w[0].1).collect();
    assert!(gaps[0] >= Duration::from_millis(100), "{gaps:?}");
    assert!(gaps[1] >= Duration::from_millis(300), "{gaps:?}");
    assert!(gaps[2] >= Duration::from_millis(300), "{gaps:?}");
    let notice = dlq_notices.recv().await.unwrap();
    assert_eq!(notice.subject, "$sys.dlq.webhooks");
    assert_eq!(notice.payload["seq"], seq);
    let stats = bus.stats().await.unwrap();
    let c = stats
        .consumers
        .iter()
        .find(|c| c.name == "webhooks")
        .unwrap();
    assert_eq!((c.pending, c.dead_letters), (0, 1));
    stop(token, tasks, bus).await;
}

#[tokio::test]
async fn term_dead_letters_at_once_and_replay_from_dlq_redelivers() {
    let dir = tempfile::tempdir().unwrap();
    let (db, bus) = open(dir.path());
    let healthy = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen: Seen = Default::default();
    let (h, s) = (healthy.clone(), seen.clone());
    bus.register(
        ConsumerSpec::new("mailer", &["mail.>"]),
        move |d: Delivery| {
            s.lock()
                .unwrap()
                .push((d.event.seq, d.event.subject.clone(), d.attempt));
            std::future::ready(if h.load(std::sync::atomic::Ordering::SeqCst) {
                Outcome::Ack
            } else {
                Outcome::Term("550 mailbox unavailable".into())
            })
        },
    );
    let token = CancellationToken::new();
    let tasks = bus.start(token.clone());
    let seqs = publish(&db, &bus, "mail.queued", Priority::Normal, 2).await;
    wait_for("two dead letters", Duration::from_secs(10), || async {
        (bus.dlq_list(Some("mailer".into()), 10).await.unwrap().len() == 2).then_some(())
    })
    .await;
    assert_eq!(seen.lock().unwrap().len(), 2, "term does not retry");
    healthy.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(bus.dlq_replay("mailer", Some(seqs[0])).await.unwrap(), 1);
    wait_for("replayed delivery", Duration::from_secs(10), || async {
        (seen.lock().unwrap().len() == 3).then_some(())
    })
    .await;
    assert_eq!(seen.lock().unwrap()[2].0, seqs[0]);
    assert_eq!(
        bus.dlq_list(Some("mailer".into()), 10).await.unwrap().len(),
        1
    );
    assert_eq!(bus.dlq_replay("mailer", None).await.unwrap(), 1);
    wait_for("replay all", Duration::from_secs(10), || async {
        (seen.lock().unwrap().len() == 4).then_some(())
    })
    .await;
    assert!(bus.dlq_list(None, 10).await.unwrap().is_empty());
    assert!(bus.dlq_replay("mailer", Some(999)).await.is_err());
    stop(token, tasks, bus).await;
}

#[tokio::test]
async fn replay_from_sequence_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let (db, bus) = open(dir.path());
    let seen: Seen = Default::default();
    bus.register(
        ConsumerSpec::new("search", &[">"]).start_at(StartAt::Beginning),
        recorder(&seen),
    );
    let token = CancellationToken::new();
    let tasks = bus.start(token.clone());
    let seqs = publish(&db, &bus, "event.stored", Priority::Normal, 5).await;
    wait_for("five", Duration::from_secs(10), || async {
        (seen.lock().unwrap().len() == 5).then_some(())
    })
    .await;
    bus.replay_from_seq("search", seqs[3]).await.unwrap();
    // Wake the dispatcher the way any commit does.
    publish(&db, &bus, "event.stored", Priority::Normal, 1).await;
    wait_for("replayed tail", Duration::from_secs(10), || async {
        (seen.lock().unwrap().len() == 8).then_some(())
    })
    .await;
    let tail: Vec<u64> = seen.lock().unwrap()[5..].iter().map(|s| s.0).collect();
    assert_eq!(tail, [seqs[3], seqs[4], seqs[4] + 1]);
    let first = bus.replay_from_time("search", 0).await.unwrap();
    assert_eq!(first, seqs[0]);
    publish(&db, &bus, "event.stored", Priority::Normal, 1).await;
    wait_for("replay from time", Duration::from_secs(10), || async {
        (seen.lock().unwrap().len() == 8 + 7).then_some(())
    })
    .await;
    assert!(bus.replay_from_seq("nobody", 1).await.is_err());
    stop(token, tasks, bus).await;
}

#[tokio::test]
async fn a_consumer_that_is_behind_gets_higher_priorities_first() {
    let dir = tempfile::tempdir().unwrap();
    let (db, bus) = open(dir.path());
    publish(&db, &bus, "job.low", Priority::Low, 3).await;
    publish(&db, &bus, "job.normal", Priority::Normal, 3).await;
    publish(&db, &bus, "job.urgent", Priority::Urgent, 3).await;
    publish(&db, &bus, "job.high", Priority::High, 3).await;
    let seen: Seen = Default::default();
    bus.register(
        ConsumerSpec::new("worker", &["job.*"]).start_at(StartAt::Beginning),
        recorder(&seen),
    );
    let token = CancellationToken::new();
    let tasks = bus.start(token.clone());
    wait_for("all twelve", Duration::from_secs(10), || async {
        (seen.lock().unwrap().len() == 12).then_some(())
    })
    .await;
    let order: Vec<String> = seen.lock().unwrap().iter().map(|s| s.1.clone()).collect();
    let expected: Vec<String> = ["job.urgent", "job.high", "job.normal", "job.low"]
        .iter()
        .flat_map(|s| std::iter::repeat_n(s.to_string(), 3))
        .collect();
    assert_eq!(order, expected);
    stop(token, tasks, bus).await;
}

#[tokio::test]
async fn retention_prunes_only_what_every_consumer_acked() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&dir.path().join("hearth.redb"), 4 << 20).unwrap();
    let config = BusConfig {
        retention_max_events: 1,
        retention_max_age: HumanDuration::secs(3600),
        ..BusConfig::default()
    };
    let bus = Bus::new(db.clone(), config);
    let seen: Seen = Default::default();
    let stuck = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let s = stuck.clone();
    bus.register(
        ConsumerSpec::new("fast", &[">"]).start_at(StartAt::Beginning),
        recorder(&seen),
    );
    bus.register(
        ConsumerSpec::new("slow", &["keep.*"])
            .start_at(StartAt::Beginning)
            .backoff(vec![Duration::from_millis(50)])
            .max_deliver(1000),
        move |_d: Delivery| {
            std::future::ready(if s.load(std::sync::atomic::Ordering::SeqCst) {
                Outcome::retry("not yet")
            } else {
                Outcome::Ack
            })
        },
    );
    let token = CancellationToken::new();
    let tasks = bus.start(token.clone());
    publish(&db, &bus, "drop.me", Priority::Normal, 5).await;
    let kept = publish(&db, &bus, "keep.me", Priority::Normal, 1).await[0];
    wait_for("fast consumer done", Duration::from_secs(10), || async {
        (seen.lock().unwrap().len() == 6).then_some(())
    })
    .await;
    wait_for(
        "slow consumer has it pending",
        Duration::from_secs(10),
        || async {
            let st = bus.stats().await.unwrap();
            (st.consumers
                .iter()
                .find(|c| c.name == "slow")
                .unwrap()
                .pending
                == 1)
                .then_some(())
        },
    )
    .await;
    // Acked events beyond the count limit go once the fast consumer's cursor is committed
    // (dispatchers commit cursor-only progress every half second, not per event).
    wait_for(
        "acked events beyond the count limit pruned",
        Duration::from_secs(10),
        || async {
            bus.prune().await.unwrap();
            (bus.stats().await.unwrap().log_len == 1).then_some(())
        },
    )
    .await;
    assert!(
        bus.event(kept).await.unwrap().is_some(),
        "a pending event is never pruned"
    );
    stuck.store(false, std::sync::atomic::Ordering::SeqCst);
    wait_for("slow consumer acks", Duration::from_secs(10), || async {
        let st = bus.stats().await.unwrap();
        (st.consumers
            .iter()
            .find(|c| c.name == "slow")
            .unwrap()
            .pending
            == 0)
            .then_some(())
    })
    .await;
    stop(token, tasks, bus).await;
}

/// The child half of the crash test: publishes durable events in small transactions forever,
/// printing each committed event id, while a consumer acks them into a file. Does nothing unless
/// started by `committed_events_survive_sigkill`.
#[tokio::test]
async fn crash_child() {
    let Ok(dir) = std::env::var("HEARTH_CRASH_CHILD_DIR") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let (db, bus) = open(&dir);
    let log = Arc::new(Mutex::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("delivered.txt"))
            .unwrap(),
    ));
    bus.register(
        ConsumerSpec::new("crash", &["crash.*"]).start_at(StartAt::Beginning),
        move |d: Delivery| {
            use std::io::Write;
            let mut f = log.lock().unwrap();
            writeln!(f, "{}", d.event.id).unwrap();
            std::future::ready(Outcome::Ack)
        },
    );
    let _tasks = bus.start(CancellationToken::new());
    let mut out = std::io::stdout();
    loop {
        let b = bus.clone();
        let ids: Vec<String> = db
            .write(move |txn| {
                let mut seqs = Vec::new();
                for _ in 0..5 {
                    seqs.push(b.publish_durable(txn, "crash.event", Priority::Normal, &"x")?);
                }
                Ok::<_, hearth::bus::BusError>(seqs)
            })
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.to_string())
            .collect();
        use std::io::Write;
        // Printed only after commit: every line names an event that must never be lost.
        writeln!(out, "COMMITTED {}", ids.join(" ")).unwrap();
        out.flush().unwrap();
    }
}

#[tokio::test]
async fn committed_events_survive_sigkill() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut child = std::process::Command::new(exe)
        .args([
            "--exact",
            "bus::crash_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("HEARTH_CRASH_CHILD_DIR", dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut committed: BTreeSet<u64> = BTreeSet::new();
    let mut lines = std::io::BufReader::new(stdout).lines();
    // Let it run through many commits (and deliveries), then kill it mid-stream.
    while committed.len() < 2000 {
        let line = lines.next().expect("child exited early").unwrap();
        if let Some(rest) = line.strip_prefix("COMMITTED ") {
            committed.extend(rest.split(' ').map(|s| s.parse::<u64>().unwrap()));
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    for line in lines.map_while(Result::ok) {
        if let Some(rest) = line.strip_prefix("COMMITTED ") {
            committed.extend(rest.split(' ').map(|s| s.parse::<u64>().unwrap()));
        }
    }

    // Restart on the same file: every committed event is delivered (before or after the crash).
    let (_db, bus) = open(dir.path());
    let delivered_after: Arc<Mutex<HashSet<u64>>> = Default::default();
    let d = delivered_after.clone();
    bus.register(
        ConsumerSpec::new("crash", &["crash.*"]).start_at(StartAt::Beginning),
        move |del: Delivery| {
            d.lock().unwrap().insert(del.event.seq);
            std::future::ready(Outcome::Ack)
        },
    );
    let token = CancellationToken::new();
    let tasks = bus.start(token.clone());
    let head = bus.stats().await.unwrap().head_seq;
    assert!(
        head >= *committed.last().unwrap(),
        "the log lost committed events"
    );
    let ids_by_seq = {
        let mut m = std::collections::HashMap::new();
        for seq in committed.iter() {
            let ev = bus
                .event(*seq)
                .await
                .unwrap()
                .expect("committed event missing from the log");
            m.insert(ev.id.clone(), *seq);
        }
        m
    };
    let before: HashSet<u64> = std::fs::read_to_string(dir.path().join("delivered.txt"))
        .unwrap_or_default()
        .lines()
        .filter_map(|id| ids_by_seq.get(id).copied())
        .collect();
    wait_for(
        "every committed event delivered",
        Duration::from_secs(30),
        || async {
            let after = delivered_after.lock().unwrap();
            committed
                .iter()
                .all(|s| before.contains(s) || after.contains(s))
                .then_some(())
        },
    )
    .await;
    assert!(
        !before.is_empty(),
        "the consumer was delivering before the crash"
    );
    stop(token, tasks, bus).await;
}

#[tokio::test]
async fn dead_letters_over_the_admin_api() {
    use crate::common::{TestServer, test_config};
    use hearth::accounts::Role;
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with_hook(test_config(dir.path()), |state| {
        state
            .bus
            .register(ConsumerSpec::new("flaky", &["flaky.*"]), |_d: Delivery| {
                std::future::ready(Outcome::Term("receiver is gone".into()))
            });
    })
    .await;
    let seq = publish(
        &s.state.db,
        &s.state.bus,
        "flaky.thing",
        Priority::Normal,
        1,
    )
    .await[0];
    let admin = s.client(Role::Admin).await;
    let viewer = s.client(Role::Viewer).await;
    let list: serde_json::Value =
        wait_for("dead letter listed", Duration::from_secs(10), || async {
            let v: serde_json::Value = viewer
                .get("/api/bus/dlq?consumer=flaky")
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            (v["dead_letters"].as_array().unwrap().len() == 1).then_some(v)
        })
        .await;
    assert_eq!(list["dead_letters"][0]["error"], "receiver is gone");
    assert_eq!(list["dead_letters"][0]["event"]["subject"], "flaky.thing");
    let one: serde_json::Value = viewer
        .get(&format!("/api/bus/dlq/flaky/{seq}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["attempts"].as_array().unwrap().len(), 1);
    let stats: serde_json::Value = viewer
        .get("/api/bus")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let flaky = stats["consumers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "flaky")
        .unwrap()
        .clone();
    assert_eq!(flaky["dead_letters"], 1);
    // Viewers may look but not act.
    let r = viewer
        .post(&format!("/api/bus/dlq/flaky/{seq}/replay"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r: serde_json::Value = admin
        .post(&format!("/api/bus/dlq/flaky/{seq}/replay"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["replayed"], 1);
    // It fails again (Term) and comes back to the queue; then purge it.
    wait_for("dead again", Duration::from_secs(10), || async {
        let v: serde_json::Value = viewer
            .get("/api/bus/dlq")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (v["dead_letters"].as_array().unwrap().len() == 1).then_some(())
    })
    .await;
    let metrics = viewer
        .get("/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("hearth_bus_dlq_size 1"), "{metrics}");
    assert!(
        metrics.contains("hearth_bus_consumer_lag{consumer=\"flaky\"}"),
        "{metrics}"
    );
    let r: serde_json::Value = admin
        .delete("/api/bus/dlq?consumer=flaky")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["purged"], 1);
    let r = admin
        .post("/api/bus/consumers/flaky/replay")
        .json(&serde_json::json!({"from_seq": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = admin
        .post("/api/bus/consumers/nobody/replay")
        .json(&serde_json::json!({"from_seq": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    s.stop().await;
}

fn consumer_stats(stats: &hearth::bus::BusStats, name: &str) -> hearth::bus::ConsumerStats {
    stats
        .consumers
        .iter()
        .find(|c| c.name == name)
        .unwrap()
        .clone()
}

/// A handler that panics, before its future exists or inside it after an await, costs one
/// attempt: the delivery is retried with the backoff, lands in the dead-letter queue after
/// max_deliver like any failure, and the consumer goes on delivering what comes next. Before,
/// the panic ended the dispatcher task and nothing was delivered again.
#[tokio::test]
async fn a_panicking_handler_is_a_failed_attempt_and_the_consumer_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (db, bus) = open(dir.path());
    let seen: Seen = Default::default();
    let record = recorder(&seen);
    bus.register(
        ConsumerSpec::new("fragile", &["job.*"])
            .max_deliver(3)
            .backoff(vec![Duration::from_millis(50)]),
        move |d: Delivery| {
            if d.event.subject == "job.bad" {
                panic!("cannot handle event {}", d.event.seq);
            }
            let later = d.event.subject == "job.worse";
            let done = record(d);
            async move {
                if later {
                    tokio::task::yield_now().await;
                    panic!("gave up half way");
                }
                done.await
            }
        },
    );
    let token = CancellationToken::new();
    let tasks = bus.start(token.clone());
    let bad = publish(&db, &bus, "job.bad", Priority::Normal, 1).await[0];
    let worse = publish(&db, &bus, "job.worse", Priority::Normal, 1).await[0];
    publish(&db, &bus, "job.good", Priority::Normal, 3).await;
    let letters = wait_for("both dead letters", Duration::from_secs(20), || async {
        let l = bus.dlq_list(Some("fragile".into()), 10).await.unwrap();
        (l.len() == 2).then_some(l)
    })
    .await;
    for (letter, seq, why) in [
        (&letters[0], bad, "cannot handle event"),
        (&letters[1], worse, "gave up half way"),
    ] {
        assert_eq!(letter.event.seq, seq);
        assert_eq!(letter.attempts.len(), 3, "retried up to max_deliver");
        assert!(
            letter.error.starts_with("the handler panicked: ") && letter.error.contains(why),
            "{}",
            letter.error
        );
    }
    wait_for("the good events", Duration::from_secs(10), || async {
        let good = seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, s, _)| s == "job.good")
            .count();
        (good == 3).then_some(())
    })
    .await;
    let c = consumer_stats(&bus.stats().await.unwrap(), "fragile");
    assert_eq!((c.handler_panics, c.restarts, c.running), (6, 0, true));
    assert_eq!((c.pending, c.dead_letters), (0, 2));
    stop(token, tasks, bus).await;
}

/// A panic payload that panics again when it is dropped: the one way left for a handler to
/// take its dispatcher down (the handler's panic is caught, dropping the payload is not).
struct PanicOnDrop;

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("a panic payload that panics when dropped");
    }
}

/// A dispatcher that dies is restarted by its supervisor, counted, and delivers the event it
/// died on again.
#[tokio::test]
async fn a_dispatcher_that_dies_is_restarted_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (db, bus) = open(dir.path());
    let seen: Seen = Default::default();
    let record = recorder(&seen);
    let crashed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let c = crashed.clone();
    bus.register(
        ConsumerSpec::new("brittle", &["job.*"]),
        move |d: Delivery| {
            if !c.swap(true, std::sync::atomic::Ordering::SeqCst) {
                std::panic::panic_any(PanicOnDrop);
            }
            record(d)
        },
    );
    let token = CancellationToken::new();
    let tasks = bus.start(token.clone());
    let seq = publish(&db, &bus, "job.one", Priority::Normal, 1).await[0];
    wait_for(
        "delivery after the restart",
        Duration::from_secs(20),
        || async { (seen.lock().unwrap().iter().any(|(s, _, _)| *s == seq)).then_some(()) },
    )
    .await;
    assert!(crashed.load(std::sync::atomic::Ordering::SeqCst));
    let c = consumer_stats(&bus.stats().await.unwrap(), "brittle");
    assert_eq!((c.restarts, c.running, c.handler_panics), (1, true, 1));
    assert!(bus.down_consumers().is_empty());
    stop(token, tasks, bus).await;
}

/// While a consumer's dispatcher is dead, `/health/ready` answers 503 and names it, and the
/// metrics count its restarts. (Before, ready said 200 while alerts stayed pending forever.)
#[tokio::test]
async fn ready_names_a_consumer_that_is_down() {
    use crate::common::{TestServer, test_config};
    use hearth::accounts::Role;
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with_hook(test_config(dir.path()), |state| {
        state.bus.register(
            ConsumerSpec::new("crashy", &["crashy.*"]),
            |_d: Delivery| -> std::future::Ready<Outcome> { std::panic::panic_any(PanicOnDrop) },
        );
    })
    .await;
    let ready = s.http.get(s.url("/health/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "ready before anything failed");
    publish(&s.state.db, &s.state.bus, "crashy.now", Priority::Normal, 1).await;
    let body = wait_for(
        "ready to report the dead consumer",
        Duration::from_secs(20),
        || async {
            let r = s.http.get(s.url("/health/ready")).send().await.unwrap();
            let status = r.status();
            let body: serde_json::Value = r.json().await.unwrap();
            (status == 503).then_some(body)
        },
    )
    .await;
    assert_eq!(body["error"]["code"], "unavailable");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("crashy") && !message.contains("payload"),
        "names the consumer, not the panic (ready is public): {message}"
    );
    let viewer = s.client(Role::Viewer).await;
    wait_for("a counted restart", Duration::from_secs(20), || async {
        let m = viewer
            .get("/metrics")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        (!m.contains("hearth_bus_consumer_restarts_total{consumer=\"crashy\"} 0")
            && m.contains("hearth_bus_consumer_restarts_total{consumer=\"crashy\"}"))
        .then_some(())
    })
    .await;
    s.stop().await;
}
