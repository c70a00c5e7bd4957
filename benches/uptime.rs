//! Uptime monitoring load (a benchmark, not a test).
//!
//! Starts the `hearth` binary of this build on a fresh data directory and a local HTTP target
//! in this process, creates M HTTP monitors (interval I seconds, a JSON body condition each),
//! waits one interval for the schedule to settle, then for T seconds measures:
//! - the server's CPU (user + system, as % of one core) and RSS (peak and end);
//! - checks recorded per second (`hearth_uptime_checks_total`);
//! - database growth: after the run the file is opened and the pages of the results and rollup
//!   tables are divided by their rows; the projection is 7 days of raw results at this rate
//!   plus the rollups kept (25 h of minute, 31 d of hour and 92 d of day buckets).
//!
//! Then detection latency (a monitor at 5 s, failure threshold 3, timeout 2 s, whose target
//! starts failing: time until it is DOWN, which is the transaction that publishes
//! `monitor.<slug>.down`; bound 3 × 5 + 2 + 2 s), and the status page of S monitors under
//! 100 requests/s for 35 s (p50 / p99 / max; the page is rebuilt from rollups every 30 s).
//!
//! ```text
//! cargo bench --bench uptime -- --monitors 1000 --interval 30 --seconds 120 --status-monitors 50
//!     [--ingest-rate 100]
//! ```
//!
//! The status page is measured while ingest runs: the ingest load loop of `ingest_load`
//! (`benches/support`) POSTs the Python SDK envelope at `--ingest-rate` events/s (default 100)
//! from 4 connections during those 35 s, and its accepted rate and p99 are printed too.
//!
//! `HEARTH_BENCH_SERVER` runs another server binary instead of this build's.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Load, Server, cpu_secs, ingest_load, load_envelope, rss_kb, templates};

struct Args {
    monitors: usize,
    interval: u64,
    seconds: u64,
    status_monitors: usize,
    ingest_rate: f64,
}

fn args() -> Args {
    let mut a = Args {
        monitors: 1000,
        interval: 30,
        seconds: 120,
        status_monitors: 50,
        ingest_rate: 100.0,
    };
    let argv: Vec<String> = std::env::args().collect();
    for (i, arg) in argv.iter().enumerate() {
        let next = || argv.get(i + 1).and_then(|v| v.parse::<u64>().ok());
        match arg.as_str() {
            "--monitors" => a.monitors = next().unwrap_or(1000) as usize,
            "--interval" => a.interval = next().unwrap_or(30).max(1),
            "--seconds" => a.seconds = next().unwrap_or(120),
            "--status-monitors" => a.status_monitors = next().unwrap_or(50) as usize,
            "--ingest-rate" => a.ingest_rate = next().unwrap_or(100) as f64,
            _ => {}
        }
    }
    a
}

fn rss_mb(pid: u32) -> f64 {
    rss_kb(pid) as f64 / 1024.0
}

async fn metric(http: &reqwest::Client, base: &str, token: &str, name: &str) -> f64 {
    support::metric(http, base, token, name).await as f64
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// (rows, bytes) of a table: stored, metadata and fragmented bytes of its pages.
fn table_size<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &redb::ReadTransaction,
    def: redb::TableDefinition<K, V>,
) -> (u64, u64) {
    use redb::ReadableTableMetadata;
    let t = txn.open_table(def).unwrap();
    let s = t.stats().unwrap();
    (
        t.len().unwrap(),
        s.stored_bytes() + s.metadata_bytes() + s.fragmented_bytes(),
    )
}

