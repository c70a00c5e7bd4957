//! Ingest of symbolicated browser events (issue 20; a benchmark, not a test).
//!
//! Starts the `hearth` binary of this build on a fresh data directory, uploads 10 artifact
//! bundles through the sentry-cli API (chunk upload + assemble), each a minified script with a
//! ~1 MB source map (sources content included) under its own debug id, then POSTs browser
//! events (5 frames each, `debug_meta` naming one of the 10 bundles, spread evenly) to
//! `/api/<id>/store/` from C keep-alive connections for T seconds: once into the project with
//! the maps (every frame mapped) and once, the same events, into a project without them
//! (every frame left minified, with the `js_no_source` note). Reports accepted events/s and
//! p50/p99 latency for both, and the map sizes.
//!
//! ```text
//! cargo bench --bench sourcemaps -- --connections 16 --seconds 10
//! ```

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BUNDLES: usize = 10;
const FUNCTIONS: usize = 6000;

fn arg(name: &str, default: u64) -> u64 {
    let argv: Vec<String> = std::env::args().collect();
    argv.iter()
        .position(|a| a == name)
        .and_then(|i| argv.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A minified one-line script of `FUNCTIONS` functions and its map; returns (script, map,
/// column of each function's `throw`).
fn make_bundle(seed: usize) -> (String, Vec<u8>, Vec<u32>) {
    let mut src = String::new();
    let mut min = String::new();
    let mut b = sourcemap::SourceMapBuilder::new(Some("app.js"));
    let file = b.add_source(&format!("src/module{seed}.js"));
    let mut throws = Vec::with_capacity(FUNCTIONS);
    for i in 0..FUNCTIONS {
        let line = (i * 5) as u32;
        let name = format!("handleCheckoutStep{i}");
        src.push_str(&format!(
            "// step {i} of the checkout flow, bundle {seed}\nfunction {name}(cart) {{\n  const total = cart.items.reduce((a, x) => a + x.price, 0);\n  throw new Error(\"checkout step {i} failed: \" + total);\n}}\n"
        ));
        let short = format!("f{i:x}");
        let start = min.len() as u32;
        min.push_str(&format!("function {short}(c){{"));
        let throw_col = min.len() as u32;
        min.push_str(&format!(
            "throw new Error(\"checkout step {i} failed: \"+c)}}"
        ));
        let n = b.add_name(&name);
        b.add_raw(0, start, line + 1, 0, Some(file), None, false);
        b.add_raw(0, start + 9, line + 1, 9, Some(file), Some(n), false);
        b.add_raw(0, throw_col, line + 3, 2, Some(file), None, false);
        throws.push(throw_col);
    }
    b.set_source_contents(file, Some(&src));
    let mut map = Vec::new();
    b.into_sourcemap().to_writer(&mut map).unwrap();
    (min, map, throws)
}

fn debug_id(i: usize) -> String {
    format!("5d0c5b0e-7f7a-4a4e-9d5c-{i:012x}")
}

fn bundle_zip(i: usize, script: &str, map: &[u8]) -> Vec<u8> {
    let id = debug_id(i);
    let manifest = json!({"files": {
        format!("_/_/app{i}.js"): {"type": "minified_source", "url": format!("~/app{i}.js"),
            "headers": {"debug-id": id, "Sourcemap": format!("app{i}.js.map")}},
        format!("_/_/app{i}.js.map"): {"type": "source_map", "url": format!("~/app{i}.js.map"),
            "headers": {"debug-id": id}},
    }});
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default();
    for (name, data) in [
        (
            "manifest.json".to_string(),
            serde_json::to_vec(&manifest).unwrap(),
        ),
        (format!("_/_/app{i}.js"), script.as_bytes().to_vec()),
        (format!("_/_/app{i}.js.map"), map.to_vec()),
    ] {
        w.start_file(name, opts).unwrap();
        w.write_all(&data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

struct Server {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start() -> (Server, String, reqwest::Client) {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\ndata_dir = {:?}\n[server]\nlisten = \"127.0.0.1:{port}\"\n[ingest]\nrate_limit_per_minute = 0\n[log]\nlevel = \"warn,hearth=info\"\n",
            dir.path().join("data")
        ),
    )
    .unwrap();
    let log = dir.path().join("server.log");
    let child = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("start hearth");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    // The setup link from the first start's log.
    let deadline = Instant::now() + Duration::from_secs(30);
    let token = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(t) = text.split("/setup?token=").nth(1) {
            break t
                .split(|c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_')
                .next()
                .unwrap()
                .to_string();
        }
        assert!(Instant::now() < deadline, "hearth did not start: {text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let r = http
        .post(format!("{base}/api/auth/setup"))
        .json(&json!({"token": token, "email": "bench@example.com", "name": "Bench", "password": "correct horse battery staple"}))
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
    let v: Value = http
        .post(format!("{base}/api/tokens"))
        .header("cookie", cookie)
        .header("origin", &base)
        .json(&json!({"name": "bench"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let api_token = v["secret"].as_str().unwrap().to_string();
    (
        Server {
            child,
            base,
            _dir: dir,
        },
        api_token,
        http,
    )
}

async fn project(s: &Server, http: &reqwest::Client, token: &str, name: &str) -> (u64, String) {
    let v: Value = http
        .post(format!("{}/api/projects", s.base))
        .bearer_auth(token)
        .json(&json!({ "name": name }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        v["project"]["id"].as_u64().unwrap(),
        v["key"]["public_key"].as_str().unwrap().to_string(),
    )
}

async fn upload(s: &Server, http: &reqwest::Client, token: &str, project: u64, zip: &[u8]) {
    use sha1::Digest;
    let opts: Value = http
        .get(format!("{}/api/0/organizations/o/chunk-upload/", s.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let size = opts["chunkSize"].as_u64().unwrap() as usize;
    let sum = hex::encode(sha1::Sha1::digest(zip));
    let mut names = Vec::new();
    for chunk in zip.chunks(size) {
        let name = hex::encode(sha1::Sha1::digest(chunk));
        let mut body = Vec::new();
        write!(
            body,
            "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\r\n"
        )
        .unwrap();
        body.extend_from_slice(chunk);
        body.extend_from_slice(b"\r\n--b--\r\n");
        let r = http
            .post(format!("{}/api/0/organizations/o/chunk-upload/", s.base))
            .bearer_auth(token)
            .header("content-type", "multipart/form-data; boundary=b")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        names.push(name);
    }
    let v: Value = http
        .post(format!(
            "{}/api/0/organizations/o/artifactbundle/assemble/",
            s.base
        ))
        .bearer_auth(token)
        .json(&json!({"checksum": sum, "chunks": names, "projects": [project.to_string()]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["state"], "ok", "{v}");
}

fn event(n: usize, throws: &[Vec<u32>]) -> Vec<u8> {
    let b = n % BUNDLES;
    let url = format!("https://shop.example/static/app{b}.js");
    let frames: Vec<Value> = (0..5)
        .map(|k| {
            let f = (n * 7 + k * 131) % FUNCTIONS;
            json!({"filename": url, "function": format!("f{f:x}"), "lineno": 1,
                   "colno": throws[b][f] + 1, "in_app": true})
        })
        .collect();
    serde_json::to_vec(&json!({
        "platform": "javascript",
        "release": "shop@1",
        "exception": {"values": [{"type": "Error", "value": format!("checkout failed {}", n % 50),
            "stacktrace": {"frames": frames}}]},
        "debug_meta": {"images": [{"type": "sourcemap", "code_file": url, "debug_id": debug_id(b)}]},
        "sdk": {"name": "sentry.javascript.browser", "version": "11.12.0"},
    }))
    .unwrap()
}

async fn run(
    s: &Server,
    http: &reqwest::Client,
    pid: u64,
    key: &str,
    bodies: Arc<Vec<Vec<u8>>>,
    conns: usize,
    secs: u64,
) -> (f64, Duration, Duration, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let url = format!("{}/api/{pid}/store/", s.base);
    let auth = format!("Sentry sentry_version=7, sentry_key={key}");
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..conns {
        let (stop, http, url, auth, bodies) = (
            stop.clone(),
            http.clone(),
            url.clone(),
            auth.clone(),
            bodies.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut i = c;
            while !stop.load(Ordering::Relaxed) {
                let body = bodies[i % bodies.len()].clone();
                i += conns;
                let t = Instant::now();
                match http
                    .post(&url)
                    .header("x-sentry-auth", &auth)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 200 => lat.push(t.elapsed()),
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        all.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    (all.len() as f64 / elapsed, pct(0.50), pct(0.99), errors)
}

#[tokio::main]
async fn main() {
    // reqwest is built without a crypto provider (the binary installs ring first thing).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let conns = arg("--connections", 16) as usize;
    // Without `--bench` (under `cargo test --all-targets`) a short smoke run.
    let full = std::env::args().any(|a| a == "--bench" || a == "--seconds");
    let secs = arg("--seconds", if full { 10 } else { 1 });
    let built: Vec<(String, Vec<u8>, Vec<u32>)> = (0..BUNDLES).map(make_bundle).collect();
    let map_size = built[0].1.len();
    let (s, token, http) = start().await;
    let (with_maps, key_a) = project(&s, &http, &token, "with-maps").await;
    let (without, key_b) = project(&s, &http, &token, "without-maps").await;
    let t = Instant::now();
    for (i, (script, map, _)) in built.iter().enumerate() {
        upload(&s, &http, &token, with_maps, &bundle_zip(i, script, map)).await;
    }
    let upload_time = t.elapsed();
    let throws: Vec<Vec<u32>> = built.into_iter().map(|b| b.2).collect();
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new((0..500).map(|n| event(n, &throws)).collect());
    println!(
        "{BUNDLES} bundles, source map {:.2} MB each (script + map zipped and uploaded in {:.1} s); events {} bytes, 5 frames; {conns} connections, {secs} s per run",
        map_size as f64 / 1e6,
        upload_time.as_secs_f64(),
        bodies[0].len()
    );
    // Warm both paths once so the first map parses are not in the measured run... they are
    // reported separately: the first pass over the 10 maps is the cold cost.
    let t = Instant::now();
    for n in 0..BUNDLES {
        let r = http
            .post(format!("{}/api/{with_maps}/store/", s.base))
            .header("x-sentry-auth", format!("Sentry sentry_key={key_a}"))
            .body(bodies[n].clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    println!(
        "cold: first event of each bundle (parses its map) {:.1} ms on average",
        t.elapsed().as_secs_f64() * 1000.0 / BUNDLES as f64
    );
    for (label, pid, key) in [
        ("without maps", without, &key_b),
        ("with maps", with_maps, &key_a),
        ("without maps", without, &key_b),
        ("with maps", with_maps, &key_a),
    ] {
        let (rate, p50, p99, errors) = run(&s, &http, pid, key, bodies.clone(), conns, secs).await;
        println!(
            "{label:>13}: {rate:8.0} events/s  p50 {:6.2} ms  p99 {:6.2} ms  errors {errors}",
            p50.as_secs_f64() * 1000.0,
            p99.as_secs_f64() * 1000.0
        );
    }
    // Proof the mapped run mapped: the metrics count mapped frames.
    let metrics = http
        .get(format!("{}/metrics", s.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for l in metrics
        .lines()
        .filter(|l| l.starts_with("hearth_sourcemaps_"))
    {
        println!("{l}");
    }
}
