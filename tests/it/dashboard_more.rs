//! Issue 16 (dash): the screens and states the first dashboard test does not reach, driven in
//! Chromium against the real binary fed with the official SDKs' requests: the favicon, an
//! event's HTTP request and breadcrumbs formatted per category, the issue history in words,
//! alert channels edited and deleted, a mail message opened with its delivery log (through a
//! real SMTP server), and the charts in dark mode. Screenshots as in `dashboard_screens`.

use std::time::Duration;

use fantoccini::Locator;
use serde_json::{Value, json};

use crate::binary::{Hearth, Owner};
use crate::browser::Browser;
use crate::common::wait_for;
use crate::dashboard_screens::{
    ALL, click, dsn_key, fixture, goto, issue_id, js, replay, shot, sign_in, type_into, wait_js,
};
use crate::mail_support::{SmtpServer, free_port};

const WAIT: Duration = Duration::from_secs(30);

/// The real @sentry/browser event as a new event with breadcrumbs of the three formatted
/// categories and a query string, sent as an envelope; returns its id.
async fn browser_event_with_crumbs(h: &Hearth, pid: u64, key: &str) -> String {
    let f = fixture("browser_captured.3").unwrap();
    let text = String::from_utf8(f.envelope).unwrap();
    let payload = text.lines().nth(2).unwrap();
    let mut ev: Value = serde_json::from_str(payload).unwrap();
    let id = uuid::Uuid::new_v4().simple().to_string();
    ev["event_id"] = json!(id);
    ev["request"]["url"] = json!("http://127.0.0.1:9899/checkout?step=2");
    let mut crumbs = ev["breadcrumbs"].as_array().cloned().unwrap_or_default();
    crumbs.extend([
        json!({"timestamp": 1795314582.1, "category": "fetch", "type": "http",
               "data": {"method": "POST", "url": "/api/cart", "status_code": 500}}),
        json!({"timestamp": 1795314582.2, "category": "navigation",
               "data": {"from": "/", "to": "/checkout"}}),
        json!({"timestamp": 1795314582.3, "category": "console", "level": "warning",
               "message": "cart is empty"}),
    ]);
    ev["breadcrumbs"] = json!(crumbs);
    let body = format!("{{\"event_id\":\"{id}\"}}\n{{\"type\":\"event\"}}\n{ev}\n");
    let r = h
        .http
        .post(h.url(&format!(
            "/api/{pid}/envelope/?sentry_key={key}&sentry_version=7"
        )))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    id
}

/// Scrolls the element into the middle of the window, for the screenshot.
async fn into_view(b: &Browser, css: &str) {
    js(
        b,
        &format!("document.querySelector({css:?}).scrollIntoView({{block: 'center'}}); return 1"),
    )
    .await;
}

async fn favicon(b: &Browser, h: &Hearth) {
    let href = wait_js(
        b,
        "the favicon link",
        "const l = document.querySelector('link[rel~=icon]'); return l && l.href",
    )
    .await;
    let r = h.http.get(href.as_str().unwrap()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let ty = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ty.contains("svg"), "{ty}");
}

async fn request_and_breadcrumbs(b: &Browser, h: &Hearth, web: u64, event: &str) {
    goto(b, h, &format!("/issues/{web}/events/{event}")).await;
    let req = wait_js(
        b,
        "the HTTP request",
        "const r = document.getElementById('request'); return r && r.textContent",
    )
    .await;
    let req = req.as_str().unwrap();
    assert!(
        req.contains("GET") && req.contains("/checkout?step=2"),
        "{req}"
    );
    assert!(req.contains("Query") && req.contains("step"), "{req}");
    assert!(req.contains("User-Agent"), "{req}");
    let crumbs = js(
        b,
        "return [...document.querySelectorAll('table.crumbs tr[data-category]')].map(r => r.querySelector('.msg').textContent)",
    )
    .await;
    let crumbs: Vec<&str> = crumbs
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for want in [
        "POST /api/cart → 500",
        "/ → /checkout",
        "warning: cart is empty",
        "body > button#report",
    ] {
        assert!(crumbs.contains(&want), "{want:?} in {crumbs:?}");
    }
    let bad = js(
        b,
        "const s = document.querySelector('table.crumbs .crumb-status'); return s && s.classList.contains('bad')",
    )
    .await;
    assert_eq!(bad, json!(true), "a 500 is marked");
    into_view(b, "table.crumbs").await;
    shot(b, "dash-event-request-breadcrumbs").await;
}

