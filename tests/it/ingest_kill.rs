//! Kill -9 during ingest: every event id that got a 200 is present after restart, committed
//! again from the ingest log where the database's last synced commit did not have it.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{free_port, install_crypto, test_config, wait_for};

fn spawn_server(dir: &Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args([
            "serve",
            "--data-dir",
            dir.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--log-level",
            "warn",
        ])
        // A config file in the working directory must not leak in.
        .current_dir(dir)
        // No synced commit during the run: every acknowledged batch after the first is
        // durable only in the ingest log, so the restart must replay it.
        .env("HEARTH_INGEST__CHECKPOINT_INTERVAL", "1h")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn hearth")
}

async fn wait_ready(http: &reqwest::Client, port: u16) {
    wait_for("server ready", Duration::from_secs(30), || async {
        let r = http
            .get(format!("http://127.0.0.1:{port}/health/ready"))
            .send()
            .await
            .ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_acknowledged_event() {
    install_crypto();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    // Create the project with the library, then hand the data dir to the real binary.
    let (pid, key) = {
        let app = hearth::build(test_config(&dir)).unwrap();
        let (p, k) = app.state().accounts.create_project("kill").await.unwrap();
        (p.id, k.public_key)
    };
    let port = free_port();
    let mut child = spawn_server(&dir, port);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    wait_ready(&http, port).await;

    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut senders = Vec::new();
    for worker in 0..8 {
        let (http, key, acked, stop) = (http.clone(), key.clone(), acked.clone(), stop.clone());
        senders.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let id = uuid::Uuid::new_v4().simple().to_string();
                let body = format!(
                    "{{\"event_id\":\"{id}\"}}\n{{\"type\":\"event\"}}\n{{\"message\":\"worker {worker} event {n}\",\"level\":\"error\"}}\n"
                );
                let r = http
                    .post(format!("http://127.0.0.1:{port}/api/{pid}/envelope/"))
                    .header("x-sentry-auth", format!("Sentry sentry_key={key}"))
                    .body(body)
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 200 => acked.lock().unwrap().push(id),
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            }
        }));
    }
    // Kill while requests are in flight, once a good number were acknowledged.
    wait_for("300 acknowledged events", Duration::from_secs(60), || {
        let n = acked.lock().unwrap().len();
        async move { (n >= 300).then_some(()) }
    })
    .await;
    child.kill().expect("SIGKILL"); // std's kill is SIGKILL on Unix
    child.wait().unwrap();
    // Keep firing for a moment at the dead server, then stop the senders.
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for s in senders {
        s.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();

    // Opening the data directory commits the logged batches again.
    {
        let app = hearth::build(test_config(&dir)).unwrap();
        let mut metrics = String::new();
        app.state().ingest.render_metrics(&mut metrics);
        let replayed: u64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("hearth_ingest_log_replayed_batches_total "))
            .and_then(|v| v.parse().ok())
            .expect("replay metric");
        assert!(
            replayed > 0,
            "nothing was replayed from the ingest log: {metrics}"
        );
    }

    // Restart: the database opens cleanly and serves again.
    let mut child = spawn_server(&dir, port);
    wait_ready(&http, port).await;
    child.kill().unwrap();
    child.wait().unwrap();

    let app = hearth::build(test_config(&dir)).unwrap();
    let issues = app.state().issues.clone();
    let mut missing = Vec::new();
    let mut read_back = 0;
    for id in &acked {
        match issues.issue_of_event(id).await.unwrap() {
            None => missing.push(id.clone()),
            // The whole event reads back too, including those stored (and replayed) compressed
            // against their issue's reference event.
            Some(issue) => {
                let e = issues.event(issue, Some(id.clone())).await.unwrap();
                assert!(
                    e["event"]["message"]
                        .as_str()
                        .is_some_and(|m| m.starts_with("worker ")),
                    "event {id} read back wrong: {e}"
                );
                read_back += 1;
            }
        }
    }
    assert_eq!(read_back + missing.len(), acked.len());
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged events lost: {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(5)]
    );
}
