//! Issue 12, items 4, 5, 6 and the low list: login delays per (account, client), trusted
//! proxies, a full disk, slowloris and idle sockets, connections per address, and the small
//! things (redirect after login, cookie writes from other origins, password changes, password
//! and email rules, file modes, no-store, DSN key labels). All against the real binary.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::binary::Hearth;
use crate::common::{skip, wait_for};

const WAIT: Duration = Duration::from_secs(30);

/// The binary with `[server]`/`[storage]` settings given as the environment variables an
/// operator would use (the harness's config file already has those sections).
async fn start_with_env(env: &[(&str, &str)]) -> (tempfile::TempDir, Hearth) {
    let tmp = tempfile::tempdir().unwrap();
    let h = Hearth::start_in(tmp.path(), "", env).await;
    (tmp, h)
}

async fn login_from(
    h: &Hearth,
    xff: Option<&str>,
    email: &str,
    password: &str,
) -> reqwest::Response {
    let mut r = h
        .http
        .post(h.url("/api/auth/login"))
        .json(&json!({"email": email, "password": password}));
    if let Some(ip) = xff {
        r = r.header("x-forwarded-for", ip);
    }
    r.send().await.unwrap()
}

fn retry_after(r: &reqwest::Response) -> u64 {
    r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Item 4: failures slow only the (account, client) pair that made them, with a growing wait,
/// never a lock of the account; X-Forwarded-For tells clients apart only from a trusted proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_slow_one_client_of_an_account_and_forwarded_for_needs_a_trusted_proxy() {
    let (_tmp, h) = start_with_env(&[
        ("HEARTH_AUTH__LOGIN_ATTEMPTS_PER_ACCOUNT", "3"),
        ("HEARTH_SERVER__TRUSTED_PROXIES", "[\"127.0.0.1\"]"),
    ])
    .await;
    let owner = h.owner().await;
    let attacker = Some("203.0.113.9");
    for _ in 0..3 {
        let r = login_from(&h, attacker, &owner.email, "wrong password!").await;
        assert_eq!(r.status(), 401);
    }
    let r = login_from(&h, attacker, &owner.email, "wrong password!").await;
    assert_eq!(r.status(), 429);
    let first = retry_after(&r);
    assert!((1..=2).contains(&first), "{first}");
    // The owner, elsewhere, signs in at once: no lock of the account.
    let r = login_from(&h, Some("198.51.100.4"), &owner.email, &owner.password).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    // The attacker's wait grows: once the first has passed, the next failure waits longer.
    let r = wait_for("the first wait to pass", WAIT, || async {
        let r = login_from(&h, attacker, &owner.email, "wrong password!").await;
        (r.status() == 401).then_some(r)
    })
    .await;
    drop(r);
    let r = login_from(&h, attacker, &owner.email, "wrong password!").await;
    assert_eq!(r.status(), 429);
    assert!(retry_after(&r) > first, "{} > {first}", retry_after(&r));
    h.stop().await;

    // Without trusted_proxies the header is the client's claim and is ignored: changing it
    // does not escape the wait.
    let h = Hearth::start("[auth]\nlogin_attempts_per_account = 3\n").await;
    let owner = h.owner().await;
    for i in 0..3 {
        let ip = format!("192.0.2.{i}");
        let r = login_from(&h, Some(&ip), &owner.email, "wrong password!").await;
        assert_eq!(r.status(), 401);
    }
    let r = login_from(&h, Some("192.0.2.200"), &owner.email, &owner.password).await;
    assert_eq!(
        r.status(),
        429,
        "a spoofed X-Forwarded-For must not reset the wait"
    );
    h.stop().await;
}

