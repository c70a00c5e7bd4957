//! Reply suggestions that learn (issue 19), end to end against the real binary: simulated
//! conversations over the chat HTTP API (widget visitor + agent), the agent always sending the
//! top suggestion; each intent has one canned reply that usually resolves the conversation.
//! The right reply must rise to the top, and a kill -9 in the middle loses no learning.
//!
//! Deterministic: the server's suggestion randomness (holdout draws and their order) is seeded
//! with `[chat] suggest_seed`, as a user could, and after each conversation the test waits
//! until the reward-join consumer has applied everything, so each suggestion is computed from
//! the same model on every run.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::binary::Hearth;
use crate::chat_support::{Team, team, visitor};
use crate::common::wait_for;

/// Rate limits that a few hundred conversations from 127.0.0.1 would hit otherwise; a fixed
/// seed for the suggestions' randomness.
const TOML: &str =
    "[chat]\nstarts_per_ip_per_hour = 1000000\nsuggest_holdout = 0.1\nsuggest_seed = 19\n";

/// (intent, visitor messages, the canned shortcut that resolves it)
const INTENTS: [(&str, [&str; 2], &str); 3] = [
    (
        "billing",
        [
            "I was charged twice on my card, can you check the invoice?",
            "There is a payment on my bill I don't recognise",
        ],
        "payment",
    ),
    (
        "account",
        [
            "I can't log in, the password reset fails",
            "My account is locked after the 2fa step",
        ],
        "account",
    ),
    (
        "shipping",
        [
            "Where is my parcel? The tracking shows nothing",
            "My order was not delivered yet",
        ],
        "tracking",
    ),
];

struct Sim {
    team: Team,
    /// shortcut → canned id
    canned: Vec<(String, u64)>,
    rng: StdRng,
    /// Uses recorded and, of those, conversations resolved (what the model must have seen).
    uses: u64,
    resolved_uses: u64,
    /// Per non-holdout decision: whether the right reply was on top.
    right_on_top: Vec<bool>,
}

fn widget(h: &Hearth, site_key: &str, token: &str, path: &str) -> reqwest::RequestBuilder {
    h.http
        .post(h.url(path))
        .header("x-hearth-site-key", site_key)
        .header("x-hearth-visitor-token", token)
}

async fn ok(r: reqwest::RequestBuilder, what: &str) -> Value {
    let r = r.send().await.unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 200, "{what}: {body}");
    body
}

impl Sim {
    fn id_of(&self, shortcut: &str) -> u64 {
        self.canned.iter().find(|c| c.0 == shortcut).unwrap().1
    }

    /// One conversation: the visitor writes, the agent asks for suggestions and sends the top
    /// one; it resolves with P = 0.85 if that was the intent's right reply, else 0.05.
    async fn conversation(&mut self, h: &Hearth, n: usize) {
        let (intent, msgs, right) = INTENTS[n % INTENTS.len()];
        let v = visitor(h, &self.team.site_key).await;
        let text = msgs[self.rng.random_range(0..msgs.len())];
        let b = ok(
            widget(h, &v.site_key, &v.token, "/api/chat/start")
                .json(&json!({"customer_name": "Vera", "initial_message": text})),
            "start",
        )
        .await;
        let conv = b["chat_id"].as_u64().unwrap();
        let s = ok(
            h.post(
                &self.team.agent_token,
                &format!("/api/chat/conversations/{conv}/suggestions"),
            ),
            "suggestions",
        )
        .await;
        assert_eq!(s["intent"], intent, "{s}");
        let list = s["suggestions"].as_array().unwrap();
        assert_eq!(list.len(), 3, "{s}");
        for item in list {
            assert!(
                item["why"]["text"].as_str().unwrap().starts_with(intent),
                "{item}"
            );
        }
        let top = &list[0];
        let top_id = top["canned_id"].as_u64().unwrap();
        let right_id = self.id_of(right);
        if s["holdout"] == false {
            self.right_on_top.push(top_id == right_id);
        }
        ok(
            h.post(
                &self.team.agent_token,
                &format!("/api/chat/session/{conv}/message"),
            )
            .json(&json!({"client_msg_id": format!("m{n}"), "body": top["body"]})),
            "agent reply",
        )
        .await;
        let used = ok(
            h.post(
                &self.team.agent_token,
                &format!("/api/chat/suggestions/{}/used", s["decision_id"]),
            )
            .json(&json!({"canned_id": top_id, "edited": false})),
            "used",
        )
        .await;
        assert_eq!(used["rank"], 0);
        self.uses += 1;
        let p = if top_id == right_id { 0.85 } else { 0.05 };
        if self.rng.random::<f64>() < p {
            ok(
                h.post(
                    &self.team.agent_token,
                    &format!("/api/chat/conversations/{conv}/status"),
                )
                .json(&json!({"status": "resolved"})),
                "resolve",
            )
            .await;
            self.resolved_uses += 1;
            if self.rng.random::<f64>() < 0.3 {
                ok(
                    widget(
                        h,
                        &v.site_key,
                        &v.token,
                        &format!("/api/chat/session/{conv}/csat"),
                    )
                    .json(&json!({"rating": 5, "comment": ""})),
                    "csat",
                )
                .await;
            }
        }
    }

