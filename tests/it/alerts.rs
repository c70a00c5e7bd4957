//! Alerts: rules over bus events delivered to local Slack/webhook receivers and to a real SMTP
//! server, with signatures, retries, the DLQ, filters and throttling checked.

use std::time::Duration;

use hearth::accounts::Role;
use hearth::bus::Priority;
use serde_json::{Value, json};

use crate::common::{AuthedClient, TestServer, test_config, wait_for};
use crate::mail_support::{SmtpServer, free_port, header, mail_config};
use crate::receiver::{Receiver, verify};

const T: Duration = Duration::from_secs(30);

/// The receivers here listen on 127.0.0.1, which Hearth refuses unless told otherwise.
fn local_receivers(mut config: hearth::Config) -> hearth::Config {
    config.alerts.allow_private_targets = true;
    config
}

async fn publish(s: &TestServer, subject: &str, payload: Value) {
    let bus = s.state.bus.clone();
    let subject = subject.to_string();
    s.state
        .db
        .write(move |txn| {
            bus.publish_durable(txn, &subject, Priority::Normal, &payload)
                .map(|_| ())
        })
        .await
        .unwrap();
}

async fn acked_by(s: &TestServer, consumer: &str) -> u64 {
    let stats = s.state.bus.stats().await.unwrap();
    stats
        .consumers
        .iter()
        .find(|c| c.name == consumer)
        .map(|c| c.delivered)
        .unwrap_or(0)
}

/// The `alerts` consumer starts at "now" when first seen; make sure it is running before the
/// test publishes (an unrelated event is published until the consumer acks one).
async fn alerts_running(s: &TestServer) -> u64 {
    wait_for("the alerts consumer to run", T, || async {
        publish(
            s,
            "issue.state_changed",
            json!({"issue_id": 0, "status": "unresolved"}),
        )
        .await;
        for _ in 0..25 {
            let n = acked_by(s, "alerts").await;
            if n > 0 {
                return Some(n);
            }
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    })
    .await
}

async fn create(c: &AuthedClient, path: &str, body: Value) -> Value {
    let r = c.post(path).json(&body).send().await.unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 201, "{path}: {v}");
    v
}

