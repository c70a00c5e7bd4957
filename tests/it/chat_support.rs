//! Shared setup of the chat tests: a team (owner, agent with a token, a site), widget
//! visitors, their requests, and a real WebSocket client for either side.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::binary::Hearth;

pub struct Ws {
    s: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Ws {
    pub async fn visitor(h: &Hearth, path: &str, v: &Visitor) -> Ws {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = format!(
            "ws://127.0.0.1:{}{path}{sep}site_key={}&visitor_token={}",
            h.port, v.site_key, v.token
        );
        let (s, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("visitor socket");
        Ws { s }
    }

    pub async fn agent(h: &Hearth, token: &str) -> Ws {
        let mut req = format!("ws://127.0.0.1:{}/api/chat/ws", h.port)
            .into_client_request()
            .unwrap();
        req.headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let (s, _) = tokio_tungstenite::connect_async(req)
            .await
            .expect("agent socket");
        Ws { s }
    }

    pub async fn send(&mut self, v: Value) {
        self.s.send(Message::text(v.to_string())).await.unwrap();
    }

    /// The next frame that is not a ping; panics after 15 s.
    pub async fn next(&mut self) -> Value {
        loop {
            let m = tokio::time::timeout(Duration::from_secs(15), self.s.next())
                .await
                .expect("a frame within 15 s")
                .expect("socket open")
                .expect("frame");
            if let Message::Text(t) = m {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["t"] != "ping" {
                    return v;
                }
            }
        }
    }

    /// Reads frames until one matches `pred`, returning it and the frames skipped.
    pub async fn until(&mut self, pred: impl Fn(&Value) -> bool) -> (Value, Vec<Value>) {
        let mut skipped = Vec::new();
        loop {
            let v = self.next().await;
            if pred(&v) {
                return (v, skipped);
            }
            skipped.push(v);
        }
    }

    pub async fn close(mut self) {
        let _ = self.s.close(None).await;
    }
}

pub struct Visitor {
    pub site_key: String,
    pub token: String,
    pub id: u64,
}

pub struct Team {
    pub owner_token: String,
    pub agent_token: String,
    pub agent_id: u64,
    pub site_key: String,
    pub identity_secret: String,
}

/// Owner (through the setup link), an agent with an API token, and a chat site.
pub async fn team(h: &Hearth) -> Team {
    let owner = h.owner().await;
    let r = h
        .post(&owner.token, "/api/users")
        .json(&json!({"email": "ada@example.com", "name": "Ada Agent", "role": "agent", "password": "agent password 123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "create agent");
    let agent_id = r.json::<Value>().await.unwrap()["user"]["id"]
        .as_u64()
        .unwrap();
    let cookie = h
        .sign_in("ada@example.com", "agent password 123")
        .await
        .unwrap();
    let r = h
        .http
        .post(h.url("/api/tokens"))
        .header("cookie", cookie)
        .header("origin", &h.base)
        .json(&json!({"name": "agent"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let agent_token = r.json::<Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let r = h
        .post(&owner.token, "/api/chat/sites")
        .json(&json!({"name": "Shop"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let site = r.json::<Value>().await.unwrap()["site"].clone();
    Team {
        owner_token: owner.token,
        agent_token,
        agent_id,
        site_key: site["site_key"].as_str().unwrap().to_string(),
        identity_secret: site["identity_secret"].as_str().unwrap().to_string(),
    }
}

pub async fn visitor(h: &Hearth, site_key: &str) -> Visitor {
    let r = h
        .http
        .post(h.url("/api/chat/widget/session"))
        .json(&json!({"site_key": site_key}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "widget session");
    let v: Value = r.json().await.unwrap();
    Visitor {
        site_key: site_key.to_string(),
        token: v["visitor_token"].as_str().unwrap().to_string(),
        id: v["visitor"]["id"].as_u64().unwrap(),
    }
}

pub fn widget(
    h: &Hearth,
    v: &Visitor,
    method: reqwest::Method,
    path: &str,
) -> reqwest::RequestBuilder {
    h.http
        .request(method, h.url(path))
        .header("x-hearth-site-key", &v.site_key)
        .header("x-hearth-visitor-token", &v.token)
}

/// Starts a conversation with a first message; returns its id.
pub async fn start(h: &Hearth, v: &Visitor, first: &str) -> u64 {
    let r = widget(h, v, reqwest::Method::POST, "/api/chat/start")
        .json(&json!({"customer_name": "Vera Visitor", "initial_message": first}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "start");
    let b: Value = r.json().await.unwrap();
    assert!(
        b["websocket_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/api/chat/ws/{}", b["chat_id"])),
        "{b}"
    );
    b["chat_id"].as_u64().unwrap()
}

pub fn is_msg(body: &str) -> impl Fn(&Value) -> bool + '_ {
    move |v| v["t"] == "ev" && v["type"] == "message.created" && v["data"]["body"] == body
}
