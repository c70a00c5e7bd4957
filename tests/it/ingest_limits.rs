//! Ingest under hostile input, against the real binary: memory per request (issue 12, item 2),
//! attachment caps, ownership, compression and retention (item 3), and what real SDKs send
//! that was miscounted or dropped (errored sessions, span v2 streams).

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::binary::Hearth;
use crate::common::wait_for;

const MB: u64 = 1 << 20;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

/// `prefix` + `unit` × `n` (joined by `sep`) + `suffix`: a body of attacker-chosen shape.
fn shape(prefix: &str, unit: &str, sep: &str, n: usize, suffix: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(prefix.len() + (unit.len() + sep.len()) * n + suffix.len());
    out.extend_from_slice(prefix.as_bytes());
    for i in 0..n {
        if i > 0 {
            out.extend_from_slice(sep.as_bytes());
        }
        out.extend_from_slice(unit.as_bytes());
    }
    out.extend_from_slice(suffix.as_bytes());
    out
}

/// A field of `/proc/<pid>/status`, in bytes.
fn proc_status_bytes(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"));
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// Everything in the server's data directory (database, ingest log, search index), in bytes.
fn data_dir_bytes(h: &Hearth) -> u64 {
    fn walk(dir: &std::path::Path) -> u64 {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return 0;
        };
        entries
            .filter_map(Result::ok)
            .map(|e| match e.metadata() {
                Ok(m) if m.is_dir() => walk(&e.path()),
                Ok(m) => m.len(),
                Err(_) => 0,
            })
            .sum()
    }
    walk(&h.dir.join("data"))
}

fn key_of(dsn: &str) -> String {
    url::Url::parse(dsn).unwrap().username().to_string()
}

fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

struct Variant {
    name: &'static str,
    path: String,
    /// Send the DSN key in `X-Sentry-Auth` (else only where the body has it).
    auth: bool,
    body: Vec<u8>,
}

/// The issue's repro (an envelope header of 49 million numbers, 95 KB gzip'd) and its variants:
/// arrays, objects, strings and nesting, in the envelope header, an item header, an event, a
/// session item, the capture API and the store endpoint; each decompresses to ~100 MB.
fn variants(pid: u64, dsn: &str) -> Vec<Variant> {
    const N: usize = 49_000_000;
    let env = format!("/api/{pid}/envelope/");
    let header = format!("{{\"dsn\":\"{dsn}\"}}\n");
    let v = |name, path: &str, auth, plain: Vec<u8>| Variant {
        name,
        path: path.to_string(),
        auth,
        body: gzip(&plain),
    };
    vec![
        v(
            "envelope header: array (the repro)",
            &env,
            false,
            shape("[", "0", ",", N, "]\n"),
        ),
        v(
            "envelope header: object with the DSN, then an array",
            &env,
            false,
            shape(&format!("{{\"dsn\":\"{dsn}\",\"x\":["), "0", ",", N, "]}\n"),
        ),
        v(
            "envelope header: string",
            &env,
            false,
            shape("{\"dsn\":\"", "a", "", 2 * N, "\"}\n"),
        ),
        v(
            "envelope header: nesting",
            &env,
            false,
            shape("", "[", "", 2 * N, "\n"),
        ),
        v(
            "envelope header: object keys",
            &env,
            false,
            shape("{", "\"a\":{", "", N / 3, "\n"),
        ),
        v(
            "item header: array",
            &env,
            false,
            shape(
                &format!("{header}{{\"type\":\"event\",\"x\":["),
                "0",
                ",",
                N,
                "]}\n{}\n",
            ),
        ),
        v(
            "event: array",
            &env,
            true,
            shape(
                "{}\n{\"type\":\"event\"}\n{\"exception\":[",
                "0",
                ",",
                N,
                "]}\n",
            ),
        ),
        v(
            "session item: objects",
            &env,
            true,
            shape(
                "{}\n{\"type\":\"session\"}\n{\"attrs\":{\"release\":\"r\"},\"x\":[",
                "{}",
                ",",
                N / 2,
                "]}\n",
            ),
        ),
        v(
            "capture API: array",
            &format!("/api/{pid}/capture/exception"),
            true,
            shape(
                "{\"type\":\"E\",\"message\":\"m\",\"extra\":[",
                "0",
                ",",
                N,
                "]}",
            ),
        ),
        v(
            "store endpoint: nested arrays",
            &format!("/api/{pid}/store/"),
            true,
            shape("{\"message\":\"m\",\"exception\":[", "[]", ",", N / 2, "]}"),
        ),
    ]
}

