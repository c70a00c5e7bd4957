//! What the benchmarks share: the server process (started on a fresh data directory with an
//! admin token and a project), /proc and /metrics readings, and the ingest load loop (a
//! realistic Python SDK envelope POSTed from keep-alive connections, optionally paced).
//!
//! Included by each bench with `mod support;`; not every bench uses every piece.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The envelope the load sends: `../shared/peers/bugsink/envelope.bin` (what sentry-python 2.75
/// sends for a ValueError with 10 frames and locals) or, when that is missing,
/// `../shared/fixtures/sentry/py_zero_division.1.envelope` padded with breadcrumbs.
pub fn load_envelope() -> Vec<u8> {
    let root = std::env::var_os("HEARTH_SHARED_DIR")
        .map(|d| PathBuf::from(d).join(".."))
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."));
    if let Ok(b) = std::fs::read(root.join("shared/peers/bugsink/envelope.bin")) {
        return b;
    }
    let b = std::fs::read(root.join("shared/fixtures/sentry/py_zero_division.1.envelope")).expect(
        "neither shared/peers/bugsink/envelope.bin nor the py_zero_division fixture exists",
    );
    // Pad with breadcrumbs to the 7-8 KB a real app's event has.
    let mut lines = b.split(|c| *c == b'\n');
    let head = lines.next().unwrap().to_vec();
    lines.next();
    let mut ev: Value = serde_json::from_slice(lines.next().unwrap()).unwrap();
    let crumbs: Vec<Value> = (0..30)
        .map(|i| json!({"category": "http", "type": "http", "level": "info",
            "data": {"url": format!("https://api.internal/orders/{i}"), "method": "GET", "status_code": 200}}))
        .collect();
    ev["breadcrumbs"] = json!({ "values": crumbs });
    let payload = serde_json::to_vec(&ev).unwrap();
    let mut out = head;
    out.extend_from_slice(
        format!(
            "\n{{\"type\":\"event\",\"content_type\":\"application/json\",\"length\":{}}}\n",
            payload.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(&payload);
    out.push(b'\n');
    out
}

const PLACEHOLDER: &str = "ffffffffffffffffffffffffffffffff";

/// Distinct bodies per group. Events of one issue differ the way a real app's do: time, local
/// variable values, numbers, breadcrumbs (the event id differs per request besides).
pub const VARIANTS: usize = 32;

/// Per group and variant: the envelope split around its event-id placeholders.
pub fn templates(envelope: &[u8], groups: usize, unique: bool) -> Vec<Vec<Vec<Vec<u8>>>> {
    use rand::Rng;
    let mut parts = envelope.splitn(3, |c| *c == b'\n');
    let mut head: Value = serde_json::from_slice(parts.next().unwrap()).unwrap();
    let item: Value = serde_json::from_slice(parts.next().unwrap()).unwrap();
    let rest = parts.next().unwrap();
    let payload_len = item["length"]
        .as_u64()
        .map(|l| l as usize)
        .unwrap_or_else(|| rest.iter().position(|c| *c == b'\n').unwrap_or(rest.len()));
    let mut event: Value = serde_json::from_slice(&rest[..payload_len]).unwrap();
    head["event_id"] = json!(PLACEHOLDER);
    event["event_id"] = json!(PLACEHOLDER);
    let mut rng = rand::rng();
    (0..groups)
        .map(|g| {
            let suffix: String = (0..3)
                .map(|i| (b'A' + ((g / 26usize.pow(i)) % 26) as u8) as char)
                .collect();
            (0..VARIANTS)
                .map(|_| {
                    let mut ev = event.clone();
                    vary(&mut ev, false, &mut rng);
                    let now = 1_763_800_000.0 + rng.random_range(0.0..86_400.0);
                    ev["timestamp"] = json!(now);
                    ev["breadcrumbs"] = json!({"values": (0..3).map(|i| json!({
                        "timestamp": now - 3.0 + i as f64 + rng.random_range(0.0..1.0),
                        "category": "httplib", "type": "http", "level": "info",
                        "data": {"url": format!("https://api.internal/orders/{}", rng.random_range(1..100_000)),
                            "method": "GET", "status_code": 200,
                            "duration_ms": rng.random_range(1..900)},
                    })).collect::<Vec<_>>()});
                    if let Some(exc) = ev["exception"]["values"]
                        .as_array_mut()
                        .and_then(|a| a.last_mut())
                    {
                        let ty = exc["type"].as_str().unwrap_or("Error").to_string();
                        exc["type"] = json!(format!("{ty}{suffix}"));
                        if unique {
                            let value = exc["value"].as_str().unwrap_or("").to_string();
                            exc["value"] = json!(format!("{value} (request {PLACEHOLDER})"));
                        }
                    } else {
                        ev["message"] = json!(format!("load message {suffix}"));
                    }
                    let payload = serde_json::to_vec(&ev).unwrap();
                    let mut item = item.clone();
                    item["length"] = json!(payload.len());
                    let mut whole = serde_json::to_vec(&head).unwrap();
                    whole.push(b'\n');
                    whole.extend_from_slice(&serde_json::to_vec(&item).unwrap());
                    whole.push(b'\n');
                    whole.extend_from_slice(&payload);
                    whole.push(b'\n');
                    let text = String::from_utf8(whole).unwrap();
                    text.split(PLACEHOLDER)
                        .map(|s| s.as_bytes().to_vec())
                        .collect()
                })
                .collect()
        })
        .collect()
}

/// Changes what differs between events of one issue from the same app and host: local variable
/// values (strings and numbers). Code, frames and the host's contexts stay the same.
fn vary(v: &mut Value, in_vars: bool, rng: &mut impl rand::Rng) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                vary(child, in_vars || k == "vars", rng);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|c| vary(c, in_vars, rng)),
        Value::Number(n) if in_vars => {
            if let Some(i) = n.as_u64() {
                *v = json!(rng.random_range(0..=i.max(9) * 2));
            }
        }
        Value::String(s) if in_vars && rng.random_bool(0.5) => {
            s.push_str(&format!(" #{}", rng.random_range(0..1_000_000)));
        }
        _ => {}
    }
}

