//! The operator CLI, run as the real binary against a stopped data directory (in-process) and
//! against a running server (admin socket).

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

use crate::common::{TestServer, test_config};

struct Out {
    ok: bool,
    json: Value,
    stderr: String,
}

/// Runs `hearth -c <empty config> --data-dir <dir> args...`.
async fn hearth(dir: &Path, args: &[&str]) -> Out {
    std::fs::create_dir_all(dir).unwrap();
    let cfg = dir.join("cli-test-config.toml");
    if !cfg.exists() {
        std::fs::write(&cfg, "").unwrap();
    }
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("-c")
        .arg(&cfg)
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("HEARTH_CONFIG")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let json = if out.status.success() {
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
    } else {
        Value::Null
    };
    Out {
        ok: out.status.success(),
        json,
        stderr,
    }
}

fn ok(o: Out, what: &str) -> Value {
    assert!(o.ok, "{what} failed: {}", o.stderr);
    o.json
}

/// Opens a backup file as the database of a fresh app and returns (project names, user emails).
async fn backup_contents(file: &Path) -> (Vec<String>, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(file, dir.path().join("hearth.redb")).unwrap();
    let app = hearth::build(test_config(dir.path())).unwrap();
    let projects = app.state().accounts.list_projects().await.unwrap();
    let users = app.state().accounts.list_users().await.unwrap();
    (
        projects.into_iter().map(|p| p.name).collect(),
        users.into_iter().map(|u| u.email).collect(),
    )
}

