//! Storage (issue 18): events of many issues are stored against their issue's reference, the
//! bus log lets go of `event.stored` once every consumer has passed it, `db stats` says where
//! the bytes go, the disk budget removes the oldest events (each issue keeps its newest and its
//! counters) and warns through an alert rule, and search stays within the project.

use std::time::Duration;

use hearth::accounts::Role;
use serde_json::{Value, json};

use crate::common::{AuthedClient, TestServer, wait_for};
use crate::ingest::{issue_of, new_id, send_event, wait_searchable};

const T: Duration = Duration::from_secs(20);

/// A ~7 KB Python-like event of issue `n` with a unique exception value.
fn big_event(n: usize, id: &str, word: &str) -> Value {
    let frames: Vec<Value> = (0..40)
        .map(|i| json!({"filename": format!("app/module_{i}.py"), "function": format!("handler_{n}_{i}"),
            "lineno": i * 10 + n, "context_line": format!("    result = compute_{i}(request, payload, retries={n})"),
            "vars": {"request": "<Request GET /api/orders>", "attempt": i}}))
        .collect();
    json!({
        "event_id": id, "platform": "python", "level": "error", "release": "bench@1.0.0",
        "exception": {"values": [{"type": format!("ValueError{n}"),
            "value": format!("{word} input {id}"), "stacktrace": {"frames": frames}}]},
    })
}

async fn send(s: &TestServer, pid: u64, key: &str, n: usize, word: &str) -> String {
    let id = new_id();
    let r = send_event(s, pid, key, &big_event(n, &id, word)).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    id
}

async fn metric(s: &TestServer, c: &AuthedClient, name: &str) -> u64 {
    let _ = s;
    let text = c
        .get("/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("metric {name} missing")) as u64
}

#[tokio::test]
async fn events_of_200_issues_are_stored_against_their_references_and_the_bus_log_is_trimmed() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = crate::common::test_config(tmp.path());
    config.bus.retention_keep_recent = 100;
    let s = TestServer::start_with(config).await;
    let (pid, key, _) = s.project("many").await;
    let owner = s.client(Role::Owner).await;
    // 200 issues: more references than the old cache (8 MB of prepared tables) could hold.
    for round in 0..3 {
        let mut last = String::new();
        for n in 0..200 {
            last = send(&s, pid, &key, n, "invalid").await;
        }
        issue_of(&s, &last).await;
        if round == 0 {
            // The writer learns each issue's reference from its first event.
            continue;
        }
    }
    let against = metric(&s, &owner, "hearth_issues_events_against_reference_total").await;
    assert!(
        against >= 390,
        "the 2nd and 3rd events of 200 issues are stored against their reference: {against}"
    );
    // `hearth db stats` (the admin API behind it) says where the bytes go.
    let stats: Value = owner
        .get("/api/admin/db/stats")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["events"], 600, "{stats}");
    assert_eq!(stats["events_per_project"][pid.to_string()], 600);
    let events = stats["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "issues_events")
        .unwrap();
    assert_eq!(events["rows"], 600);
    assert!(
        events["stored_bytes"].as_u64().unwrap() < 600 * 1024,
        "events take well under 1 KB each against their reference: {events}"
    );
    assert!(metric(&s, &owner, "hearth_db_used_bytes").await > 0);
    assert!(
        metric(&s, &owner, "hearth_db_size_bytes").await >= stats["used_bytes"].as_u64().unwrap()
    );
    // Once every consumer has passed them, `event.stored` entries leave the bus log.
    let bus = s.state.bus.clone();
    wait_for("event.stored trimmed from the bus log", T, || {
        let bus = bus.clone();
        async move {
            bus.prune().await.unwrap();
            let st = bus.stats().await.unwrap();
            (st.log_len < 350).then_some(())
        }
    })
    .await;
    s.stop().await;
}