/// Reads from `s` until the server closes it (EOF or reset); returns what it sent before.
async fn read_until_closed(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Item 6: half a header is closed after header_read_timeout, a body that stops coming after
/// idle_timeout, and the server answers others meanwhile and after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_socket_and_a_stalled_body_are_closed_and_the_server_keeps_serving() {
    let (_tmp, h) = start_with_env(&[
        ("HEARTH_SERVER__HEADER_READ_TIMEOUT", "1s"),
        ("HEARTH_SERVER__IDLE_TIMEOUT", "2s"),
        ("HEARTH_SERVER__REQUEST_TIMEOUT", "120s"),
    ])
    .await;
    let mut slow = TcpStream::connect(("127.0.0.1", h.port)).await.unwrap();
    slow.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let mut stalled = TcpStream::connect(("127.0.0.1", h.port)).await.unwrap();
    stalled
        .write_all(
            b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"email\":",
        )
        .await
        .unwrap();
    let r = h.http.get(h.url("/health/live")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let closed = tokio::time::timeout(WAIT, read_until_closed(&mut slow)).await;
    assert!(
        closed.is_ok(),
        "the slowloris socket is still open after {WAIT:?}"
    );
    let closed = tokio::time::timeout(WAIT, read_until_closed(&mut stalled)).await;
    assert!(
        closed.is_ok(),
        "the stalled body is still open after {WAIT:?}"
    );
    // A new connection: the pooled one from the first request has been idle as long as the
    // stalled body and is closed by the same idle timeout.
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let r = fresh.get(h.url("/health/ready")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    h.stop().await;
}

/// Reads one HTTP/1.1 response (head and a Content-Length body) from a kept-alive socket.
async fn read_response(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(WAIT, s.read(&mut buf))
            .await
            .expect("no response")
            .unwrap();
        assert!(n > 0, "the server closed a kept-alive connection");
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let len: usize = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + len {
                return text;
            }
        }
    }
}

/// The header timer starts at a head's first byte: a kept-alive connection that waits longer
/// than header_read_timeout between requests still serves the next one (hyper's own timer
/// closed it, and clients reusing it lost requests), while a slow head is still cut off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alive_connection_outlives_the_header_timeout_between_requests() {
    let (_tmp, h) = start_with_env(&[
        ("HEARTH_SERVER__HEADER_READ_TIMEOUT", "1s"),
        ("HEARTH_SERVER__IDLE_TIMEOUT", "120s"),
    ])
    .await;
    let request = b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut kept = TcpStream::connect(("127.0.0.1", h.port)).await.unwrap();
    kept.write_all(request).await.unwrap();
    assert!(read_response(&mut kept).await.starts_with("HTTP/1.1 200"));
    // A slow head opened after that response: once the server has cut it off, more than
    // header_read_timeout has passed with `kept` idle.
    let mut slow = TcpStream::connect(("127.0.0.1", h.port)).await.unwrap();
    slow.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let closed = tokio::time::timeout(WAIT, read_until_closed(&mut slow)).await;
    assert!(closed.is_ok(), "the slow head is still open after {WAIT:?}");
    kept.write_all(request).await.unwrap();
    assert!(read_response(&mut kept).await.starts_with("HTTP/1.1 200"));
    h.stop().await;
}

/// Item 6: one address holds at most max_connections_per_ip connections; more are closed
/// unanswered, and a freed slot serves again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_address_are_limited() {
    let (_tmp, h) = start_with_env(&[("HEARTH_SERVER__MAX_CONNECTIONS_PER_IP", "3")]).await;
    let mut socks = Vec::new();
    let mut answered = 0;
    let mut refused = 0;
    for _ in 0..6 {
        let mut s = TcpStream::connect(("127.0.0.1", h.port)).await.unwrap();
        let _ = s
            .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            .await;
        let mut buf = [0u8; 12];
        match tokio::time::timeout(WAIT, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 && buf.starts_with(b"HTTP/1.1 200") => answered += 1,
            Ok(_) => refused += 1,
            Err(_) => panic!("a connection was neither answered nor closed"),
        }
        // Kept open (keep-alive) so it holds its slot.
        socks.push(s);
    }
    assert!(answered <= 3, "{answered} connections were served at once");
    assert!(refused >= 3, "only {refused} connections were refused");
    drop(socks);
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    wait_for("a freed slot to serve again", WAIT, || async {
        let r = fresh.get(h.url("/health/live")).send().await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    h.stop().await;
}

/// Mounts a tmpfs of `size` at a fresh directory (CI and this machine run as root).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            skip("cannot mount a tmpfs (the disk-full test needs root: CI runs as root)");
            return None;
        }
        Some(Tmpfs { dir })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Writes `path` until the file system is full.