#[tokio::test]
async fn commands_work_on_a_stopped_data_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");

    let p = ok(
        hearth(&data, &["project", "add", "web"]).await,
        "project add",
    );
    assert_eq!(p["project"]["name"], "web");
    let dsn = p["dsn"].as_str().unwrap();
    assert!(dsn.contains('@') && dsn.ends_with("/1"), "{dsn}");

    let pw = tmp.path().join("pw");
    std::fs::write(&pw, "a long enough password\n").unwrap();
    let u = ok(
        hearth(
            &data,
            &[
                "user",
                "add",
                "--email",
                "ops@test.invalid",
                "--role",
                "owner",
                "--name",
                "Ops",
                "--password-file",
                pw.to_str().unwrap(),
            ],
        )
        .await,
        "user add with password",
    );
    assert_eq!(u["user"]["has_password"], true);
    assert!(u.get("set_password_url").is_none());
    let u = ok(
        hearth(
            &data,
            &[
                "user",
                "add",
                "--email",
                "dev@test.invalid",
                "--role",
                "agent",
            ],
        )
        .await,
        "user add",
    );
    let link = u["set_password_url"].as_str().unwrap();
    assert!(link.contains("/setup?token="), "{link}");

    let bad = hearth(
        &data,
        &["user", "add", "--email", "x@test.invalid", "--role", "boss"],
    )
    .await;
    assert!(
        !bad.ok && bad.stderr.contains("unknown role"),
        "{}",
        bad.stderr
    );
    let dup = hearth(
        &data,
        &[
            "user",
            "add",
            "--email",
            "OPS@test.invalid",
            "--role",
            "viewer",
        ],
    )
    .await;
    assert!(!dup.ok && dup.stderr.contains("exists"), "{}", dup.stderr);

    let l = ok(hearth(&data, &["dlq", "list"]).await, "dlq list");
    assert_eq!(l["dead_letters"], json!([]));
    let l = ok(
        hearth(&data, &["dlq", "list", "--consumer", "search.indexer"]).await,
        "dlq list --consumer",
    );
    assert_eq!(l["dead_letters"], json!([]));
    let missing = hearth(&data, &["dlq", "show", "search.indexer", "7"]).await;
    assert!(
        !missing.ok && missing.stderr.contains("no dead letter"),
        "{}",
        missing.stderr
    );
    let vague = hearth(&data, &["dlq", "replay", "search.indexer"]).await;
    assert!(
        !vague.ok && vague.stderr.contains("--all"),
        "{}",
        vague.stderr
    );
    let r = ok(
        hearth(&data, &["dlq", "replay", "search.indexer", "--all"]).await,
        "dlq replay --all",
    );
    assert_eq!(r["replayed"], 0);
    let vague = hearth(&data, &["dlq", "purge"]).await;
    assert!(
        !vague.ok && vague.stderr.contains("--all"),
        "{}",
        vague.stderr
    );
    let r = ok(
        hearth(&data, &["dlq", "purge", "--all"]).await,
        "dlq purge --all",
    );
    assert_eq!(r["purged"], 0);

    let backup = tmp.path().join("backup.redb");
    let b = ok(
        hearth(&data, &["backup", backup.to_str().unwrap()]).await,
        "backup",
    );
    assert!(b["bytes"].as_u64().unwrap() > 0);
    let again = hearth(&data, &["backup", backup.to_str().unwrap()]).await;
    assert!(
        !again.ok && again.stderr.contains("exists"),
        "{}",
        again.stderr
    );
    let (projects, users) = backup_contents(&backup).await;
    assert_eq!(projects, vec!["web"]);
    assert!(users.contains(&"ops@test.invalid".to_string()), "{users:?}");

    // What the CLI wrote is what a server then sees.
    let s = TestServer::start_with(test_config(&data)).await;
    let r = s
        .http
        .post(s.url("/api/auth/login"))
        .json(&json!({ "email": "ops@test.invalid", "password": "a long enough password" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    s.stop().await;
}

#[tokio::test]
async fn commands_reach_a_running_server_over_its_socket() {
    let s = TestServer::start().await;
    let dir = s.data_dir.clone();

    let p = ok(
        hearth(&dir, &["project", "add", "api"]).await,
        "project add",
    );
    let id = p["project"]["id"].as_u64().unwrap();
    let seen = s.state.accounts.project(id).await.unwrap();
    assert_eq!(seen.map(|p| p.name).as_deref(), Some("api"));

    ok(
        hearth(
            &dir,
            &[
                "user",
                "add",
                "--email",
                "live@test.invalid",
                "--role",
                "admin",
            ],
        )
        .await,
        "user add",
    );
    let users = s.state.accounts.list_users().await.unwrap();
    assert!(users.iter().any(|u| u.email == "live@test.invalid"));

    let l = ok(hearth(&dir, &["dlq", "list"]).await, "dlq list");
    assert!(l["dead_letters"].is_array());
    let missing = hearth(&dir, &["dlq", "show", "nobody", "1"]).await;
    assert!(
        !missing.ok && missing.stderr.contains("no dead letter"),
        "{}",
        missing.stderr
    );

    // A consistent copy while the server keeps serving (and writing).
    let tmp = tempfile::tempdir().unwrap();
    let backup = tmp.path().join("live.redb");
    let writer = {
        let s = s.state.clone();
        tokio::spawn(async move {
            for i in 0..20 {
                s.accounts
                    .create_project(&format!("busy-{i}"))
                    .await
                    .unwrap();
            }
        })
    };
    ok(
        hearth(&dir, &["backup", backup.to_str().unwrap()]).await,
        "backup",
    );
    writer.await.unwrap();
    let (projects, users) = backup_contents(&backup).await;
    assert!(projects.contains(&"api".to_string()), "{projects:?}");
    assert!(users.contains(&"live@test.invalid".to_string()));
    assert_eq!(
        s.http
            .get(s.url("/health/ready"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    s.stop().await;
}

/// Starts `hearth serve` on a free port with JSON logs; returns the child, its address and the
/// setup token from the link it logged at WARN.
async fn serve_with_setup_link(data: &Path, cfg: &Path) -> (tokio::process::Child, String, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("-c")
        .arg(cfg)
        .args([
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "serve",
        ])
        .env("HEARTH_LOG__FORMAT", "json")
        .env("HEARTH_LOG__LEVEL", "info")
        .env_remove("HEARTH_CONFIG")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut addr, mut token) = (None::<String>, None::<String>);
    let read = async {
        while addr.is_none() || token.is_none() {
            let Some(line) = lines.next_line().await.unwrap() else {
                panic!("hearth serve exited early");
            };
            let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
            if let Some(a) = v["fields"]["addr"].as_str() {
                addr = Some(a.to_string());
            }
            let msg = v["fields"]["message"].as_str().unwrap_or_default();
            if let Some((_, t)) = msg.split_once("/setup?token=") {
                assert_eq!(v["level"], "WARN", "{line}");
                token = Some(t.split_whitespace().next().unwrap().to_string());
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("hearth serve printed its address and a setup link");
    // Keep reading so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr.unwrap(), token.unwrap())
}

#[tokio::test]
async fn serve_prints_a_setup_link_that_works_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let cfg = tmp.path().join("empty.toml");
    std::fs::write(&cfg, "").unwrap();

    // A restart before setup prints a new link; the first one stays valid until it expires.
    let (mut first, _, token) = serve_with_setup_link(&data, &cfg).await;
    first.start_kill().unwrap();
    let _ = first.wait().await;
    let (mut child, addr, second_token) = serve_with_setup_link(&data, &cfg).await;
    assert_ne!(token, second_token);

    crate::common::install_crypto();
    let http = reqwest::Client::new();
    let url = |p: &str| format!("http://{addr}{p}");
    let status: Value = http
        .get(url("/api/auth/setup"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["needs_setup"], true);
    let body = json!({ "token": token, "email": "first@test.invalid", "name": "First", "password": "a long enough password" });
    let r = http
        .post(url("/api/auth/setup"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("set-cookie"));
    let r = http
        .post(url("/api/auth/setup"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);

    // The CLI, a second process, reaches this server through the socket.
    let u = ok(
        hearth(
            &data,
            &[
                "user",
                "add",
                "--email",
                "second@test.invalid",
                "--role",
                "viewer",
            ],
        )
        .await,
        "user add",
    );
    assert_eq!(u["user"]["id"], 2);
    child.start_kill().unwrap();
    let _ = child.wait().await;
}

/// Leaves two dead letters for consumer `cli.test` in the database of `dir` (the app is
/// stopped again when this returns). Returns their sequence numbers.
async fn make_dead_letters(dir: &Path) -> (u64, u64) {
    use hearth::bus::{ConsumerSpec, Outcome, Priority, StartAt};
    let app = hearth::build(test_config(dir)).unwrap();
    let state = app.state().clone();
    state.bus.register(
        ConsumerSpec::new("cli.test", &["cli.>"])
            .start_at(StartAt::Beginning)
            .max_deliver(1),
        |_d| async { Outcome::Term("refused on purpose".into()) },
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let tasks = state.bus.start(stop.clone());
    let mut seqs = Vec::new();
    for i in 0..2 {
        let bus = state.bus.clone();
        let seq = state
            .db
            .write(move |txn| {
                bus.publish_durable(txn, "cli.failing", Priority::Normal, &json!({ "n": i }))
            })
            .await
            .unwrap();
        seqs.push(seq);
    }
    crate::common::wait_for("two dead letters", Duration::from_secs(30), || {
        let bus = state.bus.clone();
        async move {
            let n = bus
                .dlq_list(Some("cli.test".into()), 10)
                .await
                .unwrap()
                .len();
            (n == 2).then_some(())
        }
    })
    .await;
    stop.cancel();
    for t in tasks {
        t.await.unwrap();
    }
    drop(state);
    drop(app);
    (seqs[0], seqs[1])
}

#[tokio::test]
async fn dlq_commands_show_replay_and_purge_dead_letters() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (a, b) = make_dead_letters(&data).await;

    let l = ok(
        hearth(&data, &["dlq", "list", "--consumer", "cli.test"]).await,
        "dlq list",
    );
    let listed: Vec<u64> = l["dead_letters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(listed, vec![a, b]);
    let d = ok(
        hearth(&data, &["dlq", "show", "cli.test", &a.to_string()]).await,
        "dlq show",
    );
    assert_eq!(d["consumer"], "cli.test");
    assert!(d.to_string().contains("refused on purpose"), "{d}");

    let r = ok(
        hearth(&data, &["dlq", "replay", "cli.test", &a.to_string()]).await,
        "dlq replay",
    );
    assert_eq!(r["replayed"], 1);
    let r = ok(
        hearth(
            &data,
            &[
                "dlq",
                "purge",
                "--consumer",
                "cli.test",
                "--seq",
                &b.to_string(),
            ],
        )
        .await,
        "dlq purge",
    );
    assert_eq!(r["purged"], 1);
    let l = ok(hearth(&data, &["dlq", "list"]).await, "dlq list");
    assert_eq!(l["dead_letters"], json!([]));
}

/// Runs `hearth serve` on `dir` with the port from `--listen` (not from a config file) until it
/// is ready, then stops it with SIGTERM; returns what it logged.
async fn serve_once_on(dir: &Path, port: u16) -> String {
    let cfg = dir.join("cli-test-config.toml");
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("-c")
        .arg(&cfg)
        .arg("--data-dir")
        .arg(dir)
        .args(["--listen", &format!("127.0.0.1:{port}"), "serve"])
        .env_remove("HEARTH_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    crate::common::install_crypto();
    let http = reqwest::Client::new();
    let ready = format!("http://127.0.0.1:{port}/health/ready");
    crate::common::wait_for("the server to be ready", Duration::from_secs(60), || {
        let r = http.get(&ready).send();
        async move { r.await.ok().filter(|r| r.status() == 200).map(|_| ()) }
    })
    .await;
    let pid = child.id().unwrap().to_string();
    let killed = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().await.unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "serve exits cleanly: {log}");
    log
}

/// Issue 16: `hearth project add` on a data directory no server runs on prints a DSN with the
/// address the server uses: the `--listen`/`--public-url` given to it, else the address the
/// last `serve` there recorded (even when that server took its port from a flag), else the
/// configuration, with a note saying so.
#[tokio::test]
async fn offline_project_add_names_the_address_the_server_uses() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let dsn = |v: &Value| v["dsn"].as_str().unwrap().to_string();

    // Before any serve: the configuration's address, and a note that says so.
    let o = hearth(&data, &["project", "add", "early"]).await;
    assert!(o.stderr.contains("no server has run"), "{}", o.stderr);
    assert!(dsn(&o.json).contains("@127.0.0.1:8080/"), "{}", o.json);
    let early = o.json;

    // The address the server will use, given as `serve` will be given it.
    let port = crate::common::free_port();
    let listen = format!("127.0.0.1:{port}");
    let o = hearth(&data, &["project", "add", "flagged", "--listen", &listen]).await;
    assert!(o.ok, "{}", o.stderr);
    assert!(dsn(&o.json).contains(&format!("@{listen}/")), "{}", o.json);
    assert!(!o.stderr.contains("note:"), "{}", o.stderr);
    let o = hearth(
        &data,
        &[
            "project",
            "add",
            "proxied",
            "--public-url",
            "https://errors.example.com/",
        ],
    )
    .await;
    assert!(dsn(&o.json).starts_with("https://"), "{}", o.json);
    assert!(dsn(&o.json).contains("@errors.example.com/"), "{}", o.json);

    // After a serve whose port came from --listen: that address, without any flag.
    // The first start names every project's DSN as the server serves it, so a DSN printed
    // before (the "early" one) is corrected in the log.
    let log = serve_once_on(&data, port).await;
    let early_key = dsn(&early)
        .split("://")
        .nth(1)
        .unwrap()
        .split('@')
        .next()
        .unwrap()
        .to_string();
    assert!(
        log.contains(&format!("{early_key}@{listen}/")),
        "the early project's DSN with the served address: {log}"
    );
    let o = hearth(&data, &["project", "add", "later"]).await;
    assert!(o.ok, "{}", o.stderr);
    assert!(dsn(&o.json).contains(&format!("@{listen}/")), "{}", o.json);
    assert!(o.stderr.contains("where it last served"), "{}", o.stderr);
}