#[tokio::main]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("uptime: skipped (run it with `cargo bench --bench uptime`)");
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let a = args();

    // The target: /ok answers {"status":"ok"}; /flaky fails once told to.
    let failing = Arc::new(AtomicBool::new(false));
    let target = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target_base = format!("http://{}", target.local_addr().unwrap());
    let f = failing.clone();
    let app = axum::Router::new()
        .route(
            "/ok",
            axum::routing::get(|| async { axum::Json(json!({"status": "ok"})) }),
        )
        .route(
            "/flaky",
            axum::routing::get(move || {
                let f = f.clone();
                async move {
                    if f.load(Ordering::SeqCst) {
                        axum::http::StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        axum::http::StatusCode::OK
                    }
                }
            }),
        );
    tokio::spawn(async move { axum::serve(target, app).await.unwrap() });

    let mut server = Server::start(&[("HEARTH_UPTIME__STATUS_PAGE_RATE_LIMIT", "0")]).await;
    let (pid, base, token, exe) = (
        server.pid,
        server.base.clone(),
        server.token.clone(),
        server.exe.clone(),
    );
    let http = reqwest::Client::new();
    let rss_idle = rss_mb(pid);

    // Create the monitors, 16 requests at a time.
    let created = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(16));
    let mut handles = Vec::new();
    for i in 0..a.monitors {
        let permit = sem.clone().acquire_owned().await.unwrap();
        let (http, base, token, url) = (
            http.clone(),
            base.clone(),
            token.clone(),
            format!("{target_base}/ok?m={i}"),
        );
        let group = (i < a.status_monitors).then_some("bench");
        let interval = format!("{}s", a.interval);
        handles.push(tokio::spawn(async move {
            let r = http
                .post(format!("{base}/api/monitors"))
                .bearer_auth(&token)
                .json(
                    &json!({"name": format!("Service {i}"), "slug": format!("svc-{i}"),
                              "interval": interval, "group": group,
                              "check": {"kind": "http", "url": url},
                              "conditions": [{"condition": "[BODY].status == ok"}]}),
                )
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
            drop(permit);
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let r = http
        .put(format!("{base}/api/status-pages/bench"))
        .bearer_auth(&token)
        .json(&json!({"title": "Bench status"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    eprintln!(
        "server {exe} pid {pid}; {} monitors at {} s created in {:.1} s; idle RSS {rss_idle:.1} MB",
        a.monitors,
        a.interval,
        created.elapsed().as_secs_f64()
    );

    // Settle: every monitor scheduled and checked once.
    tokio::time::sleep(Duration::from_secs(a.interval + 5)).await;
    let checks_before = metric(&http, &base, &token, "hearth_uptime_checks_total").await;
    let failed_before = metric(&http, &base, &token, "hearth_uptime_checks_failed_total").await;
    let cpu_before = cpu_secs(pid);
    let started = Instant::now();
    let mut rss_peak = 0f64;
    while started.elapsed() < Duration::from_secs(a.seconds) {
        rss_peak = rss_peak.max(rss_mb(pid));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let window = started.elapsed().as_secs_f64();
    let cpu = cpu_secs(pid) - cpu_before;
    let checks = metric(&http, &base, &token, "hearth_uptime_checks_total").await - checks_before;
    let failed =
        metric(&http, &base, &token, "hearth_uptime_checks_failed_total").await - failed_before;
    let rss_end = rss_mb(pid);
    println!(
        "load: {} monitors every {} s for {window:.0} s: {:.1} checks/s ({:.1} expected), {failed} failed; server CPU {:.2}% of one core; RSS peak {rss_peak:.1} MB, end {rss_end:.1} MB (idle before monitors {rss_idle:.1} MB)",
        a.monitors,
        a.interval,
        checks / window,
        a.monitors as f64 / a.interval as f64,
        cpu / window * 100.0,
    );

    // Detection latency.
    let r = http
        .post(format!("{base}/api/monitors"))
        .bearer_auth(&token)
        .json(&json!({"name": "Flaky", "slug": "flaky", "interval": "5s", "failure_threshold": 3,
                      "check": {"kind": "http", "url": format!("{target_base}/flaky"), "timeout": 2000}}))
        .send()
        .await
        .unwrap();
    let flaky: Value = r.json().await.unwrap();
    let id = flaky["id"].as_u64().unwrap();
    let status = |http: reqwest::Client, base: String, token: String| async move {
        let v: Value = http
            .get(format!("{base}/api/monitors/{id}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["state"]["status"].as_str().unwrap_or("").to_string()
    };
    while status(http.clone(), base.clone(), token.clone()).await != "up" {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    failing.store(true, Ordering::SeqCst);
    let flipped = Instant::now();
    while status(http.clone(), base.clone(), token.clone()).await != "down" {
        assert!(
            flipped.elapsed() < Duration::from_secs(120),
            "never went down"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let detect = flipped.elapsed();
    println!(
        "detection: DOWN (and monitor.flaky.down published) {:.1} s after the target failed; bound 3 × 5 s + 2 s timeout + 2 s = 19 s",
        detect.as_secs_f64()
    );

    // Status page at 100 requests/s for 35 s, while ingest runs.
    let tpls = Arc::new(templates(&load_envelope(), 10, false));
    let ingest = tokio::spawn(ingest_load(Load {
        port: server.port,
        project_id: server.project_id,
        public_key: server.public_key.clone(),
        templates: tpls,
        connections: 4,
        gzip: false,
        rate: Some(a.ingest_rate),
        deadline: Instant::now() + Duration::from_secs(35),
    }));
    let page_url = format!("{base}/status/bench");
    let mut latencies = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut errors = 0;
    let pages = Instant::now();
    let mut inflight = tokio::task::JoinSet::new();
    while pages.elapsed() < Duration::from_secs(35) {
        tick.tick().await;
        let (http, url) = (http.clone(), page_url.clone());
        inflight.spawn(async move {
            let t = Instant::now();
            let r = http.get(&url).send().await.unwrap();
            let ok = r.status() == 200;
            let _ = r.bytes().await;
            (t.elapsed(), ok)
        });
        while let Some(Ok((d, ok))) = inflight.try_join_next() {
            latencies.push(d);
            errors += usize::from(!ok);
        }
    }
    while let Some(Ok((d, ok))) = inflight.join_next().await {
        latencies.push(d);
        errors += usize::from(!ok);
    }
    latencies.sort();
    let mut ingested = ingest.await.unwrap();
    let ingest_p99 = ingested.percentile_ms(0.99);
    println!(
        "ingest during the status page run: {} events accepted ({:.0}/s; asked {:.0}/s), p99 {:.2} ms, {} errors, {} throttled",
        ingested.ok,
        ingested.ok as f64 / 35.0,
        a.ingest_rate,
        ingest_p99,
        ingested.errors,
        ingested.throttled,
    );
    println!(
        "status page ({} monitors): {} requests at 100/s: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {errors} errors",
        a.status_monitors,
        latencies.len(),
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );

    // Stop the server and weigh the tables.
    server.stop();
    let file_mb = std::fs::metadata(server.db_path())
        .map(|m| m.len() as f64 / 1e6)
        .unwrap_or(0.0);
    let db = redb::Database::open(server.db_path()).unwrap();
    let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
    let (res_rows, res_bytes) = table_size(&txn, hearth::uptime::store::RESULTS);
    let (roll_rows, roll_bytes) = table_size(&txn, hearth::uptime::store::ROLLUPS);
    let per_result = res_bytes as f64 / res_rows.max(1) as f64;
    let per_rollup = roll_bytes as f64 / roll_rows.max(1) as f64;
    let per_day = a.monitors as f64 * 86_400.0 / a.interval as f64;
    let raw_7d = per_day * 7.0 * per_result;
    let rollups_kept = a.monitors as f64 * (25.0 * 60.0 + 31.0 * 24.0 + 92.0) * per_rollup;
    println!(
        "database: file {file_mb:.1} MB; results {res_rows} rows, {per_result:.0} B/row in pages; rollups {roll_rows} rows, {per_rollup:.0} B/row; projected steady state for {} monitors at {} s with 7 days raw: {:.2} GB raw + {:.2} GB rollups = {:.2} GB",
        a.monitors,
        a.interval,
        raw_7d / 1e9,
        rollups_kept / 1e9,
        (raw_7d + rollups_kept) / 1e9,
    );
}
