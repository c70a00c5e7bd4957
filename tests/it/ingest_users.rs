//! dash (issue 16): browser events without a user count the client's address as the user, as
//! Sentry does; the real binary behind a trusted proxy, fed the real @sentry/browser event.

use std::time::Duration;

use serde_json::Value;

use crate::binary::Hearth;
use crate::common::{skip, wait_for};
use crate::ingest::{new_id, shared_dir};

const FIXTURE_KEY: &str = "5f2c8e1a9b3d4c6e8f0a1b2c3d4e5f60";
const FIXTURE_EVENT: &str = "4f4f308a7d98440280b6795b79f3ed1b";

/// The captured browser envelope with its event id replaced by `event_id`.
fn browser_envelope(event_id: &str) -> Option<Vec<u8>> {
    let path = shared_dir().join("fixtures/sentry/browser_captured.3.envelope");
    let text = std::fs::read_to_string(path).ok()?;
    assert!(
        text.contains(FIXTURE_EVENT),
        "the fixture's event id changed"
    );
    Some(text.replace(FIXTURE_EVENT, event_id).into_bytes())
}

async fn send_from(h: &Hearth, pid: u64, key: &str, forwarded_for: &str, event_id: &str) {
    let body = browser_envelope(event_id).unwrap();
    let url = h.url(&format!(
        "/api/{pid}/envelope/?sentry_version=7&sentry_key={key}&sentry_client=sentry.javascript.browser%2F11.12.0"
    ));
    let r = h
        .http
        .post(url)
        .header("content-type", "text/plain;charset=UTF-8")
        .header("origin", "http://127.0.0.1:9899")
        .header("x-forwarded-for", forwarded_for)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

#[tokio::test]
async fn browser_events_from_two_addresses_count_two_users() {
    if browser_envelope(FIXTURE_EVENT).is_none() {
        skip("../shared/fixtures/sentry is missing (set HEARTH_SHARED_DIR)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // The test talks to the server from 127.0.0.1, which is the trusted proxy here.
    let env = [("HEARTH_SERVER__TRUSTED_PROXIES", "[\"127.0.0.1/32\"]")];
    let h = Hearth::start_in(tmp.path(), "", &env).await;
    let owner = h.owner().await;
    let (pid, dsn) = h.project(&owner.token, "web").await;
    let key = url::Url::parse(&dsn).unwrap().username().to_string();
    assert_ne!(key, FIXTURE_KEY);
    let (first, second) = (new_id(), new_id());
    // The client claims an address left of the proxy's entry: only the right-most one that is
    // not a trusted proxy is believed.
    send_from(&h, pid, &key, "10.9.9.9, 203.0.113.7", &first).await;
    send_from(&h, pid, &key, "198.51.100.20", &second).await;

    let issue: Value = wait_for("the browser issue", Duration::from_secs(20), || async {
        let v: Value = h
            .get(&owner.token, &format!("/api/projects/{pid}/issues"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let i = v["issues"].as_array()?.first()?.clone();
        (i["count"] == 2).then_some(i)
    })
    .await;
    assert_eq!(issue["user_count"], 2, "{issue}");

    let id = issue["id"].as_u64().unwrap();
    let ev: Value = h
        .get(&owner.token, &format!("/api/issues/{id}/events/{first}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = ev.to_string();
    assert!(text.contains("\"ip_address\":\"203.0.113.7\""), "{text}");
    assert!(
        !text.contains("10.9.9.9"),
        "a claimed address was believed: {text}"
    );
    let detail: Value = h
        .get(&owner.token, &format!("/api/issues/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = detail.to_string();
    assert!(text.contains("ip:198.51.100.20"), "the user tag: {text}");
    h.stop().await;
}

async fn post_envelope(h: &Hearth, pid: u64, key: &str, forwarded_for: &str, body: String) {
    let url = h.url(&format!(
        "/api/{pid}/envelope/?sentry_version=7&sentry_key={key}"
    ));
    let r = h
        .http
        .post(url)
        .header("x-forwarded-for", forwarded_for)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

/// Crash-free users per release: the real browser session (`ip_address: "{{auto}}"`) twice
/// from one address is one user; a crashed session from another address is a second, crashed
/// user; a session naming its user by `did` is a third, who crashes in an aggregate bucket.
#[tokio::test]
async fn release_health_counts_crash_free_users() {
    let dir = shared_dir().join("fixtures/sentry");
    let (Ok(first), Ok(update)) = (
        std::fs::read_to_string(dir.join("browser_captured.1.envelope")),
        std::fs::read_to_string(dir.join("browser_captured.2.envelope")),
    ) else {
        skip("../shared/fixtures/sentry is missing (set HEARTH_SHARED_DIR)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let env = [("HEARTH_SERVER__TRUSTED_PROXIES", "[\"127.0.0.1/32\"]")];
    let h = Hearth::start_in(tmp.path(), "", &env).await;
    let owner = h.owner().await;
    let (pid, dsn) = h.project(&owner.token, "web").await;
    let key = url::Url::parse(&dsn).unwrap().username().to_string();
    post_envelope(&h, pid, &key, "203.0.113.7", first).await;
    post_envelope(&h, pid, &key, "203.0.113.7", update).await;
    let session = |sid: &str, status: &str, user: &str| {
        format!(
            "{{}}\n{{\"type\":\"session\"}}\n{{\"sid\":\"{sid}\",\"init\":true,\"status\":\"{status}\",\
             \"errors\":1,{user}\"attrs\":{{\"release\":\"fixture-shop-web@3.1.0\",\
             \"ip_address\":\"{{{{auto}}}}\"}}}}\n"
        )
    };
    post_envelope(
        &h,
        pid,
        &key,
        "198.51.100.20",
        session(&new_id(), "crashed", ""),
    )
    .await;
    let did = "\"did\":\"customer-42\",";
    post_envelope(
        &h,
        pid,
        &key,
        "198.51.100.20",
        session(&new_id(), "exited", did),
    )
    .await;
    // Pre-aggregated sessions: a bucket with a distinct id is that user's (now crashed); one
    // without names nobody.
    let aggregates = "{}\n{\"type\":\"sessions\"}\n{\"attrs\":{\"release\":\"fixture-shop-web@3.1.0\"},\
        \"aggregates\":[{\"started\":\"2026-11-22T02:00:00Z\",\"did\":\"customer-42\",\"crashed\":1},\
        {\"started\":\"2026-11-22T02:00:00Z\",\"exited\":5}]}\n";
    post_envelope(&h, pid, &key, "198.51.100.20", aggregates.to_string()).await;

    let v: Value = h
        .get(&owner.token, &format!("/api/projects/{pid}/release-health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let row = v["releases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["release"] == "fixture-shop-web@3.1.0")
        .unwrap_or_else(|| panic!("{v}"))
        .clone();
    assert_eq!(row["sessions"], 9, "{row}");
    assert_eq!(row["users"], 3, "{row}");
    assert_eq!(row["crashed_users"], 2, "{row}");
    let pct = row["crash_free_users_percent"].as_f64().unwrap();
    assert!((pct - 100.0 / 3.0).abs() < 0.01, "{row}");
    h.stop().await;
}
