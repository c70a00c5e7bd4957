//! Ingest load generator (a benchmark, not a test).
//!
//! Starts the `hearth` binary of this build (release when run through `cargo bench`) on a fresh
//! data directory, then POSTs a realistic ~7.5 KB python-SDK envelope to `/api/<id>/envelope/`
//! from C keep-alive connections for T seconds. Every request carries a fresh event_id; the
//! exception type gets one of K letter suffixes so the events spread over K issues, and each
//! issue's events differ as a real app's do (time, local variables, breadcrumbs; 32
//! bodies per issue, made before the run so the generator spends little CPU). Reports
//! accepted/s, p50/p99 latency, errors, how long until every accepted event was stored and
//! searchable, and the server's RSS (idle, peak under load, after).
//!
//! ```text
//! cargo bench --bench ingest_load -- --connections 32 --seconds 20 --groups 10 [--gzip]
//!     [--unique-messages]
//! ```
//!
//! Environment: `HEARTH_SHARED_DIR` (where `shared/` is, default `..`), `HEARTH_BENCH_DATA_DIR`
//! (keep the server's data there instead of a temporary directory), `HEARTH_BENCH_SERVER` (the
//! server binary to run instead of this build's).
//!
//! The envelope is `../shared/peers/bugsink/envelope.bin` (what sentry-python 2.75 sends for a
//! ValueError with 10 frames and locals; the same body the Bugsink comparison used) or, when that
//! is missing, `../shared/fixtures/sentry/py_zero_division.1.envelope` padded with breadcrumbs.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

struct Args {
    connections: usize,
    seconds: u64,
    groups: usize,
    gzip: bool,
    /// Every event's exception value carries its event id, so no two events share a search
    /// document (the worst case for the indexer, which indexes a repeated document once).
    unique_messages: bool,
}

fn args() -> Args {
    let mut a = Args {
        connections: 32,
        seconds: 20,
        groups: 10,
        gzip: false,
        unique_messages: false,
    };
    let argv: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < argv.len() {
        let next = || argv.get(i + 1).and_then(|v| v.parse::<u64>().ok());
        match argv[i].as_str() {
            "--connections" | "-c" => a.connections = next().unwrap_or(32) as usize,
            "--seconds" | "-t" => a.seconds = next().unwrap_or(20),
            "--groups" | "-k" => a.groups = next().unwrap_or(10).max(1) as usize,
            "--gzip" => a.gzip = true,
            "--unique-messages" => a.unique_messages = true,
            _ => {}
        }
        i += 1;
    }
    a
}

