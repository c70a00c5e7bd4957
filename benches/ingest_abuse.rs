//! Hostile-ingest measurements (issue 12, items 2 and 3), against any `hearth` binary, so the
//! same program measures a build of main before the fix and this build after it.
//!
//! ```text
//! cargo bench --bench ingest_abuse -- --server /work/hearth-before
//! cargo bench --bench ingest_abuse -- --server target/release/hearth
//! ```
//!
//! It starts the binary as a user does (`hearth --config FILE serve`, the owner created through
//! the setup link it logs), creates a project and sends, one at a time:
//!
//! - memory: the issue's repro (an unauthenticated envelope whose gzip'd 95 KB header line is
//!   49 million numbers) and its variants (objects, strings, nesting; envelope header, item
//!   header, event, session item, capture API, store endpoint), reporting each request's peak
//!   RSS growth (`VmHWM` after, reset with `/proc/<pid>/clear_refs` before, minus `VmRSS`
//!   before); then four repro requests at once, reporting the slowest `/health/ready` reply
//!   while they run;
//! - disk: one request of 95 gzip'd attachments of 1 MB zeros, reporting the data
//!   directory's growth; then four at once, reporting the growth and the slowest reply to a
//!   small event sent every 50 ms meanwhile (the ingest stall).
//!
//! `--skip-memory` leaves out the memory part (main's binary takes several GB per request).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const MB: u64 = 1 << 20;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

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

fn status_bytes(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

struct Server {
    child: std::process::Child,
    base: String,
    data: std::path::PathBuf,
    log: Arc<Mutex<Vec<String>>>,
    _tmp: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start(exe: &str, http: &reqwest::Client) -> Server {
    let tmp = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let data = tmp.path().join("data");
    let config = tmp.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"{base}\"\n\n[storage]\ndata_dir = \"{}\"\n\n[log]\nlevel = \"info\"\n",
            data.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(exe)
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .current_dir(tmp.path())
        .env_remove("HEARTH_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {exe}: {e}"));
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                log.lock().unwrap().push(line);
            }
        });
    }
    let t0 = Instant::now();
    loop {
        if let Ok(r) = http.get(format!("{base}/health/ready")).send().await
            && r.status() == 200
        {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "server did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Server {
        child,
        base,
        data,
        log,
        _tmp: tmp,
    }
}

