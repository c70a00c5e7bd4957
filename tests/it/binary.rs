//! The real `hearth` binary, started the way a user starts it: `hearth serve --config FILE`
//! with a config file in a data directory of its own, the owner created through the first-start
//! setup link the server logs, and everything else done over HTTP or the `hearth` CLI.
//!
//! User paths (an alert reaching a receiver, an SDK event becoming an issue, a chat message
//! crossing, a monitor going down) are tested through this harness, not through an in-process
//! app: the test process sets up nothing the binary does not (no crypto provider, no env, no
//! files beyond the config a user would write), so what passes here works when shipped.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{free_port, wait_for};
use crate::mail_support::{SmtpServer, header};
use crate::receiver::{Receiver, verify};

/// A running `hearth serve` process. Killed (SIGKILL) when dropped; [`Hearth::stop`] stops it
/// gracefully with SIGTERM.
pub struct Hearth {
    pub port: u16,
    pub base: String,
    pub dir: PathBuf,
    pub config_path: PathBuf,
    child: Option<Child>,
    /// Everything the server wrote to stderr and stdout, line by line.
    log: Arc<Mutex<Vec<String>>>,
    _tmp: Option<tempfile::TempDir>,
    pub http: reqwest::Client,
}

/// The first user, created through the setup link, with an API token.
pub struct Owner {
    pub email: String,
    pub password: String,
    pub token: String,
}

impl Hearth {
    /// Starts the binary in a fresh data directory with `extra_toml` appended to a config that
    /// sets only the data directory and the listen address.
    pub async fn start(extra_toml: &str) -> Hearth {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let mut h = Self::start_in(&dir, extra_toml, &[]).await;
        h._tmp = Some(tmp);
        h
    }

