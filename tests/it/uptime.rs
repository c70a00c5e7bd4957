//! Uptime pieces seen by a real client. The monitors themselves are not wired into the server
//! yet (issue 15 lands after the shared-pieces refactor); until then the status page renderer
//! is checked in real Chromium: hostile names arrive as text, the page needs no script, the
//! bars carry their figures on hover and the CSS applies.

use axum::response::Html;
use axum::routing::get;
use hearth::uptime::monitor::Status;
use hearth::uptime::rollup::{Bucket, Resolution, SampleState, UptimeFigures, daily_bars};
use hearth::uptime::status_page::{
    IncidentUpdate, IncidentView, MonitorView, StatusPageView, UpdateState, render,
};
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use crate::browser::Browser;

const EVIL: &str = "<script>window.__pwned=1</script><img src=x onerror=window.__pwned=2>";

fn view(now: Timestamp, logo: String) -> StatusPageView {
    let mut yesterday =
        Bucket::empty(Resolution::Day.bucket_start(now - SignedDuration::from_hours(24)));
    for _ in 0..19 {
        yesterday.add(SampleState::Up, None);
    }
    yesterday.add(SampleState::Down, None);
    let mut today = Bucket::empty(Resolution::Day.bucket_start(now));
    today.add(SampleState::Up, None);
    let bars = daily_bars(&[yesterday, today], now, 90);
    let monitor = |name: &str, status| MonitorView {
        name: name.into(),
        status,
        in_maintenance: false,
        figures: UptimeFigures {
            h24: Some(1.0),
            d7: Some(0.995),
            d30: Some(0.99),
            d90: Some(0.98),
        },
        bars: bars.clone(),
    };
    StatusPageView {
        title: format!("Status {EVIL}"),
        description: Some(EVIL.into()),
        logo_url: Some(logo),
        generated_at: now,
        monitors: vec![monitor(EVIL, Status::Up), monitor("Database", Status::Down)],
        incidents: vec![IncidentView {
            title: EVIL.into(),
            started: now - SignedDuration::from_mins(30),
            resolved: None,
            monitors: vec!["Database".into()],
            updates: vec![IncidentUpdate {
                at: now - SignedDuration::from_mins(10),
                state: UpdateState::Investigating,
                message: EVIL.into(),
            }],
        }],
        maintenance: Vec::new(),
    }
}

#[tokio::test]
async fn status_page_in_chromium_shows_hostile_names_as_text_and_bars_with_figures() {
    // For the test's own HTTP client that talks to chromedriver (no Hearth server here).
    crate::common::install_crypto();
    let Some(browser) = Browser::start().await else {
        return;
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let html = render(&view(Timestamp::now(), format!("{base}/logo.png")));
    let app = axum::Router::new().route("/status", get(move || async move { Html(html) }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    browser.c.goto(&format!("{base}/status")).await.unwrap();
    assert_eq!(browser.c.title().await.unwrap(), format!("Status {EVIL}"));
    let seen = browser
        .c
        .execute(
            r#"
            const first = document.querySelectorAll('.monitor')[0];
            const bars = first.querySelectorAll('.bar');
            return {
                scripts: document.scripts.length,
                images: document.images.length,
                pwned: window.__pwned === undefined ? null : window.__pwned,
                name: first.querySelector('.name').textContent,
                incident: document.querySelector('.incident .update').textContent,
                bars: document.querySelectorAll('.bar').length,
                yesterday: bars[88].title,
                today: bars[89].title,
                banner: document.querySelector('.banner').textContent,
                outage_color: getComputedStyle(document.querySelector('.banner')).backgroundColor,
                degraded_color: getComputedStyle(bars[88]).backgroundColor,
            };
            "#,
            vec![],
        )
        .await
        .unwrap();
    browser.close().await;
    assert_eq!(seen["scripts"], 0, "{seen}");
    assert_eq!(seen["images"], 1, "only the logo: {seen}");
    assert_eq!(seen["pwned"], Value::Null, "{seen}");
    assert_eq!(seen["name"], EVIL);
    assert!(seen["incident"].as_str().unwrap().ends_with(EVIL), "{seen}");
    assert_eq!(seen["bars"], 180);
    assert!(
        seen["yesterday"]
            .as_str()
            .unwrap()
            .ends_with(": 95.00% up, 1 failed checks"),
        "{seen}"
    );
    assert!(seen["today"].as_str().unwrap().ends_with(": 100.00% up"));
    assert_eq!(seen["banner"], "Partial outage");
    // The stylesheet applies: the partial-outage banner and a degraded day are amber.
    assert_eq!(seen["outage_color"], "rgb(212, 167, 44)");
    assert_eq!(seen["degraded_color"], "rgb(212, 167, 44)");
}
