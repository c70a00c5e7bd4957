//! The monitors screen in real Chromium against the real binary: the list with states and
//! response-time sparklines (hostile names as text), a monitor's detail, and the form's
//! "Test now" showing which condition failed, then creating the monitor.

use std::time::Duration;

use fantoccini::Locator;
use serde_json::{Value, json};

use crate::binary::Hearth;
use crate::browser::Browser;
use crate::common::{free_port, wait_for};

const WAIT: Duration = Duration::from_secs(30);
const EVIL: &str = "<img src=x onerror=window.__pwned=1>";

async fn wait_js(b: &Browser, what: &str, script: &str) -> Value {
    wait_for(what, WAIT, || async {
        let v = b.c.execute(script, vec![]).await.ok()?;
        let truthy = match &v {
            Value::Null => false,
            Value::Bool(x) => *x,
            Value::Number(n) => n.as_f64() != Some(0.0),
            Value::String(s) => !s.is_empty(),
            Value::Array(a) => !a.is_empty(),
            Value::Object(_) => true,
        };
        truthy.then_some(v)
    })
    .await
}

async fn type_into(b: &Browser, css: &str, text: &str) {
    wait_js(b, css, &format!("return !!document.querySelector({css:?})")).await;
    let el = b.c.find(Locator::Css(css)).await.unwrap();
    el.clear().await.unwrap();
    el.send_keys(text).await.unwrap();
}

async fn click(b: &Browser, css: &str) {
    wait_js(b, css, &format!("return !!document.querySelector({css:?})")).await;
    b.c.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

#[tokio::test]
async fn monitors_screen_lists_shows_detail_and_tests_a_form_in_chromium() {
    let h = Hearth::start("").await;
    let owner = h.owner().await;
    let Some(b) = Browser::start().await else {
        return;
    };
    let closed = free_port();
    for (name, slug, url) in [
        ("Self".to_string(), "self", h.url("/health/live")),
        (
            format!("Broken {EVIL}"),
            "broken",
            format!("http://127.0.0.1:{closed}/"),
        ),
    ] {
        let r = h
            .post(&owner.token, "/api/monitors")
            .json(
                &json!({"name": name, "slug": slug, "interval": "1s", "failure_threshold": 1,
                          "check": {"kind": "http", "url": url, "timeout": 1000}}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }

    b.c.goto(&h.url("/#/login")).await.unwrap();
    type_into(&b, "#login-email", &owner.email).await;
    type_into(&b, "#login-password", &owner.password).await;
    click(&b, "form button[type=submit]").await;
    wait_js(
        &b,
        "signed in",
        "return !document.getElementById('topbar').hidden",
    )
    .await;

    b.c.goto(&h.url("/#/monitors")).await.unwrap();
    // States arrive with the checks; the list refreshes them.
    let states = wait_js(
        &b,
        "both states on screen",
        "const s = [...document.querySelectorAll('#monitors tr[data-slug] [data-state]')].map(e => e.dataset.state);
         return s.includes('up') && s.includes('down') ? s : null",
    )
    .await;
    assert_eq!(states.as_array().unwrap().len(), 2);
    let text = wait_js(
        &b,
        "the hostile name as text",
        "const r = document.querySelector('tr[data-slug=broken] a'); return r && r.textContent",
    )
    .await;
    assert_eq!(text, format!("Broken {EVIL}"));
    wait_js(
        &b,
        "a response-time sparkline",
        "return document.querySelectorAll('tr[data-slug=self] svg.spark polyline').length",
    )
    .await;
    let pwned =
        b.c.execute("return window.__pwned || 0", vec![])
            .await
            .unwrap();
    assert_eq!(pwned, json!(0), "no markup from a monitor name ran");

    // Detail, reached by slug as alert links do.
    b.c.goto(&h.url("/#/monitors/broken")).await.unwrap();
    let name = wait_js(
        &b,
        "the detail page",
        "const e = document.getElementById('monitor-name'); return e && e.textContent",
    )
    .await;
    assert_eq!(name, format!("Broken {EVIL}"));
    let incident = wait_js(
        &b,
        "an ongoing incident",
        "const e = document.querySelector('#incidents'); return e && e.textContent",
    )
    .await;
    assert!(incident.as_str().unwrap().contains("ongoing"), "{incident}");

    // The form: "Test now" shows the failing condition; then create.
    b.c.goto(&h.url("/#/monitors/new")).await.unwrap();
    type_into(&b, "#monitor-form [name=name]", "Health").await;
    type_into(&b, "#monitor-form [name=target]", &h.url("/health/live")).await;
    type_into(&b, "#monitor-form [name=interval]", "5s").await;
    type_into(&b, "#monitor-form [name=conditions]", "[STATUS] == 500").await;
    click(&b, "#test-now").await;
    let verdict = wait_js(
        &b,
        "the verdict",
        "const e = document.getElementById('verdict'); return e && e.textContent",
    )
    .await;
    assert!(verdict.as_str().unwrap().starts_with("Down"), "{verdict}");
    let outcomes = wait_js(
        &b,
        "the outcomes",
        "return [...document.querySelectorAll('.outcomes li.error')].map(e => e.textContent).join('|')",
    )
    .await;
    assert!(
        outcomes.as_str().unwrap().contains("[STATUS] == 500"),
        "{outcomes}"
    );
    click(&b, "#monitor-form button[type=submit]").await;
    let name = wait_js(
        &b,
        "the new monitor's page",
        "const e = document.getElementById('monitor-name'); return e && e.textContent",
    )
    .await;
    assert_eq!(name, "Health");
    let list: Value = h
        .get(&owner.token, "/api/monitors")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["monitors"].as_array().unwrap().len(), 3);
    b.close().await;
    assert!(h.stop().await);
}