fn fill(path: &std::path::Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    for chunk in [1 << 20, 4096, 1] {
        let buf = vec![0xA5u8; chunk];
        while f.write_all(&buf).is_ok() {}
    }
    let _ = f.sync_all();
}

async fn send_event(h: &Hearth, pid: u64, key: &str, msg: &str) -> reqwest::Response {
    h.http
        .post(h.url(&format!("/api/{pid}/store/?sentry_key={key}")))
        .json(&json!({"message": msg, "level": "error", "platform": "python"}))
        .send()
        .await
        .unwrap()
}

/// Item 5: on a full disk ingest answers 503 + Retry-After (never 200, never 500), health says
/// degraded, the log says so a few times rather than per request; freeing space brings it all
/// back without a restart. Then the hard way: a write that runs out of space inside the
/// database (which redb answers by refusing everything until it is opened again) recovers too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_refused_with_503_and_the_server_recovers_by_itself() {
    let Some(fs) = Tmpfs::mount("48m") else {
        return;
    };
    let h = Hearth::start_in(
        fs.dir.path(),
        "",
        &[
            ("HEARTH_STORAGE__MIN_FREE_SPACE", "0 B"),
            ("HEARTH_STORAGE__CACHE_SIZE", "1 MB"),
        ],
    )
    .await;
    let owner = h.owner().await;
    let (pid, dsn) = h.project(&owner.token, "disk").await;
    let key = dsn
        .split("://")
        .nth(1)
        .unwrap()
        .split('@')
        .next()
        .unwrap()
        .to_string();
    let r = send_event(&h, pid, &key, "before the disk fills").await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    let filler = fs.dir.path().join("filler");
    fill(&filler);
    let lines_before = h.log_text().lines().count();
    let mut statuses = std::collections::BTreeMap::<u16, u32>::new();
    for i in 0..200 {
        let r = send_event(&h, pid, &key, &format!("while full {i}")).await;
        let status = r.status().as_u16();
        *statuses.entry(status).or_default() += 1;
        if status != 200 {
            assert!(
                r.headers().contains_key("retry-after"),
                "{status} without Retry-After"
            );
        }
        if status == 503 {
            let limits = r.headers()["x-sentry-rate-limits"].to_str().unwrap();
            assert!(limits.starts_with("30::"), "{limits}");
        }
    }
    assert_eq!(
        statuses
            .keys()
            .copied()
            .filter(|s| ![503, 429].contains(s))
            .count(),
        0,
        "only 503/429 while full: {statuses:?}"
    );
    let r = h.http.get(h.url("/health/ready")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "degraded", "{v}");
    let log = h.log_text();
    let new_lines: Vec<&str> = log.lines().skip(lines_before).collect();
    assert!(
        new_lines.len() <= 10,
        "{} log lines for 200 refused events:\n{}",
        new_lines.len(),
        new_lines.join("\n")
    );

    std::fs::remove_file(&filler).unwrap();
    wait_for("ingest to accept again", WAIT, || async {
        let r = send_event(&h, pid, &key, "after space is back").await;
        (r.status() == 200).then_some(())
    })
    .await;
    let r = h.http.get(h.url("/health/ready")).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    // The hard way: some space left, then an event too big for it. The write fails inside
    // the database; the answer is still 503, and once space is back the database is opened
    // again and serves.
    fill(&filler);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&filler)
        .unwrap();
    let len = f.metadata().unwrap().len();
    f.set_len(len.saturating_sub(256 * 1024)).unwrap();
    drop(f);
    let big: String = (0..600_000u32)
        .map(|i| char::from(b'a' + (i.wrapping_mul(2_654_435_761) >> 27) as u8 % 26))
        .collect();
    let mut saw_refusal = false;
    for i in 0..20 {
        let r = send_event(&h, pid, &key, &format!("{i} {big}")).await;
        let status = r.status().as_u16();
        assert!(
            [200, 503, 429, 413].contains(&status),
            "{status}: {}",
            r.text().await.unwrap()
        );
        if status == 503 {
            saw_refusal = true;
            break;
        }
    }
    assert!(saw_refusal, "the disk never filled");
    std::fs::remove_file(&filler).unwrap();
    wait_for(
        "ingest to accept again after the database filled",
        WAIT,
        || async {
            let r = send_event(&h, pid, &key, "after the database filled").await;
            (r.status() == 200).then_some(())
        },
    )
    .await;
    let r = h.get(&owner.token, "/api/projects").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        !h.log_text().contains("panicked"),
        "the server panicked:\n{}",
        h.log_text()
    );
    assert!(h.stop().await, "a clean stop after the disk was full");
}

