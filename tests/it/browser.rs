//! The dashboard in a real browser: Debian's chromium driven through chromedriver (WebDriver)
//! against a real Hearth server, with events sent by the official `sentry` crate.
//!
//! Locally these tests skip (with a printed reason) when chromium or chromedriver is missing;
//! CI installs both and turns a skip into a failure.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use hearth::accounts::Role;
use hyper_util::client::legacy::connect::HttpConnector;
use sentry::protocol::{Event, Exception, Frame, Level, Stacktrace, Values};
use serde_json::{Value, json};

use crate::common::{TestServer, free_port, skip, wait_for};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const WAIT: Duration = Duration::from_secs(20);
const XSS_IMG: &str = "<img src=x onerror=alert(1)>";
const XSS_SCRIPT: &str = "<script>window.__pwned=1;alert(2)</script>";

/// One browser at a time: each is a chromium process tree, and the machine has few cores.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub(crate) struct Browser {
    pub(crate) c: Client,
    _driver: tokio::process::Child,
    _profile: tempfile::TempDir,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

impl Browser {
    /// A headless chromium session, or `None` (after `skip`) when no browser is installed.
    pub(crate) async fn start() -> Option<Browser> {
        Self::start_with(&[]).await
    }

    /// As [`Browser::start`], with more chromium flags (e.g. dark mode).
    pub(crate) async fn start_with(extra_args: &[&str]) -> Option<Browser> {
        for bin in [CHROMIUM, CHROMEDRIVER] {
            if !Path::new(bin).exists() {
                skip(&format!(
                    "{bin} is missing; install it with `apt-get install -y chromium chromium-driver`"
                ));
                return None;
            }
        }
        let turn = ONE_BROWSER.lock().await;
        let port = free_port();
        let driver = tokio::process::Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start chromedriver");
        let status = format!("http://127.0.0.1:{port}/status");
        let http = reqwest::Client::new();
        wait_for("chromedriver to listen", WAIT, || {
            let r = http.get(&status).send();
            async move { r.await.ok().filter(|r| r.status().is_success()).map(|_| ()) }
        })
        .await;
        let profile = tempfile::tempdir().unwrap();
        let mut caps = serde_json::Map::new();
        let mut args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--window-size=1280,900".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        args.extend(extra_args.iter().map(|a| a.to_string()));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": CHROMIUM, "args": args }),
        );
        let c = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("WebDriver session with chromium");
        Some(Browser {
            c,
            _driver: driver,
            _profile: profile,
            _turn: turn,
        })
    }

    pub(crate) async fn close(self) {
        let _ = self.c.clone().close().await;
    }

    async fn js(&self, script: &str) -> Value {
        self.c
            .execute(script, vec![])
            .await
            .expect("execute script")
    }

    /// Polls `script` (a function body that returns a value) until it returns something truthy.
    async fn wait_js(&self, what: &str, script: &str) -> Value {
        wait_for(what, WAIT, || async {
            let v = self.c.execute(script, vec![]).await.ok()?;
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                Value::Array(a) => !a.is_empty(),
                Value::Object(_) => true,
            };
            truthy.then_some(v)
        })
        .await
    }

    async fn click(&self, css: &str) {
        self.wait_js(
            &format!("{css} to be clickable"),
            &format!("return !!document.querySelector({css:?})"),
        )
        .await;
        self.c
            .find(Locator::Css(css))
            .await
            .unwrap()
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    async fn type_into(&self, css: &str, text: &str) {
        self.wait_js(
            &format!("{css} to exist"),
            &format!("return !!document.querySelector({css:?})"),
        )
        .await;
        let el = self.c.find(Locator::Css(css)).await.unwrap();
        el.clear().await.unwrap();
        el.send_keys(text).await.unwrap();
    }

    /// Saves a PNG of the viewport under the test-artifacts directory and returns its path.
    async fn screenshot(&self, name: &str) -> PathBuf {
        // Transient toasts would cover the page.
        self.js(
            "const t = document.getElementById('toasts'); if (t) t.replaceChildren(); return 1",
        )
        .await;
        let png = self.c.screenshot().await.expect("screenshot");
        let dir = artifacts_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        println!("screenshot: {}", path.display());
        path
    }

    /// Logs in through the login form and waits for the signed-in top bar.
    async fn login(&self, s: &TestServer, email: &str, password: &str) {
        self.c.goto(&s.url("/#/login")).await.unwrap();
        self.type_into("#login-email", email).await;
        self.type_into("#login-password", password).await;
        self.click("form button[type=submit]").await;
        self.wait_js(
            "the signed-in top bar",
            "return !document.getElementById('topbar').hidden",
        )
        .await;
    }

    /// The number of issue rows in the list on screen.
    async fn rows(&self) -> usize {
        self.js("return document.querySelectorAll('#issue-list .issue-row').length")
            .await
            .as_u64()
            .unwrap_or(0) as usize
    }
}

fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("test-artifacts")
}

/// A one-time setup token, as in the link the server prints on first start.
async fn setup_token(s: &TestServer) -> Option<String> {
    s.state.accounts.create_setup_token().await.ok()
}

/// Creates a user with a password; returns (email, password).
async fn user(s: &TestServer, role: Role) -> (String, String) {
    let email = format!("{}-{}@example.com", role.as_str(), rand::random::<u32>());
    let password = "correct horse battery staple".to_string();
    s.state
        .accounts
        .create_user(&email, "Dana Dashboard", role, Some(&password))
        .await
        .unwrap();
    (email, password)
}

/// Sends one event with the official Sentry SDK and waits until it is flushed.
async fn send_event(dsn: &str, event: Event<'static>) {
    let dsn = dsn.to_string();
    tokio::task::spawn_blocking(move || {
        let mut options = sentry::ClientOptions::default();
        options.dsn = Some(dsn.parse().expect("DSN"));
        options.release = Some("shop@1.4.2".into());
        options.environment = Some("production".into());
        let options = sentry::apply_defaults(options);
        let client = Arc::new(sentry::Client::from(options));
        let hub = sentry::Hub::new(Some(client.clone()), Arc::new(Default::default()));
        hub.capture_event(event);
        assert!(
            client.flush(Some(Duration::from_secs(10))),
            "the SDK flushed the event"
        );
    })
    .await
    .unwrap();
}

fn frame(function: &str, file: &str, line: u64, in_app: bool) -> Frame {
    Frame {
        function: Some(function.into()),
        filename: Some(file.into()),
        lineno: Some(line),
        in_app: Some(in_app),
        pre_context: vec!["def parse_qty(request):".into()],
        context_line: Some("    qty = int(request.POST['qty'])".into()),
        post_context: vec!["    return qty".into()],
        ..Default::default()
    }
}

