//! Public status pages through the real binary: opt-in per group, HTML without script (hostile
//! names as text), JSON, SVG badges, cache headers, 404 for unpublished groups, rate limit.

use serde_json::{Value, json};

use crate::binary::Hearth;
use crate::common::wait_for;

const EVIL: &str = "<script>alert(1)</script>";

#[tokio::test]
async fn a_published_group_serves_html_json_and_badges_to_anyone() {
    let h = Hearth::start("").await;
    let tok = h.owner().await.token;
    // Monitors need something to check: the server's own health endpoint.
    let health = h.url("/health/live");
    for (name, slug, group) in [
        (format!("API {EVIL}"), "api", Some("public")),
        ("Internal DB".to_string(), "db", None),
    ] {
        let r = h
            .post(&tok, "/api/monitors")
            .json(
                &json!({"name": name, "slug": slug, "group": group, "interval": "1s",
                          "check": {"kind": "http", "url": health}}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }
    let anon = reqwest::Client::new();
    // Not published yet: nothing to see.
    let r = anon.get(h.url("/status/public")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = h
        .http
        .put(h.url("/api/status-pages/public"))
        .bearer_auth(&tok)
        .json(&json!({"title": "Example status", "description": "All our public services"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let r = h
        .http
        .put(h.url("/api/status-pages/other"))
        .bearer_auth(&tok)
        .json(&json!({"title": "x", "logo_url": "javascript:alert(1)"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "a logo must be an http(s) URL");

    // Wait until the monitor has been checked (pages are cached for 30 s, so the first page
    // read has to come after that).
    let list_up = || async {
        let v: Value = h
            .get(&tok, "/api/monitors")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["monitors"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["state"]["status"] == "up")
            .then_some(())
    };
    wait_for(
        "both monitors up",
        std::time::Duration::from_secs(60),
        list_up,
    )
    .await;

    let r = anon.get(h.url("/status/public")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(r.headers()["cache-control"], "public, max-age=30");
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("script-src"),
        "{csp}"
    );
    let html = r.text().await.unwrap();
    assert!(html.contains("Example status"), "{html}");
    assert!(
        html.contains("API &lt;script&gt;alert(1)&lt;"),
        "names are text: {html}"
    );
    assert!(!html.contains(EVIL), "no raw user markup");
    assert!(!html.contains("<script"), "no script at all");
    assert!(
        !html.contains("Internal DB"),
        "monitors outside the group stay private"
    );

    let v: Value = anon
        .get(h.url("/status/public/json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["overall"], "operational", "{v}");
    let monitors = v["monitors"].as_array().unwrap();
    assert_eq!(monitors.len(), 1, "{v}");
    assert_eq!(monitors[0]["status"], "up");
    assert_eq!(monitors[0]["bars"].as_array().unwrap().len(), 90);
    assert_eq!(monitors[0]["figures"]["h24"], 1.0, "{v}");

    let r = anon
        .get(h.url("/status/public/badge/api.svg"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/svg+xml");
    let svg = r.text().await.unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("100"), "{svg}");
    let r = anon
        .get(h.url("/status/public/badge/db.svg"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "a badge only for monitors on the page");

    // Anonymous readers are rate-limited per address.
    let mut last = 0;
    for _ in 0..310 {
        last = anon
            .get(h.url("/status/public/json"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if last == 429 {
            break;
        }
    }
    assert_eq!(last, 429);
    assert!(h.stop().await);
}