    /// Waits until the reward-join consumer has applied every use and resolution and has
    /// nothing left to look at (ratings included); returns the admin stats.
    async fn caught_up(&self, h: &Hearth) -> Value {
        let (uses, resolved) = (self.uses, self.resolved_uses);
        let token = self.team.owner_token.clone();
        wait_for(
            "the suggestion consumer to catch up",
            Duration::from_secs(60),
            || {
                let bus = h.get(&token, "/api/bus");
                let r = h.get(&token, "/api/chat/suggestions/stats");
                async move {
                    let b: Value = bus.send().await.ok()?.json().await.ok()?;
                    let c = b["consumers"]
                        .as_array()?
                        .iter()
                        .find(|c| c["name"] == "chat.suggest")?;
                    if c["lag"] != 0 || c["pending"] != 0 {
                        return None;
                    }
                    let s: Value = r.send().await.ok()?.json().await.ok()?;
                    (s["uses"] == uses && s["resolved_uses"] == resolved).then_some(s)
                }
            },
        )
        .await
    }

    /// The non-holdout suggestions for a fresh conversation of intent `i`.
    async fn shown_for(&mut self, h: &Hearth, i: usize) -> Value {
        let v = visitor(h, &self.team.site_key).await;
        let b = ok(
            widget(h, &v.site_key, &v.token, "/api/chat/start")
                .json(&json!({"customer_name": "Vera", "initial_message": INTENTS[i].1[0]})),
            "start",
        )
        .await;
        let conv = b["chat_id"].as_u64().unwrap();
        loop {
            let s = ok(
                h.post(
                    &self.team.agent_token,
                    &format!("/api/chat/conversations/{conv}/suggestions"),
                ),
                "suggestions",
            )
            .await;
            if s["holdout"] == false {
                return s;
            }
        }
    }
}