fn load_envelope() -> Vec<u8> {
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
const VARIANTS: usize = 32;

/// Per group and variant: the envelope split around its event-id placeholders.
fn templates(envelope: &[u8], groups: usize, unique: bool) -> Vec<Vec<Vec<Vec<u8>>>> {
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
fn cpu_secs(pid: u32) -> f64 {
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
fn machine_cpu() -> (f64, f64) {
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
fn written_bytes(pid: u32) -> u64 {
    proc_value(pid, "io", "write_bytes:")
}

fn rss_kb(pid: u32) -> u64 {
    status_kb(pid, "VmRSS:")
}

/// A `kB` line of /proc/<pid>/status (`VmRSS:`, `RssAnon:`, `RssFile:`).
fn status_kb(pid: u32, key: &str) -> u64 {
    proc_value(pid, "status", key)
}

/// The number after `key` on its line of /proc/<pid>/<file>, 0 when missing.
fn proc_value(pid: u32, file: &str, key: &str) -> u64 {
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
async fn metrics(http: &reqwest::Client, base: &str, token: &str) -> String {
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
fn metric_in(text: &str, name: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A value from the server's `/metrics`, 0 when it cannot be read.
async fn metric(http: &reqwest::Client, base: &str, token: &str, name: &str) -> u64 {
    metric_in(&metrics(http, base, token).await, name)
}

/// One keep-alive HTTP/1.1 connection speaking just enough of the protocol for the load: it
/// writes a whole prepared request and reads the status and body of the reply. A full client
/// (reqwest) cost the generator ~70 µs of CPU per request on the 2 cores it shares with the
/// server; this costs a fraction of that, so the figures measure the server more than the load.
struct Conn {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(port: u16) -> Conn {
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
    async fn exchange(&mut self, request: &[u8]) -> std::io::Result<u16> {
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

fn main() {
    // `cargo test --all-targets` runs benches as tests (without `--bench`): a load run does not
    // belong there, so only run when asked through `cargo bench` or with explicit flags.
    let argv: Vec<String> = std::env::args().collect();
    if !argv
        .iter()
        .any(|a| a == "--bench" || a == "--seconds" || a == "-t")
    {
        println!("ingest_load: skipped outside `cargo bench` (pass --seconds N to run it anyway)");
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let a = args();
    // One thread drives every connection: the generator should take as little of the two
    // cores from the server as it can.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(a));
}

async fn run(a: Args) {
    let envelope = load_envelope();
    let tpls = Arc::new(templates(&envelope, a.groups, a.unique_messages));
    let body_len: usize =
        tpls[0][0].iter().map(Vec::len).sum::<usize>() + 32 * (tpls[0][0].len() - 1);
    let tmp = tempfile::tempdir().unwrap();
    // HEARTH_BENCH_DATA_DIR keeps the server's data after the run, for inspecting the database.
    let dir = match std::env::var_os("HEARTH_BENCH_DATA_DIR") {
        Some(d) => std::path::PathBuf::from(d),
        None => tmp.path().to_path_buf(),
    };
    let mut config = hearth::Config::default();
    config.storage.data_dir = dir.clone();
    let (pid, key, token) = {
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
    // HEARTH_BENCH_SERVER runs another build of the server (e.g. one with frame pointers,
    // for profiling); the default is this build's binary.
    let exe = std::env::var("HEARTH_BENCH_SERVER")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_hearth").to_string());
    let mut child = std::process::Command::new(&exe)
        .args([
            "serve",
            "--data-dir",
            dir.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--log-level",
            "warn",
        ])
        .current_dir(&dir)
        .spawn()
        .unwrap();
    let server_pid = child.id();
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
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_idle = rss_kb(server_pid);
    eprintln!(
        "server {exe} pid {server_pid}; envelope {body_len} B{}; {} connections, {} s, {} groups; idle RSS {} MB",
        if a.gzip {
            " (gzip per request)"
        } else {
            " (uncompressed)"
        },
        a.connections,
        a.seconds,
        a.groups,
        rss_idle / 1024
    );

    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let peak_anon = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (stop, peak, peak_anon) = (stop.clone(), peak.clone(), peak_anon.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kb(server_pid), Ordering::Relaxed);
                peak_anon.fetch_max(status_kb(server_pid, "RssAnon:"), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let path = format!("/api/{pid}/envelope/");
    let auth =
        format!("Sentry sentry_key={key}, sentry_version=7, sentry_client=sentry.python/2.75.0");
    let cpu_before = cpu_secs(server_pid);
    let client_cpu_before = cpu_secs(std::process::id());
    let written_before = written_bytes(server_pid);
    let machine_before = machine_cpu();
    let start = Instant::now();
    let deadline = start + Duration::from_secs(a.seconds);
    let mut tasks = Vec::new();
    for c in 0..a.connections {
        let (tpls, path, auth) = (tpls.clone(), path.clone(), auth.clone());
        let gzip = a.gzip;
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(port).await;
            let mut lat = Vec::with_capacity(100_000);
            let (mut ok, mut errors, mut throttled) = (0u64, 0u64, 0u64);
            let mut n = c;
            let mut request = Vec::with_capacity(9000);
            let mut body = Vec::with_capacity(8192);
            while Instant::now() < deadline {
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
                        ok += 1;
                        lat.push(t.elapsed().as_micros() as u32);
                    }
                    Ok(429) => throttled += 1,
                    Ok(_) => errors += 1,
                    Err(_) => {
                        errors += 1;
                        conn = Conn::open(port).await;
                    }
                }
            }
            (ok, errors, throttled, lat)
        }));
    }
    let (mut ok, mut errors, mut throttled, mut lat) = (0, 0, 0, Vec::new());
    for t in tasks {
        let (o, e, th, l) = t.await.unwrap();
        ok += o;
        errors += e;
        throttled += th;
        lat.extend(l);
    }
    let load_secs = start.elapsed().as_secs_f64();
    let client_cpu = cpu_secs(std::process::id()) - client_cpu_before;
    let machine_after = machine_cpu();
    let stolen =
        (machine_after.1 - machine_before.1) / (machine_after.0 - machine_before.0).max(0.001);
    let stored_at_end = metric(&http, &base, &token, "hearth_issues_events_stored_total").await;
    // Searchable: the indexer acknowledged the event after the commit that holds its document
    // (or an identical one: repeated documents are indexed once).
    const SEARCHABLE: &str = "hearth_search_events_searchable_total";
    let docs_at_end = metric(&http, &base, &token, SEARCHABLE).await;
    // Wait until every accepted event is searchable.
    let searchable_secs = loop {
        let docs = metric(&http, &base, &token, SEARCHABLE).await;
        if docs >= ok {
            break start.elapsed().as_secs_f64();
        }
        if start.elapsed() > Duration::from_secs(a.seconds * 10 + 60) {
            eprintln!("gave up waiting: {docs} of {ok} searchable");
            break f64::NAN;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let cpu_used = cpu_secs(server_pid) - cpu_before;
    let written = written_bytes(server_pid).saturating_sub(written_before);
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = rss_kb(server_pid);
    let m = metrics(&http, &base, &token).await;
    let stored = metric_in(&m, "hearth_issues_events_stored_total");
    let batches = metric_in(&m, "hearth_ingest_batches_total");
    let batch_events = metric_in(&m, "hearth_ingest_batch_events_total");
    let apply_us = metric_in(&m, "hearth_ingest_writer_apply_microseconds_total");
    let commit_us = metric_in(&m, "hearth_ingest_writer_commit_microseconds_total");
    let checkpoints = metric_in(&m, "hearth_ingest_checkpoints_total");
    let checkpoint_us = metric_in(&m, "hearth_ingest_checkpoint_microseconds_total");
    let log_bytes = metric_in(&m, "hearth_ingest_log_bytes_total");
    let index_docs = metric_in(&m, "hearth_search_docs");
    lat.sort_unstable();
    let pct = |p: f64| {
        if lat.is_empty() {
            0.0
        } else {
            lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)] as f64 / 1000.0
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    let db_bytes = std::fs::metadata(dir.join("hearth.redb"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "== hearth ingest load: {} connections, {:.1} s, {} groups, {} B envelope{}{}",
        a.connections,
        load_secs,
        a.groups,
        body_len,
        if a.gzip { " gzip" } else { "" },
        if a.unique_messages {
            ", a unique message per event"
        } else {
            ""
        }
    );
    println!(
        "accepted (200)           {ok} ({:.0}/s)",
        ok as f64 / load_secs
    );
    println!("429 / errors             {throttled} / {errors}");
    println!(
        "latency p50 / p99 / max  {:.2} / {:.2} / {:.2} ms",
        pct(0.50),
        pct(0.99),
        pct(1.0)
    );
    println!(
        "stored during load       {stored_at_end} ({:.0}/s); searchable at end of load {docs_at_end}",
        stored_at_end as f64 / load_secs
    );
    println!(
        "stored+searchable        all {ok} after {searchable_secs:.2} s ({:.0}/s end to end)",
        ok as f64 / searchable_secs
    );
    println!("stored total             {stored}; search documents {index_docs}");
    println!(
        "write batches            {batches} ({:.1} events per commit)",
        batch_events as f64 / batches.max(1) as f64
    );
    println!(
        "writer per batch          apply {:.2} ms, commit {:.2} ms (busy {:.0}% of the run)",
        apply_us as f64 / 1000.0 / batches.max(1) as f64,
        commit_us as f64 / 1000.0 / batches.max(1) as f64,
        (apply_us + commit_us) as f64 / 1e4 / load_secs
    );
    println!(
        "synced checkpoints        {checkpoints} ({:.1} ms each); ingest log {} KB per batch",
        checkpoint_us as f64 / 1000.0 / checkpoints.max(1) as f64,
        log_bytes / 1000 / batches.max(1)
    );
    println!(
        "server RSS idle / peak / after   {} / {} / {} MB",
        rss_idle / 1024,
        peak.load(Ordering::Relaxed) / 1024,
        rss_after / 1024
    );
    println!(
        "peak RssAnon              {} MB (the rest of VmRSS is file pages: mmapped search segments)",
        peak_anon.load(Ordering::Relaxed) / 1024
    );
    println!("database size            {} MB", db_bytes / 1_000_000);
    println!(
        "server CPU                {cpu_used:.1} s for {ok} events ({:.0} events per CPU-second); load average {}",
        ok as f64 / cpu_used.max(0.001),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    println!(
        "server disk writes        {} MB ({} KB per event, {} KB per write batch)",
        written / 1_000_000,
        written / 1000 / ok.max(1),
        written / 1000 / batches.max(1)
    );
    println!(
        "load generator CPU        {client_cpu:.1} s ({:.2} cores; it shares the machine's cores with the server)",
        client_cpu / load_secs
    );
    println!(
        "CPU stolen by hypervisor  {:.1}% of the machine's CPU time during the load (other guests; \
         compare runs with similar steal)",
        stolen * 100.0
    );
}