async fn history(c: &AuthedClient, rule: u64) -> Vec<Value> {
    let v: Value = c
        .get(&format!("/api/alerts/history?rule_id={rule}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["alerts"].as_array().unwrap().clone()
}

fn issue(project: u64, issue: u64, env: &str, level: &str, title: &str) -> Value {
    json!({
        "project_id": project, "issue_id": issue, "environment": env, "level": level,
        "title": title, "release": "1.2.3", "tags": [["browser", "Firefox"], ["server", "web-1"]],
    })
}

#[tokio::test]
async fn rules_fire_on_new_issues_and_regressions_with_filters_and_throttle() {
    let rx = Receiver::start(&[]).await;
    let tmp = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(local_receivers(test_config(tmp.path()))).await;
    let admin = s.client(Role::Admin).await;
    let viewer = s.client(Role::Viewer).await;
    let hook = create(
        &admin,
        "/api/alerts/channels",
        json!({"name": "hook", "type": "webhook", "url": rx.url("/hook")}),
    )
    .await;
    let secret = hook["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    let slack = create(
        &admin,
        "/api/alerts/channels",
        json!({"name": "slack", "type": "slack", "url": rx.url("/slack")}),
    )
    .await;
    // Viewers may read rules but not channels (they hold secrets).
    let r = viewer.get("/api/alerts/channels").send().await.unwrap();
    assert_eq!(r.status(), 403);
    let bad = admin
        .post("/api/alerts/rules")
        .json(&json!({"name": "x", "when": {"type": "frequency", "count": 1, "window": "2m"}, "channels": [hook["id"]]}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let rule_new = create(&admin, "/api/alerts/rules", json!({
        "name": "new production errors",
        "when": {"type": "issue_created"},
        "filters": {"project_ids": [1], "environments": ["production"], "levels": ["error", "fatal"], "tags": {"browser": "Firefox"}},
        "channels": [hook["id"], slack["id"]],
    })).await;
    let rule_reg = create(
        &admin,
        "/api/alerts/rules",
        json!({
            "name": "regressions", "when": {"type": "issue_regressed"}, "channels": [hook["id"]],
        }),
    )
    .await;
    let (new_id, reg_id) = (
        rule_new["id"].as_u64().unwrap(),
        rule_reg["id"].as_u64().unwrap(),
    );
    alerts_running(&s).await;

    // Filtered out: other project, other environment, other level, other tag value.
    publish(
        &s,
        "issue.created",
        issue(2, 100, "production", "error", "other project"),
    )
    .await;
    publish(
        &s,
        "issue.created",
        issue(1, 101, "staging", "error", "staging"),
    )
    .await;
    publish(
        &s,
        "issue.created",
        issue(1, 102, "production", "warning", "warning"),
    )
    .await;
    let mut chrome = issue(1, 105, "production", "error", "chrome");
    chrome["tags"] = json!({"browser": "Chrome"});
    publish(&s, "issue.created", chrome).await;
    // Matches.
    publish(
        &s,
        "issue.created",
        issue(1, 103, "production", "error", "TypeError: <b>x</b> & y"),
    )
    .await;

    let hooks = rx.wait("/hook", 1).await;
    let slacks = rx.wait("/slack", 1).await;
    let fired = history(&viewer, new_id).await;
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(fired[0]["alert"]["issue_id"], 103);

    // The webhook: Standard Webhooks headers, signed with exactly the secret the API showed.
    let h = &hooks[0];
    assert!(verify(&secret, h), "signature does not verify");
    assert_eq!(h.body["type"], "alert.fired");
    let data = &h.body["data"];
    assert_eq!(data["issue_id"], 103);
    assert_eq!(data["kind"], "issue_created");
    assert_eq!(data["project_id"], 1);
    assert_eq!(data["release"], "1.2.3");
    assert_eq!(data["url"], format!("{}/#/issues/103", s.base));
    assert_eq!(h.headers["content-type"], "application/json");

    // Slack: coloured attachment with Block Kit, escaped title, link back to the issue.
    let sb = &slacks[0].body;
    assert!(sb["text"].as_str().unwrap().contains("New issue"));
    let att = &sb["attachments"][0];
    assert_eq!(att["color"], "#E01E5A");
    let section = att["blocks"][0]["text"]["text"].as_str().unwrap();
    assert!(
        section.contains(&format!(
            "<{}/#/issues/103|TypeError: &lt;b&gt;x&lt;/b&gt; &amp; y>",
            s.base
        )),
        "{section}"
    );
    assert_eq!(
        att["blocks"][2]["elements"][0]["url"],
        format!("{}/#/issues/103", s.base)
    );

    // Regression fires once; the second within the throttle does not.
    publish(
        &s,
        "issue.regressed",
        issue(1, 103, "production", "error", "TypeError"),
    )
    .await;
    publish(
        &s,
        "issue.regressed",
        issue(1, 103, "production", "error", "TypeError"),
    )
    .await;
    // A sentinel after them: once it has fired, both regressions were evaluated.
    publish(
        &s,
        "issue.created",
        issue(1, 104, "production", "fatal", "sentinel"),
    )
    .await;
    wait_for("the sentinel alert", T, || async {
        (history(&viewer, new_id).await.len() == 2).then_some(())
    })
    .await;
    let regs = history(&viewer, reg_id).await;
    assert_eq!(regs.len(), 1, "throttled: {regs:?}");
    assert_eq!(regs[0]["alert"]["reason"], "Regression");
    let hooks = rx.wait("/hook", 3).await;
    assert!(hooks.iter().all(|h| verify(&secret, h)));
    // Delivery status lands in the history.
    wait_for("delivery recorded", T, || async {
        let f = history(&viewer, reg_id).await;
        (f[0]["deliveries"][0]["status"] == "delivered").then_some(())
    })
    .await;

    // "Send test" per channel.
    let r = admin
        .post(&format!("/api/alerts/channels/{}/test", hook["id"]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let test_hit = rx
        .at("/hook")
        .into_iter()
        .find(|h| {
            h.headers["webhook-id"]
                .to_str()
                .unwrap()
                .starts_with("msg_test_")
        })
        .expect("test delivery");
    assert!(verify(&secret, &test_hit));

    // Monitor down (published by the uptime part later).
    create(&admin, "/api/alerts/rules", json!({
        "name": "api down", "when": {"type": "monitor_down", "monitor": "api"}, "channels": [slack["id"]],
    })).await;
    publish(&s, "monitor.web.down", json!({"name": "web"})).await;
    publish(
        &s,
        "monitor.api.down",
        json!({"name": "api", "error": "timeout"}),
    )
    .await;
    let down = wait_for("the monitor alert on Slack", T, || async {
        rx.at("/slack").into_iter().find(|h| {
            h.body["text"]
                .as_str()
                .is_some_and(|t| t.contains("Monitor api is down"))
        })
    })
    .await;
    assert_eq!(down.body["attachments"][0]["color"], "#E01E5A");
    assert!(
        !rx.at("/slack")
            .iter()
            .any(|h| h.body["text"].as_str().unwrap().contains("Monitor web")),
        "the rule names monitor api only"
    );

    // Rotating a webhook secret gives a new one; keeping it does not.
    let same: Value = admin
        .http
        .put(admin.url(&format!("/api/alerts/channels/{}", hook["id"])))
        .bearer_auth(&admin.token)
        .json(&json!({"name": "hook2", "type": "webhook", "url": rx.url("/hook")}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(same["secret"], secret.as_str());
    let rotated: Value = admin
        .http
        .put(admin.url(&format!("/api/alerts/channels/{}", hook["id"])))
        .bearer_auth(&admin.token)
        .json(&json!({"name": "hook2", "type": "webhook", "url": rx.url("/hook"), "rotate_secret": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(rotated["secret"], secret.as_str());
    s.stop().await;
}

#[tokio::test]
async fn webhook_retries_keep_the_id_then_dead_letter_and_dlq_growth_alerts() {
    let rx = Receiver::start(&[("/flaky", 2), ("/dead", usize::MAX)]).await;
    let tmp = tempfile::tempdir().unwrap();
    let mut config = test_config(tmp.path());
    config.bus.backoff = vec![hearth::config::HumanDuration::millis(50)];
    config.bus.max_deliver = 3;
    let s = TestServer::start_with(local_receivers(config)).await;
    let admin = s.client(Role::Admin).await;
    let flaky = create(
        &admin,
        "/api/alerts/channels",
        json!({"name": "flaky", "type": "webhook", "url": rx.url("/flaky")}),
    )
    .await;
    let dead = create(
        &admin,
        "/api/alerts/channels",
        json!({"name": "dead", "type": "webhook", "url": rx.url("/dead")}),
    )
    .await;
    let dlq = create(
        &admin,
        "/api/alerts/channels",
        json!({"name": "dlq", "type": "webhook", "url": rx.url("/dlq")}),
    )
    .await;
    let rule = create(&admin, "/api/alerts/rules", json!({
        "name": "all new", "when": {"type": "issue_created"}, "channels": [flaky["id"], dead["id"]],
    })).await;
    create(&admin, "/api/alerts/rules", json!({
        "name": "dead letters", "when": {"type": "dlq_growth", "consumer": "alerts-delivery"}, "channels": [dlq["id"]],
    })).await;
    alerts_running(&s).await;
    publish(
        &s,
        "issue.created",
        issue(1, 7, "production", "error", "boom"),
    )
    .await;

    // 500, 500, 200: three attempts, one webhook-id, each signed afresh.
    let hits = rx.wait("/flaky", 3).await;
    let secret = flaky["secret"].as_str().unwrap();
    let ids: Vec<&str> = hits
        .iter()
        .map(|h| h.headers["webhook-id"].to_str().unwrap())
        .collect();
    assert!(ids.iter().all(|i| *i == ids[0]), "{ids:?}");
    assert!(hits.iter().all(|h| verify(secret, h)));

    // Always 500: max_deliver (3) attempts, then the bus DLQ.
    let dead_hits = rx.wait("/dead", 3).await;
    assert!(
        dead_hits
            .iter()
            .all(|h| h.headers["webhook-id"] == dead_hits[0].headers["webhook-id"])
    );
    let letters = wait_for("a dead letter", T, || async {
        let l = s
            .state
            .bus
            .dlq_list(Some("alerts-delivery".into()), 10)
            .await
            .unwrap();
        (!l.is_empty()).then_some(l)
    })
    .await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].attempts.len(), 3);
    assert!(letters[0].error.contains("500"), "{}", letters[0].error);
    assert_eq!(
        letters[0].event.id,
        dead_hits[0].headers["webhook-id"].to_str().unwrap()
    );
    assert_eq!(rx.at("/dead").len(), 3, "no attempts beyond max_deliver");

    // The history shows one delivered, one failed.
    let rule_id = rule["id"].as_u64().unwrap();
    wait_for("delivery states", T, || async {
        let f = history(&admin, rule_id).await;
        let d = f.first()?["deliveries"].as_array()?.clone();
        let by = |id: &Value| d.iter().find(|x| x["channel_id"] == *id).unwrap().clone();
        let (a, b) = (by(&flaky["id"]), by(&dead["id"]));
        (a["status"] == "delivered" && a["attempts"] == 3 && b["status"] == "failed").then_some(())
    })
    .await;

    // Secrets stay with admins: the receiver's reply only in an admin's history, and
    // the receiver's URL path in no error anyone reads over the API, nor in the DLQ alert.
    let viewer = s.client(Role::Viewer).await;
    let dead_id = dead["id"].clone();
    let delivery = |f: &[Value]| {
        f[0]["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["channel_id"] == dead_id)
            .unwrap()
            .clone()
    };
    let admin_view = delivery(&history(&admin, rule_id).await);
    assert_eq!(admin_view["reply"], "reply-from-receiver", "{admin_view}");
    let viewer_view = delivery(&history(&viewer, rule_id).await);
    assert!(viewer_view.get("reply").is_none(), "{viewer_view}");
    let error = viewer_view["last_error"].as_str().unwrap();
    assert!(error.contains("answered 500"), "{error}");
    assert!(
        !error.contains("/dead") && !error.contains("reply-from"),
        "{error}"
    );
    for who in [&viewer, &admin] {
        let list = who
            .get("/api/bus/dlq?consumer=alerts-delivery")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(list.contains("answered 500"), "{list}");
        assert!(
            !list.contains("/dead") && !list.contains("reply-from"),
            "{list}"
        );
        let seq = letters[0].event.seq;
        let one = who
            .get(&format!("/api/bus/dlq/alerts-delivery/{seq}"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            !one.contains("/dead") && !one.contains("reply-from"),
            "{one}"
        );
    }
    let r = viewer.get("/api/alerts/channels").send().await.unwrap();
    assert_eq!(
        r.status(),
        403,
        "channels, with URLs and secrets, are for admins"
    );

    // The dead letter itself raised a DLQ-growth alert.
    let dlq_hits = rx.wait("/dlq", 1).await;
    assert_eq!(dlq_hits[0].body["data"]["kind"], "dlq_growth");
    assert!(
        dlq_hits[0].body["data"]["reason"]
            .as_str()
            .unwrap()
            .contains("alerts-delivery")
    );
    assert!(
        !String::from_utf8_lossy(&dlq_hits[0].raw).contains("/dead"),
        "the DLQ alert names no receiver path"
    );
    s.stop().await;
}

/// Slack and webhook targets on loopback, private and link-local addresses are refused unless
/// `[alerts] allow_private_targets = true`: when a channel is saved (IP literals and names that
/// resolve to them), and at delivery, where the guard judges the addresses the name resolves
/// to then (a channel saved while the setting was on, delivered after it was turned off).
#[tokio::test]
async fn private_targets_are_refused_unless_allowed() {
    let rx = Receiver::start(&[]).await;
    let port = rx.base.rsplit(':').next().unwrap().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(local_receivers(test_config(tmp.path()))).await;
    let admin = s.client(Role::Admin).await;
    // Saved while allowed; a name, so the delivery below goes through the resolver.
    let hook = create(
        &admin,
        "/api/alerts/channels",
        json!({"name": "intranet", "type": "webhook", "url": format!("http://localhost:{port}/hook")}),
    )
    .await;
    let rule = create(
        &admin,
        "/api/alerts/rules",
        json!({"name": "new", "when": {"type": "issue_created"}, "channels": [hook["id"]]}),
    )
    .await;
    s.stop().await;

    let mut config = test_config(tmp.path());
    config.bus.max_deliver = 3;
    let s = TestServer::start_with(config).await;
    let admin = s.client(Role::Admin).await;
    for url in [
        format!("http://127.0.0.1:{port}/x"),
        format!("http://localhost:{port}/x"),
        "http://[::1]/x".to_string(),
        "http://[::ffff:127.0.0.1]/x".to_string(),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://10.0.0.1/x".to_string(),
        "http://100.64.0.1/x".to_string(),
        "http://[fd00::1]/x".to_string(),
    ] {
        for kind in ["slack", "webhook"] {
            let r = admin
                .post("/api/alerts/channels")
                .json(&json!({"name": "x", "type": kind, "url": url}))
                .send()
                .await
                .unwrap();
            let status = r.status();
            let v: Value = r.json().await.unwrap();
            assert_eq!(status, 422, "{kind} {url}: {v}");
            assert_eq!(v["error"]["code"], "target_not_allowed", "{url}");
            let m = v["error"]["message"].as_str().unwrap();
            assert!(m.contains("[alerts] allow_private_targets = true"), "{m}");
        }
    }
    alerts_running(&s).await;
    publish(
        &s,
        "issue.created",
        issue(1, 1, "production", "error", "boom"),
    )
    .await;
    let rule_id = rule["id"].as_u64().unwrap();
    let failed = wait_for("the refused delivery", T, || async {
        let f = history(&admin, rule_id).await;
        let d = f.first()?["deliveries"][0].clone();
        (d["status"] == "failed").then_some(d)
    })
    .await;
    let error = failed["last_error"].as_str().unwrap();
    assert!(
        error.contains("not a public address") && error.contains("allow_private_targets"),
        "{error}"
    );
    assert_eq!(failed["attempts"], 1, "a refusal is not retried");
    assert!(rx.at("/hook").is_empty(), "nothing reached the receiver");
    s.stop().await;
}

#[tokio::test]
async fn email_channel_frequency_rule_and_daily_report() {
    let port = free_port();
    let Some(smtp) = SmtpServer::start(port, &[]).await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(mail_config(tmp.path(), port)).await;
    let admin = s.client(Role::Admin).await;
    let email = create(
        &admin,
        "/api/alerts/channels",
        json!({"name": "ops", "type": "email", "to": ["ops@test.invalid"]}),
    )
    .await;
    let rule = create(
        &admin,
        "/api/alerts/rules",
        json!({
            "name": "busy", "when": {"type": "frequency", "count": 2, "window": "1m"},
            "filters": {"project_ids": [1]}, "channels": [email["id"]],
        }),
    )
    .await;
    let before = alerts_running(&s).await;
    let title = "Boom <x> & y";
    for _ in 0..4 {
        publish(
            &s,
            "event.stored",
            issue(1, 7, "production", "error", title),
        )
        .await;
    }
    // Another issue with 2 events stays under the threshold.
    for _ in 0..2 {
        publish(
            &s,
            "event.stored",
            issue(1, 8, "production", "error", "quiet"),
        )
        .await;
    }
    wait_for("the alerts consumer to see every event", T, || async {
        (acked_by(&s, "alerts").await >= before + 6).then_some(())
    })
    .await;
    let fired = history(&admin, rule["id"].as_u64().unwrap()).await;
    assert_eq!(
        fired.len(),
        1,
        "fires once past 2, then throttled: {fired:?}"
    );
    assert_eq!(fired[0]["alert"]["count"], 3);
    assert_eq!(fired[0]["alert"]["issue_id"], 7);

    let mail = wait_for("the alert email", T, || async {
        smtp.messages().into_iter().next()
    })
    .await;
    assert_eq!(header(&mail, "To").unwrap(), "ops@test.invalid");
    assert_eq!(header(&mail, "X-Hearth-Category").unwrap(), "monitoring");
    let subject = header(&mail, "Subject").unwrap();
    assert!(
        subject.contains("Seen more than 2 times in 1m"),
        "{subject}"
    );
    assert!(subject.contains(title), "{subject}");
    let html = mail["html"].as_str().unwrap();
    assert!(html.contains("Boom &lt;x&gt; &amp; y"), "{html}");
    // minijinja's HTML escaping writes '/' as an entity; a mail client decodes it.
    assert!(
        html.replace("&#x2f;", "/")
            .contains(&format!("{}/#/issues/7", s.base))
    );
    assert!(mail["text"].as_str().unwrap().contains(title));

    // The daily report, sent on demand for today.
    let r = admin
        .post("/api/alerts/daily-report")
        .json(&json!({"to": ["boss@test.invalid"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let report = wait_for("the daily report", T, || async {
        smtp.messages()
            .into_iter()
            .find(|m| header(m, "To").as_deref() == Some("boss@test.invalid"))
    })
    .await;
    assert!(
        header(&report, "Subject")
            .unwrap()
            .starts_with("[Hearth] Daily report for ")
    );
    let text = report["text"].as_str().unwrap();
    assert!(text.contains("Events: 6"), "{text}");
    assert!(text.contains(&format!("4x  {title}")), "{text}");
    assert!(text.contains("2x  quiet"), "{text}");
    s.stop().await;
    smtp.stop().await;
}