fn rate(v: &[bool]) -> f64 {
    v.iter().filter(|b| **b).count() as f64 / v.len().max(1) as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_right_reply_rises_and_a_kill_in_the_middle_loses_no_learning() {
    let tmp = tempfile::tempdir().unwrap();
    let h = Hearth::start_in(tmp.path(), TOML, &[]).await;
    let t = team(&h).await;
    ok(
        h.post(&t.owner_token, "/api/chat/canned-responses")
            .json(&json!({
                "shortcut": "tracking", "title": "Where is my order",
                "body": "Here is the tracking link for your parcel; it shows where it is now."
            })),
        "canned",
    )
    .await;
    let list = ok(
        h.get(&t.agent_token, "/api/chat/canned-responses"),
        "canned list",
    )
    .await;
    let canned: Vec<(String, u64)> = list["canned_responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["shortcut"].as_str().unwrap().to_string(),
                c["id"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(canned.len(), 7);
    let mut sim = Sim {
        team: t,
        canned,
        rng: StdRng::seed_from_u64(19),
        uses: 0,
        resolved_uses: 0,
        right_on_top: Vec::new(),
    };
    const HALF: usize = 150;
    for n in 0..HALF {
        sim.conversation(&h, n).await;
        sim.caught_up(&h).await;
    }
    let before = sim.caught_up(&h).await;
    assert!(before["model"].as_array().unwrap().len() >= 3, "{before}");

    // kill -9, then the same data directory again.
    drop(h);
    let h = Hearth::start_in(tmp.path(), TOML, &[]).await;
    let after = sim.caught_up(&h).await;
    assert_eq!(
        before["model"], after["model"],
        "the model after a kill -9 and restart differs"
    );
    for n in HALF..2 * HALF {
        sim.conversation(&h, n).await;
        sim.caught_up(&h).await;
    }
    let end = sim.caught_up(&h).await;

    let k = sim.right_on_top.len();
    let early = rate(&sim.right_on_top[..k / 5]);
    let late = rate(&sim.right_on_top[k - k / 5..]);
    assert!(
        late >= 0.8 && late > early,
        "the right reply should rise: right on top early {early:.2}, late {late:.2}"
    );
    // For a fresh conversation of each intent the right reply is shown, and the model expects
    // more of it than of anything shown beside it. (The order itself is LinUCB's: a reply never
    // tried in this context may still be ranked above it while it is being explored.)
    for (i, (intent, _, right)) in INTENTS.iter().enumerate() {
        let s = sim.shown_for(&h, i).await;
        let list = s["suggestions"].as_array().unwrap();
        let right_id = sim.id_of(right);
        let best = list
            .iter()
            .max_by(|a, b| {
                a["why"]["expected"]
                    .as_f64()
                    .unwrap()
                    .total_cmp(&b["why"]["expected"].as_f64().unwrap())
            })
            .unwrap();
        assert_eq!(
            best["canned_id"].as_u64().unwrap(),
            right_id,
            "intent {intent}: the reply that resolves it is not the one the model expects most of: {s}"
        );
    }
    // The admin figures are consistent with what was played.
    assert!(
        end["decisions"].as_u64().unwrap() >= 2 * HALF as u64,
        "{end}"
    );
    assert!(end["acceptance_rate"].as_f64().unwrap() > 0.9, "{end}");
    assert!(end["holdout_decisions"].as_u64().unwrap() > 0, "{end}");
    let ips = &end["ips"];
    assert!(
        ips["low"].as_f64().unwrap() <= ips["value"].as_f64().unwrap()
            && ips["value"].as_f64().unwrap() <= ips["high"].as_f64().unwrap(),
        "{end}"
    );
    assert!(
        end["resolution_rate_with_suggestion"].as_f64().unwrap() > 0.5,
        "{end}"
    );
    h.stop().await;
}

/// Bad input answers with the API's error shape and a message that says what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suggestion_errors_are_stable() {
    let h = Hearth::start(TOML).await;
    let t = team(&h).await;
    let r = h
        .post(&t.agent_token, "/api/chat/conversations/999/suggestions")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["error"]["code"], "not_found", "{b}");
    let r = h
        .post(&t.agent_token, "/api/chat/suggestions/999/used")
        .json(&json!({"canned_id": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // An agent may not read the admin figures.
    let r = h
        .get(&t.agent_token, "/api/chat/suggestions/stats")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    h.stop().await;
}

/// In Chromium: the agent opens a conversation and the reply box shows the top 3 learned
/// suggestions with their why; a click fills the box (nothing is sent by itself), Enter sends
/// it, and the use is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reply_box_shows_three_suggestions_with_their_why() {
    use fantoccini::Locator;
    crate::common::install_crypto();
    let Some(b) = crate::browser::Browser::start().await else {
        return;
    };
    let h = Hearth::start(TOML).await;
    let t = team(&h).await;
    let v = visitor(&h, &t.site_key).await;
    let conv = ok(
        widget(&h, &v.site_key, &v.token, "/api/chat/start")
            .json(&json!({"customer_name": "Vera", "initial_message": "I can't log in, my password reset fails"})),
        "start",
    )
    .await["chat_id"]
        .as_u64()
        .unwrap();

    b.c.goto(&h.url("/#/login")).await.unwrap();
    let wait_js = |what: &'static str, script: &'static str| {
        let c = b.c.clone();
        async move {
            wait_for(what, Duration::from_secs(30), || {
                let c = c.clone();
                async move {
                    let v = c.execute(script, vec![]).await.ok()?;
                    (v != Value::Null && v != Value::Bool(false)).then_some(v)
                }
            })
            .await
        }
    };
    wait_js(
        "the login form",
        "return !!document.querySelector('#login-email') || null",
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
        "signed in",
        "return !document.getElementById('topbar').hidden || null",
    )
    .await;
    b.c.goto(&h.url(&format!("/#/chat/{conv}"))).await.unwrap();
    let why = wait_js(
        "three suggestions in the reply box",
        "const b = document.querySelector('#chat-learned'); const items = b ? b.querySelectorAll('[data-canned]') : []; \
         return (b && !b.hidden && items.length === 3) ? [...items].map(i => i.textContent).join('|') : null",
    )
    .await;
    assert!(
        why.as_str().unwrap().contains("account:"),
        "each suggestion says why: {why}"
    );
    // A click fills the box and sends nothing.
    b.c.execute(
        "document.querySelector('#chat-learned [data-canned]').click(); return 1",
        vec![],
    )
    .await
    .unwrap();
    let filled = wait_js(
        "the reply box filled",
        "const v = document.querySelector('#chat-input').value; return v || null",
    )
    .await;
    let before: Value = h
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
    assert_eq!(
        before
            .to_string()
            .matches(filled.as_str().unwrap().get(..20).unwrap())
            .count(),
        0,
        "a suggestion was sent without the agent"
    );
    b.c.find(Locator::Css("#chat-input"))
        .await
        .unwrap()
        .send_keys("\u{E007}")
        .await
        .unwrap(); // Enter sends
    wait_for("the use recorded", Duration::from_secs(30), || {
        let r = h.get(&t.owner_token, "/api/chat/suggestions/stats");
        async move {
            let s: Value = r.send().await.ok()?.json().await.ok()?;
            (s["accepted"] == 1).then_some(())
        }
    })
    .await;
    // After the reply the strip is gone; typing `/` brings suggestions back.
    b.c.find(Locator::Css("#chat-input"))
        .await
        .unwrap()
        .send_keys("/")
        .await
        .unwrap();
    wait_js(
        "the suggestions again after /",
        "const b = document.querySelector('#chat-learned'); return (b && !b.hidden && b.querySelectorAll('[data-canned]').length === 3) || null",
    )
    .await;
    b.close().await;
    h.stop().await;
}