/// Variants within every size limit, so they are parsed in full: the worst shapes of an item as
/// large as `[ingest] max_event_size` (1 MB) allows.
fn parsed_variants(pid: u64) -> Vec<Variant> {
    const N: usize = 330_000;
    let env = format!("/api/{pid}/envelope/");
    let v = |name, path: &str, plain: Vec<u8>| Variant {
        name,
        path: path.to_string(),
        auth: true,
        body: gzip(&plain),
    };
    let mut out = Vec::new();
    for ty in [
        "session",
        "client_report",
        "check_in",
        "transaction",
        "feedback",
    ] {
        out.push(v(
            "1 MB item of empty arrays",
            &env,
            shape(
                &format!("{{}}\n{{\"type\":\"{ty}\"}}\n{{\"monitor_slug\":\"m\",\"attrs\":{{\"release\":\"r\"}},\"discarded_events\":["),
                "[]",
                ",",
                N,
                "]}\n",
            ),
        ));
    }
    out.push(v(
        "1 MB event of empty arrays",
        &env,
        shape(
            "{}\n{\"type\":\"event\"}\n{\"message\":\"m\",\"exception\":[",
            "[]",
            ",",
            N,
            "]}\n",
        ),
    ));
    out.push(v(
        "1 MB capture body of empty arrays",
        &format!("/api/{pid}/capture/message"),
        shape("{\"message\":\"m\",\"extra\":[", "[]", ",", N, "]}"),
    ));
    out
}

