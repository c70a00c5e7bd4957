//! Grouping through the real binary: Sentry's pairs (together or apart) on a new project,
//! project rules over the API, the explanation on events, and the upgrade of a 0.1.0
//! database's project from grouping version 1 to 2 without splitting its issues.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::binary::Hearth;
use crate::common::wait_for;

fn key_of(dsn: &str) -> String {
    dsn.split("://")
        .nth(1)
        .unwrap()
        .split('@')
        .next()
        .unwrap()
        .to_string()
}

/// Sends `event` to the store endpoint with a fresh event id; returns the id.
async fn send(h: &Hearth, pid: u64, key: &str, event: &Value) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let mut event = event.clone();
    event["event_id"] = json!(id);
    let r = h
        .http
        .post(h.url(&format!("/api/{pid}/store/")))
        .header(
            "x-sentry-auth",
            format!("Sentry sentry_version=7, sentry_key={key}, sentry_client=grouping-test/1"),
        )
        .json(&event)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "store: {}", r.text().await.unwrap());
    id
}

/// The project's issues once `events` events are in them: (id, count) pairs.
async fn issues_after(h: &Hearth, token: &str, pid: u64, events: u64) -> Vec<(u64, u64)> {
    wait_for("events to be grouped", Duration::from_secs(30), || async {
        let v: Value = h
            .get(token, &format!("/api/projects/{pid}/issues?limit=100"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let list: Vec<(u64, u64)> = v["issues"]
            .as_array()?
            .iter()
            .map(|i| (i["id"].as_u64().unwrap(), i["count"].as_u64().unwrap()))
            .collect();
        (list.iter().map(|(_, c)| c).sum::<u64>() == events).then_some(list)
    })
    .await
}

async fn put_rules(h: &Hearth, token: &str, pid: u64, body: &Value) -> (u16, Value) {
    let r = h
        .http
        .put(h.url(&format!("/api/projects/{pid}/grouping")))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// Every pair of `tests/fixtures/grouping/pairs.json` goes through ingest into a project of
/// its own (with the pair's rules saved over the API) and lands in one issue or two, as Sentry
/// groups it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sentrys_pairs_group_together_or_apart_through_the_binary() {
    let cases: Vec<Value> = serde_json::from_slice(
        &std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/grouping/pairs.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let h = Hearth::start("").await;
    let owner = h.owner().await;
    let mut wrong = Vec::new();
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let (pid, dsn) = h.project(&owner.token, name).await;
        let key = key_of(&dsn);
        if let Some(rules) = case.get("rules") {
            let body = json!({
                "fingerprint_rules": rules["fingerprint"].as_str().unwrap_or(""),
                "stacktrace_rules": rules["stacktrace"].as_str().unwrap_or(""),
            });
            let (status, v) = put_rules(&h, &owner.token, pid, &body).await;
            assert_eq!(status, 200, "{name}: {v}");
        }
        send(&h, pid, &key, &case["a"]).await;
        send(&h, pid, &key, &case["b"]).await;
        let issues = issues_after(&h, &owner.token, pid, 2).await;
        let same = case["same"].as_bool().unwrap();
        if (issues.len() == 1) != same {
            wrong.push(format!(
                "{name}: expected {}, got {} issues",
                if same { "one issue" } else { "two issues" },
                issues.len()
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(h.stop().await);
}

/// Rules over the API: refused with the line that is wrong, saved, applied at ingest, shown in
/// the explanation of the event; viewers read them but cannot change them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn project_rules_are_validated_saved_applied_and_explained() {
    let h = Hearth::start("").await;
    let owner = h.owner().await;
    let (pid, dsn) = h.project(&owner.token, "rules").await;
    let key = key_of(&dsn);
    let v: Value = h
        .get(&owner.token, &format!("/api/projects/{pid}/grouping"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["grouping"]["version"], 2,
        "new projects are on version 2: {v}"
    );
    assert_eq!(v["grouping"]["upgrade_available"], false);
    assert!(
        v["grouping"]["builtin_fingerprint_rules"]
            .as_str()
            .unwrap()
            .contains("ChunkLoadError")
    );

    let (status, body) = put_rules(
        &h,
        &owner.token,
        pid,
        &json!({"fingerprint_rules": "error.type:Timeout -> timeouts\nbogus:x -> y"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "bad_request");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("line 2") && msg.contains("unknown matcher"),
        "{msg}"
    );
    let (status, body) = put_rules(
        &h,
        &owner.token,
        pid,
        &json!({"stacktrace_rules": "stack.module:vendor/**"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = put_rules(
        &h,
        &owner.token,
        pid,
        &json!({"fingerprint_rules": "x".repeat(40_000)}),
    )
    .await;
    assert_eq!(status, 400, "{body}");

    let fp = "message:\"*timeout*\" -> timeouts {{ tags.region }} title=\"Timeouts in {{ tags.region }}\"";
    let (status, body) = put_rules(
        &h,
        &owner.token,
        pid,
        &json!({"fingerprint_rules": fp, "stacktrace_rules": "stack.module:shop.retry -group"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["grouping"]["fingerprint_rules"], fp);

    let a = send(
        &h,
        pid,
        &key,
        &json!({"message": "read timeout on db-1", "tags": {"region": "eu"}}),
    )
    .await;
    send(
        &h,
        pid,
        &key,
        &json!({"message": "connect TIMEOUT to cache", "tags": {"region": "eu"}}),
    )
    .await;
    send(
        &h,
        pid,
        &key,
        &json!({"message": "read timeout on db-1", "tags": {"region": "us"}}),
    )
    .await;
    let issues = issues_after(&h, &owner.token, pid, 3).await;
    assert_eq!(issues.len(), 2, "{issues:?}");
    let (eu, _) = *issues
        .iter()
        .find(|(_, c)| *c == 2)
        .expect("the eu issue has 2 events");
    let detail: Value = h
        .get(&owner.token, &format!("/api/issues/{eu}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(detail["issue"]["title"], "Timeouts in eu");
    assert_eq!(
        detail["issue"]["fingerprint"],
        json!(["fp:timeouts", "fp:eu"])
    );

    // The explanation of one event: the rule, the resolved values, the message left out.
    let ev: Value = h
        .get(&owner.token, &format!("/api/issues/{eu}/events/{a}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let g = &ev["grouping"];
    assert_eq!(g["version"], 2, "{g}");
    assert_eq!(g["matches_issue"], "hash", "{g}");
    assert_eq!(g["fingerprint"]["source"], "rule");
    assert_eq!(g["fingerprint"]["values"], json!(["timeouts", "eu"]));
    assert!(
        g["grouped_by"]
            .as_str()
            .unwrap()
            .starts_with("fingerprint rule `message:"),
        "{g}"
    );
    let message = g["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "message")
        .expect("message part");
    assert_eq!(message["contributes"], false);
    assert!(
        message["hint"]
            .as_str()
            .unwrap()
            .contains("fingerprint overrides")
    );
    // The stored event is still the event as sent.
    assert_eq!(ev["event"]["message"], "read timeout on db-1");

    // The stack-trace rule: a retry wrapper's frames do not split issues.
    let frames = |wrapper: &str| {
        json!({"platform": "python", "exception": {"values": [{"type": "KeyError", "value": "k",
          "stacktrace": {"frames": [
            {"module": "shop.cart", "function": "add", "context_line": "cart[k]", "in_app": true},
            {"module": "shop.retry", "function": wrapper, "context_line": "return fn()", "in_app": true}]}}]}})
    };
    let k1 = send(&h, pid, &key, &frames("attempt")).await;
    send(&h, pid, &key, &frames("attempt_again")).await;
    let issues = issues_after(&h, &owner.token, pid, 5).await;
    assert_eq!(issues.len(), 3, "{issues:?}");
    let key_issue = issues
        .iter()
        .filter(|(id, c)| *id != eu && *c == 2)
        .map(|(id, _)| *id)
        .next()
        .expect("the KeyError events share an issue");
    let ev: Value = h
        .get(
            &owner.token,
            &format!("/api/issues/{key_issue}/events/{k1}"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let parts = ev["grouping"]["components"].as_array().unwrap();
    let retry = parts
        .iter()
        .find(|p| p["kind"] == "frame" && p["label"].as_str().unwrap().contains("shop.retry"))
        .expect("the wrapper frame is listed");
    assert_eq!(retry["contributes"], false);
    assert!(
        retry["hint"]
            .as_str()
            .unwrap()
            .contains("stack.module:shop.retry -group"),
        "{retry}"
    );
    assert_eq!(
        ev["grouping"]["grouped_by"],
        "exception: type and in-app frames"
    );

    // Clearing the rules: the next timeout of region eu no longer joins the rule's issue.
    let (status, _) = put_rules(&h, &owner.token, pid, &json!({"fingerprint_rules": ""})).await;
    assert_eq!(status, 200);
    send(
        &h,
        pid,
        &key,
        &json!({"message": "read timeout on db-1", "tags": {"region": "eu"}}),
    )
    .await;
    let issues = issues_after(&h, &owner.token, pid, 6).await;
    assert_eq!(issues.len(), 4, "{issues:?}");
    assert!(h.stop().await);
}

fn extract(archive: &Path, into: &Path) {
    use std::io::Write;
    std::fs::create_dir_all(into).unwrap();
    let tar = zstd::decode_all(std::fs::File::open(archive).unwrap()).unwrap();
    let mut child = std::process::Command::new("tar")
        .args(["-x", "-f", "-", "-C"])
        .arg(into)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("run tar");
    child.stdin.take().unwrap().write_all(&tar).unwrap();
    assert!(child.wait().unwrap().success());
}

/// A 0.1.0 database's project stays on grouping version 1 (its issues keep their hashes);
/// upgrading it moves it to version 2 and events of its issues keep landing in them, first
/// through the previous version's hash, then through the new hash that joined the issue.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn upgrading_a_0_1_0_project_keeps_its_issues_together() {
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/upgrade/0.1.0");
    let m: Value =
        serde_json::from_slice(&std::fs::read(fixture.join("manifest.json")).unwrap()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    extract(
        &fixture.join(m["archive"]["file"].as_str().unwrap()),
        &tmp.path().join("data"),
    );
    let h = Hearth::start_in(
        tmp.path(),
        "[issues]\nmax_event_age = \"36500d\"\n\n[bus]\nretention_max_age = \"36500d\"\n",
        &[],
    )
    .await;
    let token = m["users"][0]["tokens"][0]["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let get = |path: String| {
        let req = h.get(&token, &path);
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let v = get("/api/projects/1/grouping".into()).await;
    assert_eq!(v["grouping"]["version"], 1, "{v}");
    assert_eq!(v["grouping"]["upgrade_available"], true);
    // Rules need version 2: refused with what to do.
    let (status, body) =
        put_rules(&h, &token, 1, &json!({"fingerprint_rules": "type:X -> x"})).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/grouping/upgrade")
    );

    // The issues whose next event the fixture carries, with their version-1 hashes.
    let issues: Vec<&Value> = m["issues"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| {
            i["project_id"] == 1 && i.get("next_event").is_some_and(|n| n.get("file").is_some())
        })
        .collect();
    assert!(issues.len() >= 3, "{} issues", issues.len());

    let r = h
        .post(&token, "/api/projects/1/grouping/upgrade")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["grouping"]["version"], 2, "{v}");
    assert_eq!(v["grouping"]["previous_version"], 1);
    assert_eq!(v["grouping"]["in_transition"], true);
    let r = h
        .post(&token, "/api/projects/1/grouping/upgrade")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409, "a second upgrade has nothing to do");
    // Project 2 was not upgraded.
    assert_eq!(
        get("/api/projects/2/grouping".into()).await["grouping"]["version"],
        1
    );

    // A new key: ingest reads the project's version with the key, and this one is not cached.
    let r = h
        .post(&token, "/api/projects/1/keys")
        .json(&json!({"label": "after upgrade"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let key = r.json::<Value>().await.unwrap()["key"]["public_key"]
        .as_str()
        .unwrap()
        .to_string();

    for i in &issues {
        let id = i["id"].as_u64().unwrap();
        let file = fixture.join(i["next_event"]["file"].as_str().unwrap());
        let envelope = std::fs::read(&file).unwrap();
        let event: Value = envelope
            .split(|c| *c == b'\n')
            .filter_map(|l| serde_json::from_slice::<Value>(l).ok())
            .find(|v| {
                v.get("exception").is_some()
                    || v.get("message").is_some()
                    || v.get("logentry").is_some()
            })
            .expect("an event item");
        for _ in 0..2 {
            let eid = send(&h, 1, &key, &event).await;
            let ev = wait_for("the event to be stored", Duration::from_secs(30), || {
                let req = h.get(&token, &format!("/api/issues/{id}/events/{eid}"));
                async move {
                    let r = req.send().await.ok()?;
                    (r.status() == 200).then_some(())?;
                    r.json::<Value>().await.ok()
                }
            })
            .await;
            let g = &ev["grouping"];
            assert_eq!(g["version"], 2, "{g}");
            let hash_v1 = i["detail"]["hash"].as_str().unwrap();
            assert_eq!(g["previous"]["hash"], hash_v1, "{}: {g}", i["key"]);
            // The event's version-2 hash is new, yet it landed in the version-1 issue: the
            // first one through the previous version's hash, after which the new hash joined
            // the issue and leads to it by itself.
            assert_ne!(g["hash"], hash_v1, "{g}");
            assert_eq!(g["matches_issue"], "hash", "{}: {g}", i["key"]);
        }
        let detail = get(format!("/api/issues/{id}")).await;
        assert_eq!(
            detail["issue"]["count"],
            i["detail"]["count"].as_u64().unwrap() + 2,
            "{}",
            i["key"]
        );
    }
    // Project 2 stayed on version 1: its issue's next event lands in it by the same hash.
    let web = m["issues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| {
            i["project_id"] == 2 && i.get("next_event").is_some_and(|n| n.get("file").is_some())
        })
        .expect("an issue of project 2 with a next event");
    let envelope =
        std::fs::read(fixture.join(web["next_event"]["file"].as_str().unwrap())).unwrap();
    let event: Value = envelope
        .split(|c| *c == b'\n')
        .filter_map(|l| serde_json::from_slice::<Value>(l).ok())
        .find(|v| v.get("exception").is_some())
        .expect("an event item");
    let web_key = m["projects"][1]["keys"][0]["public_key"]
        .as_str()
        .unwrap()
        .to_string();
    let eid = send(&h, 2, &web_key, &event).await;
    let (wid, whash) = (web["id"].as_u64().unwrap(), web["detail"]["hash"].clone());
    let ev = wait_for("the project 2 event", Duration::from_secs(30), || {
        let req = h.get(&token, &format!("/api/issues/{wid}/events/{eid}"));
        async move {
            let r = req.send().await.ok()?;
            (r.status() == 200).then_some(())?;
            r.json::<Value>().await.ok()
        }
    })
    .await;
    assert_eq!(ev["grouping"]["version"], 1);
    assert_eq!(ev["grouping"]["hash"], whash);
    assert_eq!(ev["grouping"]["matches_issue"], "hash");
    // A new kind of event opens a new issue, on version 2.
    send(
        &h,
        1,
        &key,
        &json!({"message": "brand new after the upgrade"}),
    )
    .await;
    let list = wait_for("the new issue", Duration::from_secs(30), || {
        let req = h.get(&token, "/api/projects/1/issues?query=brand");
        async move {
            let v: Value = req.send().await.ok()?.json().await.ok()?;
            let first = v["issues"].as_array()?.first()?.clone();
            Some(first)
        }
    })
    .await;
    let detail = get(format!("/api/issues/{}", list["id"])).await;
    assert_eq!(detail["issue"]["grouping_version"], 2);
    assert!(h.stop().await);
}

/// During a grouping transition an event acknowledged and then lost with the database's
/// unsynced commit (kill -9) is committed again from the ingest log with its previous-version
/// hash recomputed from the payload: it lands in its version-1 issue, not in a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_replayed_after_kill_9_during_a_transition_keeps_its_issue() {
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/upgrade/0.1.0");
    let m: Value =
        serde_json::from_slice(&std::fs::read(fixture.join("manifest.json")).unwrap()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    extract(
        &fixture.join(m["archive"]["file"].as_str().unwrap()),
        &tmp.path().join("data"),
    );
    let config = "[issues]\nmax_event_age = \"36500d\"\n\n[bus]\nretention_max_age = \"36500d\"\n";
    // No synced commit of ingest during the run: an acknowledged event is durable in the
    // ingest log only until the restart replays it.
    let env = [("HEARTH_INGEST__CHECKPOINT_INTERVAL", "1h")];
    let mut h = Hearth::start_in(tmp.path(), config, &env).await;
    let token = m["users"][0]["tokens"][0]["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let r = h
        .post(&token, "/api/projects/1/grouping/upgrade")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = h
        .post(&token, "/api/projects/1/keys")
        .json(&json!({"label": "after upgrade"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let key = r.json::<Value>().await.unwrap()["key"]["public_key"]
        .as_str()
        .unwrap()
        .to_string();
    let issues: Vec<&Value> = m["issues"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| {
            i["project_id"] == 1 && i.get("next_event").is_some_and(|n| n.get("file").is_some())
        })
        .collect();
    // A background write that syncs can make the event durable before the kill (nothing to
    // replay): then try the next issue's event.
    let mut replayed = None;
    for i in &issues {
        let envelope =
            std::fs::read(fixture.join(i["next_event"]["file"].as_str().unwrap())).unwrap();
        let event: Value = envelope
            .split(|c| *c == b'\n')
            .filter_map(|l| serde_json::from_slice::<Value>(l).ok())
            .find(|v| {
                v.get("exception").is_some()
                    || v.get("message").is_some()
                    || v.get("logentry").is_some()
            })
            .expect("an event item");
        let eid = send(&h, 1, &key, &event).await;
        let status = std::process::Command::new("kill")
            .args(["-KILL", &h.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        wait_for("the process to die", Duration::from_secs(30), || {
            let dead = !h.running();
            async move { dead.then_some(()) }
        })
        .await;
        drop(h);
        h = Hearth::start_in(tmp.path(), config, &env).await;
        if h.log_text()
            .contains("again from the ingest log after a crash")
        {
            replayed = Some((*i, eid));
            break;
        }
    }
    let (i, eid) = replayed.expect("no kill landed before a synced commit");
    let id = i["id"].as_u64().unwrap();
    let r = h
        .get(&token, &format!("/api/issues/{id}/events/{eid}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "the replayed event is not in its version-1 issue {}",
        i["key"]
    );
    let ev: Value = r.json().await.unwrap();
    let g = &ev["grouping"];
    assert_eq!(g["version"], 2, "{g}");
    assert_eq!(g["previous"]["hash"], i["detail"]["hash"], "{g}");
    assert_ne!(g["hash"], i["detail"]["hash"], "{g}");
    let detail: Value = h
        .get(&token, &format!("/api/issues/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        detail["issue"]["count"],
        i["detail"]["count"].as_u64().unwrap() + 1
    );
    assert!(h.stop().await);
}

/// Polls `script` in the page until it returns a non-empty string, which it returns.
async fn page_text(c: &fantoccini::Client, what: &str, script: &str) -> String {
    wait_for(what, Duration::from_secs(20), || async {
        let v = c.execute(script, vec![]).await.ok()?;
        v.as_str().filter(|s| !s.is_empty()).map(str::to_string)
    })
    .await
}

/// In Chromium: the event page explains the grouping (as text, whatever the event says); the
/// project page saves rules and shows a refused line's error.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn event_page_explains_grouping_and_project_page_edits_rules() {
    use fantoccini::Locator;
    crate::common::install_crypto();
    let Some(b) = crate::browser::Browser::start().await else {
        return;
    };
    let c = &b.c;
    let h = Hearth::start("").await;
    let owner = h.owner().await;
    let (pid, dsn) = h.project(&owner.token, "ui-grouping").await;
    let key = key_of(&dsn);
    send(
        &h,
        pid,
        &key,
        &json!({"platform": "python", "message": "<img src=x onerror=alert(1)> slow",
            "threads": {"values": [{"current": true, "stacktrace": {"frames": [
                {"module": "shop.jobs", "function": "run", "context_line": "<b>sync()</b>", "in_app": true}]}}]}}),
    )
    .await;
    let issues = issues_after(&h, &owner.token, pid, 1).await;
    let id = issues[0].0;

    c.goto(&h.url("/#/login")).await.unwrap();
    let email = c
        .wait()
        .for_element(Locator::Css("#login-email"))
        .await
        .unwrap();
    email.send_keys(&owner.email).await.unwrap();
    c.find(Locator::Css("#login-password"))
        .await
        .unwrap()
        .send_keys(&owner.password)
        .await
        .unwrap();
    c.find(Locator::Css("form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    page_text(
        c,
        "the signed-in top bar",
        "return document.getElementById('topbar').hidden ? '' : 'ok'",
    )
    .await;

    c.goto(&h.url(&format!("/#/issues/{id}"))).await.unwrap();
    let by = page_text(
        c,
        "the grouping explanation",
        "const e = document.getElementById('grouped-by'); return e ? e.textContent : ''",
    )
    .await;
    assert_eq!(by, "Grouped by: thread stack trace: in-app frames");
    let parts = page_text(
        c,
        "the grouping parts",
        "return [...document.querySelectorAll('#grouping-parts li')].map(l => l.className + '|' + l.textContent).join('\\n')",
    )
    .await;
    assert!(
        parts.contains("grouping-part yes|✓ frame shop.jobs · run · `<b>sync()</b>`"),
        "{parts}"
    );
    assert!(
        parts.contains("grouping-part no|– message <img src=x onerror=alert(1)> slow"),
        "{parts}"
    );
    let html = c
        .execute(
            "return document.querySelectorAll('#event img, #event b').length",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(html, json!(0), "event text became HTML");

    // The project page: a refused rule shows its line; a good one is saved.
    c.goto(&h.url(&format!("/#/projects/{pid}"))).await.unwrap();
    let fp = c
        .wait()
        .for_element(Locator::Css("#fingerprint-rules"))
        .await
        .unwrap();
    fp.send_keys("message:\"*slow*\" -> slow\nbogus:1 -> x")
        .await
        .unwrap();
    c.find(Locator::Css("#grouping-rules button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let err = page_text(
        c,
        "the refusal",
        "const e = document.getElementById('grouping-error'); return e ? e.textContent : ''",
    )
    .await;
    assert!(
        err.contains("line 2") && err.contains("unknown matcher"),
        "{err}"
    );
    fp.clear().await.unwrap();
    fp.send_keys("message:\"*slow*\" -> slow").await.unwrap();
    c.find(Locator::Css("#grouping-rules button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for("the rules to be saved", Duration::from_secs(20), || {
        let req = h.get(&owner.token, &format!("/api/projects/{pid}/grouping"));
        async move {
            let v: Value = req.send().await.ok()?.json().await.ok()?;
            (v["grouping"]["fingerprint_rules"] == "message:\"*slow*\" -> slow").then_some(())
        }
    })
    .await;
    b.close().await;
    assert!(h.stop().await);
}