/// The owner through the setup link, an API token, and a project's DSN.
async fn setup(s: &Server, http: &reqwest::Client) -> (u64, String, String) {
    let t0 = Instant::now();
    let token = loop {
        let found = s
            .log
            .lock()
            .unwrap()
            .iter()
            .find_map(|l| l.split("/setup?token=").nth(1).map(str::to_string));
        if let Some(rest) = found {
            break rest
                .split(|c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_')
                .next()
                .unwrap()
                .to_string();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no setup link logged"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let r = http
        .post(format!("{}/api/auth/setup", s.base))
        .json(&json!({"token": token, "email": "bench@example.com", "name": "Bench", "password": "correct horse battery staple"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let v: Value = http
        .post(format!("{}/api/tokens", s.base))
        .header("cookie", cookie)
        .header("origin", &s.base)
        .json(&json!({"name": "bench"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let api = v["secret"].as_str().unwrap().to_string();
    let v: Value = http
        .post(format!("{}/api/projects", s.base))
        .bearer_auth(&api)
        .json(&json!({"name": "abuse"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pid = v["project"]["id"].as_u64().unwrap();
    let dsn = v["dsn"].as_str().unwrap().to_string();
    (pid, dsn, api)
}

struct Variant {
    name: &'static str,
    path: String,
    auth: bool,
    body: Vec<u8>,
}

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
            "envelope header: DSN, then an array",
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

async fn send(http: &reqwest::Client, s: &Server, key: &str, v: &Variant) -> u16 {
    let mut req = http
        .post(format!("{}{}", s.base, v.path))
        .header("content-encoding", "gzip")
        .body(v.body.clone());
    if v.auth {
        req = req.header("x-sentry-auth", format!("Sentry sentry_key={key}"));
    }
    match req.send().await {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

fn attachments(event_id: &str, n: usize) -> Vec<u8> {
    let mut body = format!(
        "{{\"event_id\":\"{event_id}\"}}\n{{\"type\":\"event\"}}\n{{\"event_id\":\"{event_id}\",\"message\":\"files\"}}\n"
    )
    .into_bytes();
    let zeros = vec![0u8; MB as usize];
    for i in 0..n {
        body.extend_from_slice(
            format!("{{\"type\":\"attachment\",\"length\":{MB},\"filename\":\"z{i}.bin\"}}\n")
                .as_bytes(),
        );
        body.extend_from_slice(&zeros);
        body.push(b'\n');
    }
    gzip(&body)
}

/// The slowest reply to `probe` (asked every `every`) while `work` runs.
async fn slowest_while<F: std::future::Future>(
    work: F,
    every: Duration,
    probe: impl Fn() -> reqwest::RequestBuilder,
) -> (F::Output, Duration, usize) {
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let done = done.clone();
        async move {
            let (mut worst, mut n) = (Duration::ZERO, 0);
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let t = Instant::now();
                let _ = probe().send().await;
                worst = worst.max(t.elapsed());
                n += 1;
                tokio::time::sleep(every).await;
            }
            (worst, n)
        }
    };
    let work = async {
        let out = work.await;
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        out
    };
    let (out, (worst, n)) = tokio::join!(work, watcher);
    (out, worst, n)
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let Some(exe) = argv
        .iter()
        .position(|a| a == "--server")
        .and_then(|i| argv.get(i + 1))
        .cloned()
    else {
        println!("ingest_abuse: pass --server PATH (the hearth binary to measure)");
        return;
    };
    let skip_memory = argv.iter().any(|a| a == "--skip-memory");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(exe, skip_memory));
}

async fn run(exe: String, skip_memory: bool) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap();
    println!("server: {exe}");
    if !skip_memory {
        let s = start(&exe, &http).await;
        let (pid, dsn, _) = setup(&s, &http).await;
        let key = url::Url::parse(&dsn).unwrap().username().to_string();
        let server = s.child.id();
        let warm = http
            .post(format!("{}/api/{pid}/store/", s.base))
            .header("x-sentry-auth", format!("Sentry sentry_key={key}"))
            .body("{\"message\":\"warm\"}")
            .send()
            .await
            .unwrap();
        assert_eq!(warm.status(), 200);
        println!("\n== memory: one request at a time (peak RSS growth) ==");
        let all = variants(pid, &dsn);
        for v in &all {
            let _ = std::fs::write(format!("/proc/{server}/clear_refs"), "5");
            let before = status_bytes(server, "VmRSS:");
            let t = Instant::now();
            let status = send(&http, &s, &key, v).await;
            let peak = status_bytes(server, "VmHWM:");
            println!(
                "{:<40} {:>4} KB gzip -> {status:>3} in {:>6.2} s, RSS peak +{:>5} MB",
                v.name,
                v.body.len() / 1024,
                t.elapsed().as_secs_f64(),
                peak.saturating_sub(before) / MB
            );
            // Let a server that kept the memory give it back before the next one.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        println!("\n== memory: four repro requests at once ==");
        let _ = std::fs::write(format!("/proc/{server}/clear_refs"), "5");
        let before = status_bytes(server, "VmRSS:");
        let repro = &all[0];
        let four = futures_util::future::join_all((0..4).map(|_| send(&http, &s, &key, repro)));
        let (statuses, worst, n) = slowest_while(four, Duration::from_millis(20), || {
            http.get(format!("{}/health/ready", s.base))
        })
        .await;
        println!(
            "statuses {statuses:?}; RSS peak +{} MB; /health/ready asked {n} times, slowest {:.1} ms",
            status_bytes(server, "VmHWM:").saturating_sub(before) / MB,
            worst.as_secs_f64() * 1000.0
        );
    }

    println!("\n== disk: 95 attachments of 1 MB zeros per request ==");
    let s = start(&exe, &http).await;
    let (pid, dsn, _) = setup(&s, &http).await;
    let key = url::Url::parse(&dsn).unwrap().username().to_string();
    let post = |body: Vec<u8>| {
        http.post(format!("{}/api/{pid}/envelope/", s.base))
            .header("x-sentry-auth", format!("Sentry sentry_key={key}"))
            .header("content-encoding", "gzip")
            .body(body)
            .send()
    };
    let one = attachments(&uuid::Uuid::new_v4().simple().to_string(), 95);
    let before = dir_bytes(&s.data);
    let t = Instant::now();
    let r = post(one.clone()).await.unwrap();
    let took = t.elapsed();
    let limits = r
        .headers()
        .get("x-sentry-rate-limits")
        .map(|v| v.to_str().unwrap_or("").to_string());
    println!(
        "one request ({} KB): {} in {:.2} s, rate limits {limits:?}; data directory +{} KB",
        one.len() / 1024,
        r.status(),
        took.as_secs_f64(),
        dir_bytes(&s.data).saturating_sub(before) / 1024
    );
    let before = dir_bytes(&s.data);
    let bodies: Vec<Vec<u8>> = (0..4)
        .map(|_| attachments(&uuid::Uuid::new_v4().simple().to_string(), 95))
        .collect();
    let four = futures_util::future::join_all(
        bodies
            .into_iter()
            .map(|b| async { post(b).await.map(|r| r.status().as_u16()).unwrap_or(0) }),
    );
    let small = |n: u32| {
        http.post(format!("{}/api/{pid}/store/", s.base))
            .header("x-sentry-auth", format!("Sentry sentry_key={key}"))
            .body(format!("{{\"message\":\"probe {n}\"}}"))
    };
    let t = Instant::now();
    let (statuses, worst, n) = slowest_while(four, Duration::from_millis(50), || small(0)).await;
    println!(
        "four at once: {statuses:?} in {:.2} s; data directory +{} KB; a small event every 50 ms ({n}): slowest {:.0} ms",
        t.elapsed().as_secs_f64(),
        dir_bytes(&s.data).saturating_sub(before) / 1024,
        worst.as_secs_f64() * 1000.0
    );
}
