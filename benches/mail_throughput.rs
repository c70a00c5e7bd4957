//! Outbox → SMTP throughput: messages per second from a filled outbox into a real local SMTP
//! server (aiosmtpd in sink mode, `tests/support/smtp_server.py --sink`) over pooled
//! connections.
//!
//! Run: `cargo bench --bench mail_throughput` (env: MAIL_BENCH_N messages, default 5000;
//! MAIL_BENCH_POOL, default 32; MAIL_BENCH_CONCURRENCY, default 32).

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    // `cargo test --all-targets` runs bench binaries too; only `cargo bench` passes --bench.
    if !std::env::args().any(|a| a == "--bench") {
        println!("mail_throughput: skipped (run it with `cargo bench --bench mail_throughput`)");
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let n = env_or("MAIL_BENCH_N", 5000);
    let pool = env_or("MAIL_BENCH_POOL", 32) as u32;
    let concurrency = env_or("MAIL_BENCH_CONCURRENCY", 32);

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let script =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_server.py");
    let mut smtp = tokio::process::Command::new("python3")
        .arg(script)
        .args(["--port", &port.to_string(), "--sink"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 with aiosmtpd (pip install aiosmtpd)");
    let mut lines = BufReader::new(smtp.stdout.take().unwrap()).lines();
    let ready = lines.next_line().await.unwrap().unwrap_or_default();
    assert!(ready.starts_with("READY"), "aiosmtpd: {ready:?}");

    let tmp = tempfile::tempdir().unwrap();
    let mut config = hearth::Config::default();
    config.storage.data_dir = tmp.path().to_path_buf();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.log.level = "warn".into();
    config.smtp.host = "127.0.0.1".into();
    config.smtp.port = port;
    config.smtp.tls = hearth::config::SmtpTls::None;
    config.smtp.pool_size = pool;
    config.smtp.from = "Hearth <bench@test.invalid>".into();
    config.mail.concurrency = concurrency;
    let app = hearth::build(config).expect("build");
    let state = app.state().clone();

    // Fill the outbox before the worker starts.
    let mut queued = 0;
    while queued < n {
        let batch: Vec<_> = (queued..(queued + 1000).min(n))
            .map(|i| {
                (
                    hearth::mail::model::NewMessage {
                        to: vec![format!("user{i}@test.invalid")],
                        subject: format!("Bench message {i}"),
                        text: "A short internal notification body.\n".repeat(10),
                        html: Some(format!("<p>Bench message <b>{i}</b></p>")),
                        ..Default::default()
                    },
                    None,
                )
            })
            .collect();
        queued += state.mail.enqueue_bulk(batch).await.expect("enqueue").len();
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let start = Instant::now();
    let server = tokio::spawn(app.serve(listener, async move {
        let _ = rx.await;
    }));
    loop {
        let st = state.mail.stats(1).await.unwrap();
        let sent: u64 = st.days.iter().map(|d| d.sent).sum();
        let failed: u64 = st.days.iter().map(|d| d.failed).sum();
        if sent + failed >= n as u64 {
            let secs = start.elapsed().as_secs_f64();
            println!(
                "mail_throughput: {n} messages ({sent} sent, {failed} failed) in {secs:.2}s = {:.0} msgs/s (pool_size {pool}, concurrency {concurrency})",
                n as f64 / secs
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = tx.send(());
    let _ = server.await;
    let _ = smtp.start_kill();
}
