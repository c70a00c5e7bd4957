//! Alert rules on support tickets (`ticket_created`, `ticket_sla_breached`), end to end with
//! the real binary: tickets opened over the chat API, alerts delivered to a local webhook.

use std::time::Duration;

use serde_json::{Value, json};

use crate::binary::Hearth;
use crate::chat_support::team;
use crate::common::wait_for;
use crate::receiver::{Hit, Receiver, verify};

async fn create(h: &Hearth, token: &str, path: &str, body: Value) -> Value {
    let r = h.post(token, path).json(&body).send().await.unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert!(status.is_success(), "{path}: {status} {v}");
    v
}

async fn ticket(h: &Hearth, token: &str, subject: &str, priority: &str) -> u64 {
    let v = create(
        h,
        token,
        "/api/chat/tickets",
        json!({"subject": subject, "customer_email": "cfo@client.test", "customer_name": "C. F. O.",
               "message": "Please look", "priority": priority}),
    )
    .await;
    assert_eq!(v["ticket"]["priority"], priority);
    v["ticket"]["id"].as_u64().unwrap()
}

fn data(hit: &Hit) -> &Value {
    &hit.body["data"]
}

/// The ticket ids of the alerts a rule has fired (the history is written when the rule
/// matches, before any delivery).
async fn fired_tickets(h: &Hearth, token: &str, rule_id: u64) -> Vec<u64> {
    let v: Value = h
        .get(token, &format!("/api/alerts/history?rule_id={rule_id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["alert"]["ticket_id"].as_u64().unwrap())
        .collect()
}

/// "Urgent ticket" is `ticket_created` with `min_priority: "urgent"`: an urgent ticket reaches
/// the webhook with its id, subject, priority and inbox link; a normal one does not (while a
/// rule without a minimum sees both). An unknown priority is refused on save.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_urgent_ticket_alerts_and_a_normal_one_does_not() {
    let rx = Receiver::start(&[]).await;
    let h = Hearth::start("[alerts]\nallow_private_targets = true\n").await;
    let t = team(&h).await;
    let admin = &t.owner_token;
    let urgent_hook = create(
        &h,
        admin,
        "/api/alerts/channels",
        json!({"name": "urgent", "type": "webhook", "url": rx.url("/urgent")}),
    )
    .await;
    let all_hook = create(
        &h,
        admin,
        "/api/alerts/channels",
        json!({"name": "all", "type": "webhook", "url": rx.url("/all")}),
    )
    .await;
    let secret = urgent_hook["secret"].as_str().unwrap().to_string();

    let r = h
        .post(admin, "/api/alerts/rules")
        .json(
            &json!({"name": "x", "when": {"type": "ticket_created", "min_priority": "critical"},
                      "channels": [urgent_hook["id"]]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let err: Value = r.json().await.unwrap();
    assert!(err["error"]["code"].is_string(), "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("min_priority"),
        "{err}"
    );

    let rule = create(
        &h,
        admin,
        "/api/alerts/rules",
        json!({"name": "urgent tickets", "when": {"type": "ticket_created", "min_priority": "urgent"},
               "channels": [urgent_hook["id"]]}),
    )
    .await;
    assert_eq!(rule["when"]["min_priority"], "urgent", "{rule}");
    create(
        &h,
        admin,
        "/api/alerts/rules",
        json!({"name": "all tickets", "when": {"type": "ticket_created"}, "channels": [all_hook["id"]]}),
    )
    .await;

    let normal = ticket(&h, &t.agent_token, "Where is my parcel", "normal").await;
    let urgent = ticket(&h, &t.agent_token, "Checkout is down", "urgent").await;

    // Both tickets were evaluated: the catch-all rule saw each.
    let all = rx.wait("/all", 2).await;
    let mut seen: Vec<u64> = all
        .iter()
        .map(|h| data(h)["ticket_id"].as_u64().unwrap())
        .collect();
    seen.sort();
    assert_eq!(seen, vec![normal, urgent]);

    // Both were matched against the urgent rule by then; only the urgent one fired.
    let rule_id = rule["id"].as_u64().unwrap();
    assert_eq!(fired_tickets(&h, admin, rule_id).await, vec![urgent]);
    let hits = rx.wait("/urgent", 1).await;
    let hit = &hits[0];
    assert!(verify(&secret, hit));
    assert_eq!(hit.body["type"], "alert.fired");
    let d = data(hit);
    assert_eq!(d["kind"], "ticket_created");
    assert_eq!(d["ticket_id"], urgent);
    assert_eq!(d["title"], "Checkout is down");
    assert_eq!(d["priority"], "urgent");
    assert_eq!(d["subject"], "chat.ticket.created");
    assert!(
        d["url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/#/chat/{urgent}")),
        "{d}"
    );
    assert!(d["reason"].as_str().unwrap().contains("urgent"), "{d}");
    assert_eq!(rx.at("/urgent").len(), 1);
    h.stop().await;
}

/// A ticket that passes its first-response target (`[chat] sla_first_response`, here 1s)
/// alerts a `ticket_sla_breached` rule once, naming the target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_past_its_first_response_target_alerts_once() {
    let rx = Receiver::start(&[]).await;
    let h = Hearth::start(
        "[alerts]\nallow_private_targets = true\n\n[chat]\nsla_first_response = [\"1s\"]\nsla_resolution = [\"0s\"]\n",
    )
    .await;
    let t = team(&h).await;
    let admin = &t.owner_token;
    let hook = create(
        &h,
        admin,
        "/api/alerts/channels",
        json!({"name": "sla", "type": "webhook", "url": rx.url("/sla")}),
    )
    .await;
    let all_hook = create(
        &h,
        admin,
        "/api/alerts/channels",
        json!({"name": "all", "type": "webhook", "url": rx.url("/all")}),
    )
    .await;
    let rule = create(
        &h,
        admin,
        "/api/alerts/rules",
        json!({"name": "SLA", "when": {"type": "ticket_sla_breached", "min_priority": "high"},
               "channels": [hook["id"]]}),
    )
    .await;
    create(
        &h,
        admin,
        "/api/alerts/rules",
        json!({"name": "any SLA", "when": {"type": "ticket_sla_breached"}, "channels": [all_hook["id"]]}),
    )
    .await;
    let low = ticket(&h, &t.agent_token, "Feature idea", "low").await;
    let id = ticket(&h, &t.agent_token, "Refund overdue", "high").await;
    // The SLA sweep runs every 15 s; both tickets pass 1 s by the next one.
    let all = wait_for("both SLA breaches", Duration::from_secs(60), || async {
        let hits = rx.at("/all");
        (hits.len() >= 2).then_some(hits)
    })
    .await;
    let mut seen: Vec<u64> = all
        .iter()
        .map(|h| data(h)["ticket_id"].as_u64().unwrap())
        .collect();
    seen.sort();
    assert_eq!(seen, vec![low, id], "one alert per ticket and target");
    let rule_id = rule["id"].as_u64().unwrap();
    assert_eq!(fired_tickets(&h, admin, rule_id).await, vec![id]);
    let hits = rx.wait("/sla", 1).await;
    let d = data(&hits[0]);
    assert_eq!(d["kind"], "ticket_sla_breached");
    assert_eq!(d["ticket_id"], id);
    assert_eq!(d["title"], "Refund overdue");
    assert_eq!(d["priority"], "high");
    assert_eq!(d["payload"]["target"], "first_response");
    assert!(
        d["reason"].as_str().unwrap().contains("first response"),
        "{d}"
    );
    assert!(
        d["url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/#/chat/{id}"))
    );
    h.stop().await;
}
