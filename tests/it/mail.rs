//! Mail: the outbox delivering through a real SMTP server (aiosmtpd), read back and checked.

use std::time::Duration;

use base64::Engine;
use hearth::accounts::Role;
use serde_json::{Value, json};

use crate::common::{TestServer, test_config, wait_for};
use crate::mail_support::{SmtpServer, free_port, header, mail_config};

const T: Duration = Duration::from_secs(30);

async fn message(c: &crate::common::AuthedClient, id: u64) -> Value {
    let r = c
        .get(&format!("/api/mail/messages/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn wait_status(c: &crate::common::AuthedClient, id: u64, status: &str) -> Value {
    wait_for(&format!("message {id} to be {status}"), T, || async {
        let m = message(c, id).await;
        (m["status"] == status).then_some(m)
    })
    .await
}

#[tokio::test]
async fn delivers_parts_headers_escaping_and_attachments() {
    let port = free_port();
    let Some(smtp) = SmtpServer::start(port, &[]).await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(mail_config(tmp.path(), port)).await;
    let admin = s.client(Role::Admin).await;
    let viewer = s.client(Role::Viewer).await;
    let mut live = s.state.bus.subscribe(&["mail.>"]);

    // An admin-added template with an HTML part.
    let r = admin
        .post("/api/mail/templates")
        .json(&json!({
            "name": "welcome",
            "subject": "Welcome {{ name }}",
            "text": "Hello {{ name }}, your code is {{ code }}.",
            "html": "<p>Hello <b>{{ name }}</b>, your code is {{ code }}.</p>",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    // Viewers cannot write.
    let r = viewer
        .post("/api/mail/send")
        .json(&json!({"to": ["a@test.invalid"], "subject": "x", "text": "y"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    let evil = "<script>alert(\"x\")</script> & Co";
    let pdf = b"%PDF-1.4 fake bytes \x00\x01\x02".to_vec();
    let r = admin
        .post("/api/mail/send-template")
        .json(&json!({
            "template": "welcome",
            "vars": {"name": evil, "code": 42},
            "to": ["alice@test.invalid"],
            "cc": ["carol@test.invalid"],
            "bcc": ["bob@test.invalid"],
            "category": "admin",
            "priority": "high",
            "attachments": [{
                "filename": "report.pdf",
                "content_type": "application/pdf",
                "content_base64": base64::engine::general_purpose::STANDARD.encode(&pdf),
            }],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let id = r.json::<Value>().await.unwrap()["id"].as_u64().unwrap();
    let m = wait_status(&viewer, id, "sent").await;

    let got = smtp.messages();
    assert_eq!(got.len(), 1, "{got:?}");
    let msg = &got[0];
    let mut rcpt: Vec<&str> = msg["rcpt_tos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    rcpt.sort();
    assert_eq!(
        rcpt,
        [
            "alice@test.invalid",
            "bob@test.invalid",
            "carol@test.invalid"
        ]
    );
    assert_eq!(msg["mail_from"], "hearth@test.invalid");
    assert_eq!(header(msg, "Subject").unwrap(), format!("Welcome {evil}"));
    assert_eq!(header(msg, "To").unwrap(), "alice@test.invalid");
    assert_eq!(header(msg, "Cc").unwrap(), "carol@test.invalid");
    assert!(
        header(msg, "Bcc").is_none(),
        "Bcc must not be in the headers"
    );
    assert!(header(msg, "From").unwrap().contains("hearth@test.invalid"));
    assert_eq!(header(msg, "X-Hearth-Message-Id").unwrap(), id.to_string());
    assert_eq!(header(msg, "X-Hearth-Category").unwrap(), "admin");
    assert!(header(msg, "Message-ID").is_some());
    let text = msg["text"].as_str().unwrap();
    assert!(
        text.contains(&format!("Hello {evil}, your code is 42.")),
        "{text}"
    );
    let html = msg["html"].as_str().unwrap();
    assert!(
        html.contains("<b>&lt;script&gt;alert(&quot;x&quot;)&lt;&#x2f;script&gt; &amp; Co</b>"),
        "{html}"
    );
    assert!(!html.contains("<script>"));
    let att = &msg["attachments"][0];
    assert_eq!(att["filename"], "report.pdf");
    assert_eq!(att["content_type"], "application/pdf");
    let data = base64::engine::general_purpose::STANDARD
        .decode(att["data_b64"].as_str().unwrap())
        .unwrap();
    assert_eq!(data, pdf);

    // The delivery log: queued, then sent with the relay's reply.
    let log = m["log"].as_array().unwrap();
    assert_eq!(log[0]["kind"], "queued");
    let sent = log.last().unwrap();
    assert_eq!(sent["kind"], "sent");
    assert_eq!(sent["smtp_code"], 250);
    assert!(sent["detail"].as_str().unwrap().contains("queued as"));
    assert_eq!(m["attempts"], 1);

    // mail.sent went out on the bus.
    let ev = tokio::time::timeout(T, live.recv()).await.unwrap().unwrap();
    assert_eq!(ev.subject, "mail.sent");
    assert_eq!(ev.payload["id"], id);

    // Search by recipient and subject, stats per category.
    let found: Value = viewer
        .get("/api/mail/messages?to=CAROL@test&status=sent")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(found["messages"].as_array().unwrap().len(), 1);
    let none: Value = viewer
        .get("/api/mail/messages?subject=nothing-like-this")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(none["messages"].as_array().unwrap().len(), 0);
    let stats: Value = viewer
        .get("/api/mail/stats")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let admin_day = stats["days"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["category"] == "admin")
        .unwrap();
    assert_eq!(admin_day["sent"], 1);
    assert_eq!(admin_day["queued"], 1);

    // Templates list has the built-ins and ours.
    let list: Value = viewer
        .get("/api/mail/templates")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = list["templates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for n in ["daily_report", "error_alert", "system_alert", "welcome"] {
        assert!(names.contains(&n), "{names:?}");
    }
    s.stop().await;
    smtp.stop().await;
}

#[tokio::test]
async fn bulk_send_tracks_each_message() {
    let port = free_port();
    let Some(smtp) = SmtpServer::start(port, &[]).await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(mail_config(tmp.path(), port)).await;
    let admin = s.client(Role::Admin).await;
    let r = admin
        .post("/api/mail/bulk")
        .json(&json!({
            "subject": "Hi {{ name }}",
            "text": "Dear {{ name }} ({{ to }}), {{ shared }}",
            "vars": {"shared": "the news"},
            "category": "internal",
            "recipients": [
                {"to": "a@test.invalid", "vars": {"name": "A"}},
                {"to": "b@test.invalid", "vars": {"name": "B"}},
                {"to": "c@test.invalid", "vars": {"name": "C"}},
            ],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let ids: Vec<u64> = r.json::<Value>().await.unwrap()["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(ids.len(), 3);
    for id in &ids {
        wait_status(&admin, *id, "sent").await;
    }
    let got = smtp.messages();
    assert_eq!(got.len(), 3);
    let mut subjects: Vec<String> = got.iter().map(|m| header(m, "Subject").unwrap()).collect();
    subjects.sort();
    assert_eq!(subjects, ["Hi A", "Hi B", "Hi C"]);
    let b = got
        .iter()
        .find(|m| header(m, "To").unwrap() == "b@test.invalid")
        .unwrap();
    assert!(
        b["text"]
            .as_str()
            .unwrap()
            .contains("Dear B (b@test.invalid), the news")
    );
    s.stop().await;
    smtp.stop().await;
}

#[tokio::test]
async fn permanent_rejection_fails_with_the_reply() {
    let port = free_port();
    let Some(smtp) = SmtpServer::start(port, &["nobody@test.invalid"]).await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(mail_config(tmp.path(), port)).await;
    let admin = s.client(Role::Admin).await;
    let mut live = s.state.bus.subscribe(&["mail.failed"]);
    let r = admin
        .post("/api/mail/send")
        .json(&json!({"to": ["nobody@test.invalid"], "subject": "x", "text": "y"}))
        .send()
        .await
        .unwrap();
    let id = r.json::<Value>().await.unwrap()["id"].as_u64().unwrap();
    let m = wait_status(&admin, id, "failed").await;
    assert_eq!(m["last_code"], 550);
    let err = m["last_error"].as_str().unwrap();
    assert!(err.contains("User unknown"), "{err}");
    assert_eq!(m["attempts"], 1, "a 5xx is not retried");
    let last = m["log"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["kind"], "failed");
    assert!(
        last["detail"]
            .as_str()
            .unwrap()
            .contains("Recipient address rejected")
    );
    assert!(smtp.messages().is_empty());
    let ev = tokio::time::timeout(T, live.recv()).await.unwrap().unwrap();
    assert_eq!(ev.payload["id"], id);
    assert!(
        ev.payload["reply"]
            .as_str()
            .unwrap()
            .contains("User unknown")
    );
    s.stop().await;
    smtp.stop().await;
}

#[tokio::test]
async fn smtp_down_and_restart_delivers_each_message_exactly_once() {
    let port = free_port();
    let tmp = tempfile::tempdir().unwrap();
    let config = mail_config(tmp.path(), port);
    let s = TestServer::start_with(config.clone()).await;
    let admin = s.client(Role::Admin).await;
    let mut ids = Vec::new();
    for (i, p) in ["low", "normal", "high", "urgent", "normal"]
        .iter()
        .enumerate()
    {
        let r = admin
            .post("/api/mail/send")
            .json(&json!({"to": [format!("r{i}@test.invalid")], "subject": format!("m{i}"), "text": "body", "priority": p}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        ids.push(r.json::<Value>().await.unwrap()["id"].as_u64().unwrap());
    }
    // Nothing listens: every message is deferred at least once, with the error logged.
    for id in &ids {
        wait_for("a deferred attempt", T, || async {
            let m = message(&admin, *id).await;
            let deferred = m["log"]
                .as_array()
                .unwrap()
                .iter()
                .any(|l| l["kind"] == "deferred");
            (deferred && m["status"] == "queued").then_some(())
        })
        .await;
    }
    let token = admin.token.clone();
    s.stop().await;

    // The relay comes back while Hearth is down; Hearth starts again on the same data.
    let Some(smtp) = SmtpServer::start(port, &[]).await else {
        return;
    };
    let s = TestServer::start_with(config).await;
    let admin = crate::common::AuthedClient {
        http: s.http.clone(),
        token,
        user_id: 0,
        base: s.base.clone(),
    };
    for id in &ids {
        let m = wait_status(&admin, *id, "sent").await;
        let log = m["log"].as_array().unwrap();
        let deferred: Vec<&Value> = log.iter().filter(|l| l["kind"] == "deferred").collect();
        assert!(!deferred.is_empty(), "{log:?}");
        assert!(
            deferred[0]["detail"]
                .as_str()
                .unwrap()
                .to_lowercase()
                .contains("refused"),
            "{log:?}"
        );
        assert_eq!(log.iter().filter(|l| l["kind"] == "sent").count(), 1);
        assert_eq!(m["attempts"].as_u64().unwrap() as usize, deferred.len() + 1);
    }
    let got = smtp.messages();
    let mut seen: Vec<String> = got
        .iter()
        .map(|m| header(m, "X-Hearth-Message-Id").unwrap())
        .collect();
    seen.sort();
    let mut want: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    want.sort();
    assert_eq!(seen, want, "each message delivered exactly once");
    s.stop().await;
    smtp.stop().await;
}

#[tokio::test]
async fn rate_limit_holds_mail_then_sends_it_in_priority_order() {
    let port = free_port();
    let Some(smtp) = SmtpServer::start(port, &[]).await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut config = mail_config(tmp.path(), port);
    config.mail.rate_limit_per_hour = 1;
    config.mail.concurrency = 1;
    let s = TestServer::start_with(config).await;
    let admin = s.client(Role::Admin).await;
    let send = |subject: &'static str, priority: &'static str| {
        let admin = &admin;
        async move {
            let r = admin
                .post("/api/mail/send")
                .json(&json!({"to": ["x@test.invalid"], "subject": subject, "text": "t", "priority": priority}))
                .send()
                .await
                .unwrap();
            r.json::<Value>().await.unwrap()["id"].as_u64().unwrap()
        }
    };
    let first = send("first", "normal").await;
    wait_status(&admin, first, "sent").await;
    let held = vec![
        send("low", "low").await,
        send("normal", "normal").await,
        send("high", "high").await,
        send("urgent", "urgent").await,
    ];
    // The hour's budget is spent: the rest wait in the queue, visibly held, not dropped.
    let stats = wait_for("the rate limit to hold mail", T, || async {
        let st: Value = admin
            .get("/api/mail/stats")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (st["held_by_rate_limit"] == true).then_some(st)
    })
    .await;
    assert_eq!(stats["ready"], 4);
    for id in &held {
        assert_eq!(message(&admin, *id).await["status"], "queued");
    }
    assert_eq!(smtp.messages().len(), 1);

    // Lifting the limit releases them, urgent first.
    s.state.mail.set_rate_limit(0);
    for id in &held {
        wait_status(&admin, *id, "sent").await;
    }
    let order: Vec<String> = smtp
        .messages()
        .iter()
        .map(|m| header(m, "Subject").unwrap())
        .collect();
    assert_eq!(order, ["first", "urgent", "high", "normal", "low"]);
    s.stop().await;
    smtp.stop().await;
}

#[tokio::test]
async fn cancel_validation_and_no_relay() {
    let s = TestServer::start().await;
    let admin = s.client(Role::Admin).await;
    // No [smtp] host: mail waits in the queue.
    let r = admin
        .post("/api/mail/send")
        .json(&json!({"to": ["a@test.invalid"], "subject": "s", "text": "t"}))
        .send()
        .await
        .unwrap();
    let id = r.json::<Value>().await.unwrap()["id"].as_u64().unwrap();
    assert_eq!(message(&admin, id).await["status"], "queued");
    let r = admin
        .post(&format!("/api/mail/messages/{id}/cancel"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "cancelled");
    let r = admin
        .post(&format!("/api/mail/messages/{id}/cancel"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "conflict"
    );
    for bad in [
        json!({"to": ["not an address"], "subject": "s", "text": "t"}),
        json!({"to": [], "subject": "s", "text": "t"}),
        json!({"to": ["a@test.invalid"], "subject": "", "text": "t"}),
        json!({"to": ["a@test.invalid"], "subject": "s", "text": "t", "attachments": [{"filename": "a", "content_base64": "!!"}]}),
    ] {
        let r = admin
            .post("/api/mail/send")
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }
    let r = admin
        .post("/api/mail/templates")
        .json(&json!({"name": "broken", "subject": "{{ oops", "text": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = admin.get("/api/mail/messages/999999").send().await.unwrap();
    assert_eq!(r.status(), 404);
    s.stop().await;
}

#[tokio::test]
async fn send_test_email_tells_the_operator_what_to_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut config = test_config(tmp.path());
    config.smtp.host = "127.0.0.1".into();
    config.smtp.port = port;
    config.smtp.tls = hearth::config::SmtpTls::None;
    crate::common::install_crypto();
    let err = hearth::mail::smtp::send_test_email(&config.smtp, "ops@test.invalid")
        .await
        .unwrap_err();
    assert!(err.contains("connection refused"), "{err}");
    assert!(err.contains("[smtp] host and port"), "{err}");

    config.smtp.host = "no-such-host.invalid".into();
    let err = hearth::mail::smtp::send_test_email(&config.smtp, "ops@test.invalid")
        .await
        .unwrap_err();
    assert!(err.contains("cannot resolve"), "{err}");

    // Implicit TLS against a plain SMTP port: the hint names the TLS mode.
    let Some(smtp) = SmtpServer::start(port, &[]).await else {
        return;
    };
    config.smtp.host = "127.0.0.1".into();
    config.smtp.tls = hearth::config::SmtpTls::Implicit;
    let err = hearth::mail::smtp::send_test_email(&config.smtp, "ops@test.invalid")
        .await
        .unwrap_err();
    assert!(err.contains("starttls"), "{err}");
    config.smtp.tls = hearth::config::SmtpTls::None;
    let ok = hearth::mail::smtp::send_test_email(&config.smtp, "ops@test.invalid")
        .await
        .unwrap();
    assert!(ok.starts_with("250"), "{ok}");
    assert_eq!(smtp.messages().len(), 1);
    smtp.stop().await;
}

/// A template that would print 100 MB from under 150 bytes, one that makes a 100 MB string in
/// one expression, and a loop that runs 10 billion times are refused with
/// `template_limit_exceeded` (stored templates, send-template and bulk alike), and nothing is
/// queued. Before, the first made a 100 MB mail and the loop held a worker for as long as it ran.
#[tokio::test]
async fn template_amplification_and_endless_loops_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(test_config(tmp.path())).await;
    let admin = s.client(Role::Admin).await;
    let print_100mb = "{% for i in range(100000) %}{{ 'xxxxxxxxxx' * 100 }}{% endfor %}";
    assert!(print_100mb.len() < 150);
    let endless =
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}";
    for (name, text, setting) in [
        ("amplify", print_100mb, "template_max_output"),
        ("onevalue", "{{ 'x' * 100000000 }}", "template_max_output"),
        ("endless", endless, "template_fuel"),
    ] {
        let r = admin
            .post("/api/mail/templates")
            .json(&json!({"name": name, "subject": "s", "text": text}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "a template that compiles is stored");
        for (path, body) in [
            (
                "/api/mail/send-template",
                json!({"template": name, "vars": {}, "to": ["a@test.invalid"]}),
            ),
            (
                "/api/mail/bulk",
                json!({"subject": "s", "text": text, "recipients": [{"to": "a@test.invalid"}]}),
            ),
        ] {
            let r = admin.post(path).json(&body).send().await.unwrap();
            let status = r.status();
            let v: Value = r.json().await.unwrap();
            assert_eq!(status, 422, "{name} {path}: {v}");
            assert_eq!(v["error"]["code"], "template_limit_exceeded", "{v}");
            let m = v["error"]["message"].as_str().unwrap();
            assert!(m.contains(setting), "{name}: {m}");
        }
    }
    let listed: Value = admin
        .get("/api/mail/messages")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["messages"], json!([]), "nothing was queued");
    s.stop().await;
}

/// Template rendering runs off the async workers: with the server on one worker thread and a
/// render busy on its loop (a generous `template_fuel` keeps it going), `/health/ready` still
/// answers, before the render ends. Before, the render held the worker and ready waited for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn ready_answers_while_a_template_renders() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = test_config(tmp.path());
    config.mail.template_fuel = 5_000_000;
    let s = TestServer::start_with(config).await;
    let admin = s.client(Role::Admin).await;
    let render = admin
        .post("/api/mail/bulk")
        .json(&json!({
            "subject": "s",
            "text": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            "recipients": [{"to": "a@test.invalid"}],
        }))
        .send();
    tokio::pin!(render);
    // This test's body runs on its own thread, so it sees the gauge even if the server's one
    // worker is busy. A worker held by a render would also hold the runtime's timers, so the
    // bound that turns such a hang into a failure comes from a plain thread.
    let (tx, deadline) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(60));
        let _ = tx.send(());
    });
    tokio::pin!(deadline);
    let running = wait_for("a render running", Duration::from_secs(20), || async {
        (s.state.mail.renders_in_flight() > 0).then_some(())
    });
    tokio::select! {
        r = &mut render => panic!(
            "the render ended before it was seen running (did it hold the only worker?): {r:?}"
        ),
        _ = running => {}
    }
    let ready = tokio::select! {
        r = &mut render => panic!("ready did not answer while the template rendered: {r:?}"),
        _ = &mut deadline => panic!("ready did not answer while the template rendered"),
        r = s.http.get(s.url("/health/ready")).send() => r.unwrap(),
    };
    assert_eq!(ready.status(), 200);
    assert!(s.state.mail.renders_in_flight() > 0, "still rendering");
    let r = render.await.unwrap();
    assert_eq!(r.status(), 422);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "template_limit_exceeded");
    s.stop().await;
}