    /// Starts the binary on the data directory `dir` (kept by the caller), with `env` added to
    /// the process environment.
    pub async fn start_in(dir: &Path, extra_toml: &str, env: &[(&str, &str)]) -> Hearth {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let (mut cmd, config_path) = serve_command(dir, port, extra_toml, env);
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn hearth");
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        for stream in [
            Box::new(out) as Box<dyn std::io::Read + Send>,
            Box::new(err) as Box<dyn std::io::Read + Send>,
        ] {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if std::env::var_os("HEARTH_TEST_ECHO").is_some() {
                        eprintln!("[hearth] {line}");
                    }
                    log.lock().unwrap().push(line);
                }
            });
        }
        // The test's own HTTP client is built with reqwest's `rustls-no-provider`, so this test
        // process needs a provider; the server is another process and gets nothing from it.
        crate::common::install_crypto();
        // The server closes a kept-alive connection that stays idle for `[server]
        // idle_timeout` (some tests set it to seconds); a client that keeps idle connections
        // longer races that close and can send into a closing socket. Like a well-set proxy,
        // keep them shorter.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_idle_timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let mut h = Hearth {
            port,
            base,
            dir: dir.to_path_buf(),
            config_path,
            child: Some(child),
            log,
            _tmp: None,
            http,
        };
        h.wait_ready().await;
        h
    }

    /// Runs `hearth serve` on the data directory `dir` as [`Hearth::start_in`] would, for a
    /// start that must fail: waits (at most 60 s) for the process to exit and returns its
    /// output. Panics if it is still running then.
    pub async fn start_expecting_exit(dir: &Path, extra_toml: &str) -> std::process::Output {
        let (mut cmd, _) = serve_command(dir, free_port(), extra_toml, &[]);
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn hearth");
        let pid = child.id();
        let wait = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap());
        match tokio::time::timeout(Duration::from_secs(60), wait).await {
            Ok(out) => out.unwrap(),
            Err(_) => {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
                panic!("hearth serve was expected to exit, but it was still running after 60 s");
            }
        }
    }

    async fn wait_ready(&mut self) {
        let (http, url) = (self.http.clone(), self.url("/health/ready"));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = http.get(&url).send().await
                && r.status() == 200
            {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "hearth exited with {status} before it was ready; its log:\n{}",
                    self.log_text()
                );
            }
            if tokio::time::Instant::now() > deadline {
                panic!("hearth not ready after 60 s; its log:\n{}", self.log_text());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The server's log so far.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Waits until a log line contains `needle` and returns it.
    pub async fn wait_log(&self, needle: &str) -> String {
        wait_for(
            &format!("log line containing {needle:?}"),
            Duration::from_secs(30),
            || async {
                self.log
                    .lock()
                    .unwrap()
                    .iter()
                    .find(|l| l.contains(needle))
                    .cloned()
            },
        )
        .await
    }

    /// Creates the owner through the setup link the first start logged, signs in and creates
    /// an API token: what a new user does in the browser, over HTTP.
    pub async fn owner(&self) -> Owner {
        let line = self.wait_log("/setup?token=").await;
        let token = line
            .split("/setup?token=")
            .nth(1)
            .unwrap()
            .split(|c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_')
            .next()
            .unwrap()
            .to_string();
        let email = "owner@example.com".to_string();
        let password = "correct horse battery staple".to_string();
        let r = self
            .http
            .post(self.url("/api/auth/setup"))
            .json(&json!({"token": token, "email": email, "name": "Olive Owner", "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "setup: {}", r.text().await.unwrap());
        let cookie = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
            .next()
            .expect("setup sets a session cookie");
        let r = self
            .http
            .post(self.url("/api/tokens"))
            .header("cookie", cookie)
            .header("origin", &self.base)
            .json(&json!({"name": "tests"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "token: {}", r.text().await.unwrap());
        let v: Value = r.json().await.unwrap();
        Owner {
            email,
            password,
            token: v["secret"].as_str().unwrap().to_string(),
        }
    }

    /// Signs in with a password as the login page does; returns the session cookie
    /// (`hearth_session=…`), or the status and body of a refusal.
    pub async fn sign_in(&self, email: &str, password: &str) -> Result<String, (u16, String)> {
        let r = self
            .http
            .post(self.url("/api/auth/login"))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let cookie = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
            .next();
        match (status, cookie) {
            (200, Some(c)) => Ok(c),
            _ => Err((status, r.text().await.unwrap_or_default())),
        }
    }

    /// Runs `hearth --config <this server's config> ARGS` and returns (success, stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
            .arg("--config")
            .arg(&self.config_path)
            .args(args)
            .current_dir(&self.dir)
            .env_remove("HEARTH_CONFIG")
            .output()
            .expect("run hearth");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// An authenticated request builder with `token`.
    pub fn get(&self, token: &str, path: &str) -> reqwest::RequestBuilder {
        self.http.get(self.url(path)).bearer_auth(token)
    }
    pub fn post(&self, token: &str, path: &str) -> reqwest::RequestBuilder {
        self.http.post(self.url(path)).bearer_auth(token)
    }

    /// Creates a project through the API; returns (id, DSN).
    pub async fn project(&self, token: &str, name: &str) -> (u64, String) {
        let r = self
            .post(token, "/api/projects")
            .json(&json!({ "name": name }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "create project");
        let v: Value = r.json().await.unwrap();
        let id = v["project"]["id"].as_u64().expect("project id");
        let dsn = v["dsn"].as_str().expect("DSN").to_string();
        (id, dsn)
    }

    /// The process id, for signals.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.child.as_mut().unwrap().try_wait().unwrap().is_none()
    }

    /// SIGTERM, then waits for the process to exit; returns whether it exited successfully.
    pub async fn stop(mut self) -> bool {
        let mut child = self.child.take().unwrap();
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
            .await
            .unwrap();
        status.success()
    }
}

/// `hearth --config <dir>/config.toml serve`, with that config written: the listen address,
/// `public_url`, `<dir>/data` as the data directory, and `extra_toml`.
fn serve_command(
    dir: &Path,
    port: u16,
    extra_toml: &str,
    env: &[(&str, &str)],
) -> (Command, PathBuf) {
    let base = format!("http://127.0.0.1:{port}");
    let config_path = dir.join("config.toml");
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"{base}\"\n\n\
         [storage]\ndata_dir = \"{}\"\n\n[log]\nlevel = \"info\"\n\n{extra_toml}\n",
        dir.join("data").display()
    );
    std::fs::write(&config_path, config).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hearth"));
    cmd.arg("--config")
        .arg(&config_path)
        .arg("serve")
        // A config file in the working directory must not leak in.
        .current_dir(dir)
        .env_remove("HEARTH_CONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    (cmd, config_path)
}

impl Drop for Hearth {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Out of the box the shipped binary refuses an alert target on loopback, with an error that
/// names the setting that allows it (the SSRF guard; the first target a user tries, and the
/// one an attacker tries, is often 127.0.0.1 or the cloud metadata address).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_binary_refuses_a_loopback_alert_target_by_default() {
    let h = Hearth::start("").await;
    let owner = h.owner().await;
    for (kind, url) in [
        ("slack", format!("http://127.0.0.1:{}/x", free_port())),
        (
            "webhook",
            "http://169.254.169.254/latest/meta-data/".to_string(),
        ),
    ] {
        let r = h
            .post(&owner.token, "/api/alerts/channels")
            .json(&json!({"name": "s", "type": kind, "url": url}))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert_eq!(status, 422, "{kind} {url}: {v}");
        assert_eq!(v["error"]["code"], "target_not_allowed");
        let m = v["error"]["message"].as_str().unwrap();
        assert!(
            m.contains("not a public address")
                && m.contains("[alerts] allow_private_targets = true"),
            "{m}"
        );
    }
    assert!(
        !h.log_text().contains("panicked"),
        "the server panicked:\n{}",
        h.log_text()
    );
}

/// The alert path as a user runs it: the shipped binary with a config file naming a real SMTP
/// relay (aiosmtpd) and allowing the local receiver that stands in for Slack and a webhook
/// endpoint; channels and a rule made over the API with a token from the setup link; a new
/// issue raised by the official `sentry` SDK. Slack gets its payload, the webhook a body whose
/// Standard Webhooks signature verifies (checked here with hmac/base64 directly, not with
/// Hearth's code), and the email alert reaches the SMTP server. A channel whose receiver is
/// down answers the test endpoint with 503, not a panic. (Before the crypto provider was
/// installed in `main`, the Slack and webhook deliveries panicked and killed the delivery
/// worker, so the email stayed pending too.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_issue_alerts_slack_a_signed_webhook_and_email_from_the_shipped_binary() {
    let smtp_port = free_port();
    let Some(smtp) = SmtpServer::start(smtp_port, &[]).await else {
        return;
    };
    let rx = Receiver::start(&[]).await;
    let h = Hearth::start(&format!(
        "[smtp]\nhost = \"127.0.0.1\"\nport = {smtp_port}\ntls = \"none\"\n\
         from = \"Hearth <hearth@test.invalid>\"\n\n\
         [alerts]\nallow_private_targets = true\n"
    ))
    .await;
    let owner = h.owner().await;
    let (_, dsn) = h.project(&owner.token, "web").await;
    let channel = |body: Value| {
        let req = h.post(&owner.token, "/api/alerts/channels").json(&body);
        async move {
            let r = req.send().await.unwrap();
            let status = r.status();
            let v: Value = r.json().await.unwrap();
            assert_eq!(status, 201, "{v}");
            v
        }
    };
    let slack = channel(json!({"name": "slack", "type": "slack", "url": rx.url("/slack")})).await;
    let hook = channel(json!({"name": "hook", "type": "webhook", "url": rx.url("/hook")})).await;
    let email = channel(json!({"name": "ops", "type": "email", "to": ["ops@test.invalid"]})).await;
    let secret = hook["secret"].as_str().unwrap().to_string();
    let r = h
        .post(&owner.token, "/api/alerts/rules")
        .json(&json!({
            "name": "new issues",
            "when": {"type": "issue_created"},
            "channels": [slack["id"], hook["id"], email["id"]],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());

    let mut opts = sentry::ClientOptions::default();
    opts.dsn = Some(dsn.parse().unwrap());
    opts.environment = Some("production".into());
    let client = Arc::new(sentry::Client::from(sentry::apply_defaults(opts)));
    let hub = sentry::Hub::new(Some(client.clone()), Arc::new(sentry::Scope::default()));
    #[derive(Debug)]
    struct CheckoutError;
    impl std::fmt::Display for CheckoutError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("checkout total mismatch")
        }
    }
    impl std::error::Error for CheckoutError {}
    hub.capture_error(&CheckoutError);
    let flushed = tokio::task::spawn_blocking(move || client.flush(Some(Duration::from_secs(10))))
        .await
        .unwrap();
    assert!(flushed, "the SDK could not deliver its event");

    let slack_hit = rx.wait("/slack", 1).await.remove(0);
    let text = slack_hit.body["text"].as_str().unwrap();
    assert!(
        text.contains("New issue") && text.contains("checkout total mismatch"),
        "{}",
        slack_hit.body
    );
    assert!(slack_hit.body["attachments"][0]["blocks"].is_array());
    let hook_hit = rx.wait("/hook", 1).await.remove(0);
    assert!(verify(&secret, &hook_hit), "the webhook signature verifies");
    assert_eq!(hook_hit.body["type"], "alert.fired");
    assert!(
        hook_hit.body["data"]["title"]
            .as_str()
            .unwrap()
            .contains("checkout total mismatch"),
        "{}",
        hook_hit.body
    );
    let mail = wait_for(
        "the email alert at the SMTP server",
        Duration::from_secs(30),
        || async {
            smtp.messages().into_iter().find(|m| {
                m["rcpt_tos"] == json!(["ops@test.invalid"])
                    && header(m, "subject").is_some_and(|s| s.contains("checkout total mismatch"))
            })
        },
    )
    .await;
    assert!(
        mail["text"].as_str().unwrap().contains("New issue"),
        "{mail}"
    );

    // A channel whose receiver is down: the test endpoint says so, nothing panics.
    let down = channel(json!({
        "name": "down", "type": "slack",
        "url": format!("http://127.0.0.1:{}/x", free_port()),
    }))
    .await;
    let r = h
        .post(
            &owner.token,
            &format!("/api/alerts/channels/{}/test", down["id"]),
        )
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body = r.text().await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("not delivered"), "{body}");
    assert!(
        !h.log_text().contains("panicked"),
        "the server panicked:\n{}",
        h.log_text()
    );
    smtp.stop().await;
}