/// CPU seconds (user + system) the process has used; clock ticks are 100/s on Linux.
pub fn cpu_secs(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some((f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / 100.0)
        })
        .unwrap_or(0.0)
}

/// The machine's CPU time (all cores) so far and the part of it the hypervisor gave to other
/// guests ("steal"), in seconds, from /proc/stat. On a shared VM, steal is why the same build
/// measures differently from one minute to the next.
pub fn machine_cpu() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let steal = f.get(7).copied().unwrap_or(0.0);
    (f.iter().take(8).sum::<f64>() / 100.0, steal / 100.0)
}

/// Bytes the process caused to be written to storage (/proc/<pid>/io).
pub fn written_bytes(pid: u32) -> u64 {
    proc_value(pid, "io", "write_bytes:")
}

pub fn rss_kb(pid: u32) -> u64 {
    status_kb(pid, "VmRSS:")
}

/// A `kB` line of /proc/<pid>/status (`VmRSS:`, `RssAnon:`, `RssFile:`).
pub fn status_kb(pid: u32, key: &str) -> u64 {
    proc_value(pid, "status", key)
}

/// The number after `key` on its line of /proc/<pid>/<file>, 0 when missing.
pub fn proc_value(pid: u32, file: &str, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The server's `/metrics` text, empty when it cannot be read.
pub async fn metrics(http: &reqwest::Client, base: &str, token: &str) -> String {
    async {
        http.get(format!("{base}/metrics"))
            .bearer_auth(token)
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()
    }
    .await
    .unwrap_or_default()
}

/// A value in a `/metrics` text, 0 when missing.
pub fn metric_in(text: &str, name: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A value from the server's `/metrics`, 0 when it cannot be read.
pub async fn metric(http: &reqwest::Client, base: &str, token: &str, name: &str) -> u64 {
    metric_in(&metrics(http, base, token).await, name)
}

/// One keep-alive HTTP/1.1 connection speaking just enough of the protocol for the load: it
/// writes a whole prepared request and reads the status and body of the reply. A full client
/// (reqwest) cost the generator ~70 µs of CPU per request on the 2 cores it shares with the
/// server; this costs a fraction of that, so the figures measure the server more than the load.
pub struct Conn {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    pub async fn open(port: u16) -> Conn {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect to the server");
        stream.set_nodelay(true).unwrap();
        Conn {
            stream,
            buf: Vec::with_capacity(4096),
        }
    }

    /// Sends `request` and returns the reply's status once its whole body has been read.
    pub async fn exchange(&mut self, request: &[u8]) -> std::io::Result<u16> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
        self.stream.write_all(request).await?;
        self.buf.clear();
        let mut chunk = [0u8; 4096];
        loop {
            let head_end = self.buf.windows(4).position(|w| w == b"\r\n\r\n");
            if let Some(end) = head_end {
                let head = std::str::from_utf8(&self.buf[..end]).map_err(|_| bad("head"))?;
                let status: u16 = head
                    .get(9..12)
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| bad("status line"))?;
                let lower = head.to_ascii_lowercase();
                let body = &self.buf[end + 4..];
                let complete = if let Some(l) = lower
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                {
                    let len: usize = l.trim().parse().map_err(|_| bad("content-length"))?;
                    body.len() >= len
                } else if lower.contains("transfer-encoding: chunked") {
                    body.ends_with(b"0\r\n\r\n")
                } else {
                    return Err(bad("reply without a length"));
                };
                if complete {
                    return Ok(status);
                }
            }
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// A `hearth serve` process on a fresh data directory (or `HEARTH_BENCH_DATA_DIR`), prepared
/// through the library first: an admin API token and a project. `HEARTH_BENCH_SERVER` runs
/// another server binary instead of this build's (an older commit, a profiling build).
pub struct Server {
    pub child: std::process::Child,
    pub pid: u32,
    pub port: u16,
    pub base: String,
    pub dir: PathBuf,
    pub exe: String,
    pub token: String,
    pub project_id: u64,
    pub public_key: String,
    _tmp: tempfile::TempDir,
}

impl Server {
    /// Starts the server with `env` added to its environment; returns once it is ready.
    pub async fn start(env: &[(&str, &str)]) -> Server {
        let tmp = tempfile::tempdir().unwrap();
        let dir = match std::env::var_os("HEARTH_BENCH_DATA_DIR") {
            Some(d) => PathBuf::from(d),
            None => tmp.path().to_path_buf(),
        };
        let mut config = hearth::Config::default();
        config.storage.data_dir = dir.clone();
        let (project_id, public_key, token) = {
            let app = hearth::build(config).unwrap();
            let s = app.state();
            let (p, k) = s.accounts.create_project("load").await.unwrap();
            let u = s
                .accounts
                .create_user(
                    "bench@example.invalid",
                    "Bench",
                    hearth::accounts::Role::Admin,
                    None,
                )
                .await
                .unwrap();
            let (_, t) = s.accounts.create_api_token(u.id, "bench").await.unwrap();
            (p.id, k.public_key, t)
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let base = format!("http://127.0.0.1:{port}");
        let exe = std::env::var("HEARTH_BENCH_SERVER")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_hearth").to_string());
        let child = std::process::Command::new(&exe)
            .args([
                "serve",
                "--data-dir",
                dir.to_str().unwrap(),
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--log-level",
                "warn",
            ])
            .envs(env.iter().copied())
            .current_dir(&dir)
            .spawn()
            .unwrap();
        let pid = child.id();
        let http = reqwest::Client::new();
        let t0 = Instant::now();
        loop {
            if let Ok(r) = http.get(format!("{base}/health/ready")).send().await
                && r.status() == 200
            {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "server did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Server {
            child,
            pid,
            port,
            base,
            dir,
            exe,
            token,
            project_id,
            public_key,
            _tmp: tmp,
        }
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.join("hearth.redb")
    }

    /// SIGTERM, then waits for the process to exit.
    pub fn stop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let _ = self.child.wait();
    }

    /// SIGKILL, then waits for the process to exit.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill();
        }
    }
}

/// What the ingest load does: `connections` keep-alive connections POST envelopes built from
/// `templates` (a fresh event id each) until `deadline`; `rate` paces them to that many
/// requests per second in all (none: as fast as the server answers); `gzip` compresses each.
pub struct Load {
    pub port: u16,
    pub project_id: u64,
    pub public_key: String,
    pub templates: Arc<Vec<Vec<Vec<Vec<u8>>>>>,
    pub connections: usize,
    pub gzip: bool,
    pub rate: Option<f64>,
    pub deadline: Instant,
}

/// What the load got back: 200s, other statuses and transport errors, 429s, and the latency
/// of each 200 in µs.
#[derive(Default)]
pub struct LoadResult {
    pub ok: u64,
    pub errors: u64,
    pub throttled: u64,
    pub latencies_us: Vec<u32>,
}

impl LoadResult {
    /// The `p` quantile of the 200s' latency, in ms (sorts the latencies).
    pub fn percentile_ms(&mut self, p: f64) -> f64 {
        let lat = &mut self.latencies_us;
        lat.sort_unstable();
        if lat.is_empty() {
            return 0.0;
        }
        lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)] as f64 / 1000.0
    }
}

