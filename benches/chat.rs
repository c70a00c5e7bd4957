//! Chat benchmark against the real `hearth` binary, with real WebSocket clients.
//!
//! `cargo bench --bench chat` runs the full measurement:
//! - 10,000 widget sockets (100 visitors × 100 sockets) held open: server RSS per idle socket;
//! - 200 agent messages fanned out to the 100 sockets of their visitor: delivery latency
//!   (HTTP send → frame received) p50/p99;
//! - 1,000 messages while the receiving socket is dropped and resumes 10 times: every message
//!   delivered exactly once, in order.
//!
//! `HEARTH_BENCH_SOCKETS` and `HEARTH_BENCH_VISITORS` override the socket and visitor counts.
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
        "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"{base}\"\n\n[storage]\ndata_dir = \"{}\"\n\n\
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
    let (sockets, visitors, messages, resume_msgs, reconnects) = if full {
        (
            env("HEARTH_BENCH_SOCKETS", 10_000),
            env("HEARTH_BENCH_VISITORS", 100),
            200,
            1000,
            10,
        )
    } else {
        (40, 4, 10, 60, 3)
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(sockets, visitors, messages, resume_msgs, reconnects));
}

async fn run(
    sockets: usize,
    visitors: usize,
    messages: usize,
    resume_msgs: usize,
    reconnects: usize,
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
    drop(server);
}