/// POSTs `body` to `path` as a dashboard page would (session cookie, own Origin); returns the
/// status and body.
async fn page_post(h: &Hearth, cookie: &str, path: &str, body: Value) -> (u16, String) {
    let r = h
        .http
        .post(h.url(path))
        .header("cookie", cookie)
        .header("origin", &h.base)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn me_status(h: &Hearth, name: &'static str, value: String) -> u16 {
    h.http
        .get(h.url("/api/auth/me"))
        .header(name, value)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Low: the answer that shows a new secret (here an API token) is not cached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_with_a_new_secret_are_not_cached() {
    let h = Hearth::start("").await;
    let owner = h.owner().await;
    let r = h
        .post(&owner.token, "/api/tokens")
        .json(&json!({"name": "ci"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()
            .get("cache-control")
            .map(|v| v.to_str().unwrap()),
        Some("no-store"),
        "a new token's answer must not be cached"
    );
    let r = h
        .post(&owner.token, "/api/projects")
        .json(&json!({"name": "dsn"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["cache-control"], "no-store", "a new DSN");
    h.stop().await;
}

/// Low: a password change ends the user's sessions and revokes their API tokens; an owner
/// changing their own password keeps the session they did it with, nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_ends_other_sessions_and_the_users_tokens() {
    let h = Hearth::start("").await;
    let owner = h.owner().await;
    let r = h
        .post(&owner.token, "/api/users")
        .json(&json!({"email": "ann@example.com", "role": "agent", "password": "first password 1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let ann: Value = r.json().await.unwrap();
    let ann_id = ann["user"]["id"].as_u64().unwrap();
    let s1 = h
        .sign_in("ann@example.com", "first password 1")
        .await
        .unwrap();
    let s2 = h
        .sign_in("ann@example.com", "first password 1")
        .await
        .unwrap();
    let (status, body) = page_post(&h, &s1, "/api/tokens", json!({"name": "ci"})).await;
    assert_eq!(status, 200, "{body}");
    let ann_token = serde_json::from_str::<Value>(&body).unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(me_status(&h, "cookie", s2.clone()).await, 200);
    assert_eq!(
        me_status(&h, "authorization", format!("Bearer {ann_token}")).await,
        200
    );

    // The owner sets a new password for her: every session and token of hers ends.
    let r = h
        .http
        .patch(h.url(&format!("/api/users/{ann_id}")))
        .bearer_auth(&owner.token)
        .json(&json!({"password": "second password 2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(me_status(&h, "cookie", s1).await, 401);
    assert_eq!(me_status(&h, "cookie", s2).await, 401);
    assert_eq!(
        me_status(&h, "authorization", format!("Bearer {ann_token}")).await,
        401
    );
    assert!(
        h.sign_in("ann@example.com", "second password 2")
            .await
            .is_ok()
    );

    // The owner changes their own password from a session: that session stays, the other
    // session and the owner's token end.
    let mine = h.sign_in(&owner.email, &owner.password).await.unwrap();
    let other = h.sign_in(&owner.email, &owner.password).await.unwrap();
    let r = h
        .http
        .get(h.url("/api/auth/me"))
        .header("cookie", &mine)
        .send()
        .await
        .unwrap();
    let owner_id = r.json::<Value>().await.unwrap()["user"]["id"]
        .as_u64()
        .unwrap();
    let r = h
        .http
        .patch(h.url(&format!("/api/users/{owner_id}")))
        .header("cookie", &mine)
        .header("origin", &h.base)
        .json(&json!({"password": "a brand new owner password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(me_status(&h, "cookie", mine).await, 200);
    assert_eq!(me_status(&h, "cookie", other).await, 401);
    assert_eq!(
        me_status(&h, "authorization", format!("Bearer {}", owner.token)).await,
        401
    );
    h.stop().await;
}

async fn new_user(h: &Hearth, token: &str, email: &str, password: &str) -> (u16, String) {
    let r = h
        .post(token, "/api/users")
        .json(&json!({"email": email, "role": "viewer", "password": password}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Low: the password minimum counts characters, not bytes, and only whitespace is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_minimum_counts_characters_and_refuses_only_whitespace() {
    let h = Hearth::start("").await;
    let owner = h.owner().await;
    let (status, body) = new_user(&h, &owner.token, "spaces@example.com", "          ").await;
    assert_eq!(status, 400, "ten spaces: {body}");
    let (status, body) = new_user(&h, &owner.token, "tabs@example.com", " \t \t \t \t \t \t").await;
    assert_eq!(status, 400, "only whitespace: {body}");
    let (status, body) = new_user(&h, &owner.token, "short@example.com", "ééééé").await;
    assert_eq!(status, 400, "five characters in ten bytes: {body}");
    let (status, body) = new_user(&h, &owner.token, "long@example.com", "ééééééééééé").await;
    assert_eq!(status, 200, "eleven characters: {body}");
    h.stop().await;
}

/// Low: an email is one real local@domain, without CR/LF or other whitespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emails_must_be_real_addresses() {
    let h = Hearth::start("").await;
    let owner = h.owner().await;
    for bad in [
        "@",
        "a@",
        "@b.example",
        "x@y.example\r\nBcc: victim@example.com",
        "x\n@y.example",
        "a b@c.example",
        "a@b..example",
        "a@@b.example",
    ] {
        let (status, body) = new_user(&h, &owner.token, bad, "a fine password").await;
        assert_eq!(status, 400, "{bad:?}: {body}");
    }
    let (status, body) = new_user(
        &h,
        &owner.token,
        "jo.doe+ops@mail.example.com",
        "a fine password",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    h.stop().await;
}

/// Low: a DSN key label has a length limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dsn_key_labels_have_a_limit() {
    let h = Hearth::start("").await;
    let owner = h.owner().await;
    let (pid, _) = h.project(&owner.token, "labels").await;
    let key = |label: String| {
        let req = h
            .post(&owner.token, &format!("/api/projects/{pid}/keys"))
            .json(&json!({ "label": label }));
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(key("x".repeat(10_000)).await, 400);
    assert_eq!(key("x".repeat(201)).await, 400);
    assert_eq!(key("staging".into()).await, 200);
    h.stop().await;
}

/// Low: a write with the session cookie must come from Hearth's own pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_authenticated_writes_from_another_origin_are_refused() {
    let h = Hearth::start("").await;
    let owner = h.owner().await;
    let cookie = h.sign_in(&owner.email, &owner.password).await.unwrap();
    let post = |extra: &[(&'static str, &'static str)]| {
        let mut req = h
            .http
            .post(h.url("/api/projects"))
            .header("cookie", &cookie)
            .json(&json!({"name": "csrf"}));
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(post(&[("origin", "https://evil.example")]).await, 403);
    assert_eq!(post(&[("sec-fetch-site", "cross-site")]).await, 403);
    assert_eq!(post(&[("sec-fetch-site", "same-site")]).await, 403);
    assert_eq!(post(&[]).await, 403, "a cookie write without Origin");
    assert_eq!(post(&[("sec-fetch-site", "same-origin")]).await, 200);
    // A write without a JSON body is covered too (revoking a key).
    let r = h.get(&owner.token, "/api/projects").send().await.unwrap();
    let v: Value = r.json().await.unwrap();
    let pid = v["projects"][0]["id"].as_u64().unwrap();
    let r = h
        .get(&owner.token, &format!("/api/projects/{pid}/keys"))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    let key = v["keys"][0]["key"]["public_key"]
        .as_str()
        .unwrap()
        .to_string();
    let r = h
        .http
        .post(h.url(&format!("/api/projects/{pid}/keys/{key}/revoke")))
        .header("cookie", &cookie)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Tokens are not cookies: no Origin needed.
    let r = h
        .post(&owner.token, "/api/projects")
        .json(&json!({"name": "script"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Another site's form cannot sign the browser in.
    let r = h
        .http
        .post(h.url("/api/auth/login"))
        .header("origin", "https://evil.example")
        .json(&json!({"email": owner.email, "password": owner.password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    h.stop().await;
}

/// Low: the data directory is private however the server was started.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let h = Hearth::start("").await;
    let owner = h.owner().await;
    let (pid, dsn) = h.project(&owner.token, "modes").await;
    let key = dsn
        .split("://")
        .nth(1)
        .unwrap()
        .split('@')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(send_event(&h, pid, &key, "x").await.status(), 200);
    let data = h.dir.join("data");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "{}", data.display());
    for entry in std::fs::read_dir(&data).unwrap() {
        let p = entry.unwrap().path();
        let m = mode(&p);
        if p.is_dir() {
            assert_eq!(m, 0o700, "{}", p.display());
        } else if p.file_name().is_some_and(|n| n != "hearth.sock") {
            assert_eq!(m & 0o077, 0, "{} is {m:o}", p.display());
        }
    }
    assert_eq!(mode(&data.join("hearth.redb")), 0o600);
    h.stop().await;
}

/// Low: `next` after signing in never leads to another host, however it is spelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_page_redirects_only_within_hearth() {
    use fantoccini::Locator;
    let Some(b) = crate::browser::Browser::start().await else {
        return;
    };
    let h = Hearth::start("").await;
    let owner = h.owner().await;
    let c = &b.c;
    for (next, expected) in [
        ("/%5Cevil.example", None),
        ("/%09/evil.example", None),
        ("//evil.example", None),
        ("https://evil.example/", None),
        ("/issues?x=1", Some("/issues")),
    ] {
        c.delete_all_cookies().await.unwrap();
        c.goto(&h.url(&format!("/login?next={next}")))
            .await
            .unwrap();
        for (css, text) in [
            ("#email", owner.email.as_str()),
            ("#password", owner.password.as_str()),
        ] {
            let el = c.wait().for_element(Locator::Css(css)).await.unwrap();
            el.clear().await.unwrap();
            el.send_keys(text).await.unwrap();
        }
        c.find(Locator::Css("button[type=submit]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let url = wait_for("the browser to leave /login", WAIT, || async {
            let u = c.current_url().await.ok()?;
            (u.path() != "/login").then_some(u)
        })
        .await;
        assert_eq!(
            url.origin().ascii_serialization(),
            h.base,
            "next={next} led to {url}"
        );
        assert_eq!(url.path(), expected.unwrap_or("/"), "next={next}");
    }
    b.close().await;
    h.stop().await;
}
