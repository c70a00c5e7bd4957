//! Heartbeats through the real binary: Healthchecks-style pings (start/finish pairs, exit
//! statuses, fail), a missed heartbeat raising DOWN, Uptime Kuma pushes, unknown ids, the rate
//! limit, and Sentry cron check-ins (captured Python SDK envelopes, then Sentry's HTTP form)
//! reaching the alert rules.

use std::time::Duration;

use serde_json::{Value, json};

use crate::binary::Hearth;
use crate::common::wait_for;
use crate::receiver::Receiver;

const T: Duration = Duration::from_secs(60);

async fn send_json(req: reqwest::RequestBuilder, body: Value) -> (u16, Value) {
    let r = req.json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn alerting_server(rx: &Receiver) -> (Hearth, String) {
    let h = Hearth::start("[alerts]\nallow_private_targets = true\n").await;
    let tok = h.owner().await.token;
    let (st, hook) = send_json(
        h.post(&tok, "/api/alerts/channels"),
        json!({"name": "hook", "type": "webhook", "url": rx.url("/hook")}),
    )
    .await;
    assert_eq!(st, 201);
    for kind in ["monitor_down", "monitor_up"] {
        let (st, _) = send_json(
            h.post(&tok, "/api/alerts/rules"),
            json!({"name": kind, "when": {"type": kind}, "channels": [hook["id"]], "throttle_minutes": 0}),
        )
        .await;
        assert_eq!(st, 201);
    }
    (h, tok)
}

/// The n-th webhook of `kind` ("monitor_down" / "monitor_up") for monitor `slug`.
async fn alert(rx: &Receiver, kind: &str, slug: &str, n: usize) -> Value {
    wait_for(&format!("{kind} #{n} for {slug}"), T, || async {
        let hits: Vec<_> = rx
            .at("/hook")
            .into_iter()
            .filter(|h| h.body["data"]["kind"] == kind && h.body["data"]["monitor"] == slug)
            .collect();
        hits.get(n - 1).map(|h| h.body.clone())
    })
    .await
}

async fn results(h: &Hearth, tok: &str, id: u64) -> Vec<Value> {
    let v: Value = h
        .get(tok, &format!("/api/monitors/{id}/results?limit=50"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["results"].as_array().unwrap().clone()
}

#[tokio::test]
async fn healthchecks_pings_and_kuma_pushes_drive_heartbeat_monitors() {
    let rx = Receiver::start(&[]).await;
    let (h, tok) = alerting_server(&rx).await;
    let (st, m) = send_json(
        h.post(&tok, "/api/monitors"),
        json!({"name": "Nightly backup",
               "heartbeat": {"schedule": {"kind": "interval", "value": "3s"}, "grace": "2s", "max_runtime": "30s"}}),
    )
    .await;
    assert_eq!(st, 201, "{m}");
    let id = m["id"].as_u64().unwrap();
    let ping_url = m["ping_url"].as_str().unwrap().to_string();
    assert!(ping_url.starts_with(&format!("{}/ping/", h.base)), "{m}");
    let http = reqwest::Client::new();

    // Unknown ids answer 404 without saying more.
    for url in [
        h.url("/ping/6f0ca3a6-7d38-4b0c-a1f8-2d1b3f0d9e11"),
        h.url("/ping/6f0ca3a6-7d38-4b0c-a1f8-2d1b3f0d9e11/start"),
        h.url("/api/push/nope?status=up"),
    ] {
        let r = http.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 404, "{url}");
    }
    let r = http.get(format!("{ping_url}/bogus")).send().await.unwrap();
    assert_eq!(r.status(), 404);

    // A run: start and finish paired by rid, the body kept.
    let r = http
        .get(format!("{ping_url}/start?rid=run-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (r.status().as_u16(), r.text().await.unwrap()),
        (200, "OK".into())
    );
    let r = http
        .post(format!("{ping_url}?rid=run-1"))
        .body("backup finished: 42 files")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http.head(&ping_url).send().await.unwrap();
    assert_eq!(r.status(), 200, "HEAD pings too");
    let rows = results(&h, &tok, id).await;
    let success = rows
        .iter()
        .find(|r| r["record"] == "success" && r["error"].is_string())
        .unwrap_or_else(|| panic!("a success with its body: {rows:?}"));
    assert_eq!(success["error"], "backup finished: 42 files");
    assert!(rows.iter().any(|r| r["record"] == "started"), "{rows:?}");
    let m: Value = h
        .get(&tok, &format!("/api/monitors/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(m["state"]["status"], "up", "{m}");
    assert!(m["expected"].is_string(), "{m}");

    // No ping within period + grace: missed, DOWN, alerted.
    let down = alert(&rx, "monitor_down", "nightly-backup", 1).await;
    assert!(
        down["data"]["title"]
            .as_str()
            .unwrap()
            .contains("Nightly backup is down"),
        "{down}"
    );
    assert!(
        results(&h, &tok, id)
            .await
            .iter()
            .any(|r| r["record"] == "missed"),
        "a missed record"
    );
    // Exit status 0 is a success: UP again.
    let r = http.get(format!("{ping_url}/0")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    alert(&rx, "monitor_up", "nightly-backup", 1).await;
    // A non-zero exit status is a failure: DOWN at once.
    let r = http.post(format!("{ping_url}/3")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    alert(&rx, "monitor_down", "nightly-backup", 2).await;

    // Uptime Kuma push: the same id; status=down, then up.
    let push_url = m["push_url"].as_str().unwrap();
    assert!(
        push_url.starts_with(&format!("{}/api/push/", h.base)),
        "{m}"
    );
    let r = http.get(push_url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"ok": true}));
    alert(&rx, "monitor_up", "nightly-backup", 2).await;

    // Pause: the heartbeat is not expected, nothing is missed.
    let (st, paused) = send_json(
        h.post(&tok, &format!("/api/monitors/{id}/pause")),
        json!({}),
    )
    .await;
    assert_eq!(st, 200, "{paused}");

    // Ping ids are rate-limited (the unknown as well as the known).
    let unknown = h.url("/ping/0b8e7a52-0000-4000-8000-000000000000");
    let mut codes = Vec::new();
    for _ in 0..61 {
        codes.push(http.get(&unknown).send().await.unwrap().status().as_u16());
    }
    assert_eq!(codes[0], 404);
    assert_eq!(*codes.last().unwrap(), 429, "{codes:?}");
    assert!(h.stop().await);
}

/// Rewrites a captured envelope: the check-in's status (and its item length).
fn envelope(name: &str, status: Option<&str>) -> Vec<u8> {
    envelope_with(name, status, None)
}

/// Rewrites a captured envelope: the check-in's status and id (and its item length).
fn envelope_with(name: &str, status: Option<&str>, check_in_id: Option<&str>) -> Vec<u8> {
    let path = crate::ingest::shared_dir()
        .join("fixtures/sentry")
        .join(format!("{name}.envelope"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    lines.next().unwrap();
    let mut item: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    if let Some(s) = status {
        item["status"] = json!(s);
    }
    if let Some(id) = check_in_id {
        item["check_in_id"] = json!(id);
    }
    let payload = serde_json::to_string(&item).unwrap();
    format!(
        "{header}\n{}\n{payload}\n",
        json!({"type": "check_in", "content_type": "application/json", "length": payload.len()})
    )
    .into_bytes()
}

#[tokio::test]
async fn sentry_check_ins_create_a_cron_monitor_whose_failures_alert() {
    let rx = Receiver::start(&[]).await;
    let (h, tok) = alerting_server(&rx).await;
    let (pid, dsn) = h.project(&tok, "shop").await;
    let key = dsn
        .split("://")
        .nth(1)
        .unwrap()
        .split('@')
        .next()
        .unwrap()
        .to_string();
    let http = reqwest::Client::new();
    let send = |body: Vec<u8>| {
        http.post(h.url(&format!("/api/{pid}/envelope/")))
            .header(
                "x-sentry-auth",
                format!("Sentry sentry_key={key}, sentry_version=7"),
            )
            .header("content-type", "application/x-sentry-envelope")
            .body(body)
            .send()
    };
    // The Python SDK's in_progress (with monitor_config) and ok, as captured.
    for name in ["py_check_in.1", "py_check_in.2"] {
        let r = send(envelope(name, None)).await.unwrap();
        assert_eq!(r.status(), 200, "{name}");
    }
    let monitor = wait_for("the cron monitor", T, || async {
        let list: Value = h
            .get(&tok, "/api/monitors")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        list["monitors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["slug"] == "nightly-report" && m["state"]["status"] == "up")
            .cloned()
    })
    .await;
    assert_eq!(monitor["sentry"]["project_id"], pid);
    assert_eq!(monitor["heartbeat"]["schedule"]["value"], "0 3 * * *");
    assert_eq!(monitor["heartbeat"]["schedule"]["tz"], "Europe/Vienna");
    assert_eq!(
        monitor["heartbeat"]["grace"], "300s",
        "checkin_margin 5 minutes"
    );
    assert_eq!(monitor["failure_threshold"], 2, "failure_issue_threshold");
    let id = monitor["id"].as_u64().unwrap();
    let rows = results(&h, &tok, id).await;
    let ok = rows.iter().find(|r| r["record"] == "success").expect("ok");
    assert_eq!(ok["response_ms"], 200, "duration 0.2 s: {rows:?}");

    // An update to the finished check-in is ignored, as Sentry ignores it (and an SDK's
    // retry of it counts once): still up.
    let r = send(envelope("py_check_in.2", Some("error")))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Two error check-ins, each a run of its own (failure_issue_threshold 2): DOWN, alerted.
    for run in [
        "e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1",
        "e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2",
    ] {
        let r = send(envelope_with("py_check_in.2", Some("error"), Some(run)))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let down = alert(&rx, "monitor_down", "nightly-report", 1).await;
    assert_eq!(down["data"]["payload"]["monitor_id"], id);

    // Sentry's HTTP check-in: a wrong key is refused, the right one recovers the monitor.
    let r = http
        .get(h.url(&format!(
            "/api/{pid}/cron/nightly-report/0000000000000000000000000000dead/?status=ok"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = http
        .get(h.url(&format!("/api/{pid}/cron/no-such-job/{key}/?status=ok")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = http
        .get(h.url(&format!("/api/{pid}/cron/nightly-report/{key}/?status=ok")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    alert(&rx, "monitor_up", "nightly-report", 1).await;
    assert!(h.stop().await);
}

/// A heartbeat expected while Hearth itself was stopped is recorded unknown, not missed, and
/// raises no DOWN when Hearth comes back.
#[tokio::test]
async fn an_expected_ping_during_a_restart_is_unknown_not_missed() {
    let rx = Receiver::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = "[alerts]\nallow_private_targets = true\n";
    let (h, tok) = {
        let h = Hearth::start_in(dir.path(), config, &[]).await;
        let tok = h.owner().await.token;
        let (_, hook) = send_json(
            h.post(&tok, "/api/alerts/channels"),
            json!({"name": "hook", "type": "webhook", "url": rx.url("/hook")}),
        )
        .await;
        let (st, _) = send_json(
            h.post(&tok, "/api/alerts/rules"),
            json!({"name": "down", "when": {"type": "monitor_down"}, "channels": [hook["id"]], "throttle_minutes": 0}),
        )
        .await;
        assert_eq!(st, 201);
        (h, tok)
    };
    let (st, m) = send_json(
        h.post(&tok, "/api/monitors"),
        json!({"name": "Deploy job",
               "heartbeat": {"schedule": {"kind": "interval", "value": "3s"}, "grace": "2s", "max_runtime": "30s"}}),
    )
    .await;
    assert_eq!(st, 201, "{m}");
    let id = m["id"].as_u64().unwrap();
    let ping_url = m["ping_url"].as_str().unwrap().replace(&h.base, "");
    let r = reqwest::get(h.url(&ping_url)).await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = h
        .get(&tok, &format!("/api/monitors/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let expected: jiff::Timestamp = v["expected"].as_str().unwrap().parse().unwrap();
    assert!(h.stop().await);

    // Stay down past the expected time and its grace (a restart that takes a while).
    let deadline = expected + jiff::SignedDuration::from_secs(2);
    wait_for("the expected time and grace to pass", T, || async {
        (jiff::Timestamp::now() > deadline).then_some(())
    })
    .await;
    let h = Hearth::start_in(dir.path(), config, &[]).await;
    let rows = wait_for("the unknown record", T, || async {
        let rows = results(&h, &tok, id).await;
        rows.iter()
            .any(|r| r["record"] == "unknown")
            .then_some(rows)
    })
    .await;
    assert!(
        !rows.iter().any(|r| r["record"] == "missed"),
        "nothing missed while Hearth was down: {rows:?}"
    );
    let v: Value = h
        .get(&tok, &format!("/api/monitors/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["state"]["status"], "up", "{v}");
    assert!(rx.at("/hook").is_empty(), "no alert for the restart");
    assert!(h.stop().await);
}

/// Kill -9 after check-ins were acknowledged but before a synced commit had them: the restart
/// commits them again from the ingest log, and each is evaluated once (an error check-in below
/// `failure_issue_threshold` 2 leaves the monitor up, with one failure recorded). A retry of a
/// check-in already applied is not evaluated again either.
#[tokio::test]
async fn check_ins_replayed_after_kill_9_are_evaluated_once() {
    let dir = tempfile::tempdir().unwrap();
    // No synced commit of ingest during the run: acknowledged batches are durable in the
    // ingest log only, so the restart must replay them.
    let env = [("HEARTH_INGEST__CHECKPOINT_INTERVAL", "1h")];
    let mut h = Hearth::start_in(dir.path(), "", &env).await;
    let tok = h.owner().await.token;
    let (pid, dsn) = h.project(&tok, "shop").await;
    let key = dsn
        .split("://")
        .nth(1)
        .unwrap()
        .split('@')
        .next()
        .unwrap()
        .to_string();
    let http = reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let send = |h: &Hearth, body: Vec<u8>| {
        http.post(h.url(&format!("/api/{pid}/envelope/")))
            .header(
                "x-sentry-auth",
                format!("Sentry sentry_key={key}, sentry_version=7"),
            )
            .header("content-type", "application/x-sentry-envelope")
            .body(body)
            .send()
    };
    // A background write that syncs (another part's) can make the acknowledged batches durable
    // before the kill, so that nothing is replayed: then kill again after another check-in.
    let mut failures = 0;
    let mut replayed = false;
    for attempt in 0..5 {
        if attempt == 0 {
            for name in ["py_check_in.1", "py_check_in.2"] {
                let r = send(&h, envelope(name, None)).await.unwrap();
                assert_eq!(r.status(), 200, "{name}");
            }
        }
        // A failed run: one failure, below the threshold of 2 (which resets on the OK below).
        let run = format!("{attempt:0>32}");
        let r = send(
            &h,
            envelope_with("py_check_in.2", Some("error"), Some(&run)),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 200);
        failures += 1;
        // SIGKILL, right after the acknowledgement.
        let status = std::process::Command::new("kill")
            .args(["-KILL", &h.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        wait_for("the process to die", T, || {
            let dead = !h.running();
            async move { dead.then_some(()) }
        })
        .await;
        drop(h);
        h = Hearth::start_in(dir.path(), "", &env).await;
        if h.log_text()
            .contains("again from the ingest log after a crash")
        {
            replayed = true;
            break;
        }
        // Not replayed this time: an OK run resets the failure count before the next try.
        let ok = format!("{:f>32}", attempt);
        let r = send(&h, envelope_with("py_check_in.2", Some("ok"), Some(&ok)))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    assert!(replayed, "no kill landed before a synced commit in 5 tries");

    let list: Value = h
        .get(&tok, "/api/monitors")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let m = list["monitors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["slug"] == "nightly-report")
        .cloned()
        .expect("the cron monitor survived the crash");
    let id = m["id"].as_u64().unwrap();
    let rows = results(&h, &tok, id).await;
    let count = |kind: &str| rows.iter().filter(|r| r["record"] == kind).count();
    assert_eq!(
        count("failure"),
        failures,
        "each error check-in once: {rows:?}"
    );
    assert_eq!(count("started"), 1, "{rows:?}");
    assert_eq!(
        m["state"]["status"], "up",
        "one failure is below the threshold: {m}"
    );

    // The SDK retries the last error check-in (its acknowledgement was lost): not again.
    let last = format!("{:0>32}", failures - 1);
    let r = send(
        &h,
        envelope_with("py_check_in.2", Some("error"), Some(&last)),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    // A new failed run after it is evaluated: the second failure in a row takes it DOWN. Had
    // the retry counted, this one would find the monitor down already; either way the count of
    // failure rows tells.
    let r = send(
        &h,
        envelope_with("py_check_in.2", Some("error"), Some(&"d".repeat(32))),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let rows = wait_for("the second failure in a row", T, || async {
        let rows = results(&h, &tok, id).await;
        (rows.iter().filter(|r| r["record"] == "failure").count() > failures).then_some(rows)
    })
    .await;
    assert_eq!(
        rows.iter().filter(|r| r["record"] == "failure").count(),
        failures + 1,
        "the retry was not evaluated: {rows:?}"
    );
    let m: Value = h
        .get(&tok, &format!("/api/monitors/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(m["state"]["status"], "down", "{m}");
    assert!(h.stop().await);
}