/// Mute for an hour, reopen, resolve in the next release: the history says each in words,
/// with the release it names and no ids or epoch numbers.
async fn history_in_words(b: &Browser, h: &Hearth, zd: u64) {
    goto(b, h, &format!("/issues/{zd}")).await;
    wait_js(
        b,
        "the actions",
        "return !!document.querySelector('select[data-action=mute]')",
    )
    .await;
    b.c.find(Locator::Css("select[data-action=mute]"))
        .await
        .unwrap()
        .select_by_value("1h")
        .await
        .unwrap();
    wait_js(
        b,
        "muted in words",
        "const h = document.getElementById('history'); return h && /muted it until/.test(h.textContent)",
    )
    .await;
    click(b, "button[data-action=reopen]").await;
    wait_js(
        b,
        "reopened in words",
        "const h = document.getElementById('history'); return h && /unmuted it|reopened it/.test(h.textContent)",
    )
    .await;
    click(b, "button[data-action=resolve-next]").await;
    let hist = wait_js(
        b,
        "resolved in the next release, named",
        "const h = document.getElementById('history'); return h && /resolved it in the release after/.test(h.textContent) && h.textContent",
    )
    .await;
    let hist = hist.as_str().unwrap();
    assert!(hist.contains("fixture-shop@1.4.2"), "{hist}");
    assert!(
        !hist
            .split(|c: char| !c.is_ascii_digit())
            .any(|n| n.len() >= 10),
        "an epoch in the history: {hist}"
    );
    into_view(b, "#history").await;
    shot(b, "dash-issue-history").await;
}