/// Runs the ingest load on the current runtime and returns once every connection has stopped.
pub async fn ingest_load(load: Load) -> LoadResult {
    let port = load.port;
    let path = format!("/api/{}/envelope/", load.project_id);
    let auth = format!(
        "Sentry sentry_key={}, sentry_version=7, sentry_client=sentry.python/2.75.0",
        load.public_key
    );
    let pace = load
        .rate
        .filter(|r| *r > 0.0)
        .map(|r| Duration::from_secs_f64(load.connections as f64 / r));
    let mut tasks = Vec::new();
    for c in 0..load.connections {
        let (tpls, path, auth) = (load.templates.clone(), path.clone(), auth.clone());
        let (gzip, deadline) = (load.gzip, load.deadline);
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(port).await;
            let mut out = LoadResult {
                latencies_us: Vec::with_capacity(100_000),
                ..LoadResult::default()
            };
            let mut n = c;
            let mut request = Vec::with_capacity(9000);
            let mut body = Vec::with_capacity(8192);
            let mut ticks = pace.map(|p| {
                let mut t = tokio::time::interval(p);
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                t
            });
            while Instant::now() < deadline {
                if let Some(t) = ticks.as_mut() {
                    t.tick().await;
                }
                let id = uuid::Uuid::new_v4().simple().to_string();
                let tpl = &tpls[n % tpls.len()][(n / tpls.len()) % VARIANTS];
                n += 1;
                body.clear();
                for (i, part) in tpl.iter().enumerate() {
                    if i > 0 {
                        body.extend_from_slice(id.as_bytes());
                    }
                    body.extend_from_slice(part);
                }
                if gzip {
                    use std::io::Write;
                    let mut e =
                        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                    e.write_all(&body).unwrap();
                    body = e.finish().unwrap();
                }
                request.clear();
                request.extend_from_slice(
                    format!(
                        "POST {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n\
                         content-type: application/x-sentry-envelope\r\n\
                         user-agent: sentry.python/2.75.0\r\nx-sentry-auth: {auth}\r\n{}\
                         content-length: {}\r\n\r\n",
                        if gzip {
                            "content-encoding: gzip\r\n"
                        } else {
                            ""
                        },
                        body.len()
                    )
                    .as_bytes(),
                );
                request.extend_from_slice(&body);
                let t = Instant::now();
                match conn.exchange(&request).await {
                    Ok(200) => {
                        out.ok += 1;
                        out.latencies_us.push(t.elapsed().as_micros() as u32);
                    }
                    Ok(429) => out.throttled += 1,
                    Ok(_) => out.errors += 1,
                    Err(_) => {
                        out.errors += 1;
                        conn = Conn::open(port).await;
                    }
                }
            }
            out
        }));
    }
    let mut all = LoadResult::default();
    for t in tasks {
        let r = t.await.unwrap();
        all.ok += r.ok;
        all.errors += r.errors;
        all.throttled += r.throttled;
        all.latencies_us.extend(r.latencies_us);
    }
    all
}