fn error_event(ty: &str, value: &str, frames: Vec<Frame>, message: Option<&str>) -> Event<'static> {
    Event {
        level: Level::Error,
        message: message.map(str::to_string),
        exception: Values::from(vec![Exception {
            ty: ty.into(),
            value: Some(value.into()),
            stacktrace: Some(Stacktrace {
                frames,
                ..Default::default()
            }),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

/// Waits for the issue API to list an issue whose title contains `needle`; returns its id.
async fn issue_id(s: &TestServer, pid: u64, needle: &str) -> u64 {
    let admin = s.client(Role::Admin).await;
    wait_for(&format!("an issue titled like {needle:?}"), WAIT, || {
        let r = admin
            .get(&format!("/api/projects/{pid}/issues?query=&limit=100"))
            .send();
        let needle = needle.to_string();
        async move {
            let v: Value = r.await.ok()?.json().await.ok()?;
            v["issues"].as_array()?.iter().find_map(|i| {
                i["title"]
                    .as_str()
                    .filter(|t| t.contains(&needle))
                    .and(i["id"].as_u64())
            })
        }
    })
    .await
}

/// Setup → login → create project → copy DSN → an event sent with the Sentry SDK appears in
/// the list without a reload → open it, see the frames → resolve → the list shows the state.
#[tokio::test]
async fn first_run_to_resolved_issue() {
    let s = TestServer::start().await;
    let Some(b) = Browser::start().await else {
        return;
    };
    // Setup: the owner is created from the setup link's page (token from the server's hook),
    // then logs out and in again.
    let (email, password) = (
        "owner@example.com".to_string(),
        "correct horse battery staple".to_string(),
    );
    match setup_token(&s).await {
        Some(token) => {
            // The printed link's page, then the dashboard it leads to.
            b.c.goto(&s.url(&format!("/setup?token={token}")))
                .await
                .unwrap();
            b.wait_js(
                "the setup form",
                "const f = document.querySelector('form'); return f && !f.hidden",
            )
            .await;
            b.screenshot("setup").await;
            b.type_into("#name", "Olivia Owner").await;
            b.type_into("#email", &email).await;
            b.type_into("#password", &password).await;
            b.click("form button[type=submit]").await;
            b.wait_js(
                "the signed-in top bar after setup",
                "return !document.getElementById('topbar').hidden",
            )
            .await;
            b.click("#logout").await;
            b.wait_js(
                "the login form after logout",
                "return !!document.getElementById('login-email')",
            )
            .await;
        }
        None => {
            s.state
                .accounts
                .create_user(&email, "Olivia Owner", Role::Owner, Some(&password))
                .await
                .unwrap();
        }
    }
    b.login(&s, &email, &password).await;

    // Create a project and read its DSN from the keys table.
    b.c.goto(&s.url("/#/projects")).await.unwrap();
    b.type_into("#new-project-name", "shop-backend").await;
    b.click("#new-project button[type=submit]").await;
    let dsn = b
        .wait_js(
            "the new project's DSN",
            "const d = document.querySelector('#keys .dsn-text'); return d && d.textContent",
        )
        .await
        .as_str()
        .unwrap()
        .to_string();
    assert!(dsn.starts_with("http://") && dsn.contains('@'), "{dsn}");
    let pid: u64 = dsn.rsplit('/').next().unwrap().parse().unwrap();
    // The copy button is there and reacts.
    b.click("#keys button.copy").await;
    b.wait_js(
        "the copy button to confirm",
        "return /Copied|Selected/.test(document.querySelector('#keys button.copy').textContent)",
    )
    .await;

    // Open the (empty) issue list, then send an event: it must show up without a reload.
    b.c.goto(&s.url(&format!("/#/projects/{pid}/issues")))
        .await
        .unwrap();
    b.wait_js(
        "the empty list",
        "return !!document.getElementById('no-issues')",
    )
    .await;
    b.js("window.__sameDocument = 'yes'; return 1").await;
    b.wait_js(
        "the live connection",
        "return document.getElementById('live-dot').classList.contains('on')",
    )
    .await;
    send_event(
        &dsn,
        error_event(
            "ValueError",
            "invalid literal for int() with base 10: 'abc'",
            vec![
                frame("inner", "django/core/handlers.py", 55, false),
                frame("parse_qty", "app/views/checkout.py", 42, true),
            ],
            None,
        ),
    )
    .await;
    b.wait_js(
        "the new issue to appear live",
        "return document.querySelectorAll('#issue-list .issue-row').length === 1",
    )
    .await;
    assert_eq!(
        b.js("return window.__sameDocument || null").await,
        json!("yes"),
        "the list updated without a page reload"
    );
    let title = b
        .js("return document.querySelector('#issue-list .issue-title').textContent")
        .await;
    assert!(title.as_str().unwrap().contains("ValueError"), "{title}");
    b.screenshot("issue-list").await;

    // Open it (keyboard: j then Enter) and see the frames.
    b.c.find(Locator::Css("body"))
        .await
        .unwrap()
        .send_keys("j")
        .await
        .unwrap();
    b.wait_js(
        "the first row to take focus",
        "return document.activeElement && document.activeElement.classList.contains('issue-row')",
    )
    .await;
    b.c.active_element()
        .await
        .unwrap()
        .send_keys(fantoccini::key::Key::Enter.to_string().as_str())
        .await
        .unwrap();
    b.wait_js(
        "the frames",
        "return document.querySelectorAll('#exceptions .frame').length === 2",
    )
    .await;
    let fns = b
        .js("return [...document.querySelectorAll('#exceptions .frame .fn')].map(e => e.textContent)")
        .await;
    assert_eq!(fns, json!(["parse_qty", "inner"]), "newest frame first");
    let in_app_open = b
        .js("return document.querySelector('#exceptions .frame.inapp').open")
        .await;
    assert_eq!(in_app_open, json!(true), "in-app frames are expanded");
    let ctx = b
        .js("return document.querySelector('#exceptions .frame.inapp .ctx-line.cur').textContent")
        .await;
    assert!(ctx.as_str().unwrap().contains("qty = int("), "{ctx}");
    // A tall window so the artifact shows the side column and the breadcrumbs too.
    b.c.set_window_size(1280, 1500).await.unwrap();
    b.screenshot("issue-detail").await;
    b.c.set_window_size(1280, 900).await.unwrap();

    // Resolve; the list then shows the state.
    b.click("[data-action=resolve]").await;
    b.wait_js(
        "the resolved badge",
        "return [...document.querySelectorAll('.detail-head .badge')].some(e => e.textContent === 'resolved')",
    )
    .await;
    b.c.goto(&s.url(&format!("/#/projects/{pid}/issues?query=is%3Aresolved")))
        .await
        .unwrap();
    b.wait_js(
        "the resolved issue in the list",
        "const r = document.querySelector('#issue-list .issue-row'); return r && r.dataset.status === 'resolved'",
    )
    .await;
    // Stats: the charts and totals count the event.
    b.c.goto(&s.url(&format!("/#/projects/{pid}/stats")))
        .await
        .unwrap();
    b.wait_js(
        "the stats totals",
        "const e = document.getElementById('total-events'); return e && e.textContent === '1'",
    )
    .await;
    let bars = b
        .js("return document.querySelectorAll('svg.chart rect.bar').length")
        .await;
    assert_eq!(bars, json!(168 + 30), "7 days of hours and 30 days");
    b.screenshot("stats").await;
    b.close().await;
    s.stop().await;
}

/// Attacker-controlled text in the message and frame names renders as text: no dialog, no
/// injected element, no script run.
#[tokio::test]
async fn event_text_is_never_html() {
    let s = TestServer::start().await;
    let Some(b) = Browser::start().await else {
        return;
    };
    let (pid, _, dsn) = s.project("xss").await;
    let payload = format!("{XSS_IMG}{XSS_SCRIPT}");
    send_event(
        &dsn,
        error_event(
            &format!("Boom{XSS_IMG}"),
            &payload,
            vec![
                frame(&payload, "<b>x.py</b>", 1, true),
                frame(XSS_SCRIPT, "y.py", 2, false),
            ],
            Some(&payload),
        ),
    )
    .await;
    let id = issue_id(&s, pid, "Boom").await;
    let (email, password) = user(&s, Role::Admin).await;
    b.login(&s, &email, &password).await;
    // Watch for any dialog or script run from here on (hash navigation keeps this document).
    b.js("window.__alerts = 0; window.alert = () => { window.__alerts++ }; return 1")
        .await;
    b.c.goto(&s.url(&format!("/#/projects/{pid}/issues?query=")))
        .await
        .unwrap();
    b.wait_js(
        "the issue row",
        "return document.querySelectorAll('#issue-list .issue-row').length",
    )
    .await;
    b.c.goto(&s.url(&format!("/#/issues/{id}"))).await.unwrap();
    b.wait_js(
        "the frames",
        "return document.querySelectorAll('#exceptions .frame').length === 2",
    )
    .await;
    // The payload is on screen as text.
    let fns = b
        .js("return [...document.querySelectorAll('#exceptions .frame .fn')].map(e => e.textContent)")
        .await;
    assert_eq!(fns, json!([XSS_SCRIPT, payload]), "newest frame first");
    let msg = b
        .js("return document.getElementById('event-message').textContent")
        .await;
    assert_eq!(msg, json!(payload));
    // Nothing was parsed as HTML.
    let injected = b
        .js("return document.querySelectorAll('#app img, #app script, #app b, #app iframe').length")
        .await;
    assert_eq!(injected, json!(0), "no element came from event data");
    let ran = b.js("return [window.__alerts, window.__pwned || 0]").await;
    assert_eq!(ran, json!([0, 0]), "no script from event data ran");
    match b.c.get_alert_text().await {
        Err(e) if e.is_no_such_alert() => {}
        other => panic!("expected no dialog, got {other:?}"),
    }
    b.screenshot("issue-detail-xss").await;
    b.close().await;
    s.stop().await;
}

/// The search box filters the list; a viewer sees no destructive buttons, and the API refuses
/// a viewer's state change anyway.
#[tokio::test]
async fn search_and_viewer_role() {
    let s = TestServer::start().await;
    let Some(b) = Browser::start().await else {
        return;
    };
    let (pid, _, dsn) = s.project("search").await;
    send_event(
        &dsn,
        error_event(
            "AlphaError",
            "first kind",
            vec![frame("a", "a.py", 1, true)],
            None,
        ),
    )
    .await;
    send_event(
        &dsn,
        error_event(
            "BetaError",
            "second kind",
            vec![frame("b", "b.py", 2, true)],
            None,
        ),
    )
    .await;
    let alpha = issue_id(&s, pid, "AlphaError").await;
    issue_id(&s, pid, "BetaError").await;

    let (email, password) = user(&s, Role::Viewer).await;
    b.login(&s, &email, &password).await;
    b.c.goto(&s.url(&format!("/#/projects/{pid}/issues")))
        .await
        .unwrap();
    b.wait_js(
        "both issues",
        "return document.querySelectorAll('#issue-list .issue-row').length === 2",
    )
    .await;
    assert_eq!(b.rows().await, 2);
    // No bulk actions for a viewer.
    assert_eq!(
        b.js("return document.querySelectorAll('.bulkbar, [data-bulk]').length")
            .await,
        json!(0)
    );
    b.type_into("#search", "is:unresolved AlphaError\n").await;
    b.wait_js(
        "the filtered list",
        "const r = document.querySelectorAll('#issue-list .issue-row'); return r.length === 1 && r[0].textContent.includes('AlphaError')",
    )
    .await;

    // The detail view shows no action buttons to a viewer.
    b.c.goto(&s.url(&format!("/#/issues/{alpha}")))
        .await
        .unwrap();
    b.wait_js(
        "the detail view",
        "return !!document.getElementById('issue-title')",
    )
    .await;
    let actions = b
        .js("return document.querySelectorAll('[data-action]').length")
        .await;
    assert_eq!(actions, json!(0), "a viewer sees no state-changing buttons");

    // And the API refuses the action anyway.
    let viewer = s.client(Role::Viewer).await;
    let r = viewer
        .post(&format!("/api/issues/{alpha}/status"))
        .json(&json!({"status": "resolved"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = viewer
        .delete(&format!("/api/issues/{alpha}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    b.close().await;
    s.stop().await;
}

/// The system screen shows the bus consumers and the version; the projects screen creates a
/// project and shows its DSN with copy buttons and SDK snippets.
#[tokio::test]
async fn system_and_projects_screens() {
    let s = TestServer::start().await;
    let Some(b) = Browser::start().await else {
        return;
    };
    let (email, password) = user(&s, Role::Owner).await;
    b.login(&s, &email, &password).await;
    b.c.goto(&s.url("/#/system")).await.unwrap();
    let version = b
        .wait_js(
            "the version",
            "const v = document.getElementById('version'); return v && v.textContent",
        )
        .await;
    assert_eq!(version, json!(env!("CARGO_PKG_VERSION")));
    b.wait_js(
        "the consumers table",
        "return !!document.getElementById('consumers')",
    )
    .await;
    b.wait_js(
        "the users table",
        "return !!document.getElementById('users')",
    )
    .await;
    b.screenshot("system").await;
    // A new API token is shown once, and it works.
    b.type_into("#token-label", "ci-deploy").await;
    b.click("#token-form button[type=submit]").await;
    let secret = b
        .wait_js(
            "the new token",
            "const t = document.getElementById('new-token'); return t && t.textContent",
        )
        .await;
    let secret = secret.as_str().unwrap().to_string();
    let r = s
        .http
        .get(s.url("/api/projects"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the token shown once authenticates");

    b.c.goto(&s.url("/#/projects")).await.unwrap();
    b.type_into("#new-project-name", "snippets").await;
    b.click("#new-project button[type=submit]").await;
    let dsn = b
        .wait_js(
            "the DSN",
            "const d = document.querySelector('#keys .dsn-text'); return d && d.textContent",
        )
        .await;
    for tab in [
        "Python",
        "Node",
        "Browser (Sentry SDK)",
        "Browser (capture.js)",
        "Rust",
    ] {
        b.click(&format!("button[data-tab={tab:?}]")).await;
        let text = b
            .wait_js(
                "the snippet",
                "const e = document.getElementById('snippet'); return e && e.textContent",
            )
            .await;
        assert!(
            text.as_str().unwrap().contains(dsn.as_str().unwrap()),
            "{tab} snippet has the DSN: {text}"
        );
    }
    b.close().await;
    s.stop().await;
}

/// The SSE endpoint streams committed bus events to a signed-in client (no browser needed).
#[tokio::test]
async fn live_endpoint_streams_bus_messages() {
    let s = TestServer::start().await;
    let viewer = s.client(Role::Viewer).await;
    let r = s
        .http
        .get(s.url("/api/live?subjects=issue.>"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "anonymous callers get no stream");
    let r = viewer
        .get("/api/live?subjects=bad..subject")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let mut r = viewer
        .get("/api/live?subjects=issue.>,test.ping")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers().get("content-type").unwrap(),
        "text/event-stream"
    );
    let mut seen = String::new();
    // The first frame says the stream is live; after it, publish and read the message.
    while !seen.contains("event: ready") {
        let chunk = tokio::time::timeout(WAIT, r.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    s.state.bus.publish("other.thing", json!({"skip": true}));
    s.state
        .bus
        .publish("test.ping", json!({"text": "<b>hello</b>"}));
    while !seen.contains(r#""subject":"test.ping""#) {
        let chunk = tokio::time::timeout(WAIT, r.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        !seen.contains("other.thing"),
        "unsubscribed subjects are filtered: {seen}"
    );
    let data = seen
        .lines()
        .find(|l| l.starts_with("data: ") && l.contains(r#""subject":"test.ping""#))
        .unwrap();
    let msg: Value = serde_json::from_str(&data["data: ".len()..]).unwrap();
    assert_eq!(msg["payload"]["text"], "<b>hello</b>");
    // An open stream must not hold up graceful shutdown.
    tokio::time::timeout(WAIT, s.stop())
        .await
        .expect("the server stops with a live stream open");
    drop(r);
}

/// Static assets are compressed and revalidated with an ETag.
#[tokio::test]
async fn static_assets_are_compressed_with_etags() {
    let s = TestServer::start().await;
    let r = s
        .http
        .get(s.url("/static/app.css"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers().get("content-encoding").unwrap(), "gzip");
    let etag = r.headers().get("etag").unwrap().clone();
    let r = s
        .http
        .get(s.url("/static/app.css"))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    // Every module the dashboard loads is embedded.
    for path in [
        "/",
        "/static/app.js",
        "/static/js/dom.js",
        "/static/js/api.js",
        "/static/js/ui.js",
        "/static/js/views/issues.js",
        "/static/js/views/issue.js",
    ] {
        let r = s.http.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    s.stop().await;
}

/// Anonymous visitors land on the login form: the page's modules and stylesheet load under the
/// strict CSP (the form exists only if the scripts ran; the colours only if the CSS applied).
#[tokio::test]
async fn anonymous_visitor_sees_login_under_csp() {
    let s = TestServer::start().await;
    let Some(b) = Browser::start().await else {
        return;
    };
    b.c.goto(&s.url("/")).await.unwrap();
    b.wait_js(
        "the login or setup form",
        "return !!(document.getElementById('login-email') || document.getElementById('setup-email'))",
    )
    .await;
    let hash = b.js("return location.hash").await;
    assert!(
        matches!(hash.as_str(), Some("#/login" | "#/setup")),
        "anonymous users are sent to login or setup: {hash}"
    );
    let styled = b
        .js("return getComputedStyle(document.querySelector('.panel')).borderTopStyle")
        .await;
    assert_eq!(styled, json!("solid"), "app.css applied");
    assert!(
        b.js("return document.getElementById('topbar').hidden")
            .await
            == json!(true),
        "no navigation before signing in"
    );
    b.screenshot("login").await;
    b.close().await;
    s.stop().await;
}

/// The alerts and mail screens render their lists (or say the part is not in this build)
/// without errors.
#[tokio::test]
async fn alerts_and_mail_screens() {
    let s = TestServer::start().await;
    let Some(b) = Browser::start().await else {
        return;
    };
    let (email, password) = user(&s, Role::Owner).await;
    // A channel and a rule, when this build has alerts, so the tables have rows.
    let admin = s.client(Role::Admin).await;
    let r = admin
        .post("/api/alerts/channels")
        .json(&json!({"name": "ops <b>mail</b>", "type": "email", "to": ["ops@example.com"]}))
        .send()
        .await
        .unwrap();
    let with_alerts = r.status().is_success();
    if with_alerts {
        let ch: Value = r.json().await.unwrap();
        let id = ch["id"].as_u64().or(ch["channel"]["id"].as_u64()).unwrap();
        let r = admin
            .post("/api/alerts/rules")
            .json(
                &json!({"name": "New issues", "when": {"type": "issue_created"}, "channels": [id]}),
            )
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }
    b.login(&s, &email, &password).await;
    for (hash, panels) in [("#/alerts", 3), ("#/mail", 3)] {
        b.c.goto(&s.url(&format!("/{hash}"))).await.unwrap();
        b.wait_js(
            &format!("the {hash} panels"),
            &format!("return document.querySelectorAll('#app .panel').length >= {panels}"),
        )
        .await;
        let errors = b
            .js("return [...document.querySelectorAll('#app .error-box')].map(e => e.textContent)")
            .await;
        assert_eq!(errors, json!([]), "{hash} shows no errors");
        if with_alerts && hash == "#/alerts" {
            b.wait_js(
                "the rule and channel rows",
                "const t = document.getElementById('app').textContent; return t.includes('New issues') && t.includes('ops <b>mail</b>')",
            )
            .await;
        }
        b.screenshot(&hash[2..]).await;
    }
    b.close().await;
    s.stop().await;
}

/// The detail view's actions reach the API: comment, assign to me, mute; then bulk resolve
/// from the list with the keyboard (x selects) and the bulk bar.
#[tokio::test]
async fn issue_actions_and_bulk_resolve() {
    let s = TestServer::start().await;
    let Some(b) = Browser::start().await else {
        return;
    };
    let (pid, _, dsn) = s.project("actions").await;
    for ty in ["GammaError", "DeltaError"] {
        send_event(
            &dsn,
            error_event(ty, "x", vec![frame("f", "f.py", 1, true)], None),
        )
        .await;
    }
    let gamma = issue_id(&s, pid, "GammaError").await;
    issue_id(&s, pid, "DeltaError").await;
    let (email, password) = user(&s, Role::Admin).await;
    b.login(&s, &email, &password).await;

    b.c.goto(&s.url(&format!("/#/issues/{gamma}")))
        .await
        .unwrap();
    b.type_into("#comment-text", "Looking into it <b>now</b>")
        .await;
    b.click("#comment-form button[type=submit]").await;
    b.wait_js(
        "the comment",
        "return [...document.querySelectorAll('#comments .text')].some(e => e.textContent === 'Looking into it <b>now</b>')",
    )
    .await;
    b.js("const s = document.querySelector('[data-action=assign]'); s.value = s.options[1].value; s.dispatchEvent(new Event('change')); return 1")
        .await;
    b.wait_js(
        "the assignment",
        "return /assigned to you/.test(document.querySelector('.detail-head').textContent)",
    )
    .await;
    b.js("const s = document.querySelector('[data-action=mute]'); s.value = 'forever'; s.dispatchEvent(new Event('change')); return 1")
        .await;
    b.wait_js(
        "the muted badge",
        "return [...document.querySelectorAll('.detail-head .badge')].some(e => e.textContent === 'muted')",
    )
    .await;
    let hist = b
        .js("return document.getElementById('history').textContent")
        .await;
    assert!(hist.as_str().unwrap().contains("muted"), "{hist}");

    // Bulk: select the remaining unresolved issue with the keyboard and resolve it.
    b.c.goto(&s.url(&format!("/#/projects/{pid}/issues")))
        .await
        .unwrap();
    b.wait_js(
        "one unresolved issue",
        "return document.querySelectorAll('#issue-list .issue-row').length === 1",
    )
    .await;
    let body = b.c.find(Locator::Css("body")).await.unwrap();
    body.send_keys("j").await.unwrap();
    b.c.active_element()
        .await
        .unwrap()
        .send_keys("x")
        .await
        .unwrap();
    b.wait_js(
        "the bulk buttons to enable",
        "return !document.querySelector('[data-bulk=resolved]').disabled",
    )
    .await;
    b.click("[data-bulk=resolved]").await;
    b.wait_js(
        "the list to empty",
        "return !!document.getElementById('no-issues')",
    )
    .await;
    b.close().await;
    s.stop().await;
}