async fn send(h: &Hearth, key: &str, v: &Variant) -> reqwest::Response {
    let mut req = h
        .http
        .post(h.url(&v.path))
        .header("content-encoding", "gzip")
        .body(v.body.clone());
    if v.auth {
        req = req.header("x-sentry-auth", format!("Sentry sentry_key={key}"));
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn hostile_bodies_raise_rss_by_at_most_64_mb_and_four_leave_health_answering() {
    let h = Hearth::start("").await;
    let owner = h.owner().await;
    let (pid, dsn) = h.project(&owner.token, "abuse").await;
    let key = key_of(&dsn);
    // Warm up every path once with a legitimate request, so lazily built state is in the
    // baseline.
    for (path, body) in [
        (
            format!("/api/{pid}/envelope/"),
            format!(
                "{{}}\n{{\"type\":\"event\"}}\n{{\"message\":\"warm\"}}\n{{\"type\":\"session\"}}\n{{\"sid\":\"{}\",\"init\":true,\"attrs\":{{\"release\":\"r\"}}}}\n",
                new_id()
            ),
        ),
        (
            format!("/api/{pid}/capture/message"),
            "{\"message\":\"warm\"}".into(),
        ),
        (
            format!("/api/{pid}/store/"),
            "{\"message\":\"warm\"}".into(),
        ),
    ] {
        let r = h
            .http
            .post(h.url(&path))
            .header("x-sentry-auth", format!("Sentry sentry_key={key}"))
            .header("content-encoding", "gzip")
            .body(gzip(body.as_bytes()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}: {}", r.text().await.unwrap());
    }
    let server = h.pid();
    // The peak so far (startup) is reset to the current size where the kernel allows it;
    // otherwise it stays and the check below is only stricter.
    let _ = std::fs::write(format!("/proc/{server}/clear_refs"), "5");
    let baseline = proc_status_bytes(server, "VmRSS:");
    let mut report = Vec::new();
    let mut all = variants(pid, &dsn);
    all.extend(parsed_variants(pid));
    for v in &all {
        let r = send(&h, &key, v).await;
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        assert!(
            status == 200 || (400..500).contains(&status),
            "{}: answered {status} {text}",
            v.name
        );
        // The peak since the start: sequential requests, so the first one over the target
        // is the one named.
        let peak = proc_status_bytes(server, "VmHWM:");
        let growth = peak.saturating_sub(baseline);
        report.push(format!(
            "{:<55} {:>7} KB body -> {status}, peak RSS +{} MB",
            v.name,
            v.body.len() / 1024,
            growth / MB
        ));
        assert!(
            growth <= 64 * MB,
            "{} raised RSS by {} MB (> 64 MB):\n{}",
            v.name,
            growth / MB,
            report.join("\n")
        );
    }
    println!("{}", report.join("\n"));

    // Four of the repro at once, while /health/ready is asked every 20 ms.
    let repro = &all[0];
    let sends = (0..4).map(|_| send(&h, &key, repro));
    let health = async {
        let mut worst = Duration::ZERO;
        let mut answered = 0;
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(2) {
            let t = Instant::now();
            let r = h.http.get(h.url("/health/ready")).send().await.unwrap();
            assert_eq!(r.status(), 200);
            answered += 1;
            worst = worst.max(t.elapsed());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (answered, worst)
    };
    let (replies, (answered, worst)) = tokio::join!(futures_util::future::join_all(sends), health);
    for r in replies {
        assert_eq!(r.status(), 400, "the repro is refused");
    }
    let growth = proc_status_bytes(server, "VmHWM:").saturating_sub(baseline);
    println!(
        "four repro requests at once: peak RSS +{} MB; /health/ready answered {answered} times, slowest {worst:?}",
        growth / MB
    );
    assert!(growth <= 4 * 64 * MB, "four at once: +{} MB", growth / MB);
    assert!(answered > 0);
    // The server still ingests.
    let r = h
        .http
        .post(h.url(&format!("/api/{pid}/store/")))
        .header("x-sentry-auth", format!("Sentry sentry_key={key}"))
        .body("{\"message\":\"still here\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    h.stop().await;
}

/// An envelope: `header`, then one event item when `event` is set, then `n` attachments of
/// `size` zero bytes.
fn attachment_envelope(event_id: &str, event: bool, n: usize, size: usize) -> Vec<u8> {
    let mut body = format!("{{\"event_id\":\"{event_id}\"}}\n").into_bytes();
    if event {
        body.extend_from_slice(
            format!("{{\"type\":\"event\"}}\n{{\"event_id\":\"{event_id}\",\"message\":\"with files\"}}\n")
                .as_bytes(),
        );
    }
    let zeros = vec![0u8; size];
    for i in 0..n {
        body.extend_from_slice(
            format!("{{\"type\":\"attachment\",\"length\":{size},\"filename\":\"z{i}.bin\"}}\n")
                .as_bytes(),
        );
        body.extend_from_slice(&zeros);
        body.push(b'\n');
    }
    body
}

async fn post_gzip(h: &Hearth, pid: u64, key: &str, body: &[u8]) -> reqwest::Response {
    h.http
        .post(h.url(&format!("/api/{pid}/envelope/")))
        .header("x-sentry-auth", format!("Sentry sentry_key={key}"))
        .header("content-encoding", "gzip")
        .body(gzip(body))
        .send()
        .await
        .unwrap()
}

async fn get_json(h: &Hearth, token: &str, path: &str) -> (u16, Value) {
    let r = h.get(token, path).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn attachments_are_capped_compressed_kept_to_their_project_and_deleted_with_their_issue() {
    let h = Hearth::start("[ingest]\nmax_attachment_bytes_per_project_per_day = \"30 MB\"\n").await;
    let owner = h.owner().await;
    let t = owner.token.as_str();
    let (pid, dsn) = h.project(t, "files").await;
    let key = key_of(&dsn);
    let (other_pid, other_dsn) = h.project(t, "other").await;
    let other_key = key_of(&other_dsn);

    // The issue's request: 95 attachments of 1 MB zeros on one event, 97 KB gzip'd.
    let before = data_dir_bytes(&h);
    let id = new_id();
    let r = post_gzip(
        &h,
        pid,
        &key,
        &attachment_envelope(&id, true, 95, MB as usize),
    )
    .await;
    assert_eq!(r.status(), 200, "the event is still stored");
    let limits = r.headers()["x-sentry-rate-limits"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(limits.contains(":attachment:"), "{limits}");
    let (_, list) = get_json(&h, t, &format!("/api/events/{id}/attachments")).await;
    let list = list["attachments"].as_array().unwrap().clone();
    // 20 MB (decimal) per event: 19 attachments of 1 MiB.
    assert_eq!(list.len(), 19, "[ingest] max_attachment_bytes_per_event");
    assert!(list.iter().all(|a| a["size"] == MB));
    let r = h
        .get(t, &format!("/api/events/{id}/attachments/{}", list[3]["n"]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let data = r.bytes().await.unwrap();
    assert_eq!(data.len() as u64, MB);
    assert!(data.iter().all(|b| *b == 0));
    let growth = data_dir_bytes(&h).saturating_sub(before);
    println!("95 x 1 MB zeros: data directory +{} KB", growth / 1024);
    assert!(growth < 8 * MB, "stored compressed: +{growth} bytes");

    // More for the same event: it is full.
    let r = post_gzip(
        &h,
        pid,
        &key,
        &attachment_envelope(&id, false, 1, MB as usize),
    )
    .await;
    assert_eq!(r.status(), 429, "only attachments, all over the cap");
    assert!(
        r.headers()["x-sentry-rate-limits"]
            .to_str()
            .unwrap()
            .contains(":attachment:")
    );

    // The project's day: 19 MiB stored, so 9 of 1 MiB fit in the 30 MB left.
    let second = new_id();
    let r = post_gzip(
        &h,
        pid,
        &key,
        &attachment_envelope(&second, true, 15, MB as usize),
    )
    .await;
    assert_eq!(r.status(), 200);
    let retry: u64 = r.headers()["x-sentry-rate-limits"]
        .to_str()
        .unwrap()
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 0);
    let (_, list) = get_json(&h, t, &format!("/api/events/{second}/attachments")).await;
    assert_eq!(list["attachments"].as_array().unwrap().len(), 9);

    // Another project's key cannot attach a file to this project's event.
    let r = post_gzip(
        &h,
        other_pid,
        &other_key,
        &attachment_envelope(&id, false, 1, 10),
    )
    .await;
    assert!(
        r.status().is_success() || r.status() == 429,
        "{}",
        r.status()
    );
    let (_, list) = get_json(&h, t, &format!("/api/events/{id}/attachments")).await;
    let list = list["attachments"].as_array().unwrap().clone();
    assert_eq!(list.len(), 19, "nothing added by the other project's key");

    // Deleting the issue deletes its events' attachments.
    let issue = wait_for(
        "the issue of the event",
        Duration::from_secs(10),
        || async {
            let (_, v) = get_json(&h, t, &format!("/api/projects/{pid}/issues")).await;
            v["issues"][0]["id"].as_u64()
        },
    )
    .await;
    let r = h
        .http
        .delete(h.url(&format!("/api/issues/{issue}")))
        .bearer_auth(t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let (status, _) = get_json(
        &h,
        t,
        &format!("/api/events/{id}/attachments/{}", list[0]["n"]),
    )
    .await;
    assert_eq!(status, 404, "the attachment went with its issue");
    let (_, list) = get_json(&h, t, &format!("/api/events/{second}/attachments")).await;
    assert!(list["attachments"].as_array().unwrap().is_empty());
    h.stop().await;
}

#[tokio::test]
async fn retention_prunes_transactions_check_ins_feedback_client_reports_and_attachments() {
    let h = Hearth::start("[issues]\nmax_event_age = \"2s\"\nprune_interval = \"1s\"\n").await;
    let owner = h.owner().await;
    let t = owner.token.as_str();
    let (pid, dsn) = h.project(t, "old").await;
    let key = key_of(&dsn);
    let id = new_id();
    let mut body = attachment_envelope(&id, true, 1, 100);
    body.extend_from_slice(
        format!(
            "{{\"type\":\"transaction\"}}\n{{\"event_id\":\"{}\",\"transaction\":\"GET /\",\"start_timestamp\":1,\"timestamp\":2}}\n\
             {{\"type\":\"check_in\"}}\n{{\"monitor_slug\":\"nightly\",\"status\":\"ok\"}}\n\
             {{\"type\":\"user_report\"}}\n{{\"event_id\":\"{id}\",\"name\":\"A\",\"comments\":\"broken\"}}\n\
             {{\"type\":\"client_report\"}}\n{{\"discarded_events\":[{{\"reason\":\"queue_overflow\",\"category\":\"error\",\"quantity\":3}}]}}\n",
            new_id()
        )
        .as_bytes(),
    );
    let r = post_gzip(&h, pid, &key, &body).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let (_, list) = get_json(&h, t, &format!("/api/events/{id}/attachments")).await;
    assert_eq!(list["attachments"].as_array().unwrap().len(), 1);
    let lists = [
        ("transactions", "transactions"),
        ("feedback", "feedback"),
        ("client-reports", "discarded"),
    ];
    for (path, field) in lists {
        let (_, v) = get_json(&h, t, &format!("/api/projects/{pid}/{path}")).await;
        assert_eq!(v[field].as_array().unwrap().len(), 1, "{path}: {v}");
    }
    // Client reports are kept by UTC day and pruned a whole day at a time (a unit test of
    // `ingest::store::prune` covers them); the rest goes once older than `max_event_age`.
    wait_for(
        "retention to prune everything",
        Duration::from_secs(30),
        || async {
            for (path, field) in &lists[..2] {
                let (_, v) = get_json(&h, t, &format!("/api/projects/{pid}/{path}")).await;
                if !v[field].as_array()?.is_empty() {
                    return None;
                }
            }
            let (_, m) = get_json(&h, t, &format!("/api/projects/{pid}/monitors")).await;
            if !m["monitors"][0]["check_ins"].as_array()?.is_empty() {
                return None;
            }
            let (_, a) = get_json(&h, t, &format!("/api/events/{id}/attachments")).await;
            a["attachments"].as_array()?.is_empty().then_some(())
        },
    )
    .await;
    h.stop().await;
}

async fn release_health(h: &Hearth, t: &str, pid: u64) -> Value {
    let (_, v) = get_json(h, t, &format!("/api/projects/{pid}/release-health")).await;
    v["releases"][0].clone()
}

#[tokio::test]
async fn a_session_counts_once_in_its_worst_state_and_span_streams_are_counted() {
    let h = Hearth::start("").await;
    let owner = h.owner().await;
    let t = owner.token.as_str();
    let (pid, dsn) = h.project(t, "health").await;
    let key = key_of(&dsn);
    let session = |sid: &str, init: bool, status: &str, errors: u64| {
        format!(
            "{{}}\n{{\"type\":\"session\"}}\n{}\n",
            json!({"sid": sid, "init": init, "status": status, "errors": errors,
                   "started": "2026-01-01T00:00:00Z", "attrs": {"release": "web@1", "environment": "production"}})
        )
    };
    let post = |body: String| async {
        let r = h
            .http
            .post(h.url(&format!("/api/{pid}/envelope/")))
            .header("x-sentry-auth", format!("Sentry sentry_key={key}"))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    };
    // The browser SDK: a healthy session, then the same session with an error, then it ends.
    let a = new_id();
    post(session(&a, true, "ok", 0)).await;
    post(session(&a, false, "ok", 1)).await;
    let rh = release_health(&h, t, pid).await;
    assert_eq!(
        (rh["sessions"].as_u64(), rh["errored"].as_u64()),
        (Some(1), Some(1)),
        "{rh}"
    );
    post(session(&a, false, "exited", 2)).await;
    // Another session crashes after an error: counted crashed, no longer errored.
    let b = new_id();
    post(session(&b, true, "ok", 0)).await;
    post(session(&b, false, "ok", 1)).await;
    post(session(&b, false, "crashed", 1)).await;
    // A third ends healthy.
    let c = new_id();
    post(session(&c, true, "ok", 0)).await;
    post(session(&c, false, "exited", 0)).await;
    let rh = release_health(&h, t, pid).await;
    assert_eq!(rh["sessions"], 3, "{rh}");
    assert_eq!(rh["errored"], 1, "{rh}");
    assert_eq!(rh["crashed"], 1, "{rh}");
    assert_eq!(rh["exited"], 1, "{rh}");

    // The Node SDK's span v2 stream: accepted, not stored, counted where client reports are.
    let spans = json!({"items": [
        {"trace_id": "a".repeat(32), "span_id": "b".repeat(16), "name": "GET /", "start_timestamp": 1.0, "end_timestamp": 2.0},
        {"trace_id": "a".repeat(32), "span_id": "c".repeat(16), "name": "db", "start_timestamp": 1.0, "end_timestamp": 1.5},
    ]})
    .to_string();
    post(format!(
        "{{}}\n{{\"type\":\"span\",\"item_count\":2,\"content_type\":\"application/vnd.sentry.items.span.v2+json\",\"length\":{}}}\n{spans}\n",
        spans.len()
    ))
    .await;
    let (_, v) = get_json(&h, t, &format!("/api/projects/{pid}/client-reports")).await;
    let rows = v["discarded"].as_array().unwrap();
    assert!(
        rows.iter().any(|r| r["reason"] == "not_stored_by_hearth"
            && r["category"] == "span"
            && r["quantity"] == 2),
        "{v}"
    );
    h.stop().await;
}
