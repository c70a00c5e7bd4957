//! Live chat against the real binary: a widget visitor and an agent over real WebSockets
//! (tokio-tungstenite), the HTTP API with reqwest. Shared setup is in `chat_support.rs`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::binary::Hearth;
use crate::chat_support::*;

/// A visitor and an agent exchange messages over WebSockets: each send is acknowledged with
/// its seq, the other side gets it as a sequenced event, typing arrives without a seq, and
/// each message is on the bus (seen here through the dashboard's live stream).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_cross_between_a_widget_visitor_and_an_agent() {
    let h = Hearth::start("").await;
    let t = team(&h).await;
    let v = visitor(&h, &t.site_key).await;
    let mut live = h
        .get(&t.owner_token, "/api/live?subjects=chat.>")
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    let conv = start(&h, &v, "Hello, is anyone there?").await;

    let mut agent = Ws::agent(&h, &t.agent_token).await;
    let hello = agent.next().await;
    assert_eq!(hello["t"], "hello");
    assert_eq!(hello["role"], "agent");
    let mut vis = Ws::visitor(&h, &format!("/api/chat/ws/{conv}?after_seq=0"), &v).await;
    assert_eq!(vis.next().await["role"], "visitor");
    let first = vis.next().await;
    assert_eq!(first["seq"], 1, "{first}");
    assert_eq!(first["data"]["body"], "Hello, is anyone there?");
    assert_eq!(first["data"]["author"]["name"], "Vera Visitor");
    assert_eq!(
        vis.next().await,
        json!({"t": "resumed", "conv": conv, "last_seq": 1})
    );

    vis.send(json!({"t": "typing", "conv": conv, "on": true}))
        .await;
    let (typing, _) = agent.until(|f| f["t"] == "typing").await;
    assert_eq!(typing["conv"], conv);
    assert_eq!(typing["on"], true);
    assert!(typing.get("seq").is_none(), "typing is ephemeral: {typing}");

    vis.send(
        json!({"t": "send", "conv": conv, "client_msg_id": "v-1", "body": "My order is late"}),
    )
    .await;
    let ack = vis.next().await;
    assert_eq!(
        ack,
        json!({"t": "ack", "client_msg_id": "v-1", "conv": conv, "seq": 2, "duplicate": false})
    );
    let (ev, _) = agent.until(is_msg("My order is late")).await;
    assert_eq!(ev["seq"], 2);
    assert_eq!(ev["conv"], conv);
    assert_eq!(ev["data"]["author"]["kind"], "visitor");

    agent
        .send(json!({"t": "send", "conv": conv, "client_msg_id": "a-1", "body": "<b>Sorry</b>, checking now"}))
        .await;
    let (ack, _) = agent.until(|f| f["t"] == "ack").await;
    assert_eq!(ack["seq"], 3);
    let (ev, skipped) = vis.until(is_msg("<b>Sorry</b>, checking now")).await;
    assert_eq!(ev["seq"], 3, "skipped {skipped:?}");
    assert_eq!(ev["data"]["author"]["kind"], "agent");
    assert_eq!(ev["data"]["author"]["name"], "Ada Agent");

    // A private note reaches agents, never the visitor.
    agent
        .send(json!({"t": "send", "conv": conv, "client_msg_id": "a-2", "body": "note: VIP", "private": true}))
        .await;
    agent.until(|f| f["t"] == "ack").await;
    vis.send(json!({"t": "send", "conv": conv, "client_msg_id": "v-2", "body": "thanks"}))
        .await;
    let (ev, skipped) = vis.until(is_msg("thanks")).await;
    assert_eq!(ev["seq"], 5);
    assert!(
        !skipped.iter().any(|f| f.to_string().contains("VIP")),
        "the visitor saw a private note: {skipped:?}"
    );

    // History over HTTP: the visitor's view has no note; the agent's has it.
    let r = widget(
        &h,
        &v,
        reqwest::Method::GET,
        &format!("/api/chat/session/{conv}"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let b: Value = r.json().await.unwrap();
    let seqs: Vec<u64> = b["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![1, 2, 3, 5]);
    let b: Value = h
        .get(&t.agent_token, &format!("/api/chat/conversations/{conv}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(b["messages"].as_array().unwrap().len(), 5);
    assert_eq!(b["visitor"]["name"], "Vera Visitor");
    // Assignment puts it in the agent's "mine" view.
    let r = h
        .post(
            &t.agent_token,
            &format!("/api/chat/conversations/{conv}/assign"),
        )
        .json(&json!({"user_id": t.agent_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let b: Value = h
        .get(&t.agent_token, "/api/chat/conversations?view=mine")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(b["conversations"][0]["id"], conv);
    assert_eq!(
        b["conversations"][0]["unread"], 3,
        "visitor messages, no agent mark yet"
    );

    // Every message was published on the bus.
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while seen.matches("chat.message.created").count() < 5 {
        let chunk = tokio::time::timeout_at(deadline, live.chunk())
            .await
            .expect("bus events on the live stream")
            .unwrap()
            .expect("stream open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("chat.conversation.created"), "{seen}");
    vis.close().await;
    agent.close().await;
    assert!(h.stop().await, "graceful stop");
}

/// A visitor's socket drops; the agent writes meanwhile; the reconnecting socket names its
/// last seq and gets exactly the missed messages, in order, then live ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnecting_visitor_gets_exactly_what_it_missed() {
    let h = Hearth::start("").await;
    let t = team(&h).await;
    let v = visitor(&h, &t.site_key).await;
    let conv = start(&h, &v, "first").await;
    let mut vis = Ws::visitor(&h, &format!("/api/chat/ws/{conv}?after_seq=0"), &v).await;
    let (_, _) = vis.until(|f| f["t"] == "resumed").await;
    drop(vis); // dropped without a close handshake, as a lost connection is
    for i in 1..=25 {
        let r = h
            .post(&t.agent_token, &format!("/api/chat/session/{conv}/message"))
            .json(&json!({"client_msg_id": format!("a-{i}"), "body": format!("reply {i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let mut vis = Ws::visitor(&h, &format!("/api/chat/ws/{conv}?after_seq=1"), &v).await;
    let (resumed, frames) = vis.until(|f| f["t"] == "resumed").await;
    assert_eq!(resumed["last_seq"], 26);
    let got: Vec<(u64, String)> = frames
        .iter()
        .filter(|f| f["t"] == "ev")
        .map(|f| {
            (
                f["seq"].as_u64().unwrap(),
                f["data"]["body"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(u64, String)> = (1..=25).map(|i| (i + 1, format!("reply {i}"))).collect();
    assert_eq!(got, want);
    // Live again: the next message arrives once, with the next seq.
    h.post(&t.agent_token, &format!("/api/chat/session/{conv}/message"))
        .json(&json!({"client_msg_id": "a-26", "body": "live again"}))
        .send()
        .await
        .unwrap();
    let (ev, skipped) = vis.until(|f| f["t"] == "ev").await;
    assert_eq!(ev["seq"], 27, "{skipped:?}");
    assert_eq!(ev["data"]["body"], "live again");
    // Unread counts come from the visitor's last-seen mark.
    let unread = |h: &Hearth| {
        let req = widget(h, &v, reqwest::Method::GET, "/api/chat/my-chats");
        async move {
            let b: Value = req.send().await.unwrap().json().await.unwrap();
            b["conversations"][0]["unread"].as_u64().unwrap()
        }
    };
    assert_eq!(unread(&h).await, 26);
    vis.send(json!({"t": "seen", "conv": conv, "seq": 20}))
        .await;
    crate::common::wait_for("unread after seen", Duration::from_secs(10), || async {
        (unread(&h).await == 7).then_some(())
    })
    .await;
    vis.close().await;
    h.stop().await;
}

/// Resending with the same client_msg_id (over the socket and over HTTP) returns the first
/// message's seq and stores nothing new; messages from many sends arrive in seq order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resent_message_is_stored_once_and_order_holds() {
    let h = Hearth::start("").await;
    let t = team(&h).await;
    let v = visitor(&h, &t.site_key).await;
    let conv = start(&h, &v, "hi").await;
    let mut agent = Ws::agent(&h, &t.agent_token).await;
    agent.until(|f| f["t"] == "hello").await;
    let mut vis = Ws::visitor(&h, &format!("/api/chat/ws/{conv}?after_seq=1"), &v).await;
    vis.until(|f| f["t"] == "resumed").await;
    for _ in 0..3 {
        vis.send(json!({"t": "send", "conv": conv, "client_msg_id": "same", "body": "once"}))
            .await;
    }
    let mut acks = Vec::new();
    while acks.len() < 3 {
        let f = vis.next().await;
        if f["t"] == "ack" {
            acks.push(f);
        }
    }
    assert!(acks.iter().all(|a| a["seq"] == 2), "{acks:?}");
    assert_eq!(acks[0]["duplicate"], false);
    assert!(acks[1..].iter().all(|a| a["duplicate"] == true));
    let r: Value = widget(
        &h,
        &v,
        reqwest::Method::POST,
        &format!("/api/chat/session/{conv}/message"),
    )
    .json(&json!({"client_msg_id": "same", "body": "once"}))
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(r["seq"], 2);
    assert_eq!(r["duplicate"], true);
    // Twenty sends over HTTP from the visitor, concurrently: the agent sees every one once,
    // with strictly increasing seqs.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let req = widget(
            &h,
            &v,
            reqwest::Method::POST,
            &format!("/api/chat/session/{conv}/message"),
        )
        .json(&json!({"client_msg_id": format!("c-{i}"), "body": format!("m{i}")}));
        tasks.push(tokio::spawn(
            async move { req.send().await.unwrap().status() },
        ));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let mut seqs = Vec::new();
    let mut bodies = std::collections::HashSet::new();
    while seqs.len() < 21 {
        let f = agent.next().await;
        if f["t"] == "ev" && f["type"] == "message.created" {
            seqs.push(f["seq"].as_u64().unwrap());
            assert!(
                bodies.insert(f["data"]["body"].as_str().unwrap().to_string()) || f["seq"] == 2
            );
        }
    }
    assert_eq!(seqs, (2..=22).collect::<Vec<u64>>(), "in order, each once");
    let b: Value = h
        .get(
            &t.agent_token,
            &format!("/api/chat/session/{conv}/messages?after=0"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(b["messages"].as_array().unwrap().len(), 22);
    // Pages: 20 older before an id.
    let b: Value = h
        .get(
            &t.agent_token,
            &format!("/api/chat/session/{conv}/messages?before=22"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let page: Vec<u64> = b["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(page, (2..=21).collect::<Vec<u64>>());
    vis.close().await;
    agent.close().await;
    h.stop().await;
}

/// A visitor cannot read, write, resume or type into another visitor's conversation, over
/// HTTP or the socket; it looks exactly like a missing one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visitor_cannot_reach_another_visitors_conversation() {
    let h = Hearth::start("").await;
    let t = team(&h).await;
    let alice = visitor(&h, &t.site_key).await;
    let mallory = visitor(&h, &t.site_key).await;
    assert_ne!(alice.id, mallory.id);
    let conv = start(&h, &alice, "my secret order 1234").await;
    for (m, path) in [
        (reqwest::Method::GET, format!("/api/chat/session/{conv}")),
        (
            reqwest::Method::GET,
            format!("/api/chat/session/{conv}/messages?after=0"),
        ),
        (
            reqwest::Method::POST,
            format!("/api/chat/session/{conv}/close"),
        ),
    ] {
        let r = widget(&h, &mallory, m.clone(), &path).send().await.unwrap();
        assert_eq!(r.status(), 404, "{m} {path}");
        let b: Value = r.json().await.unwrap();
        assert_eq!(b["error"]["code"], "not_found");
    }
    let r = widget(
        &h,
        &mallory,
        reqwest::Method::POST,
        &format!("/api/chat/session/{conv}/message"),
    )
    .json(&json!({"client_msg_id": "x", "body": "hi"}))
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 404);
    let b: Value = widget(&h, &mallory, reqwest::Method::GET, "/api/chat/my-chats")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(b["conversations"], json!([]));
    // Over the socket: the resume in the URL and in a frame are refused; nothing leaks.
    let mut ws = Ws::visitor(&h, &format!("/api/chat/ws/{conv}?after_seq=0"), &mallory).await;
    let (err, before) = ws.until(|f| f["t"] == "error").await;
    assert_eq!(err["code"], "not_found");
    ws.send(json!({"t": "resume", "conv": conv, "after_seq": 0}))
        .await;
    ws.send(json!({"t": "typing", "conv": conv, "on": true}))
        .await;
    ws.send(json!({"t": "send", "conv": conv, "client_msg_id": "y", "body": "x"}))
        .await;
    let mut frames = before;
    for _ in 0..3 {
        frames.push(ws.next().await);
    }
    let text = serde_json::to_string(&frames).unwrap();
    assert!(!text.contains("secret order"), "{text}");
    assert_eq!(
        frames.iter().filter(|f| f["t"] == "error").count(),
        3,
        "{text}"
    );
    // A bad token or a token from another site is refused.
    let r = h
        .http
        .get(h.url("/api/chat/my-chats"))
        .header("x-hearth-site-key", &t.site_key)
        .header("x-hearth-visitor-token", "hcv_forged")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = h
        .http
        .get(h.url("/api/chat/my-chats"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    ws.close().await;
    h.stop().await;
}

/// Identity verification: the right HMAC of user_id is accepted (and the same user is one
/// visitor across devices); a wrong one, or none on a verified-only site, is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_verification_refuses_a_wrong_hmac() {
    use hmac::{KeyInit, Mac};
    let h = Hearth::start("").await;
    let t = team(&h).await;
    let sign = |uid: &str| {
        let mut mac =
            hmac::Hmac::<sha2::Sha256>::new_from_slice(t.identity_secret.as_bytes()).unwrap();
        mac.update(uid.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    };
    let session = |body: Value| {
        h.http
            .post(h.url("/api/chat/widget/session"))
            .json(&body)
            .send()
    };
    let r = session(json!({"site_key": t.site_key, "user_id": "u-42", "user_hash": sign("u-43")}))
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["error"]["code"], "invalid_auth");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("HMAC-SHA256")
    );
    let r = session(json!({"site_key": t.site_key, "user_id": "u-42"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = session(json!({"site_key": t.site_key, "user_id": "u-42", "user_hash": sign("u-42")}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let a: Value = r.json().await.unwrap();
    assert_eq!(a["visitor"]["verified"], true);
    let r = session(json!({"site_key": t.site_key, "user_id": "u-42", "user_hash": sign("u-42")}))
        .await
        .unwrap();
    let b: Value = r.json().await.unwrap();
    assert_eq!(
        a["visitor"]["id"], b["visitor"]["id"],
        "one visitor per verified user"
    );
    // Verified-only: an anonymous session is refused.
    let sites: Value = h
        .get(&t.owner_token, "/api/chat/sites")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = sites["sites"][0]["id"].as_u64().unwrap();
    let r = h
        .post(&t.owner_token, &format!("/api/chat/sites/{id}"))
        .json(&json!({"require_identity": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = session(json!({"site_key": t.site_key})).await.unwrap();
    assert_eq!(r.status(), 401);
    let r = session(json!({"site_key": "hcs_unknown"})).await.unwrap();
    assert_eq!(r.status(), 401);
    // An agent (not an admin) cannot read sites and their secrets.
    let r = h
        .get(&t.agent_token, "/api/chat/sites")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    h.stop().await;
}

/// The widget as a site embeds it: the snippet is under 600 bytes; `/widget.js` is at most
/// 3 KB and the chat module at most 40 KB as served gzipped, both loadable from another
/// origin; the widget API answers CORS preflights; no widget file evaluates code or writes
/// HTML. (The size limits are the CI check: growing past one fails here.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_widget_is_small_cross_origin_and_never_evaluates_or_writes_html() {
    let h = Hearth::start("").await;
    let t = team(&h).await;
    let sites: Value = h
        .get(&t.owner_token, "/api/chat/sites")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let snippet = sites["sites"][0]["snippet"].as_str().unwrap();
    assert!(snippet.len() < 600, "snippet is {} bytes", snippet.len());
    assert!(snippet.contains(&format!("{}/widget.js", h.base)) && snippet.contains(&t.site_key));
    assert!(!snippet.contains("<script>"), "no inline script: {snippet}");
    for (path, limit) in [("/widget.js", 3 * 1024), ("/widget/chat.js", 40 * 1024)] {
        let r = h
            .http
            .get(h.url(path))
            .header("origin", "http://shop.example")
            .header("accept-encoding", "gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let hd = r.headers().clone();
        assert_eq!(hd["access-control-allow-origin"], "*", "{path}");
        assert_eq!(hd["content-encoding"], "gzip", "{path}");
        assert!(hd["content-type"].to_str().unwrap().contains("javascript"));
        let body = r.bytes().await.unwrap();
        assert!(
            body.len() <= limit,
            "{path} is {} bytes gzipped; the limit is {limit}",
            body.len()
        );
    }
    let r = h
        .http
        .request(reqwest::Method::OPTIONS, h.url("/api/chat/start"))
        .header("origin", "http://shop.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,x-hearth-site-key,x-hearth-visitor-token",
        )
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "preflight: {}", r.status());
    let allowed = r.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(allowed.contains("x-hearth-visitor-token"), "{allowed}");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("static/widget");
    for f in std::fs::read_dir(&dir).unwrap() {
        let p = f.unwrap().path();
        let text = std::fs::read_to_string(&p).unwrap();
        for bad in [
            "eval(",
            "new Function",
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "setAttribute(\"style\"",
        ] {
            assert!(!text.contains(bad), "{} uses {bad}", p.display());
        }
    }
    h.stop().await;
}

/// Away: the widget's offline form opens an email conversation; the agent's reply goes out
/// through the mail outbox to the visitor's address (at a real SMTP server), with the
/// conversation number in the subject; after the agent resolves it the visitor rates it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_offline_form_is_answered_by_email_and_rated_after_resolve() {
    let smtp_port = crate::common::free_port();
    let Some(smtp) = crate::mail_support::SmtpServer::start(smtp_port, &[]).await else {
        return;
    };
    let h = Hearth::start(&format!(
        "[smtp]\nhost = \"127.0.0.1\"\nport = {smtp_port}\ntls = \"none\"\nfrom = \"Support <support@test.invalid>\"\n"
    ))
    .await;
    let t = team(&h).await;
    let v = visitor(&h, &t.site_key).await;
    let cfg: Value = h
        .http
        .get(h.url(&format!("/api/chat/widget/config?site_key={}", t.site_key)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cfg["state"], "away", "no agent online: {cfg}");
    let r = widget(&h, &v, reqwest::Method::POST, "/api/chat/widget/offline")
        .json(&json!({"name": "Otto", "email": "otto@visitor.test", "message": "Where is my refund?"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let conv = r.json::<Value>().await.unwrap()["conversation"]["id"]
        .as_u64()
        .unwrap();
    let b: Value = h
        .get(&t.agent_token, "/api/chat/conversations?view=unassigned")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(b["conversations"][0]["id"], conv);
    assert_eq!(b["conversations"][0]["channel"], "email");
    assert_eq!(
        b["conversations"][0]["visitor"]["email"],
        "otto@visitor.test"
    );
    // Online after a heartbeat.
    let r = h
        .post(&t.agent_token, "/api/chat/agent/online")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cfg: Value = h
        .http
        .get(h.url(&format!("/api/chat/widget/config?site_key={}", t.site_key)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cfg["state"], "online");
    let r = h
        .post(&t.agent_token, &format!("/api/chat/session/{conv}/message"))
        .json(&json!({"client_msg_id": "r1", "body": "Your refund left today."}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mail = crate::common::wait_for(
        "the reply at the SMTP server",
        Duration::from_secs(30),
        || async {
            smtp.messages()
                .into_iter()
                .find(|m| m["rcpt_tos"] == json!(["otto@visitor.test"]))
        },
    )
    .await;
    let subject = crate::mail_support::header(&mail, "subject").unwrap();
    assert!(
        subject.contains(&format!("[#{conv}]")) && subject.contains("Where is my refund?"),
        "{subject}"
    );
    assert!(
        mail["text"]
            .as_str()
            .unwrap()
            .contains("Your refund left today."),
        "{mail}"
    );
    // Threaded: the first reply answers the conversation's root id; the second answers the
    // first and references both, so mail clients keep them in one thread.
    let hdr = |m: &Value, n: &str| crate::mail_support::header(m, n).unwrap_or_default();
    let root = format!("<hearth-chat.{conv}@test.invalid>");
    let first_id = hdr(&mail, "message-id");
    assert!(
        first_id.starts_with(&format!("<hearth-chat.{conv}.")),
        "{first_id}"
    );
    assert_eq!(hdr(&mail, "in-reply-to"), root);
    assert_eq!(hdr(&mail, "references"), root);
    let r = h
        .post(&t.agent_token, &format!("/api/chat/session/{conv}/message"))
        .json(&json!({"client_msg_id": "r2", "body": "It should arrive by Friday."}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let second = crate::common::wait_for(
        "the second reply at the SMTP server",
        Duration::from_secs(30),
        || async {
            smtp.messages()
                .into_iter()
                .find(|m| m["text"].as_str().is_some_and(|t| t.contains("by Friday")))
        },
    )
    .await;
    assert_eq!(hdr(&second, "in-reply-to"), first_id);
    let refs = hdr(&second, "references");
    assert!(refs.contains(&root) && refs.contains(&first_id), "{refs}");
    assert_ne!(hdr(&second, "message-id"), first_id);
    // Rated only after resolve.
    let rate = |rating: u8| {
        widget(
            &h,
            &v,
            reqwest::Method::POST,
            &format!("/api/chat/session/{conv}/csat"),
        )
        .json(&json!({"rating": rating, "comment": "quick"}))
        .send()
    };
    assert_eq!(rate(5).await.unwrap().status(), 400);
    let r = h
        .post(
            &t.agent_token,
            &format!("/api/chat/conversations/{conv}/status"),
        )
        .json(&json!({"status": "resolved"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(rate(0).await.unwrap().status(), 400);
    let r = rate(4).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["csat"]["rating"], 4);
    // The agent's online list and offline.
    let b: Value = h
        .get(&t.agent_token, "/api/chat/agents/online")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(b["agents"][0]["name"], "Ada Agent");
    h.post(&t.agent_token, "/api/chat/agent/offline")
        .send()
        .await
        .unwrap();
    let b: Value = h
        .get(&t.agent_token, "/api/chat/agents/online")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(b["agents"], json!([]));
    h.stop().await;
    smtp.stop().await;
}

/// Tickets over the API: one opened for a customer, a chat made into one, listed, assigned,
/// resolved; the stats endpoints count them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_are_opened_assigned_resolved_and_counted() {
    let h = Hearth::start("").await;
    let t = team(&h).await;
    let r = h
        .post(&t.agent_token, "/api/chat/tickets")
        .json(&json!({"subject": "Invoice wrong", "customer_email": "cfo@client.test", "customer_name": "C. F. O.", "message": "The VAT is missing", "priority": "urgent"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let ticket = r.json::<Value>().await.unwrap()["ticket"].clone();
    assert_eq!(ticket["priority"], "urgent");
    assert_eq!(ticket["subject"], "Invoice wrong");
    let id = ticket["id"].as_u64().unwrap();
    let v = visitor(&h, &t.site_key).await;
    let chat_id = start(&h, &v, "quick question").await;
    let r = h
        .post(&t.agent_token, "/api/chat/tickets")
        .json(&json!({"conversation_id": chat_id, "priority": "high"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let list: Value = h
        .get(&t.agent_token, "/api/chat/tickets")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<u64> = list["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{list}");
    assert!(ids.contains(&id) && ids.contains(&chat_id));
    let r = h
        .post(&t.agent_token, &format!("/api/chat/tickets/{id}/assign"))
        .json(&json!({"user_id": t.agent_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = h
        .post(&t.agent_token, &format!("/api/chat/tickets/{id}/resolve"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let got: Value = h
        .get(&t.agent_token, &format!("/api/chat/tickets/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["conversation"]["status"], "resolved");
    assert_eq!(got["conversation"]["assignee"], t.agent_id);
    assert_eq!(got["visitor"]["email"], "cfo@client.test");
    let s: Value = h
        .get(&t.agent_token, "/api/chat/stats/tickets")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(s["total"]["conversations"], 2, "{s}");
    assert_eq!(s["total"]["resolution_rate"], 0.5);
    assert_eq!(s["per_priority"]["urgent"]["resolution_ms"]["count"], 1);
    let s: Value = h
        .get(&t.agent_token, "/api/chat/stats/chats")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(s["total"]["conversations"], 1);
    h.stop().await;
}

/// A visitor socket that stops reading is dropped once its queue (`[chat] socket_queue`)
/// fills: it gets the frames already queued, then close 1013; a fresh socket resuming from the
/// last seq it saw gets every missed message exactly once, in order. The slow client is a real
/// WebSocket client over a TCP socket with a tiny receive buffer, so the server's writes stall
/// and its queue fills, with large messages so the kernel buffers fill quickly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_visitor_socket_is_dropped_with_1013_and_resumes_by_seq() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;

    let h = Hearth::start("[chat]\nsocket_queue = 4\nmax_message_size = \"60 KiB\"\n").await;
    let t = team(&h).await;
    let v = visitor(&h, &t.site_key).await;
    let conv = start(&h, &v, "first").await;

    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let tcp = tokio::time::timeout(
        Duration::from_secs(10),
        sock.connect(([127, 0, 0, 1], h.port).into()),
    )
    .await
    .expect("tcp connect within 10 s")
    .expect("tcp connect");
    let url = format!(
        "ws://127.0.0.1:{}/api/chat/ws/{conv}?after_seq=0&site_key={}&visitor_token={}",
        h.port, v.site_key, v.token
    );
    let (mut slow, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::client_async(url, tcp),
    )
    .await
    .expect("websocket handshake within 10 s")
    .expect("slow visitor socket");
    // Read up to `resumed`: the slow socket has seen seq 1.
    let mut last_seen = 0;
    loop {
        let m = tokio::time::timeout(Duration::from_secs(15), slow.next())
            .await
            .expect("a frame within 15 s")
            .expect("socket open")
            .expect("frame");
        let Message::Text(t) = m else { continue };
        let f: Value = serde_json::from_str(t.as_str()).unwrap();
        if f["t"] == "ev" {
            last_seen = f["seq"].as_u64().unwrap();
        }
        if f["t"] == "resumed" {
            break;
        }
    }
    assert_eq!(last_seen, 1);

    // The slow socket now reads nothing. The agent writes large messages until the hub drops
    // the socket (counted in /metrics); bounded by a message count and a time limit.
    let body = |i: u64| format!("{i:05} {}", "x".repeat(60 * 1024 - 16));
    let dropped = |h: &Hearth| {
        let req = h.get(&t.owner_token, "/metrics");
        async move {
            let m = req.send().await.unwrap().text().await.unwrap();
            m.lines()
                .find_map(|l| l.strip_prefix("hearth_chat_sockets_dropped_slow_total "))
                .map(|n| n.trim().parse::<u64>().unwrap())
                .unwrap_or(0)
        }
    };
    assert_eq!(dropped(&h).await, 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut sent = 0u64;
    loop {
        sent += 1;
        let r = h
            .post(&t.agent_token, &format!("/api/chat/session/{conv}/message"))
            .json(&json!({"client_msg_id": format!("a-{sent}"), "body": body(sent)}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "agent message {sent}");
        if dropped(&h).await >= 1 {
            break;
        }
        assert!(
            sent < 1000 && tokio::time::Instant::now() < deadline,
            "the server never dropped the unread socket after {sent} messages of 60 KiB \
             (socket_queue = 4)"
        );
    }
    // A few more while the socket is gone from the hub: only a resume can deliver these.
    for _ in 0..3 {
        sent += 1;
        let r = h
            .post(&t.agent_token, &format!("/api/chat/session/{conv}/message"))
            .json(&json!({"client_msg_id": format!("a-{sent}"), "body": body(sent)}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "agent message {sent}");
    }

    // Reading again, the slow socket gets what was already written or queued, in order, then
    // close 1013 ("too slow; reconnect and resume").
    let mut close = None;
    loop {
        let m = tokio::time::timeout(Duration::from_secs(30), slow.next())
            .await
            .expect("the dropped socket closes within 30 s once read");
        match m {
            Some(Ok(Message::Text(t))) => {
                let f: Value = serde_json::from_str(t.as_str()).unwrap();
                if f["t"] == "ev" {
                    let seq = f["seq"].as_u64().unwrap();
                    assert_eq!(seq, last_seen + 1, "in order, none skipped");
                    assert_eq!(f["data"]["body"], body(seq - 1));
                    last_seen = seq;
                }
            }
            Some(Ok(Message::Close(c))) => {
                close = c;
                break;
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("the dropped socket errored instead of closing: {e}"),
            None => break,
        }
    }
    let close = close.expect("a close frame, not just the end of the stream");
    assert_eq!(u16::from(close.code), 1013, "{close:?}");
    assert_eq!(close.reason.as_str(), "too slow; reconnect and resume");
    assert!(
        last_seen < sent + 1,
        "the socket was dropped before it got everything (saw seq {last_seen})"
    );
    drop(slow);

    // A fresh socket resumes from the last seq it saw: every missed message, once, in order.
    let mut vis = Ws::visitor(
        &h,
        &format!("/api/chat/ws/{conv}?after_seq={last_seen}"),
        &v,
    )
    .await;
    let (resumed, frames) = vis.until(|f| f["t"] == "resumed").await;
    assert_eq!(resumed["last_seq"], sent + 1);
    let got: Vec<u64> = frames
        .iter()
        .filter(|f| f["t"] == "ev")
        .map(|f| {
            let seq = f["seq"].as_u64().unwrap();
            assert_eq!(f["data"]["body"], body(seq - 1));
            seq
        })
        .collect();
    assert_eq!(got, (last_seen + 1..=sent + 1).collect::<Vec<u64>>());
    vis.close().await;
    assert!(h.stop().await, "graceful stop");
}
