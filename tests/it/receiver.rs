//! A local HTTP receiver standing in for Slack and webhook endpoints (what cannot run here),
//! recording every request, and an independent Standard Webhooks signature check.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use base64::Engine;
use hmac::{KeyInit, Mac};
use serde_json::Value;

use crate::common::wait_for;

const T: Duration = Duration::from_secs(30);

#[derive(Clone, Debug)]
pub struct Hit {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
    pub raw: Vec<u8>,
}

/// A local HTTP receiver standing in for Slack and webhook endpoints.
#[derive(Clone, Default)]
pub struct Receiver {
    hits: Arc<Mutex<Vec<Hit>>>,
    /// path → how many more requests get a 500 (usize::MAX: always).
    fail: Arc<Mutex<HashMap<String, usize>>>,
    pub base: String,
}

impl Receiver {
    pub async fn start(fail: &[(&str, usize)]) -> Receiver {
        let mut r = Receiver::default();
        for (p, n) in fail {
            r.fail.lock().unwrap().insert(p.to_string(), *n);
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        r.base = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .fallback(
                |State(r): State<Receiver>,
                 uri: Uri,
                 headers: HeaderMap,
                 body: axum::body::Bytes| async move {
                    let path = uri.path().to_string();
                    r.hits.lock().unwrap().push(Hit {
                        path: path.clone(),
                        headers,
                        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                        raw: body.to_vec(),
                    });
                    let mut fail = r.fail.lock().unwrap();
                    match fail.get_mut(&path) {
                        Some(n) if *n > 0 => {
                            if *n != usize::MAX {
                                *n -= 1;
                            }
                            (StatusCode::INTERNAL_SERVER_ERROR, "reply-from-receiver")
                        }
                        _ => (StatusCode::OK, "ok"),
                    }
                },
            )
            .with_state(r.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        r
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn at(&self, path: &str) -> Vec<Hit> {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.path == path)
            .cloned()
            .collect()
    }

    pub async fn wait(&self, path: &str, n: usize) -> Vec<Hit> {
        wait_for(&format!("{n} request(s) to {path}"), T, || async {
            let hits = self.at(path);
            (hits.len() >= n).then_some(hits)
        })
        .await
    }
}

/// Verifies a Standard Webhooks signature with the secret the API showed.
pub fn verify(secret: &str, hit: &Hit) -> bool {
    let h = |k: &str| hit.headers.get(k).unwrap().to_str().unwrap().to_string();
    let (id, ts, sig) = (
        h("webhook-id"),
        h("webhook-timestamp"),
        h("webhook-signature"),
    );
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(&hit.raw);
    let want = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    let now = hearth::store::now_ms() / 1000;
    let fresh = (now - ts.parse::<i64>().unwrap()).abs() < 300;
    fresh && sig.split(' ').any(|s| s == want)
}