#[tokio::test]
async fn the_disk_budget_removes_the_oldest_events_keeps_each_issues_newest_and_warns() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = crate::common::test_config(tmp.path());
    // The alert's webhook goes to a closed local port; the history records it either way.
    config.alerts.allow_private_targets = true;
    let s = TestServer::start_with(config).await;
    let (pid, key, _) = s.project("budget").await;
    let owner = s.client(Role::Owner).await;
    let admin = s.client(Role::Admin).await;
    let channel: Value = admin
        .post("/api/alerts/channels")
        .json(&json!({"name": "nowhere", "type": "webhook", "url": "http://127.0.0.1:9/hook"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rule: Value = admin
        .post("/api/alerts/rules")
        .json(
            &json!({"name": "disk", "when": {"type": "disk_budget"}, "channels": [channel["id"]]}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rule_id = rule["id"]
        .as_u64()
        .unwrap_or_else(|| panic!("rule: {rule}, channel: {channel}"));
    let mut ids: Vec<Vec<String>> = vec![Vec::new(); 4];
    for _ in 0..30 {
        for (n, list) in ids.iter_mut().enumerate() {
            list.push(send(&s, pid, &key, n, "budget").await);
        }
    }
    let mut issues = Vec::new();
    for list in &ids {
        issues.push(issue_of(&s, list.last().unwrap()).await);
    }
    let issues_api = s.state.issues.clone();
    // Far below a large budget: nothing happens.
    let quiet = issues_api.check_disk_budget_of(1 << 40).await.unwrap();
    assert_eq!((quiet.warned, quiet.pruned_events), (false, 0));
    // A budget the data already fills to ~95%: warn, and prune down to 75%.
    let used = s.state.db.stats().await.unwrap().used_bytes;
    let index = quiet.used_bytes - s.state.db.file_bytes();
    let budget = (used + index) * 100 / 95;
    let done = issues_api.check_disk_budget_of(budget).await.unwrap();
    assert!(done.warned, "{done:?}");
    assert!(
        done.pruned_events > 0 && done.pruned_events < 120,
        "{done:?}"
    );
    for (list, issue) in ids.iter().zip(&issues) {
        let v: Value = owner
            .get(&format!("/api/issues/{issue}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["issue"]["count"], 30, "counters stay: {v}");
        // The newest event is kept and readable; the oldest is gone.
        let newest = list.last().unwrap();
        let r = owner
            .get(&format!("/api/issues/{issue}/events/{newest}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let latest: Value = owner
            .get(&format!("/api/issues/{issue}/events/latest"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            latest["event"]["event_id"].as_str(),
            Some(newest.as_str()),
            "{latest}"
        );
    }
    let oldest = &ids[0][0];
    let r = owner
        .get(&format!("/api/issues/{}/events/{oldest}", issues[0]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "the oldest event was removed first");
    let stats: Value = owner
        .get("/api/admin/db/stats")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        stats["events"],
        120 - done.pruned_events,
        "stored_events follow"
    );
    // The warning reaches the alert rule once.
    wait_for("the disk budget alert", T, || async {
        let v: Value = admin
            .get(&format!("/api/alerts/history?rule_id={rule_id}"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (v["alerts"].as_array()?.len() == 1).then_some(())
    })
    .await;
    let again = issues_api.check_disk_budget_of(1 << 40).await.unwrap();
    assert!(!again.warned);
    s.stop().await;
}

#[tokio::test]
async fn search_matching_every_event_stays_within_the_project() {
    let s = TestServer::start().await;
    let (a, key_a, _) = s.project("a").await;
    let (b, key_b, _) = s.project("b").await;
    let viewer = s.client(Role::Viewer).await;
    let ia = issue_of(&s, &send(&s, a, &key_a, 1, "shared").await).await;
    let ib = issue_of(&s, &send(&s, b, &key_b, 2, "shared").await).await;
    wait_searchable(&viewer, a, "shared", ia).await;
    wait_searchable(&viewer, b, "shared", ib).await;
    for (pid, want) in [(a, ia), (b, ib)] {
        for q in ["shared", "level:error", "shared release:bench@1.0.0"] {
            let enc: String = url::form_urlencoded::byte_serialize(q.as_bytes()).collect();
            let v: Value = viewer
                .get(&format!("/api/projects/{pid}/issues?query={enc}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let got: Vec<u64> = v["issues"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_u64().unwrap())
                .collect();
            assert_eq!(got, [want], "{q} in project {pid}");
        }
    }
    s.stop().await;
}
