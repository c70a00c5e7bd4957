//! Sentry ingest: the official SDK, the captured SDK fixtures, malformed input, the capture API.

use std::path::PathBuf;
use std::time::Duration;

use hearth::accounts::Role;
use serde_json::{Value, json};

use crate::common::{AuthedClient, TestServer, skip, test_config, wait_for};

/// Posts a plain (uncompressed) envelope with one event item.
pub async fn send_event(s: &TestServer, pid: u64, key: &str, event: &Value) -> reqwest::Response {
    let id = event["event_id"].as_str().map(str::to_string);
    let header = match &id {
        Some(id) => json!({ "event_id": id }),
        None => json!({}),
    };
    let body = format!("{header}\n{{\"type\":\"event\"}}\n{event}\n");
    s.http
        .post(s.url(&format!("/api/{pid}/envelope/")))
        .header(
            "x-sentry-auth",
            format!("Sentry sentry_key={key}, sentry_version=7"),
        )
        .body(body)
        .send()
        .await
        .unwrap()
}

pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Waits until `event_id` is stored; returns its issue id.
pub async fn issue_of(s: &TestServer, event_id: &str) -> u64 {
    let issues = s.state.issues.clone();
    let eid = event_id.to_string();
    wait_for(
        &format!("event {event_id} stored"),
        Duration::from_secs(10),
        || {
            let issues = issues.clone();
            let eid = eid.clone();
            async move { issues.issue_of_event(&eid).await.unwrap() }
        },
    )
    .await
}

/// Waits until searching `query` in project `pid` lists issue `issue_id`.
pub async fn wait_searchable(c: &AuthedClient, pid: u64, query: &str, issue_id: u64) {
    let q = query.to_string();
    wait_for(
        &format!("issue {issue_id} searchable as {query:?}"),
        Duration::from_secs(10),
        || {
            let enc: String = url::form_urlencoded::byte_serialize(q.as_bytes()).collect();
            let req = c.get(&format!("/api/projects/{pid}/issues?query={enc}"));
            async move {
                let v: Value = req.send().await.ok()?.json().await.ok()?;
                v["issues"]
                    .as_array()?
                    .iter()
                    .any(|i| i["id"] == issue_id)
                    .then_some(())
            }
        },
    )
    .await;
}

/// `shared/` beside the clone (as CI has it), or `$HEARTH_SHARED_DIR`.
pub fn shared_dir() -> PathBuf {
    std::env::var_os("HEARTH_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"))
}

fn fixtures_dir() -> PathBuf {
    shared_dir().join("fixtures/sentry")
}

struct Fixture {
    name: String,
    meta: Value,
    body: Vec<u8>,
}

fn load_fixtures() -> Option<Vec<Fixture>> {
    let dir = fixtures_dir();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".meta.json")
                .map(str::to_string)
        })
        .collect();
    names.sort_by_key(|n| {
        let (scenario, seq) = n.rsplit_once('.').unwrap();
        (scenario.to_string(), seq.parse::<u32>().unwrap_or(0))
    });
    Some(
        names
            .into_iter()
            .map(|name| {
                let meta: Value = serde_json::from_slice(
                    &std::fs::read(dir.join(format!("{name}.meta.json"))).unwrap(),
                )
                .unwrap();
                let body = std::fs::read(dir.join(format!("{name}.body"))).unwrap();
                Fixture { name, meta, body }
            })
            .collect(),
    )
}

const FIXTURE_KEY: &str = "5f2c8e1a9b3d4c6e8f0a1b2c3d4e5f60";

/// Replays one fixture byte for byte, rewriting only the project id and the DSN key.
async fn replay(s: &TestServer, f: &Fixture, pid: u64, key: &str) -> (u16, Option<String>, String) {
    let path = f.meta["path"]
        .as_str()
        .unwrap()
        .replacen("/api/42/", &format!("/api/{pid}/"), 1);
    let qs = f.meta["query_string"]
        .as_str()
        .unwrap_or("")
        .replace(FIXTURE_KEY, key);
    let url = if qs.is_empty() {
        s.url(&path)
    } else {
        s.url(&format!("{path}?{qs}"))
    };
    let mut req = s.http.post(url.clone());
    for h in f.meta["headers"].as_array().unwrap() {
        let (name, value) = (h[0].as_str().unwrap(), h[1].as_str().unwrap());
        if matches!(
            name.to_ascii_lowercase().as_str(),
            "host" | "content-length" | "transfer-encoding" | "connection"
        ) {
            continue;
        }
        req = req.header(name, value.replace(FIXTURE_KEY, key));
    }
    let chunked = f.meta["transfer_encoding"]
        .as_str()
        .is_some_and(|t| t.contains("chunked"));
    if chunked {
        return raw_chunked(s, &url, f, key).await;
    }
    let r = req.body(f.body.clone()).send().await.unwrap();
    let status = r.status().as_u16();
    let acao = r
        .headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().unwrap().to_string());
    (status, acao, r.text().await.unwrap())
}

