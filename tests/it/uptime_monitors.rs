//! Uptime monitors through the real binary: a local HTTP server the test tells to fail, a
//! monitor on it, the alert rules `monitor_down` / `monitor_up` delivering to a local webhook
//! receiver, the API's validation, results, incidents and pause/resume.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::binary::Hearth;
use crate::common::wait_for;
use crate::receiver::{Receiver, verify};

const T: Duration = Duration::from_secs(60);

/// A target that answers `{"status": "ok"}` with the status it is told to.
struct Target {
    status: Arc<AtomicU16>,
    url: String,
}

impl Target {
    async fn start() -> Target {
        let status = Arc::new(AtomicU16::new(200));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/health", listener.local_addr().unwrap());
        let s = status.clone();
        let app = axum::Router::new().route(
            "/health",
            axum::routing::get(move || {
                let s = s.clone();
                async move {
                    let code = StatusCode::from_u16(s.load(Ordering::SeqCst)).unwrap();
                    (code, axum::Json(json!({"status": "ok"})))
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Target { status, url }
    }

    fn answer(&self, code: u16) {
        self.status.store(code, Ordering::SeqCst);
    }
}

async fn send_json(req: reqwest::RequestBuilder, body: Value) -> (u16, Value) {
    let r = req.json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn monitor(h: &Hearth, token: &str, id: u64) -> Value {
    h.get(token, &format!("/api/monitors/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn http_monitor_goes_down_and_up_and_the_alerts_reach_the_webhook() {
    let rx = Receiver::start(&[]).await;
    let target = Target::start().await;
    // The receiver is on loopback, as an intranet webhook would be.
    let h = Hearth::start("[alerts]\nallow_private_targets = true\n").await;
    let owner = h.owner().await;
    let tok = owner.token.as_str();

    let (st, hook) = send_json(
        h.post(tok, "/api/alerts/channels"),
        json!({"name": "hook", "type": "webhook", "url": rx.url("/hook")}),
    )
    .await;
    assert_eq!(st, 201, "{hook}");
    let secret = hook["secret"].as_str().unwrap().to_string();
    for kind in ["monitor_down", "monitor_up"] {
        let (st, rule) = send_json(
            h.post(tok, "/api/alerts/rules"),
            json!({"name": kind, "when": {"type": kind, "monitor": "api"},
                   "channels": [hook["id"]], "throttle_minutes": 0}),
        )
        .await;
        assert_eq!(st, 201, "{rule}");
    }

    // A bad condition is refused with its index and byte position.
    let (st, err) = send_json(
        h.post(tok, "/api/monitors"),
        json!({"name": "API", "check": {"kind": "http", "url": target.url},
               "conditions": [{"condition": "[STATUS] == 200"}, {"condition": "[STATUS] =! 200"}]}),
    )
    .await;
    assert_eq!(st, 400, "{err}");
    assert_eq!(err["error"]["code"], "invalid_condition", "{err}");
    assert_eq!(err["error"]["field"], "conditions[1]", "{err}");
    assert!(err["error"]["position"].as_u64().is_some(), "{err}");
    // So is an interval below one second, and an unknown check kind.
    let (st, err) = send_json(
        h.post(tok, "/api/monitors"),
        json!({"name": "API", "check": {"kind": "http", "url": target.url}, "interval": "500ms"}),
    )
    .await;
    assert_eq!(
        (st, err["error"]["field"].as_str()),
        (400, Some("interval"))
    );
    let (st, _) = send_json(
        h.post(tok, "/api/monitors"),
        json!({"name": "API", "check": {"kind": "gopher", "url": target.url}}),
    )
    .await;
    assert_eq!(st, 400);

    // "Test now" shows the verdict per condition without saving anything.
    let (st, tested) = send_json(
        h.post(tok, "/api/monitors/test"),
        json!({"name": "API", "check": {"kind": "http", "url": target.url},
               "conditions": [{"condition": "[BODY].status == down"}]}),
    )
    .await;
    assert_eq!(st, 200, "{tested}");
    assert_eq!(tested["up"], false, "{tested}");
    assert_eq!(tested["result"]["status"], 200);
    assert!(
        tested["reason"].as_str().unwrap().contains("[BODY].status"),
        "{tested}"
    );

    let (st, created) = send_json(
        h.post(tok, "/api/monitors"),
        json!({"name": "API", "slug": "api", "check": {"kind": "http", "url": target.url, "timeout": 2000},
               "interval": "1s", "failure_threshold": 2, "success_threshold": 2,
               "conditions": [{"condition": "[BODY].status == ok"}, {"condition": "[RESPONSE_TIME] < 2000"}]}),
    )
    .await;
    assert_eq!(st, 201, "{created}");
    let id = created["id"].as_u64().unwrap();
    assert_eq!(created["interval"], "1s");
    // Slugs are unique.
    let (st, _) = send_json(
        h.post(tok, "/api/monitors"),
        json!({"name": "other", "slug": "api", "check": {"kind": "tcp", "host": "127.0.0.1", "port": 9}}),
    )
    .await;
    assert_eq!(st, 409);

    wait_for("the monitor to be up", T, || async {
        (monitor(&h, tok, id).await["state"]["status"] == "up").then_some(())
    })
    .await;
    assert!(rx.at("/hook").is_empty(), "a first UP is news to nobody");

    // The target fails: after two failed checks the monitor is DOWN and the alert arrives.
    target.answer(503);
    let down = wait_for("the monitor_down webhook", T, || async {
        rx.at("/hook")
            .into_iter()
            .find(|hit| hit.body["data"]["kind"] == "monitor_down")
    })
    .await;
    assert!(verify(&secret, &down), "signed with the channel's secret");
    assert_eq!(down.body["data"]["monitor"], "api");
    let title = down.body["data"]["title"].as_str().unwrap();
    assert!(
        title.contains("API is down") && title.contains("503"),
        "{title}"
    );
    let m = monitor(&h, tok, id).await;
    assert_eq!(m["state"]["status"], "down", "{m}");
    let results: Value = h
        .get(tok, &format!("/api/monitors/{id}/results?limit=5"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let newest = &results["results"][0];
    assert_eq!(newest["beat"], "down", "{results}");
    assert_eq!(newest["status"], 503);
    assert!(
        newest["error"].as_str().unwrap().contains("503"),
        "{results}"
    );

    // It recovers: UP after two good checks, and the UP alert arrives.
    target.answer(200);
    let up = wait_for("the monitor_up webhook", T, || async {
        rx.at("/hook")
            .into_iter()
            .find(|hit| hit.body["data"]["kind"] == "monitor_up")
    })
    .await;
    assert_eq!(up.body["data"]["monitor"], "api");
    assert_eq!(
        rx.at("/hook")
            .iter()
            .filter(|hit| hit.body["data"]["kind"] == "monitor_down")
            .count(),
        1,
        "one DOWN per outage, no repeats without reminders"
    );

    // The outage is one closed incident with its first error; the figures show the downtime.
    let summary: Value = h
        .get(tok, &format!("/api/monitors/{id}/summary"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let incidents = summary["incidents"].as_array().unwrap();
    assert_eq!(incidents.len(), 1, "{summary}");
    assert!(incidents[0]["end"].is_string(), "{summary}");
    assert!(
        incidents[0]["first_error"]
            .as_str()
            .unwrap()
            .contains("503"),
        "{summary}"
    );
    // A human update on the incident, by its id (its start in ms); unknown incidents are 404.
    let inc = incidents[0]["id"].as_i64().unwrap();
    let (st, _) = send_json(
        h.post(tok, &format!("/api/monitors/{id}/incidents/{inc}/updates")),
        json!({"state": "resolved", "message": "Restarted the <b>pool</b>"}),
    )
    .await;
    assert_eq!(st, 201);
    let (st, _) = send_json(
        h.post(
            tok,
            &format!("/api/monitors/{id}/incidents/{}/updates", inc + 1),
        ),
        json!({"state": "identified", "message": "x"}),
    )
    .await;
    assert_eq!(st, 404);
    let again: Value = h
        .get(tok, &format!("/api/monitors/{id}/summary"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let updates = &again["incidents"][0]["updates"];
    assert_eq!(updates[0]["state"], "resolved", "{again}");
    assert_eq!(updates[0]["message"], "Restarted the <b>pool</b>");
    let h24 = summary["figures"]["h24"].as_f64().unwrap();
    assert!(h24 > 0.0 && h24 < 1.0, "{summary}");
    assert_eq!(summary["daily"].as_array().unwrap().len(), 90);

    // Paused: no checks, no alerts while the target fails; resumed: checked again.
    let (st, paused) =
        send_json(h.post(tok, &format!("/api/monitors/{id}/pause")), json!({})).await;
    assert_eq!(st, 200, "{paused}");
    assert_eq!(paused["state"]["paused"], true);
    assert!(paused["next_check_ms"].is_null(), "{paused}");
    let (st, _) = send_json(
        h.post(tok, &format!("/api/monitors/{id}/resume")),
        json!({}),
    )
    .await;
    assert_eq!(st, 200);
    wait_for("the resumed monitor to be up", T, || async {
        (monitor(&h, tok, id).await["state"]["status"] == "up").then_some(())
    })
    .await;

    // The list shows it; deleting removes it and its history.
    let list: Value = h
        .get(tok, "/api/monitors")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["monitors"][0]["slug"], "api");
    let r = h
        .http
        .delete(h.url(&format!("/api/monitors/{id}")))
        .bearer_auth(tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = h
        .get(tok, &format!("/api/monitors/{id}/results"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(h.stop().await, "hearth stops cleanly");
}

/// State survives a restart and what was due while the server was down runs when it is back:
/// a monitor that went DOWN before the restart sends its UP after it.
#[tokio::test]
async fn a_recovery_during_a_restart_still_sends_its_up() {
    let rx = Receiver::start(&[]).await;
    let target = Target::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = "[alerts]\nallow_private_targets = true\n";
    let h = Hearth::start_in(dir.path(), config, &[]).await;
    let owner = h.owner().await;
    let tok = owner.token.clone();
    let (_, hook) = send_json(
        h.post(&tok, "/api/alerts/channels"),
        json!({"name": "hook", "type": "webhook", "url": rx.url("/hook")}),
    )
    .await;
    for kind in ["monitor_down", "monitor_up"] {
        send_json(
            h.post(&tok, "/api/alerts/rules"),
            json!({"name": kind, "when": {"type": kind}, "channels": [hook["id"]], "throttle_minutes": 0}),
        )
        .await;
    }
    target.answer(500);
    let (st, created) = send_json(
        h.post(&tok, "/api/monitors"),
        json!({"name": "Web", "check": {"kind": "http", "url": target.url},
               "interval": "1s", "failure_threshold": 1, "success_threshold": 1}),
    )
    .await;
    assert_eq!(st, 201, "{created}");
    assert_eq!(created["slug"], "web");
    let id = created["id"].as_u64().unwrap();
    rx.wait("/hook", 1).await;
    assert!(h.stop().await);

    target.answer(200);
    let h = Hearth::start_in(dir.path(), config, &[]).await;
    let up = wait_for("the UP after the restart", T, || async {
        rx.at("/hook")
            .into_iter()
            .find(|hit| hit.body["data"]["kind"] == "monitor_up")
    })
    .await;
    assert_eq!(up.body["data"]["monitor"], "web");
    let m = monitor(&h, &tok, id).await;
    assert_eq!(m["state"]["status"], "up", "{m}");
    assert!(h.stop().await);
}

/// A TLS server whose certificate (from a CA of the test's own) expires in 5 days.
async fn tls_server_expiring_in_5_days() -> (std::net::SocketAddr, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use tokio::io::AsyncReadExt;
    let now = time::OffsetDateTime::now_utc();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "Uptime test CA");
    ca.not_before = now - time::Duration::days(30);
    ca.not_after = now + time::Duration::days(365);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    leaf.not_before = now - time::Duration::days(85);
    leaf.not_after = now + time::Duration::days(5);
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(stream).await {
                    let mut buf = [0u8; 256];
                    while matches!(tls.read(&mut buf).await, Ok(n) if n > 0) {}
                }
            });
        }
    });
    (addr, ca_cert.pem())
}

/// A TLS monitor on a certificate expiring in 5 days is up (the chain is trusted through the
/// monitor's CA), `[CERTIFICATE_EXPIRATION] > 240h` fails it, and the expiry is published once
/// as `monitor.<slug>.tls_expiring` (seen here on the live stream).
#[tokio::test]
async fn tls_monitor_warns_before_the_certificate_expires() {
    let (addr, ca_pem) = tls_server_expiring_in_5_days().await;
    let h = Hearth::start("").await;
    let tok = h.owner().await.token;
    let mut live = h
        .get(&tok, "/api/live?subjects=monitor.*.tls_expiring")
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    let (st, m) = send_json(
        h.post(&tok, "/api/monitors"),
        json!({"name": "Edge TLS", "interval": "1s", "failure_threshold": 1,
               "check": {"kind": "tls", "host": "127.0.0.1", "port": addr.port(),
                         "server_name": "localhost", "ca_pem": ca_pem}}),
    )
    .await;
    assert_eq!(st, 201, "{m}");
    let mut seen = String::new();
    tokio::time::timeout(T, async {
        while !seen.contains("monitor.edge-tls.tls_expiring") {
            let chunk = live
                .chunk()
                .await
                .unwrap()
                .expect("the live stream stays open");
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no tls_expiring event; stream so far: {seen}"));
    assert!(
        seen.contains("expires in 4 day(s)") || seen.contains("expires in 5 day(s)"),
        "{seen}"
    );
    let id = m["id"].as_u64().unwrap();
    wait_for("the TLS monitor up", T, || async {
        (monitor(&h, &tok, id).await["state"]["status"] == "up").then_some(())
    })
    .await;

    // "Test now" with a 10-day condition names it as the failure.
    let (st, tested) = send_json(
        h.post(&tok, "/api/monitors/test"),
        json!({"name": "x", "check": {"kind": "tls", "host": "127.0.0.1", "port": addr.port(),
                                      "server_name": "localhost", "ca_pem": ca_pem},
               "conditions": [{"condition": "[CERTIFICATE_EXPIRATION] > 240h"}]}),
    )
    .await;
    assert_eq!(st, 200, "{tested}");
    assert_eq!(tested["up"], false);
    assert!(
        tested["reason"]
            .as_str()
            .unwrap()
            .contains("[CERTIFICATE_EXPIRATION]"),
        "{tested}"
    );
    drop(live);
    assert!(h.stop().await);
}

/// While a parent is down its child's DOWN is held, and sent once the parent is back (if the
/// child is still down); a monitor in a maintenance window records DOWN but alerts nobody.
#[tokio::test]
async fn parents_hold_childrens_alerts_and_maintenance_holds_all() {
    let rx = Receiver::start(&[]).await;
    let (parent, child, maint) = (
        Target::start().await,
        Target::start().await,
        Target::start().await,
    );
    let h = Hearth::start("[alerts]\nallow_private_targets = true\n").await;
    let tok = h.owner().await.token;
    let (_, hook) = send_json(
        h.post(&tok, "/api/alerts/channels"),
        json!({"name": "hook", "type": "webhook", "url": rx.url("/hook")}),
    )
    .await;
    for kind in ["monitor_down", "monitor_up"] {
        send_json(
            h.post(&tok, "/api/alerts/rules"),
            json!({"name": kind, "when": {"type": kind}, "channels": [hook["id"]], "throttle_minutes": 0}),
        )
        .await;
    }
    let now = jiff::Timestamp::now();
    let mut ids = Vec::new();
    for (slug, url, extra) in [
        ("core", &parent.url, json!({})),
        ("app", &child.url, json!({"parent": "core"})),
        (
            "maint",
            &maint.url,
            json!({"maintenance": [{"kind": "one_off",
            "start": now - jiff::SignedDuration::from_mins(1), "end": now + jiff::SignedDuration::from_hours(1)}]}),
        ),
    ] {
        let mut body = json!({"name": slug, "slug": slug, "interval": "1s", "failure_threshold": 1,
                              "success_threshold": 1, "check": {"kind": "http", "url": url}});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (st, m) = send_json(h.post(&tok, "/api/monitors"), body).await;
        assert_eq!(st, 201, "{m}");
        ids.push(m["id"].as_u64().unwrap());
    }
    let status = |id: u64| {
        let h = &h;
        let tok = tok.clone();
        async move {
            monitor(h, &tok, id).await["state"]["status"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    for &id in &ids {
        wait_for("up", T, || async {
            (status(id).await == "up").then_some(())
        })
        .await;
    }
    let kinds = || -> Vec<String> {
        rx.at("/hook")
            .iter()
            .map(|h| {
                format!(
                    "{} {}",
                    h.body["data"]["monitor"].as_str().unwrap_or(""),
                    h.body["data"]["kind"].as_str().unwrap_or("")
                )
            })
            .collect()
    };

    parent.answer(500);
    wait_for("core's DOWN", T, || async {
        kinds()
            .contains(&"core monitor_down".to_string())
            .then_some(())
    })
    .await;
    child.answer(500);
    maint.answer(500);
    wait_for("app and maint down", T, || async {
        (status(ids[1]).await == "down" && status(ids[2]).await == "down").then_some(())
    })
    .await;

    // The parent recovers: its UP, then the child's held DOWN (it is still down).
    parent.answer(200);
    wait_for("app's DOWN after core's UP", T, || async {
        kinds()
            .contains(&"app monitor_down".to_string())
            .then_some(())
    })
    .await;
    // Fired alerts are numbered in the order their bus events were published (webhook
    // deliveries may arrive in any order).
    let fired = |what: &str| {
        rx.at("/hook")
            .iter()
            .find(|h| {
                format!(
                    "{} {}",
                    h.body["data"]["monitor"].as_str().unwrap_or(""),
                    h.body["data"]["kind"].as_str().unwrap_or("")
                ) == what
            })
            .map(|h| h.body["data"]["fired_id"].as_u64().unwrap())
    };
    let up = wait_for("core's UP", T, || async { fired("core monitor_up") }).await;
    let child_down = fired("app monitor_down").unwrap();
    let k = kinds();
    assert!(up < child_down, "held until the parent was back: {k:?}");
    assert!(
        !k.iter().any(|s| s.starts_with("maint ")),
        "maintenance alerts nobody: {k:?}"
    );
    assert!(h.stop().await);
}
