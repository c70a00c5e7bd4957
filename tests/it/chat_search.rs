//! Chat search (free text + filters over conversations, messages and tickets, surviving a
//! restart) and Sentry user feedback opening a ticket linked to its issue, against the real
//! binary.

use std::time::Duration;

use serde_json::{Value, json};

use crate::binary::Hearth;
use crate::chat_support::{start, team, visitor};
use crate::common::wait_for;

async fn search(h: &Hearth, token: &str, query: &str) -> Value {
    let r = h
        .get(token, &format!("/api/chat/search?{query}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "search {query}");
    r.json().await.unwrap()
}

fn ids(v: &Value) -> Vec<u64> {
    v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["conversation"]["id"].as_u64().unwrap())
        .collect()
}

/// Waits until `query` finds exactly `want` (the index commits in the background).
async fn wait_found(h: &Hearth, token: &str, query: &str, want: Vec<u64>) -> Value {
    wait_for(
        &format!("search {query} → {want:?}"),
        Duration::from_secs(30),
        || async {
            let v = search(h, token, query).await;
            let mut got = ids(&v);
            got.sort_unstable();
            (got == want).then_some(v)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_finds_messages_and_tickets_with_filters_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let h = Hearth::start_in(dir.path(), "", &[]).await;
    let t = team(&h).await;
    let v1 = visitor(&h, &t.site_key).await;
    let v2 = visitor(&h, &t.site_key).await;
    let a = start(&h, &v1, "My invoice shows the wrong VAT number").await;
    let b = start(&h, &v2, "The checkout button does nothing").await;
    // An agent's reply and a private note are searchable too (agents only).
    let r = h
        .post(&t.agent_token, &format!("/api/chat/session/{b}/message"))
        .json(&json!({"client_msg_id": "n1", "body": "escalated to the payments team", "private": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A ticket for a customer: found by its subject and by the customer's email.
    let r = h
        .post(&t.agent_token, "/api/chat/tickets")
        .json(&json!({"subject": "Refund request", "customer_email": "rita@customer.test",
                      "customer_name": "Rita", "message": "Please refund order 1042", "priority": "high"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let ticket = r.json::<Value>().await.unwrap()["ticket"]["id"]
        .as_u64()
        .unwrap();

    let found = wait_found(&h, &t.agent_token, "q=invoice", vec![a]).await;
    let m = &found["results"][0]["matches"][0];
    assert_eq!(m["snippet"], "My invoice shows the wrong VAT number");
    wait_found(&h, &t.agent_token, "q=payments", vec![b]).await;
    wait_found(&h, &t.agent_token, "q=rita%40customer.test", vec![ticket]).await;
    wait_found(&h, &t.agent_token, "q=refund", vec![ticket]).await;
    // Filters apply to the text matches and without text.
    assert_eq!(
        ids(&search(&h, &t.agent_token, "q=refund&priority=normal").await),
        Vec::<u64>::new()
    );
    assert_eq!(
        ids(&search(&h, &t.agent_token, "q=refund&tickets=true&priority=high").await),
        vec![ticket]
    );
    let mut tickets = ids(&search(&h, &t.agent_token, "tickets=false").await);
    tickets.sort_unstable();
    assert_eq!(tickets, vec![a, b]);
    let r = h
        .post(
            &t.agent_token,
            &format!("/api/chat/conversations/{a}/status"),
        )
        .json(&json!({"status": "resolved"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        ids(&search(&h, &t.agent_token, "q=invoice&status=resolved").await),
        vec![a]
    );
    assert_eq!(
        ids(&search(&h, &t.agent_token, "q=invoice&status=open").await),
        Vec::<u64>::new()
    );
    // Bad input: a stable error code and what to do.
    let r = h
        .get(&t.agent_token, "/api/chat/search?q=x&status=maybe")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let long = "a".repeat(600);
    let r = h
        .get(&t.agent_token, &format!("/api/chat/search?q={long}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "bad_request"
    );
    // A visitor's credential does not search.
    let r = h
        .http
        .get(h.url("/api/chat/search?q=invoice"))
        .header("x-hearth-site-key", &v1.site_key)
        .header("x-hearth-visitor-token", &v1.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // After a restart the index answers at once, from disk.
    assert!(h.stop().await, "clean stop");
    let h = Hearth::start_in(dir.path(), "", &[]).await;
    assert_eq!(
        ids(&search(&h, &t.agent_token, "q=checkout").await),
        vec![b]
    );
    // And what is written after it is indexed too.
    let v3 = visitor(&h, &t.site_key).await;
    let c = start(&h, &v3, "Where can I download my receipt?").await;
    wait_found(&h, &t.agent_token, "q=receipt", vec![c]).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentry_user_feedback_opens_a_ticket_linked_to_its_issue() {
    let h = Hearth::start("").await;
    let t = team(&h).await;
    let (pid, dsn) = h.project(&t.owner_token, "shop").await;
    let key = dsn
        .split("//")
        .nth(1)
        .and_then(|s| s.split('@').next())
        .unwrap()
        .to_string();
    let envelope = |body: String| {
        h.http
            .post(h.url(&format!("/api/{pid}/envelope/")))
            .header(
                "x-sentry-auth",
                format!("Sentry sentry_key={key}, sentry_version=7"),
            )
            .body(body)
            .send()
    };
    let event_id = uuid::Uuid::new_v4().simple().to_string();
    let r = envelope(format!(
        "{{\"event_id\":\"{event_id}\"}}\n{{\"type\":\"event\"}}\n{}\n",
        json!({"event_id": event_id, "message": "checkout exploded", "level": "error",
               "user": {"email": "bo@customer.test"}})
    ))
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let issue = wait_for("the event's issue", Duration::from_secs(30), || async {
        let v: Value = h
            .get(&t.owner_token, &format!("/api/projects/{pid}/issues"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        v["issues"][0]["id"].as_u64()
    })
    .await;
    // The User Feedback API item, pointing at the event; its text is kept as text.
    let fid = uuid::Uuid::new_v4().simple().to_string();
    let r = envelope(format!(
        "{{\"event_id\":\"{fid}\"}}\n{{\"type\":\"feedback\"}}\n{}\n",
        json!({"event_id": fid, "contexts": {"feedback": {
            "associated_event_id": event_id, "message": "<b>Pay</b> button crashed\nsecond line",
            "contact_email": "bo@customer.test", "name": "Bo", "url": "https://shop.test/cart"}}})
    ))
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let ticket = wait_for("the feedback's ticket", Duration::from_secs(30), || async {
        let v: Value = h
            .get(&t.agent_token, "/api/chat/tickets")
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        v["tickets"]
            .as_array()?
            .iter()
            .find(|c| c["subject"] == "Feedback: <b>Pay</b> button crashed")
            .cloned()
    })
    .await;
    let id = ticket["id"].as_u64().unwrap();
    let d: Value = h
        .get(&t.agent_token, &format!("/api/chat/tickets/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(d["conversation"]["ticket"], true);
    assert_eq!(d["linked_issue"]["issue_id"], issue, "{d}");
    assert_eq!(d["linked_issue"]["project_id"], pid);
    assert_eq!(d["linked_issue"]["event_id"], event_id);
    assert_eq!(d["visitor"]["email"], "bo@customer.test");
    assert_eq!(d["visitor"]["page_url"], "https://shop.test/cart");
    assert_eq!(
        d["messages"][0]["body"],
        "<b>Pay</b> button crashed\nsecond line"
    );
    // The customer's other side: Sentry issues whose events name their email.
    wait_for(
        "the user's issues in the ticket",
        Duration::from_secs(30),
        || async {
            let d: Value = h
                .get(&t.agent_token, &format!("/api/chat/tickets/{id}"))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (d["user_issues"][0]["id"] == issue).then_some(())
        },
    )
    .await;
    // A legacy user report opens one too; each feedback opens exactly one ticket.
    let r = envelope(format!(
        "{{\"event_id\":\"{event_id}\"}}\n{{\"type\":\"user_report\"}}\n{}\n",
        json!({"event_id": event_id, "name": "Cy", "email": "cy@customer.test", "comments": "same here"})
    ))
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let all = wait_for("both tickets", Duration::from_secs(30), || async {
        let v: Value = h
            .get(&t.agent_token, "/api/chat/tickets")
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let n = v["tickets"].as_array()?.len();
        (n >= 2).then_some(v)
    })
    .await;
    let subjects: Vec<&str> = all["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["subject"].as_str())
        .collect();
    assert_eq!(subjects.len(), 2, "{subjects:?}");
    assert!(subjects.contains(&"Feedback: same here"), "{subjects:?}");
    h.stop().await;
}