/// Sends a fixture with `Transfer-Encoding: chunked` over a raw connection (two chunks), the
/// way @sentry/node does.
async fn raw_chunked(
    s: &TestServer,
    url: &str,
    f: &Fixture,
    key: &str,
) -> (u16, Option<String>, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let target = url.strip_prefix(&s.base).unwrap();
    let mut req = format!("POST {target} HTTP/1.1\r\nHost: {}\r\n", s.addr);
    for h in f.meta["headers"].as_array().unwrap() {
        let (name, value) = (h[0].as_str().unwrap(), h[1].as_str().unwrap());
        if matches!(
            name.to_ascii_lowercase().as_str(),
            "host" | "content-length" | "transfer-encoding" | "connection"
        ) {
            continue;
        }
        req.push_str(&format!("{name}: {}\r\n", value.replace(FIXTURE_KEY, key)));
    }
    req.push_str("Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
    let mut bytes = req.into_bytes();
    let mid = f.body.len() / 2;
    for chunk in [&f.body[..mid], &f.body[mid..]] {
        if chunk.is_empty() {
            continue;
        }
        bytes.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        bytes.extend_from_slice(chunk);
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(b"0\r\n\r\n");
    let mut conn = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    conn.write_all(&bytes).await.unwrap();
    let mut resp = Vec::new();
    conn.read_to_end(&mut resp).await.unwrap();
    let text = String::from_utf8_lossy(&resp).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let acao = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("access-control-allow-origin")
            .then(|| v.trim().to_string())
    });
    (status, acao, body.to_string())
}

