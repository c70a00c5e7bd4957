//! A real SMTP server for the mail and alerts tests: aiosmtpd (Python), run from
//! `tests/support/smtp_server.py`, saving each message parsed as JSON.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::common::test_config;

pub struct SmtpServer {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
}

pub use crate::common::free_port;

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_server.py")
}

impl SmtpServer {
    /// Starts aiosmtpd on `port`; `None` (after `skip`) when Python or aiosmtpd is missing.
    pub async fn start(port: u16, reject: &[&str]) -> Option<SmtpServer> {
        Self::start_with(port, reject, false).await
    }

    pub async fn start_with(port: u16, reject: &[&str], sink: bool) -> Option<SmtpServer> {
        let probe = Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .output()
            .await;
        if !probe.map(|o| o.status.success()).unwrap_or(false) {
            crate::common::skip("python3 with aiosmtpd is not installed (pip install aiosmtpd)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("python3");
        cmd.arg(script())
            .arg("--port")
            .arg(port.to_string())
            .arg("--dir")
            .arg(dir.path());
        for r in reject {
            cmd.arg("--reject").arg(r);
        }
        if sink {
            cmd.arg("--sink");
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn python3");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("aiosmtpd did not start within 20s")
            .unwrap()
            .unwrap_or_default();
        assert!(ready.starts_with("READY"), "aiosmtpd said {ready:?}");
        Some(SmtpServer { port, dir, child })
    }

    /// Every message received so far, in arrival order.
    pub fn messages(&self) -> Vec<Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
            .collect()
    }

    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// One header's value from a saved message.
pub fn header(msg: &Value, name: &str) -> Option<String> {
    msg["headers"].as_array()?.iter().find_map(|h| {
        (h[0].as_str()?.eq_ignore_ascii_case(name)).then(|| h[1].as_str().unwrap().to_string())
    })
}

/// A test config whose relay is `127.0.0.1:port` without TLS, with quick retries.
pub fn mail_config(data_dir: &std::path::Path, port: u16) -> hearth::Config {
    let mut c = test_config(data_dir);
    c.smtp.host = "127.0.0.1".into();
    c.smtp.port = port;
    c.smtp.tls = hearth::config::SmtpTls::None;
    c.smtp.from = "Hearth <hearth@test.invalid>".into();
    c.smtp.timeout = hearth::config::HumanDuration::secs(5);
    c.mail.retry_base = hearth::config::HumanDuration::millis(100);
    c
}
