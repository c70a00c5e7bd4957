//! Issue workflow: states and regressions, mutes, comments, assignment, delete/discard, stats,
//! search filters and the durable bus events.

use std::time::Duration;

use hearth::accounts::Role;
use serde_json::{Value, json};

use crate::common::{AuthedClient, TestServer, wait_for};
use crate::ingest::{issue_of, new_id, send_event, wait_searchable};

async fn get(c: &AuthedClient, path: &str) -> Value {
    let r = c.get(path).send().await.unwrap();
    assert_eq!(r.status(), 200, "GET {path}");
    r.json().await.unwrap()
}

async fn post(c: &AuthedClient, path: &str, body: Value) -> (u16, Value) {
    let r = c.post(path).json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Sends an event and returns (event id, issue id) once stored.
async fn event(s: &TestServer, pid: u64, key: &str, mut ev: Value) -> (String, u64) {
    let id = new_id();
    ev["event_id"] = json!(id);
    let r = send_event(s, pid, key, &ev).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let issue = issue_of(s, &id).await;
    (id, issue)
}

async fn status_of(c: &AuthedClient, id: u64) -> String {
    get(c, &format!("/api/issues/{id}")).await["issue"]["status"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn states_regressions_mutes_and_history() {
    let s = TestServer::start().await;
    let (pid, key, _) = s.project("workflow").await;
    let agent = s.client(Role::Agent).await;
    let viewer = s.client(Role::Viewer).await;
    let mut bus = s.state.bus.subscribe(&["issue.>"]);
    let boom = json!({"message": "payment gateway timeout", "release": "shop@1.0"});
    let (_, id) = event(&s, pid, &key, boom.clone()).await;
    assert_eq!(status_of(&agent, id).await, "unresolved");

    // Viewers cannot change state.
    let (st, _) = post(
        &viewer,
        &format!("/api/issues/{id}/status"),
        json!({"status": "resolved"}),
    )
    .await;
    assert_eq!(st, 403);

    // resolved → any new event regresses.
    let (st, body) = post(
        &agent,
        &format!("/api/issues/{id}/status"),
        json!({"status": "resolved"}),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["issue"]["status"], "resolved");
    event(&s, pid, &key, boom.clone()).await;
    assert_eq!(status_of(&agent, id).await, "regressed");

    // resolved in next release: same release stays resolved, a new release regresses.
    post(
        &agent,
        &format!("/api/issues/{id}/status"),
        json!({"status": "resolved_next_release"}),
    )
    .await;
    event(&s, pid, &key, boom.clone()).await;
    assert_eq!(status_of(&agent, id).await, "resolved_next_release");
    let mut newer = boom.clone();
    newer["release"] = json!("shop@1.1");
    event(&s, pid, &key, newer).await;
    assert_eq!(status_of(&agent, id).await, "regressed");

    // muted for 2 events: unmutes on the second.
    post(
        &agent,
        &format!("/api/issues/{id}/status"),
        json!({"status": "muted", "mute_for_events": 2}),
    )
    .await;
    event(&s, pid, &key, boom.clone()).await;
    assert_eq!(status_of(&agent, id).await, "muted");
    event(&s, pid, &key, boom.clone()).await;
    assert_eq!(status_of(&agent, id).await, "unresolved");

    // muted until a past time: the next event unmutes.
    post(
        &agent,
        &format!("/api/issues/{id}/status"),
        json!({"status": "muted", "mute_until_ms": 1}),
    )
    .await;
    event(&s, pid, &key, boom.clone()).await;
    assert_eq!(status_of(&agent, id).await, "unresolved");

    // Unknown status is a 400 with a hint.
    let (st, body) = post(
        &agent,
        &format!("/api/issues/{id}/status"),
        json!({"status": "fixed"}),
    )
    .await;
    assert_eq!(st, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("resolved")
    );

    let d = get(&agent, &format!("/api/issues/{id}")).await;
    let history = d["issue"]["history"].as_array().unwrap();
    let actions: Vec<&str> = history
        .iter()
        .map(|h| h["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        vec![
            "first_seen",
            "status",
            "regressed",
            "status",
            "regressed",
            "status",
            "unmuted",
            "status",
            "unmuted"
        ],
        "{history:?}"
    );
    assert_eq!(history[1]["user_id"], agent.user_id);
    assert_eq!(history[1]["from"], "unresolved");
    assert_eq!(history[1]["to"], "resolved");
    assert!(history[2]["user_id"].is_null());
    assert_eq!(d["issue"]["count"], 7);
    assert_eq!(
        d["issue"]["releases"].as_array().unwrap().len(),
        2,
        "{}",
        d["issue"]["releases"]
    );

    // Durable bus events were published with the change.
    let mut subjects = Vec::new();
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(500), bus.recv()).await {
        subjects.push(m.subject.clone());
        if m.subject == "issue.regressed" {
            assert_eq!(m.payload["issue_id"], id);
            assert_eq!(m.payload["project_id"], pid);
        }
    }
    assert_eq!(
        subjects.iter().filter(|s| *s == "issue.created").count(),
        1,
        "{subjects:?}"
    );
    assert_eq!(
        subjects.iter().filter(|s| *s == "issue.regressed").count(),
        2,
        "{subjects:?}"
    );
    assert!(
        subjects
            .iter()
            .filter(|s| *s == "issue.state_changed")
            .count()
            >= 8,
        "{subjects:?}"
    );
    s.stop().await;
}

#[tokio::test]
async fn comments_assignment_bulk_delete_and_discard() {
    let s = TestServer::start().await;
    let (pid, key, _) = s.project("triage").await;
    let agent = s.client(Role::Agent).await;
    let admin = s.client(Role::Admin).await;
    let (_, a) = event(&s, pid, &key, json!({"message": "alpha broke"})).await;
    let (_, b) = event(&s, pid, &key, json!({"message": "beta broke"})).await;
    let (st, c) = post(
        &agent,
        &format!("/api/issues/{a}/comments"),
        json!({"text": "looking <b>into</b> it"}),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(c["comment"]["text"], "looking <b>into</b> it");
    let (st, _) = post(
        &agent,
        &format!("/api/issues/{a}/comments"),
        json!({"text": "  "}),
    )
    .await;
    assert_eq!(st, 400);
    let (st, body) = post(
        &agent,
        &format!("/api/issues/{a}/assign"),
        json!({"user_id": agent.user_id}),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["issue"]["assignee_id"], agent.user_id);
    let (st, _) = post(
        &agent,
        &format!("/api/issues/{a}/assign"),
        json!({"user_id": 999_999}),
    )
    .await;
    assert_eq!(st, 400);
    let d = get(&agent, &format!("/api/issues/{a}")).await;
    assert_eq!(d["issue"]["comments"].as_array().unwrap().len(), 1);

    let mine = get(
        &agent,
        &format!("/api/projects/{pid}/issues?query=assigned:me"),
    )
    .await;
    let ids: Vec<u64> = mine["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![a]);
    let none = get(
        &agent,
        &format!("/api/projects/{pid}/issues?query=assigned:none"),
    )
    .await;
    let ids: Vec<u64> = none["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![b]);
    // Unassign.
    let (_, body) = post(
        &agent,
        &format!("/api/issues/{a}/assign"),
        json!({"user_id": null}),
    )
    .await;
    assert!(body["issue"]["assignee_id"].is_null());

    let (st, body) = post(
        &agent,
        "/api/issues/bulk",
        json!({"ids": [a, b], "status": "resolved"}),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let resolved = get(
        &agent,
        &format!("/api/projects/{pid}/issues?query=is:resolved"),
    )
    .await;
    assert_eq!(resolved["issues"].as_array().unwrap().len(), 2);
    let unresolved = get(
        &agent,
        &format!("/api/projects/{pid}/issues?query=is:unresolved"),
    )
    .await;
    assert_eq!(unresolved["issues"].as_array().unwrap().len(), 0);

    // Agents cannot delete; admins can. Discard drops future events of the fingerprint.
    let r = agent
        .delete(&format!("/api/issues/{a}?discard=true"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = admin
        .delete(&format!("/api/issues/{a}?discard=true"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = admin.get(&format!("/api/issues/{a}")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let id = new_id();
    let r = send_event(
        &s,
        pid,
        &key,
        &json!({"event_id": id, "message": "alpha broke"}),
    )
    .await;
    assert_eq!(r.status(), 200, "discarded events are still acknowledged");
    // Plain delete: the next event opens a fresh issue.
    let r = admin
        .delete(&format!("/api/issues/{b}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, b2) = event(&s, pid, &key, json!({"message": "beta broke"})).await;
    assert_ne!(b2, b);
    assert_eq!(s.state.issues.issue_of_event(&id).await.unwrap(), None);
    let list = get(&agent, &format!("/api/projects/{pid}/issues")).await;
    let ids: Vec<u64> = list["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![b2]);
    s.stop().await;
}

#[tokio::test]
async fn events_pages_stats_sort_and_search_filters() {
    let s = TestServer::start().await;
    let (pid, key, _) = s.project("stats").await;
    let viewer = s.client(Role::Viewer).await;
    let mut last = None;
    for i in 0..5 {
        let (eid, issue) = event(
            &s,
            pid,
            &key,
            json!({
                "exception": {"values": [{"type": "KeyError", "value": format!("'item-{i}'"),
                    "stacktrace": {"frames": [{"module": "cart.views", "function": "add_item", "lineno": i, "in_app": true}]}}]},
                "user": {"id": format!("u{}", i % 3)},
                "tags": {"browser": "Firefox"},
                "environment": "production",
                "release": "cart@3",
            }),
        )
        .await;
        last = Some((eid, issue));
    }
    let (last_eid, many) = last.unwrap();
    let (_, few) = event(
        &s,
        pid,
        &key,
        json!({"message": "slow query on orders", "level": "info", "user": {"email": "zoe@example.com"},
               "environment": "staging"}),
    )
    .await;
    let detail = get(&viewer, &format!("/api/issues/{many}")).await;
    assert_eq!(detail["issue"]["count"], 5);
    assert_eq!(detail["issue"]["user_count"], 3);
    assert_eq!(
        detail["issue"]["tags"]["browser"][0],
        json!({"value": "Firefox", "count": 5})
    );
    assert!(
        detail["issue"]["fingerprint"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "frame:cart.views:add_item")
    );
    assert_eq!(detail["issue"]["culprit"], "cart.views in add_item");

    // Event pages, newest first, with cursors; neighbours of an event.
    let p1 = get(&viewer, &format!("/api/issues/{many}/events?limit=2")).await;
    assert_eq!(p1["events"].as_array().unwrap().len(), 2);
    assert_eq!(p1["events"][0]["event_id"], last_eid.as_str());
    let cursor = p1["next_cursor"].as_str().unwrap();
    let p2 = get(
        &viewer,
        &format!("/api/issues/{many}/events?limit=2&cursor={cursor}"),
    )
    .await;
    assert_eq!(p2["events"].as_array().unwrap().len(), 2);
    assert_ne!(p2["events"][0]["event_id"], p1["events"][1]["event_id"]);
    let p3 = get(
        &viewer,
        &format!(
            "/api/issues/{many}/events?limit=2&cursor={}",
            p2["next_cursor"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(p3["events"].as_array().unwrap().len(), 1);
    assert!(p3["next_cursor"].is_null());
    let latest = get(&viewer, &format!("/api/issues/{many}/events/latest")).await;
    assert_eq!(latest["event"]["event_id"], last_eid.as_str());
    assert!(latest["next_event_id"].is_null());
    let prev = latest["prev_event_id"].as_str().unwrap();
    let e = get(&viewer, &format!("/api/issues/{many}/events/{prev}")).await;
    assert_eq!(e["next_event_id"], last_eid.as_str());
    let r = viewer
        .get(&format!("/api/issues/{few}/events/{prev}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "an event of another issue");

    // Sorting and paging of the list.
    let by_events = get(
        &viewer,
        &format!("/api/projects/{pid}/issues?sort=events&limit=1"),
    )
    .await;
    assert_eq!(by_events["issues"][0]["id"], many);
    assert_eq!(by_events["next_cursor"], "1");
    let page2 = get(
        &viewer,
        &format!("/api/projects/{pid}/issues?sort=events&limit=1&cursor=1"),
    )
    .await;
    assert_eq!(page2["issues"][0]["id"], few);
    let by_first = get(
        &viewer,
        &format!("/api/projects/{pid}/issues?sort=first_seen"),
    )
    .await;
    assert_eq!(by_first["issues"][0]["id"], few);
    let r = viewer
        .get(&format!("/api/projects/{pid}/issues?sort=nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // Stats.
    let st = get(&viewer, &format!("/api/projects/{pid}/stats")).await;
    assert_eq!(st["hourly"].as_array().unwrap().len(), 168);
    assert_eq!(st["daily"].as_array().unwrap().len(), 30);
    let sum = |k: &str| {
        st[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["count"].as_u64().unwrap())
            .sum::<u64>()
    };
    assert_eq!(sum("hourly"), 6);
    assert_eq!(sum("daily"), 6);
    assert_eq!(st["totals"], json!({"events": 6, "issues": 2, "users": 4}));
    assert_eq!(st["top_by_count"][0]["id"], many);
    assert_eq!(st["top_by_users"][0]["id"], many);

    // Search filters.
    wait_searchable(&viewer, pid, "add_item", many).await;
    wait_searchable(&viewer, pid, "KeyError browser:Firefox", many).await;
    wait_searchable(&viewer, pid, "user:zoe@example.com", few).await;
    wait_searchable(&viewer, pid, "environment:staging level:info orders", few).await;
    let q = |query: &str| {
        let enc: String = url::form_urlencoded::byte_serialize(query.as_bytes()).collect();
        format!("/api/projects/{pid}/issues?query={enc}")
    };
    let none = get(&viewer, &q("KeyError environment:staging")).await;
    assert_eq!(none["issues"].as_array().unwrap().len(), 0);
    let both = get(&viewer, &q("is:unresolved")).await;
    assert_eq!(both["issues"].as_array().unwrap().len(), 2);
    let r = viewer.get(&q("is:bogus")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    // Another project's issues never show up.
    let (pid2, _, _) = s.project("other").await;
    let other = get(
        &viewer,
        &format!("/api/projects/{pid2}/issues?query=KeyError"),
    )
    .await;
    assert_eq!(other["issues"].as_array().unwrap().len(), 0);
    s.stop().await;
}

#[tokio::test]
async fn search_catches_up_after_restart_and_reindex_rebuilds() {
    let tmp = tempfile::tempdir().unwrap();
    let config = crate::common::test_config(tmp.path());
    let s = TestServer::start_with(config.clone()).await;
    let (pid, key, _) = s.project("reindex").await;
    let (_, id) = event(
        &s,
        pid,
        &key,
        json!({"message": "quokka overflow detected"}),
    )
    .await;
    let viewer = s.client(Role::Viewer).await;
    wait_searchable(&viewer, pid, "quokka", id).await;
    let token = viewer.token.clone();
    let uid = viewer.user_id;
    s.stop().await;
    // Rebuild from redb while stopped.
    let n = hearth::search::reindex(&config).unwrap();
    assert_eq!(n, 1);
    let s = TestServer::start_with(config.clone()).await;
    let viewer = AuthedClient {
        http: s.http.clone(),
        token,
        user_id: uid,
        base: s.base.clone(),
    };
    wait_searchable(&viewer, pid, "quokka", id).await;
    // Later events of an issue are stored compressed against its reference event (the first
    // one); reading them back, through the API and the indexer, resolves the reference.
    let mut later = Vec::new();
    for n in [7, 8] {
        let (eid, same) = event(
            &s,
            pid,
            &key,
            json!({"message": "quokka overflow detected", "extra": {"n": n}}),
        )
        .await;
        assert_eq!(same, id);
        later.push((eid, n));
    }
    let mut metrics = String::new();
    s.state.issues.render_metrics(&mut metrics);
    assert!(
        metrics.contains("hearth_issues_events_against_reference_total 1\n"),
        "the second event after the restart goes against the reference: {metrics}"
    );
    for (eid, n) in &later {
        let e = get(&viewer, &format!("/api/issues/{id}/events/{eid}")).await;
        assert_eq!(e["event"]["event_id"], json!(eid));
        assert_eq!(e["event"]["extra"]["n"], json!(n), "{e}");
    }
    let (_, id2) = event(
        &s,
        pid,
        &key,
        json!({"message": "wombat underflow detected"}),
    )
    .await;
    wait_searchable(&viewer, pid, "wombat", id2).await;
    assert!(s.state.search.num_docs() >= 2);
    // Deliveries whose document the writer did not hand over (as after a crash) rebuild it
    // from the stored event: replaying the indexer's consumer exercises that path.
    let docs = s.state.search.num_docs();
    let search_metric = |name: &str| {
        let mut metrics = String::new();
        s.state.search.render_metrics(&mut metrics);
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {name} in {metrics}"))
    };
    let searchable = search_metric("hearth_search_events_searchable_total");
    s.state
        .bus
        .replay_from_seq("search.events", 1)
        .await
        .unwrap();
    wait_for(
        "replayed deliveries to be rebuilt from stored events",
        Duration::from_secs(10),
        || async {
            (search_metric("hearth_search_events_searchable_total") >= searchable + 4).then_some(())
        },
    )
    .await;
    assert_eq!(search_metric("hearth_search_rebuilt_total"), 4);
    // The replayed documents repeat ones already indexed: none is added twice. (The two later
    // quokka events differ only in `extra`, which is not searched: one document covers them.)
    assert_eq!(s.state.search.num_docs(), docs);
    assert!(search_metric("hearth_search_deduplicated_total") > 4);
    wait_searchable(&viewer, pid, "wombat", id2).await;
    s.stop().await;
    assert_eq!(hearth::search::reindex(&config).unwrap(), 4);
}

#[tokio::test]
async fn retention_prunes_events_and_keeps_counters() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = crate::common::test_config(tmp.path());
    config.issues.max_events_per_issue = 2;
    let s = TestServer::start_with(config).await;
    let (pid, key, _) = s.project("retention").await;
    let viewer = s.client(Role::Viewer).await;
    let mut ids = Vec::new();
    let mut issue = 0;
    for _ in 0..4 {
        let (eid, i) = event(&s, pid, &key, json!({"message": "disk full"})).await;
        ids.push(eid);
        issue = i;
    }
    let removed = s.state.issues.prune().await.unwrap();
    assert_eq!(removed, 2);
    let d = get(&viewer, &format!("/api/issues/{issue}")).await;
    assert_eq!(d["issue"]["count"], 4, "counters keep counting");
    assert_eq!(d["issue"]["stored_events"], 2);
    let evs = get(&viewer, &format!("/api/issues/{issue}/events")).await;
    let kept: Vec<&str> = evs["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        kept,
        vec![ids[3].as_str(), ids[2].as_str()],
        "the newest are kept"
    );
    assert_eq!(s.state.issues.issue_of_event(&ids[0]).await.unwrap(), None);
    let st = get(&viewer, &format!("/api/projects/{pid}/stats")).await;
    assert_eq!(st["totals"]["events"], 4);
    s.stop().await;
}
