//! Chat benchmark against the real `hearth` binary, with real WebSocket clients.
//!
//! `cargo bench --bench chat` runs the full measurement:
//! - 10,000 widget sockets (100 visitors × 100 sockets) held open: server RSS per idle socket;
//! - 200 agent messages fanned out to the 100 sockets of their visitor: delivery latency
//!   (HTTP send → frame received) p50/p99;
//! - 1,000 messages while the receiving socket is dropped and resumes 10 times: every message
//!   delivered exactly once, in order;
//! - chat messages (visitor socket send → committed ack, and → delivery at an agent socket)
//!   p50/p99 while Sentry envelopes are POSTed to ingest at 3,000 events/s beside them (chat
//!   and ingest share the one redb writer).
//!
//! `HEARTH_BENCH_SOCKETS` and `HEARTH_BENCH_VISITORS` override the socket and visitor counts,
//! `HEARTH_BENCH_INGEST_RATE` the ingest rate (events/s).
//! Under `cargo test` (no `--bench` argument) it runs a small smoke version.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

struct Server {
    child: Child,
    base: String,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn start_server() -> (Server, String) {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"{base}\"\nmax_connections_per_ip = 100000\n\n[storage]\ndata_dir = \"{}\"\n\n\
         [log]\nlevel = \"info\"\n\n[chat]\nsockets_per_ip = 0\nstarts_per_ip_per_hour = 0\n\
         visitor_messages_per_minute = 0\nsocket_queue = 1024\n",
        dir.path().join("data").display()
    );
    let path = dir.path().join("config.toml");
    std::fs::write(&path, config).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("--config")
        .arg(&path)
        .arg("serve")
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start hearth");
    let (tx, rx) = std::sync::mpsc::channel();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("/setup?token=").nth(1) {
                    let token: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                        .collect();
                    let _ = tx.send(token);
                }
            }
        });
    }
    let token = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("setup link in the log");
    (
        Server {
            child,
            base,
            port,
            _dir: dir,
        },
        token,
    )
}