async fn channel_edit_and_delete(b: &Browser, h: &Hearth, owner: &Owner) {
    let r = h
        .post(&owner.token, "/api/alerts/channels")
        .json(&json!({"name": "On-call mail", "type": "email", "to": ["oncall@example.com"]}))
        .send()
        .await
        .unwrap();
    let id = r.json::<Value>().await.unwrap()["id"].as_u64().unwrap();
    goto(b, h, "/alerts").await;
    click(b, &format!("#channels button[data-edit=\"{id}\"]")).await;
    type_into(b, "#channel-name", "Night on-call mail").await;
    type_into(b, "#channel-target", "night@example.com").await;
    into_view(b, "#channel-form").await;
    shot(b, "dash-alerts-channel-edit").await;
    click(b, "#channel-save").await;
    wait_js(
        b,
        "the channel renamed",
        "const t = document.getElementById('channels'); return t && t.textContent.includes('Night on-call mail')",
    )
    .await;
    let c: Value = h
        .get(&owner.token, &format!("/api/alerts/channels/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(c["to"], json!(["night@example.com"]), "{c}");
    click(b, &format!("#channels button[data-delete=\"{id}\"]")).await;
    wait_js(
        b,
        "the confirmation",
        "return document.getElementById('confirm').open",
    )
    .await;
    click(b, "#confirm-ok").await;
    wait_js(
        b,
        "the channel gone",
        &format!("return !document.querySelector('#channels tr[data-channel=\"{id}\"]')"),
    )
    .await;
    shot(b, "dash-alerts-channels").await;
}

/// A message sent through the real relay, opened from its row with its delivery log.
async fn mail_message(b: &Browser, h: &Hearth, owner: &Owner, smtp: &SmtpServer) {
    let r = h
        .post(&owner.token, "/api/mail/send")
        .json(&json!({"to": ["ana@example.com"], "subject": "Weekly report", "text": "All green."}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    wait_for("the message at the relay", WAIT, || async {
        (!smtp.messages().is_empty()).then_some(())
    })
    .await;
    wait_for("the message marked sent", WAIT, || async {
        let v: Value = h
            .get(&owner.token, "/api/mail/messages?limit=5")
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let m = v["messages"].as_array()?.first()?.clone();
        m["status"].as_str()?.contains("sent").then_some(())
    })
    .await;
    goto(b, h, "/mail").await;
    let state = wait_js(
        b,
        "the relay state",
        "const s = document.getElementById('mail-state'); return s && s.dataset.relay",
    )
    .await;
    assert_eq!(state, json!("true"));
    click(b, "#mail-messages tr[data-message]").await;
    let log = wait_js(
        b,
        "the delivery log",
        "const l = document.getElementById('mail-log'); return l && l.textContent",
    )
    .await;
    let msg = js(
        b,
        "return document.getElementById('mail-message').textContent",
    )
    .await;
    assert!(msg.as_str().unwrap().contains("Weekly report"), "{msg}");
    assert!(log.as_str().unwrap().contains("sent"), "{log}");
    into_view(b, "#mail-message").await;
    shot(b, "dash-mail-message").await;
}

#[tokio::test]
async fn remaining_screens_in_chromium() {
    if fixture("browser_captured.3").is_none() {
        crate::common::skip(
            "shared/fixtures/sentry is missing (set HEARTH_SHARED_DIR to the shared/ directory)",
        );
        return;
    }
    let port = free_port();
    let Some(smtp) = SmtpServer::start(port, &[]).await else {
        return;
    };
    let h = Hearth::start(&format!(
        "[smtp]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\nfrom = \"Hearth <hearth@test.invalid>\"\n"
    ))
    .await;
    let owner = h.owner().await;
    let (pid, dsn) = h.project(&owner.token, "Shop").await;
    let key = dsn_key(&dsn);
    for name in ALL {
        replay(&h, pid, &key, name).await;
    }
    let event = browser_event_with_crumbs(&h, pid, &key).await;
    let zd = issue_id(&h, &owner, pid, "ZeroDivisionError").await;
    let web = issue_id(&h, &owner, pid, "Checkout form invalid").await;
    let Some(b) = Browser::start().await else {
        return;
    };
    sign_in(&b, &h, &owner).await;
    favicon(&b, &h).await;
    request_and_breadcrumbs(&b, &h, web, &event).await;
    history_in_words(&b, &h, zd).await;
    channel_edit_and_delete(&b, &h, &owner).await;
    mail_message(&b, &h, &owner, &smtp).await;
    b.close().await;
    dark_charts(&h, &owner, pid, web).await;
    smtp.stop().await;
    h.stop().await;
}

/// The charts in dark mode: issue frequency, release adoption, stats and a monitor's response
/// times (an HTTP monitor checking this server every second).
async fn dark_charts(h: &Hearth, owner: &Owner, pid: u64, web: u64) {
    let r = h
        .post(&owner.token, "/api/monitors")
        .json(&json!({"name": "Hearth itself", "interval": "1s",
            "check": {"kind": "http", "url": h.url("/health/ready")}}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let mid = r.json::<Value>().await.unwrap()["id"].as_u64().unwrap();
    wait_for("three checks", WAIT, || async {
        let v: Value = h
            .get(
                &owner.token,
                &format!("/api/monitors/{mid}/results?limit=5"),
            )
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (v["results"].as_array()?.len() >= 3).then_some(())
    })
    .await;
    let args = [
        "--force-dark-mode",
        "--blink-settings=preferredColorScheme=0",
    ];
    let Some(b) = Browser::start_with(&args).await else {
        return;
    };
    sign_in(&b, h, owner).await;
    let dark = js(
        &b,
        "return matchMedia('(prefers-color-scheme: dark)').matches",
    )
    .await;
    assert_eq!(dark, json!(true), "chromium did not switch to dark mode");
    let screens = [
        (
            format!("/issues/{web}"),
            "#frequency svg rect.bar",
            "dash-dark-issue-frequency",
        ),
        (
            format!("/projects/{pid}/releases"),
            "svg.adoption rect.bar",
            "dash-dark-releases",
        ),
        (
            format!("/projects/{pid}/stats"),
            ".view .panel svg",
            "dash-dark-stats",
        ),
        (
            "/monitors".to_string(),
            "#monitors svg.spark polyline",
            "dash-dark-monitors",
        ),
        (
            format!("/monitors/{mid}"),
            "#monitor-name",
            "dash-dark-monitor",
        ),
    ];
    for (hash, ready, name) in screens {
        goto(&b, h, &hash).await;
        wait_js(
            &b,
            &format!("{hash} ({ready})"),
            &format!("return !!document.querySelector({ready:?})"),
        )
        .await;
        // Readable: the page is dark and its text light.
        let colours = js(
            &b,
            "const c = (e, p) => getComputedStyle(e)[p].match(/\\d+/g).slice(0, 3).map(Number).reduce((a, b) => a + b, 0); return [c(document.body, 'backgroundColor'), c(document.body, 'color')]",
        )
        .await;
        let (bg, fg) = (colours[0].as_u64().unwrap(), colours[1].as_u64().unwrap());
        assert!(bg < 200 && fg > 500, "{hash}: background {bg}, text {fg}");
        shot(&b, name).await;
    }
}
