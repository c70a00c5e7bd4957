//! The chat in a real browser: the widget embedded by its snippet in a page served from
//! another origin (with a strict CSP of its own) talks to an agent signed in to the dashboard
//! in another window, against the real binary.

use std::time::Duration;

use fantoccini::Locator;
use serde_json::Value;

use crate::binary::Hearth;
use crate::browser::Browser;
use crate::common::{free_port, wait_for};

const WAIT: Duration = Duration::from_secs(30);

async fn js(b: &Browser, script: &str) -> Value {
    b.c.execute(script, vec![]).await.expect("execute script")
}

/// Polls `script` until it returns something truthy.
async fn wait_js(b: &Browser, what: &str, script: &str) -> Value {
    wait_for(what, WAIT, || async {
        let v = b.c.execute(script, vec![]).await.ok()?;
        let truthy = match &v {
            Value::Null => false,
            Value::Bool(x) => *x,
            Value::String(s) => !s.is_empty(),
            Value::Number(n) => n.as_f64() != Some(0.0),
            _ => true,
        };
        truthy.then_some(v)
    })
    .await
}

/// A page on `http://localhost:<port>/` embedding `snippet` under a CSP that allows scripts,
/// connections and styles only from itself and Hearth: no inline code, no eval.
async fn host_page(hearth: &str, snippet: String) -> (String, tokio::task::JoinHandle<()>) {
    let port = free_port();
    let ws = hearth.replace("http://", "ws://");
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"Content-Security-Policy\" \
         content=\"default-src 'self'; script-src 'self' {hearth}; connect-src 'self' {hearth} {ws}; \
         style-src 'self'; img-src 'self'\"><title>Shop</title></head><body><h1>The shop</h1>{snippet}</body></html>"
    );
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let html = html.clone();
            async move { axum::response::Html(html) }
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://localhost:{port}/"), task)
}

const SHADOW: &str =
    "const r = document.querySelector('[data-hearth-widget]'); const s = r && r.shadowRoot;";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_widget_on_another_origin_and_an_agent_in_the_dashboard_talk_both_ways() {
    // Browser::start polls chromedriver with reqwest, which needs the provider installed.
    crate::common::install_crypto();
    let Some(b) = Browser::start().await else {
        return;
    };
    let h = Hearth::start("").await;
    let t = crate::chat_support::team(&h).await;
    let sites: Value = h
        .get(&t.owner_token, "/api/chat/sites")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let snippet = sites["sites"][0]["snippet"].as_str().unwrap().to_string();
    let (page, server) = host_page(&h.base, snippet).await;

    // The agent signs in and opens the inbox (which marks them online).
    b.c.goto(&h.url("/#/login")).await.unwrap();
    wait_js(
        &b,
        "the login form",
        "return !!document.querySelector('#login-email')",
    )
    .await;
    b.c.find(Locator::Css("#login-email"))
        .await
        .unwrap()
        .send_keys("ada@example.com")
        .await
        .unwrap();
    b.c.find(Locator::Css("#login-password"))
        .await
        .unwrap()
        .send_keys("agent password 123")
        .await
        .unwrap();
    b.c.find(Locator::Css("form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_js(
        &b,
        "signed in",
        "return !document.getElementById('topbar').hidden",
    )
    .await;
    b.c.goto(&h.url("/#/chat")).await.unwrap();
    wait_js(
        &b,
        "the chat inbox",
        "return !!document.querySelector('#chat-list')",
    )
    .await;
    let agent_win = b.c.window().await.unwrap();
    wait_for("the agent online", WAIT, || async {
        let v: Value = h
            .get(&t.agent_token, "/api/chat/agents/online")
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (v["agents"].as_array()?.len() == 1).then_some(())
    })
    .await;

    // A visitor on the shop opens the widget and writes (markup stays text).
    let visitor_win = b.c.new_window(true).await.unwrap().handle;
    b.c.switch_to_window(visitor_win.clone()).await.unwrap();
    b.c.goto(&page).await.unwrap();
    wait_js(
        &b,
        "the widget bubble",
        &format!("{SHADOW} return !!(s && s.querySelector('button.b'))"),
    )
    .await;
    js(
        &b,
        &format!("{SHADOW} s.querySelector('button.b').click(); return 1"),
    )
    .await;
    let status = wait_js(
        &b,
        "the chat panel, online",
        &format!("{SHADOW} const p = s.querySelector('.p'); return p && !p.hidden && /Online/.test(s.querySelector('.s').textContent) && s.querySelector('.s').textContent"),
    )
    .await;
    assert!(status.as_str().unwrap().contains("Ada Agent"), "{status}");
    js(
        &b,
        &format!("{SHADOW} s.querySelector('.f textarea').value = 'Hello from the shop <img src=x onerror=alert(1)>'; s.querySelector('.f').requestSubmit(); return 1"),
    )
    .await;
    wait_js(
        &b,
        "the visitor's message sent",
        &format!("{SHADOW} const g = s.querySelector('.g.v'); return g && !g.classList.contains('pending')"),
    )
    .await;

    // The agent sees it arrive live, opens it, and answers with a canned response.
    b.c.switch_to_window(agent_win.clone()).await.unwrap();
    wait_js(
        &b,
        "the conversation in the inbox",
        "return !!document.querySelector('#chat-list [data-conv]')",
    )
    .await;
    js(
        &b,
        "document.querySelector('#chat-list [data-conv]').click(); return 1",
    )
    .await;
    let text = wait_js(
        &b,
        "the visitor's message in the timeline",
        "const t = document.querySelector('#chat-timeline'); return t && /Hello from the shop/.test(t.textContent) && t.textContent",
    )
    .await;
    assert!(
        text.as_str()
            .unwrap()
            .contains("<img src=x onerror=alert(1)>"),
        "shown as text: {text}"
    );
    let imgs = js(
        &b,
        "return document.querySelectorAll('#chat-timeline img').length",
    )
    .await;
    assert_eq!(imgs, 0, "visitor text became markup");
    let input = b.c.find(Locator::Css("#chat-input")).await.unwrap();
    input.send_keys("/greeting").await.unwrap();
    wait_js(
        &b,
        "the canned suggestion",
        "return !!document.querySelector('#chat-suggest [data-shortcut=greeting]')",
    )
    .await;
    input.send_keys("\u{E007}").await.unwrap(); // Enter
    wait_js(
        &b,
        "the reply in the agent's timeline",
        "return /Hi there, thanks for reaching out/.test(document.querySelector('#chat-timeline').textContent)",
    )
    .await;

    // The visitor gets it, with the agent's name.
    b.c.switch_to_window(visitor_win).await.unwrap();
    let got = wait_js(
        &b,
        "the agent's reply in the widget",
        &format!("{SHADOW} const a = [...s.querySelectorAll('.g.a')].map(x => x.textContent).join('|'); return /Hi there, thanks for reaching out/.test(a) && a"),
    )
    .await;
    assert!(got.as_str().unwrap().contains("Ada Agent"), "{got}");
    assert!(
        got.as_str().unwrap().contains("I'm Ada Agent"),
        "the variable took the agent's name: {got}"
    );
    b.close().await;
    server.abort();
    h.stop().await;
}
