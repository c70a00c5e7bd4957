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

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use support::{
    Load, Server, cpu_secs, ingest_load, load_envelope, machine_cpu, metric, metric_in, metrics,
    rss_kb, status_kb, templates, written_bytes,
};

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
    let mut server = Server::start(&[]).await;
    let (server_pid, port, exe) = (server.pid, server.port, server.exe.clone());
    let (base, token) = (server.base.clone(), server.token.clone());
    let http = reqwest::Client::new();
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
    let cpu_before = cpu_secs(server_pid);
    let client_cpu_before = cpu_secs(std::process::id());
    let written_before = written_bytes(server_pid);
    let machine_before = machine_cpu();
    let start = Instant::now();
    let deadline = start + Duration::from_secs(a.seconds);
    let mut result = ingest_load(Load {
        port,
        project_id: server.project_id,
        public_key: server.public_key.clone(),
        templates: tpls.clone(),
        connections: a.connections,
        gzip: a.gzip,
        rate: None,
        deadline,
    })
    .await;
    let (ok, errors, throttled) = (result.ok, result.errors, result.throttled);
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
    let (p50, p99, pmax) = (
        result.percentile_ms(0.50),
        result.percentile_ms(0.99),
        result.percentile_ms(1.0),
    );
    server.kill();
    let db_bytes = std::fs::metadata(server.db_path())
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
        p50, p99, pmax
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