async fn post(http: &reqwest::Client, url: String, auth: &[(&str, &str)], body: Value) -> Value {
    let mut req = http.post(url).json(&body);
    for (k, v) in auth {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{status}: {v}");
    v
}

struct Visitor {
    token: String,
    conv: u64,
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (sockets, visitors, messages, resume_msgs, reconnects, ingest_rate, chat_msgs) = if full {
        (
            env("HEARTH_BENCH_SOCKETS", 10_000),
            env("HEARTH_BENCH_VISITORS", 100),
            200,
            1000,
            10,
            env("HEARTH_BENCH_INGEST_RATE", 3_000),
            300,
        )
    } else {
        (40, 4, 10, 60, 3, 50, 10)
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(
        sockets,
        visitors,
        messages,
        resume_msgs,
        reconnects,
        ingest_rate,
        chat_msgs,
    ));
}

async fn run(
    sockets: usize,
    visitors: usize,
    messages: usize,
    resume_msgs: usize,
    reconnects: usize,
    ingest_rate: usize,
    chat_msgs: usize,
) {
    let (server, setup) = start_server();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let b = server.base.clone();
    let r = http
        .post(format!("{b}/api/auth/setup"))
        .json(&json!({"token": setup, "email": "o@example.com", "name": "Owner", "password": "bench password 123"}))
        .send()
        .await
        .unwrap();
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let token = http
        .post(format!("{b}/api/tokens"))
        .header("cookie", &cookie)
        .header("origin", &b)
        .json(&json!({"name": "bench"}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let bearer = format!("Bearer {token}");
    let auth = [("authorization", bearer.as_str())];
    let site = post(
        &http,
        format!("{b}/api/chat/sites"),
        &auth,
        json!({"name": "bench"}),
    )
    .await;
    let key = site["site"]["site_key"].as_str().unwrap().to_string();
    let mut vs = Vec::new();
    for _ in 0..visitors {
        let s = post(
            &http,
            format!("{b}/api/chat/widget/session"),
            &[],
            json!({"site_key": key}),
        )
        .await;
        let t = s["visitor_token"].as_str().unwrap().to_string();
        let c = post(
            &http,
            format!("{b}/api/chat/start"),
            &[("x-hearth-site-key", &key), ("x-hearth-visitor-token", &t)],
            json!({"initial_message": "hi"}),
        )
        .await;
        vs.push(Visitor {
            token: t,
            conv: c["chat_id"].as_u64().unwrap(),
        });
    }
    let pid = server.child.id();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_kib(pid);

    // ---- idle sockets and fan-out ----
    let base = Instant::now();
    let samples = Arc::new(Mutex::new(Vec::<u64>::new()));
    let connected = Arc::new(tokio::sync::Semaphore::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(256));
    let mut tasks = Vec::new();
    for i in 0..sockets {
        let v = &vs[i % visitors];
        let url = format!(
            "ws://127.0.0.1:{}/api/chat/ws/{}?after_seq=1&site_key={key}&visitor_token={}",
            server.port, v.conv, v.token
        );
        let (samples, connected, gate) = (samples.clone(), connected.clone(), gate.clone());
        tasks.push(tokio::spawn(async move {
            let permit = gate.acquire_owned().await.unwrap();
            let (mut ws, _) = tokio_tungstenite::connect_async(url)
                .await
                .expect("connect");
            drop(permit);
            let mut ready = false;
            while let Some(Ok(m)) = ws.next().await {
                let Message::Text(t) = m else { continue };
                let f: Value = serde_json::from_str(t.as_str()).unwrap();
                match f["t"].as_str() {
                    Some("resumed") if !ready => {
                        ready = true;
                        connected.add_permits(1);
                    }
                    Some("ev") => {
                        let now = base.elapsed().as_micros() as u64;
                        if let Some(sent) = f["data"]["body"]
                            .as_str()
                            .and_then(|s| s.strip_prefix('t'))
                            .and_then(|s| s.parse::<u64>().ok())
                        {
                            samples.lock().unwrap().push(now.saturating_sub(sent));
                        }
                    }
                    Some("ping") => {
                        let _ = ws.send(Message::text("{\"t\":\"pong\"}")).await;
                    }
                    _ => {}
                }
            }
        }));
    }
    let t0 = Instant::now();
    let _all = connected.acquire_many(sockets as u32).await.unwrap();
    let connect_s = t0.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = rss_kib(pid);
    let per_socket = (after.saturating_sub(before)) as f64 * 1024.0 / sockets as f64;
    println!(
        "chat idle sockets: {sockets} open in {connect_s:.1}s; server RSS {before} KiB → {after} KiB = {per_socket:.0} bytes per idle socket"
    );
    for m in 0..messages {
        let v = &vs[m % visitors];
        let body = format!("t{}", base.elapsed().as_micros());
        post(
            &http,
            format!("{b}/api/chat/session/{}/message", v.conv),
            &auth,
            json!({"client_msg_id": format!("m{m}"), "body": body}),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let want = messages * (sockets / visitors);
    let deadline = Instant::now() + Duration::from_secs(60);
    while samples.lock().unwrap().len() < want && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut s = samples.lock().unwrap().clone();
    s.sort_unstable();
    let pct = |p: f64| {
        s.get(((s.len() as f64 * p) as usize).min(s.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    println!(
        "chat fan-out: {messages} messages × {} sockets each = {} deliveries of {want} expected; latency send→receive p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        sockets / visitors,
        s.len(),
        pct(0.50),
        pct(0.99),
        pct(1.0)
    );
    assert_eq!(s.len(), want, "every delivery arrived");
    for t in tasks {
        t.abort();
    }

    // ---- exactly once, in order, across forced reconnects ----
    let s = post(
        &http,
        format!("{b}/api/chat/widget/session"),
        &[],
        json!({"site_key": key}),
    )
    .await;
    let vt = s["visitor_token"].as_str().unwrap().to_string();
    let c = post(
        &http,
        format!("{b}/api/chat/start"),
        &[("x-hearth-site-key", &key), ("x-hearth-visitor-token", &vt)],
        json!({"initial_message": "resume bench"}),
    )
    .await;
    let conv = c["chat_id"].as_u64().unwrap();
    let sender = {
        let (http, b, bearer) = (http.clone(), b.clone(), bearer.clone());
        tokio::spawn(async move {
            for i in 0..resume_msgs {
                post(
                    &http,
                    format!("{b}/api/chat/session/{conv}/message"),
                    &[("authorization", bearer.as_str())],
                    json!({"client_msg_id": format!("r{i}"), "body": format!("r{i}")}),
                )
                .await;
            }
        })
    };
    let mut got: Vec<(u64, String)> = Vec::new();
    let mut last = 1u64;
    let mut drops = 0;
    let every = resume_msgs / (reconnects + 1);
    let t0 = Instant::now();
    'outer: loop {
        let url = format!(
            "ws://127.0.0.1:{}/api/chat/ws/{conv}?after_seq={last}&site_key={key}&visitor_token={vt}",
            server.port
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let mut since = 0;
        loop {
            let m = tokio::time::timeout(Duration::from_secs(30), ws.next())
                .await
                .expect("frames keep coming")
                .unwrap()
                .unwrap();
            let Message::Text(t) = m else { continue };
            let f: Value = serde_json::from_str(t.as_str()).unwrap();
            if f["t"] == "ev" && f["type"] == "message.created" {
                last = f["seq"].as_u64().unwrap();
                got.push((last, f["data"]["body"].as_str().unwrap().to_string()));
                since += 1;
                if got.len() == resume_msgs {
                    break 'outer;
                }
                if drops < reconnects && since >= every {
                    drops += 1;
                    // Dropped without a close frame, like a lost connection.
                    drop(ws);
                    continue 'outer;
                }
            }
        }
    }
    sender.await.unwrap();
    let want: Vec<(u64, String)> = (0..resume_msgs)
        .map(|i| (i as u64 + 2, format!("r{i}")))
        .collect();
    let exact = got == want;
    println!(
        "chat resume: {} of {resume_msgs} messages received across {drops} forced reconnects in {:.1}s; exactly once and in order: {exact}",
        got.len(),
        t0.elapsed().as_secs_f64()
    );
    assert!(exact, "deliveries differ from the messages sent");

    // ---- chat beside ingest at a fixed rate ----
    chat_beside_ingest(&http, &server, &auth, &key, ingest_rate, chat_msgs).await;
    drop(server);
}

/// A Sentry envelope with one error event (10 frames, tags, user), about 1.5 KB.
fn event_envelope(id: &str, n: u64) -> String {
    let frames: Vec<Value> = (0..10)
        .map(|i| json!({"filename": format!("app/mod{i}.py"), "function": format!("handler_{i}"), "lineno": 10 + i, "in_app": true}))
        .collect();
    let ev = json!({"event_id": id, "platform": "python", "level": "error",
        "exception": {"values": [{"type": format!("LoadError{}", n % 10), "value": format!("failed at step {n}"),
                                  "stacktrace": {"frames": frames}}]},
        "tags": {"bench": "chat"}, "user": {"id": format!("u{}", n % 100)}});
    format!("{{\"event_id\":\"{id}\"}}\n{{\"type\":\"event\"}}\n{ev}\n")
}

async fn chat_beside_ingest(
    http: &reqwest::Client,
    server: &Server,
    auth: &[(&str, &str)],
    site_key: &str,
    rate: usize,
    msgs: usize,
) {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let b = server.base.clone();
    let proj = post(
        http,
        format!("{b}/api/projects"),
        auth,
        json!({"name": "load"}),
    )
    .await;
    let pid = proj["project"]["id"].as_u64().unwrap();
    let dsn_key = proj["dsn"]
        .as_str()
        .unwrap()
        .split("//")
        .nth(1)
        .and_then(|s| s.split('@').next())
        .unwrap()
        .to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, refused, failed) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let client = reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    // Workers each send at rate/workers per second on their own schedule.
    let workers = 48.min(rate.max(1));
    let every = Duration::from_secs_f64(workers as f64 / rate.max(1) as f64);
    let mut load = Vec::new();
    for w in 0..workers {
        let (client, stop, ok, refused, failed) = (
            client.clone(),
            stop.clone(),
            ok.clone(),
            refused.clone(),
            failed.clone(),
        );
        let url = format!("{b}/api/{pid}/envelope/");
        let auth = format!("Sentry sentry_key={dsn_key}, sentry_version=7");
        load.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut n = w as u64;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let id = uuid::Uuid::new_v4().simple().to_string();
                let r = client
                    .post(&url)
                    .header("x-sentry-auth", &auth)
                    .body(event_envelope(&id, n))
                    .send()
                    .await;
                match r.map(|r| r.status().as_u16()) {
                    Ok(200) => ok.fetch_add(1, Ordering::Relaxed),
                    Ok(429) | Ok(503) => refused.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
                n += workers as u64;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let t_ingest = Instant::now();
    let ok0 = ok.load(Ordering::Relaxed);

    // A visitor socket sends; an agent socket receives.
    let s = post(
        http,
        format!("{b}/api/chat/widget/session"),
        &[],
        json!({"site_key": site_key}),
    )
    .await;
    let vt = s["visitor_token"].as_str().unwrap().to_string();
    let c = post(
        http,
        format!("{b}/api/chat/start"),
        &[
            ("x-hearth-site-key", site_key),
            ("x-hearth-visitor-token", &vt),
        ],
        json!({"initial_message": "beside ingest"}),
    )
    .await;
    let conv = c["chat_id"].as_u64().unwrap();
    let (mut visitor, _) = tokio_tungstenite::connect_async(format!(
        "ws://127.0.0.1:{}/api/chat/ws/{conv}?after_seq=1&site_key={site_key}&visitor_token={vt}",
        server.port
    ))
    .await
    .unwrap();
    let bearer = auth
        .iter()
        .find(|(k, _)| *k == "authorization")
        .map(|(_, v)| v.to_string())
        .unwrap();
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://127.0.0.1:{}/api/chat/ws", server.port),
    )
    .unwrap();
    req.headers_mut()
        .insert("authorization", bearer.parse().unwrap());
    let (mut agent, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let sent_at: Arc<Mutex<std::collections::HashMap<String, Instant>>> = Arc::default();
    let delivered = Arc::new(Mutex::new(Vec::<f64>::new()));
    let agent_task = {
        let (sent_at, delivered) = (sent_at.clone(), delivered.clone());
        tokio::spawn(async move {
            while let Some(Ok(m)) = agent.next().await {
                let Message::Text(t) = m else { continue };
                let f: Value = serde_json::from_str(t.as_str()).unwrap();
                if f["t"] == "ping" {
                    let _ = agent.send(Message::text("{\"t\":\"pong\"}")).await;
                }
                if f["t"] == "ev"
                    && let Some(body) = f["data"]["body"].as_str()
                    && let Some(t0) = sent_at.lock().unwrap().get(body)
                {
                    delivered
                        .lock()
                        .unwrap()
                        .push(t0.elapsed().as_secs_f64() * 1000.0);
                }
            }
        })
    };
    let mut acks = Vec::new();
    let mut pace = tokio::time::interval(Duration::from_millis(50));
    for i in 0..msgs {
        pace.tick().await;
        let id = format!("x{i}");
        let t0 = Instant::now();
        sent_at.lock().unwrap().insert(id.clone(), t0);
        visitor
            .send(Message::text(
                json!({"t": "send", "conv": conv, "client_msg_id": id, "body": id}).to_string(),
            ))
            .await
            .unwrap();
        loop {
            let m = tokio::time::timeout(Duration::from_secs(30), visitor.next())
                .await
                .expect("an ack within 30 s")
                .unwrap()
                .unwrap();
            let Message::Text(t) = m else { continue };
            let f: Value = serde_json::from_str(t.as_str()).unwrap();
            if f["t"] == "ping" {
                let _ = visitor.send(Message::text("{\"t\":\"pong\"}")).await;
            }
            if f["t"] == "ack" && f["client_msg_id"] == id.as_str() {
                acks.push(t0.elapsed().as_secs_f64() * 1000.0);
                break;
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while delivered.lock().unwrap().len() < msgs && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ingest_s = t_ingest.elapsed().as_secs_f64();
    let accepted = ok.load(Ordering::Relaxed) - ok0;
    stop.store(true, Ordering::Relaxed);
    for l in load {
        let _ = l.await;
    }
    agent_task.abort();
    let pct = |v: &mut Vec<f64>, p: f64| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v.get(((v.len() as f64 * p) as usize).min(v.len().saturating_sub(1)))
            .copied()
            .unwrap_or(f64::NAN)
    };
    let mut d = delivered.lock().unwrap().clone();
    println!(
        "chat beside ingest: ingest accepted {:.0} events/s (target {rate}; {} refused, {} failed) while {msgs} chat messages went: send→ack p50 {:.2} ms, p99 {:.2} ms; send→agent socket p50 {:.2} ms, p99 {:.2} ms ({} delivered)",
        accepted as f64 / ingest_s,
        refused.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        pct(&mut acks, 0.5),
        pct(&mut acks, 0.99),
        pct(&mut d, 0.5),
        pct(&mut d, 0.99),
        d.len()
    );
    assert_eq!(d.len(), msgs, "every chat message reached the agent");
}