#[tokio::test]
async fn sdk_fixtures_replayed_byte_for_byte() {
    let Some(fixtures) = load_fixtures().filter(|f| !f.is_empty()) else {
        skip(
            "../shared/fixtures/sentry is missing (set HEARTH_SHARED_DIR to the shared/ directory)",
        );
        return;
    };
    let s = TestServer::start().await;
    let (pid, key, _) = s.project("fixtures").await;
    let admin = s.client(Role::Admin).await;
    let mut ids = std::collections::HashMap::new();
    for f in &fixtures {
        let (status, acao, text) = replay(&s, f, pid, &key).await;
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let want_status = f.meta["response"]["status"].as_u64().unwrap() as u16;
        let want_body: Value =
            serde_json::from_str(f.meta["response"]["body"].as_str().unwrap()).unwrap();
        assert_eq!(status, want_status, "{}: status (body {body})", f.name);
        assert_eq!(body, want_body, "{}: reply", f.name);
        assert_eq!(acao.as_deref(), Some("*"), "{}: CORS header", f.name);
        if let Some(id) = f.meta["event_id"].as_str() {
            ids.insert(f.name.clone(), id.to_string());
        }
    }
    // Grouping as INDEX.md states.
    let zd = issue_of(&s, &ids["py_zero_division.1"]).await;
    assert_eq!(zd, issue_of(&s, &ids["py_with_brotli.1"]).await, "PY-ZD");
    let te = issue_of(&s, &ids["node_error.2"]).await;
    assert_eq!(te, issue_of(&s, &ids["node_large.2"]).await, "NODE-TE");
    let msg = issue_of(&s, &ids["py_message.1"]).await;
    let browser = issue_of(&s, &ids["browser_captured.3"]).await;
    let all = [zd, te, msg, browser];
    let distinct: std::collections::HashSet<_> = all.iter().collect();
    assert_eq!(distinct.len(), 4, "every other event is its own issue");
    for name in ["py_transaction.1", "py_check_in.1", "py_check_in.2"] {
        assert_eq!(
            s.state.issues.issue_of_event(&ids[name]).await.unwrap(),
            None,
            "{name} must not create an issue"
        );
    }
    let list: Value = admin
        .get(&format!("/api/projects/{pid}/issues"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let issues = list["issues"].as_array().unwrap();
    assert_eq!(issues.len(), 4, "{list}");
    let zd_row = issues.iter().find(|i| i["id"] == zd).unwrap();
    assert_eq!(zd_row["count"], 2);
    assert_eq!(zd_row["title"], "ZeroDivisionError: division by zero");
    assert_eq!(zd_row["sparkline"].as_array().unwrap().len(), 24);
    let msg_row = issues.iter().find(|i| i["id"] == msg).unwrap();
    assert_eq!(msg_row["level"], "warning");
    // Detail and latest event carry the full payload.
    let d: Value = admin
        .get(&format!("/api/issues/{zd}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(d["issue"]["releases"], json!(["fixture-shop@1.4.2"]));
    assert_eq!(d["issue"]["environments"], json!(["fixture-test"]));
    let latest: Value = admin
        .get(&format!("/api/issues/{zd}/events/latest"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let frames = &latest["event"]["exception"]["values"][0]["stacktrace"]["frames"];
    assert_eq!(frames.as_array().unwrap().len(), 4);
    assert!(latest["prev_event_id"].is_string());
    // Searchable by exception type, culprit function and filters.
    wait_searchable(&admin, pid, "ZeroDivisionError", zd).await;
    wait_searchable(&admin, pid, "compute_ratio release:fixture-shop@1.4.2", zd).await;
    wait_searchable(&admin, pid, "level:warning Disk", msg).await;
    // The other items were stored.
    let tx: Value = admin
        .get(&format!("/api/projects/{pid}/transactions"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tx["total"], 1);
    assert_eq!(tx["transactions"][0]["name"], "process-order-batch");
    assert_eq!(tx["transactions"][0]["span_count"], 2);
    let cr: Value = admin
        .get(&format!("/api/projects/{pid}/client-reports"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        cr["discarded"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["reason"] == "sample_rate" && d["category"] == "transaction"),
        "{cr}"
    );
    let mons: Value = admin
        .get(&format!("/api/projects/{pid}/monitors"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let m = &mons["monitors"][0];
    assert_eq!(m["slug"], "nightly-report");
    assert_eq!(m["last_status"], "ok");
    assert_eq!(
        m["check_ins"].as_array().unwrap().len(),
        1,
        "same check_in_id closes it"
    );
    assert!(m["config"]["schedule"].is_object());
    let rh: Value = admin
        .get(&format!("/api/projects/{pid}/release-health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let node = rh["releases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["release"] == "fixture-shop-node@2.8.0")
        .unwrap();
    assert_eq!(node["sessions"], 2, "{rh}");
    s.stop().await;
}

#[tokio::test]
async fn official_sentry_sdk_events_arrive_group_and_search() {
    use sentry::protocol::{Event, Level};
    let s = TestServer::start().await;
    let (pid, _, dsn) = s.project("sdk").await;
    let admin = s.client(Role::Admin).await;
    let mut opts = sentry::ClientOptions::default();
    opts.release = Some("sdk-test@1.0.0".into());
    opts.environment = Some("ci".into());
    opts.dsn = Some(dsn.parse().unwrap());
    let client = std::sync::Arc::new(sentry::Client::from(sentry::apply_defaults(opts)));
    let hub = std::sync::Arc::new(sentry::Hub::new(
        Some(client.clone()),
        std::sync::Arc::new(sentry::Scope::default()),
    ));
    #[derive(Debug)]
    struct PaymentError(u32);
    impl std::fmt::Display for PaymentError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "payment {} declined", self.0)
        }
    }
    impl std::error::Error for PaymentError {}
    let e1 = hub.capture_error(&PaymentError(17));
    let e2 = hub.capture_error(&PaymentError(18));
    let m1 = hub.capture_message("cache warmup took 1200 ms", Level::Warning);
    let m2 = hub.capture_message("cache warmup took 900 ms", Level::Warning);
    let f1 = hub.capture_event(Event {
        message: Some("tenant alpha failed".into()),
        fingerprint: vec!["billing-outage".into()].into(),
        ..Default::default()
    });
    let f2 = hub.capture_event(Event {
        message: Some("tenant beta failed differently".into()),
        fingerprint: vec!["billing-outage".into()].into(),
        ..Default::default()
    });
    // A real panic, captured by the SDK's panic integration on a dedicated thread.
    let panic_hub = hub.clone();
    let panic_id = std::thread::spawn(move || {
        let integration = sentry::integrations::panic::PanicIntegration::new();
        let (tx, rx) = std::sync::mpsc::channel();
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().name() == Some("sentry-panic-test") {
                let ev = integration.event_from_panic_info(info);
                let _ = tx.send(panic_hub.capture_event(ev));
            } else {
                prev(info);
            }
        }));
        let _ = std::thread::Builder::new()
            .name("sentry-panic-test".into())
            .spawn(|| panic!("inventory underflow for sku 42"))
            .unwrap()
            .join();
        rx.recv_timeout(Duration::from_secs(5)).unwrap()
    })
    .join()
    .unwrap();
    // flush blocks; the server runs on this test's runtime, so flush off it.
    let flusher = client.clone();
    let flushed = tokio::task::spawn_blocking(move || flusher.flush(Some(Duration::from_secs(10))))
        .await
        .unwrap();
    assert!(flushed, "the SDK could not deliver its events");
    let id = |u: sentry::types::Uuid| u.simple().to_string();
    let ie = issue_of(&s, &id(e1)).await;
    assert_eq!(
        ie,
        issue_of(&s, &id(e2)).await,
        "same error type, parameterised value"
    );
    let im = issue_of(&s, &id(m1)).await;
    assert_eq!(im, issue_of(&s, &id(m2)).await, "parameterised message");
    let ifp = issue_of(&s, &id(f1)).await;
    assert_eq!(ifp, issue_of(&s, &id(f2)).await, "custom fingerprint");
    let ip = issue_of(&s, &id(panic_id)).await;
    let distinct: std::collections::HashSet<_> = [ie, im, ifp, ip].into_iter().collect();
    assert_eq!(distinct.len(), 4);
    let d: Value = admin
        .get(&format!("/api/issues/{ip}/events/latest"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(d["event"]["exception"]["values"][0]["type"], "panic", "{d}");
    wait_searchable(&admin, pid, "underflow", ip).await;
    wait_searchable(
        &admin,
        pid,
        "declined release:sdk-test@1.0.0 environment:ci",
        ie,
    )
    .await;
    wait_searchable(&admin, pid, "level:warning warmup", im).await;
    s.stop().await;
}

#[tokio::test]
async fn malformed_input_gets_the_right_status_and_the_server_keeps_serving() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let mut config = test_config(tmp.path());
    config.ingest.max_compressed_size = hearth::config::ByteSize(64 * 1024);
    config.ingest.max_decompressed_size = hearth::config::ByteSize(256 * 1024);
    config.ingest.max_event_size = hearth::config::ByteSize(32 * 1024);
    let s = TestServer::start_with(config).await;
    let (pid, key, _) = s.project("malformed").await;
    let (other_pid, _, _) = s.project("other").await;
    let (_, revoked_key, _) = s.project("revoked").await;
    let revoked_pid = s
        .state
        .accounts
        .key_info(&revoked_key)
        .await
        .unwrap()
        .unwrap()
        .project_id;
    s.state
        .accounts
        .revoke_key(revoked_pid, &revoked_key)
        .await
        .unwrap();
    let auth = format!("Sentry sentry_key={key}, sentry_version=7");
    let gz = |data: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    };
    let bomb = gz(&vec![b'a'; 20 << 20]);
    let id = new_id();
    let good =
        format!("{{\"event_id\":\"{id}\"}}\n{{\"type\":\"event\"}}\n{{\"message\":\"ok\"}}\n");
    let big_event = format!(
        "{{}}\n{{\"type\":\"event\"}}\n{{\"message\":\"{}\"}}\n",
        "x".repeat(40 * 1024)
    );
    struct Case {
        name: &'static str,
        path_pid: u64,
        headers: Vec<(&'static str, Vec<u8>)>,
        body: Vec<u8>,
        status: u16,
        code: Option<&'static str>,
    }
    let h = |v: &str| v.as_bytes().to_vec();
    let cases = vec![
        Case { name: "empty", path_pid: pid, headers: vec![("x-sentry-auth", h(&auth))], body: vec![], status: 400, code: Some("malformed_envelope") },
        Case { name: "junk", path_pid: pid, headers: vec![("x-sentry-auth", h(&auth))], body: b"this is not an envelope".to_vec(), status: 400, code: Some("malformed_envelope") },
        Case { name: "truncated", path_pid: pid, headers: vec![("x-sentry-auth", h(&auth))], body: b"{}\n{\"type\":\"event\",\"length\":500}\n{\"message\":\"x\"}".to_vec(), status: 400, code: Some("malformed_envelope") },
        Case { name: "wrong length", path_pid: pid, headers: vec![("x-sentry-auth", h(&auth))], body: b"{}\n{\"type\":\"event\",\"length\":3}\n{\"message\":\"x\"}\n".to_vec(), status: 400, code: Some("malformed_envelope") },
        Case { name: "non-UTF-8 envelope header", path_pid: pid, headers: vec![("x-sentry-auth", h(&auth))], body: b"{\"event_id\":\"\xff\xfe\"}\n{\"type\":\"event\"}\n{}\n".to_vec(), status: 400, code: Some("malformed_envelope") },
        Case { name: "non-UTF-8 auth header", path_pid: pid, headers: vec![("x-sentry-auth", b"Sentry sentry_key=\xff\xfe".to_vec())], body: good.clone().into_bytes(), status: 401, code: Some("missing_auth") },
        Case { name: "event not JSON", path_pid: pid, headers: vec![("x-sentry-auth", h(&auth))], body: b"{}\n{\"type\":\"event\"}\n{not json\n".to_vec(), status: 400, code: Some("invalid_json") },
        Case { name: "bad key", path_pid: pid, headers: vec![("x-sentry-auth", h("Sentry sentry_key=00000000000000000000000000000000"))], body: good.clone().into_bytes(), status: 403, code: Some("project_key_invalid") },
        Case { name: "revoked key", path_pid: revoked_pid, headers: vec![("x-sentry-auth", h(&format!("Sentry sentry_key={revoked_key}")))], body: good.clone().into_bytes(), status: 403, code: Some("project_key_invalid") },
        Case { name: "key of another project", path_pid: other_pid, headers: vec![("x-sentry-auth", h(&auth))], body: good.clone().into_bytes(), status: 403, code: Some("project_key_invalid") },
        Case { name: "missing auth", path_pid: pid, headers: vec![], body: good.clone().into_bytes(), status: 401, code: Some("missing_auth") },
        Case { name: "oversize body", path_pid: pid, headers: vec![("x-sentry-auth", h(&auth))], body: vec![b'{'; 100 * 1024], status: 413, code: Some("payload_too_large") },
        Case { name: "oversize event", path_pid: pid, headers: vec![("x-sentry-auth", h(&auth))], body: big_event.into_bytes(), status: 413, code: Some("payload_too_large") },
        Case { name: "decompression bomb", path_pid: pid, headers: vec![("x-sentry-auth", h(&auth)), ("content-encoding", h("gzip"))], body: bomb, status: 413, code: Some("payload_too_large") },
        Case { name: "corrupt gzip", path_pid: pid, headers: vec![("x-sentry-auth", h(&auth)), ("content-encoding", h("gzip"))], body: b"\x1f\x8b\x08\x00garbage".to_vec(), status: 400, code: Some("malformed_envelope") },
        Case { name: "unknown encoding", path_pid: pid, headers: vec![("x-sentry-auth", h(&auth)), ("content-encoding", h("lzma"))], body: good.clone().into_bytes(), status: 415, code: Some("unsupported_encoding") },
        Case { name: "bad project id", path_pid: 0, headers: vec![("x-sentry-auth", h(&auth))], body: good.clone().into_bytes(), status: 403, code: Some("project_key_invalid") },
        Case { name: "unknown item type", path_pid: pid, headers: vec![("x-sentry-auth", h(&auth))], body: format!("{{\"event_id\":\"{}\"}}\n{{\"type\":\"future_thing\",\"length\":5}}\nhello\n{{\"type\":\"profile\"}}\n{{}}\n", new_id()).into_bytes(), status: 200, code: None },
        Case { name: "header only", path_pid: pid, headers: vec![("x-sentry-auth", h(&auth))], body: b"{}\n".to_vec(), status: 200, code: None },
    ];
    for c in cases {
        let mut req = s
            .http
            .post(s.url(&format!("/api/{}/envelope/", c.path_pid)));
        for (k, v) in &c.headers {
            req = req.header(*k, reqwest::header::HeaderValue::from_bytes(v).unwrap());
        }
        let r = req.body(c.body).send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        assert_eq!(status, c.status, "{}: {text}", c.name);
        if let Some(code) = c.code {
            let v: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["error"]["code"], code, "{}: {text}", c.name);
        }
        // Still serving, and still ingesting.
        let live = s.http.get(s.url("/health/live")).send().await.unwrap();
        assert_eq!(live.status(), 200, "after {}", c.name);
    }
    let r = s
        .http
        .post(s.url(&format!("/api/{pid}/envelope/")))
        .header("x-sentry-auth", &auth)
        .body(good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    issue_of(&s, &id).await;
    s.stop().await;
}

#[tokio::test]
async fn encodings_store_endpoint_query_auth_and_cors() {
    use std::io::Write;
    let s = TestServer::start().await;
    let (pid, key, _) = s.project("enc").await;
    let mk = |msg: &str| {
        let id = new_id();
        (
            id.clone(),
            format!(
                "{{\"event_id\":\"{id}\"}}\n{{\"type\":\"event\"}}\n{{\"message\":\"{msg}\"}}\n"
            )
            .into_bytes(),
        )
    };
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    let (id1, b1) = mk("zlib deflate");
    zlib.write_all(&b1).unwrap();
    let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    let (id2, b2) = mk("raw deflate");
    raw.write_all(&b2).unwrap();
    let (id3, b3) = mk("zstd body");
    let (id4, b4) = mk("no content type, query auth");
    for (id, body, enc) in [
        (&id1, zlib.finish().unwrap(), Some("deflate")),
        (&id2, raw.finish().unwrap(), Some("deflate")),
        (&id3, zstd::bulk::compress(&b3, 3).unwrap(), Some("zstd")),
        (&id4, b4, None),
    ] {
        let mut req = s.http.post(s.url(&format!(
            "/api/{pid}/envelope/?sentry_version=7&sentry_key={key}"
        )));
        if let Some(e) = enc {
            req = req.header("content-encoding", e);
        }
        let r = req.body(body).send().await.unwrap();
        assert_eq!(r.status(), 200, "{enc:?}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["id"], id.as_str());
        issue_of(&s, id).await;
    }
    // Legacy /store/ with one JSON event.
    let id5 = new_id();
    let r = s
        .http
        .post(s.url(&format!("/api/{pid}/store/")))
        .header("x-sentry-auth", format!("Sentry sentry_key={key}"))
        .json(&json!({"event_id": id5, "message": "legacy store"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    issue_of(&s, &id5).await;
    // Key from the envelope's dsn header.
    let id6 = new_id();
    let dsn = format!("http://{key}@127.0.0.1/{pid}");
    let r = s
        .http
        .post(s.url(&format!("/api/{pid}/envelope/")))
        .body(format!("{{\"event_id\":\"{id6}\",\"dsn\":\"{dsn}\"}}\n{{\"type\":\"event\"}}\n{{\"message\":\"dsn header\"}}\n"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    issue_of(&s, &id6).await;
    // A retried event id is acknowledged but stored once.
    let again = send_event(
        &s,
        pid,
        &key,
        &json!({"event_id": id6, "message": "dsn header"}),
    )
    .await;
    assert_eq!(again.status(), 200);
    let issue = s
        .state
        .issues
        .issue(issue_of(&s, &id6).await)
        .await
        .unwrap();
    assert_eq!(issue.count, 1);
    // CORS preflight.
    let r = s
        .http
        .request(
            reqwest::Method::OPTIONS,
            s.url(&format!("/api/{pid}/envelope/")),
        )
        .header("origin", "http://example.test")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    assert!(
        r.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("x-sentry-auth")
    );
    s.stop().await;
}

#[tokio::test]
async fn rate_limit_answers_429_with_sentry_headers() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = test_config(tmp.path());
    config.ingest.rate_limit_per_minute = 3;
    let s = TestServer::start_with(config).await;
    let (pid, key, _) = s.project("limited").await;
    let mut statuses = Vec::new();
    let mut limited = None;
    for i in 0..5 {
        let r = send_event(
            &s,
            pid,
            &key,
            &json!({"event_id": new_id(), "message": format!("m{i}")}),
        )
        .await;
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            limited = Some(r);
        }
    }
    // Usually [200,200,200,429,429]; a minute boundary in between may reset the window.
    assert!(
        statuses.iter().filter(|s| **s == 200).count() >= 3,
        "{statuses:?}"
    );
    let r = limited.expect("over the limit must answer 429");
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    let rl = r.headers()["x-sentry-rate-limits"].to_str().unwrap();
    assert!(rl.starts_with(&format!("{retry}:")), "{rl}");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limited");
    s.stop().await;
}

#[tokio::test]
async fn capture_api_and_script() {
    let s = TestServer::start().await;
    let (pid, key, _) = s.project("capture").await;
    let admin = s.client(Role::Admin).await;
    let r = s
        .http
        .post(s.url(&format!("/api/{pid}/capture/exception?sentry_key={key}")))
        .header("content-type", "text/plain;charset=UTF-8")
        .body(
            json!({
                "type": "TypeError",
                "message": "cart is undefined",
                "stacktrace": "TypeError: cart is undefined\n    at checkout (https://shop.test/app.js:10:5)\n    at onClick (https://shop.test/app.js:20:3)",
                "user": "amy@example.com",
                "url": "https://shop.test/cart",
                "environment": "production",
                "release": "web@2.0",
                "tags": {"browser": "Firefox"},
            })
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let issue = issue_of(&s, &id).await;
    let ev: Value = admin
        .get(&format!("/api/issues/{issue}/events/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let frames = ev["event"]["exception"]["values"][0]["stacktrace"]["frames"]
        .as_array()
        .unwrap();
    assert_eq!(frames.last().unwrap()["function"], "checkout");
    assert_eq!(ev["event"]["user"]["email"], "amy@example.com");
    wait_searchable(&admin, pid, "browser:Firefox user:amy@example.com", issue).await;
    let r = s
        .http
        .post(s.url(&format!("/api/{pid}/capture/message")))
        .header("x-sentry-auth", format!("Sentry sentry_key={key}"))
        .json(&json!({"message": "nightly export finished", "level": "info"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mid = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    issue_of(&s, &mid).await;
    let r = s
        .http
        .post(s.url(&format!("/api/{pid}/capture/message")))
        .header("x-sentry-auth", format!("Sentry sentry_key={key}"))
        .json(&json!({"nothing": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let js = s
        .http
        .get(s.url("/static/capture.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(js.status(), 200);
    let text = js.text().await.unwrap();
    assert!(text.contains("unhandledrejection") && text.contains("/capture/"));
    s.stop().await;
}

fn metric(s: &TestServer, name: &str) -> u64 {
    let mut out = String::new();
    s.state.ingest.render_metrics(&mut out);
    out.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in {out}"))
}

#[tokio::test]
async fn the_ingest_log_holds_batches_between_checkpoints_and_can_be_turned_off() {
    use hearth::config::HumanDuration;
    for (interval, logged) in [
        (HumanDuration::secs(3600), true),
        (HumanDuration::secs(0), false),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let mut config = test_config(tmp.path());
        config.ingest.checkpoint_interval = interval;
        let s = TestServer::start_with(config.clone()).await;
        let (p, k) = s.state.accounts.create_project("log").await.unwrap();
        let id = new_id();
        let r = send_event(
            &s,
            p.id,
            &k.public_key,
            &json!({"event_id": id, "message": "logged or not"}),
        )
        .await;
        assert_eq!(r.status(), 200);
        issue_of(&s, &id).await;
        let log_bytes = metric(&s, "hearth_ingest_log_bytes_total");
        assert_eq!(
            log_bytes > 0,
            logged,
            "interval {interval:?}: {log_bytes} B logged"
        );
        // A long interval: the batch is durable through the log alone, no synced commit yet.
        assert_eq!(metric(&s, "hearth_ingest_checkpoints_total"), 0);
        s.stop().await;
        // A graceful stop ends with a synced commit: the next start has nothing to replay.
        let s = TestServer::start_with(config).await;
        assert_eq!(metric(&s, "hearth_ingest_log_replayed_batches_total"), 0);
        issue_of(&s, &id).await;
        s.stop().await;
    }
}

/// Posts raw envelope bytes with the key in the auth header.
async fn post_envelope(s: &TestServer, pid: u64, key: &str, body: Vec<u8>) -> reqwest::Response {
    s.http
        .post(s.url(&format!("/api/{pid}/envelope/")))
        .header(
            "x-sentry-auth",
            format!("Sentry sentry_key={key}, sentry_version=7"),
        )
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn feedback_user_reports_and_attachments_are_stored_with_their_event() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = test_config(tmp.path());
    config.ingest.max_attachment_size = hearth::config::ByteSize(16);
    let s = TestServer::start_with(config).await;
    let (pid, key, _) = s.project("items").await;
    let id = new_id();
    // An event, a small attachment, one over the 16-byte cap (binary, with newlines inside its
    // declared length), and a user report, in one envelope as the SDKs send them.
    let big: Vec<u8> = (0u8..40)
        .map(|i| if i % 7 == 0 { b'\n' } else { i })
        .collect();
    let mut body = format!(
        "{{\"event_id\":\"{id}\"}}\n{{\"type\":\"event\"}}\n{{\"event_id\":\"{id}\",\"message\":\"checkout failed\"}}\n\
         {{\"type\":\"attachment\",\"length\":5,\"filename\":\"log.txt\",\"content_type\":\"text/plain\"}}\nhello\n\
         {{\"type\":\"attachment\",\"length\":{},\"filename\":\"core.bin\"}}\n",
        big.len()
    )
    .into_bytes();
    body.extend_from_slice(&big);
    body.extend_from_slice(
        format!(
            "\n{{\"type\":\"user_report\"}}\n{{\"event_id\":\"{id}\",\"name\":\"Ann\",\"email\":\"ann@example.com\",\"comments\":\"it broke\"}}\n"
        )
        .as_bytes(),
    );
    let r = post_envelope(&s, pid, &key, body).await;
    assert_eq!(r.status(), 200);
    let issue = issue_of(&s, &id).await;
    // The newer feedback item (User Feedback API), pointing at the event.
    let fid = new_id();
    let r = post_envelope(
        &s,
        pid,
        &key,
        format!(
            "{{\"event_id\":\"{fid}\"}}\n{{\"type\":\"feedback\"}}\n{}\n",
            json!({"event_id": fid, "contexts": {"feedback": {
                "associated_event_id": id, "message": "<b>total</b> is wrong",
                "contact_email": "bo@example.com", "name": "Bo", "url": "https://shop.test/cart"}}})
        )
        .into_bytes(),
    )
    .await;
    assert_eq!(r.status(), 200);

    let viewer = s.client(Role::Viewer).await;
    let fb: Value = viewer
        .get(&format!("/api/projects/{pid}/feedback"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rows = fb["feedback"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{fb}");
    let (newest, oldest) = (&rows[0], &rows[1]);
    assert_eq!(oldest["kind"], "user_report");
    assert_eq!(oldest["message"], "it broke");
    assert_eq!(oldest["email"], "ann@example.com");
    assert_eq!(newest["kind"], "feedback");
    assert_eq!(newest["message"], "<b>total</b> is wrong", "kept as text");
    assert_eq!(newest["url"], "https://shop.test/cart");
    for row in rows {
        assert_eq!(row["event_id"], id.as_str());
        assert_eq!(row["issue_id"], issue, "stored against the event's issue");
    }

    let att: Value = viewer
        .get(&format!("/api/events/{id}/attachments"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let list = att["attachments"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{att}");
    assert_eq!(list[0]["filename"], "log.txt");
    assert_eq!(list[0]["size"], 5);
    assert_eq!(list[0]["truncated"], false);
    assert_eq!(list[1]["filename"], "core.bin");
    assert_eq!(list[1]["size"], 40, "the size as sent");
    assert_eq!(list[1]["truncated"], true);
    for (entry, want) in [(&list[0], &b"hello"[..]), (&list[1], &big[..16])] {
        let r = viewer
            .get(&format!("/api/events/{id}/attachments/{}", entry["n"]))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers()["content-type"],
            "application/octet-stream",
            "never rendered inline"
        );
        assert_eq!(&r.bytes().await.unwrap()[..], want);
    }
    s.stop().await;
}

#[tokio::test]
async fn a_saturated_writer_answers_429_and_loses_nothing_it_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = test_config(tmp.path());
    // The writer takes one request at a time and one more may wait in the queue.
    config.ingest.max_batch = 1;
    config.ingest.queue_capacity = 1;
    let s = TestServer::start_with(config).await;
    let (pid, key, _) = s.project("busy").await;
    // Hold the database's write lock, so the writer cannot commit.
    let (locked_tx, locked_rx) = std::sync::mpsc::channel::<()>();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let db = s.state.db.clone();
    let holder = std::thread::spawn(move || {
        db.write_blocking(|_| {
            locked_tx.send(()).unwrap();
            release_rx.recv().unwrap();
            Ok::<_, hearth::store::StoreError>(())
        })
        .unwrap();
    });
    locked_rx.recv().unwrap();
    // At most two requests can be held (one in the writer's hands, one queued): of 10 sent at
    // once, at least 8 are answered 429 while the lock is held.
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut ids = Vec::new();
    for _ in 0..10 {
        let id = new_id();
        ids.push(id.clone());
        let (http, url, key, done) = (
            s.http.clone(),
            s.url(&format!("/api/{pid}/envelope/")),
            key.clone(),
            done_tx.clone(),
        );
        tokio::spawn(async move {
            let body = format!(
                "{{\"event_id\":\"{id}\"}}\n{{\"type\":\"event\"}}\n{{\"event_id\":\"{id}\",\"message\":\"busy\"}}\n"
            );
            let r = http
                .post(url)
                .header(
                    "x-sentry-auth",
                    format!("Sentry sentry_key={key}, sentry_version=7"),
                )
                .body(body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let retry = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
            let limits = r
                .headers()
                .get("x-sentry-rate-limits")
                .map(|v| v.to_str().unwrap().to_string());
            let body: Value = r.json().await.unwrap();
            done.send((id, status, retry, limits, body)).unwrap();
        });
    }
    drop(done_tx);
    let mut answers = Vec::new();
    for _ in 0..8 {
        // Without back-pressure these would wait for the lock: fail instead of hanging.
        let a = tokio::time::timeout(Duration::from_secs(20), done_rx.recv())
            .await
            .expect("requests beyond the queue must be refused at once, not held")
            .unwrap();
        answers.push(a);
    }
    for (_, status, retry, limits, body) in &answers {
        assert_eq!(*status, 429, "{body}");
        assert_eq!(retry.as_deref(), Some("1"));
        assert_eq!(limits.as_deref(), Some("1::key:backpressure"));
        assert_eq!(body["error"]["code"], "backpressure", "{body}");
    }
    release_tx.send(()).unwrap();
    holder.join().unwrap();
    while let Some(a) = done_rx.recv().await {
        answers.push(a);
    }
    assert_eq!(answers.len(), 10);
    // Every request that got a 200 is stored; none of the refused ones is.
    for (id, status, _, _, body) in &answers {
        match status {
            200 => {
                issue_of(&s, id).await;
            }
            429 => assert_eq!(s.state.issues.issue_of_event(id).await.unwrap(), None),
            other => panic!("{id}: {other} {body}"),
        }
    }
    assert!(
        answers.iter().any(|a| a.1 == 200),
        "the held requests commit"
    );
    // Once the writer is free, requests are accepted again.
    let id = new_id();
    let r = send_event(&s, pid, &key, &json!({"event_id": id, "message": "free"})).await;
    assert_eq!(r.status(), 200);
    issue_of(&s, &id).await;
    s.stop().await;
}

#[tokio::test]
async fn the_openapi_document_lists_every_route_with_its_access() {
    let s = TestServer::start().await;
    let anon = s.http.get(s.url("/api/openapi.json")).send().await.unwrap();
    assert_eq!(anon.status(), 401, "the API document needs a sign-in");
    let viewer = s.client(Role::Viewer).await;
    let doc: Value = viewer
        .get("/api/openapi.json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let mut listed = 0;
    for r in s.state.routes.iter() {
        let op = &paths[r.path][r.method.as_str().to_ascii_lowercase()];
        assert!(op["summary"].is_string(), "{} {}", r.method, r.path);
        listed += 1;
    }
    assert_eq!(
        listed,
        paths
            .values()
            .map(|p| p.as_object().unwrap().len())
            .sum::<usize>()
    );
    // The ingest endpoints are public (DSN key); the admin API is not.
    let envelope = &paths["/api/{project_id}/envelope/"]["post"];
    assert_eq!(envelope["security"], json!([]), "{envelope}");
    let issues = &paths["/api/projects/{pid}/issues"]["get"];
    assert_ne!(issues["security"], json!([]), "{issues}");
    s.stop().await;
}

#[tokio::test]
async fn events_group_with_the_grouping_version_stored_for_their_project() {
    use hearth::store::{StoreError, codec};
    use redb::ReadableTable;
    let s = TestServer::start().await;
    let (a, key_a, _) = s.project("grouped-v1").await;
    let (b, key_b, _) = s.project("grouped-v2").await;
    // Project a stands for one created before grouping version 2: its stored version is 1.
    // Project b is new: it gets the latest version.
    s.state
        .db
        .write_blocking(|txn| {
            let mut t = txn.open_table(hearth::accounts::store::PROJECTS)?;
            let row = t.get(a)?.expect("project row").value().to_vec();
            let mut p: hearth::accounts::Project = codec::decode(&row)?;
            p.grouping_version = 1;
            t.insert(a, codec::encode(&p).as_slice())?;
            Ok::<_, StoreError>(())
        })
        .unwrap();
    assert_eq!(hearth::issues::GROUPING_VERSION, 2);
    let mut hashes = Vec::new();
    for (pid, key, version) in [(a, &key_a, 1), (b, &key_b, 2)] {
        let id = new_id();
        let event = json!({"event_id": id, "message": "order 17 failed"});
        assert_eq!(send_event(&s, pid, key, &event).await.status(), 200);
        let issue = s.state.issues.issue(issue_of(&s, &id).await).await.unwrap();
        assert_eq!(issue.grouping_version, version);
        assert_eq!(
            issue.hash,
            hearth::issues::grouping::group(&event, version).hash
        );
        hashes.push(issue.hash);
    }
    assert_ne!(hashes[0], hashes[1], "the version is part of the hash");
    s.stop().await;
}
