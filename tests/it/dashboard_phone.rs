//! Issue 16 (dash): no dashboard screen is wider than a 390 px phone screen. One Chromium
//! session against the real binary fed with the official SDKs' requests visits every screen
//! at 390 × 844, asserts that the page does not scroll sideways, and saves a screenshot of
//! each (`dash-phone-*.png`, next to the other dashboard screenshots).

use serde_json::{Value, json};

use crate::binary::Hearth;
use crate::browser::Browser;
use crate::dashboard_screens::{
    ALL, dsn_key, fixture, goto, issue_id, js, replay, shot, sign_in, wait_js,
};

const BROWSER_EVENT: &str = "4f4f308a7d98440280b6795b79f3ed1b";

/// Data for the screens that list things: a heartbeat monitor, an alert channel and rule.
async fn seed(h: &Hearth, token: &str) {
    let r = h
        .post(token, "/api/monitors")
        .json(&json!({ "name": "Nightly backup", "heartbeat": {
            "schedule": { "kind": "interval", "value": "1d" }, "grace": "1h", "max_runtime": "1h" } }))
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "monitor: {}",
        r.text().await.unwrap()
    );
    let r = h
        .post(token, "/api/alerts/channels")
        .json(&json!({ "name": "Ops mail", "type": "email", "to": ["ops@example.com"] }))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    let channel = v["id"].as_u64().unwrap_or_else(|| panic!("{v}"));
    let r = h
        .post(token, "/api/alerts/rules")
        .json(
            &json!({ "name": "Every new issue in any project, mailed to the on-call team",
            "when": { "type": "issue_created" }, "channels": [channel] }),
        )
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "rule: {}", r.text().await.unwrap());
}

/// How wide the page is against the window, and (for the failure message) the elements that
/// stick out.
async fn overflow(b: &Browser) -> (u64, u64, Value) {
    let w = js(
        b,
        "return [document.scrollingElement.scrollWidth, window.innerWidth]",
    )
    .await;
    let wide = js(
        b,
        "const clipped = (e) => { for (let p = e.parentElement; p && p !== document.body; p = p.parentElement) { if (getComputedStyle(p).overflowX !== 'visible' && p.getBoundingClientRect().right <= window.innerWidth + 1) return true; } return false; };
         return [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > window.innerWidth + 1 && !clipped(e)).slice(-12).map(e => e.tagName + '.' + e.className + '#' + e.id + ' ' + Math.round(e.getBoundingClientRect().right))
           .concat((() => { const out = []; const w = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT); const r = document.createRange();
             for (let n = w.nextNode(); n && out.length < 6; n = w.nextNode()) { r.selectNodeContents(n); const right = r.getBoundingClientRect().right;
               if (right > window.innerWidth + 1 && !clipped(n)) out.push('text in ' + n.parentElement.tagName + '.' + n.parentElement.className + ' ' + Math.round(right) + ': ' + n.textContent.slice(0, 60)); }
             return out; })())",
    )
    .await;
    (w[0].as_u64().unwrap(), w[1].as_u64().unwrap(), wide)
}

/// Every screen: (hash, what shows it has loaded, screenshot).
fn screens(pid: u64, zd: u64, web: u64) -> Vec<(String, &'static str, &'static str)> {
    vec![
        ("/projects".into(), "#project-list", "dash-phone-projects"),
        (format!("/projects/{pid}"), "#keys", "dash-phone-project"),
        (
            format!("/projects/{pid}/issues"),
            "#issue-list .issue-row",
            "dash-phone-issues",
        ),
        (
            format!("/issues/{zd}"),
            "#frequency svg",
            "dash-phone-issue",
        ),
        (
            format!("/issues/{web}/events/{BROWSER_EVENT}"),
            "#exceptions",
            "dash-phone-event",
        ),
        (
            format!("/projects/{pid}/stats"),
            ".view .panel",
            "dash-phone-stats",
        ),
        (
            format!("/projects/{pid}/feedback"),
            "#feedback, #feedback-empty",
            "dash-phone-feedback",
        ),
        (
            format!("/projects/{pid}/releases"),
            "#releases",
            "dash-phone-releases",
        ),
        (
            format!("/projects/{pid}/transactions"),
            "#tx-summary",
            "dash-phone-transactions",
        ),
        (
            format!("/projects/{pid}/client-reports"),
            "#client-reports",
            "dash-phone-client-reports",
        ),
        (
            format!("/projects/{pid}/crons"),
            "#crons",
            "dash-phone-crons",
        ),
        (
            format!("/projects/{pid}/sourcemaps"),
            "#sourcemaps-help",
            "dash-phone-sourcemaps",
        ),
        ("/monitors".into(), "#monitors", "dash-phone-monitors"),
        (
            "/monitors/nightly-backup".into(),
            ".view .panel.card",
            "dash-phone-monitor",
        ),
        (
            "/monitors/new".into(),
            "#monitor-form",
            "dash-phone-monitor-new",
        ),
        ("/alerts".into(), "#rules", "dash-phone-alerts"),
        ("/mail".into(), "#mail-state", "dash-phone-mail"),
        ("/chat".into(), "#chat-list", "dash-phone-chat"),
        (
            "/chat/suggestions".into(),
            "#suggest-figures",
            "dash-phone-chat-suggestions",
        ),
        ("/system".into(), "#users", "dash-phone-system"),
    ]
}

#[tokio::test]
async fn no_dashboard_screen_scrolls_sideways_at_390_px() {
    if fixture("py_zero_division.1").is_none() {
        crate::common::skip(
            "shared/fixtures/sentry is missing (set HEARTH_SHARED_DIR to the shared/ directory)",
        );
        return;
    }
    let h = Hearth::start("").await;
    let owner = h.owner().await;
    let (pid, dsn) = h.project(&owner.token, "Shop").await;
    let key = dsn_key(&dsn);
    for name in ALL {
        replay(&h, pid, &key, name).await;
    }
    seed(&h, &owner.token).await;
    let zd = issue_id(&h, &owner, pid, "ZeroDivisionError").await;
    let web = issue_id(&h, &owner, pid, "Checkout form invalid").await;
    let Some(b) = Browser::start().await else {
        return;
    };
    b.c.set_window_size(390, 844).await.unwrap();
    sign_in(&b, &h, &owner).await;

    let screens = screens(pid, zd, web);
    let mut wide = Vec::new();
    for (hash, ready, name) in &screens {
        goto(&b, &h, hash).await;
        wait_js(
            &b,
            &format!("{hash} ({ready})"),
            &format!("return !!document.querySelector({ready:?})"),
        )
        .await;
        let (scroll, inner, what) = overflow(&b).await;
        if scroll > inner {
            wide.push(format!("{hash}: {scroll} > {inner}: {what}"));
        }
        shot(&b, name).await;
    }
    // Signed out: the sign-in page.
    b.c.delete_all_cookies().await.unwrap();
    b.c.goto(&h.url("/#/login")).await.unwrap();
    b.c.refresh().await.unwrap();
    wait_js(
        &b,
        "the sign-in page",
        "return !!document.querySelector('input[type=password]')",
    )
    .await;
    let (scroll, inner, what) = overflow(&b).await;
    if scroll > inner {
        wide.push(format!("/login: {scroll} > {inner}: {what}"));
    }
    shot(&b, "dash-phone-login").await;
    assert!(wide.is_empty(), "wider than 390 px:\n{}", wide.join("\n"));
    h.stop().await;
}
